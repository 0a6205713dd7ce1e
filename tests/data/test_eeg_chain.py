"""The EEG chain without LSL: chunked == one-shot, gaps, NaN, units, resampling, band-pass."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from rt_eeg2fmri.data import EEGChain, Preprocessing
from rt_eeg2fmri.data.eeg_chain import CausalBandpass

NAMES = ["Fz", "Cz", "Pz"]


def _chain(sfreq_in=250.0, *, labels=NAMES, units=("V",) * 3, **pre):
    pre = Preprocessing(**{"sfreq": 250.0, **pre})
    return EEGChain(pre, ch_names=NAMES, sfreq=sfreq_in, labels=list(labels), units=list(units))


def _signal(rng, n, sfreq, n_chans=3):
    """Alpha + line noise + a DC offset of a few mV, in volts, time first."""
    t = np.arange(n) / sfreq
    alpha = 20e-6 * np.sin(2 * np.pi * 10 * t)
    x = alpha[:, None] + 5e-6 * rng.standard_normal((n, n_chans)) + [2e-3, -1e-3, 5e-4][:n_chans]
    return x


def _feed(chain, x, sizes, times=None):
    out, out_t, pos, k = [], [], 0, 0
    while pos < x.shape[0]:
        n = sizes[k % len(sizes)]
        ts = None if times is None else times[pos : pos + n]
        data, t, _ = chain.process(x[pos : pos + n], ts)
        out.append(np.array(data, dtype=np.float64))
        if t is not None:
            out_t.append(t)
        pos, k = pos + n, k + 1
    data = np.concatenate(out, axis=1)
    return (data, np.concatenate(out_t)) if times is not None else data


@pytest.mark.parametrize(
    ("sfreq_in", "band"),
    [(250.0, (1.0, 40.0)), (1000.0, (None, 40.0)), (500.0, (0.5, None)), (250.0, (None, None))],
    ids=["bandpass", "resample+lowpass", "resample+highpass", "plain"],
)
def test_chunked_equals_one_shot(rng, sfreq_in, band):
    x = _signal(rng, int(20 * sfreq_in), sfreq_in)
    l_freq, h_freq = band
    one = _chain(sfreq_in, l_freq=l_freq, h_freq=h_freq).process(x)[0]
    for sizes in ([1], [7, 64, 3], [int(sfreq_in)]):
        chunked = _feed(_chain(sfreq_in, l_freq=l_freq, h_freq=h_freq), x, sizes)
        assert chunked.shape == one.shape
        np.testing.assert_allclose(chunked, one, rtol=1e-9, atol=1e-15)


def test_run_matches_process_and_flushes_to_full_length(rng):
    x = _signal(rng, 5003, 1000.0)
    chain = _chain(1000.0, h_freq=40.0)
    out = chain.run(x.T)
    assert out.shape == (3, 1251) and out.dtype == np.float32  # ceil(5003 / 4)
    streamed = _chain(1000.0, h_freq=40.0).process(x)[0]
    np.testing.assert_allclose(out[:, : streamed.shape[1]], streamed, rtol=1e-6)


def test_causal_bandpass_equals_mne_forward_iir(rng):
    # MNE's offline causal IIR (filter_data, method="iir", phase="forward") starts from
    # a zero state; ours starts at the first sample's steady state: the difference is the
    # filter's response to that constant, so the two agree on x - x[0] (+ DC gain · x[0])
    sfreq = 250.0
    x = _signal(rng, 5000, sfreq).T
    for l_freq, h_freq in ((1.0, 40.0), (None, 30.0), (0.5, None)):
        ours = _chain(sfreq, l_freq=l_freq, h_freq=h_freq).run(x.T.T).astype(np.float64)
        ref = mne.filter.filter_data(
            x - x[:, :1],
            sfreq,
            l_freq,
            h_freq,
            method="iir",
            iir_params={"order": 4, "ftype": "butter", "output": "sos"},
            phase="forward",
            verbose="error",
        )
        gain = CausalBandpass(sfreq, l_freq=l_freq, h_freq=h_freq, n_chans=3).dc_gain
        np.testing.assert_allclose(ours, ref + gain * x[:, :1], rtol=1e-4, atol=1e-9)
    # a DC offset of millivolts makes no start-up transient
    hp = _chain(sfreq, l_freq=1.0).run(x)
    assert np.abs(hp[:, :50]).max() < 2e-4


def test_bandpass_keeps_band_removes_rest():
    sfreq = 250.0
    t = np.arange(int(20 * sfreq)) / sfreq
    keep = np.sin(2 * np.pi * 10 * t)
    x = np.stack([keep + np.sin(2 * np.pi * 80 * t) + 3.0, keep, keep]).T
    out = _chain(sfreq, l_freq=1.0, h_freq=20.0).run(x.T)
    # 10 Hz passes with the filter's phase delay; 80 Hz and the offset are gone
    late = slice(int(5 * sfreq), None)
    assert abs(out[0, late].std() - keep[late].std()) < 0.03
    np.testing.assert_allclose(out[0, late], out[1, late], atol=0.02)


def test_channel_mapping_and_units(rng):
    # another order, an extra channel, one in µV and one in mV: the model's channels in V
    x = rng.standard_normal((100, 4))
    pre = Preprocessing(sfreq=100.0)
    chain = EEGChain(
        pre,
        ch_names=NAMES,
        sfreq=100.0,
        labels=["pz", "ECG", "FZ", "Cz"],
        units=["µV", "mV", "microvolts", "mV"],
    )
    out = chain.process(x)[0]
    np.testing.assert_allclose(out[0], x[:, 2] * 1e-6)
    np.testing.assert_allclose(out[1], x[:, 3] * 1e-3)
    np.testing.assert_allclose(out[2], x[:, 0] * 1e-6)
    with pytest.raises(ValueError, match="missing from the stream: 'Cz'"):
        EEGChain(
            pre, ch_names=NAMES, sfreq=100.0, labels=["Fz", "Pz"], units=None, interpolate=False
        )
    zero = EEGChain(
        pre, ch_names=NAMES, sfreq=100.0, labels=["Fz", "Pz"], units=None, allow_missing=True
    )
    assert (zero.process(x[:, :2])[0][1] == 0).all()
    with pytest.raises(ValueError, match="unknown unit 'furlongs'"):
        EEGChain(pre, ch_names=NAMES, sfreq=100.0, labels=NAMES, units=["V", "furlongs", "V"])
    with pytest.raises(ValueError, match=r"shape \(n_times, 3\)"):
        _chain(100.0, sfreq=100.0).process(x)


def test_nan_burst_is_zeroed_and_counted(rng):
    x = _signal(rng, 300, 250.0)
    x[100:120, 1] = np.nan
    x[110, 2] = np.inf
    data, _, report = _chain().process(x)
    assert report.nonfinite == 20 and np.isfinite(data).all()
    assert (data[1, 100:120] == 0).all() and data[2, 110] == 0


def test_gaps_are_zero_filled_on_the_sample_grid(rng):
    sfreq = 250.0
    x = _signal(rng, 1000, sfreq)
    times = 100.0 + np.arange(1000) / sfreq
    keep = np.r_[0:400, 450:1000]  # 50 samples lost
    chain = _chain(sfreq)
    data, t = _feed(chain, x[keep], [64], times=times[keep])
    assert data.shape == (3, 1000)
    np.testing.assert_allclose(t, times, atol=1e-9)
    assert (data[:, 400:450] == 0).all()
    np.testing.assert_array_equal(data[:, 450:], x[450:].T)
    no_fill = EEGChain(
        Preprocessing(sfreq=sfreq), ch_names=NAMES, sfreq=sfreq, labels=NAMES, units=["V"] * 3,
        fill_gaps=False,
    )  # fmt: skip
    no_fill.process(x[keep[:400]], times[keep[:400]])
    _, _, report = no_fill.process(x[keep[400:]], times[keep[400:]])
    assert (report.gaps, report.samples_lost) == (1, 50)


def test_resampled_timestamps_and_alignment(rng):
    # output sample j lies at j / sfreq, like input sample i at i / sfreq_in
    sfreq_in, n = 1000.0, 20_000
    t = np.arange(n) / sfreq_in
    x = np.stack([np.sin(2 * np.pi * 3 * t)] * 3, axis=1)
    chain = _chain(sfreq_in)
    data, stamps = _feed(chain, x, [100], times=50.0 + t)
    tn = np.arange(data.shape[1]) / 250.0
    mid = slice(250, data.shape[1] - 250)
    np.testing.assert_allclose(data[0, mid], np.sin(2 * np.pi * 3 * tn[mid]), atol=1e-3)
    np.testing.assert_allclose(stamps, 50.0 + tn, atol=1e-9)
    assert chain.latency == pytest.approx(0.04)  # 40 taps of 1000 Hz each side
