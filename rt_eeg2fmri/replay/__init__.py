"""Replay recorded sessions as live LSL streams (EEG, markers, measured volumes)."""

from .player import Replay
from .sources import load_recording
from .xdf import read_xdf

__all__ = ["Replay", "load_recording", "read_xdf"]
