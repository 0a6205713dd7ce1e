"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node N -m apps.cli train ...`` sets ``RANK``/``WORLD_SIZE``; the
process group uses NCCL on CUDA and gloo on CPU. Each rank trains on its shard of the
training pairs; validation losses are all-reduced so every rank early-stops together;
only rank 0 writes checkpoints and reports.
"""

from __future__ import annotations

import os

import torch


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (torch.distributed.run) started this process, at any world size."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> tuple[int, int]:
    """Join the process group when launched by ``torchrun``; return ``(rank, world_size)``.

    A world of one under ``torchrun`` joins too, so that its DDP and NCCL path runs.
    """
    if not launched_by_torchrun():
        return 0, 1
    if not torch.distributed.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def in_group() -> bool:
    """Whether this process is in a process group (launched by ``torchrun`` and joined)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the process group; ``(0, 1)`` outside one."""
    if in_group():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def backend() -> str | None:
    """The process group's backend (``nccl``, ``gloo``), or None outside one."""
    if in_group():
        return str(torch.distributed.get_backend())
    return None


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if in_group():
        torch.distributed.barrier()


def is_main() -> bool:
    """Whether this process writes outputs (rank 0, or not distributed)."""
    return rank_and_world()[0] == 0


def shutdown() -> None:
    """Leave the process group."""
    if in_group():
        torch.distributed.destroy_process_group()
