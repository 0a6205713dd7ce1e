"""EEG: a real forward model (MNE spherical head) and the synthesis of the recorded signal.

Forward model
    Electrodes come from MNE's template 10-20/10-10 montage (``colin27_1020``, the new name
    of ``standard_1020``). A four-shell sphere (:func:`mne.make_sphere_model`) is fitted to
    them. Region positions map from MNI (mm) into MNE's head frame with the montage's
    own native→head transform (:func:`mne.channels.compute_native_head_t`): the montage
    lives on the Colin27 head, which is registered to MNI space, so ``head = T · (mni /
    1000)`` is the documented approximation. A source closer than 6 mm to the inner
    shell is pulled radially inward to that depth. Gains come from
    :func:`mne.make_forward_solution` on a discrete source space of the region dipoles
    plus 150 random grey-matter dipoles that carry the spatially correlated 1/f background.

Signal
    ``eeg = G · sources + background + blinks + pulse residue``, re-referenced to FCz
    (the usual MR cap reference; average reference when FCz is recorded), plus
    amplifier noise and a little line noise. Sources of visible regions are evoked
    responses (P1, N1, P2, P300, motor potential: Gaussian components scaled by each
    trial's gain, i.e. the same gains as the BOLD drive) plus band-limited
    oscillations whose envelopes follow the region's standardized drive
    (:class:`.regions.Band`). Deep regions project nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..grid import mni_mask, mni_t1, voxel_to_mm
from .design import Drive
from .regions import EVENT_TYPES, REGIONS, SubjectParams, task_weights

REFERENCE = "FCz"
N_BACKGROUND = 150
SHELL_MARGIN = 0.006  # m between a source and the inner shell
ERP_SPAN = (-0.2, 0.8)  # s around an event covered by its evoked template


def _mne():
    import mne

    mne.set_log_level("ERROR")
    return mne


@functools.cache
def _montage_name() -> str:
    mne = _mne()
    return (
        "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    )


def montage():
    """The template 10-20/10-10 montage (``colin27_1020``, formerly ``standard_1020``)."""
    return _mne().channels.make_standard_montage(_montage_name())


@functools.cache
def montage_names() -> tuple[str, ...]:
    """Channel names of the template montage."""
    return tuple(montage().ch_names)


@dataclass(frozen=True)
class HeadModel:
    """One subject's forward model.

    Attributes
    ----------
    ch_names : list of str
        Recorded channels.
    reference : str
        ``"FCz"`` or ``"average"``.
    positions : array of shape (n_chans, 3)
        Electrode positions in MNE's head frame (m; RAS, origin between the ears).
    gain : array of shape (n_sensors, n_visible)
        V per A·m for the visible regions' fixed-orientation dipoles; ``n_sensors`` is
        ``n_chans`` plus the reference electrode last when it is FCz.
    background_mix : array of shape (n_sensors, n_sensors)
        Lower-triangular factor of the background dipoles' sensor covariance (unit mean
        variance).
    blink_topo : array of shape (n_sensors,)
        Blink field, 1 at the frontopolar electrodes.
    sphere : tuple of (array of shape (3,), float)
        Sphere centre (m, head frame) and outer radius (m).
    """

    ch_names: list
    reference: str
    positions: np.ndarray
    gain: np.ndarray
    background_mix: np.ndarray
    blink_topo: np.ndarray
    sphere: tuple


def mni_to_head(xyz_mm: np.ndarray) -> np.ndarray:
    """MNI (mm) → MNE head frame (m) through the template montage's native→head transform.

    Parameters
    ----------
    xyz_mm : array of shape (n, 3)

    Returns
    -------
    rr : array of shape (n, 3)
    """
    mne = _mne()
    trans = mne.channels.compute_native_head_t(montage())
    return mne.transforms.apply_trans(trans, np.asarray(xyz_mm, dtype=float) / 1000.0)


def _grey_matter_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random cortical grey-matter positions (MNI mm) from the template."""
    mask, t1 = mni_mask(), mni_t1()
    ijk = np.argwhere(mask & (t1 > 0.5) & (t1 < 0.72))
    xyz = voxel_to_mm(ijk)
    centre = np.array([0.0, -18.0, 18.0])
    outer = xyz[np.linalg.norm(xyz - centre, axis=1) > 50.0]
    return outer[rng.choice(len(outer), size=n, replace=False)]


def head_model(
    ch_names, subject: SubjectParams, rng: np.random.Generator, *, regions=REGIONS
) -> HeadModel:
    """Build a subject's forward model (sphere fitted to the montage, MNE forward solution).

    Parameters
    ----------
    ch_names : sequence of str
        Montage channel names to record.
    subject : SubjectParams
        Region positions and orientations.
    rng : numpy.random.Generator
        Draws the background dipoles.
    regions : sequence of Region

    Returns
    -------
    model : HeadModel
    """
    mne = _mne()
    ch_names = list(ch_names)
    reference = "average" if REFERENCE in ch_names else REFERENCE
    sensors = ch_names + ([REFERENCE] if reference == REFERENCE else [])
    info = mne.create_info(sensors, 1000.0, "eeg")
    info.set_montage(montage(), on_missing="raise")
    sphere = mne.make_sphere_model("auto", "auto", info)
    r0 = np.asarray(sphere["r0"], dtype=float)
    inner = float(min(layer["rad"] for layer in sphere["layers"]))

    visible = [i for i, r in enumerate(regions) if r.eeg_visible]
    bg_xyz = _grey_matter_points(rng, N_BACKGROUND)
    rr = mni_to_head(np.vstack([subject.xyz[visible], bg_xyz]))
    d = rr - r0
    dist = np.linalg.norm(d, axis=1, keepdims=True)
    limit = inner - SHELL_MARGIN
    rr = np.where(dist > limit, r0 + d * (limit / dist), rr)
    src = mne.setup_volume_source_space(
        pos=dict(rr=rr, nn=np.tile([0.0, 0.0, 1.0], (len(rr), 1))), sphere=sphere
    )
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False)
    free = fwd["sol"]["data"].reshape(len(sensors), len(rr), 3)
    if free.shape[1] != len(rr):  # pragma: no cover - sources are clamped inside the shell
        raise RuntimeError("the forward solution dropped sources outside the inner shell.")
    n_vis = len(visible)
    gain = np.einsum("csk,sk->cs", free[:, :n_vis], subject.orientation[visible])
    bg_ori = rng.standard_normal((N_BACKGROUND, 3))
    bg_ori /= np.linalg.norm(bg_ori, axis=1, keepdims=True)
    g_bg = np.einsum("csk,sk->cs", free[:, n_vis:], bg_ori)
    cov = g_bg @ g_bg.T
    cov /= np.mean(np.diag(cov))
    mix = np.linalg.cholesky(cov + 1e-6 * np.eye(len(sensors)))

    pos = np.array([ch["loc"][:3] for ch in info["chs"]])
    fid = {d["ident"]: d["r"] for d in info["dig"] if d["kind"] == 1}  # FIFFV_POINT_CARDINAL
    nasion = np.asarray(fid.get(2, [0.0, 0.09, 0.0]))
    eyes = nasion + np.array([0.0, -0.015, -0.03])
    topo = np.exp(-np.linalg.norm(pos - eyes, axis=1) / 0.03)
    front = [sensors.index(c) for c in ("Fp1", "Fp2") if c in sensors]
    topo /= topo[front].mean() if front else topo.max()
    return HeadModel(
        ch_names=ch_names,
        reference=reference,
        positions=pos[: len(ch_names)],
        gain=gain,
        background_mix=mix,
        blink_topo=topo,
        sphere=(r0, float(sphere.radius)),
    )


def _band_noise(rng, bands: list[tuple[float, float]], n_times: int, sfreq: float) -> np.ndarray:
    """Unit-variance noise in each (lo, hi) Hz band (cosine edges 1 Hz wide).

    Returns
    -------
    x : array of shape (n_bands, n_times), float32
    """
    from scipy import fft

    n_fft = fft.next_fast_len(n_times, real=True)
    spec = fft.rfft(rng.standard_normal((len(bands), n_fft), dtype=np.float32), axis=-1)
    f = np.fft.rfftfreq(n_fft, 1.0 / sfreq).astype(np.float32)
    for i, (lo, hi) in enumerate(bands):
        rise = np.clip((f - (lo - 1.0)) / 1.0, 0.0, 1.0)
        fall = np.clip(((hi + 1.0) - f) / 1.0, 0.0, 1.0)
        spec[i] *= np.sin(0.5 * np.pi * rise) * np.sin(0.5 * np.pi * fall)
    x = fft.irfft(spec, n=n_fft, axis=-1)[:, :n_times]
    x /= np.maximum(x.std(axis=-1, keepdims=True), 1e-12)
    return x


def _pink(rng, n: int, n_times: int, sfreq: float, *, exponent: float = 1.0) -> np.ndarray:
    """Unit-variance noise with power ∝ 1/f^exponent above 0.3 Hz (float32)."""
    from scipy import fft

    n_fft = fft.next_fast_len(n_times, real=True)
    spec = fft.rfft(rng.standard_normal((n, n_fft), dtype=np.float32), axis=-1)
    f = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
    shape = (np.maximum(f, 0.3) ** (-exponent / 2)) * (f > 0.05)
    spec *= shape.astype(np.float32)
    x = fft.irfft(spec, n=n_fft, axis=-1)[:, :n_times]
    x /= np.maximum(x.std(axis=-1, keepdims=True), 1e-12)
    return x


def _envelope_drive(drive: Drive, regions_idx, times: np.ndarray) -> np.ndarray:
    """Standardized, 0.5 s-smoothed drive of the given regions at ``times``.

    Returns
    -------
    z : array of shape (n_regions, n_times), float32
    """
    from scipy.ndimage import uniform_filter1d

    dt = drive.times[1] - drive.times[0]
    d = uniform_filter1d(drive.drive[regions_idx], size=max(1, round(0.5 / dt)), axis=-1)
    span = (drive.times >= times[0]) & (drive.times <= times[-1])
    mu = d[:, span].mean(axis=1, keepdims=True)
    sd = np.maximum(d[:, span].std(axis=1, keepdims=True), 1e-9)
    z = (d - mu) / sd
    out = np.empty((len(regions_idx), times.size), dtype=np.float32)
    for i in range(len(regions_idx)):
        out[i] = np.interp(times, drive.times, z[i])
    return out


def _erp_templates(
    subject: SubjectParams, visible, sfreq: float, regions
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Evoked source templates per event type, nAm per unit trial gain.

    Returns
    -------
    t : array of shape (n_taps,)
        Seconds relative to the event.
    templates : dict of str to array of shape (n_visible, n_taps)
    """
    t = np.arange(round(ERP_SPAN[0] * sfreq), round(ERP_SPAN[1] * sfreq)) / sfreq
    weights = task_weights(regions)
    base = np.zeros((len(visible), t.size))
    for j, i in enumerate(visible):
        for lat, width, amp in regions[i].erp:
            base[j] += amp * np.exp(-0.5 * ((t - lat - subject.erp_latency_shift) / width) ** 2)
        base[j] *= subject.eeg_gain[i]
    out = {}
    for k, name in enumerate(EVENT_TYPES):
        w = weights[visible, k]
        if np.any(w != 0):
            out[name] = w[:, None] * base
    return t, out


def heartbeats(rng: np.random.Generator, t_start: float, t_stop: float) -> np.ndarray:
    """R-peak times (s) with a subject-like rate (55–80 bpm) and respiratory variability."""
    rate = rng.uniform(55.0, 80.0) / 60.0
    beats, t = [], t_start - rng.uniform(0.0, 1.0 / rate)
    while t < t_stop + 1.0:
        beats.append(t)
        rr = 1.0 / rate * (1.0 + 0.04 * np.sin(2 * np.pi * 0.28 * t) + rng.normal(0.0, 0.02))
        t += rr
    return np.asarray(beats)


def _beat_train(beats: np.ndarray, t_start: float, n_times: int, sfreq: float, kernel):
    from scipy.signal import oaconvolve

    train = np.zeros(n_times)
    idx = np.round((beats - t_start) * sfreq).astype(int)
    np.add.at(train, idx[(idx >= 0) & (idx < n_times)], 1.0)
    lead = kernel[1]
    full = oaconvolve(train, kernel[0], mode="full")
    return full[lead : lead + n_times]


def _pqrst(sfreq: float) -> tuple[np.ndarray, int]:
    t = np.arange(round(-0.3 * sfreq), round(0.5 * sfreq)) / sfreq
    waves = ((-0.18, 0.025, 0.12), (-0.03, 0.008, -0.1), (0.0, 0.012, 1.0), (0.03, 0.01, -0.25))
    k = sum(a * np.exp(-0.5 * ((t - mu) / sd) ** 2) for mu, sd, a in waves)
    k = k + 0.3 * np.exp(-0.5 * ((t - 0.28) / 0.05) ** 2)
    return k, int(-t[0] * sfreq)


def ecg_trace(beats: np.ndarray, *, t_start: float, n_times: int, sfreq: float) -> np.ndarray:
    """An ECG lead (V, ~1 mV R waves) sampled at ``sfreq`` from ``t_start`` (s).

    Returns
    -------
    ecg : array of shape (n_times,)
    """
    return 1e-3 * _beat_train(beats, t_start, n_times, sfreq, _pqrst(sfreq))


def synthesize_eeg(
    model: HeadModel,
    subject: SubjectParams,
    drive: Drive,
    rng: np.random.Generator,
    *,
    sfreq: float,
    t_start: float,
    n_times: int,
    beats: np.ndarray,
    line_freq: float,
    regions=REGIONS,
) -> np.ndarray:
    """The recorded EEG of one run.

    Parameters
    ----------
    model : HeadModel
    subject : SubjectParams
    drive : Drive
        Neural drive and events (onsets in s from the first volume).
    rng : numpy.random.Generator
    sfreq : float
    t_start : float
        Time of the first sample (s from the first volume; negative with a lead-in).
    n_times : int
    beats : array of shape (n_beats,)
        Heartbeat times (s) for the pulse-artifact residue.
    line_freq : float
    regions : sequence of Region

    Returns
    -------
    eeg : array of shape (n_chans, n_times), float32
        Volts, referenced as ``model.reference``.
    """
    times = t_start + np.arange(n_times) / sfreq
    visible = [i for i, r in enumerate(regions) if r.eeg_visible]
    sources = np.zeros((len(visible), n_times), dtype=np.float32)

    # Evoked responses: per-trial gain and a little latency jitter.
    t_tmpl, templates = _erp_templates(subject, visible, sfreq, regions)
    first = round(ERP_SPAN[0] * sfreq)
    for onset, kind, gain in zip(
        drive.events["onset"], drive.events["trial_type"], drive.events["gain"], strict=True
    ):
        if kind not in templates:
            continue
        start = round((onset - t_start) * sfreq) + first + round(rng.normal(0.0, 0.008) * sfreq)
        a, b = max(start, 0), min(start + t_tmpl.size, n_times)
        if a < b:
            sources[:, a:b] += gain * templates[kind][:, a - start : b - start]

    # Oscillations whose envelopes follow the drive.
    pairs = [
        (j, band)
        for j, i in enumerate(visible)
        for band in regions[i].bands
        if band.hi + 1.0 < 0.45 * sfreq
    ]
    shift = subject.alpha_freq - 10.0
    edges = [(b.lo + shift, b.hi + shift) if b.name == "alpha" else (b.lo, b.hi) for _, b in pairs]
    carriers = _band_noise(rng, edges, n_times, sfreq)
    z = _envelope_drive(drive, visible, times)
    for row, (j, band) in enumerate(pairs):
        env = band.amp * subject.eeg_gain[visible[j]] * np.exp(band.kappa * np.clip(z[j], -3, 3))
        sources[j] += carriers[row] * env
    del carriers

    sensors = model.gain @ (sources * 1e-9)  # nAm → A·m → V
    n_sensors = sensors.shape[0]
    sensors += 9e-6 * (model.background_mix @ _pink(rng, n_sensors, n_times, sfreq))

    # Blinks (~15 per minute, 80–250 µV at Fp1/Fp2).
    n_blinks = rng.poisson(0.25 * n_times / sfreq)
    width = round(0.35 * sfreq)
    shape = np.hanning(width) ** 1.5
    blink = np.zeros(n_times)
    for start in rng.integers(0, max(1, n_times - width), n_blinks):
        blink[start : start + width] += np.exp(rng.normal(np.log(130e-6), 0.3)) * shape
    sensors += model.blink_topo[:, None] * blink

    # Residual pulse (ballistocardiogram) artifact after MR-artifact correction.
    bcg_topo = model.background_mix @ rng.standard_normal(n_sensors)
    bcg_topo *= 3e-6 / np.abs(bcg_topo).max()
    t_k = np.arange(round(0.6 * sfreq)) / sfreq
    bcg_kernel = np.sin(2 * np.pi * t_k / 0.6) * np.exp(-t_k / 0.25)
    bcg = _beat_train(beats + 0.2, t_start, n_times, sfreq, (bcg_kernel, 0))
    sensors += bcg_topo[:, None] * bcg

    if model.reference == REFERENCE:
        eeg = sensors[:-1] - sensors[-1]
    else:
        eeg = sensors - sensors.mean(axis=0, keepdims=True)
    eeg += 0.6e-6 * rng.standard_normal(eeg.shape)
    if line_freq < 0.45 * sfreq:
        amp = rng.uniform(0.1e-6, 0.6e-6, (eeg.shape[0], 1))
        eeg += amp * np.sin(2 * np.pi * line_freq * times + rng.uniform(0, 2 * np.pi))
    return eeg.astype(np.float32)
