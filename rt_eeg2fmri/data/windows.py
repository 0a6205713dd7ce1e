"""Training pairs: a window of EEG ending at the end of a volume's acquisition.

A pair is an index range over the continuous EEG, never a materialised copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_positive


@dataclass(frozen=True)
class WindowIndex:
    """Index ranges of the valid (window, volume) pairs of one run.

    Attributes
    ----------
    volume : array of shape (n_pairs,)
        Volume index of each pair.
    start, stop : array of shape (n_pairs,)
        EEG sample range ``[start, stop)`` of each window; ``stop - start`` is constant.
    """

    volume: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    def __len__(self) -> int:
        return int(self.volume.size)


def default_skip(winsize: float, t_r: float) -> int:
    """Warm-up volumes dropped before the first pair: ``ceil(winsize / t_r)`` (30 s, 2 s → 15)."""
    return math.ceil(round(winsize / t_r, 9))


def span_samples(spans, sfreq: float) -> np.ndarray:
    """``[start, stop)`` spans in seconds → the samples that hold them, ``(n_spans, 2)`` int."""
    spans = np.asarray(spans, dtype=float).reshape(-1, 2)
    return np.column_stack([np.floor(spans[:, 0] * sfreq), np.ceil(spans[:, 1] * sfreq)]).astype(
        np.int64
    )


def window_samples(winsize: float, sfreq: float) -> int:
    """Number of EEG samples in a window of ``winsize`` seconds."""
    return round(check_positive(winsize, "winsize") * check_positive(sfreq, "sfreq"))


def window_pairs(
    volume_onsets: np.ndarray,
    *,
    t_r: float,
    sfreq: float,
    n_times: int,
    winsize: float = 30.0,
    skip: int | None = None,
    bad_spans: np.ndarray | None = None,
) -> WindowIndex:
    """Pair each volume with the ``winsize`` seconds of EEG ending at the end of its acquisition.

    Parameters
    ----------
    volume_onsets : array of shape (n_volumes,)
        Volume acquisition onsets in seconds on the EEG clock (0 = first EEG sample).
    t_r : float
        Repetition time in seconds; volume ``k`` ends at ``volume_onsets[k] + t_r``.
    sfreq : float
        EEG sampling rate in Hz.
    n_times : int
        Number of EEG samples available.
    winsize : float
        Window length in seconds (default 30).
    skip : int | None
        Volumes dropped at the start of the run (warm-up); default ``ceil(winsize / t_r)``,
        so a 170-volume run at TR 2 s gives 155 pairs. Volumes whose window does not lie
        inside the EEG are dropped as well.
    bad_spans : array of shape (n_spans, 2) | None
        ``[start, stop)`` in seconds of spans annotated bad; a window that overlaps one is
        dropped (as MNE's ``reject_by_annotation``).

    Returns
    -------
    pairs : WindowIndex
    """
    t_r = check_positive(t_r, "t_r")
    length = window_samples(winsize, sfreq)
    skip = default_skip(winsize, t_r) if skip is None else int(skip)
    if skip < 0:
        raise ValueError(f"'skip' must be >= 0, got {skip=}.")
    onsets = np.asarray(volume_onsets, dtype=float)
    stop = np.round((onsets + t_r) * sfreq).astype(np.int64)
    start = stop - length
    volume = np.arange(onsets.size)
    ok = (volume >= skip) & (start >= 0) & (stop <= n_times)
    if bad_spans is not None:
        for a, b in span_samples(bad_spans, sfreq):
            ok &= (stop <= a) | (start >= b)
    return WindowIndex(volume=volume[ok], start=start[ok], stop=stop[ok])
