"""Data layer: the ``Session`` model, dataset readers, windowing and preprocessing."""

from .cache import build_cache, load_pairs
from .dataset import RunInfo, RunRef, check_grid, find_runs, read_session
from .eeg_io import read_eeg, scanner_onsets
from .pairs import PairDataset
from .preprocessing import (
    NormStats,
    bandpass,
    bold_targets,
    channel_stats,
    normalize,
    resample,
    targets_to_volume,
)
from .session import Session
from .windows import WindowIndex, window_pairs

__all__ = [
    "NormStats",
    "PairDataset",
    "RunInfo",
    "RunRef",
    "Session",
    "WindowIndex",
    "bandpass",
    "bold_targets",
    "build_cache",
    "channel_stats",
    "check_grid",
    "find_runs",
    "load_pairs",
    "normalize",
    "read_eeg",
    "read_session",
    "resample",
    "scanner_onsets",
    "targets_to_volume",
    "window_pairs",
]
