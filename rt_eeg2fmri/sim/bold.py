"""BOLD: HRF-convolved neural drive as Gaussian blobs on an EPI-like baseline, plus noise.

- Baseline: an EPI-like image derived from the MNI152 T1 contrast (CSF bright ≈ 1400,
  grey matter ≈ 950, white matter ≈ 750; scalp ≈ 150 and air ≈ 0), slightly blurred,
  with a smooth coil-sensitivity field and susceptibility dropout in orbitofrontal
  cortex and the temporal poles.
- Signal: region ``r`` adds ``blob_r(v) · amp_r · (HRF_subject ∗ drive_r)(t)`` percent of
  the baseline, with ``blob_r`` a Gaussian (σ 9–10 mm, cut at 3 σ) kept inside ``mni_mask()``
  and the HRF SPM's canonical shape peaking at the subject's latency (5–7 s). Each
  slice is sampled at its acquisition time (``SliceTiming``: ascending, sequential).
- Noise: complex Gaussian thermal noise (magnitude image, so Rician in the background),
  cardiac and respiratory fluctuations sampled at slice times (so they alias like real
  ones; RETROICOR-style terms with smooth spatial maps, strongest in CSF), a slow
  shared vasomotor fluctuation, and voxelwise linear + quadratic drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import GRID_SHAPE, mm_to_voxel, mni_mask, mni_t1, voxel_to_mm
from ..hrf import hrf_convolve, spm_hrf
from .design import Drive, slow_noise
from .regions import REGIONS, SubjectParams

THERMAL_SD = 11.0  # per quadrature channel, ≈ 1.2 % of grey-matter intensity
PHYSIO_PERCENT = 0.6
DRIFT_PERCENT = 1.0


@dataclass(frozen=True)
class BoldRun:
    """One simulated BOLD run.

    Attributes
    ----------
    bold : array of shape (53, 63, 52, n_volumes), int16
        What the scanner wrote.
    noisefree : array of shape (53, 63, 52, n_volumes), float32
        Baseline plus every region's signal, without noise or drift.
    eeg_predictable : array of shape (53, 63, 52, n_volumes), float32
        Baseline plus the signal of the EEG-visible regions only.
    slice_timing : array of shape (52,)
        Acquisition time of each slice after the volume onset (s).
    """

    bold: np.ndarray
    noisefree: np.ndarray
    eeg_predictable: np.ndarray
    slice_timing: np.ndarray


def _smooth_field(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """``n`` zero-mean, unit-SD smooth random fields on the grid, shape (n, *GRID_SHAPE)."""
    from scipy.ndimage import gaussian_filter

    out = np.empty((n, *GRID_SHAPE), dtype=np.float32)
    for i in range(n):
        f = gaussian_filter(rng.standard_normal(GRID_SHAPE), sigma, mode="nearest")
        out[i] = (f - f.mean()) / f.std()
    return out


def _dropout(xyz: np.ndarray) -> np.ndarray:
    loss = np.zeros(len(xyz))
    for centre, depth, sigma in (
        ((0.0, 36.0, -24.0), 0.55, 11.0),
        ((-40.0, 12.0, -34.0), 0.4, 10.0),
        ((40.0, 12.0, -34.0), 0.4, 10.0),
    ):
        loss = np.maximum(
            loss, depth * np.exp(-0.5 * np.sum((xyz - centre) ** 2, axis=1) / sigma**2)
        )
    return 1.0 - loss


def epi_baseline(rng: np.random.Generator, *, scale: float = 1.0) -> np.ndarray:
    """A subject's EPI-like mean image.

    Returns
    -------
    baseline : array of shape (53, 63, 52), float32
    """
    from scipy.ndimage import gaussian_filter

    t1, mask = np.asarray(mni_t1(), dtype=np.float64), mni_mask()
    img = np.where(t1 > 0.12, 120.0 + 150.0 * t1, 0.0)
    img[mask] = np.clip(1650.0 - 1100.0 * t1[mask], 550.0, 1450.0)
    img = gaussian_filter(img, 0.7)
    ijk = np.indices(GRID_SHAPE).reshape(3, -1).T
    img *= _dropout(voxel_to_mm(ijk)).reshape(GRID_SHAPE)
    bias = 1.0 + 0.08 * _smooth_field(rng, 1, 10.0)[0]
    z = np.linspace(-1.0, 1.0, GRID_SHAPE[2])
    bias *= 1.0 + 0.06 * z[None, None, :]
    return (img * bias * scale).astype(np.float32)


def region_blobs(subject: SubjectParams, regions=REGIONS) -> np.ndarray:
    """Spatial footprint of each region inside the mask (peak 1, cut at 3 σ).

    Returns
    -------
    blobs : array of shape (n_regions, 53, 63, 52), float32
    """
    mask = mni_mask()
    out = np.zeros((len(regions), *GRID_SHAPE), dtype=np.float32)
    for i, region in enumerate(regions):
        centre = mm_to_voxel(subject.xyz[i])
        reach = int(np.ceil(3 * region.sigma / 3.0)) + 1
        lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
        hi = np.minimum(np.ceil(centre).astype(int) + reach + 1, GRID_SHAPE)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        ijk = np.indices(hi - lo).reshape(3, -1).T + lo
        d2 = np.sum((voxel_to_mm(ijk) - subject.xyz[i]) ** 2, axis=1)
        g = np.exp(-0.5 * d2 / region.sigma**2)
        g[d2 > (3 * region.sigma) ** 2] = 0.0
        out[(i, *sl)] = g.reshape(hi - lo) * mask[sl]
    return out


def region_atlas(regions=REGIONS) -> np.ndarray:
    """A label image of the regions (the per-region report's atlas).

    In-mask voxels within one σ of a region's nominal centre get its index + 1 (the
    nearest centre, in σ, where two overlap); 0 elsewhere.

    Returns
    -------
    labels : array of shape (53, 63, 52), int16
    """
    mask = mni_mask()
    ijk = np.argwhere(mask)
    xyz = voxel_to_mm(ijk)
    best = np.full(len(ijk), np.inf)
    out = np.zeros(GRID_SHAPE, dtype=np.int16)
    for i, region in enumerate(regions):
        d = np.sqrt(np.sum((xyz - np.asarray(region.xyz)) ** 2, axis=1)) / region.sigma
        take = (d <= 1.0) & (d < best)
        best[take] = d[take]
        out[tuple(ijk[take].T)] = i + 1
    return out


def region_psc(
    drive: Drive, subject: SubjectParams, sample_times: np.ndarray, regions=REGIONS
) -> np.ndarray:
    """Percent signal change of each region at ``sample_times``.

    Parameters
    ----------
    drive : Drive
    subject : SubjectParams
    sample_times : array of shape (...)
        Seconds from the first volume.

    Returns
    -------
    psc : array of shape (n_regions, ...)
    """
    dt = drive.times[1] - drive.times[0]
    # spm_hrf's ``peak`` is the gamma shape: the response peaks about 1 s earlier.
    peaks = np.array(
        [max(subject.hrf_peak + subject.delay(i), 2.5) + 1.0 for i in range(len(regions))]
    )
    conv = np.empty(drive.drive.shape, dtype=np.float64)
    for peak in np.unique(peaks):  # regions sharing a delay are convolved together
        rows = peaks == peak
        hrf = spm_hrf(dt, peak=peak, undershoot=subject.hrf_undershoot, ratio=subject.hrf_ratio)
        conv[rows] = hrf_convolve(drive.drive[rows], hrf)
    amp = np.array([r.amp for r in regions]) * subject.bold_gain
    flat = np.asarray(sample_times, dtype=float).ravel()
    out = np.stack([np.interp(flat, drive.times, c) for c in conv]) * amp[:, None]
    return out.reshape(len(regions), *np.shape(sample_times))


def _phase_from_events(events: np.ndarray, t: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(events, t, side="right") - 1, 0, len(events) - 2)
    return 2 * np.pi * (t - events[k]) / (events[k + 1] - events[k])


def _noise_regressors(
    rng: np.random.Generator, times: np.ndarray, beats: np.ndarray, n_volumes: int
) -> np.ndarray:
    """Structured-noise time courses at slice times, shape (n_reg, n_volumes, n_slices)."""
    cardiac = _phase_from_events(beats, times)
    resp_rate = rng.uniform(0.22, 0.33)
    fine = np.arange(times.min() - 1.0, times.max() + 1.0, 0.05)
    rate = resp_rate * (1 + 0.1 * slow_noise(rng, 1, fine.size, sfreq=20.0, f_hi=0.03)[0])
    resp = np.interp(times, fine, 2 * np.pi * np.cumsum(rate) * 0.05) + rng.uniform(0, 2 * np.pi)
    slow = slow_noise(rng, 1, fine.size, sfreq=20.0, f_hi=0.1)[0]
    vol = np.linspace(-1.0, 1.0, n_volumes)[:, None] * np.ones_like(times)
    regs = [np.cos(cardiac), np.sin(cardiac), np.cos(2 * cardiac), np.sin(2 * cardiac)]
    regs += [np.cos(resp), np.sin(resp), np.cos(2 * resp), np.sin(2 * resp)]
    regs += [np.interp(times, fine, slow), vol, vol**2 - np.mean(vol**2)]
    return np.stack(regs)


def synthesize_bold(
    drive: Drive,
    subject: SubjectParams,
    baseline: np.ndarray,
    blobs: np.ndarray,
    rng: np.random.Generator,
    *,
    n_volumes: int,
    t_r: float,
    beats: np.ndarray,
    regions=REGIONS,
) -> BoldRun:
    """Simulate one BOLD run.

    Parameters
    ----------
    drive : Drive
    subject : SubjectParams
    baseline : array of shape (53, 63, 52)
    blobs : array of shape (n_regions, 53, 63, 52)
    rng : numpy.random.Generator
    n_volumes : int
    t_r : float
    beats : array of shape (n_beats,)
        Heartbeat times (s from the first volume).
    regions : sequence of Region

    Returns
    -------
    run : BoldRun
    """
    n_z = GRID_SHAPE[2]
    slice_timing = np.arange(n_z) * t_r / n_z
    times = np.arange(n_volumes)[:, None] * t_r + slice_timing[None, :]  # (n_vol, n_z)
    psc = region_psc(drive, subject, times, regions).astype(np.float32)  # (n_reg, n_vol, n_z)
    visible = np.array([r.eeg_visible for r in regions])
    regs = _noise_regressors(rng, times, beats, n_volumes).astype(np.float32)

    t1 = np.asarray(mni_t1())
    csf = np.clip((0.55 - t1) / 0.3, 0.0, 1.0) * mni_mask()
    maps = _smooth_field(rng, regs.shape[0], 4.0)
    maps[:8] *= (PHYSIO_PERCENT * subject.noise_scale * (0.5 + 1.5 * csf))[None] / 2.0
    maps[8] *= 0.3 + 0.2 * csf
    maps[9:] *= DRIFT_PERCENT

    thermal = np.float32(THERMAL_SD * subject.noise_scale)
    shape4 = (*GRID_SHAPE, n_volumes)
    noisefree = np.empty(shape4, dtype=np.float32)
    predictable = np.empty(shape4, dtype=np.float32)
    bold = np.empty(shape4, dtype=np.int16)
    for z in range(n_z):
        base = baseline[:, :, z, None]
        b = blobs[:, :, :, z].reshape(len(regions), -1).T  # (n_xy, n_reg)
        all_pct = (b @ psc[:, :, z]).reshape(*GRID_SHAPE[:2], n_volumes)
        vis_pct = (b[:, visible] @ psc[visible, :, z]).reshape(*GRID_SHAPE[:2], n_volumes)
        noisefree[:, :, z] = base * (1 + all_pct / 100)
        predictable[:, :, z] = base * (1 + vis_pct / 100)
        m = maps[:, :, :, z].reshape(len(regs), -1).T
        structured = (m @ regs[:, :, z]).reshape(*GRID_SHAPE[:2], n_volumes)
        signal = noisefree[:, :, z] + base * structured / 100
        re = signal + thermal * rng.standard_normal(signal.shape, dtype=np.float32)
        im = thermal * rng.standard_normal(signal.shape, dtype=np.float32)
        bold[:, :, z] = np.clip(np.rint(np.hypot(re, im)), 0, 32767).astype(np.int16)
    return BoldRun(
        bold=bold, noisefree=noisefree, eeg_predictable=predictable, slice_timing=slice_timing
    )
