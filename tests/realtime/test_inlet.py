"""EEGConsumer against real LSL outlets running in their own processes (loopback)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rt_eeg2fmri.data.resample import PolyphaseResampler
from rt_eeg2fmri.realtime.inlet import EEGConsumer
from rt_eeg2fmri.realtime.ring import TorchRingMirror
from tests.realtime.lsl_outlets import make_data, outlet_process, sample_times

pytestmark = pytest.mark.lsl


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_ring_holds_the_model_channels_in_order_and_in_volts(uid, rt_log):
    labels = ["EXTRA", " cz", "FZ ", "Pz", "Oz", "TRIG"]
    units = ["counts", "millivolts", "uV", "V", None, "counts"]
    n = 600
    spec = dict(name=uid, source_id=uid, n_chans=6, sfreq=250.0, n_samples=n,
                labels=labels, units=units, seed=3, chunk=7)  # fmt: skip
    ch_names = ["Fz", "Cz", "Pz", "Oz", "T7"]
    with outlet_process(**spec):
        consumer = EEGConsumer(f"source_id:{uid}", ch_names=ch_names, sfreq=250.0,
                               allow_missing=True, chunk_samples=16)  # fmt: skip
        mirror = TorchRingMirror(consumer.ring, device="cpu")
        with consumer:
            assert consumer.wait_for(n, timeout=20)
            health = consumer.health
    sent = make_data(3, n, 6)
    f32 = np.float32
    expected = np.stack(
        [sent[:, 2] * f32(1e-6), sent[:, 1] * f32(1e-3), sent[:, 3] * f32(1.0),
         sent[:, 4] * f32(1e-6), np.zeros(n, f32)]
    )  # fmt: skip
    data, times = consumer.ring.latest(n)
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_allclose(np.diff(times), 1 / 250.0, atol=1e-5)
    np.testing.assert_array_equal(mirror.window(n).numpy(), expected)
    assert (health.samples, health.gaps, health.samples_lost, health.nonfinite) == (n, 0, 0, 0)
    assert health.state == "ok" and health.last_time == times[-1]
    assert consumer.health.state == "stopped" and not consumer.running
    messages = " ".join(r.message for r in rt_log.records)
    assert "zero-filling 1 model channel(s) missing from the stream: T7" in messages
    assert "1 channel(s) have no unit" in messages and "Oz" in messages


def test_no_sample_lost_over_20_s_pushed_at_full_speed(uid):
    sfreq, n_chans, n = 5000.0, 64, 100_000  # 20 s of 64 channels at 5 kHz
    ch_names = [f"E{i}" for i in range(n_chans)]
    spec = dict(name=uid, source_id=uid, n_chans=n_chans, sfreq=sfreq, n_samples=n,
                labels=ch_names, units=["microvolts"] * n_chans, seed=5, chunk=50)  # fmt: skip
    with outlet_process(**spec) as (_, pushed, _):
        with EEGConsumer(uid, ch_names=ch_names, sfreq=sfreq, bufsize=25.0) as consumer:
            assert consumer.wait_for(n, timeout=60)
            time.sleep(0.2)  # nothing more arrives
            health = consumer.health
        assert pushed.value == n
    assert (health.samples, health.gaps, health.samples_lost) == (n, 0, 0)
    assert consumer.ring.n_written == n
    data, times = consumer.ring.latest(n)
    np.testing.assert_array_equal(data, make_data(5, n, n_chans).T * np.float32(1e-6))
    np.testing.assert_allclose(times - times[0], sample_times(n, sfreq), atol=1e-5)


@pytest.mark.parametrize("fill_gaps", [True, False], ids=["zero-filled", "appended"])
def test_gaps_in_the_timestamps_are_counted_with_the_samples_lost(uid, rt_log, fill_gaps):
    n, gaps, sfreq = 1500, {500: 25, 1200: 100}, 250.0
    spec = dict(name=uid, source_id=uid, n_chans=2, sfreq=sfreq, n_samples=n,
                labels=["A", "B"], units=["uV", "uV"], gaps=gaps)  # fmt: skip
    with outlet_process(**spec):
        with EEGConsumer(uid, ch_names=["A", "B"], sfreq=sfreq, fill_gaps=fill_gaps) as consumer:
            assert consumer.wait_for(n, timeout=20)
            _wait_until(lambda: consumer.health.samples == n, 10, "all samples")
            health = consumer.health
    assert (health.samples, health.gaps, health.samples_lost) == (n, 2, 125)
    assert any("gap(s) in the timestamps" in r.message for r in rt_log.records)
    sent = make_data(0, n, 2).T * np.float32(1e-6)  # (n_chans, n) in volts
    if not fill_gaps:  # the next samples follow the gap directly
        assert consumer.ring.n_written == n
        data, times = consumer.ring.latest(n)
        np.testing.assert_allclose(
            np.diff(times)[[499, 1199]], [26 / sfreq, 101 / sfreq], atol=1e-5
        )
        np.testing.assert_array_equal(data, sent)
        return
    # the lost samples are zeros on the sample grid: the ring's samples span their duration
    assert consumer.ring.n_written == n + 125
    data, times = consumer.ring.latest(n + 125)
    np.testing.assert_allclose(np.diff(times), 1 / sfreq, atol=1e-5)
    np.testing.assert_allclose(times - times[0], np.arange(n + 125) / sfreq, atol=1e-5)
    lost = np.r_[500 : 500 + 25, 1225 : 1225 + 100]
    assert not data[:, lost].any()
    np.testing.assert_array_equal(np.delete(data, lost, axis=1), sent)


def test_nonfinite_samples_are_zeroed_counted_and_logged_once_per_burst(uid, rt_log):
    n = 700
    bursts = [(100, 350, 0, np.nan), (200, 210, 1, np.inf), (600, 605, 1, -np.inf)]
    spec = dict(name=uid, source_id=uid, n_chans=2, sfreq=250.0, n_samples=n,
                labels=["A", "B"], units=["V", "V"], nonfinite=bursts, speed=2.0,
                chunk=5)  # fmt: skip
    with outlet_process(**spec):
        with EEGConsumer(uid, ch_names=["A", "B"], sfreq=250.0) as consumer:
            assert consumer.wait_for(n, timeout=20)
            health = consumer.health
    assert health.nonfinite == 250 + 5  # samples with any NaN/Inf value
    data = consumer.ring.latest(n)[0]
    sent = make_data(0, n, 2).T
    assert np.all(data[0, 100:350] == 0) and np.all(data[1, 200:210] == 0)
    assert np.all(data[1, 600:605] == 0) and np.isfinite(data).all()
    keep = np.ones(n, bool)
    keep[100:350] = keep[600:605] = False
    np.testing.assert_array_equal(data[:, keep], sent[:, keep])
    warnings = [r for r in rt_log.records if "NaN/Inf" in r.message]
    assert len(warnings) == 2  # one per burst, not one per chunk
    assert any("finite again" in r.message for r in rt_log.records)


def test_a_gap_in_a_resampled_stream_is_filled_for_the_rings_span(uid):
    """The gap fill is capped at the ring's span in the *source's* samples: a 3-s gap in a
    500-Hz stream resampled to 100 Hz, with a 4-s ring, is filled whole (capped at the
    ring's 400 samples, the fill stopped after 0.8 s and every later sample came 2.2 s
    early against the clock)."""
    n, sfreq = 2000, 500.0
    spec = dict(name=uid, source_id=uid, n_chans=2, sfreq=sfreq, n_samples=n,
                labels=["A", "B"], units=["uV", "uV"], gaps={1000: 1500})  # fmt: skip
    with outlet_process(**spec):
        with EEGConsumer(uid, ch_names=["A", "B"], sfreq=100.0, resample=True,
                         bufsize=4.0) as consumer:  # fmt: skip
            _wait_until(lambda: consumer.health.samples == n, 20, "all samples")
            health, written = consumer.health, consumer.ring.n_written
    assert (health.gaps, health.samples_lost) == (1, 1500), health
    span = (n + 1500) / sfreq  # seconds the source's samples cover, the gap included
    resampler = PolyphaseResampler(sfreq, 100.0, n_chans=2)
    assert abs(written - (span * 100 - resampler.delay)) <= 2, written


def test_rate_mismatch_raises_unless_resampling(uid):
    n = 1000
    spec = dict(name=uid, source_id=uid, n_chans=2, sfreq=500.0, n_samples=n,
                labels=["A", "B"], units=["uV", "uV"], seed=9, chunk=13)  # fmt: skip
    with outlet_process(**spec):
        with pytest.raises(ValueError, match=f"stream '{uid}' is 500 Hz, the model expects 250 Hz"):
            EEGConsumer(uid, ch_names=["A", "B"], sfreq=250.0).start()
        with EEGConsumer(uid, ch_names=["A", "B"], sfreq=250.0, resample=True) as consumer:
            resampler = PolyphaseResampler(500, 250, n_chans=2)
            n_out = (n + 1) // 2 - resampler.delay
            assert consumer.wait_for(n_out, timeout=20)
    expected = resampler.process((make_data(9, n, 2) * np.float32(1e-6)).T)
    data, times = consumer.ring.latest(n_out)
    np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(np.diff(times), 1 / 250, atol=1e-5)


def test_channel_and_label_errors_name_the_stream_and_channels(uid):
    spec = dict(name=uid, source_id=uid, n_chans=3, sfreq=100.0, n_samples=50,
                labels=None, units=None, wait_consumer=False)  # fmt: skip
    with outlet_process(**spec):
        with pytest.raises(ValueError, match=f"stream '{uid}': the stream has no channel labels"):
            EEGConsumer(uid, ch_names=["A", "B", "C"], sfreq=100.0).start()
        consumer = EEGConsumer(uid, ch_names=["A", "B", "C"], sfreq=100.0, assume_order=True)
        with consumer:
            assert consumer.stream_info.name() == uid
    spec.update(labels=["A", "B", "X"], name=f"{uid}-2", source_id=f"{uid}-2")
    with outlet_process(**spec):
        with pytest.raises(ValueError, match=r"1 of the model's 3 channels are missing.*'C'"):
            EEGConsumer(f"{uid}-2", ch_names=["A", "B", "C"], sfreq=100.0).start()


def test_consumer_argument_and_state_errors(uid):
    with pytest.raises(TypeError, match="'source' must be a str or a pylsl.StreamInfo"):
        EEGConsumer(42, ch_names=["A"], sfreq=100.0)
    with pytest.raises(ValueError, match="'sfreq' must be positive"):
        EEGConsumer(uid, ch_names=["A"], sfreq=-1)
    with pytest.raises(ValueError, match="'chunk_samples' must be an integer >= 1"):
        EEGConsumer(uid, ch_names=["A"], sfreq=100.0, chunk_samples=0)
    with pytest.raises(RuntimeError, match=f"no LSL stream with name='{uid}'"):
        EEGConsumer(uid, ch_names=["A"], sfreq=100.0, timeout=0.3).start()
    consumer = EEGConsumer(uid, ch_names=["A"], sfreq=100.0)
    with pytest.raises(RuntimeError, match="not running"):
        consumer.wait_for(1, timeout=0.1)
    spec = dict(name=uid, source_id=uid, n_chans=1, sfreq=100.0, n_samples=10,
                labels=["A"], units=["uV"])  # fmt: skip
    with outlet_process(**spec):
        with consumer:
            with pytest.raises(RuntimeError, match="already running"):
                consumer.start()
            assert consumer.wait_for(10, timeout=20)
            assert not consumer.wait_for(11, timeout=0.2)  # no more data: a timeout


def test_a_pause_is_a_stall_not_a_gap(uid, rt_log):
    n = 300
    spec = dict(name=uid, source_id=uid, n_chans=1, sfreq=250.0, n_samples=n,
                labels=["A"], units=["uV"], speed=1.0, pauses={100: 1.2})  # fmt: skip
    with outlet_process(**spec):
        consumer = EEGConsumer(uid, ch_names=["A"], sfreq=250.0, stall_timeout=0.4)
        with consumer:
            _wait_until(lambda: consumer.health.state == "stalled", 10, "the stall")
            assert consumer.wait_for(n, timeout=20)
            health = consumer.health
    assert (health.state, health.stalls, health.gaps, health.reconnects) == ("ok", 1, 0, 0)
    assert health.samples == n
    assert any("no data for" in r.message for r in rt_log.records)


def _restart_test(uid, *, source_id: str, rt_log):
    sfreq = 250.0
    spec = dict(name=uid, source_id=source_id, n_chans=2, sfreq=sfreq, n_samples=50_000,
                labels=["A", "B"], units=["uV", "uV"], speed=1.0, wait_consumer=False)  # fmt: skip
    query = f"source_id:{source_id}" if source_id else uid
    consumer = EEGConsumer(query, ch_names=["A", "B"], sfreq=sfreq, stall_timeout=0.3)
    with outlet_process(**spec) as (proc, _, _):
        consumer.start()
        assert consumer.wait_for(50, timeout=20)
        proc.kill()  # the amplifier software crashes
        proc.join()
        _wait_until(lambda: consumer.health.state == "lost", 10, "the loss")
        n_before = consumer.ring.n_written
    with outlet_process(**spec):  # ... and is restarted
        assert consumer.wait_for(n_before + 50, timeout=30)
        health = consumer.health
        consumer.stop()
    assert health.state == "ok" and health.reconnects == 1 and health.stalls <= 1
    assert health.gaps >= 1 and health.samples_lost >= sfreq * 0.3
    messages = " ".join(r.message for r in rt_log.records)
    assert "the source is gone" in messages or "was lost" in messages
    assert "reconnected" in messages


def test_a_restarted_outlet_with_the_same_source_id_is_reconnected(uid, rt_log):
    _restart_test(uid, source_id=uid, rt_log=rt_log)


def test_a_restarted_outlet_without_source_id_is_found_again_by_name(uid, rt_log):
    _restart_test(uid, source_id="", rt_log=rt_log)


def test_without_recover_a_lost_stream_ends_acquisition(uid):
    spec = dict(name=uid, source_id=uid, n_chans=1, sfreq=250.0, n_samples=50_000,
                labels=["A"], units=["uV"], speed=1.0, wait_consumer=False)  # fmt: skip
    consumer = EEGConsumer(uid, ch_names=["A"], sfreq=250.0, recover=False, stall_timeout=0.3)
    with outlet_process(**spec) as (proc, _, _):
        consumer.start()
        assert consumer.wait_for(25, timeout=20)
        proc.kill()
        proc.join()
        _wait_until(lambda: consumer.health.state == "lost", 10, "the loss")
        with pytest.raises(RuntimeError, match="not running|acquisition failed"):
            _wait_until(lambda: not consumer.running, 10, "the thread to end")
            consumer.wait_for(10**9, timeout=5)
    consumer.stop()
