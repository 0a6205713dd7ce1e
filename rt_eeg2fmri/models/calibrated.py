"""``Calibrated``: a model adapted to one person by a per-voxel map of its output.

``rt-eeg2fmri calibrate`` fits the map on a few minutes of a person's paired recording,
shrunk toward the identity (the base model); the checkpoint stores the base model's
weights and the map, so every consumer (stream, evaluate, replay) runs it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

#: Seconds the learned HRF is shifted either way to take the delay derivative
DELAY_STEP = 0.5


#: What :func:`can_delay` asks of a model, as error messages say it
NO_DELAY = (
    "needs a model whose encoder reads the band-power envelope through a learned HRF "
    "(conv with envelope_rate set and no blocks after the filter bank), uncalibrated"
)


def describe_model(model) -> str:
    """``conv``, ``calibrated conv``, ``conv with 2 encoder stages``...: what a model is."""
    if isinstance(model, Calibrated):
        return f"calibrated {describe_model(model.base)}"
    name = getattr(model, "name", type(model).__name__)
    channels = getattr(getattr(model, "config", None), "channels", None)
    if name == "conv" and channels is not None and len(channels) > 1:
        return f"conv with {len(channels)} encoder stages"
    return name


def can_delay(model) -> bool:
    """Whether ``model`` offers a per-voxel haemodynamic delay (:class:`Calibrated`'s slope).

    A plain model (not calibrated) with ``hrf_variants`` whose encoder reads the band-power
    envelope through a learned HRF: the default conv.
    """
    if isinstance(model, Calibrated) or not hasattr(type(model), "hrf_variants"):
        return False
    return getattr(getattr(model, "encoder", None), "bin_seconds", None) is not None


class Calibrated(nn.Module):
    """``y = out_gain ⊙ base(x) + out_slope ⊙ ∂base(x)/∂d + out_bias``, per in-mask voxel.

    Without ``slope`` it is a per-voxel gain and offset. With it, a per-voxel
    haemodynamic delay: ``∂base/∂d`` is the change of the prediction when the base model's
    learned HRF is shifted later (central difference over ±:data:`DELAY_STEP` s), so
    ``slope / gain`` is each voxel's extra delay in seconds to first order (the temporal
    derivative of the SPM informed basis).

    Parameters
    ----------
    base : nn.Module
        A model of :mod:`rt_eeg2fmri.models` (its ``name``, ``config`` and ``mask`` are
        this model's); with ``slope``, one for which :func:`can_delay` holds.
    gain, bias : array-like of shape (n_voxels,)
    slope : array-like of shape (n_voxels,) | None
    step : float
        The shift (s) of the central difference.
    """

    def __init__(self, base: nn.Module, gain, bias, slope=None, step: float = DELAY_STEP) -> None:
        super().__init__()
        n = int(base.config.n_voxels)
        maps = [self._vector(v, n, name) for v, name in ((gain, "gain"), (bias, "bias"))]
        if slope is not None:
            if not can_delay(base):
                raise ValueError(
                    f"Calibrated: a delay slope {NO_DELAY}, got {describe_model(base)}."
                )
            if not step > 0:
                raise ValueError(f"Calibrated: the delay step must be positive, got {step!r}.")
            slope = self._vector(slope, n, "slope")
        if isinstance(base, Calibrated):  # compose: g2 (g1 p + s1 p' + b1) + b2
            g2, b2 = maps
            maps = [g2 * base.out_gain.cpu(), g2 * base.out_bias.cpu() + b2]
            if base.out_slope is not None:
                slope, step = g2 * base.out_slope.cpu(), base.step
            base = base.base
        self.base = base
        self.step = float(step)
        self.register_buffer("out_gain", maps[0])
        self.register_buffer("out_bias", maps[1])
        self.register_buffer("out_slope", slope)  # None without a delay
        if slope is not None:
            # the base's projection shifted later and earlier; derived, so not saved
            enc = base.encoder
            self.register_buffer("later", enc.warped_weight(shift=step), persistent=False)
            self.register_buffer("earlier", enc.warped_weight(shift=-step), persistent=False)

    @staticmethod
    def _vector(values, n: int, name: str) -> torch.Tensor:
        v = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
        if v.numel() != n:
            raise ValueError(
                f"Calibrated: {name} needs {n} values (the model's voxels), got {v.numel()}."
            )
        if not torch.isfinite(v).all():
            raise ValueError(f"Calibrated: {name} must be finite.")
        return v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In-mask voxels of shape (B, n_voxels)."""
        if self.out_slope is None:
            y = self.base(x)
            return y * self.out_gain.to(y.dtype) + self.out_bias.to(y.dtype)
        proj = self.base.encoder.proj.weight
        y, later, earlier = self.base.hrf_variants(x, [proj, self.later, self.earlier])
        slope = (later - earlier) / (2.0 * self.step)
        return (
            y * self.out_gain.to(y.dtype)
            + slope * self.out_slope.to(y.dtype)
            + self.out_bias.to(y.dtype)
        )

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # name, config, mask, set_mask, ...: the base model's
            return getattr(super().__getattr__("base"), name)
