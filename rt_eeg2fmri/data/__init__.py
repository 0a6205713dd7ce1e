"""Data layer: the ``Session`` model, readers, the ``Preprocessing`` record and its two chains, the window cache."""

from .bold import BoldChain, default_mask, targets_to_volume
from .cache import build_cache, load_pairs
from .dataset import RunInfo, RunRef, check_grid, find_pooled_runs, find_runs, read_session
from .eeg_chain import EEGChain
from .eeg_io import read_eeg, scanner_onsets
from .norm import NormStats, channel_stats
from .pairs import PairDataset
from .preprocessing import Preprocessing
from .session import Session
from .triggers import TriggerChannel
from .windows import WindowIndex, window_pairs

__all__ = [
    "BoldChain",
    "EEGChain",
    "NormStats",
    "PairDataset",
    "Preprocessing",
    "RunInfo",
    "RunRef",
    "Session",
    "TriggerChannel",
    "WindowIndex",
    "build_cache",
    "channel_stats",
    "check_grid",
    "default_mask",
    "find_pooled_runs",
    "find_runs",
    "load_pairs",
    "read_eeg",
    "read_session",
    "scanner_onsets",
    "targets_to_volume",
    "window_pairs",
]
