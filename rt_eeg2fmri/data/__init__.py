"""Data layer: the ``Session`` model, dataset readers, windowing and preprocessing."""

from .dataset import RunInfo, RunRef, check_grid, find_runs, read_session
from .eeg_io import read_eeg, scanner_onsets
from .session import Session
from .windows import WindowIndex, window_pairs

__all__ = [
    "RunInfo",
    "RunRef",
    "Session",
    "WindowIndex",
    "check_grid",
    "find_runs",
    "read_eeg",
    "read_session",
    "scanner_onsets",
    "window_pairs",
]
