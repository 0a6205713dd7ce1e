"""``Calibrated``: a model adapted to one person by a per-voxel affine map of its output.

``rt-eeg2fmri calibrate`` fits the map on a few minutes of a person's paired recording,
shrunk toward the identity (the base model); the checkpoint stores the base model's
weights and the map, so every consumer (stream, evaluate, replay) runs it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class Calibrated(nn.Module):
    """``y = out_gain ⊙ base(x) + out_bias``, one gain and bias per in-mask voxel.

    Parameters
    ----------
    base : nn.Module
        A model of :mod:`rt_eeg2fmri.models` (its ``name``, ``config`` and ``mask`` are
        this model's).
    gain, bias : array-like of shape (n_voxels,)
    """

    def __init__(self, base: nn.Module, gain, bias) -> None:
        super().__init__()
        if isinstance(base, Calibrated):  # compose: g2 (g1 p + b1) + b2 = g2 g1 p + (g2 b1 + b2)
            g2 = torch.as_tensor(gain, dtype=torch.float32).reshape(-1)
            b2 = torch.as_tensor(bias, dtype=torch.float32).reshape(-1)
            gain, bias = g2 * base.out_gain.cpu(), g2 * base.out_bias.cpu() + b2
            base = base.base
        self.base = base
        n = int(base.config.n_voxels)
        g = torch.as_tensor(gain, dtype=torch.float32).reshape(-1)
        b = torch.as_tensor(bias, dtype=torch.float32).reshape(-1)
        if g.numel() != n or b.numel() != n:
            raise ValueError(
                f"Calibrated: gain and bias need {n} values (the model's voxels), got "
                f"{g.numel()} and {b.numel()}."
            )
        if not (torch.isfinite(g).all() and torch.isfinite(b).all()):
            raise ValueError("Calibrated: gain and bias must be finite.")
        self.register_buffer("out_gain", g)
        self.register_buffer("out_bias", b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In-mask voxels of shape (B, n_voxels)."""
        y = self.base(x)
        return y * self.out_gain.to(y.dtype) + self.out_bias.to(y.dtype)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # name, config, mask, set_mask, ...: the base model's
            return getattr(super().__getattr__("base"), name)
