"""The training loop: mini-batches from a ``PairDataset``, early stopping on validation loss.

Checkpoints are picked on the validation part of a split; the test part is never seen
here. Supports resume (a ``last.pt`` training state per fold), CUDA mixed precision and
data-parallel training under ``torchrun`` (DistributedDataParallel, gloo on CPU).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rt_eeg2fmri._device import resolve_device
from rt_eeg2fmri._io import atomic_path
from rt_eeg2fmri._logging import logger
from rt_eeg2fmri.models import build_model

from .config import TrainConfig
from .distributed import in_group, rank_and_world
from .splits import Split


@dataclass
class FitResult:
    """What training one fold produced."""

    model: nn.Module
    best_val_loss: float
    best_epoch: int
    history: list = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed numpy and torch; make CPU kernels deterministic."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def model_args_for(cfg: TrainConfig, name: str) -> dict:
    """Architecture overrides for ``name``.

    ``cfg.model_args`` is either flat (it applies to ``cfg.model``) or keyed by model
    name (``{"conv": {...}, "fc": {...}}``) for runs that train several models.
    """
    from rt_eeg2fmri.models import MODELS

    args = cfg.model_args or {}
    if any(k in MODELS and isinstance(v, dict) for k, v in args.items()):
        return dict(args.get(name, {}))
    return dict(args) if name == cfg.model else {}


def model_config_for(dataset, cfg: TrainConfig) -> dict:
    """The architecture config implied by the data (channels, window, rate, grid) + overrides."""
    from dataclasses import fields

    from rt_eeg2fmri.models import MODELS

    data = {
        "n_chans": len(dataset.ch_names),
        "n_times": int(dataset.n_times),
        "sfreq": float(dataset.sfreq),
        "n_voxels": int(np.asarray(dataset.mask).sum()),
        "grid_shape": [int(s) for s in dataset.grid_shape],
        "t_r": float(dataset.t_r),
    }
    accepted = {f.name for f in fields(MODELS[cfg.model][1])} if cfg.model in MODELS else set(data)
    return {**{k: v for k, v in data.items() if k in accepted}, **model_args_for(cfg, cfg.model)}


def build_for(dataset, cfg: TrainConfig) -> nn.Module:
    """Build the configured architecture for ``dataset`` with its mask."""
    model = build_model(cfg.model, model_config_for(dataset, cfg))
    if hasattr(model, "set_mask"):
        model.set_mask(torch.as_tensor(np.asarray(dataset.mask)))
    return model


def iterate_batches(
    dataset, indices: np.ndarray, batch_size: int, *, device, shuffle_seed=None, threads: int = 0
):
    """Yield ``(x, y)`` tensors on ``device`` for ``indices`` in batches.

    ``threads`` > 0 prepares up to ``threads + 1`` batches ahead on that many threads
    (``get_batch``'s array work releases the GIL), in page-locked memory on CUDA so the
    copies to the GPU are asynchronous; the batches and their order are the same.
    """
    idx = np.asarray(indices)
    if shuffle_seed is not None:
        idx = np.random.default_rng(shuffle_seed).permutation(idx)
    device = torch.device(device)
    starts = range(0, idx.size, batch_size)
    if threads <= 0:
        for i in starts:
            x, y = dataset.get_batch(idx[i : i + batch_size])
            yield (
                torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True),
                torch.from_numpy(np.ascontiguousarray(y)).to(device, non_blocking=True),
            )
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pin = device.type == "cuda"

    def load(i: int):
        rows = idx[i : i + batch_size]
        x = torch.empty((rows.size, dataset.n_chans, dataset.n_times), pin_memory=pin)
        y = torch.empty((rows.size, dataset.n_voxels), pin_memory=pin)
        dataset.get_batch(rows, out=(x.numpy(), y.numpy()))
        return x, y

    pool = ThreadPoolExecutor(threads, thread_name_prefix="batches")
    todo, ahead = iter(starts), deque()
    try:
        for i in todo:
            ahead.append(pool.submit(load, i))
            if len(ahead) > threads:
                break
        while ahead:
            x, y = ahead.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                ahead.append(pool.submit(load, nxt))
            # from page-locked memory the copies are queued on the stream; the caching
            # host allocator keeps each block until its copy is done
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@torch.no_grad()
def predict(model: nn.Module, dataset, indices, *, batch_size: int = 32, device=None) -> np.ndarray:
    """Predictions for ``indices`` as an array of shape (n, n_voxels), float32."""
    device = device or next(iter(model.buffers()), torch.zeros(0)).device
    model.eval()
    out = []
    for x, _ in iterate_batches(dataset, indices, batch_size, device=device):
        out.append(model(x).float().cpu().numpy())
    n_voxels = int(np.asarray(dataset.mask).sum())
    return np.concatenate(out) if out else np.zeros((0, n_voxels), np.float32)


def _init_head(model, dataset, train_idx, seed: int) -> None:
    init = getattr(model, "init_from_pca", None)
    if init is None or getattr(model.config, "head", None) != "basis":
        return
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(train_idx, size=min(2000, train_idx.size), replace=False))
    targets = np.stack([dataset[int(i)][1] for i in pick])
    init(targets)


def _fit_ridge(model, dataset, split: Split, cfg: TrainConfig, device) -> FitResult:
    t0 = time.perf_counter()
    train = iterate_batches(dataset, split.train, cfg.batch_size, device=device)
    val = iterate_batches(dataset, split.val, cfg.batch_size, device=device)
    info = model.fit_streaming(train, val_batches=val) or {}
    val_loss = float(info.get("val_loss", float("nan")))
    hist = [
        {
            "epoch": 0,
            "train_loss": float(info.get("train_loss", float("nan"))),
            "val_loss": val_loss,
        }
    ]
    return FitResult(model.eval(), val_loss, 0, hist, time.perf_counter() - t0)


def _val_loss(model, dataset, indices, cfg, device, amp) -> float:
    model.eval()
    total, n = torch.zeros((), dtype=torch.float64, device=device), 0
    batches = iterate_batches(
        dataset, indices, cfg.batch_size, device=device, threads=cfg.loader_threads
    )
    with torch.no_grad():
        for x, y in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = model(x)
            total += ((pred.float() - y) ** 2).sum()
            n += y.numel()
    total = float(total)
    if in_group():  # NCCL reduces CUDA tensors only
        t = torch.tensor([total, n], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        total, n = float(t[0]), int(t[1])
    return total / max(n, 1)


def fit(
    dataset,
    split: Split,
    cfg: TrainConfig,
    *,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``cfg.model`` on ``split.train``, early-stopping on ``split.val``.

    Parameters
    ----------
    dataset : PairDataset
        Windows and targets (``rt_eeg2fmri.data.PairDataset``).
    split : Split
        The fold; ``split.test`` is not used here.
    cfg : TrainConfig
    workdir : path-like | None
        Where ``last.pt`` (resume state) is kept; resume happens when it exists and
        matches the config.

    Returns
    -------
    result : FitResult
        The model with the weights of the best validation epoch.
    """
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    rank, world = rank_and_world()
    model = build_for(dataset, cfg).to(device)
    if cfg.model == "ridge":
        return _fit_ridge(model, dataset, split, cfg, device)
    _init_head(model, dataset, split.train, cfg.seed)
    model.to(device)
    amp = bool(cfg.amp and device.type == "cuda")
    net: nn.Module = model
    if in_group():  # also a world of one under torchrun, so that the DDP path runs
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    state_path = Path(workdir) / "last.pt" if workdir else None
    history: list[dict] = []
    best = (math.inf, -1, None)
    start_epoch, stale = 0, 0
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if _same_run(state.get("config"), cfg) and state.get("split") == split.name:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            history, start_epoch, stale = state["history"], state["epoch"] + 1, state["stale"]
            best = (state["best_loss"], state["best_epoch"], state["best_state"])
            logger.info("Resuming %s at epoch %d from '%s'.", split.name, start_epoch, state_path)
        else:
            logger.warning("Ignoring '%s': it was written for another config or split.", state_path)
    t0 = time.perf_counter()
    # equal shards, so every rank runs the same number of batches (DDP all-reduces each step)
    train_idx = split.train[rank::world][: split.train.size // world] if world > 1 else split.train
    for epoch in range(start_epoch, cfg.epochs):
        if stale >= cfg.patience:
            break
        net.train()
        batches = iterate_batches(
            dataset, train_idx, cfg.batch_size, device=device,
            shuffle_seed=cfg.seed * 1000 + epoch, threads=cfg.loader_threads,
        )  # fmt: skip
        n_batches = math.ceil(train_idx.size / cfg.batch_size)
        if cfg.max_batches:
            n_batches = min(n_batches, cfg.max_batches)
        bar = _progress(
            n_batches, f"{split.name} epoch {epoch + 1}/{cfg.epochs}", progress and rank == 0
        )
        # the loss summed on the device: reading it every step would make the CPU wait for
        # the GPU before it queues the next batch
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        for b, (x, y) in enumerate(batches):
            if b >= n_batches:
                break
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = net(x, y) if getattr(model, "teacher_forcing", False) else net(x)
                loss = nn.functional.mse_loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss.detach() * y.shape[0]
            count += y.shape[0]
            bar.update(1)
            if b % 20 == 0 or b == n_batches - 1:
                bar.set_postfix(loss=f"{float(total) / count:.4g}")
        batches.close()  # stops the threads preparing batches beyond max_batches
        bar.close()
        total = float(total)
        sched.step()
        val_loss = _val_loss(model, dataset, split.val, cfg, device, amp)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss})
        logger.info(
            "%s epoch %d: train %.5g, val %.5g",
            split.name,
            epoch + 1,
            history[-1]["train_loss"],
            val_loss,
        )
        if val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
            stale = 0
        else:
            stale += 1
        if state_path is not None and rank == 0:
            _save_state(state_path, model, opt, sched, cfg, split, epoch, history, stale, best)
    if best[2] is not None:
        model.load_state_dict(best[2])
    return FitResult(model.eval(), best[0], best[1], history, time.perf_counter() - t0)


def _same_run(saved: dict | None, cfg: TrainConfig) -> bool:
    """Whether a saved training state is of this config (the loader's threads aside)."""
    mine = {k: v for k, v in cfg.to_dict().items() if k != "loader_threads"}
    return saved is not None and {k: v for k, v in saved.items() if k != "loader_threads"} == mine


def _save_state(path, model, opt, sched, cfg, split, epoch, history, stale, best) -> None:
    state = {
        "config": cfg.to_dict(),
        "split": split.name,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": history,
        "stale": stale,
        "best_loss": best[0],
        "best_epoch": best[1],
        "best_state": best[2],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
