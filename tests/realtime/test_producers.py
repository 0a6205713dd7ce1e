"""Producers nobody here wrote: mne-lsl's ``PlayerLSL``, and streams spelled their own way."""

from __future__ import annotations

import time

import mne
import numpy as np
import pylsl
import pytest

from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.data.channels import unit_scale
from rt_eeg2fmri.realtime.engine import Engine
from rt_eeg2fmri.realtime.inlet import EEGConsumer
from rt_eeg2fmri.realtime.resolve import resolve_eeg_stream
from tests.realtime.engine_helpers import CH, direct_volume, tiny_checkpoint
from tests.realtime.lsl_outlets import make_data, outlet_process

pytestmark = pytest.mark.lsl
SFREQ = 100.0


@pytest.mark.parametrize(
    ("unit", "volts"),
    [("0", 1.0), ("-3", 1e-3), ("-6", 1e-6), ("-9", 1e-9), ("µV", 1e-6), ("Microvolts", 1e-6)],
)
def test_units_as_names_symbols_and_mne_lsl_powers_of_ten(unit, volts):
    assert unit_scale(unit) == pytest.approx(volts)


def test_unknown_units_say_what_is_accepted():
    with pytest.raises(ValueError, match="unknown unit '3'.*power of ten of volts"):
        unit_scale("3")
    with pytest.raises(ValueError, match="'units' must name a unit"):
        EEGConsumer("x", ch_names=["A"], sfreq=100.0, units="")


def test_stream_type_is_matched_case_insensitively(uid):
    info = pylsl.StreamInfo(uid, f"eeg-{uid}", 1, SFREQ, pylsl.cf_float32, uid)
    outlet = pylsl.StreamOutlet(info)
    found = resolve_eeg_stream(f"type:EEG-{uid.upper()}", timeout=5.0)
    assert found.source_id() == uid
    with pytest.raises(RuntimeError, match="no LSL stream with name="):
        resolve_eeg_stream(uid.upper(), timeout=0.3)  # names stay exact
    del outlet


def test_odd_units_are_overridden(uid):
    # a stream whose units say nothing useful: --units uV reads them as microvolts
    n = 300
    spec = dict(name=uid, source_id=uid, n_chans=2, sfreq=SFREQ, n_samples=n,
                labels=["A", "B"], units=["counts", "counts"], seed=5)  # fmt: skip
    with outlet_process(**spec):
        with pytest.raises(ValueError, match="channel 'A': unknown unit 'counts'"):
            EEGConsumer(f"source_id:{uid}", ch_names=["A", "B"], sfreq=SFREQ, timeout=10).start()
    with outlet_process(**spec):
        consumer = EEGConsumer(
            f"source_id:{uid}", ch_names=["B", "A"], sfreq=SFREQ, units="uV", timeout=10
        )
        with consumer:
            assert consumer.wait_for(n, timeout=20)
    sent = make_data(5, n, 2)
    np.testing.assert_array_equal(consumer.ring.latest(n)[0], sent[:, ::-1].T * np.float32(1e-6))


def _engine_volumes(ckpt, source, *, max_volumes, ready=None, **engine_kw):
    """An engine on ``source`` until ``max_volumes`` (``ready()`` once it is connected, to
    start a producer that waits for it); (engine, volumes, summary)."""
    got = []
    engine = Engine.from_checkpoint(
        ckpt, source=source, outlet_name=None, device="cpu",
        consumer_options={"timeout": 10.0}, **engine_kw,
    )  # fmt: skip
    with engine:
        if ready is not None:
            ready()
        summary = engine.run(
            max_volumes=max_volumes, duration=30.0, on_volume=lambda i, v, r: got.append(v)
        )
    return engine, got, summary


def _played(raw, uid, ckpt, *, max_volumes, **engine_kw):
    """``raw`` played by mne-lsl's ``PlayerLSL`` into an engine; (engine, volumes, summary)."""
    from mne_lsl.player import PlayerLSL

    player = PlayerLSL(raw, chunk_size=10, n_repeat=1, name=uid, source_id=uid)
    player.start()
    try:
        return _engine_volumes(ckpt, f"source_id:{uid}", max_volumes=max_volumes, **engine_kw)
    finally:
        player.stop()


def test_mne_lsl_player_streams_into_the_engine(tmp_path, uid):
    # PlayerLSL publishes type 'eeg' in lower case, float64 samples in volts with unit '0'
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=2.0, t_r=0.5))
    names = ["Oz", "ECG", "Fz", "Pz", "Cz"]  # another order and an extra channel
    data = 20e-6 * np.random.default_rng(7).standard_normal((5, int(40 * SFREQ)))
    raw = mne.io.RawArray(data, mne.create_info(names, SFREQ, "eeg"), verbose="error")
    engine, got, summary = _played(raw, uid, ckpt, max_volumes=6, sync="samples")
    ring = engine.consumer.ring
    assert engine.consumer.stream_info.type() == "eeg"
    assert summary["volumes"] == 6 and summary["samples_lost"] == 0, summary
    # the samples arrived in volts, mapped to the model's channels: find where the
    # inlet joined the recording, then every volume is the model on that window
    n = ring.n_written
    received, _ = ring.read(n, n)
    order = [names.index(c) for c in CH]
    start = int(np.argmin(np.abs(data[order[0]] - received[0, 0])))
    np.testing.assert_allclose(received, data[order, start : start + n], rtol=1e-6)
    n_times, step = ckpt.n_times, round(ckpt.t_r * SFREQ)
    for k, vol in enumerate(got):
        stop = n_times + k * step
        want = direct_volume(ckpt, received[:, stop - n_times : stop])
        np.testing.assert_allclose(vol, want, rtol=1e-5, atol=1e-6)


def _replayed(raw, uid, ckpt, tmp_path, *, max_volumes, **engine_kw):
    """``raw`` saved as FIF and played by our ``rt-eeg2fmri replay`` (its stim channels
    published after the EEG) into an engine; (engine, volumes, summary)."""
    from rt_eeg2fmri.replay import Replay, load_recording

    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    replay = Replay(load_recording(path), name=uid, speed=2.0, truth=False, source_id=uid)
    replay.open()

    def start():
        assert replay.wait_for_consumers(10.0, kinds=["eeg"])
        replay.start()

    try:
        return _engine_volumes(ckpt, f"name:{uid}-EEG", max_volumes=max_volumes, ready=start,
                               **engine_kw)  # fmt: skip
    finally:
        replay.stop()


@pytest.mark.parametrize("player", ["mne-lsl", "replay"])
@pytest.mark.parametrize(
    ("spec", "kind", "code"),
    [
        ("eeg:STI 014", "stim", lambda pulse, other: pulse),
        # a status channel: bits always set, stimulus codes on the low byte, the scanner on
        # bit 8
        ("eeg:STI 014:mask=0x100", "stim",
         lambda pulse, other: 0x3E00 | (pulse * 0x100) | other),
        # an analog trigger lead of 100 µV that MNE types EEG (as BrainVision's TRIG):
        # mne-lsl sends it in volts (unit "0"), our replay in microvolts, and a level with a
        # unit is the same voltage in both
        ("eeg:STI 014:50uV", "eeg", lambda pulse, other: 100e-6 * pulse + 1e-6 * (other > 0)),
    ],
    ids=["level", "mask", "volts"],
)  # fmt: skip
def test_a_stim_channel_drives_trigger_sync(tmp_path, uid, player, spec, kind, code):
    """A recording with its scanner triggers on a stim channel (``STI 014``), played by
    mne-lsl's ``PlayerLSL`` or by our replay of its FIF file: ``--trigger "eeg:STI 014"``
    (or, for a status channel, its scanner bit; for an analog lead, a level in µV) takes
    each rising edge as a volume onset, so every volume is the model on the window ending
    one TR after an edge."""
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=2.0, t_r=0.5))
    n = int(8 * SFREQ)
    rng = np.random.default_rng(3)
    data = 20e-6 * rng.standard_normal((5, n))
    edges = np.arange(30, n, 50)  # a volume every 0.5 s from 0.3 s: one sample high
    pulse = np.zeros(n, np.int64)
    pulse[edges] = 1
    other = np.zeros(n, np.int64)
    for t in rng.integers(0, n - 20, 12):  # stimulus codes, some over a scanner pulse
        other[t : t + 15] = rng.integers(1, 256)
    data[4] = code(pulse, other)
    info = mne.create_info([*CH, "STI 014"], SFREQ, ["eeg"] * 4 + [kind])
    raw = mne.io.RawArray(data, info, verbose="error")
    if player == "mne-lsl":
        engine, got, summary = _played(raw, uid, ckpt, max_volumes=5, sync="trigger", trigger=spec)
    else:
        engine, got, summary = _replayed(raw, uid, ckpt, tmp_path, max_volumes=5,
                                         sync="trigger", trigger=spec)  # fmt: skip
    ring = engine.consumer.ring
    assert summary["volumes"] == 5 and summary["samples_lost"] == 0, summary
    received, _ = ring.read(ring.n_written, ring.n_written)
    start = int(np.argmin(np.abs(data[0] - received[0, 0])))  # where the inlet joined
    np.testing.assert_allclose(received, data[:4, start : start + ring.n_written], rtol=1e-6)
    stops = [e - start + 50 for e in edges if e > start and e - start + 50 >= ckpt.n_times]
    for vol, stop in zip(got, stops, strict=False):
        want = direct_volume(ckpt, received[:, stop - ckpt.n_times : stop])
        np.testing.assert_allclose(vol, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("player", ["mne-lsl", "replay"])
def test_an_ecg_lead_typed_ecg_is_found_by_its_type(tmp_path, uid, player):
    """An ECG lead whose name says nothing (``heart``) but which the file types ``ecg``:
    mne-lsl's ``PlayerLSL`` and our replay publish it typed ECG, and the live pulse
    correction takes it as its lead without ``--ecg``."""
    from mne_lsl.player import PlayerLSL

    from rt_eeg2fmri.replay import Replay, load_recording

    data = 20e-6 * np.random.default_rng(5).standard_normal((5, int(20 * SFREQ)))
    info = mne.create_info([*CH[:2], "heart", *CH[2:]], SFREQ, ["eeg"] * 2 + ["ecg"] + ["eeg"] * 2)
    raw = mne.io.RawArray(data, info, verbose="error")
    if player == "mne-lsl":
        producer = PlayerLSL(raw, chunk_size=10, n_repeat=1, name=uid, source_id=uid)
        source = f"source_id:{uid}"
    else:
        raw.save(tmp_path / "rec_raw.fif", verbose="error")
        producer = Replay(load_recording(tmp_path / "rec_raw.fif"), name=uid, truth=False,
                          source_id=uid, loop=True)  # fmt: skip
        source = f"name:{uid}-EEG"
    producer.start()
    consumer = EEGConsumer(source, ch_names=CH, sfreq=SFREQ, pulse=30, timeout=10.0)
    try:
        with consumer:
            assert consumer.wait_for(50, timeout=20)
            assert consumer.chain._ecg_name == "heart"
    finally:
        producer.stop()


def test_mne_lsl_reads_the_stim_channel_of_our_replay(tmp_path, uid):
    """mne-lsl's ``StreamLSL`` reads a replayed FIF's stim channel as MNE's ``stim`` type,
    with the file's codes, after the EEG in microvolts."""
    from mne_lsl.stream import StreamLSL

    from rt_eeg2fmri.replay import Replay, load_recording

    data = 20e-6 * np.random.default_rng(4).standard_normal((5, int(4 * SFREQ)))
    data[4] = 0
    data[4, 50:55] = 0x3E05
    raw = mne.io.RawArray(data, mne.create_info([*CH, "STI 014"], SFREQ, ["eeg"] * 4 + ["stim"]),
                          verbose="error")  # fmt: skip
    raw.save(tmp_path / "rec_raw.fif", verbose="error")
    replay = Replay(load_recording(tmp_path / "rec_raw.fif"), name=uid, truth=False,
                    source_id=uid, loop=True)  # fmt: skip
    replay.start()
    stream = StreamLSL(bufsize=4.0, name=f"{uid}-EEG").connect(timeout=10.0)
    try:
        assert stream.ch_names == [*CH, "STI 014"]
        assert stream.get_channel_types() == ["eeg"] * 4 + ["stim"]
        deadline = time.monotonic() + 10.0
        while stream.n_new_samples < 3 * SFREQ and time.monotonic() < deadline:
            time.sleep(0.1)
        codes, _ = stream.get_data(picks="STI 014")
        assert set(np.unique(codes)) == {0.0, float(0x3E05)}
    finally:
        stream.disconnect()
        replay.stop()


def test_a_16_channel_cap_streams_into_a_34_channel_model(tmp_path, uid):
    # no --allow-missing: the 18 channels the cap lacks are interpolated by the chain
    import json

    from rt_eeg2fmri.data import EEGChain
    from rt_eeg2fmri.replay import Replay
    from rt_eeg2fmri.sim.presets import CHANNELS_16, CHANNELS_34
    from tests.conftest import make_session

    ckpt = load_checkpoint(
        tiny_checkpoint(tmp_path / "m.pt", ch_names=list(CHANNELS_34), winsize=2.0, t_r=0.5)
    )
    session = make_session(
        n_chans=16, sfreq=SFREQ, n_volumes=12, t_r=0.5, ch_names=list(CHANNELS_16)
    )
    replay = Replay(session, name=uid, speed=8.0, truth=False, source_id=uid)
    replay.open()
    engine = Engine.from_checkpoint(
        ckpt, source=f"name:{uid}-EEG", sync="samples", outlet_name=None, device="cpu",
        nifti=tmp_path / "pred.nii",
    )  # fmt: skip
    got = []
    with engine:
        assert replay.wait_for_consumers(10.0, kinds=["eeg"])
        replay.start()
        summary = engine.run(max_volumes=3, duration=20.0, on_volume=lambda i, v, r: got.append(v))
    replay.stop()
    assert summary["volumes"] == 3 and summary["skipped"] == 0
    offline = EEGChain.for_session(ckpt.preprocessing, session, ch_names=ckpt.ch_names)
    eeg = offline.run(session.eeg)
    assert offline.montage.interpolated == engine.consumer.chain.montage.interpolated
    for k, vol in enumerate(got):
        stop = ckpt.n_times + k * round(ckpt.t_r * SFREQ)
        want = direct_volume(ckpt, eeg[:, stop - ckpt.n_times : stop])
        np.testing.assert_allclose(vol, want, rtol=1e-4, atol=1e-5)
    sidecar = json.loads((tmp_path / "pred.json").read_text())
    assert len(sidecar["Montage"]["Interpolated"]) == 18
    assert sidecar["Montage"]["Method"] == "spherical spline (MNE)"


def test_a_level_in_volts_on_mne_lsls_stim_channel_is_refused(tmp_path, uid):
    """mne-lsl's ``PlayerLSL`` gives a stim channel unit ``"0"`` (volts, as MNE does) and
    type ``stim``: a level with a unit is refused there, by its type, as in a file."""
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=2.0, t_r=0.5))
    data = 20e-6 * np.random.default_rng(6).standard_normal((5, int(8 * SFREQ)))
    data[4] = 0
    info = mne.create_info([*CH, "STI 014"], SFREQ, ["eeg"] * 4 + ["stim"])
    raw = mne.io.RawArray(data, info, verbose="error")
    with pytest.raises(ValueError) as err:
        _played(raw, uid, ckpt, max_volumes=1, sync="trigger", trigger="eeg:STI 014:2.5V")
    msg = str(err.value)
    assert "trigger channel 'STI 014' (type 'stim'): the level 2.5V" in msg
    assert "give the level without a unit" in msg
