"""EEG normalisation, band-pass, resampling and BOLD targets."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rt_eeg2fmri._logging import logger
from rt_eeg2fmri.data import (
    NormStats,
    bandpass,
    bold_targets,
    channel_stats,
    normalize,
    resample,
    targets_to_volume,
)
from rt_eeg2fmri.data.preprocessing import resample_factors

NAMES = ["Fp1", "Cz", "O1"]


@pytest.fixture
def pkg_log(caplog):
    """Records of the package logger (it does not propagate to the root logger)."""
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="rt_eeg2fmri")
    yield caplog
    logger.removeHandler(caplog.handler)


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


def test_flat_channel_gets_unit_scale(rng, pkg_log):
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    x[1] = 5.0
    stats = channel_stats(x, ch_names=NAMES)
    assert stats.scale[1] == 1.0 and stats.center[1] == pytest.approx(5.0)
    assert "Cz" in pkg_log.text


def test_channel_stats_errors(rng):
    with pytest.raises(ValueError, match="3 channel names for 2 EEG channels"):
        channel_stats(rng.standard_normal((2, 10)), ch_names=NAMES)
    with pytest.raises(ValueError, match="'method' must be one of"):
        channel_stats(rng.standard_normal((3, 10)), method="minmax", ch_names=NAMES)
    with pytest.raises(ValueError, match="no EEG samples"):
        channel_stats([], ch_names=NAMES)
    with pytest.raises(ValueError, match="different channel counts"):
        channel_stats([np.ones((3, 5)), np.ones((2, 5))], ch_names=NAMES)


def test_normalize_numpy_and_torch(rng):
    stats = NormStats("zscore", [1.0, -2.0, 0.5], [2.0, 4.0, 0.25], NAMES)
    x = rng.standard_normal((5, 3, 40)).astype(np.float32)
    out = normalize(x, stats)
    assert out.dtype == np.float32 and out.shape == x.shape
    want = (x.astype(np.float64) - [[1.0], [-2.0], [0.5]]) / [[2.0], [4.0], [0.25]]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(normalize(x[0].astype(np.float64), stats), want[0], rtol=1e-12)
    t = normalize(torch.from_numpy(x), stats)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3, n_times\)"):
        normalize(x[:, :2], stats)


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


def test_bandpass_keeps_band_removes_rest():
    sfreq = 250.0
    t = np.arange(int(20 * sfreq)) / sfreq
    keep = np.sin(2 * np.pi * 10 * t)
    x = np.stack([keep + np.sin(2 * np.pi * 60 * t) + 3.0, keep]).astype(np.float32)
    out = bandpass(x, sfreq, l_freq=1.0, h_freq=30.0)
    assert out.dtype == np.float32 and out.shape == x.shape
    mid = slice(int(3 * sfreq), int(17 * sfreq))  # away from the edges
    np.testing.assert_allclose(out[0, mid], keep[mid], atol=0.02)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(bandpass(x, sfreq, l_freq=None, h_freq=None), x)


def test_bandpass_errors():
    x = np.zeros((2, 1000), np.float32)
    with pytest.raises(ValueError, match="below Nyquist"):
        bandpass(x, 100.0, l_freq=1.0, h_freq=50.0)
    with pytest.raises(ValueError, match="'l_freq' must be below 'h_freq'"):
        bandpass(x, 100.0, l_freq=20.0, h_freq=10.0)
    with pytest.raises(ValueError, match="'l_freq' must be positive"):
        bandpass(x, 100.0, l_freq=-1.0, h_freq=10.0)
    with pytest.raises(ValueError, match="2-D"):
        bandpass(x[0], 100.0, l_freq=1.0, h_freq=10.0)


def test_resample_is_aligned_and_antialiased():
    sfreq, new = 1000.0, 250.0
    t = np.arange(int(10 * sfreq)) / sfreq
    slow = np.sin(2 * np.pi * 7 * t)
    fast = np.sin(2 * np.pi * 300 * t)  # above the new Nyquist: must vanish, not alias
    out = resample(np.stack([slow, slow + fast]).astype(np.float32), sfreq=sfreq, new_sfreq=new)
    assert out.shape == (2, 2500) and out.dtype == np.float32
    tn = np.arange(2500) / new
    mid = slice(250, 2250)
    np.testing.assert_allclose(out[0, mid], np.sin(2 * np.pi * 7 * tn[mid]), atol=2e-3)
    np.testing.assert_allclose(out[1, mid], out[0, mid], atol=2e-3)
    same = resample(out, sfreq=new, new_sfreq=new)
    assert same is out


def test_resample_factors():
    assert resample_factors(5000.0, 250.0) == (1, 20)
    assert resample_factors(5000.0, 256.0) == (32, 625)
    assert resample_factors(1000.0, 1000.0) == (1, 1)
    with pytest.raises(ValueError, match="rational factor"):
        resample_factors(1000.0, 1000.0 / 7.000001)
    with pytest.raises(ValueError, match="'new_sfreq' must be positive"):
        resample_factors(1000.0, 0.0)


def _bold(rng, grid=(3, 4, 2), n=10):
    return (1000 + 10 * rng.standard_normal((*grid, n))).astype(np.float32)


def test_psc_targets(rng):
    bold = _bold(rng)
    mask = np.zeros(bold.shape[:3], bool)
    mask[1:, 1:3] = True
    y = bold_targets(bold, mask, method="psc")
    v = bold[mask].T.astype(np.float64)
    mean = v.mean(axis=0)
    assert y.shape == (10, int(mask.sum())) and y.dtype == np.float32
    np.testing.assert_allclose(y, 100 * (v - mean) / mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    ref = np.full(bold.shape[:3], 500.0)
    np.testing.assert_allclose(
        bold_targets(bold, mask, reference=ref), 100 * (v - 500) / 500, rtol=1e-5
    )


def test_median_ratio_targets(rng):
    bold = _bold(rng)
    mask = np.ones(bold.shape[:3], bool)
    v = bold[mask].T.astype(np.float64)
    y = bold_targets(bold, mask, method="median_ratio")
    np.testing.assert_allclose(y, v / np.median(v, axis=0) - 1, rtol=1e-5, atol=1e-6)
    ref = np.median(v, axis=0) * 1.1  # e.g. a subject median over more runs
    y2 = bold_targets(v.astype(np.float32), mask, method="median_ratio", reference=ref)
    np.testing.assert_allclose(y2, v / ref - 1, rtol=1e-5, atol=1e-6)


def test_zero_mean_voxels_get_zero(rng, pkg_log):
    bold = _bold(rng)
    bold[0, 0, 0] = 0.0
    mask = np.ones(bold.shape[:3], bool)
    y = bold_targets(bold, mask)
    assert np.isfinite(y).all() and (y[:, 0] == 0).all()
    assert "1 of 24 voxels have a ~0 reference" in pkg_log.text


def test_bold_targets_errors(rng):
    bold = _bold(rng)
    mask = np.ones(bold.shape[:3], bool)
    with pytest.raises(ValueError, match="'method' must be one of"):
        bold_targets(bold, mask, method="zscore")
    with pytest.raises(ValueError, match="on the mask's grid"):
        bold_targets(bold, np.ones((3, 4, 3), bool))
    with pytest.raises(ValueError, match="'reference' must have shape"):
        bold_targets(bold, mask, reference=np.ones(5))
    with pytest.raises(ValueError, match=r"2-D 'bold' must be \(n_volumes, 24\)"):
        bold_targets(np.ones((10, 23)), mask)


def test_targets_to_volume_inverts(rng):
    bold = _bold(rng)
    mask = rng.random(bold.shape[:3]) > 0.4
    y = bold_targets(bold, mask)
    vol = targets_to_volume(y, mask)
    assert vol.shape == (*mask.shape, 10)
    np.testing.assert_array_equal(vol[mask].T, y)
    assert (vol[~mask] == 0).all()
    one = targets_to_volume(torch.from_numpy(y[3]), mask)
    assert one.shape == mask.shape
    np.testing.assert_array_equal(one[mask], y[3])
    with pytest.raises(ValueError, match="'targets' must be"):
        targets_to_volume(y[:, :-1], mask)
