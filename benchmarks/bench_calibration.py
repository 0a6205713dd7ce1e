"""Calibration to a person: what 2, 4, 6, 10 minutes of their recording buy, honestly scored.

A fresh simulated cohort (the checkpoint has seen none of its subjects). For every subject:
the checkpoint uncalibrated (its own pooled EEG statistics, and the person's) and
calibrated with ``rt-eeg2fmri calibrate`` on the first M minutes of the subject's first
run, all scored with ``evaluate`` on the subject's other runs only. Beside them: task-event
regression (the events baseline, no EEG) and the noise ceiling of the simulation truth.

Printed per setting, averaged over subjects: mean voxelwise r, the fraction of the
noise ceiling reached in the top-10 % voxels, and R² against the subject mean.

The within-subject upper bound: a ``ridge`` fitted from scratch on the subject's whole
first run alone (its penalty chosen on that run's last quarter, after a 20 s gap), scored
on the same other runs — what a model of that one person, given all of its first run,
reaches without any other subject.

    .venv/bin/rt-eeg2fmri simulate --preset small --subjects 4 --runs 2 --volumes 330 \\
        --seed 77 --out /tmp/calib77
    .venv/bin/python benchmarks/bench_calibration.py --data /tmp/calib77 --minutes 2,4,6,10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _default_model() -> str:
    from apps.commands.stream import default_model_path

    return str(default_model_path())


def _first(dataset, subject: str) -> str:
    return next(r["name"] for r in dataset.runs if r["subject"] == subject)


def _within_subject(full, ckpt, subject: str, first: str, others: list, data) -> dict:
    """Metrics of a ridge fitted on ``subject``'s run ``first`` alone, scored on ``others``."""
    import numpy as np
    import torch

    from rt_eeg2fmri.models import build_model
    from rt_eeg2fmri.readout import chronological_split
    from rt_eeg2fmri.sim.truth import truth_targets
    from trainer.evaluate import score
    from trainer.loop import iterate_batches, predict

    view = full.with_stats(None)  # the person's own statistics
    names = [r["name"] for r in view.runs]
    run_of = np.asarray(view.run_index)
    mine = np.flatnonzero(run_of == names.index(first))
    ends = view.volume_times(names.index(first))[view.volume[mine]] + view.t_r
    fit, val = chronological_split(ends, gap=20.0, val_fraction=0.25, t_r=view.t_r)
    test = np.flatnonzero(np.isin(run_of, [names.index(n) for n in others]))
    config = dict(n_chans=view.n_chans, n_times=view.n_times, n_voxels=view.n_voxels,
                  sfreq=view.sfreq, t_r=view.t_r)  # fmt: skip
    model = build_model("ridge", config)
    cpu = torch.device("cpu")
    model.fit_streaming(iterate_batches(view, mine[fit], 64, device=cpu),
                        val_batches=iterate_batches(view, mine[val], 64, device=cpu))  # fmt: skip
    pred = predict(model, view, test, batch_size=64)
    res = score(view, test, {"ridge": pred}, truth_targets=truth_targets(view), ssim=False)
    return res["metrics"]["ridge"]


def main() -> None:
    """Run the comparison and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="simulated dataset (with derivatives truth)")
    ap.add_argument("--model", default=None, help="base checkpoint (default: the shipped conv)")
    ap.add_argument("--minutes", default="2,4,6,10")
    ap.add_argument("--subjects", default=None, help="comma-separated (default: all)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    import numpy as np

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from trainer.calibrate import calibrate
    from trainer.data import load_dataset
    from trainer.evaluate import evaluate_checkpoint

    model = args.model or _default_model()
    ckpt = load_checkpoint(model)
    full = load_dataset(args.data, ckpt.preprocessing, ch_names=ckpt.ch_names, mask=ckpt.mask,
                        progress=False)  # fmt: skip
    subjects = args.subjects.split(",") if args.subjects else sorted(set(full.subject.tolist()))
    minutes = [float(m) for m in args.minutes.split(",")]
    rows: dict[str, list] = {}
    t0 = time.perf_counter()

    def add(name, res):
        m = res["metrics"]
        rows.setdefault(name, []).append(m)

    # task-event regression, fitted on the other subjects' test runs (leave-one-subject-out)
    tests = [r["name"] for r in full.runs if r["subject"] in subjects]
    tests = [n for n in tests if n not in {_first(full, s) for s in subjects}]
    res = evaluate_checkpoint(
        model, args.data, stats="checkpoint", runs=tests, progress=False, ssim=False
    )
    events = res["metrics"]["events"]
    with tempfile.TemporaryDirectory() as tmp:
        for s in subjects:
            names = [r["name"] for r in full.runs if r["subject"] == s]
            first, others = _first(full, s), names[1:]
            if not others:
                raise SystemExit(f"subject {s} has one run: nothing to score calibration on.")
            kw = dict(subjects=[s], runs=others, progress=False, ssim=False)
            for stats in ("checkpoint", "subject"):
                res = evaluate_checkpoint(model, args.data, stats=stats, **kw)
                add(
                    f"uncalibrated ({stats} statistics)",
                    {"metrics": res["metrics"][ckpt.model_name]},
                )
            add("within-subject upper bound (ridge on the whole first run)",
                {"metrics": _within_subject(full, ckpt, s, first, others, args.data)})  # fmt: skip
            for m in minutes:
                out = Path(tmp) / f"{s}_{m:g}.pt"
                try:
                    info = calibrate(model, args.data, subject=s, runs=[first], minutes=m, out=out,
                                     progress=False)  # fmt: skip
                except ValueError as err:
                    print(f"sub-{s}, {m:g} min: {err}")
                    continue
                res = evaluate_checkpoint(out, args.data, stats="checkpoint", **kw)
                add(f"calibrated, {m:g} min", {"metrics": res["metrics"][ckpt.model_name]})
                rows.setdefault(f"calibrated, {m:g} min: chosen", []).append(
                    info["chosen"]["description"]
                )
    keys = ("r_mean", "ceiling_fraction_top", "r2_vs_subject_mean")
    print(f"\n{len(subjects)} subjects of '{args.data}', base '{model}', "
          f"{time.perf_counter() - t0:.0f} s\n")  # fmt: skip
    print("| setting | n | r mean | top-10 % ceiling fraction | R² vs subject mean |")
    print("|---|---:|---:|---:|---:|")
    summary = {}
    for name, ms in rows.items():
        if name.endswith("chosen"):
            continue
        vals = {k: float(np.nanmean([m.get(k, np.nan) for m in ms])) for k in keys}
        summary[name] = {**vals, "n": len(ms)}
        print(f"| {name} | {len(ms)} | {vals['r_mean']:.4f} | {vals['ceiling_fraction_top']:.1%} | "
              f"{vals['r2_vs_subject_mean']:.4f} |")  # fmt: skip
    print(f"| events (no EEG; all subjects pooled) | {len(subjects)} | {events['r_mean']:.4f} | "
          f"{events.get('ceiling_fraction_top', float('nan')):.1%} | "
          f"{events['r2_vs_subject_mean']:.4f} |")  # fmt: skip
    summary["events (no EEG)"] = {k: events.get(k) for k in keys}
    for name, chosen in rows.items():
        if name.endswith("chosen"):
            print(f"{name}: {chosen}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "rows": rows}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
