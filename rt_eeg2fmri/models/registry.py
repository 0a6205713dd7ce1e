"""Architectures by name: ``build_model("conv", {...})``."""

from __future__ import annotations

from dataclasses import fields

from torch import nn

from .conv import ConvConfig, ConvNet
from .fc import FCConfig, FCNet
from .ridge import RidgeConfig, RidgeModel
from .siamese_fc import SiameseFCConfig, SiameseFCNet
from .transformer import SliceTransformer, TransformerConfig

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "fc": (FCNet, FCConfig),
    "siamese_fc": (SiameseFCNet, SiameseFCConfig),
    "conv": (ConvNet, ConvConfig),
    "transformer": (SliceTransformer, TransformerConfig),
    "ridge": (RidgeModel, RidgeConfig),
}


def make_config(name: str, config: dict):
    """The config dataclass of architecture ``name`` from a plain dict.

    Raises
    ------
    ValueError
        For an unknown architecture or unknown config fields (the message lists the
        accepted ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}.")
    if not isinstance(config, dict):
        raise TypeError(f"'config' must be a dict, got {type(config).__name__}.")
    cls = MODELS[name][1]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {unknown} for model {name!r}; accepted: {sorted(known)}."
        )
    missing = [f.name for f in fields(cls) if f.name not in config and _required(f)]
    if missing:
        raise ValueError(f"model {name!r} config is missing required field(s) {missing}.")
    return cls(**config)


def _required(f) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def build_model(name: str, config: dict) -> nn.Module:
    """Build architecture ``name`` from a config dict (fields of its config dataclass).

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    config : dict
        ``n_chans``, ``n_times``, ``sfreq``, ``n_voxels`` (required), ``grid_shape`` and
        any architectural overrides.

    Returns
    -------
    model : nn.Module
        With ``model.config`` the dataclass (``asdict`` is JSON-able).
    """
    cfg = make_config(name, config)
    return MODELS[name][0](cfg)


def n_params(model: nn.Module) -> int:
    """Learned numbers: parameters plus fitted floating buffers (ridge weights, fixed bases).

    BatchNorm running statistics and the mask are not counted.
    """
    saved = set(model.state_dict())
    total = sum(p.numel() for p in model.parameters())
    for name, b in model.named_buffers():
        if name in saved and b.is_floating_point() and not name.endswith(_STATS):
            total += b.numel()
    return total


_STATS = ("running_mean", "running_var")
