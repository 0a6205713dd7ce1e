"""The model zoo: one architecture per module, built by name.

Every model maps EEG windows (B, n_chans, n_times) to in-mask voxels (B, n_voxels);
see :func:`build_model` and :data:`MODELS`.
"""

from .calibrated import Calibrated, can_delay
from .conv import ConvConfig, ConvNet
from .fc import FCConfig, FCNet
from .heads import BasisHead, FullHead
from .registry import MODELS, build_model, make_config, n_params
from .ridge import RidgeConfig, RidgeModel
from .siamese_fc import SiameseFCConfig, SiameseFCNet
from .transformer import SliceTransformer, TransformerConfig

__all__ = [
    "MODELS",
    "BasisHead",
    "Calibrated",
    "ConvConfig",
    "ConvNet",
    "FCConfig",
    "FCNet",
    "FullHead",
    "RidgeConfig",
    "RidgeModel",
    "SiameseFCConfig",
    "SiameseFCNet",
    "SliceTransformer",
    "TransformerConfig",
    "build_model",
    "can_delay",
    "make_config",
    "n_params",
]
