"""Real-time path: LSL ingest into a ring buffer, scheduling, outputs."""

from .inlet import EEGConsumer, Health
from .resolve import resolve_eeg_stream
from .ring import RingBuffer, TorchRingMirror

__all__ = [
    "EEGConsumer",
    "Health",
    "RingBuffer",
    "TorchRingMirror",
    "resolve_eeg_stream",
]
