"""``rt-eeg2fmri simulate``: write a simulated EEG-fMRI oddball dataset with ground truth."""

from __future__ import annotations

HELP = "Simulate an EEG-fMRI oddball dataset (BIDS and/or ds000116 layout) with ground truth."


def add_arguments(parser) -> None:
    """Add the simulate options."""
    parser.add_argument("--preset", default="small", help="tiny, small or oddball (default: small)")
    parser.add_argument(
        "--out", required=True, help="output folder (empty or a previous simulation)"
    )
    parser.add_argument(
        "--layout", default="bids", choices=("bids", "ds000116", "both"), help="default: bids"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--subjects", type=int, default=None, help="override: subjects")
    parser.add_argument("--runs", type=int, default=None, help="override: runs per subject")
    parser.add_argument("--volumes", type=int, default=None, help="override: volumes per run")
    parser.add_argument("--sfreq", type=float, default=None, help="override: EEG rate (Hz)")
    parser.add_argument(
        "--channels",
        default=None,
        help="override: 16, 32 or 34 (built-in sets) or comma-separated 10-20/10-10 names",
    )
    parser.add_argument("--t-r", type=float, default=None, help="override: TR (s, default 2)")
    parser.add_argument(
        "--lead-in", type=float, default=None, help="EEG before the first volume (s, default 5)"
    )
    parser.add_argument(
        "--legacy-lead-in",
        type=float,
        default=None,
        help="ds000116 layout: EEG before the first volume (s, default 0)",
    )
    parser.add_argument(
        "--mat-version",
        default=None,
        choices=("5", "7.3"),
        help="ds000116 .mat version (default 5)",
    )
    parser.add_argument(
        "--randomize",
        action="store_true",
        help="draw the generative choices per seed and subject (band couplings and their "
        "signs, blob sizes, HRF shapes and delays, noise levels) instead of the fixed ones",
    )
    parser.add_argument(
        "--artifacts",
        default=None,
        help="in-scanner artifacts added to the EEG: gradient, bcg or gradient,bcg (the clean "
        "EEG goes to derivatives/simulation, an ECG channel is recorded, with the gradient "
        "artifact too when both are asked for)",
    )
    parser.add_argument(
        "--scanner-sync",
        choices=("on", "off"),
        default=None,
        help="EEG clock locked to the scanner's (on, default) or drifting (off: the gradient "
        "artifact jitters by a fraction of a sample from slice to slice)",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: CPU count)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder anyway"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    """Simulate, then print a short summary."""
    import os
    import time

    from rt_eeg2fmri.sim import simulate_dataset
    from rt_eeg2fmri.sim.dataset import dataset_size, read_config

    jobs = args.jobs if args.jobs is not None else max(1, min(os.cpu_count() or 1, 8))
    start = time.perf_counter()
    out = simulate_dataset(
        args.out,
        preset=args.preset,
        seed=args.seed,
        layout=args.layout,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        subjects=args.subjects,
        runs=args.runs,
        volumes=args.volumes,
        sfreq=args.sfreq,
        channels=args.channels,
        t_r=args.t_r,
        lead_in=args.lead_in,
        legacy_lead_in=args.legacy_lead_in,
        mat_version=args.mat_version,
        jobs=jobs,
        randomize=args.randomize or None,
        artifacts=args.artifacts,
        scanner_sync=None if args.scanner_sync is None else args.scanner_sync == "on",
    )
    elapsed = time.perf_counter() - start
    cfg = read_config(out)
    runs = cfg["runs"]
    kind = ", randomized generator" if cfg.get("randomize") else ""
    print(f"Simulated '{cfg['preset']}' (seed {cfg['seed']}{kind}) into {out} in {elapsed:.1f} s")
    print(
        f"  {cfg['subjects']} subjects × {len(runs)} runs ({', '.join(runs)}), "
        f"{cfg['volumes']} volumes at TR {cfg['t_r']:g} s"
    )
    print(f"  EEG: {len(cfg['ch_names'])} channels at {cfg['sfreq']:g} Hz; layout: {cfg['layout']}")
    print(f"  ground truth: {out / 'derivatives' / 'simulation'}")
    print(f"  {dataset_size(out) / 1e6:.1f} MB on disk")
    return 0
