"""Our ``ridge`` beside a plain HRF-convolved band-power ridge written independently of it.

Both see the same cached EEG and are scored on the same test pairs against the same
targets, with the task-event regression (no EEG) and the noise ceiling beside them. The
split is by subject: one test subject, one validation subject (it picks every penalty),
the others train.

The plain reference uses other tools for every step: MNE's zero-phase FIR band-pass per
band (offline, not causal: it sees ~0.5 s past a window's end, which an HRF-smoothed
feature barely notices), the analytic-signal envelope (``scipy.signal.hilbert``), power
averaged over one TR, its log, convolved over the whole run with nilearn's Glover HRF
and read at each window's end; standardised on the training pairs; ridge with the
penalty chosen per voxel on the validation subject.

    rt-eeg2fmri simulate --preset small --randomize --subjects 6 --runs 2 --volumes 200 \\
        --seed 101 --out /tmp/rnd101
    python benchmarks/bench_ridge.py --data /tmp/rnd101 --test 01 --val 02
"""

from __future__ import annotations

import argparse
import ast
import time

import numpy as np

BANDS = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
ALPHAS = np.logspace(-3, 4, 15)


def plain_features(dataset, t_r: float) -> dict[int, np.ndarray]:
    """Per run: (n_samples_at_10Hz, n_chans · n_bands) HRF-convolved log band power."""
    import mne
    from nilearn.glm.first_level import glover_hrf
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import hilbert

    sfreq = dataset.preprocessing.sfreq
    step = max(1, round(sfreq / 10))  # envelope read at ~10 Hz
    hrf = glover_hrf(t_r, oversampling=round(t_r * sfreq / step), time_length=32.0)
    hrf = hrf / hrf.sum()
    out = {}
    for r in np.unique(dataset.run_index):
        eeg = np.asarray(dataset.run_eeg(int(r)), dtype=np.float64)
        cols = []
        for lo, hi in BANDS:
            hi = min(hi, 0.45 * sfreq)
            band = mne.filter.filter_data(eeg, sfreq, lo, hi, verbose="error")
            power = np.abs(hilbert(band, axis=-1)) ** 2
            power = uniform_filter1d(power, round(t_r * sfreq), axis=-1, origin=0)[:, ::step]
            logp = np.log(power + 1e-30)
            conv = np.stack([np.convolve(c, hrf)[: c.size] for c in logp])
            cols.append(conv)
        out[int(r)] = np.concatenate(cols).T  # (n_steps, n_chans · n_bands)
    return out, step


def plain_ridge(dataset, split, t_r: float) -> np.ndarray:
    """Predictions of the plain reference on ``split.test``."""
    feats, step = plain_features(dataset, t_r)
    n_times = dataset.n_times

    def design(idx):
        ends = (dataset.start[idx] + n_times - 1) // step
        return np.stack(
            [feats[int(r)][min(e, feats[int(r)].shape[0] - 1)]
             for r, e in zip(dataset.run_index[idx], ends, strict=True)]
        )  # fmt: skip

    xtr, xva, xte = design(split.train), design(split.val), design(split.test)
    ytr = dataset.get_targets(split.train).astype(np.float64)
    yva = dataset.get_targets(split.val).astype(np.float64)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-12
    xtr, xva, xte = ((x - mu) / sd for x in (xtr, xva, xte))
    ybar = ytr.mean(0)
    u, s, vt = np.linalg.svd(xtr, full_matrices=False)
    uty = u.T @ (ytr - ybar)
    best_err = np.full(ytr.shape[1], np.inf)
    coef = np.zeros((xtr.shape[1], ytr.shape[1]))
    for a in ALPHAS * len(xtr):
        w = vt.T @ ((s / (s**2 + a))[:, None] * uty)
        err = ((xva @ w + ybar - yva) ** 2).sum(0)
        better = err < best_err
        best_err[better], coef[:, better] = err[better], w[:, better]
    return (xte @ coef + ybar).astype(np.float32)


def main() -> None:
    """Fit both ridges and the baselines on one split; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, action="append", help="dataset folder(s)")
    ap.add_argument("--test", required=True, help="test subject")
    ap.add_argument("--val", required=True, help="validation subject")
    ap.add_argument("--sfreq", type=float, default=100.0)
    ap.add_argument("--set", action="append", default=[], help="our ridge: key=value (config)")
    args = ap.parse_args()

    import torch

    from rt_eeg2fmri.data.preprocessing import Preprocessing
    from rt_eeg2fmri.models import build_model
    from rt_eeg2fmri.sim.truth import truth_targets
    from trainer.data import load_dataset
    from trainer.evaluate import baseline_predictions, score
    from trainer.loop import iterate_batches, predict
    from trainer.splits import Split

    prep = Preprocessing(sfreq=args.sfreq, fwhm=6.0)
    ds = load_dataset(args.data if len(args.data) > 1 else args.data[0], prep, progress=False)
    subj = np.asarray(ds.subject)
    idx = np.arange(len(ds))
    split = Split(
        name=f"test-{args.test}",
        train=idx[(subj != args.test) & (subj != args.val)],
        val=idx[subj == args.val],
        test=idx[subj == args.test],
    )
    t_r = float(ds.t_r)
    preds, seconds = baseline_predictions(ds, split, which=("events",)), {}
    variants = {"ridge (ours)": {}, "ridge (ours, alpha per voxel)": {"alpha_per_voxel": True}}
    for item in args.set:
        key, value = item.split("=", 1)
        variants[f"ridge (ours, {item})"] = {key: ast.literal_eval(value)}
    for name, extra in variants.items():
        t0 = time.perf_counter()
        config = dict(n_chans=ds.n_chans, n_times=ds.n_times, n_voxels=ds.n_voxels,
                      sfreq=args.sfreq, t_r=t_r, **extra)  # fmt: skip
        model = build_model("ridge", config)
        batches = lambda ix: iterate_batches(ds, ix, 64, device=torch.device("cpu"))  # noqa: E731
        model.fit_streaming(batches(split.train), val_batches=batches(split.val))
        preds[name] = predict(model, ds, split.test, batch_size=64)
        seconds[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds["plain reference ridge"] = plain_ridge(ds, split, t_r)
    seconds["plain reference ridge"] = time.perf_counter() - t0
    res = score(ds, split.test, preds, truth_targets=truth_targets(ds), ssim=False)
    print(f"{len(split.train)} training, {len(split.val)} validation, {len(split.test)} test pairs")
    print("| model | r mean | top-10 % ceiling fraction | R² vs subject mean | fit s |")
    print("|---|---:|---:|---:|---:|")
    for name, m in res["metrics"].items():
        print(
            f"| {name} | {m['r_mean']:.4f} | {100 * m.get('ceiling_fraction_top', np.nan):.1f} % "
            f"| {m['r2_vs_subject_mean']:.4f} | {seconds.get(name, 0):.1f} |"
        )
    if res["ceiling_r_mean"] is not None:
        top = next(iter(res["metrics"].values()))["ceiling_r_mean_top"]
        print(f"noise ceiling: r mean {res['ceiling_r_mean']:.4f}, top-10 % {top:.3f}")


if __name__ == "__main__":
    main()
