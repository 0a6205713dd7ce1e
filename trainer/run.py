"""One training run end to end.

data → folds → fit every model → evaluate beside the baselines → checkpoints + report.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from rt_eeg2fmri._io import write_text_atomic
from rt_eeg2fmri._logging import logger

from .config import TrainConfig
from .data import load_dataset
from .evaluate import evaluate_split, region_r
from .loop import fit, predict, resolve_device
from .metrics import voxelwise_r
from .report import plot_losses, plot_maps, write_report
from .splits import make_splits


def versions() -> dict:
    """Package versions recorded in checkpoints and reports."""
    import torch

    import rt_eeg2fmri

    return {
        "rt_eeg2fmri": rt_eeg2fmri.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_and_evaluate(
    data,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    models: list[str] | None = None,
    progress: bool = True,
    save_checkpoints: bool = True,
    reader: dict | None = None,
    truth=None,
    roi=None,
    roi_labels=None,
) -> dict:
    """Train ``models`` (default: ``[cfg.model]``) on every fold of ``cfg.split``; evaluate.

    ``data`` is a dataset folder, a list of folders pooled into one dataset (subjects
    keep their dataset's prefix, every cap is interpolated onto ``cfg.channels`` or the
    first run's channels), or an opened ``PairDataset``.

    Each fold's checkpoint is chosen on its validation part; the report gives every model
    beside every baseline on the same test pairs.

    ``roi`` (an atlas: a label image or one mask) with ``roi_labels`` (its names) adds the
    mean voxelwise r of every model in each region; a simulated dataset's own regions are
    the default.

    ``truth`` is an external ground-truth folder for the noise ceiling
    (:mod:`rt_eeg2fmri.sim.truth` documents its layout). ``reader`` holds dataset-reader
    options (``marker``, ``t_r``, ``eeg_derivatives``,
    ``layout``, ...; see :func:`rt_eeg2fmri.data.find_runs`).

    Returns
    -------
    report : dict
        The content of ``metrics.json``.
    """
    from dataclasses import replace

    from rt_eeg2fmri._device import device_name
    from rt_eeg2fmri.checkpoint import save_checkpoint

    from .distributed import backend, barrier, init_from_env, is_main

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    from rt_eeg2fmri.sim.truth import truth_targets

    rank, world = init_from_env(cfg.device)
    select = {
        "subjects": cfg.subjects,
        "runs": cfg.runs,
        "ch_names": cfg.channels,
        "mask": cfg.mask,
        "reader": reader,
    }
    if rank == 0:  # one rank builds the cache, the others open it
        dataset = load_dataset(data, cfg.preprocessing, progress=progress, **select)
    barrier()
    if rank != 0:
        dataset = load_dataset(data, cfg.preprocessing, progress=False, **select)
    split_opts = (
        {"test_subjects": cfg.test_subjects} if cfg.split == "loso" and cfg.test_subjects else {}
    )
    if cfg.split == "random":
        split_opts = {"seed": cfg.seed}
    folds = make_splits(cfg.split, dataset.subject, dataset.run_index, **split_opts)
    truth = truth_targets(dataset, truth)
    regions = _regions(dataset, roi, roi_labels)
    device = resolve_device(cfg.device)
    names = models or [cfg.model]
    fold_results, histories = [], {}
    for split in folds:
        logger.info(
            "Fold %s: %d train, %d validation, %d test pairs.",
            split.name,
            split.train.size,
            split.val.size,
            split.test.size,
        )
        trained, val_preds = {}, {}
        val_y = dataset.get_targets(split.val) if split.val.size else None
        for name in names:
            mcfg = replace(cfg, model=name)
            result = fit(
                dataset, split, mcfg, workdir=out_dir / split.name / name, progress=progress
            )
            trained[name] = result.model
            histories[f"{name}/{split.name}"] = result.history
            if val_y is not None and (save_checkpoints or len(names) > 1):
                # one pass over the validation pairs: the showcase voxel and the selection
                val_preds[name] = predict(result.model, dataset, split.val, device=device)
            if save_checkpoints:
                save_checkpoint(
                    out_dir / split.name / f"{name}.pt",
                    result.model,
                    **checkpoint_fields(dataset, split),
                    metadata={
                        "train_config": mcfg.to_dict(),
                        "split": split.describe(),
                        "data_fingerprint": dataset.fingerprint,
                        "best_epoch": result.best_epoch,
                        "best_val_loss": result.best_val_loss,
                        "showcase": showcase_voxel(val_preds.get(name), val_y, dataset, split),
                        "train_seconds": result.seconds,
                        "versions": versions(),
                    },
                )
        if not is_main():
            continue
        scored = dict(trained)
        chosen = None
        if len(val_preds) > 1:
            chosen, val_r = select_on_validation(split, val_preds, val_y)
            scored[SELECTED] = trained[chosen]
        stacked = None  # what the EEG adds to the task: weighed on the validation pairs
        if chosen is not None:
            stacked = (SELECTED, val_preds[chosen])
        elif len(val_preds) == 1:
            stacked = next(iter(val_preds.items()))
        res = evaluate_split(dataset, split, scored, truth_targets=truth, device=device,
                             stacked=stacked)  # fmt: skip
        if chosen is not None:
            res["selected"] = {"model": chosen, "val_r_mean": val_r}
        if regions is not None:
            res["regions"] = region_r(res["voxel_r"], regions, np.asarray(dataset.mask))
        fold_results.append(res)
        maps = {k: v for k, v in res["voxel_r"].items() if k in names or k == "noise_ceiling"}
        plot_maps(
            out_dir / f"r_map_{split.name}.png", maps, dataset.mask, title="voxelwise r", vmax=1.0
        )
    barrier()
    if not is_main():
        return {}
    plot_losses(out_dir / "loss_curves.png", histories)
    report = write_report(
        out_dir,
        folds=fold_results,
        histories=histories,
        extra={
            "config": cfg.to_dict(),
            "models": names,
            "data": {
                "datasets": [str(d) for d in _as_list(data)],
                "reader": dict(reader or {}),
                "fingerprint": dataset.fingerprint,
                "n_pairs": len(dataset),
                "n_voxels": dataset.n_voxels,
                "grid_voxels": int(np.prod(dataset.grid_shape)),
                "sfreq": dataset.sfreq,
            },
            "device": str(device),
            "world_size": world,
            "distributed_backend": backend(),
            "device_name": device_name(device),
            "seconds": time.perf_counter() - t_start,
            "versions": versions(),
            "host": {
                "machine": platform.machine(),
                "processor": platform.processor(),
                "cpus": _cpus(),
            },
        },
    )
    logger.info("Report written to '%s'.", out_dir / "report.md")
    return report


def _regions(dataset, roi, labels):
    """The atlas of the per-region report: ``roi``, else a simulated dataset's regions."""
    from rt_eeg2fmri.realtime.roi import Regions
    from rt_eeg2fmri.sim.truth import truth_atlas

    if roi is None:
        root = getattr(dataset, "root", None)
        found = truth_atlas(root) if root is not None else None
        if found is None:
            return None
        roi, labels = found
    grid = dict(grid_shape=dataset.grid_shape, affine=dataset.affine, mask=dataset.mask)
    return Regions(roi, labels=labels, **grid)


#: The report's row for the model chosen per fold on its validation subjects.
SELECTED = "selected on validation"


def select_on_validation(split, val_preds: dict, val_y: np.ndarray) -> tuple[str, dict]:
    """The model with the highest mean voxelwise r on ``split.val``, and every model's r.

    ``val_preds``: each model's predictions of the validation pairs, ``val_y`` their
    targets. Architecture selection that never sees the test pairs: the report's
    ``selected on validation`` row is what a lab would get by training every candidate
    and keeping the best on its validation subjects.
    """
    scores = {name: float(voxelwise_r(pred, val_y).mean()) for name, pred in val_preds.items()}
    chosen = max(scores, key=scores.__getitem__)
    logger.info(
        "Fold %s: %s chosen on validation (mean r %s).",
        split.name,
        chosen,
        ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
    )
    return chosen, scores


def showcase_voxel(val_pred, val_y, dataset, split) -> dict | None:
    """The voxel a demo shows, chosen on the fold's validation subject: its best r there.

    ``val_pred``, ``val_y``: the model's predictions of ``split.val`` and their targets.
    Fixed at training time, so the demo's reported r at it is not chosen on the volumes it
    reports (``ijk``: grid indices; ``mm``: world coordinates).
    """
    if val_pred is None or split.val.size < 3:
        return None
    pred, y = np.asarray(val_pred, np.float64), np.asarray(val_y, np.float64)
    varies = (pred.std(axis=0) > 0) & (y.std(axis=0) > 0)  # a flat voxel is never shown
    r = np.where(varies, voxelwise_r(pred, y), -np.inf)
    col = int(np.argmax(r))
    if not np.isfinite(r[col]):
        return None
    ijk = [int(i) for i in np.argwhere(np.asarray(dataset.mask))[col]]
    mm = (np.asarray(dataset.affine) @ np.array([*ijk, 1.0]))[:3]
    return {
        "ijk": ijk,
        "mm": [round(float(v), 2) for v in mm],
        "val_r": float(r[col]),
        "val_subjects": list(split.val_subjects),
    }


def checkpoint_fields(dataset, split) -> dict:
    """The data-dependent fields a checkpoint carries so inference needs nothing else.

    The normalisation statistics are pooled over the fold's training subjects only.
    """
    train_subjects = sorted(set(np.asarray(dataset.subject)[split.train].tolist()))
    return {
        "preprocessing": dataset.preprocessing,
        "norm_stats": dataset.subset(subjects=train_subjects).pooled_stats(),
        "ch_names": list(dataset.ch_names),
        "t_r": float(dataset.t_r),
        "grid_shape": [int(s) for s in dataset.grid_shape],
        "affine": np.asarray(dataset.affine).tolist(),
        "mask": np.asarray(dataset.mask),
    }


def _as_list(data) -> list:
    return list(data) if isinstance(data, list | tuple) else [data]


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def dump(obj, path) -> None:
    """Write JSON next to a run (helper for the CLI)."""
    write_text_atomic(path, json.dumps(obj, indent=2))
