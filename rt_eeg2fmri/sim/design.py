"""The oddball task and the neural drive of every region.

Task (per run, as in ds000116): stimuli every 2–3 s (uniform), 80 % standards and 20 %
targets (never two targets in a row, none among the first three trials), 200 ms long;
the subject presses a button for targets (96 % hits, log-normal reaction times around
the subject's median) and rarely for standards (1 % false alarms).

Neural drive of region ``r`` on a 50 Hz grid (unitless; BOLD is ``amp · HRF ∗ drive``):

``drive_r(t) = Σ_k W[r, type_k] · g_k · κ(t − t_k) + spont_r · s_r(t)``

- ``W`` are the task weights (:mod:`.regions`), ``κ`` a brief unit-area neural response
  (gamma density, mean ≈ 0.2 s) and ``g_k`` the trial's gain: ``(1 + 0.3 a(t_k)) ×
  lognormal(0, 0.25)``, with ``a`` a slow attention fluctuation (< 0.05 Hz). The same
  gains scale the trial's evoked EEG, so evoked amplitudes carry what the BOLD sees.
- ``s_r`` is a spontaneous slow fluctuation (< 0.1 Hz, unit variance): a network
  component shared within the region's network plus a private one. The attention
  network follows ``a``; the default-mode network is anticorrelated with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .regions import EVENT_TYPES, NETWORKS, REGIONS, task_weights

NEURAL_SFREQ = 50.0  # Hz, grid of the neural drive
PRE_SCAN = 32.0  # s of drive simulated before the EEG starts (HRF history of volume 0)
STIM_DURATION = 0.2
ISI = (2.0, 3.0)
TARGET_RATE = 0.2
HIT_RATE, FALSE_ALARM_RATE = 0.96, 0.01

# BrainVision marker (type, code) and ds000116 stimulus code of each event type.
MARKERS = {
    "auditory_standard": ("Stimulus", 1),
    "auditory_target": ("Stimulus", 2),
    "visual_standard": ("Stimulus", 1),
    "visual_target": ("Stimulus", 2),
    "button_press": ("Response", 1),
}
LEGACY_CODES = {
    "auditory_standard": 125,
    "auditory_target": 150,
    "visual_standard": 225,
    "visual_target": 250,
}


@dataclass(frozen=True)
class Drive:
    """Neural drive of one run.

    Attributes
    ----------
    times : array of shape (n_steps,)
        Seconds from the first volume (negative before the scan), every 1/NEURAL_SFREQ s.
    drive : array of shape (n_regions, n_steps)
        Total drive (evoked + spontaneous).
    events : DataFrame
        Columns ``onset`` (s from the first volume, on the EEG sample grid), ``duration``,
        ``trial_type``, ``response_time`` (s, targets and false alarms; NaN otherwise)
        and ``gain`` (the trial gain, not written to the events files).
    """

    times: np.ndarray
    drive: np.ndarray
    events: pd.DataFrame


def slow_noise(
    rng: np.random.Generator, n: int, n_times: int, *, sfreq: float, f_hi: float
) -> np.ndarray:
    """Unit-variance noise low-passed below ``f_hi`` Hz (cosine taper over the last 30 %).

    Returns
    -------
    x : array of shape (n, n_times)
    """
    white = rng.standard_normal((n, n_times))
    spec = np.fft.rfft(white, axis=-1)
    f = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    f0 = 0.7 * f_hi
    gain = np.where(f <= f0, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip((f - f0) / (f_hi - f0), 0, 1))))
    gain[0] = 0.0
    x = np.fft.irfft(spec * gain, n=n_times, axis=-1)
    x -= x.mean(axis=-1, keepdims=True)
    return x / np.maximum(x.std(axis=-1, keepdims=True), 1e-12)


def oddball_events(
    task: str,
    rng: np.random.Generator,
    *,
    duration: float,
    sfreq: float,
    rt_median: float,
) -> pd.DataFrame:
    """Stimuli and button presses of one oddball run.

    Parameters
    ----------
    task : ``"auditory"`` | ``"visual"``
    rng : numpy.random.Generator
    duration : float
        Scan duration (s); stimuli fall between ~5 s and ``duration − 3`` s.
    sfreq : float
        EEG rate: onsets are rounded to its sample grid.
    rt_median : float
        Median reaction time (s).

    Returns
    -------
    events : DataFrame
        ``onset``, ``duration``, ``trial_type``, ``response_time``, sorted by onset.
    """
    onsets = []
    t = rng.uniform(4.0, 6.0)
    while t <= duration - 3.0:
        onsets.append(t)
        t += rng.uniform(*ISI)
    p = TARGET_RATE / (1.0 - TARGET_RATE)  # conditional rate after a standard
    targets = np.zeros(len(onsets), dtype=bool)
    for i in range(3, len(onsets)):
        targets[i] = not targets[i - 1] and rng.random() < p
    rows = []
    for onset, is_target in zip(onsets, targets, strict=True):
        kind = f"{task}_{'target' if is_target else 'standard'}"
        press = rng.random() < (HIT_RATE if is_target else FALSE_ALARM_RATE)
        rt = float(np.clip(rt_median * np.exp(rng.normal(0.0, 0.18)), 0.2, 1.2)) if press else None
        rows.append((onset, STIM_DURATION, kind, rt if rt is not None else np.nan))
        if rt is not None:
            rows.append((onset + rt, 0.0, "button_press", np.nan))
    events = pd.DataFrame(rows, columns=["onset", "duration", "trial_type", "response_time"])
    events["onset"] = np.round(events["onset"].to_numpy() * sfreq) / sfreq
    return events.sort_values("onset", kind="stable").reset_index(drop=True)


def _neural_kernel() -> np.ndarray:
    t = np.arange(0.0, 1.0, 1.0 / NEURAL_SFREQ) + 0.5 / NEURAL_SFREQ
    k = t**2 * np.exp(-t / 0.07)  # gamma(3, 0.07 s): mean 0.21 s
    return k / k.sum() * NEURAL_SFREQ  # unit area in seconds


def neural_drive(
    task: str,
    rng: np.random.Generator,
    *,
    t_start: float,
    t_stop: float,
    scan_duration: float,
    sfreq: float,
    rt_median: float,
    regions=REGIONS,
) -> Drive:
    """Events and the neural drive of every region for one run.

    Parameters
    ----------
    task : ``"auditory"`` | ``"visual"``
    rng : numpy.random.Generator
    t_start, t_stop : float
        Span of the EEG (s from the first volume); the drive starts ``PRE_SCAN`` s earlier.
    scan_duration : float
        ``n_volumes · t_r`` (s).
    sfreq : float
        EEG rate (event onsets lie on its sample grid).
    rt_median : float
        The subject's median reaction time (s).
    regions : sequence of Region

    Returns
    -------
    drive : Drive
    """
    t0 = np.floor((t_start - PRE_SCAN) * NEURAL_SFREQ) / NEURAL_SFREQ
    n_steps = int(np.ceil((t_stop - t0) * NEURAL_SFREQ)) + 1
    times = t0 + np.arange(n_steps) / NEURAL_SFREQ

    # Slow latents: attention, one per network, one private per region.
    attention = slow_noise(rng, 1, n_steps, sfreq=NEURAL_SFREQ, f_hi=0.05)[0]
    nets = slow_noise(rng, len(NETWORKS), n_steps, sfreq=NEURAL_SFREQ, f_hi=0.1)
    nets[NETWORKS.index("attention")] = 0.6 * attention + 0.8 * nets[NETWORKS.index("attention")]
    nets[NETWORKS.index("dmn")] = -0.6 * attention + 0.8 * nets[NETWORKS.index("dmn")]
    private = slow_noise(rng, len(regions), n_steps, sfreq=NEURAL_SFREQ, f_hi=0.1)
    net_idx = np.array([NETWORKS.index(r.network) for r in regions])
    spont = 0.7 * nets[net_idx] + 0.7 * private
    spont /= spont.std(axis=1, keepdims=True)

    events = oddball_events(task, rng, duration=scan_duration, sfreq=sfreq, rt_median=rt_median)
    idx = np.clip(np.round((events["onset"].to_numpy() - t0) * NEURAL_SFREQ).astype(int), 0, None)
    att = 1.0 + 0.3 * attention[np.minimum(idx, n_steps - 1)]
    gains = np.clip(att, 0.3, None) * np.exp(rng.normal(0.0, 0.25, len(events)))
    events["gain"] = gains

    impulses = np.zeros((len(EVENT_TYPES), n_steps))
    type_idx = events["trial_type"].map(EVENT_TYPES.index).to_numpy(dtype=int)
    np.add.at(impulses, (type_idx, np.minimum(idx, n_steps - 1)), gains)
    from scipy.signal import oaconvolve

    evoked = oaconvolve(impulses, _neural_kernel()[None, :], mode="full", axes=-1)[:, :n_steps]
    drive = task_weights(regions) @ evoked
    drive += np.array([r.spont for r in regions])[:, None] * spont
    return Drive(times=times, drive=drive, events=events)
