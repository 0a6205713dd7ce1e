"""Honest evaluation: every model and every baseline scored on the same test pairs."""

from __future__ import annotations

import numpy as np

from rt_eeg2fmri._logging import logger

from . import baselines, metrics
from .config import bold_options
from .loop import predict
from .splits import Split

BASELINES = ("subject_mean", "train_mean", "events")


def baseline_predictions(dataset, split: Split, *, which=BASELINES) -> dict[str, np.ndarray]:
    """Predictions of the trivial baselines on ``split.test`` (fitted on ``split.train``)."""
    out = {}
    for name in which:
        if name == "subject_mean":
            out[name] = baselines.subject_mean(dataset, split.test)
        elif name == "train_mean":
            out[name] = baselines.train_mean(dataset, split.train, split.test.size)
        elif name == "events":
            if all(
                len(dataset.events(int(r))) == 0 for r in np.unique(dataset.run_index[split.train])
            ):
                logger.warning(
                    "No task events in the training runs: skipping the 'events' baseline."
                )
                continue
            out[name] = baselines.event_regression(dataset, split.train, split.test)
        else:
            raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}.")
    return out


def noise_ceiling(dataset, split: Split, truth_targets) -> np.ndarray | None:
    """Voxelwise r between the EEG-predictable ground truth and the measured test targets.

    ``truth_targets(run_index) -> (n_volumes, n_vox)`` gives, for a simulated run, the
    EEG-predictable signal in target units; ``None`` when the data has no ground truth.
    """
    if truth_targets is None:
        return None
    run_of, vol_of = dataset.run_index[split.test], dataset.volume[split.test]
    pred = np.empty((split.test.size, int(np.asarray(dataset.mask).sum())), np.float32)
    for r in np.unique(run_of):
        tt = truth_targets(int(r))
        if tt is None:
            return None
        sel = run_of == r
        pred[sel] = tt[vol_of[sel]]
    return metrics.voxelwise_r(pred, baselines.targets(dataset, split.test))


def evaluate_split(
    dataset,
    split: Split,
    models: dict,
    *,
    truth_targets=None,
    device=None,
    batch_size: int = 32,
    ssim: bool = True,
) -> dict:
    """Score ``models`` (name → trained module) and the baselines on ``split.test``.

    Returns
    -------
    result : dict
        ``{"split": ..., "metrics": {name: {metric: value}}, "voxel_r": {name: array}}``;
        ``voxel_r`` holds each model's voxelwise r (for maps).
    """
    y = baselines.targets(dataset, split.test)
    subj_mean = baselines.subject_mean(dataset, split.test)
    ceiling = noise_ceiling(dataset, split, truth_targets)
    mask = np.asarray(dataset.mask)
    preds = baseline_predictions(dataset, split)
    results, voxel_r = {}, {}

    def _score(name, pred):
        results[name] = metrics.score(
            pred, y, subject_mean=subj_mean, mask=mask, ceiling=ceiling, ssim=ssim
        )
        voxel_r[name] = metrics.voxelwise_r(pred, y)

    for name, pred in preds.items():
        _score(name, pred)
    for name, model in models.items():
        _score(name, predict(model, dataset, split.test, batch_size=batch_size, device=device))
    out = {"split": split.describe(), "metrics": results, "voxel_r": voxel_r}
    if ceiling is not None:
        out["voxel_r"]["noise_ceiling"] = ceiling
    return out


class CheckpointView:
    """A ``PairDataset`` seen through a checkpoint.

    Its channels in its order, optionally normalised with the checkpoint's statistics
    instead of each subject's own.

    Parameters
    ----------
    dataset : PairDataset
    ckpt : Checkpoint
    stats : ``"subject"`` | ``"checkpoint"``
        ``subject``: each subject's own statistics (unsupervised calibration, as in the
        trainer's evaluation); ``checkpoint``: the pooled training statistics the
        checkpoint carries (what ``rt-eeg2fmri stream`` uses without ``--calibrate``).
    """

    def __init__(self, dataset, ckpt, *, stats: str = "subject") -> None:
        from rt_eeg2fmri._checks import check_option
        from rt_eeg2fmri.grid import same_grid

        check_option(stats, "stats", ("subject", "checkpoint"))
        if not same_grid(dataset.grid_shape, dataset.affine, ckpt.grid_shape, ckpt.affine):
            raise ValueError(
                f"checkpoint '{ckpt.path}' predicts on grid {tuple(ckpt.grid_shape)} but the data "
                f"is on grid {tuple(dataset.grid_shape)} (affines "
                f"{np.asarray(ckpt.affine).tolist()} vs {np.asarray(dataset.affine).tolist()})."
            )
        if not np.array_equal(np.asarray(dataset.mask, bool), np.asarray(ckpt.mask, bool)):
            raise ValueError(
                f"checkpoint '{ckpt.path}': its mask differs from the evaluation data's."
            )
        if dataset.n_win != ckpt.n_times or abs(dataset.sfreq - ckpt.sfreq) > 1e-6:
            raise ValueError(
                f"checkpoint '{ckpt.path}' takes {ckpt.n_times} samples at {ckpt.sfreq:g} Hz; the "
                f"data gives {dataset.n_win} at {dataset.sfreq:g} Hz."
            )
        lower = {c.lower(): i for i, c in enumerate(dataset.ch_names)}
        missing = [c for c in ckpt.ch_names if c.lower() not in lower]
        if missing:
            raise ValueError(
                f"checkpoint '{ckpt.path}' needs channel(s) {missing} that the data lacks "
                f"(data channels: {dataset.ch_names})."
            )
        self.idx = np.array([lower[c.lower()] for c in ckpt.ch_names])
        self.dataset, self.ckpt, self.stats_mode = dataset, ckpt, stats
        for name in (
            "subject",
            "run_index",
            "volume",
            "mask",
            "t_r",
            "sfreq",
            "n_win",
            "runs",
            "root",
            "target",
            "grid_shape",
            "affine",
        ):
            setattr(self, name, getattr(dataset, name))
        self.ch_names = list(ckpt.ch_names)
        if stats == "checkpoint":
            from rt_eeg2fmri.data.preprocessing import NormStats

            norm = NormStats.from_dict(ckpt.preprocessing["norm"])
            self._center, self._scale = (np.asarray(a, np.float32) for a in norm.as_float32())

    def __len__(self) -> int:
        return len(self.dataset)

    def events(self, r: int):
        """Events of run ``r``."""
        return self.dataset.events(r)

    def volume_times(self, r: int):
        """Volume onsets of run ``r``."""
        return self.dataset.volume_times(r)

    def get_targets(self, indices):
        """Targets of ``indices``."""
        return self.dataset.get_targets(indices)

    def get_batch(self, indices):
        """Windows (checkpoint channels and normalisation) and targets of ``indices``."""
        X, Y = self.dataset.get_batch(indices)
        X = X[:, self.idx]
        if self.stats_mode == "checkpoint":
            runs = self.dataset.run_index[np.asarray(indices, dtype=np.int64)]
            raw = (
                X * self.dataset._scale[runs][:, self.idx, None]
                + self.dataset._center[runs][:, self.idx, None]
            )
            X = (raw - self._center) / self._scale  # (n_channels, 1) each
        return np.ascontiguousarray(X, dtype=np.float32), Y


def cross_subject_baselines(view, indices) -> dict[str, np.ndarray]:
    """``train_mean`` and ``events`` baselines with each subject fitted on the others."""
    subj = np.asarray(view.subject)[indices]
    subjects = np.unique(subj)
    if subjects.size < 2:
        logger.warning(
            "One subject only: the cross-subject baselines (train_mean, events) are skipped."
        )
        return {}
    out = {"train_mean": np.zeros((indices.size, view.mask.sum()), np.float32)}
    has_events = any(len(view.events(int(r))) for r in np.unique(view.run_index[indices]))
    if has_events:
        out["events"] = np.zeros_like(out["train_mean"])
    for s in subjects:
        test_sel = subj == s
        train_idx, test_idx = indices[~test_sel], indices[test_sel]
        out["train_mean"][test_sel] = baselines.train_mean(view, train_idx, test_idx.size)
        if has_events:
            out["events"][test_sel] = baselines.event_regression(view, train_idx, test_idx)
    return out


def evaluate_checkpoint(
    ckpt_path, data, *, stats: str = "subject", device="cpu", progress: bool = True
) -> dict:
    """Score a checkpoint on every pair of a dataset, beside the baselines.

    The data is cached with the checkpoint's own preprocessing (rate, band-pass, target,
    window, mask). Baselines that need training data are fitted across subjects of the
    evaluated dataset (each subject predicted from the others).

    Returns
    -------
    result : dict
        ``{"metrics": {name: {...}}, "n_pairs": int, "checkpoint": str, "stats": str}``.
    """
    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.data import load_pairs

    from .run import simulation_truth

    ckpt = load_checkpoint(ckpt_path, map_location=device)
    pre = ckpt.preprocessing
    norm_method = (pre.get("norm") or {}).get("method", "zscore")
    dataset = load_pairs(
        data,
        sfreq=ckpt.sfreq,
        l_freq=pre.get("l_freq"),
        h_freq=pre.get("h_freq"),
        target=pre.get("target", "psc"),
        norm=norm_method,
        mask=np.asarray(ckpt.mask),
        winsize=ckpt.winsize,
        progress=progress,
        **bold_options(ckpt.metadata.get("train_config", {})),
    )
    view = CheckpointView(dataset, ckpt, stats=stats)
    idx = np.arange(len(dataset))
    if idx.size == 0:
        raise ValueError(f"'{data}': no (window, volume) pairs for a {ckpt.winsize:g} s window.")
    split = Split(name="evaluate", train=np.zeros(0, int), val=np.zeros(0, int), test=idx)
    y = baselines.targets(view, idx)
    subj_mean = baselines.subject_mean(view, idx)
    ceiling = noise_ceiling(view, split, simulation_truth(dataset))
    preds = {"subject_mean": subj_mean, **cross_subject_baselines(view, idx)}
    preds[ckpt.model_name] = predict(ckpt.model, view, idx, device=ckpt.device)
    results = {
        name: metrics.score(
            p, y, subject_mean=subj_mean, mask=np.asarray(dataset.mask), ceiling=ceiling
        )
        for name, p in preds.items()
    }
    return {
        "checkpoint": str(ckpt.path),
        "model": ckpt.model_name,
        "data": str(data),
        "stats": stats,
        "n_pairs": int(idx.size),
        "metrics": results,
        "noise_ceiling_r_mean": None if ceiling is None else float(ceiling.mean()),
    }
