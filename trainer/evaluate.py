"""Honest evaluation: every model and every baseline scored on the same test pairs."""

from __future__ import annotations

import numpy as np

from rt_eeg2fmri._logging import logger

from . import baselines, metrics
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
