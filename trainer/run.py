"""One training run end to end.

data → folds → fit every model → evaluate beside the baselines → checkpoints + report.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from rt_eeg2fmri._logging import logger

from .config import TrainConfig, bold_options
from .evaluate import evaluate_split
from .loop import fit, resolve_device
from .report import plot_losses, plot_maps, write_report
from .splits import make_splits


def load_dataset(data, cfg: TrainConfig, *, progress: bool = True):
    """The cached pair dataset of ``data`` (a folder or a ``PairDataset``) under ``cfg``'s preprocessing."""
    from rt_eeg2fmri.data import load_pairs

    if hasattr(data, "get_batch"):
        dataset = data
    else:
        dataset = load_pairs(
            data,
            sfreq=cfg.sfreq,
            l_freq=cfg.l_freq,
            h_freq=cfg.h_freq,
            target=cfg.target,
            norm=cfg.norm,
            winsize=cfg.winsize,
            progress=progress,
            **bold_options(cfg.to_dict()),
        )
    # one cache per dataset and preprocessing; a subject selection is a view of it
    return dataset.subset(subjects=[str(s) for s in cfg.subjects]) if cfg.subjects else dataset


def simulation_truth(dataset):
    """``run_index → EEG-predictable targets`` for simulated datasets, else ``None``."""
    try:
        from rt_eeg2fmri.data.preprocessing import run_targets
        from rt_eeg2fmri.sim.truth import load_truth
    except ImportError:
        return None
    root = getattr(dataset, "root", None)
    if root is None or not (Path(root) / "derivatives" / "simulation").is_dir():
        return None
    runs = dataset.runs

    def truth(r: int):
        row = runs[r]
        try:
            t = load_truth(
                root,
                subject=row["subject"],
                task=row["task"],
                run=row["run"],
                session=row.get("session"),
            )
        except FileNotFoundError:
            return None
        # the ceiling of smoothed, high-passed targets is that of the same truth
        return run_targets(
            t["eeg_predictable"],
            np.asarray(dataset.mask),
            affine=t["affine"],
            t_r=dataset.t_r,
            method=dataset.target,
            fwhm=dataset.params.get("fwhm"),
            high_pass=dataset.params.get("high_pass"),
        )

    return truth


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
) -> dict:
    """Train ``models`` (default: ``[cfg.model]``) on every fold of ``cfg.split``; evaluate.

    Each fold's checkpoint is chosen on its validation part; the report gives every model
    beside every baseline on the same test pairs.

    Returns
    -------
    report : dict
        The content of ``metrics.json``.
    """
    from dataclasses import replace

    from rt_eeg2fmri.checkpoint import save_checkpoint

    from .distributed import barrier, init_from_env, is_main

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rank, world = init_from_env(cfg.device)
    if rank == 0:  # one rank builds the cache, the others open it
        dataset = load_dataset(data, cfg, progress=progress)
    barrier()
    if rank != 0:
        dataset = load_dataset(data, cfg, progress=False)
    split_opts = (
        {"test_subjects": cfg.test_subjects} if cfg.split == "loso" and cfg.test_subjects else {}
    )
    if cfg.split == "random":
        split_opts = {"seed": cfg.seed}
    folds = make_splits(cfg.split, dataset.subject, dataset.run_index, **split_opts)
    truth = simulation_truth(dataset)
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
        trained = {}
        for name in names:
            mcfg = replace(cfg, model=name)
            result = fit(
                dataset, split, mcfg, workdir=out_dir / split.name / name, progress=progress
            )
            trained[name] = result.model
            histories[f"{name}/{split.name}"] = result.history
            if save_checkpoints:
                save_checkpoint(
                    out_dir / split.name / f"{name}.pt",
                    result.model,
                    **checkpoint_fields(dataset, mcfg),
                    metadata={
                        "train_config": mcfg.to_dict(),
                        "split": split.describe(),
                        "data_fingerprint": dataset.fingerprint,
                        "best_epoch": result.best_epoch,
                        "best_val_loss": result.best_val_loss,
                        "train_seconds": result.seconds,
                        "versions": versions(),
                    },
                )
        if not is_main():
            continue
        res = evaluate_split(dataset, split, trained, truth_targets=truth, device=device)
        ceiling = res["voxel_r"].get("noise_ceiling")
        res["metrics_ceiling"] = None if ceiling is None else float(ceiling.mean())
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
                "fingerprint": dataset.fingerprint,
                "n_pairs": len(dataset),
                "sfreq": dataset.sfreq,
            },
            "device": str(device),
            "world_size": world,
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


def checkpoint_fields(dataset, cfg: TrainConfig) -> dict:
    """The data-dependent fields a checkpoint carries so inference needs nothing else."""
    return {
        "norm_stats": dataset.pooled_stats().to_dict(),
        "ch_names": list(dataset.ch_names),
        "sfreq": float(dataset.sfreq),
        "winsize": float(dataset.winsize),
        "t_r": float(dataset.t_r),
        "grid_shape": [int(s) for s in dataset.grid_shape],
        "affine": np.asarray(dataset.affine).tolist(),
        "mask": np.asarray(dataset.mask),
        "target": cfg.target,
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def dump(obj, path) -> None:
    """Write JSON next to a run (helper for the CLI)."""
    Path(path).write_text(json.dumps(obj, indent=2))
