"""The BOLD target chain: mask → spatial smoothing → target → drift removal.

One implementation of what a model is scored against, used by the window cache (training
targets), the noise ceiling, ``evaluate`` and the replayed truth: :class:`BoldChain`,
built from a :class:`~rt_eeg2fmri.data.preprocessing.Preprocessing` record, and
:func:`default_mask`, the one rule for the voxels kept when no mask is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_option, check_positive
from .._logging import logger

TARGET_METHODS = ("psc", "median_ratio")


@dataclass(frozen=True)
class BoldChain:
    """A run's BOLD series → training targets inside a mask.

    :func:`smooth_bold` (``fwhm``) → in-mask series → :func:`bold_targets`
    (``target``, against the run's own reference or a given one) → :func:`remove_drifts`
    (``high_pass``). The reference is a per-voxel constant and the drift removal is linear
    and keeps voxel means, so a reference computed later over several runs (the subject
    median of ``median_ratio``) gives the same targets as one known up front.

    Parameters
    ----------
    target : ``"psc"`` | ``"median_ratio"``
    fwhm : float | None
        Spatial smoothing in mm (``None``: none).
    high_pass : float | None
        Drift cut-off in Hz (``None``: drifts kept).
    """

    target: str = "psc"
    fwhm: float | None = None
    high_pass: float | None = None

    def series(self, bold: np.ndarray, mask: np.ndarray, *, affine) -> np.ndarray:
        """Smoothed in-mask series of a 4-D run, shape (n_volumes, n_voxels), float32."""
        if self.fwhm:
            bold = smooth_bold(bold, affine, self.fwhm)
        return masked_series(bold, mask)

    def targets(self, series: np.ndarray, *, t_r: float, reference=None, out=None) -> np.ndarray:
        """Targets of an in-mask series from :meth:`series`.

        Parameters
        ----------
        series : array of shape (n_volumes, n_voxels)
        t_r : float
            Repetition time (s), for the drift basis.
        reference : array of shape (n_voxels,) | None
            Reference volume (default: the run's mean for ``psc``, median for
            ``median_ratio``).
        out : array of shape (n_volumes, n_voxels), float32 | None
            Where to write (may be ``series`` itself).

        Returns
        -------
        targets : array of shape (n_volumes, n_voxels), float32
        """
        check_option(self.target, "target", TARGET_METHODS)
        series = np.asarray(series)
        if reference is None:
            reference = run_reference(series, self.target)
        y = apply_reference(series, reference, self.target, out=out)
        if self.high_pass:
            remove_drifts(y, t_r, self.high_pass, out=y)
        return y

    def run(self, bold: np.ndarray, mask: np.ndarray, *, affine, t_r: float) -> np.ndarray:
        """:meth:`series` then :meth:`targets` with the run's own reference."""
        y = self.series(bold, mask, affine=affine)
        return self.targets(y, t_r=t_r, out=y)


def run_reference(series: np.ndarray, target: str) -> np.ndarray:
    """The run's own reference of an in-mask series: mean (``psc``) or median, float64."""
    check_option(target, "target", TARGET_METHODS)
    if target == "psc":
        return series.mean(axis=0, dtype=np.float64)
    return np.median(series, axis=0).astype(np.float64)


def default_mask(session) -> tuple[np.ndarray, str]:
    """The voxels kept when no mask is given, and how they were chosen.

    The reader's mask when it gives one, else the MNI152 mask on SPM's 3 mm grid, else
    the EPI mask of the run's mean image (nilearn's ``compute_epi_mask``; its non-zero
    voxels as a fallback). A run that covers only part of the brain (a slab) keeps only
    the voxels it measured: those not zero in every volume.
    """
    from ..grid import GRID_AFFINE, GRID_SHAPE, mni_mask, same_grid

    if session.mask is not None:
        return np.asarray(session.mask, bool), "the reader's mask"
    if same_grid(session.grid_shape, session.affine, GRID_SHAPE, GRID_AFFINE):
        mask, how = np.array(mni_mask()), "the MNI152 mask (SPM 3 mm grid)"
    else:
        mask, how = _epi_mask(session.bold, session.affine), f"the EPI mask of {session.name}"
    covered = coverage(session.bold)
    if not (mask <= covered).all():
        n_in = int(mask.sum())
        mask = mask & covered
        if not mask.any():
            raise ValueError(f"{session.name}: the BOLD covers none of the voxels of {how}.")
        how += f" ∩ the {int(mask.sum())} of its {n_in} voxels {session.name} covers"
    return mask, how


def coverage(bold: np.ndarray) -> np.ndarray:
    """Voxels a BOLD series measured: not zero in every volume, shape (n_x, n_y, n_z), bool.

    Partial-coverage acquisitions (a slab of slices) and resampled images leave the rest
    of the grid at zero.
    """
    covered = np.zeros(bold.shape[:3], bool)
    for v in range(bold.shape[3]):
        covered |= bold[..., v] != 0
    return covered


def _epi_mask(bold: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import warnings

    import nibabel as nib
    from nilearn.masking import compute_epi_mask

    mean = bold.mean(axis=3, dtype=np.float64).astype(np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, affine)).dataobj) > 0
    except ValueError:
        mask = np.zeros(mean.shape, bool)
    if not mask.any():
        logger.warning("The EPI mask of the mean image is empty; using its non-zero voxels.")
        mask = np.abs(mean) > 0
    if not mask.any():
        raise ValueError("cannot compute a brain mask: the mean BOLD image is all zeros.")
    return mask


def masked_series(bold: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """In-mask voxels of a 4-D series as an array of shape (n_volumes, n_voxels), float32."""
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


def remove_drifts(series: np.ndarray, t_r: float, high_pass: float, *, out=None) -> np.ndarray:
    """High-pass a run's voxel series by regressing out :func:`cosine_drifts`.

    Scanner drift and slow physiological noise are not in the EEG; this is the high-pass
    step of every fMRI pipeline (SPM's 128 s filter, nilearn's ``high_pass``).

    Parameters
    ----------
    series : array of shape (n_volumes, n_voxels)
    t_r : float
    high_pass : float
        Cut-off in Hz.
    out : array of shape (n_volumes, n_voxels), float32 | None
        Where to write (may be ``series``).

    Returns
    -------
    filtered : array of shape (n_volumes, n_voxels), float32
        Same voxel means as ``series``.
    """
    series = np.asarray(series)
    if series.ndim != 2:
        raise ValueError(
            f"remove_drifts: 'series' must be (n_volumes, n_voxels), got shape {series.shape}."
        )
    basis = cosine_drifts(series.shape[0], t_r, high_pass).astype(np.float32)
    if out is None:
        out = np.array(series, dtype=np.float32)
    elif out is not series:
        out[...] = series
    if basis.shape[1]:
        out -= basis @ (basis.T @ out)
    return out


def apply_reference(
    v: np.ndarray, ref: np.ndarray, method: str, *, out=None, warn: bool = True
) -> np.ndarray:
    """Targets of an in-mask series against a reference volume.

    Parameters
    ----------
    v : array of shape (n_volumes, n_voxels)
    ref : array of shape (n_voxels,)
    method : ``"psc"`` | ``"median_ratio"``
        ``psc``: ``100 · (v − ref) / ref``; ``median_ratio`` (the paper's):
        ``v / ref − 1``.
    out : array of shape (n_volumes, n_voxels), float32 | None
        Where to write (may be ``v``).
    warn : bool
        Log voxels with a ~0 reference.

    Returns
    -------
    targets : array of shape (n_volumes, n_voxels), float32
        Voxels whose reference is ~0 (below 1e-6 × the largest |reference|) get 0.
    """
    check_option(method, "method", TARGET_METHODS)
    v = np.asarray(v)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if v.ndim != 2 or ref.size != v.shape[1]:
        raise ValueError(
            f"'reference' must have one value per voxel: series {v.shape}, reference ({ref.size},)."
        )
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
    targets : array of shape (n_voxels,) | (n_volumes, n_voxels)
    mask : array of shape (n_x, n_y, n_z), bool

    Returns
    -------
    volume : array of shape (n_x, n_y, n_z) | (n_x, n_y, n_z, n_volumes), float32
    """
    mask = np.asarray(mask, dtype=bool)
    t = np.asarray(targets.detach().cpu() if hasattr(targets, "detach") else targets, np.float32)
    n_voxels = int(mask.sum())
    if t.ndim not in (1, 2) or t.shape[-1] != n_voxels:
        raise ValueError(
            f"targets_to_volume: 'targets' must be ({n_voxels},) or (n_volumes, {n_voxels}) for the "
            f"mask, got shape {t.shape}."
        )
    if t.ndim == 1:
        out = np.zeros(mask.shape, np.float32)
        out[mask] = t
        return out
    out = np.zeros((*mask.shape, t.shape[0]), np.float32)
    out[mask] = t.T
    return out
