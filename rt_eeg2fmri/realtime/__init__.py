"""Real-time path: LSL ingest into a ring buffer, scheduling, outputs."""

from .channels import map_channels, unit_scales
from .inlet import EEGConsumer, Health
from .resample import PolyphaseResampler
from .resolve import resolve_eeg_stream
from .ring import RingBuffer, TorchRingMirror

__all__ = [
    "EEGConsumer",
    "Health",
    "PolyphaseResampler",
    "RingBuffer",
    "TorchRingMirror",
    "map_channels",
    "resolve_eeg_stream",
    "unit_scales",
]
