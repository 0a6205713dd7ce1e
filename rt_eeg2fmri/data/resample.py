"""Streaming rational resampling: a polyphase FIR filter that keeps its state across chunks.

``scipy.signal.resample_poly`` and ``upfirdn`` filter whole signals; a stream arrives in
chunks, so :class:`PolyphaseResampler` keeps the last input samples the filter still
needs and the phase of the next output. Feeding a signal chunk by chunk gives exactly
the samples of feeding it at once.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import check_positive

_BLOCK_VALUES = 1 << 22  # bound on the gathered (n_chans, n_out, n_taps) block


class PolyphaseResampler:
    """Resample a multichannel stream from ``sfreq_in`` to ``sfreq_out`` chunk by chunk.

    The anti-aliasing low-pass is a Kaiser-windowed (beta 5) FIR with cutoff at the lower
    Nyquist frequency, as in :func:`scipy.signal.resample_poly`, made ``2 · half_len + 1``
    taps long with ``half_len`` a multiple of ``down`` so its delay is a whole number of
    output samples. That delay (:attr:`delay`) is dropped: output sample ``o`` is the
    signal at input position ``o · down / up``, at the cost of :attr:`latency` seconds.

    Parameters
    ----------
    sfreq_in, sfreq_out : float
        Input and output sampling rates in Hz; their ratio must be a fraction with a
        denominator of at most 1000.
    n_chans : int
        Number of channels.
    """

    def __init__(self, sfreq_in: float, sfreq_out: float, *, n_chans: int) -> None:
        from scipy.signal import firwin

        self.sfreq_in = check_positive(sfreq_in, "sfreq_in")
        self.sfreq_out = check_positive(sfreq_out, "sfreq_out")
        ratio = Fraction(self.sfreq_out / self.sfreq_in).limit_denominator(1000)
        if abs(self.sfreq_in * ratio - self.sfreq_out) > 1e-9 * self.sfreq_out:
            raise ValueError(
                f"cannot resample {self.sfreq_in} Hz to {self.sfreq_out} Hz with a rational "
                "ratio of denominator <= 1000."
            )
        if int(n_chans) != n_chans or n_chans < 1:
            raise ValueError(f"'n_chans' must be an integer >= 1, got {n_chans=}.")
        self.n_chans = int(n_chans)
        self.up, self.down = ratio.numerator, ratio.denominator
        max_rate = max(self.up, self.down)
        if max_rate == 1:  # equal rates: a pass-through
            half_len, self.taps = 0, np.ones(1)
        else:
            half_len = self.down * math.ceil(10 * max_rate / self.down)
            self.taps = firwin(2 * half_len + 1, 1 / max_rate, window=("kaiser", 5.0)) * self.up
        self.delay = half_len // self.down
        n_per_phase = math.ceil(self.taps.size / self.up)
        padded = np.zeros(self.up * n_per_phase)
        padded[: self.taps.size] = self.taps
        # _phases[p, t] = taps[p + t·up], reversed along t to match oldest→newest windows
        self._phases = padded.reshape(n_per_phase, self.up).T[:, ::-1].copy()
        self._history = np.zeros((self.n_chans, n_per_phase - 1))
        self.n_in = 0
        self._n_raw = 0  # outputs computed, including the dropped delay

    @property
    def latency(self) -> float:
        """Seconds between an input sample and the output sample at its position."""
        return self.taps.size // 2 / (self.up * self.sfreq_in)

    @property
    def n_out(self) -> int:
        """Output samples produced so far."""
        return max(0, self._n_raw - self.delay)

    def process(self, chunk, timestamps=None):
        """Filter and resample the next chunk.

        Parameters
        ----------
        chunk : array of shape (n_chans, n_samples)
            The next input samples.
        timestamps : array of shape (n_samples,) | None
            Their timestamps; if given, timestamps of the output are returned too,
            extrapolated from the chunk's last timestamp at the nominal input rate.

        Returns
        -------
        out : array of float64, shape (n_chans, n_out)
            The output samples that became computable (possibly none).
        out_timestamps : array of shape (n_out,)
            Only when ``timestamps`` is given.
        """
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_chans:
            raise ValueError(
                f"'chunk' must have shape (n_chans={self.n_chans}, n_samples), got {x.shape}."
            )
        k = x.shape[1]
        times = None
        if timestamps is not None:
            times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
            if times.size != k:
                raise ValueError(f"'timestamps' must have {k} values, got {times.size}.")
        if k == 0:
            out = np.empty((self.n_chans, 0))
            return out if times is None else (out, np.empty(0))
        n_in_new = self.n_in + k
        m_end = (n_in_new * self.up - 1) // self.down + 1
        m = np.arange(self._n_raw, m_end)
        pos = m * self.down
        phase, first_input = pos % self.up, pos // self.up
        buf = np.concatenate((self._history, x), axis=1)
        windows = sliding_window_view(buf, self._phases.shape[1], axis=1)
        rows = first_input - self.n_in
        out = np.empty((self.n_chans, m.size))
        block = max(1, _BLOCK_VALUES // (self.n_chans * self._phases.shape[1]))
        for b in range(0, m.size, block):
            sel = slice(b, b + block)
            out[:, sel] = np.einsum(
                "cmt,mt->cm", windows[:, rows[sel], :], self._phases[phase[sel]]
            )
        if self._history.shape[1]:
            self._history = buf[:, buf.shape[1] - self._history.shape[1] :].copy()
        self.n_in, self._n_raw = n_in_new, m_end
        keep = m >= self.delay
        out = out[:, keep]
        if times is None:
            return out
        position = (m[keep] - self.delay) * (self.down / self.up)
        return out, times[-1] + (position - (n_in_new - 1)) / self.sfreq_in
