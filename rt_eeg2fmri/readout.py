"""Per-voxel readout maps that adapt a model to a person, and how one is chosen.

Shared by ``rt-eeg2fmri calibrate`` (offline, from a recording) and ``stream --adapt``
(live, from the scanner's volumes): candidates are fitted on the first part of the
person's minutes and one is chosen on the last part, after a gap
(:func:`~rt_eeg2fmri.adaptation.choose`, which also offers the model's HRF timing).

The choice (:func:`pick`) keeps the base model unless a candidate beats it on the held-out
volumes by more than one standard error of their paired difference: with a few minutes
the held-out part is short, and the lowest MSE among many candidates there is often luck.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import pearson_columns

#: Shrinkage of the per-voxel gain toward 1, relative to each voxel's prediction energy
STRENGTHS = (0.03, 0.3, 3.0, 30.0)
READOUTS = ("none", "bias", "affine")


@dataclass
class Candidate:
    """One way of adapting: which statistics, which readout, how strongly pulled to base."""

    norm: str  # "checkpoint" | "subject"
    readout: str  # "none" | "bias" | "affine" | "delay" | "coef"
    strength: float | None = None
    hrf_stretch: float = 1.0  # the learned HRF stretched in time (rt_eeg2fmri.adaptation)

    @property
    def changes_model(self) -> bool:
        """Whether the adapted model is more than a per-voxel gain and offset of the base."""
        return self.readout in ("delay", "coef") or self.hrf_stretch != 1.0

    def describe(self) -> str:
        """Readable summary, e.g. ``subject statistics, readout affine (strength 3)``."""
        s = f"{self.norm} statistics, readout {self.readout}"
        s += f" (strength {self.strength:g})" if self.strength is not None else ""
        return s + (f", HRF stretched {self.hrf_stretch:g}×" if self.hrf_stretch != 1 else "")


def candidates(norms=("checkpoint", "subject"), hrf_stretch: float = 1.0) -> list[Candidate]:
    """Every candidate: no change, a per-voxel offset, and gain + offset at each strength."""
    out = [Candidate(n, r, None, hrf_stretch) for r in ("none", "bias") for n in norms]
    return out + [Candidate(n, "affine", s, hrf_stretch) for n in norms for s in STRENGTHS]


def fit_readout(p: np.ndarray, y: np.ndarray, readout: str, strength: float | None):
    """Per-voxel ``(gain, bias)`` mapping predictions ``p`` to targets ``y`` (n, n_voxels).

    ``bias``: the mean residual; ``affine``: a ridge regression of ``y`` on ``p`` per voxel
    whose gain is pulled toward 1 with penalty ``strength × mean(p̃²)`` (p̃: centred ``p``).
    """
    n_voxels = p.shape[1]
    if readout == "none":
        return np.ones(n_voxels), np.zeros(n_voxels)
    if readout == "bias":
        return np.ones(n_voxels), (y - p).mean(axis=0)
    pm, ym = p.mean(axis=0), y.mean(axis=0)
    pc, yc = p - pm, y - ym
    return affine_readout(pm, ym, (pc * pc).sum(axis=0), (pc * yc).sum(axis=0), strength)


def affine_readout(pm, ym, spp, spy, strength: float):
    """Per-voxel ``(gain, bias)`` of the affine readout from centred sums.

    ``pm``, ``ym``: means of predictions and targets; ``spp = Σ p̃²`` and ``spy = Σ p̃ỹ``
    (centred). The gain is pulled toward 1 with penalty ``strength × mean(spp)``.
    """
    lam = strength * max(float(np.mean(spp)), 1e-12)
    gain = (spy + lam) / (spp + lam)
    return gain, ym - gain * pm


def fit_delay_readout(p, dp, y, strength: float):
    """Per-voxel ``(gain, bias, slope)`` mapping ``p`` and its delay derivative ``dp`` to ``y``.

    A ridge regression per voxel of ``y`` on ``p`` and ``dp`` (each (n, n_voxels)): the
    gain pulled toward 1 as in :func:`fit_readout`, the slope (the voxel's extra delay
    times its gain) toward 0, each with penalty ``strength ×`` the mean energy of its
    centred regressor.
    """
    pm, dm, ym = p.mean(axis=0), dp.mean(axis=0), y.mean(axis=0)
    pc, dc, yc = p - pm, dp - dm, y - ym
    spp, sdd, spd = (pc * pc).sum(axis=0), (dc * dc).sum(axis=0), (pc * dc).sum(axis=0)
    lg = strength * max(float(np.mean(spp)), 1e-12)
    ld = strength * max(float(np.mean(sdd)), 1e-12)
    a, c = spp + lg, sdd + ld
    r1, r2 = (pc * yc).sum(axis=0) + lg, (dc * yc).sum(axis=0)
    det = a * c - spd * spd  # > 0: both penalties are positive
    gain, slope = (r1 * c - spd * r2) / det, (a * r2 - spd * r1) / det
    return gain, ym - gain * pm - slope * dm, slope


def scores(pred: np.ndarray, y: np.ndarray) -> dict:
    """``{"mse", "r_mean"}`` of predictions against targets, shape (n, n_voxels)."""
    mse = float(((pred - y) ** 2).mean())
    return {"mse": mse, "r_mean": float(pearson_columns(pred, y).mean())}


def volume_errors(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each held-out volume's mean squared error, shape (n,)."""
    return ((pred - y) ** 2).mean(axis=1)


def paired_se(d: np.ndarray) -> float:
    """Standard error of the mean of ``d`` (one value per volume, in time order).

    Neighbouring volumes share most of their EEG window, so the count is shrunk by the
    lag-1 autocorrelation: ``n (1 − ρ) / (1 + ρ)`` (ρ ≥ 0). Infinite below 3 volumes.
    """
    d = np.asarray(d, float)
    if d.size < 3:
        return float("inf")
    c = d - d.mean()
    power = float(c @ c)
    rho = max(0.0, float(c[1:] @ c[:-1]) / power) if power > 0 else 0.0
    n_eff = max(1.0, d.size * (1.0 - rho) / (1.0 + rho))
    return float(np.sqrt(power / (d.size - 1) / n_eff))


def pick(table: list, errors: list, base: int) -> int:
    """The index of the candidate chosen on the held-out volumes.

    The one with the lowest MSE among those whose per-volume errors are lower than the
    base's (``base``: its index) by more than one standard error of the paired difference
    (:func:`paired_se`); the base when none is. Each row of ``table`` gains ``"margin"``:
    the mean error difference from the base in standard errors.
    """
    best = base
    for i, e in enumerate(errors):
        d = errors[base] - e
        se = paired_se(d)
        margin = float(d.mean() / se) if i != base and se > 0 else 0.0
        table[i]["margin"] = margin if np.isfinite(margin) else 0.0
        if i != base and margin > 1.0 and table[i]["mse"] < table[best]["mse"]:
            best = i
    return best


def chronological_split(ends: np.ndarray, *, gap: float, val_fraction: float, t_r: float):
    """``(fit, val)`` masks over pairs whose volumes end at ``ends`` (s, increasing).

    The last ``val_fraction`` of the span is held out; fitted volumes end at least ``gap``
    seconds before the first held-out volume starts (``end - t_r``).
    """
    ends = np.asarray(ends, float)
    start_val = ends[0] + (1 - val_fraction) * (ends[-1] - ends[0])
    val = ends > start_val
    fit = ends <= start_val - t_r - gap
    return fit, val


def score_readouts(preds: dict, y: np.ndarray, fit: np.ndarray, val: np.ndarray, cands: list):
    """``(table, errors)``: each candidate fitted on ``fit`` and scored on ``val``.

    ``table`` holds each candidate's fields with its held-out ``mse`` and ``r_mean``;
    ``errors`` its per-volume held-out errors (:func:`volume_errors`).
    """
    table, errors = [], []
    for c in cands:
        p = np.asarray(preds[c.norm], np.float64)
        gain, bias = fit_readout(p[fit], y[fit], c.readout, c.strength)
        pred = p[val] * gain + bias
        table.append({**c.__dict__, **scores(pred, y[val])})
        errors.append(volume_errors(pred, y[val]))
    return table, errors


def basis_coefficients(y: np.ndarray, basis: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Least-squares coefficients ``C`` of targets on a head's basis: ``y ≈ C @ basis + offset``."""
    gram = basis @ basis.T
    return np.linalg.solve(gram, basis @ (y - offset).T).T


def fit_basis_readout(h, coef, w0, b0, strength: float):
    """Refit a basis head's coefficient layer ``coef ≈ h @ W.T + b``, pulled toward ``(w0, b0)``.

    Parameters
    ----------
    h : array of shape (n, n_features)
        The head's input (the model's last hidden features) of each window.
    coef : array of shape (n, n_basis)
        The person's target coefficients (:func:`basis_coefficients`).
    w0, b0 : arrays of shape (n_basis, n_features), (n_basis,)
        The base model's layer.
    strength : float
        Ridge penalty on ``W - w0``, relative to the mean feature energy.

    Returns
    -------
    w, b : arrays of shape (n_basis, n_features), (n_basis,)
    """
    hm, cm = h.mean(axis=0), coef.mean(axis=0)
    hc, cc = h - hm, coef - cm
    gram = hc.T @ hc
    lam = strength * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    wt = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), hc.T @ cc + lam * w0.T)
    return wt.T, cm - hm @ wt
