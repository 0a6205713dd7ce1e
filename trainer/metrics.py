"""Scores of predicted against measured BOLD targets.

All functions take targets as arrays of shape (n_samples, n_voxels) — the in-mask voxels
of each volume, in percent signal change — and return plain floats or per-voxel arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rt_eeg2fmri.stats import pearson_columns

__all__ = ["pearson_columns"]  # re-exported: the trainer's scores use the core's r


def _as2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"'{name}' must be 2-D (n_samples, n_voxels), got shape {a.shape}.")
    return a


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = _as2d(pred, "pred"), _as2d(true, "true")
    if pred.shape != true.shape:
        raise ValueError(f"'pred' shape {pred.shape} differs from 'true' shape {true.shape}.")
    if pred.shape[0] == 0:
        raise ValueError("no samples to score (empty split?).")
    return pred, true


def voxelwise_r(pred, true) -> np.ndarray:
    """Temporal Pearson r per voxel across samples; shape (n_voxels,)."""
    pred, true = _pair(pred, true)
    return pearson_columns(pred, true)


def spatial_r(pred, true) -> np.ndarray:
    """Pearson r across voxels per sample (volume); shape (n_samples,)."""
    pred, true = _pair(pred, true)
    return pearson_columns(pred.T, true.T)


def r2_vs(pred, true, reference) -> float:
    """``1 − SSE(pred) / SSE(reference)``: the fraction of the reference's error removed."""
    pred, true = _pair(pred, true)
    reference = np.broadcast_to(np.asarray(reference, dtype=np.float64), true.shape)
    sse_ref = float(((true - reference) ** 2).sum())
    return float("nan") if sse_ref == 0 else 1.0 - float(((true - pred) ** 2).sum()) / sse_ref


def psnr(pred, true) -> float:
    """Peak signal-to-noise ratio in dB, with the peak = range of ``true``."""
    pred, true = _pair(pred, true)
    mse = float(((pred - true) ** 2).mean())
    rng = float(true.max() - true.min())
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(rng**2 / mse) if rng > 0 else float("-inf")


def ssim_volumes(pred, true, mask: np.ndarray, *, sigma: float = 1.5) -> float:
    """Mean structural similarity over volumes, each scattered into ``mask``'s 3-D grid.

    Gaussian-window SSIM (Wang et al. 2004) with ``K1=0.01, K2=0.03``, data range = range of
    ``true``, averaged over in-mask voxels and then over samples.
    """
    pred, true = _pair(pred, true)
    mask = np.asarray(mask, dtype=bool)
    if int(mask.sum()) != true.shape[1]:
        raise ValueError(f"'mask' has {int(mask.sum())} voxels, targets have {true.shape[1]}.")
    rng = float(true.max() - true.min()) or 1.0
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    vol_p, vol_t = np.zeros(mask.shape), np.zeros(mask.shape)
    scores = []
    for p, t in zip(pred, true, strict=True):
        vol_p[mask], vol_t[mask] = p, t
        mu_p, mu_t = ndimage.gaussian_filter(vol_p, sigma), ndimage.gaussian_filter(vol_t, sigma)
        s_pp = ndimage.gaussian_filter(vol_p * vol_p, sigma) - mu_p**2
        s_tt = ndimage.gaussian_filter(vol_t * vol_t, sigma) - mu_t**2
        s_pt = ndimage.gaussian_filter(vol_p * vol_t, sigma) - mu_p * mu_t
        ssim = ((2 * mu_p * mu_t + c1) * (2 * s_pt + c2)) / (
            (mu_p**2 + mu_t**2 + c1) * (s_pp + s_tt + c2)
        )
        scores.append(float(ssim[mask].mean()))
    return float(np.mean(scores))


def score(
    pred,
    true,
    *,
    subject_mean=None,
    mask: np.ndarray | None = None,
    ceiling: np.ndarray | None = None,
    ssim: bool = True,
) -> dict:
    """Every metric of the evaluation report for one model on one test set.

    Parameters
    ----------
    pred, true : array of shape (n_samples, n_voxels)
    subject_mean : array of shape (n_samples, n_voxels) | (n_voxels,) | None
        The subject-mean baseline's prediction for R² (default: zeros, i.e. no change).
    mask : array of shape (n_x, n_y, n_z) | None
        The in-mask voxels' grid, needed for SSIM.
    ceiling : array of shape (n_voxels,) | None
        Noise ceiling (best achievable voxelwise r); adds the fraction of it reached.

    Returns
    -------
    metrics : dict of str to float
    """
    pred, true = _pair(pred, true)
    r = pearson_columns(pred, true)
    out = {
        "mse": float(((pred - true) ** 2).mean()),
        "r_mean": float(r.mean()),
        "r_median": float(np.median(r)),
        "r_p95": float(np.percentile(r, 95)),
        "r2_vs_subject_mean": r2_vs(pred, true, 0.0 if subject_mean is None else subject_mean),
        "spatial_r": float(np.mean(pearson_columns(pred.T, true.T))),
        "psnr": psnr(pred, true),
    }
    if ssim and mask is not None:
        out["ssim"] = ssim_volumes(pred, true, mask)
    if ceiling is not None:
        out.update(ceiling_fraction(r, ceiling))
    return out


def ceiling_fraction(r: np.ndarray, ceiling: np.ndarray, *, top: float = 0.1) -> dict:
    """How much of the noise ceiling a model's voxelwise r reaches.

    Reported over all voxels and over the ``top`` fraction of voxels with the highest
    ceiling (the voxels where EEG can explain anything; elsewhere both are noise).
    """
    r, ceiling = np.asarray(r, float), np.asarray(ceiling, float)
    if r.shape != ceiling.shape:
        raise ValueError(f"'ceiling' shape {ceiling.shape} differs from r shape {r.shape}.")
    k = max(1, int(round(top * r.size)))
    idx = np.argsort(ceiling)[-k:]
    frac = lambda a, b: float(a.mean() / b.mean()) if b.mean() > 0 else float("nan")  # noqa: E731
    return {
        "ceiling_r_mean": float(ceiling.mean()),
        "ceiling_fraction": frac(r, ceiling),
        "ceiling_r_mean_top": float(ceiling[idx].mean()),
        "ceiling_fraction_top": frac(r[idx], ceiling[idx]),
    }
