"""In-scanner EEG artifacts: the gradient (imaging) artifact and the pulse artifact (BCG).

``simulate --artifacts gradient,bcg`` adds them to the recorded EEG; the clean EEG is
kept beside the truth, so a correction can be scored against what was under them.

Gradient artifact. Every slice of every volume plays the same EPI gradient waveform
(:func:`slice_waveforms`): a slice-select lobe on z, a train of readout lobes on x
alternating in sign, and a phase-encode blip on y before each readout lobe. What an
electrode lead picks up is the time derivative of each axis (dB/dt), mixed by the
lead's loop area and orientation: a per-channel mix of the three axes (a few hundred µV
to a few mV). The waveform is computed on a fine grid from the slice onsets on the
scanner's clock, low-passed like an amplifier's anti-alias filter and sampled at the
EEG rate: with ``sync=True`` the two clocks are locked (each slice starts on the same
sub-sample phase); without it the scanner clock runs ``clock_ppm`` fast and every slice
lands on another sub-sample phase (the jitter that makes averaging templates smear).
Head motion drifts the per-channel gains slowly (a few percent).

Pulse artifact. Every heartbeat (the R-peaks of the simulated ECG) moves the head and
the electrodes in the static field: a ~0.6 s wave starting ~0.2 s after the R-peak,
50–200 µV, with a smooth topography. It is built from three basis waves whose weights
vary from beat to beat (amplitude and shape) and whose length follows the RR interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .design import slow_noise

ARTIFACTS = ("gradient", "bcg")
_FINE_HZ = 20000.0  # the gradient waveform's grid before the anti-alias filter


@dataclass(frozen=True)
class Acquisition:
    """The EPI acquisition that makes the gradient artifact.

    Attributes
    ----------
    t_r : float
        Repetition time (s).
    n_slices : int
        Slices per volume, acquired back to back (``t_r / n_slices`` each).
    readout_hz : float
        Readout gradient lobes per second / 2 (a lobe pair is one period).
    sync : bool
        Whether the EEG clock is locked to the scanner's.
    clock_ppm : float
        With ``sync=False``: how much faster the scanner clock runs (parts per million).
    """

    t_r: float
    n_slices: int
    readout_hz: float = 800.0
    sync: bool = True
    clock_ppm: float = 37.0

    @property
    def slice_s(self) -> float:
        """Duration of one slice on the scanner's clock (s)."""
        return self.t_r / self.n_slices

    @property
    def rate(self) -> float:
        """Scanner seconds per EEG second: 1 with locked clocks."""
        return 1.0 if self.sync else 1.0 + self.clock_ppm * 1e-6

    def on_eeg_clock(self, onsets: np.ndarray) -> np.ndarray:
        """Volume onsets at the scanner's pace (``k · t_r`` from the first) on the EEG clock.

        The same with locked clocks; ever earlier with a scanner clock that runs fast.
        """
        onsets = np.asarray(onsets, float)
        if self.sync or not onsets.size:
            return onsets
        return onsets[0] + (onsets - onsets[0]) / self.rate


@dataclass(frozen=True)
class SampleGrid:
    """The EEG's samples: ``n_times`` at ``sfreq`` Hz from ``t_start`` s (EEG clock)."""

    sfreq: float
    t_start: float
    n_times: int


def slice_waveforms(t: np.ndarray, acq: Acquisition) -> np.ndarray:
    """dB/dt of the three gradient axes (z, x, y) at times ``t`` into a slice (unit peak).

    Returns
    -------
    w : array of shape (3, t.size)
    """
    d = acq.slice_s
    t = np.asarray(t, float)

    def trapezoid(start, ramp, flat):
        """A trapezoidal lobe's derivative: +1 on the ramp up, -1 on the ramp down."""
        up = (t >= start) & (t < start + ramp)
        down = (t >= start + ramp + flat) & (t < start + 2 * ramp + flat)
        return up.astype(float) - down.astype(float)

    ramp = min(1e-4, 0.02 * d)
    z = trapezoid(0.0, ramp, 0.12 * d) - 0.5 * trapezoid(0.12 * d + 2 * ramp, ramp, 0.05 * d)
    period = 1.0 / acq.readout_hz
    lobe = period / 2 - 2 * ramp
    x = np.zeros_like(t)
    y = np.zeros_like(t)
    start, sign = 0.25 * d, 1.0
    while start + period / 2 <= 0.95 * d:
        x += sign * trapezoid(start, ramp, max(lobe, 0.0))
        y += 0.3 * trapezoid(start - 2 * ramp, ramp / 2, 0.0)  # the blip before each lobe
        start += period / 2
        sign = -sign
    return np.stack([z, x, y])


def gradient_artifact(volume_onsets: np.ndarray, acq: Acquisition, grid: SampleGrid) -> np.ndarray:
    """The gradient waveforms of every slice of every volume, as the EEG samples them.

    Parameters
    ----------
    volume_onsets : array of shape (n_volumes,)
        Onsets of the volumes on the EEG clock (s), at the scanner's pace.
    acq : Acquisition
    grid : SampleGrid

    Returns
    -------
    w : array of shape (3, n_times), float32
        Per axis (z, x, y), unit peak before filtering; zero outside the volumes.
    """
    from scipy.signal import resample_poly

    sfreq, t_start, n_times = grid.sfreq, grid.t_start, grid.n_times
    up = max(1, int(round(_FINE_HZ / sfreq)))
    fine_hz = sfreq * up
    n_fine = n_times * up
    out = np.zeros((3, n_fine))
    onsets = np.asarray(volume_onsets, float)
    if acq.sync:  # locked clocks: every volume is the same samples, pasted at its onset
        n_vol = int(round(acq.t_r * fine_hz))
        volume = slice_waveforms(_phase(np.arange(n_vol) / fine_hz, acq.slice_s), acq)
        for onset in onsets:
            k = int(round((onset - t_start) * fine_hz))
            a, b = max(k, 0), min(k + n_vol, n_fine)
            if a < b:
                out[:, a:b] = volume[:, a - k : b - k]
    else:  # the scanner's clock runs fast: every slice lands on another sub-sample phase
        rate = acq.rate
        slice_s = acq.slice_s / rate
        t = t_start + np.arange(n_fine) / fine_hz
        for onset in acq.on_eeg_clock(onsets):
            a, b = np.searchsorted(t, [onset, onset + acq.n_slices * slice_s])
            if a < b:
                phase = _phase(t[a:b] - onset, slice_s) * rate
                out[:, a:b] = slice_waveforms(phase, acq)
    # the amplifier's anti-alias filter, then the EEG samples
    return resample_poly(out, 1, up, axis=1, window=("kaiser", 8.0)).astype(np.float32)


def _phase(t: np.ndarray, period: float) -> np.ndarray:
    """Time into the current slice (``t`` from the volume's onset), robust at the edges."""
    j = np.floor(t / period + 1e-9)
    return np.maximum(t - j * period, 0.0)


def gradient_mix(rng: np.random.Generator, n_chans: int) -> np.ndarray:
    """Per-channel gains (V) of the three axes' dB/dt: up to a few mV, sign and shape vary."""
    scale = np.exp(rng.normal(np.log(1.5e-3), 0.5, (n_chans, 1)))
    direction = rng.normal(0.0, 1.0, (n_chans, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return scale * direction


def motion_drift(rng: np.random.Generator, n_chans: int, n_times: int, sfreq: float) -> np.ndarray:
    """Slow multiplicative drift of each channel's gain with head motion (a few %)."""
    step = max(1, round(sfreq / 10.0))
    slow = slow_noise(rng, n_chans, n_times // step + 2, sfreq=sfreq / step, f_hi=0.02)
    idx = np.arange(n_times) / step
    drift = np.stack([np.interp(idx, np.arange(s.size), s) for s in slow])
    return (1.0 + 0.03 * drift).astype(np.float32)


def pulse_artifact(
    rng: np.random.Generator, beats: np.ndarray, topography: np.ndarray, grid: SampleGrid
) -> np.ndarray:
    """The pulse artifact (V) on every channel, locked to the R-peaks ``beats``.

    Parameters
    ----------
    beats : array of shape (n_beats,)
        R-peak times (s, EEG clock).
    topography : array of shape (n_chans, 3)
        Each channel's weights of the three basis waves (V at unit weight).

    Returns
    -------
    bcg : array of shape (n_chans, n_times), float32
    """
    sfreq, t_start, n_times = grid.sfreq, grid.t_start, grid.n_times
    beats = np.asarray(beats, float)
    rr = np.diff(beats, append=beats[-1] + np.median(np.diff(beats))) if beats.size > 1 else [1.0]
    waves = np.zeros((3, n_times))
    for beat, interval in zip(beats, rr, strict=True):
        length = 0.6 * np.sqrt(min(max(interval, 0.4), 2.0))  # the wave stretches with RR
        start = beat + 0.2 + rng.normal(0.0, 0.01)
        a = int(np.floor((start - t_start) * sfreq))
        n = int(np.ceil(length * sfreq)) + 1
        if a + n <= 0 or a >= n_times:
            continue
        tau = ((a + np.arange(n)) / sfreq + t_start - start) / length  # 0 → 1 over the wave
        env = np.where((tau >= 0) & (tau <= 1), np.sin(np.pi * np.clip(tau, 0, 1)) ** 2, 0.0)
        basis = np.stack(
            [np.sin(2 * np.pi * tau), np.sin(4 * np.pi * tau), np.cos(2 * np.pi * tau) - 1]
        )
        weights = np.exp(rng.normal(0.0, 0.15)) * (1.0 + rng.normal(0.0, 0.1, 3))
        lo, hi = max(a, 0), min(a + n, n_times)
        waves[:, lo:hi] += (weights[:, None] * basis * env)[:, lo - a : hi - a]
    return (topography @ waves).astype(np.float32)


def pulse_topography(rng: np.random.Generator, positions: np.ndarray) -> np.ndarray:
    """Smooth per-channel weights (V) of the pulse artifact's three basis waves.

    Larger at temporal and lateral sites (near the temporal arteries) and peak-to-peak
    50–200 µV.
    """
    pos = np.asarray(positions, float)
    unit = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    lateral = np.abs(unit[:, 0])
    out = np.empty((len(pos), 3))
    for k in range(3):
        axis = rng.normal(0.0, 1.0, 3)
        axis /= np.linalg.norm(axis)
        out[:, k] = (unit @ axis) * (0.6 + 0.8 * lateral)
    amp = rng.uniform(50e-6, 200e-6) / 2
    return amp * out / np.abs(out).max()


def parse_artifacts(spec) -> tuple[str, ...]:
    """``"gradient,bcg"`` (or a sequence) → the artifacts named, in a fixed order."""
    if spec is None or spec == "" or spec == ():
        return ()
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in ARTIFACTS]
    if unknown:
        raise ValueError(
            f"'artifacts': unknown artifact(s) {unknown}; known: {', '.join(ARTIFACTS)}."
        )
    return tuple(a for a in ARTIFACTS if a in names)
