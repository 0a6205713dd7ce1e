"""NormStats: the one EEG normalisation, its estimator and its pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.data import NormStats, channel_stats

NAMES = ["Fp1", "Cz", "O1"]


def _runs(rng, offsets=(0.0, 3.0), sizes=(70_000, 90_000)):
    """Two 'runs' with different means: pooled statistics differ from per-run ones."""
    return [
        (rng.standard_normal((3, n)) * [[1.0], [2.0], [0.5]] + off).astype(np.float32)
        for off, n in zip(offsets, sizes, strict=True)
    ]


def test_zscore_stats_streamed_over_runs(rng):
    runs = _runs(rng)
    stats = channel_stats(iter(runs), method="zscore", ch_names=NAMES)
    allx = np.concatenate(runs, axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.center, allx.mean(axis=1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats.scale, allx.std(axis=1), rtol=1e-9)
    assert stats.n_times == allx.shape[1] and stats.ch_names == NAMES


def test_robust_stats(rng):
    x = rng.standard_normal((3, 20_000)).astype(np.float32) * 4 + 1
    x[0, :100] = 1e3  # outliers barely move median / IQR
    stats = channel_stats(x, method="robust", ch_names=NAMES)
    q25, med, q75 = np.percentile(x, [25, 50, 75], axis=1)
    np.testing.assert_allclose(stats.center, med, rtol=1e-6)
    np.testing.assert_allclose(stats.scale, (q75 - q25) / 1.349, rtol=1e-6)
    big = rng.standard_normal((3, 400_000)).astype(np.float32) * 2  # strided subsample
    approx = channel_stats([big], method="robust", ch_names=NAMES)
    np.testing.assert_allclose(approx.scale, 2.0, rtol=0.03)
    np.testing.assert_allclose(approx.center, 0.0, atol=0.05)


def test_flat_channel_gets_unit_scale(rng, rt_log):
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    x[1] = 5.0
    stats = channel_stats(x, ch_names=NAMES)
    assert stats.scale[1] == 1.0 and stats.center[1] == pytest.approx(5.0)
    assert "Cz" in rt_log.text


def test_channel_stats_errors(rng):
    with pytest.raises(ValueError, match="3 channel names for 2 EEG channels"):
        channel_stats(rng.standard_normal((2, 10)), ch_names=NAMES)
    with pytest.raises(ValueError, match="'method' must be one of"):
        channel_stats(rng.standard_normal((3, 10)), method="minmax", ch_names=NAMES)
    with pytest.raises(ValueError, match="no EEG samples"):
        channel_stats([], ch_names=NAMES)
    with pytest.raises(ValueError, match="different channel counts"):
        channel_stats([np.ones((3, 5)), np.ones((2, 5))], ch_names=NAMES)


def test_apply_numpy_and_torch(rng):
    stats = NormStats("zscore", [1.0, -2.0, 0.5], [2.0, 4.0, 0.25], NAMES)
    x = rng.standard_normal((5, 3, 40)).astype(np.float32)
    out = stats.apply(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    want = (x.astype(np.float64) - [[1.0], [-2.0], [0.5]]) / [[2.0], [4.0], [0.25]]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.apply(x[0].astype(np.float64)), want[0], rtol=1e-6)
    t = stats.apply(torch.from_numpy(x))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), out)  # numpy and torch: the same float32 maths
    buf = np.empty_like(x[0])
    assert stats.apply(x[0], out=buf) is buf
    same = x[1].copy()
    stats.apply(same, out=same)  # in place
    np.testing.assert_array_equal(same, out[1])
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3, n_times\)"):
        stats.apply(x[:, :2])


def test_normstats_dict_roundtrip_and_pooling(rng):
    runs = _runs(rng)
    a = channel_stats(runs[0], ch_names=NAMES)
    b = channel_stats(runs[1], ch_names=NAMES)
    d = a.to_dict()
    assert isinstance(d["center"], list) and d["method"] == "zscore"
    back = NormStats.from_dict(d)
    np.testing.assert_array_equal(back.center, a.center)
    tens = NormStats.from_dict({**d, "scale": torch.tensor(d["scale"], dtype=torch.float64)})
    np.testing.assert_allclose(tens.scale, a.scale, rtol=1e-12)
    pooled = NormStats.pooled([a, b])
    union = channel_stats(runs, ch_names=NAMES)
    np.testing.assert_allclose(pooled.center, union.center, rtol=1e-9)
    np.testing.assert_allclose(pooled.scale, union.scale, rtol=1e-9)
    assert pooled.n_times == union.n_times


def test_normstats_errors():
    with pytest.raises(ValueError, match="missing key"):
        NormStats.from_dict({"method": "zscore", "center": [0.0]})
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        NormStats("zscore", [0.0, 0.0], [1.0, 1.0], NAMES)
    with pytest.raises(ValueError, match=r"channels \['Cz'\]"):
        NormStats("zscore", [0.0] * 3, [1.0, 0.0, 1.0], NAMES)
    a = NormStats("zscore", [0.0] * 3, [1.0] * 3, NAMES)
    with pytest.raises(ValueError, match="methods differ"):
        NormStats.pooled([a, NormStats("robust", [0.0] * 3, [1.0] * 3, NAMES)])
    with pytest.raises(ValueError, match="channel names differ"):
        NormStats.pooled([a, NormStats("zscore", [0.0] * 3, [1.0] * 3, ["A", "B", "C"])])
    with pytest.raises(ValueError, match="no statistics"):
        NormStats.pooled([])
