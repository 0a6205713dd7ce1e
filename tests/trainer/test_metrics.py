from __future__ import annotations

import numpy as np
import pytest

from trainer import metrics


def test_perfect_prediction(rng):
    y = rng.standard_normal((30, 50))
    m = metrics.score(y, y)
    assert m["mse"] == 0 and m["r_mean"] == pytest.approx(1.0)
    assert m["r2_vs_subject_mean"] == pytest.approx(1.0) and m["spatial_r"] == pytest.approx(1.0)


def test_zero_prediction_is_the_subject_mean_baseline(rng):
    y = rng.standard_normal((30, 50))
    y -= y.mean(axis=0)
    m = metrics.score(np.zeros_like(y), y)
    assert m["r2_vs_subject_mean"] == pytest.approx(0.0)
    assert m["r_mean"] == 0.0  # constant prediction: r defined as 0


def test_voxelwise_r_matches_numpy(rng):
    a, b = rng.standard_normal((2, 40, 7))
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(7)]
    np.testing.assert_allclose(metrics.voxelwise_r(a, b), expected, atol=1e-12)


def test_ssim_identical_is_one(rng):
    mask = np.zeros((6, 7, 5), bool)
    mask[1:5, 1:6, 1:4] = True
    y = rng.standard_normal((3, int(mask.sum())))
    assert metrics.ssim_volumes(y, y, mask) == pytest.approx(1.0)
    assert metrics.ssim_volumes(-y, y, mask) < 0.5


def test_ceiling_fraction():
    ceiling = np.linspace(0, 1, 100)
    out = metrics.ceiling_fraction(0.8 * ceiling, ceiling)
    assert out["ceiling_fraction"] == pytest.approx(0.8)
    assert out["ceiling_fraction_top"] == pytest.approx(0.8)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"'pred' shape \(2, 3\) differs"):
        metrics.score(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty split"):
        metrics.score(np.zeros((0, 3)), np.zeros((0, 3)))
