"""Causal IIR filtering, chunk by chunk.

The band-pass of the EEG chain, and the filters of the live pulse-artifact correction
(:mod:`rt_eeg2fmri.realtime.pulse`).
"""

from __future__ import annotations

import numpy as np

IIR_ORDER = 4  # Butterworth order per band edge (MNE's default for method="iir")


class CausalBandpass:
    """Band-pass, high-pass or low-pass a multichannel signal causally, chunk by chunk.

    A Butterworth IIR of :data:`IIR_ORDER` designed by :func:`mne.filter.create_filter`
    (``method="iir"``, ``phase="forward"``) and run with :func:`scipy.signal.sosfilt`,
    keeping the filter state across chunks. The state starts at the steady state of the
    first sample (as if the signal had been constant before it), so a DC offset makes no
    start-up transient; otherwise the output equals MNE's
    ``filter_data(x - x[:, :1], method="iir", phase="forward")`` plus the filter's DC gain
    times ``x[:, :1]``.

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float | None
        Band edges in Hz (``None``: no high-pass / low-pass).
    n_chans : int
    """

    def __init__(
        self, sfreq: float, *, l_freq: float | None, h_freq: float | None, n_chans: int
    ) -> None:
        import mne

        params = mne.filter.create_filter(
            None,
            sfreq,
            l_freq,
            h_freq,
            method="iir",
            iir_params={"order": IIR_ORDER, "ftype": "butter", "output": "sos"},
            phase="forward",
            verbose="error",
        )
        self.sos = np.asarray(params["sos"], dtype=np.float64)
        self.n_chans = int(n_chans)
        self._zi: np.ndarray | None = None  # (n_sections, n_chans, 2)

    @property
    def dc_gain(self) -> float:
        """Gain of the filter at 0 Hz (0 with a high-pass, 1 for a low-pass)."""
        b, a = self.sos[:, :3].sum(axis=1), self.sos[:, 3:].sum(axis=1)
        return float(np.prod(b / a))

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter the next chunk, shape (n_chans, n_times) → (n_chans, n_times), float64."""
        from scipy.signal import sosfilt, sosfilt_zi

        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] == 0:
            return x
        if self._zi is None:
            self._zi = sosfilt_zi(self.sos)[:, None, :] * x[None, :, 0, None]
        y, self._zi = sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y
