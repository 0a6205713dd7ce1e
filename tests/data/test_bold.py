"""The BOLD target chain: smoothing, targets, drift removal, and back to the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.data import BoldChain, Preprocessing, targets_to_volume
from rt_eeg2fmri.data.bold import apply_reference, cosine_drifts, masked_series, smooth_bold

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _bold(rng, grid=(3, 4, 2), n=10):
    return (1000 + 10 * rng.standard_normal((*grid, n))).astype(np.float32)


def test_psc_targets(rng):
    bold = _bold(rng)
    mask = np.zeros(bold.shape[:3], bool)
    mask[1:, 1:3] = True
    y = BoldChain().run(bold, mask, affine=AFFINE, t_r=2.0)
    v = bold[mask].T.astype(np.float64)
    mean = v.mean(axis=0)
    assert y.shape == (10, int(mask.sum())) and y.dtype == np.float32
    np.testing.assert_allclose(y, 100 * (v - mean) / mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    ref = np.full(int(mask.sum()), 500.0)
    np.testing.assert_allclose(
        BoldChain().targets(masked_series(bold, mask), t_r=2.0, reference=ref),
        100 * (v - 500) / 500,
        rtol=1e-5,
    )


def test_median_ratio_targets(rng):
    bold = _bold(rng)
    mask = np.ones(bold.shape[:3], bool)
    v = bold[mask].T.astype(np.float64)
    chain = BoldChain(target="median_ratio")
    y = chain.run(bold, mask, affine=AFFINE, t_r=2.0)
    np.testing.assert_allclose(y, v / np.median(v, axis=0) - 1, rtol=1e-5, atol=1e-6)
    ref = np.median(v, axis=0) * 1.1  # e.g. a subject median over more runs
    y2 = chain.targets(v.astype(np.float32), t_r=2.0, reference=ref)
    np.testing.assert_allclose(y2, v / ref - 1, rtol=1e-5, atol=1e-6)


def test_chain_order_smooth_target_drifts(rng):
    # the record's chain: smoothing before the targets, drift removal after them; a
    # reference known later (the subject median) gives the same targets as one up front
    bold = _bold(rng, grid=(6, 6, 5), n=40)
    bold += np.linspace(0, 30, 40, dtype=np.float32)  # a drift
    mask = np.ones(bold.shape[:3], bool)
    pre = Preprocessing(target="median_ratio", fwhm=6.0, high_pass=0.02)
    chain = pre.bold_chain()
    assert chain == BoldChain(target="median_ratio", fwhm=6.0, high_pass=0.02)
    y = chain.run(bold, mask, affine=AFFINE, t_r=2.0)
    v = masked_series(smooth_bold(bold, AFFINE, 6.0), mask).astype(np.float64)
    raw = v / np.median(v, axis=0) - 1
    basis = cosine_drifts(40, 2.0, 0.02)
    want = raw - basis @ (basis.T @ raw)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    series = chain.series(bold, mask, affine=AFFINE)
    late = chain.targets(series, t_r=2.0, reference=np.median(v, axis=0))
    np.testing.assert_allclose(late, y, rtol=1e-4, atol=1e-5)


def test_zero_mean_voxels_get_zero(rng, rt_log):
    bold = _bold(rng)
    bold[0, 0, 0] = 0.0
    mask = np.ones(bold.shape[:3], bool)
    y = BoldChain().run(bold, mask, affine=AFFINE, t_r=2.0)
    assert np.isfinite(y).all() and (y[:, 0] == 0).all()
    assert "1 of 24 voxels have a ~0 reference" in rt_log.text


def test_bold_chain_errors(rng):
    bold = _bold(rng)
    mask = np.ones(bold.shape[:3], bool)
    with pytest.raises(ValueError, match="'target' must be one of"):
        BoldChain(target="zscore").run(bold, mask, affine=AFFINE, t_r=2.0)
    with pytest.raises(ValueError, match="on the mask's grid"):
        BoldChain().run(bold, np.ones((3, 4, 3), bool), affine=AFFINE, t_r=2.0)
    with pytest.raises(ValueError, match="'reference' must have one value per voxel"):
        apply_reference(masked_series(bold, mask), np.ones(5), "psc")


def test_targets_to_volume_inverts(rng):
    bold = _bold(rng)
    mask = rng.random(bold.shape[:3]) > 0.4
    y = BoldChain().run(bold, mask, affine=AFFINE, t_r=2.0)
    vol = targets_to_volume(y, mask)
    assert vol.shape == (*mask.shape, 10)
    np.testing.assert_array_equal(vol[mask].T, y)
    assert (vol[~mask] == 0).all()
    one = targets_to_volume(torch.from_numpy(y[3]), mask)
    assert one.shape == mask.shape
    np.testing.assert_array_equal(one[mask], y[3])
    with pytest.raises(ValueError, match="'targets' must be"):
        targets_to_volume(y[:, :-1], mask)
