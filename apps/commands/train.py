"""``rt-eeg2fmri train``: train and honestly evaluate models; write checkpoints and a report."""

from __future__ import annotations

from ._reader import add_reader_arguments, add_roi_arguments, add_truth_argument, reader_options

HELP = "Train models on a simultaneous EEG-fMRI dataset; evaluate them beside the baselines."


def add_arguments(parser) -> None:
    """Add the training options (each also settable in a TOML config)."""
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="dataset folder (BIDS, ds000116 legacy or simulated); repeat to pool datasets "
        "(subjects keep their folder's name as a prefix, e.g. ds002336-xp101)",
    )
    parser.add_argument(
        "--channels",
        default=None,
        help="comma-separated model channels; other caps are interpolated onto them "
        "(default: the first dataset's channels)",
    )
    parser.add_argument(
        "--out", required=True, help="run folder: checkpoints, metrics.json, report.md, figures"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --out (its report, figures and fold folders)",
    )
    parser.add_argument("--config", default=None, help="TOML file with [train] settings")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="architecture (conv, fc, siamese_fc, transformer, ridge); repeat for several",
    )
    parser.add_argument("--split", default=None, help="loso (default), within, or random (leaky)")
    parser.add_argument("--test-subjects", default=None, help="comma-separated LOSO test subjects")
    parser.add_argument(
        "--subjects", default=None, help="comma-separated subjects to use (default: all)"
    )
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated runs to use: run numbers (2) or entities (task-visual_run-1)",
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    parser.add_argument(
        "--sfreq", type=float, default=None, help="resample the EEG to this rate (Hz)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--mask",
        default=None,
        help="NIfTI mask on the BOLD grid: the voxels modelled and scored (default: the MNI "
        "or EPI mask, less what the first run does not cover)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_roi_arguments(parser, default=" (default: a simulated dataset's own regions)")
    add_truth_argument(parser)
    add_reader_arguments(parser)


def _overrides(args) -> list[str]:
    import json

    sets = list(args.set)
    for key in ("split", "epochs", "device", "sfreq", "seed", "mask"):
        value = getattr(args, key)
        if value is not None:
            sets.append(f"{key}={value}")
    if args.test_subjects:
        sets.append("test_subjects=" + json.dumps(args.test_subjects.split(",")))
    if args.subjects:
        sets.append("subjects=" + json.dumps(args.subjects.split(",")))
    if args.runs:
        sets.append("runs=" + json.dumps(args.runs.split(",")))
    if args.channels:
        sets.append("channels=" + json.dumps([c.strip() for c in args.channels.split(",")]))
    if args.model:
        sets.append(f"model={args.model[0]}")
    return sets


#: What a training run writes into its folder (a previous run's is refused or cleared).
RUN_OUTPUTS = ("metrics.json", "report.md", "*.png", "loso-*", "within-*", "random-*")


def clear_run_folder(out, *, overwrite: bool) -> None:
    """Refuse an ``--out`` holding an earlier run (naming what is there), or clear it."""
    import shutil
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"'--out' {str(out)!r} is a file; expected a run folder.")
    found = (
        sorted({p for pattern in RUN_OUTPUTS for p in out.glob(pattern)}) if out.is_dir() else []
    )
    if not found:
        return
    if not overwrite:
        names = ", ".join(p.name for p in found[:6]) + (" ..." if len(found) > 6 else "")
        raise FileExistsError(
            f"'{out}' holds an earlier training run ({names}); nothing was written. Choose "
            "another --out, or pass --overwrite to replace it."
        )
    for p in found:  # the earlier run's outputs, so no stale fold is left beside the new
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def run(args) -> int:
    """Train, evaluate and report."""
    from trainer.config import load_config
    from trainer.report import markdown_table
    from trainer.run import train_and_evaluate

    cfg = load_config(args.config, _overrides(args))
    clear_run_folder(args.out, overwrite=args.overwrite)
    data = args.data[0] if len(args.data) == 1 else args.data
    report = train_and_evaluate(
        data,
        cfg,
        args.out,
        models=args.model,
        progress=not args.no_progress,
        reader=reader_options(args),
        truth=args.truth,
        roi=args.roi,
        roi_labels=args.roi_labels,
    )
    if not report:  # a non-zero rank under torchrun: rank 0 reports
        return 0
    print(markdown_table(report["summary"], ceiling=report.get("noise_ceiling_r_mean")))
    print(f"\nreport: {args.out}/report.md")
    return 0
