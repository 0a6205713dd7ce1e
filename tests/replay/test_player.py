from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from rt_eeg2fmri.replay import Replay
from rt_eeg2fmri.volume_stream import parse_volume_stream_info
from tests.replay.helpers import connect, drain, replay_session

pytestmark = pytest.mark.lsl


def _desc_channels(info: pylsl.StreamInfo) -> list[tuple[str, str, str]]:
    out, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append(tuple(ch.child_value(k) for k in ("label", "type", "unit")))
        ch = ch.next_sibling()
    return out


def _psc(session, k):
    mean = session.bold.mean(axis=3, dtype=np.float64)
    return (100 * (session.bold[..., k] - mean) / mean).astype(np.float32)


def test_pylsl_reads_the_replay(uid):
    s = replay_session()
    replay = Replay(s, name=uid, speed=20.0)
    replay.open()
    inlets = {kind: connect(sid) for kind, sid in replay.source_ids.items()}
    assert replay.wait_for_consumers(10.0)
    with replay:
        assert replay.wait(30.0)
        t0 = replay.t0
        data, ts = drain(inlets["eeg"], n_min=s.n_times)
        markers, mts = drain(inlets["markers"], n_min=s.n_volumes + 2)
        truth = inlets["truth"]
        meta = parse_volume_stream_info(truth.info(5.0))
        buf = np.empty((s.n_volumes, meta.n_voxels), np.float32)
        _, vts = truth.pull_chunk(
            timeout=5.0, max_samples=s.n_volumes, dest_obj=buf, min_samples=s.n_volumes
        )
        info = inlets["eeg"].info(5.0)

    # EEG: the stream an amplifier would send
    assert info.name() == f"{uid}-EEG" and info.type() == "EEG"
    assert info.nominal_srate() == s.sfreq and info.channel_format() == pylsl.cf_float32
    assert _desc_channels(info) == [
        ("Fz", "EEG", "microvolts"),
        ("Cz", "EEG", "microvolts"),
        ("ECG", "ECG", "microvolts"),
    ]
    acq = info.desc().child("acquisition")
    assert acq.child_value("manufacturer") == "rt-eeg2fmri replay"
    assert acq.child_value("source_file") == s.source["eeg"]
    assert "sub-01_task-oddball_run-1" in acq.child_value("model")
    np.testing.assert_array_equal(np.asarray(data, np.float32).T, s.eeg * np.float32(1e6))
    # sample i at t0 + i / sfreq exactly: no drift, no jitter in stream time
    np.testing.assert_array_equal(ts, t0 + np.arange(s.n_times) / s.sfreq)

    # markers: scanner volumes and stimulus events at their exact times on the EEG clock
    onsets = np.r_[s.volume_onsets, s.events["onset"]]
    labels = ["R128"] * s.n_volumes + list(s.events["trial_type"])
    order = np.argsort(onsets, kind="stable")
    assert [m[0] for m in markers] == [labels[i] for i in order]
    assert np.abs(mts - (t0 + onsets[order])).max() < 1e-3
    assert replay.n_scanner_markers == s.n_volumes and replay.n_markers == s.n_volumes + 2

    # truth: one volume per TR, timestamp = end of its acquisition, PSC of the run mean
    assert meta.content == "truth" and meta.t_r == s.t_r and meta.grid_shape == s.grid_shape
    np.testing.assert_allclose(vts, t0 + s.volume_onsets + s.t_r, atol=1e-9)
    mask = replay._mask  # the data's default mask (an EPI mask on this small grid)
    assert 0 < mask.sum()
    for k in range(s.n_volumes):
        want = _psc(s, k) * mask
        np.testing.assert_allclose(meta.to_volume(buf[k]), want, rtol=1e-5, atol=1e-5)
    assert replay.n_pushed == s.n_times and replay.n_volumes == s.n_volumes


def test_mne_lsl_reads_the_replay(uid):
    from mne_lsl.stream import StreamLSL

    s = replay_session(n_volumes=4)
    replay = Replay(s, name=uid, speed=10.0, truth=False)
    replay.open()
    stream = StreamLSL(bufsize=s.n_times / s.sfreq + 1, name=f"{uid}-EEG", stype="EEG")
    stream.connect(acquisition_delay=0.01, timeout=10.0)
    try:
        assert stream.ch_names == s.ch_names and stream.info["sfreq"] == s.sfreq
        assert replay.wait_for_consumers(10.0, kinds=["eeg"])
        replay.start()
        assert replay.wait(30.0)
        deadline = time.monotonic() + 10
        while stream.n_new_samples < s.n_times and time.monotonic() < deadline:
            time.sleep(0.05)
        data, ts = stream.get_data(winsize=s.n_times / s.sfreq)
    finally:
        stream.disconnect()
        replay.stop()
    np.testing.assert_array_equal(data, s.eeg * np.float32(1e6))  # in µV, as labelled
    np.testing.assert_allclose(ts, replay.t0 + np.arange(s.n_times) / s.sfreq, atol=1e-9)


def test_loop_start_duration(uid):
    s = replay_session(n_volumes=6)
    replay = Replay(s, name=uid, speed=20.0, loop=True, start=2.0, duration=3.0, chunk=0.05)
    assert replay.n_times == 750 and replay.duration == 3.0
    replay.open()
    eeg, markers = connect(replay.source_ids["eeg"]), connect(replay.source_ids["markers"])
    assert replay.wait_for_consumers(10.0, kinds=["eeg", "markers"])
    replay.start()
    data, ts = drain(eeg, n_min=3 * 750)
    m, mts = drain(markers, n_min=9)
    replay.stop()
    t0, n = replay.t0, 750
    first = s.eeg[:, 500:1250].T * np.float32(1e6)
    data = np.asarray(data, np.float32)
    for k in range(3):  # seamless: loop k continues at t0 + (k * n + i) / sfreq
        np.testing.assert_array_equal(data[k * n : (k + 1) * n], first)
    np.testing.assert_array_equal(ts, t0 + np.arange(len(ts)) / s.sfreq)
    # per loop: volumes at 2, 3, 4 s and the oddball at 3.5 s of the recording
    assert [x[0] for x in m[:4]] == ["R128", "R128", "oddball", "R128"]
    expected = [t0 + k * 3.0 + t - 2.0 for k in range(3) for t in (2.0, 3.0, 3.5, 4.0)]
    np.testing.assert_allclose(mts[:9], expected[:9], atol=1e-9)
    assert replay.n_loops >= 3 and not replay.running


def test_speed_and_pacing(uid):
    """At speed 4, 2 s of recording take 0.5 s of wall time; pushes follow the schedule."""
    s = replay_session(n_volumes=2, lead=0.0, t_r=1.0)
    replay = Replay(s, name=uid, speed=4.0, truth=False)
    replay.open()
    eeg = connect(replay.source_ids["eeg"])
    assert replay.wait_for_consumers(10.0, kinds=["eeg"])
    replay.start()
    arrivals, stamps = [], []
    while len(stamps) < s.n_times:
        _, ts = eeg.pull_chunk(timeout=2.0, max_samples=1024, min_samples=1)
        assert ts, "the replay stalled"
        arrivals.append(pylsl.local_clock())
        stamps.append(ts[-1])
        stamps.extend([None] * (len(ts) - 1))
    wall = pylsl.local_clock() - replay.t0
    replay.stop()
    assert 0.45 < wall < 1.0, wall
    last = np.array([t for t in stamps if t is not None])
    nominal = replay.t0 + (last - replay.t0 + 1 / s.sfreq) / 4.0  # when each chunk was due
    late = np.asarray(arrivals) - nominal
    assert late.min() > -1e-3 and np.median(late) < 0.02, late


def test_summary_and_properties(uid):
    s = replay_session()
    replay = Replay(s, name=uid, speed=50.0)
    assert replay.t0 is None and not replay.running
    with pytest.raises(RuntimeError, match="has not started"):
        replay.stream_time(1.0)
    assert replay.stream_names == {
        "eeg": f"{uid}-EEG",
        "markers": f"{uid}-Markers",
        "truth": f"{uid}-truth",
    }
    replay.run(until=5.0)
    assert replay.stream_time(1.0) == pytest.approx(replay.t0 + 1.0)
    text = replay.summary()
    assert f"replayed {s.n_times} samples (7.000 s of recording, 1 loop(s)) on '{uid}-EEG'" in text
    assert "8 markers (6 'R128')" in text and f"6 volumes on '{uid}-truth'" in text
    with pytest.raises(RuntimeError, match="already started"):
        Replay(s, name=uid).start().start()


def test_run_until_stops_a_loop(uid):
    replay = Replay(replay_session(), name=uid, loop=True, truth=False)
    t = time.monotonic()
    replay.run(until=0.3)
    assert 0.25 < time.monotonic() - t < 2.0
    assert 0 < replay.n_pushed <= 0.35 * 250


def test_source_id_is_stable_and_inlets_recover(uid):
    s = replay_session()
    a, b = Replay(s, truth=False), Replay(replay_session(), truth=False)
    assert a.source_ids == b.source_ids  # same file + subject/task/run → same ids
    assert a.stream_names["eeg"] == "sub-01_task-oddball_run-1-EEG"
    other = Replay(replay_session(run="2"), truth=False)
    assert other.source_ids["eeg"] != a.source_ids["eeg"]

    first = Replay(s, name=uid, source_id=uid, loop=True, speed=5.0, truth=False).start()
    inlet = connect(f"{uid}:eeg")
    drain(inlet, n_min=10)
    first.stop()  # the sender goes away and comes back under the same source id
    second = Replay(s, name=uid, source_id=uid, loop=True, speed=5.0, truth=False).start()
    try:
        _, ts = drain(inlet, n_min=10, timeout=15.0)
        assert len(ts) and ts[-1] >= second.t0  # the same inlet now reads the new outlet
    finally:
        second.stop()


def test_background_errors_surface_on_stop(uid):
    s = replay_session(n_volumes=2)
    replay = Replay(s, name=uid, speed=50.0, truth=False)
    replay.session.eeg = np.zeros((1, 1), np.float32)  # wrong shape under the player's feet
    replay.start()
    replay.wait(5.0)
    with pytest.raises(RuntimeError, match="Replay of sub-01_task-oddball_run-1 failed"):
        replay.stop()


def test_bad_arguments():
    s = replay_session()
    with pytest.raises(TypeError, match="'session' must be a Session, got dict"):
        Replay({"eeg": []})
    with pytest.raises(ValueError, match="'speed' must be positive and finite, got speed=0"):
        Replay(s, speed=0)
    with pytest.raises(ValueError, match="'chunk' must be positive"):
        Replay(s, chunk=-1)
    with pytest.raises(
        ValueError, match=r"'start' must be within the 7\.000 s recording .*eeg\.vhdr"
    ):
        Replay(s, start=7.0)
    with pytest.raises(ValueError, match="'duration' must be positive"):
        Replay(s, duration=0)
    with pytest.raises(ValueError, match="'kinds' must name outlets of this replay .*got 'truth'"):
        Replay(s, truth=False, source_id=uuid.uuid4().hex).wait_for_consumers(0.1, kinds=["truth"])
    with pytest.raises(ValueError, match="'marker' must be a non-empty string"):
        Replay(s, marker="")
    s.eeg_unit = "furlong"
    with pytest.raises(ValueError, match="cannot convert EEG unit 'furlong' to microvolts"):
        Replay(s)


def test_truth_prepared_like_the_training_targets():
    from rt_eeg2fmri.data import BoldChain, Preprocessing
    from rt_eeg2fmri.data.bold import masked_series, remove_drifts, smooth_bold

    s = replay_session()
    plain = Replay(s, source_id=uuid.uuid4().hex)
    mask = np.ones(s.grid_shape, bool)
    pre = Preprocessing(fwhm=6.0, high_pass=0.05)
    prepared = Replay(s, source_id=uuid.uuid4().hex, preprocessing=pre, mask=mask)
    v = masked_series(smooth_bold(s.bold, s.affine, 6.0), mask).astype(np.float64)
    series = remove_drifts(100 * (v - v.mean(0)) / v.mean(0), s.t_r, 0.05)
    for k in (0, s.n_volumes - 1):
        np.testing.assert_allclose(plain.truth_volume(k), _psc(s, k) * plain._mask, atol=1e-4)
        np.testing.assert_allclose(prepared.truth_volume(k)[mask], series[k], atol=1e-4)
    # a median_ratio model sees its truth in its own units, inside its own mask
    sub = np.zeros(s.grid_shape, bool)
    sub[1:3] = True
    ratio = Replay(
        s, source_id=uuid.uuid4().hex, preprocessing=Preprocessing(target="median_ratio"), mask=sub
    )
    want = BoldChain(target="median_ratio").run(s.bold, sub, affine=s.affine, t_r=s.t_r)
    np.testing.assert_allclose(ratio.truth_volume(2)[sub], want[2], rtol=1e-6)
    assert not ratio.truth_volume(2)[~sub].any()
    assert np.abs(want).max() < 1.0  # a ratio, not percent
    with pytest.raises(ValueError, match="'mask' has shape"):
        Replay(s, mask=np.ones((2, 2, 2), bool))


def test_one_time_sorted_schedule_per_loop():
    s = replay_session()  # 6 volumes from 1 s at TR 1 s, 2 events, 7 s at 250 Hz
    replay = Replay(s, chunk=0.1, source_id=uuid.uuid4().hex)
    sched = replay.schedule()
    assert np.all(np.diff(sched.times) >= 0)
    kinds = {k: int((sched.kinds == k).sum()) for k in (0, 1, 2)}
    assert kinds == {0: 70, 1: 6 + 2, 2: 6}
    # chunks tile the loop; each is due when its last sample is complete
    np.testing.assert_array_equal(sched.chunk_starts[1:], sched.chunk_ends[:-1])
    assert sched.chunk_ends[-1] == s.n_times
    eeg = sched.kinds == 0
    np.testing.assert_allclose(sched.times[eeg], sched.chunk_ends[sched.items[eeg]] / s.sfreq)
    # at equal times: the EEG that completes there, then the marker, then the volume
    at_2s = np.flatnonzero(np.isclose(sched.times, 2.0))
    assert sched.kinds[at_2s].tolist() == [0, 1, 2]
