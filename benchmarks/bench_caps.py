"""A model on EEG recorded with other caps: quality against its native channels, side by side.

Simulated subjects (one seed, the ``small`` preset) are recorded with the model's own 34
channels, and the model is scored with ``evaluate`` (its channels interpolated from the
cap by the EEG chain's montage stage, MNE's spherical splines):

- paired: the same 34-channel recording read through a 16- and a 32-channel cap (only
  those channels read), so the ratio to native measures the interpolation alone; and a
  68-channel recording (the 64 BioSemi channels + the model's TP9, TP10, PO9, PO10) read
  as the model's 34 channels and as the BioSemi 64 (4 model channels interpolated);
- separate recordings: the simulator run again with 16-, 32- and 64-channel (BioSemi)
  caps, whose noise draws differ from the native recording's.

Printed per cap: mean voxelwise r, mean r in the top-10 % voxels of the noise ceiling,
and both as a ratio to native (aim ≥ 0.9 at 32 and 64 channels). The montage stage's own cost is
timed on a 64-channel × 5 kHz stream's chunks beside the plain channel selection.

    .venv/bin/python benchmarks/bench_caps.py --out /tmp/caps
    .venv/bin/python benchmarks/bench_caps.py --out /tmp/caps --model runs/x/conv.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CAPS = {
    "34 (native)": "34",
    "16": "16",
    "32": "32",
    "64 (BioSemi)": "biosemi64",
}


def _cap_names(spec: str):
    if spec.isdigit() or "," in spec:
        return spec
    import mne

    return ",".join(mne.channels.make_standard_montage(spec).ch_names)


def simulate(out: Path, spec: str, args, *, name: str | None = None) -> Path:
    from rt_eeg2fmri.sim import simulate_dataset

    folder = out / (name or f"cap-{spec}")
    if not (folder / "derivatives" / "simulation" / "simulation.json").is_file():
        simulate_dataset(
            folder,
            preset="small",
            seed=args.seed,
            subjects=args.subjects,
            runs=args.runs,
            channels=_cap_names(spec),
            progress=False,
        )
    return folder


def montage_cost(n_chans: int = 64, sfreq: float = 5000.0, chunk_ms: float = 10.0) -> dict:
    """Median ms per chunk of the chain with and without montage interpolation."""
    import mne
    import numpy as np

    from rt_eeg2fmri.data import EEGChain, Preprocessing
    from rt_eeg2fmri.sim.presets import CHANNELS_34

    cap = mne.channels.make_standard_montage("biosemi64").ch_names[:n_chans]
    k = round(chunk_ms * sfreq / 1000)
    x = np.random.default_rng(0).standard_normal((k, len(cap))).astype(np.float32)
    out = {}
    for label, names in (
        ("selection", [c for c in CHANNELS_34 if c in cap]),
        ("montage", list(CHANNELS_34)),
    ):
        chain = EEGChain(Preprocessing(sfreq=sfreq), ch_names=names, sfreq=sfreq, labels=cap,
                         units=["uV"] * len(cap))  # fmt: skip
        times = []
        for i in range(2000):
            t = time.perf_counter()
            chain.process(x, np.arange(k) / sfreq + i * k / sfreq)
            times.append(time.perf_counter() - t)
        out[label] = 1e3 * float(np.median(times[200:]))
    out["chunk_ms"] = chunk_ms
    return out


def main() -> None:
    from rt_eeg2fmri._logging import set_log_level
    from trainer.evaluate import evaluate_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the simulated datasets")
    parser.add_argument("--model", default=None, help="checkpoint (default: the built-in conv)")
    parser.add_argument("--seed", type=int, default=2025, help="simulation seed (unseen subjects)")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--superset",
        action="store_true",
        help="also the paired 64-channel comparison on a 68-channel recording",
    )
    parser.add_argument("--only-paired", action="store_true", help="skip the separate simulations")
    args = parser.parse_args()
    set_log_level("WARNING")
    if args.model is None:
        from apps.commands.stream import default_model_path

        args.model = str(default_model_path())
    from rt_eeg2fmri.sim.presets import CHANNELS_16, CHANNELS_32

    out = Path(args.out)
    rows = {}
    native = simulate(out, "34", args)
    runs = [("34 (native)", native, None)]
    if not args.only_paired:
        runs += [
            (f"{label} (separate)", simulate(out, spec, args), None)
            for label, spec in list(CAPS.items())[1:]
        ]
    runs[1:1] = [
        ("16 of native", native, list(CHANNELS_16)),
        ("32 of native", native, list(CHANNELS_32)),
    ]
    if args.superset:
        import mne

        from rt_eeg2fmri.sim.presets import CHANNELS_34

        biosemi = mne.channels.make_standard_montage("biosemi64").ch_names
        extra = [c for c in CHANNELS_34 if c not in biosemi]
        superset = simulate(out, ",".join([*biosemi, *extra]), args, name="cap-68")
        runs += [
            ("34 of 68 (native)", superset, list(CHANNELS_34)),
            ("64 BioSemi of 68", superset, list(biosemi)),
        ]
    for label, data, channels in runs:
        t0 = time.perf_counter()
        reader = None if channels is None else {"channels": channels}
        res = evaluate_checkpoint(args.model, data, progress=False, reader=reader)
        m = res["metrics"][res["model"]]
        rows[label] = {
            "r_mean": m["r_mean"],
            "r_top10": m.get("ceiling_r_mean_top", float("nan"))
            * m.get("ceiling_fraction_top", float("nan")),
            "ceiling_fraction_top": m.get("ceiling_fraction_top"),
            "n_pairs": res["n_pairs"],
            "seconds": time.perf_counter() - t0,
        }
        print(f"{label:24s} r mean {m['r_mean']:.4f}  top-10 % r {rows[label]['r_top10']:.4f}  "
              f"({res['n_pairs']} pairs, {rows[label]['seconds']:.0f} s)", flush=True)  # fmt: skip
    print(f"\n{'cap':24s} {'r mean':>8s} {'ratio':>6s} {'top-10 % r':>11s} {'ratio':>6s}")
    for label, row in rows.items():
        ref = rows["34 of 68 (native)" if "of 68" in label else "34 (native)"]
        print(
            f"{label:24s} {row['r_mean']:8.4f} {row['r_mean'] / ref['r_mean']:6.2f} "
            f"{row['r_top10']:11.4f} {row['r_top10'] / ref['r_top10']:6.2f}"
        )
    cost = montage_cost()
    print(
        f"\nchain per {cost['chunk_ms']:g} ms chunk of a 64-channel BioSemi cap at 5 kHz "
        f"(median): the 30 model channels it has {cost['selection']:.3f} ms; all 34, 4 of "
        f"them interpolated {cost['montage']:.3f} ms"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"caps": rows, "cost": cost}, indent=2))


if __name__ == "__main__":
    main()
