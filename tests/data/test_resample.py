from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly, upfirdn

from rt_eeg2fmri.data.resample import PolyphaseResampler

RATES = [(500, 250), (5000, 250), (250, 500), (256, 250), (300, 200), (250, 250)]


def _chunked(resampler, x, times, rng):
    outs, stamps, i = [], [], 0
    while i < x.shape[1]:
        k = int(rng.integers(0, 40))  # empty chunks included
        out, ts = resampler.process(x[:, i : i + k], times[i : i + k])
        outs.append(out)
        stamps.append(ts)
        i += k
    return np.concatenate(outs, axis=1), np.concatenate(stamps)


@pytest.mark.parametrize(("sfreq_in", "sfreq_out"), RATES)
def test_chunked_output_equals_one_shot_and_upfirdn(rng, sfreq_in, sfreq_out):
    x = rng.standard_normal((3, 2000))
    times = 100 + np.arange(2000) / sfreq_in
    one_shot = PolyphaseResampler(sfreq_in, sfreq_out, n_chans=3)
    y, ty = one_shot.process(x, times)
    chunked, tc = _chunked(PolyphaseResampler(sfreq_in, sfreq_out, n_chans=3), x, times, rng)
    np.testing.assert_allclose(chunked, y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tc, ty, rtol=0, atol=1e-9)
    r = one_shot
    reference = upfirdn(r.taps, x, r.up, r.down, axis=1)[:, r.delay : r.delay + y.shape[1]]
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-12)
    assert r.n_in == 2000 and r.n_out == y.shape[1]
    # output sample o is the signal at input position o·down/up, timestamped accordingly
    np.testing.assert_allclose(ty, 100 + np.arange(y.shape[1]) / sfreq_out, atol=1e-9)


def test_matches_resample_poly_away_from_the_edges(rng):
    x = rng.standard_normal((2, 3000))
    y = PolyphaseResampler(500, 250, n_chans=2).process(x)
    np.testing.assert_allclose(
        y[:, 50:1450], resample_poly(x, 1, 2, axis=1)[:, 50:1450], atol=1e-12
    )


@pytest.mark.parametrize(("sfreq_in", "f_alias"), [(500, 200.0), (5000, 400.0), (5000, 2000.0)])
def test_frequencies_above_the_new_nyquist_are_suppressed(sfreq_in, f_alias):
    t = np.arange(round(4 * sfreq_in)) / sfreq_in
    x = np.sin(2 * np.pi * f_alias * t)[None]
    y = PolyphaseResampler(sfreq_in, 250, n_chans=1).process(x)
    assert np.abs(y[:, 100:-100]).max() < 0.01  # naive decimation would alias at full amplitude


def test_passband_sine_keeps_amplitude_and_timing():
    sfreq_in, f = 5000, 10.0
    times = 3.0 + np.arange(round(3 * sfreq_in)) / sfreq_in
    x = np.sin(2 * np.pi * f * times)[None]
    y, ty = PolyphaseResampler(sfreq_in, 250, n_chans=1).process(x, times)
    np.testing.assert_allclose(y[0, 50:], np.sin(2 * np.pi * f * ty[50:]), atol=5e-3)


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="cannot resample 1000.0 Hz to 999.9999 Hz"):
        PolyphaseResampler(1000, 999.9999, n_chans=1)
    with pytest.raises(ValueError, match="'sfreq_out' must be positive"):
        PolyphaseResampler(1000, 0, n_chans=1)
    with pytest.raises(ValueError, match="'n_chans'"):
        PolyphaseResampler(1000, 250, n_chans=0)
    r = PolyphaseResampler(1000, 250, n_chans=2)
    with pytest.raises(
        ValueError, match=r"'chunk' must have shape \(n_chans=2, n_samples\), got \(3, 10\)"
    ):
        r.process(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="'timestamps' must have 10 values, got 9"):
        r.process(np.zeros((2, 10)), np.zeros(9))
    assert r.latency == pytest.approx(40 / 1000)  # 10 output samples at 250 Hz
