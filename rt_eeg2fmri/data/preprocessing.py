"""Preprocessing of EEG and BOLD for training and inference.

EEG: optional zero-phase band-pass and anti-aliased resampling of the continuous signal,
then per-channel normalisation applied on the fly to each window (:func:`normalize`, the
same small function the online engine applies to live windows). BOLD: targets inside a
mask as percent signal change (``"psc"``) or the paper's ``volume / median − 1``
(``"median_ratio"``), and the inverse :func:`targets_to_volume`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .._checks import check_ch_names, check_option, check_positive
from .._logging import logger

NORM_METHODS = ("zscore", "robust")
TARGET_METHODS = ("psc", "median_ratio")
_IQR_TO_STD = 1.349  # IQR of a standard normal
_ROBUST_SAMPLES = 50_000  # samples per channel kept from each array for median / IQR
_BLOCK = 1 << 16  # samples per block in streamed statistics
_CHANNEL_BLOCK = 8  # channels filtered / resampled at once (bounds float64 copies)


@dataclass
class NormStats:
    """Per-channel normalisation statistics: ``x ↦ (x − center) / scale``.

    Attributes
    ----------
    method : str
        ``"zscore"`` (mean, standard deviation) or ``"robust"`` (median, IQR / 1.349).
    center : array of shape (n_channels,)
    scale : array of shape (n_channels,)
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
    _f32: tuple = field(default=None, init=False, repr=False, compare=False)

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
    def n_channels(self) -> int:
        """Number of channels."""
        return self.center.size

    def as_float32(self) -> tuple[np.ndarray, np.ndarray]:
        """``(center, scale)`` as float32 arrays of shape (n_channels, 1), cached."""
        if self._f32 is None:
            self._f32 = (
                self.center.astype(np.float32)[:, None],
                self.scale.astype(np.float32)[:, None],
            )
        return self._f32

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
    """Streams per-channel statistics over arrays of shape (n_channels, n_times)."""

    def __init__(self, method: str) -> None:
        self.method = check_option(method, "method", NORM_METHODS)
        self.n = 0
        self.mean = None
        self.m2 = None
        self.samples: list[np.ndarray] = []

    def update(self, eeg: np.ndarray) -> None:
        eeg = np.asarray(eeg)
        if eeg.ndim != 2:
            raise ValueError(f"EEG must be 2-D (n_channels, n_times), got shape {eeg.shape}.")
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
    eeg_iter_or_array : array of shape (n_channels, n_times) | iterable of such arrays
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


def normalize(x, stats: NormStats):
    """Apply ``(x − center) / scale`` per channel.

    Parameters
    ----------
    x : array or tensor of shape (..., n_channels, n_times)
    stats : NormStats

    Returns
    -------
    out : same kind, dtype and device as ``x`` (float), a new array
    """
    if x.shape[-2:-1] != (stats.n_channels,):
        raise ValueError(
            f"normalize: x has shape {tuple(x.shape)}, expected (..., {stats.n_channels}, n_times) "
            f"for the statistics' {stats.n_channels} channels."
        )
    if hasattr(x, "detach"):  # torch
        import torch

        dtype = x.dtype if x.is_floating_point() else torch.float32
        center = torch.as_tensor(stats.center, dtype=dtype, device=x.device)[:, None]
        scale = torch.as_tensor(stats.scale, dtype=dtype, device=x.device)[:, None]
        return (x.to(dtype) - center) / scale
    x = np.asarray(x)
    if x.dtype == np.float32:
        center, scale = stats.as_float32()
    else:
        x = x.astype(np.float64, copy=False)
        center, scale = stats.center[:, None], stats.scale[:, None]
    return (x - center) / scale


def bandpass(
    eeg: np.ndarray, sfreq: float, *, l_freq: float | None, h_freq: float | None
) -> np.ndarray:
    """Zero-phase FIR band-pass (``mne.filter.filter_data``) of continuous EEG.

    Parameters
    ----------
    eeg : array of shape (n_channels, n_times)
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float | None
        Pass band edges in Hz; ``None`` for a low-pass / high-pass only.

    Returns
    -------
    out : array of shape (n_channels, n_times), float32
    """
    import mne

    sfreq = check_positive(sfreq, "sfreq")
    for name, value in (("l_freq", l_freq), ("h_freq", h_freq)):
        if value is not None:
            check_positive(value, name)
    if h_freq is not None and h_freq >= sfreq / 2:
        raise ValueError(f"'h_freq' must be below Nyquist ({sfreq / 2:g} Hz), got {h_freq=}.")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise ValueError(f"'l_freq' must be below 'h_freq', got {l_freq=}, {h_freq=}.")
    eeg = np.asarray(eeg)
    if eeg.ndim != 2:
        raise ValueError(f"bandpass: EEG must be 2-D (n_channels, n_times), got {eeg.shape}.")
    if l_freq is None and h_freq is None:
        return eeg.astype(np.float32, copy=False)
    out = np.empty(eeg.shape, np.float32)
    for i in range(0, eeg.shape[0], _CHANNEL_BLOCK):  # bounds the float64 working copy
        out[i : i + _CHANNEL_BLOCK] = mne.filter.filter_data(
            eeg[i : i + _CHANNEL_BLOCK].astype(np.float64),
            sfreq,
            l_freq,
            h_freq,
            method="fir",
            phase="zero",
            verbose="error",
        )
    return out


def resample_factors(sfreq: float, new_sfreq: float) -> tuple[int, int]:
    """``(up, down)`` with ``sfreq · up / down == new_sfreq`` (denominators up to 10,000)."""
    sfreq = check_positive(sfreq, "sfreq")
    new_sfreq = check_positive(new_sfreq, "new_sfreq")
    ratio = (Fraction(repr(new_sfreq)) / Fraction(repr(sfreq))).limit_denominator(10_000)
    if abs(sfreq * ratio.numerator / ratio.denominator - new_sfreq) > 1e-9 * new_sfreq:
        raise ValueError(
            f"cannot resample from {sfreq=} Hz to {new_sfreq=} Hz by a rational factor with a "
            "denominator up to 10000; pick a rate that divides the recording's more evenly."
        )
    return ratio.numerator, ratio.denominator


def resample(eeg: np.ndarray, *, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Anti-aliased polyphase resampling (``scipy.signal.resample_poly``) of continuous EEG.

    Sample ``j`` of the output lies at ``j / new_sfreq`` seconds, like sample ``i`` of the
    input at ``i / sfreq`` (zero-phase filter), so onsets in seconds stay valid.

    Parameters
    ----------
    eeg : array of shape (n_channels, n_times)
    sfreq, new_sfreq : float
        Current and new rate in Hz; their ratio must be rational (see
        :func:`resample_factors`).

    Returns
    -------
    out : array of shape (n_channels, ceil(n_times · new_sfreq / sfreq)), float32
    """
    from scipy.signal import resample_poly

    up, down = resample_factors(sfreq, new_sfreq)
    eeg = np.asarray(eeg)
    if eeg.ndim != 2:
        raise ValueError(f"resample: EEG must be 2-D (n_channels, n_times), got {eeg.shape}.")
    if up == down:
        return eeg.astype(np.float32, copy=False)
    n_out = math.ceil(eeg.shape[1] * up / down)
    out = np.empty((eeg.shape[0], n_out), np.float32)
    for i in range(0, eeg.shape[0], _CHANNEL_BLOCK):
        out[i : i + _CHANNEL_BLOCK] = resample_poly(
            eeg[i : i + _CHANNEL_BLOCK].astype(np.float32, copy=False), up, down, axis=-1
        )
    return out


def masked_series(bold: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """In-mask voxels of a 4-D series as an array of shape (n_volumes, n_vox), float32."""
    bold = np.asarray(bold)
    mask = np.asarray(mask, dtype=bool)
    if bold.ndim != 4 or bold.shape[:3] != mask.shape:
        raise ValueError(
            f"BOLD of shape {bold.shape} must be 4-D (x, y, z, n_volumes) on the mask's grid "
            f"{mask.shape}."
        )
    return np.ascontiguousarray(bold[mask].T, dtype=np.float32)


def smooth_bold(bold: np.ndarray, affine: np.ndarray, fwhm: float) -> np.ndarray:
    """Spatially smooth every volume with an isotropic Gaussian of ``fwhm`` mm.

    The ``s`` of SPM's ``swa*`` files: it averages out voxel noise, which is independent
    between voxels, while activations span several voxels.

    Parameters
    ----------
    bold : array of shape (n_x, n_y, n_z) | (n_x, n_y, n_z, n_volumes)
    affine : array of shape (4, 4)
        Voxel → mm transform (its column norms are the voxel sizes).
    fwhm : float
        Full width at half maximum in mm.

    Returns
    -------
    smoothed : array of the shape of ``bold``, float32
    """
    from scipy import ndimage

    fwhm = check_positive(fwhm, "fwhm")
    bold = np.asarray(bold, dtype=np.float32)
    if bold.ndim not in (3, 4):
        raise ValueError(f"smooth_bold: 'bold' must be 3-D or 4-D, got shape {bold.shape}.")
    voxel = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    sigma = [fwhm / np.sqrt(8 * np.log(2)) / v for v in voxel] + [0.0] * (bold.ndim - 3)
    return ndimage.gaussian_filter(bold, sigma, mode="nearest")


def cosine_drifts(n_volumes: int, t_r: float, high_pass: float) -> np.ndarray:
    """Discrete cosine drift regressors below ``high_pass`` Hz (SPM's ``spm_dctmtx`` basis).

    Parameters
    ----------
    n_volumes : int
    t_r : float
        Repetition time (s).
    high_pass : float
        Cut-off in Hz (SPM's default period of 128 s is 1 / 128 ≈ 0.0078 Hz; nilearn's
        ``high_pass``).

    Returns
    -------
    basis : array of shape (n_volumes, n_drifts), float64
        Orthonormal columns ``cos(π k (2t + 1) / 2n)`` for ``k = 1 … n_drifts`` (the
        constant is left out, so removing them keeps each voxel's mean).
    """
    high_pass = check_positive(high_pass, "high_pass")
    t_r = check_positive(t_r, "t_r")
    n_drifts = min(int(np.floor(2 * n_volumes * t_r * high_pass)), n_volumes - 1)
    t = np.arange(n_volumes)[:, None]
    k = np.arange(1, n_drifts + 1)[None, :]
    return np.sqrt(2.0 / n_volumes) * np.cos(np.pi * k * (2 * t + 1) / (2 * n_volumes))


def remove_drifts(series: np.ndarray, t_r: float, high_pass: float) -> np.ndarray:
    """High-pass a run's voxel series by regressing out :func:`cosine_drifts`.

    Scanner drift and slow physiological noise are not in the EEG; this is the high-pass
    step of every fMRI pipeline (SPM's 128 s filter, nilearn's ``high_pass``).

    Parameters
    ----------
    series : array of shape (n_volumes, n_vox)
    t_r : float
    high_pass : float
        Cut-off in Hz.

    Returns
    -------
    filtered : array of shape (n_volumes, n_vox), float32
        Same voxel means as ``series``.
    """
    series = np.asarray(series)
    if series.ndim != 2:
        raise ValueError(
            f"remove_drifts: 'series' must be (n_volumes, n_vox), got shape {series.shape}."
        )
    basis = cosine_drifts(series.shape[0], t_r, high_pass).astype(np.float32)
    out = np.array(series, dtype=np.float32)
    if basis.shape[1]:
        out -= basis @ (basis.T @ out)
    return out


def bold_targets(
    bold: np.ndarray,
    mask: np.ndarray,
    *,
    method: str = "psc",
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """BOLD training targets inside ``mask``.

    Parameters
    ----------
    bold : array of shape (n_x, n_y, n_z, n_volumes) | (n_volumes, n_vox)
        A 4-D series, or its in-mask voxels (C order of ``mask.nonzero()``).
    mask : array of shape (n_x, n_y, n_z), bool
    method : ``"psc"`` | ``"median_ratio"``
        ``psc``: ``100 · (v − ref) / ref`` with ``ref`` the run's mean volume.
        ``median_ratio`` (the paper's): ``v / ref − 1`` with ``ref`` the voxelwise median,
        meant to be over all the subject's volumes (pass it as ``reference``; default:
        this run's median).
    reference : array of shape (n_vox,) | (n_x, n_y, n_z) | None
        Reference volume replacing the run's own mean / median.

    Returns
    -------
    targets : array of shape (n_volumes, n_vox), float32
        Voxels whose reference is ~0 (below 1e-6 × the largest |reference|) get 0, with
        a logged warning.
    """
    check_option(method, "method", TARGET_METHODS)
    mask = np.asarray(mask, dtype=bool)
    n_vox = int(mask.sum())
    bold = np.asarray(bold)
    if bold.ndim == 2:
        if bold.shape[1] != n_vox:
            raise ValueError(
                f"bold_targets: 2-D 'bold' must be (n_volumes, {n_vox}) for the mask, got "
                f"{bold.shape}."
            )
        v = bold.astype(np.float32, copy=False)
    else:
        v = masked_series(bold, mask)
    if reference is None:
        ref = v.mean(axis=0, dtype=np.float64) if method == "psc" else np.median(v, axis=0)
    else:
        ref = np.asarray(reference, dtype=np.float64)
        ref = ref[mask] if ref.shape == mask.shape else ref.reshape(-1)
        if ref.size != n_vox:
            raise ValueError(
                f"bold_targets: 'reference' must have shape {mask.shape} or ({n_vox},), got "
                f"{np.shape(reference)}."
            )
    return _apply_reference(v, ref, method)


def run_targets(
    bold: np.ndarray,
    mask: np.ndarray,
    *,
    affine: np.ndarray,
    t_r: float,
    method: str = "psc",
    fwhm: float | None = None,
    high_pass: float | None = None,
) -> np.ndarray:
    """One run's targets, prepared in the cache's order.

    :func:`smooth_bold` (``fwhm``), then :func:`bold_targets`, then
    :func:`remove_drifts` (``high_pass``). For series prepared like the training targets outside the cache (the noise ceiling's
    truth, a replay's measured volumes).

    Parameters
    ----------
    bold : array of shape (n_x, n_y, n_z, n_volumes)
    mask : array of shape (n_x, n_y, n_z), bool
    affine : array of shape (4, 4)
    t_r : float
    method : ``"psc"`` | ``"median_ratio"``
    fwhm, high_pass : float | None
        Smoothing (mm) and drift cut-off (Hz); ``None`` skips the step.

    Returns
    -------
    targets : array of shape (n_volumes, n_vox), float32
    """
    if fwhm:
        bold = smooth_bold(bold, affine, fwhm)
    y = bold_targets(bold, mask, method=method)
    return remove_drifts(y, t_r, high_pass) if high_pass else y


def _apply_reference(
    v: np.ndarray, ref: np.ndarray, method: str, *, out=None, warn: bool = True
) -> np.ndarray:
    ref = np.asarray(ref, dtype=np.float64)
    ok = np.abs(ref) > 1e-6 * float(np.abs(ref).max(initial=0.0))
    if warn and not ok.all():
        logger.warning(
            "%d of %d voxels have a ~0 reference (mean/median): their targets are set to 0.",
            int((~ok).sum()),
            ok.size,
        )
    safe = np.where(ok, ref, 1.0).astype(np.float32)
    if out is None:
        out = np.empty(v.shape, np.float32)
    if method == "psc":
        np.subtract(v, safe, out=out)
        out *= np.float32(100.0) / safe
    else:
        np.divide(v, safe, out=out)
        out -= np.float32(1.0)
    out[:, ~ok] = 0.0
    return out


def targets_to_volume(targets, mask: np.ndarray) -> np.ndarray:
    """Put in-mask targets back on the grid (0 outside the mask).

    Parameters
    ----------
    targets : array of shape (n_vox,) | (n_volumes, n_vox)
    mask : array of shape (n_x, n_y, n_z), bool

    Returns
    -------
    volume : array of shape (n_x, n_y, n_z) | (n_x, n_y, n_z, n_volumes), float32
    """
    mask = np.asarray(mask, dtype=bool)
    t = np.asarray(_numpy(targets), dtype=np.float32)
    n_vox = int(mask.sum())
    if t.ndim not in (1, 2) or t.shape[-1] != n_vox:
        raise ValueError(
            f"targets_to_volume: 'targets' must be ({n_vox},) or (n_volumes, {n_vox}) for the "
            f"mask, got shape {t.shape}."
        )
    if t.ndim == 1:
        out = np.zeros(mask.shape, np.float32)
        out[mask] = t
        return out
    out = np.zeros((*mask.shape, t.shape[0]), np.float32)
    out[mask] = t.T
    return out
