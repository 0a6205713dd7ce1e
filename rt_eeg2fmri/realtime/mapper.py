"""The mapper: a checkpoint's model resident on a device, turning EEG windows into volumes.

Normalisation (:meth:`~rt_eeg2fmri.data.norm.NormStats.apply` with the checkpoint's
statistics, or statistics calibrated on the live stream) happens on the device too, so
with CUDA a window that is already mirrored on the GPU never returns to the host before
the model runs.
"""

from __future__ import annotations

import numpy as np
import torch

from .._device import resolve_device
from ..data.norm import NormStats, channel_stats


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
    norm_stats : NormStats
        The statistics in use.
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
        self.set_stats(checkpoint.norm_stats)

    def set_model(self, model) -> None:
        """Predict with ``model`` from now on (the same checkpoint adapted: same shapes)."""
        self.model = model.to(self.device).eval()

    @property
    def last_input(self) -> torch.Tensor:
        """The model's input for the last window (normalised; a buffer reused each call)."""
        return self._x

    def set_stats(self, stats: NormStats) -> None:
        """Normalise with ``stats`` (the model's channels, in its order)."""
        if not isinstance(stats, NormStats):
            raise TypeError(f"'stats' must be a NormStats, got {type(stats).__name__}.")
        if stats.n_chans != self.n_chans:
            raise ValueError(
                f"'stats' are for {stats.n_chans} channels, the model takes {self.n_chans}."
            )
        self.norm_stats = stats

    def calibrate(self, data: np.ndarray) -> NormStats:
        """Estimate statistics from live EEG of shape (n_chans, n_times) and use them.

        The estimator and method of training (:func:`~rt_eeg2fmri.data.norm.channel_stats`,
        the checkpoint's ``preprocessing.norm``).
        """
        stats = channel_stats(
            np.asarray(data),
            method=self.checkpoint.preprocessing.norm,
            ch_names=list(self.checkpoint.ch_names),
        )
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
        window : array or tensor of shape (n_chans, n_times)
            Raw EEG in volts; a tensor already on the device is used in place.

        Returns
        -------
        pred : tensor of shape (n_voxels,) on the device
        """
        x = torch.as_tensor(window, device=self.device, dtype=torch.float32)
        if tuple(x.shape) != (self.n_chans, self.n_times):
            raise ValueError(
                f"window shape {tuple(x.shape)} differs from the model's "
                f"({self.n_chans}, {self.n_times})."
            )
        self.norm_stats.apply(x, out=self._x)  # into a preallocated buffer: no temporaries
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
