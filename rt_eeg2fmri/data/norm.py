"""EEG normalisation: ``NormStats``, the one per-channel ``x ↦ (x − center) / scale``.

Every consumer of a normalised window — the training pairs, evaluation, calibration and
the live mapper — applies :meth:`NormStats.apply` (numpy or torch); the statistics are
estimated by :func:`channel_stats` (training, and live calibration).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_ch_names, check_option
from .._logging import logger

NORM_METHODS = ("zscore", "robust")
_IQR_TO_STD = 1.349  # IQR of a standard normal
_ROBUST_SAMPLES = 50_000  # samples per channel kept from each array for median / IQR
_BLOCK = 1 << 16  # samples per block in streamed statistics


@dataclass
class NormStats:
    """Per-channel normalisation statistics: ``x ↦ (x − center) / scale``.

    Attributes
    ----------
    method : str
        ``"zscore"`` (mean, standard deviation) or ``"robust"`` (median, IQR / 1.349).
    center : array of shape (n_chans,)
    scale : array of shape (n_chans,)
        Strictly positive (flat channels get 1).
    ch_names : list of str
    n_times : int
        Samples the statistics were computed from (weights of :meth:`pooled`).
    """

    method: str
    center: np.ndarray
    scale: np.ndarray
    ch_names: list[str]
    n_times: int = 0
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_option(self.method, "method", NORM_METHODS)
        self.center = np.asarray(_numpy(self.center), dtype=np.float64).reshape(-1)
        self.scale = np.asarray(_numpy(self.scale), dtype=np.float64).reshape(-1)
        self.ch_names = check_ch_names(self.ch_names, source="NormStats: ch_names")
        n = len(self.ch_names)
        if self.center.shape != (n,) or self.scale.shape != (n,):
            raise ValueError(
                f"NormStats: 'center' {self.center.shape} and 'scale' {self.scale.shape} must "
                f"have shape ({n},) for {n} channel names."
            )
        if not (np.isfinite(self.center).all() and np.isfinite(self.scale).all()):
            raise ValueError("NormStats: 'center' and 'scale' must be finite.")
        if not (self.scale > 0).all():
            bad = [self.ch_names[i] for i in np.flatnonzero(~(self.scale > 0))]
            raise ValueError(f"NormStats: 'scale' must be > 0; channels {bad} are not.")
        self.n_times = int(self.n_times)

    @property
    def n_chans(self) -> int:
        """Number of channels."""
        return self.center.size

    def _arrays(self, key):
        """``(center, 1 / scale)`` of shape (n_chans, 1): float32 numpy, or torch on a device."""
        hit = self._cache.get(key)
        if hit is None:
            center = self.center.astype(np.float32)[:, None]
            inv = (1.0 / self.scale).astype(np.float32)[:, None]
            if key != "numpy":
                import torch

                center, inv = (torch.as_tensor(a, device=key) for a in (center, inv))
            hit = self._cache[key] = (center, inv)
        return hit

    def apply(self, x, *, out=None):
        """Normalise EEG: ``(x − center) / scale`` per channel, in float32.

        The one normalisation of the package (training pairs, evaluation, the mapper).

        Parameters
        ----------
        x : array or tensor of shape (..., n_chans, n_times)
            EEG in volts; a tensor stays on its device.
        out : array or tensor of the shape of ``x``, float32 | None
            Where to write (may be ``x`` itself for an in-place update).

        Returns
        -------
        normalised : array or tensor of shape (..., n_chans, n_times), float32
        """
        if tuple(x.shape[-2:-1]) != (self.n_chans,):
            raise ValueError(
                f"NormStats.apply: x has shape {tuple(x.shape)}, expected (..., "
                f"{self.n_chans}, n_times) for the statistics' {self.n_chans} channels."
            )
        if hasattr(x, "detach"):  # torch
            import torch

            center, inv = self._arrays(x.device)
            out = torch.sub(x.float(), center, out=out)
            return out.mul_(inv)
        center, inv = self._arrays("numpy")
        out = np.subtract(x, center, out=out, dtype=np.float32, casting="same_kind")
        out *= inv
        return out

    def to_dict(self) -> dict:
        """Plain values (lists, str, int) for checkpoints and JSON."""
        return {
            "method": self.method,
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "ch_names": list(self.ch_names),
            "n_times": self.n_times,
        }

    @classmethod
    def from_dict(cls, d: dict) -> NormStats:
        """Inverse of :meth:`to_dict`; ``center``/``scale`` may be lists, arrays or tensors."""
        missing = [k for k in ("method", "center", "scale", "ch_names") if k not in d]
        if missing:
            raise ValueError(f"NormStats.from_dict: missing key(s) {missing}; got {sorted(d)}.")
        return cls(
            method=d["method"],
            center=d["center"],
            scale=d["scale"],
            ch_names=list(d["ch_names"]),
            n_times=int(d.get("n_times", 0)),
        )

    @classmethod
    def pooled(cls, stats_list: Iterable[NormStats]) -> NormStats:
        """Combine several subjects' statistics into one (the checkpoint's default).

        ``zscore``: the exact mean and standard deviation of the union of the samples
        (weighted by ``n_times``; equal weights when unknown). ``robust``: the weighted
        mean of the medians and of the scales (an approximation; medians do not pool).
        """
        stats_list = list(stats_list)
        if not stats_list:
            raise ValueError("NormStats.pooled: no statistics given.")
        first = stats_list[0]
        for s in stats_list[1:]:
            if s.method != first.method:
                raise ValueError(
                    f"NormStats.pooled: methods differ ({first.method!r} vs {s.method!r})."
                )
            if s.ch_names != first.ch_names:
                raise ValueError(
                    f"NormStats.pooled: channel names differ ({first.ch_names} vs {s.ch_names})."
                )
        n = np.array([s.n_times for s in stats_list], dtype=np.float64)
        w = n / n.sum() if (n > 0).all() else np.full(n.size, 1.0 / n.size)
        centers = np.stack([s.center for s in stats_list])
        scales = np.stack([s.scale for s in stats_list])
        center = w @ centers
        if first.method == "zscore":
            var = w @ (scales**2 + (centers - center) ** 2)
            scale = np.sqrt(var)
        else:
            scale = w @ scales
        return cls(first.method, center, scale, list(first.ch_names), n_times=int(n.sum()))


def _numpy(x):
    if hasattr(x, "detach"):  # torch tensor
        return x.detach().cpu().numpy()
    return x


class _Accumulator:
    """Streams per-channel statistics over arrays of shape (n_chans, n_times)."""

    def __init__(self, method: str) -> None:
        self.method = check_option(method, "method", NORM_METHODS)
        self.n = 0
        self.mean = None
        self.m2 = None
        self.samples: list[np.ndarray] = []

    def update(self, eeg: np.ndarray) -> None:
        eeg = np.asarray(eeg)
        if eeg.ndim != 2:
            raise ValueError(f"EEG must be 2-D (n_chans, n_times), got shape {eeg.shape}.")
        if self.mean is not None and eeg.shape[0] != self.mean.size:
            raise ValueError(
                f"EEG arrays have different channel counts ({self.mean.size} then {eeg.shape[0]})."
            )
        if self.method == "robust":
            step = max(1, math.ceil(eeg.shape[1] / _ROBUST_SAMPLES))
            self.samples.append(np.array(eeg[:, ::step], dtype=np.float32))
            self.n += eeg.shape[1]
            return
        for i in range(0, eeg.shape[1], _BLOCK):  # Chan et al.'s pairwise update, float64 blocks
            block = eeg[:, i : i + _BLOCK].astype(np.float64)
            nb = block.shape[1]
            mb = block.mean(axis=1)
            m2b = ((block - mb[:, None]) ** 2).sum(axis=1)
            if self.mean is None:
                self.n, self.mean, self.m2 = nb, mb, m2b
                continue
            delta = mb - self.mean
            total = self.n + nb
            self.mean = self.mean + delta * nb / total
            self.m2 = self.m2 + m2b + delta**2 * self.n * nb / total
            self.n = total

    def result(self, ch_names: list[str]) -> NormStats:
        if self.n == 0:
            raise ValueError("channel_stats: no EEG samples given.")
        if self.method == "robust":
            data = np.concatenate(self.samples, axis=1)
            q25, center, q75 = np.percentile(data, [25, 50, 75], axis=1)
            scale = (q75 - q25) / _IQR_TO_STD
        else:
            center = self.mean
            scale = np.sqrt(self.m2 / self.n)
        names = list(ch_names)
        if len(names) != center.size:
            raise ValueError(
                f"channel_stats: {len(names)} channel names for {center.size} EEG channels."
            )
        flat = ~(scale > 1e-12 * max(1.0, float(np.abs(center).max(initial=0.0))))
        if flat.any():
            logger.warning(
                "Flat channel(s) %s: scale set to 1 (normalisation only removes the center).",
                [names[i] for i in np.flatnonzero(flat)],
            )
            scale = np.where(flat, 1.0, scale)
        return NormStats(self.method, center, scale, names, n_times=self.n)


def channel_stats(eeg_iter_or_array, *, method: str = "zscore", ch_names) -> NormStats:
    """Per-channel normalisation statistics over one or several recordings.

    Parameters
    ----------
    eeg_iter_or_array : array of shape (n_chans, n_times) | iterable of such arrays
        One subject's runs (same channels, same order); streamed one array at a time.
    method : ``"zscore"`` | ``"robust"``
        ``zscore``: mean and standard deviation (exact, streamed in float64 blocks).
        ``robust``: median and IQR / 1.349 on a strided subsample (at most 50,000
        samples per channel from each array).
    ch_names : list of str

    Returns
    -------
    stats : NormStats
    """
    acc = _Accumulator(method)
    arrays = (
        [eeg_iter_or_array]
        if isinstance(eeg_iter_or_array, np.ndarray) or hasattr(eeg_iter_or_array, "ndim")
        else eeg_iter_or_array
    )
    for eeg in arrays:
        acc.update(_numpy(eeg))
    return acc.result(list(ch_names))
