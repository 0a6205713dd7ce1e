"""Honest evaluation: every model and every baseline scored on the same test pairs."""

from __future__ import annotations

import numpy as np

from rt_eeg2fmri._logging import logger

from . import baselines, metrics
from .loop import predict
from .splits import Split

#: Baselines fitted on a split's training part (:func:`score` adds the subject mean).
BASELINES = ("train_mean", "events")


def baseline_predictions(dataset, split: Split, *, which=BASELINES) -> dict[str, np.ndarray]:
    """Predictions of the trivial baselines on ``split.test`` (fitted on ``split.train``)."""
    out = {}
    for name in which:
        if name == "train_mean":
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


def noise_ceiling(dataset, indices, truth_targets, measured) -> np.ndarray | None:
    """Voxelwise r between the EEG-predictable ground truth and the measured targets of ``indices``.

    ``truth_targets(run_index) -> (n_volumes, n_voxels)`` gives, for a simulated run, the
    EEG-predictable signal in target units (:func:`rt_eeg2fmri.sim.truth.truth_targets`);
    ``None`` when the data has no ground truth. ``measured`` are the targets of
    ``indices``, shape (n, n_voxels).
    """
    if truth_targets is None:
        return None
    run_of, vol_of = dataset.run_index[indices], dataset.volume[indices]
    pred = np.empty((indices.size, dataset.n_voxels), np.float32)
    for r in np.unique(run_of):
        tt = truth_targets(int(r))
        if tt is None:
            return None
        sel = run_of == r
        pred[sel] = tt[vol_of[sel]]
    return metrics.voxelwise_r(pred, measured)


def score(dataset, indices, predictions: dict, *, truth_targets=None, ssim: bool = True) -> dict:
    """Score predictions of the pairs ``indices`` beside the test subjects' mean volume.

    The one scoring function of ``train`` and ``evaluate``.

    Parameters
    ----------
    dataset : PairDataset
    indices : array of int, shape (n,)
        The scored pairs.
    predictions : dict of str to array of shape (n, n_voxels)
        Models and baselines; ``subject_mean`` is added.
    truth_targets : callable | None
        For the noise ceiling (:func:`noise_ceiling`).
    ssim : bool
        Also compute the structural similarity of the volumes.

    Returns
    -------
    result : dict
        ``{"metrics": {name: {metric: value}}, "voxel_r": {name: array}, "ceiling_r_mean":
        float | None}``; ``voxel_r["noise_ceiling"]`` when there is a ceiling.
    """
    indices = np.asarray(indices)
    y = baselines.targets(dataset, indices)
    subj_mean = baselines.subject_mean(dataset, indices)
    ceiling = noise_ceiling(dataset, indices, truth_targets, y)
    mask = np.asarray(dataset.mask)
    results, voxel_r = {}, {}
    for name, pred in {"subject_mean": subj_mean, **predictions}.items():
        results[name] = metrics.score(
            pred, y, subject_mean=subj_mean, mask=mask, ceiling=ceiling, ssim=ssim
        )
        voxel_r[name] = metrics.voxelwise_r(pred, y)
    if ceiling is not None:
        voxel_r["noise_ceiling"] = ceiling
    return {
        "metrics": results,
        "voxel_r": voxel_r,
        "ceiling_r_mean": None if ceiling is None else float(ceiling.mean()),
    }


def evaluate_split(
    dataset,
    split: Split,
    models: dict,
    *,
    truth_targets=None,
    device=None,
    batch_size: int = 32,
    ssim: bool = True,
    stacked: tuple[str, np.ndarray] | None = None,
) -> dict:
    """Score ``models`` (name → trained module) and the baselines on ``split.test``.

    The baselines that need training data are fitted on ``split.train``. ``stacked``
    (a model's name and its predictions of ``split.val``) adds ``NAME+events``: that
    model beside the task events, weighed per voxel on the validation pairs
    (:func:`trainer.baselines.model_and_events`; the training pairs' predictions would be
    fitted ones).

    Returns
    -------
    result : dict
        :func:`score`'s result with ``"split"`` added.
    """
    preds = baseline_predictions(dataset, split)
    for name, model in models.items():
        preds[name] = predict(model, dataset, split.test, batch_size=batch_size, device=device)
    if stacked is not None and "events" in preds and split.val.size:
        name, val_pred = stacked
        preds[f"{name}+events"] = baselines.model_and_events(
            dataset, val_pred, split.val, preds[name], split.test
        )
    res = score(dataset, split.test, preds, truth_targets=truth_targets, ssim=ssim)
    return {"split": split.describe(), **res}


def cross_subject_baselines(dataset, indices) -> dict[str, np.ndarray]:
    """``train_mean`` and ``events`` baselines with each subject fitted on the others."""
    subj = np.asarray(dataset.subject)[indices]
    subjects = np.unique(subj)
    if subjects.size < 2:
        logger.warning(
            "One subject only: the cross-subject baselines (train_mean, events) are skipped."
        )
        return {}
    out = {"train_mean": np.zeros((indices.size, dataset.n_voxels), np.float32)}
    has_events = any(len(dataset.events(int(r))) for r in np.unique(dataset.run_index[indices]))
    if has_events:
        out["events"] = np.zeros_like(out["train_mean"])
    for s in subjects:
        test_sel = subj == s
        train_idx, test_idx = indices[~test_sel], indices[test_sel]
        out["train_mean"][test_sel] = baselines.train_mean(dataset, train_idx, test_idx.size)
        if has_events:
            out["events"][test_sel] = baselines.event_regression(dataset, train_idx, test_idx)
    return out


def cross_subject_with_events(
    dataset, indices, pred: np.ndarray, *, events: bool = True
) -> np.ndarray:
    """A model's prediction beside the task events, each subject weighed on the others.

    See :func:`trainer.baselines.model_and_events`: per voxel, the model's prediction and
    the event regressors fitted on the other subjects' pairs, applied to the subject's;
    ``events=False``: the prediction's gain and offset alone.
    """
    subj = np.asarray(dataset.subject)[indices]
    out = np.zeros_like(pred, dtype=np.float32)
    for s in np.unique(subj):
        test_sel = subj == s
        out[test_sel] = baselines.model_and_events(
            dataset, pred[~test_sel], indices[~test_sel], pred[test_sel], indices[test_sel],
            events=events,
        )  # fmt: skip
    return out


def evaluate_checkpoint(
    ckpt_path,
    data,
    *,
    stats: str = "subject",
    subjects=None,
    runs=None,
    device="cpu",
    progress: bool = True,
    reader: dict | None = None,
    truth=None,
    roi=None,
    roi_labels=None,
    ssim: bool = True,
) -> dict:
    """Score a checkpoint on the pairs of a dataset, beside the baselines.

    The data is cached with the checkpoint's own ``Preprocessing``, channels and mask (the
    training run's cache when it is the same data). Baselines that need training data
    are fitted across the evaluated subjects (each subject predicted from the others).

    Parameters
    ----------
    ckpt_path : path-like
    data : path-like
        Dataset folder.
    stats : ``"subject"`` | ``"checkpoint"``
        EEG normalisation: each subject's own statistics (unsupervised calibration, as the
        trainer scores its folds) or the checkpoint's pooled training statistics (what
        ``rt-eeg2fmri stream`` uses without ``--calibrate``).
    subjects, runs : list of str | None
        The selection scored (as ``train``'s ``--subjects`` and ``--runs``).
    device : str
    progress : bool
    reader : dict | None
        Reader options, e.g. ``{"channels": [...]}`` to read only some recorded channels
        (the others are interpolated by the montage stage, as a smaller cap would be).
    truth : path-like | None
        External ground-truth folder for the noise ceiling (layout in
        :mod:`rt_eeg2fmri.sim.truth`); default: a simulated dataset's own.
    roi, roi_labels : path-like | None
        An atlas (label image or one mask) and its look-up table: adds ``regions``, the
        mean voxelwise r of every model (and of the noise ceiling) in each region.
    ssim : bool
        Also compute each model's mean SSIM over the volumes (the slowest metric).

    Returns
    -------
    result : dict
        ``{"metrics": {name: {...}}, "n_pairs": int, "checkpoint": str, "stats": str,
        "noise_ceiling_r_mean": float | None, ...}``.
    """
    from rt_eeg2fmri._checks import check_option
    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.sim.truth import truth_targets

    from .data import load_dataset

    check_option(stats, "stats", ("subject", "checkpoint"))
    ckpt = load_checkpoint(ckpt_path, map_location=device)
    regions = None
    if roi is not None:
        from rt_eeg2fmri.realtime.roi import Regions

        regions = Regions(roi, grid_shape=ckpt.grid_shape, affine=ckpt.affine, mask=ckpt.mask,
                          labels=roi_labels)  # fmt: skip
    try:
        dataset = load_dataset(
            data,
            ckpt.preprocessing,
            subjects=subjects,
            runs=runs,
            ch_names=ckpt.ch_names,
            mask=ckpt.mask,
            progress=progress,
            reader=reader,
        )
    except ValueError as err:
        raise ValueError(f"checkpoint '{ckpt.path}' cannot be scored on '{data}': {err}") from None
    check_grid(dataset, ckpt)
    view = dataset.with_stats(ckpt.norm_stats if stats == "checkpoint" else None)
    idx = np.arange(len(view))
    if idx.size == 0:
        raise ValueError(f"'{data}': no (window, volume) pairs for a {ckpt.winsize:g} s window.")
    preds = cross_subject_baselines(view, idx)
    preds[ckpt.model_name] = predict(ckpt.model, view, idx, device=ckpt.device)
    if ckpt.task is not None:  # the task part, from the runs' events (live: a marker stream)
        preds[ckpt.model_name] += baselines.task_part(view, idx, ckpt.task)
    base = preds[ckpt.model_name]
    if "train_mean" in preds:  # two subjects or more: a readout weighed on the others
        preds[f"{ckpt.model_name} rescaled"] = cross_subject_with_events(
            view, idx, base, events=False
        )
    if "events" in preds:  # what the EEG adds to the task: both weighed on the other subjects
        preds[f"{ckpt.model_name}+events"] = cross_subject_with_events(view, idx, base)
    res = score(view, idx, preds, truth_targets=truth_targets(dataset, truth), ssim=ssim)
    out = {
        "checkpoint": str(ckpt.path),
        "model": ckpt.model_name,
        "data": [str(d) for d in data] if isinstance(data, list | tuple) else str(data),
        "stats": stats,
        "n_pairs": int(idx.size),
        "n_voxels": int(view.n_voxels),
        "subjects": sorted(set(view.subject.tolist())),
        "metrics": res["metrics"],
        "noise_ceiling_r_mean": res["ceiling_r_mean"],
    }
    if regions is not None:
        out["regions"] = region_r(res["voxel_r"], regions, np.asarray(ckpt.mask))
    return out


def region_r(voxel_r: dict, regions, mask: np.ndarray) -> dict:
    """``{name: {region: mean voxelwise r}}`` of each model (and ``noise_ceiling``)."""
    out = {}
    for name, r in voxel_r.items():
        volume = np.zeros(mask.shape, np.float64)
        volume[mask] = np.nan_to_num(np.asarray(r, np.float64))
        out[name] = dict(zip(regions.names, regions.means(volume).tolist(), strict=True))
    return out


def check_grid(dataset, ckpt) -> None:
    """Raise ``ValueError`` unless the data's grid and mask are the checkpoint's."""
    from rt_eeg2fmri.grid import same_grid

    if not same_grid(dataset.grid_shape, dataset.affine, ckpt.grid_shape, ckpt.affine):
        raise ValueError(
            f"checkpoint '{ckpt.path}' predicts on grid {tuple(ckpt.grid_shape)} but the data "
            f"is on grid {tuple(dataset.grid_shape)} (affines "
            f"{np.asarray(ckpt.affine).tolist()} vs {np.asarray(dataset.affine).tolist()})."
        )
    if not np.array_equal(np.asarray(dataset.mask, bool), np.asarray(ckpt.mask, bool)):
        raise ValueError(f"checkpoint '{ckpt.path}': its mask differs from the evaluation data's.")
