"""A physiologically grounded EEG-fMRI simulator with known ground truth.

``simulate_dataset(out_dir, preset="tiny")`` writes an auditory/visual oddball dataset in
BIDS (and/or the ds000116 legacy layout) with the ground truth in
``derivatives/simulation``; :func:`load_truth` and :func:`noise_ceiling` read it back.
"""

from .dataset import simulate_dataset
from .presets import PRESETS, SimConfig, resolve_config
from .regions import REGIONS
from .truth import load_truth, noise_ceiling, read_in_scanner_run

__all__ = [
    "PRESETS",
    "REGIONS",
    "SimConfig",
    "load_truth",
    "noise_ceiling",
    "read_in_scanner_run",
    "resolve_config",
    "simulate_dataset",
]
