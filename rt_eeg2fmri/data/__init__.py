"""Data layer: the ``Session`` model, dataset readers, windowing and preprocessing."""

from .session import Session
from .windows import WindowIndex, window_pairs

__all__ = ["Session", "WindowIndex", "window_pairs"]
