"""The mapper: a checkpoint's model resident on a device, turning EEG windows into volumes.

Normalisation (the checkpoint's per-channel statistics, or statistics calibrated on the
live stream) happens on the device too, so with CUDA a window that is already mirrored
on the GPU never returns to the host before the model runs.
"""

from __future__ import annotations

import numpy as np
import torch

from .._device import resolve_device


def stats_arrays(stats: dict, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(center, scale)`` of shape (n_channels,) from a checkpoint's ``norm`` statistics."""
    if not isinstance(stats, dict) or "center" not in stats or "scale" not in stats:
        raise ValueError(
            "normalisation statistics must hold 'center' and 'scale', got "
            f"{sorted(stats) if isinstance(stats, dict) else type(stats).__name__}."
        )
    center = np.asarray(stats["center"], dtype=np.float32).reshape(-1)
    scale = np.asarray(stats["scale"], dtype=np.float32).reshape(-1)
    if center.size != n_channels or scale.size != n_channels:
        raise ValueError(
            f"normalisation statistics have {center.size} centres and {scale.size} scales "
            f"for {n_channels} channels."
        )
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("normalisation 'scale' must be positive and finite for every channel.")
    return center, scale


class Mapper:
    """Predict volumes from raw EEG windows (volts, model channel order).

    Parameters
    ----------
    checkpoint : rt_eeg2fmri.checkpoint.Checkpoint
        A loaded checkpoint (its model is moved to ``device``).
    device : str | torch.device
        ``auto``, ``cpu``, ``cuda``...

    Attributes
    ----------
    n_times : int
        Samples per window.
    """

    def __init__(self, checkpoint, *, device="auto") -> None:
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.model = checkpoint.model.to(self.device).eval()
        self.n_times = checkpoint.n_times
        self.n_chans = len(checkpoint.ch_names)
        mask = torch.as_tensor(np.asarray(checkpoint.mask, dtype=bool))
        self.grid_shape = tuple(int(s) for s in checkpoint.grid_shape)
        self._flat_index = torch.nonzero(mask.reshape(-1), as_tuple=True)[0].to(self.device)
        self._n_grid = int(np.prod(self.grid_shape))
        self._x = torch.empty((self.n_chans, self.n_times), device=self.device)
        self.set_stats(checkpoint.preprocessing.get("norm", {}))

    def set_stats(self, stats: dict) -> None:
        """Use per-channel statistics ``{"center": (n_channels,), "scale": (n_channels,)}``."""
        center, scale = stats_arrays(stats, self.n_chans)
        self._center = torch.as_tensor(center, device=self.device)[:, None]
        self._inv_scale = torch.as_tensor(1.0 / scale, device=self.device)[:, None]

    def calibrate(self, data: np.ndarray, *, method: str = "zscore") -> dict:
        """Estimate statistics from live EEG of shape (n_channels, n_times) and use them.

        The same estimator as training (``rt_eeg2fmri.data.preprocessing.channel_stats``).
        """
        from ..data.preprocessing import channel_stats

        stats = channel_stats(
            np.asarray(data), method=method, ch_names=list(self.checkpoint.ch_names)
        ).to_dict()
        self.set_stats(stats)
        return stats

    def warmup(self, n: int = 2) -> None:
        """Predict ``n`` zero windows before the stream starts.

        One-off costs (kernel selection, allocations, CUDA context) are then paid here
        rather than on the first live volume.
        """
        window = torch.zeros((self.n_chans, self.n_times), device=self.device)
        for _ in range(n):
            self.volume(self.predict(window))

    @torch.inference_mode()
    def predict(self, window) -> torch.Tensor:
        """In-mask voxels for one window.

        Parameters
        ----------
        window : array or tensor of shape (n_channels, n_times)
            Raw EEG in volts; a tensor already on the device is used in place.

        Returns
        -------
        pred : tensor of shape (n_vox,) on the device
        """
        x = torch.as_tensor(window, device=self.device, dtype=torch.float32)
        if tuple(x.shape) != (self.n_chans, self.n_times):
            raise ValueError(
                f"window shape {tuple(x.shape)} differs from the model's "
                f"({self.n_chans}, {self.n_times})."
            )
        torch.sub(x, self._center, out=self._x)  # into a preallocated buffer: no temporaries
        self._x.mul_(self._inv_scale)
        return self.model(self._x[None])[0].float()

    @torch.inference_mode()
    def volume(self, pred: torch.Tensor) -> np.ndarray:
        """Scatter in-mask voxels into the grid on the device; return it on the host.

        Returns
        -------
        volume : array of shape ``grid_shape``, float32, 0 outside the mask
        """
        volume = torch.zeros(self._n_grid, device=self.device)  # fresh: the caller keeps it
        volume.index_copy_(0, self._flat_index, pred)
        return volume.cpu().numpy().reshape(self.grid_shape)
