"""Haemodynamic response functions and convolution.

Used by the simulator (BOLD from neural drive), the ``ridge`` model (HRF-convolved
band power) and the event-regression baseline (task events convolved with the HRF).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ._checks import check_positive


def spm_hrf(
    dt: float,
    *,
    peak: float = 6.0,
    undershoot: float = 16.0,
    ratio: float = 1.0 / 6.0,
    length: float = 32.0,
) -> np.ndarray:
    """SPM's canonical double-gamma HRF sampled every ``dt`` seconds.

    Parameters
    ----------
    dt : float
        Sampling interval in seconds.
    peak : float
        Time to the response peak in seconds (SPM: 6). Subject-specific latencies shift it.
    undershoot : float
        Time to the undershoot peak in seconds (SPM: 16).
    ratio : float
        Undershoot amplitude relative to the peak (SPM: 1/6).
    length : float
        Kernel length in seconds.

    Returns
    -------
    hrf : array of shape (n_taps,)
        Normalised to unit sum, so a sustained unit input gives a unit plateau.
    """
    dt = check_positive(dt, "dt")
    peak = check_positive(peak, "peak")
    undershoot = check_positive(undershoot, "undershoot")
    t = np.arange(0.0, check_positive(length, "length"), dt)
    h = _gamma_pdf(t, peak) - ratio * _gamma_pdf(t, undershoot)
    return h / h.sum()


def _gamma_pdf(t: np.ndarray, shape: float) -> np.ndarray:
    # gamma density with unit scale, mode at ``shape - 1``: SPM parametrises by the peak + 1.
    a = shape
    out = np.zeros_like(t)
    pos = t > 0
    out[pos] = np.exp((a - 1) * np.log(t[pos]) - t[pos] - gammaln(a))
    return out


def hrf_convolve(x: np.ndarray, hrf: np.ndarray) -> np.ndarray:
    """Causally convolve regressors with an HRF along the last axis.

    Parameters
    ----------
    x : array of shape (..., n_times)
        Regressors sampled at the HRF's rate.
    hrf : array of shape (n_taps,)

    Returns
    -------
    y : array of shape (..., n_times)
        ``y[..., t] = sum_k hrf[k] * x[..., t - k]`` (zero before the start).
    """
    from scipy.signal import oaconvolve

    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(hrf, dtype=np.float64).reshape((1,) * (x.ndim - 1) + (-1,))
    return oaconvolve(x, kernel, mode="full", axes=-1)[..., : x.shape[-1]]


def events_to_regressor(
    onsets: np.ndarray,
    durations: np.ndarray,
    *,
    sfreq: float,
    n_times: int,
    amplitudes=None,
    first: int = 0,
) -> np.ndarray:
    """Boxcar regressor sampled at ``sfreq`` from event onsets and durations in seconds.

    Each event adds a total of ``amplitude`` (default 1) spread evenly over the samples it
    covers; a zero-duration event is a one-sample impulse. ``first`` is the index, on the
    grid ``k / sfreq`` s, of the regressor's first sample: a stretch of a longer regressor
    has the same samples as the whole one there (events outside it count in part).

    Returns
    -------
    reg : array of shape (n_times,)
    """
    sfreq = check_positive(sfreq, "sfreq")
    reg = np.zeros(int(n_times))
    onsets = np.asarray(onsets, dtype=float)
    durations = np.broadcast_to(np.asarray(durations, dtype=float), onsets.shape)
    amps = np.ones_like(onsets) if amplitudes is None else np.asarray(amplitudes, dtype=float)
    for onset, dur, amp in zip(onsets, durations, amps, strict=True):
        i0 = int(np.floor(onset * sfreq)) - first
        i1 = max(i0 + 1, int(np.ceil((onset + dur) * sfreq)) - first)
        if i0 >= n_times or i1 <= 0:
            continue
        n = i1 - i0
        reg[max(i0, 0) : min(i1, n_times)] += amp / n
    return reg
