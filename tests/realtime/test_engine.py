"""The engine end to end over real LSL: a replayed session in, predicted volumes out."""

from __future__ import annotations

import uuid

import nibabel as nib
import numpy as np
import pandas as pd
import pylsl
import pytest
import torch

from rt_eeg2fmri.checkpoint import load_checkpoint, save_checkpoint
from rt_eeg2fmri.data import NormStats, Preprocessing
from rt_eeg2fmri.models import Calibrated, build_model
from rt_eeg2fmri.realtime.engine import ChannelTriggers, Engine
from rt_eeg2fmri.replay import Replay
from rt_eeg2fmri.volume_stream import parse_volume_stream_info
from tests.conftest import make_session

SFREQ, WINSIZE, T_R, LEAD = 100.0, 4.0, 1.0, 0.5
GRID = (5, 6, 4)
CH = ["Fz", "Cz", "Pz", "Oz"]


@pytest.fixture
def session():
    return make_session(
        n_chans=4, sfreq=SFREQ, n_volumes=12, t_r=T_R, lead=LEAD, grid=GRID, ch_names=CH, seed=3
    )


@pytest.fixture
def checkpoint(tmp_path, session):
    return _checkpoint(tmp_path, session)


def _checkpoint(tmp_path, session, *, delay: bool = False):
    """A conv checkpoint; with ``delay``, calibrated with per-voxel gains, offsets and delays."""
    torch.manual_seed(0)
    mask = np.ones(GRID, bool)
    mask[0] = False
    model = build_model(
        "conv",
        {
            "n_chans": 4,
            "n_times": int(WINSIZE * SFREQ),
            "sfreq": SFREQ,
            "n_voxels": int(mask.sum()),
            "grid_shape": list(GRID),
            "n_basis": 8,
            "hidden": 16,
        },
    )
    model.set_mask(torch.as_tensor(mask))
    if delay:
        rng = np.random.default_rng(1)
        n = int(mask.sum())
        model = Calibrated(model, rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 1, n))
    center = session.eeg.mean(axis=1).astype(float)
    scale = session.eeg.std(axis=1).astype(float)
    path = save_checkpoint(
        tmp_path / "m.pt",
        model.eval(),
        preprocessing=Preprocessing(sfreq=SFREQ, winsize=WINSIZE),
        norm_stats=NormStats("zscore", center, scale, CH),
        ch_names=CH,
        t_r=T_R,
        grid_shape=GRID,
        affine=session.affine,
        mask=mask,
    )
    return load_checkpoint(path)


def offline_volume(ckpt, session, stop: int) -> np.ndarray:
    n = ckpt.n_times
    x = ckpt.norm_stats.apply(session.eeg[:, stop - n : stop])
    vol = np.zeros(GRID, np.float32)
    vol[ckpt.mask] = ckpt.predict(x)
    return vol


def _stream(ckpt, session, *, n_volumes=3, trigger=False, **engine_kw):
    """Replay ``session`` at 8× into an in-process Engine; return (engine, volumes, summary).

    ``trigger=True`` syncs on the replay's scanner markers; a string is the ``trigger``.
    """
    name = f"eng-{uuid.uuid4().hex[:8]}"
    replay = Replay(session, name=name, speed=8.0, truth=False, source_id=name)
    replay.open()
    if trigger is True:
        engine_kw.update(sync="trigger", trigger=f"{replay.stream_names['markers']}:R128")
    elif trigger:
        engine_kw.update(trigger=trigger)
    engine_kw.setdefault("outlet_name", None)
    engine_kw.setdefault("device", "cpu")
    got = []
    engine = Engine.from_checkpoint(ckpt, source=f"name:{replay.stream_names['eeg']}", **engine_kw)
    with engine:
        assert replay.wait_for_consumers(10.0, kinds=None if trigger is True else ["eeg"])
        replay.start()
        summary = engine.run(
            max_volumes=n_volumes, duration=20.0, on_volume=lambda i, v, row: got.append(v)
        )
    replay.stop()
    return engine, got, summary


@pytest.mark.lsl
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("model", ["base", "per-voxel delays"])
def test_samples_sync_online_equals_offline(session, tmp_path, device, model):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    checkpoint = _checkpoint(tmp_path, session, delay=model != "base")
    assert isinstance(checkpoint.model, Calibrated) == (model != "base")
    n_times, step = checkpoint.n_times, round(T_R * SFREQ)
    first = round(LEAD * SFREQ) % step
    while first < n_times:
        first += step
    # the offline reference, on the CPU before the engine moves the model
    expected = [offline_volume(checkpoint, session, first + k * step) for k in range(5)]
    engine, got, summary = _stream(
        checkpoint,
        session,
        n_volumes=5,
        sync="samples",
        phase=LEAD,
        device=device,
        outlet_name=f"eng-{uuid.uuid4().hex[:8]}-pred",
        nifti=tmp_path / "pred.nii.gz",
        timing=tmp_path / "timing.tsv",
    )
    assert summary["volumes"] == 5 and summary["skipped"] == 0
    assert engine.mapper.device.type == device
    # CUDA may compute convolutions in TF32 (cuDNN's default): a looser tolerance there
    rtol = 1e-3 if device == "cuda" else 1e-4
    for vol, ref in zip(got, expected, strict=True):
        np.testing.assert_allclose(vol, ref, rtol=rtol, atol=1e-5)
    img = nib.load(tmp_path / "pred.nii.gz")
    assert img.shape == (*GRID, 5)
    np.testing.assert_allclose(img.get_fdata()[..., -1], got[-1], atol=1e-6)
    timing = pd.read_csv(tmp_path / "timing.tsv", sep="\t", na_values="n/a")
    assert len(timing) == 5 and (timing["publish"] >= timing["data_ready"]).all()
    # at 8x the stream clock runs ahead of the LSL clock (window ends up to seconds ahead of
    # the publish times): the latency counts from the arrival of each window's last sample,
    # so it is positive and small, never the growing negative gap between the two clocks
    assert (timing["window_end"] > timing["publish"]).any()
    assert (timing["window_arrived"] <= timing["publish"]).all()
    lat = timing["latency_ms"].to_numpy()
    np.testing.assert_allclose(lat, (timing["publish"] - timing["window_arrived"]) * 1e3, atol=0.01)
    assert (lat > 0).all() and (lat < 2000).all(), lat


@pytest.mark.lsl
def test_trigger_sync_uses_scanner_markers(checkpoint, session):
    _, got, _ = _stream(checkpoint, session, n_volumes=4, trigger=True)
    # volume k starts at LEAD + k·TR; its window ends at the end of its acquisition
    onsets = session.volume_onsets
    stops = [
        round((t + T_R) * SFREQ) for t in onsets if round((t + T_R) * SFREQ) >= checkpoint.n_times
    ]
    assert len(got) == 4
    for vol, stop in zip(got, stops, strict=False):
        np.testing.assert_allclose(
            vol, offline_volume(checkpoint, session, stop), rtol=1e-4, atol=1e-5
        )


@pytest.mark.lsl
def test_a_restarted_trigger_stream_is_found_again_by_name(checkpoint, rt_log, monkeypatch):
    """The scanner's marker bridge dies after three volumes and a new one comes up under the
    same name (another source id, as pylsl gives each new outlet): the listener warns that
    the stream is gone, connects to the new outlet, and its markers make volumes again."""
    import threading
    import time

    from rt_eeg2fmri.realtime.engine import TriggerListener

    monkeypatch.setattr(TriggerListener, "look_again_s", 0.5)
    long = make_session(n_chans=4, sfreq=SFREQ, n_volumes=30, t_r=T_R, grid=GRID, ch_names=CH)
    name = f"trg-{uuid.uuid4().hex[:8]}"
    replay = Replay(long, name=name, truth=False, source_id=name)
    replay.open()
    scanner = f"{name}-scanner"
    bridge = pylsl.StreamOutlet(pylsl.StreamInfo(scanner, "Markers", 1, 0, "string"))
    engine = Engine.from_checkpoint(
        checkpoint, source=f"name:{replay.stream_names['eeg']}", device="cpu", outlet_name=None,
        sync="trigger", trigger=f"{scanner}:R128",
    )  # fmt: skip
    engine.trigger_wait_s = 0.5  # warned after 3 TRs without a marker
    out = {}

    def markers(outlet, n):
        for _ in range(n):
            outlet.push_sample(["R128"], pylsl.local_clock())
            time.sleep(T_R)

    def wait(what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    try:
        with engine:
            assert replay.wait_for_consumers(10.0, kinds=["eeg"])
            replay.start()
            thread = threading.Thread(target=lambda: out.update(engine.run(duration=30.0)))
            thread.start()
            wait(lambda: engine.consumer.ring.n_written > (WINSIZE + 0.5) * SFREQ)
            markers(bridge, 3)
            del bridge  # the bridge dies
            wait(lambda: engine.triggers.gone)
            time.sleep(3 * T_R)  # long enough for the engine's warning
            bridge = pylsl.StreamOutlet(pylsl.StreamInfo(scanner, "Markers", 1, 0, "string"))
            wait(lambda: engine.triggers.reconnects == 1)
            markers(bridge, 4)
            wait(lambda: engine.stats.volumes == 7)
            engine.stop()
            thread.join(10.0)
    finally:
        replay.stop()
    assert out["volumes"] == 7 and out["triggers"] == 7 and out["trigger_reconnects"] == 1, out
    text = rt_log.text
    assert f"The trigger stream '{scanner}' is gone from the network" in text
    assert f"No volume marker from the trigger stream '{scanner}'" in text
    assert "the stream is gone from the network): no volume is computed" in text
    assert f"The trigger stream '{scanner}' came back (a new outlet): reconnected" in text
    assert "Volume markers from the trigger stream" in text and "again, after" in text


def _with_trigger_channel(session, width: int = 5):
    """``session`` with a channel ``TRIG`` after its EEG: 1 for ``width`` samples from each
    volume's onset, else 0 (the scanner's TTL pulses on an amplifier's trigger input)."""
    trig = np.zeros((1, session.eeg.shape[1]), np.float32)
    for t in session.volume_onsets:
        a = round(t * SFREQ)
        trig[0, a : a + width] = 1.0
    eeg = np.vstack([session.eeg, trig])
    return make_session(n_chans=5, sfreq=SFREQ, n_volumes=12, t_r=T_R, lead=LEAD, grid=GRID,
                        ch_names=[*CH, "TRIG"], seed=3, eeg=eeg)  # fmt: skip


@pytest.mark.lsl
def test_trigger_sync_on_a_trigger_channel_of_the_eeg_stream(checkpoint, session):
    """``--trigger eeg:TRIG``: the volume onsets are the rising edges of a channel of the EEG
    stream itself, stamped with their samples' times, so every volume's window is the one
    the scanner's markers give."""
    engine, got, summary = _stream(checkpoint, _with_trigger_channel(session), n_volumes=4,
                                   sync="trigger", trigger="eeg:TRIG")  # fmt: skip
    assert isinstance(engine.triggers, ChannelTriggers) or engine.triggers is None
    assert engine.consumer.trigger.channel == "TRIG" and engine.consumer._trigger_col == 4
    stops = [round((t + T_R) * SFREQ) for t in session.volume_onsets]
    stops = [s for s in stops if s >= checkpoint.n_times]
    assert len(got) == 4 and summary["triggers"] >= 4, summary
    for vol, stop in zip(got, stops, strict=False):
        np.testing.assert_allclose(
            vol, offline_volume(checkpoint, session, stop), rtol=1e-4, atol=1e-5
        )


def test_a_trigger_channel_spec_is_checked(checkpoint):
    with pytest.raises(
        ValueError, match=r"the level must be a number, with a voltage unit or none"
    ):
        Engine.from_checkpoint(checkpoint, source="name:x", sync="trigger",
                               trigger="eeg:TRIG:high", outlet_name=None, device="cpu")  # fmt: skip
    from rt_eeg2fmri.realtime.inlet import EEGConsumer

    with pytest.raises(TypeError, match=r"'trigger' must be a TriggerChannel, got 'TRIG'"):
        EEGConsumer("x", ch_names=CH, sfreq=SFREQ, trigger="TRIG")


@pytest.mark.lsl
def test_a_missing_trigger_channel_is_named_with_the_streams_channels(checkpoint, session):
    with pytest.raises(ValueError, match=r"the trigger channel 'TRIG' is not among its channels"):
        _stream(checkpoint, session, n_volumes=1, sync="trigger", trigger="eeg:TRIG")


@pytest.mark.lsl
def test_a_level_in_volts_on_a_channel_of_codes_is_refused(checkpoint, session):
    """A replayed stim channel is published typed ``STIM`` with unit ``none`` (codes): a
    level with a voltage unit cannot be put in its units, and the error names the stream's
    channel."""
    import dataclasses

    codes = np.zeros(session.n_times, np.float32)
    codes[:: round(T_R * SFREQ)] = 1.0
    session = dataclasses.replace(session, stim={"STI 014": codes})
    with pytest.raises(
        ValueError,
        match=r"trigger channel 'STI 014' \(type 'STIM'\): the level "
        r"1V of 'eeg:STI 014:1V' is a voltage, but the channel's samples are not",
    ):
        _stream(checkpoint, session, n_volumes=1, sync="trigger", trigger="eeg:STI 014:1V")


@pytest.mark.lsl
def test_prediction_outlet_is_self_describing(checkpoint, session, tmp_path):
    name = f"out-{uuid.uuid4().hex[:8]}"
    replay = Replay(session, name=name, speed=8.0, truth=False, source_id=name)
    replay.open()
    engine = Engine.from_checkpoint(
        checkpoint,
        source=f"name:{replay.stream_names['eeg']}",
        sync="samples",
        outlet_name=f"{name}-pred",
        device="cpu",
    )
    with engine:
        (info,) = pylsl.resolve_byprop("name", f"{name}-pred", timeout=5.0)
        inlet = pylsl.StreamInlet(info)
        inlet.open_stream(5.0)
        meta = parse_volume_stream_info(inlet.info())
        assert meta.content == "prediction" and meta.grid_shape == GRID and meta.model == "conv"
        assert meta.t_r == T_R
        replay.wait_for_consumers(10.0, kinds=["eeg"])
        replay.start()
        got = []
        engine.run(max_volumes=2, duration=20.0, on_volume=lambda i, v, row: got.append(v))
        sample, _ = inlet.pull_sample(timeout=5.0)
        np.testing.assert_allclose(
            meta.to_volume(np.asarray(sample, np.float32)), got[0], atol=1e-6
        )
    replay.stop()


def test_trigger_sync_needs_a_marker_stream(checkpoint):
    with pytest.raises(ValueError, match="'trigger' .* is needed for sync='trigger'"):
        Engine.from_checkpoint(
            checkpoint, source="name:none", sync="trigger", outlet_name=None, device="cpu"
        )


@pytest.mark.lsl
def test_clock_sync_every_tr_after_a_full_window(checkpoint, session):
    _, got, _ = _stream(checkpoint, session, sync="clock")
    n_times, step = checkpoint.n_times, round(T_R * SFREQ)
    assert len(got) == 3
    for k, vol in enumerate(got):
        np.testing.assert_allclose(
            vol, offline_volume(checkpoint, session, n_times + k * step), rtol=1e-4, atol=1e-5
        )


@pytest.mark.lsl
def test_calibration_estimates_statistics_from_the_live_stream(checkpoint, session):
    engine, got, _ = _stream(checkpoint, session, sync="samples", calibrate=3.0)
    n = round(3.0 * SFREQ)
    center = session.eeg[:, :n].astype(np.float64).mean(axis=1)
    scale = session.eeg[:, :n].astype(np.float64).std(axis=1)
    np.testing.assert_allclose(engine.mapper.norm_stats.center, center, rtol=1e-4, atol=1e-9)
    stop = checkpoint.n_times  # samples sync without phase: the first window ends at n_times
    x = (
        (session.eeg[:, stop - checkpoint.n_times : stop] - center[:, None]) / scale[:, None]
    ).astype(np.float32)
    expected = np.zeros(GRID, np.float32)
    expected[checkpoint.mask] = checkpoint.predict(x)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.lsl
def test_a_silent_trigger_stream_is_named_in_a_warning(checkpoint, session, rt_log):
    """The scanner's marker stream is there but never sends: one warning, 0 volumes."""
    import pylsl

    name = f"eng-{uuid.uuid4().hex[:8]}"
    replay = Replay(session, name=name, speed=4.0, truth=False, source_id=name)
    replay.open()
    marker_info = pylsl.StreamInfo(f"{name}-scanner", "Markers", 1, 0, "string", f"{name}-s")
    silent = pylsl.StreamOutlet(marker_info)
    engine = Engine.from_checkpoint(
        checkpoint, source=f"name:{replay.stream_names['eeg']}", device="cpu", outlet_name=None,
        sync="trigger", trigger=f"{name}-scanner:R128",
    )  # fmt: skip
    engine.trigger_wait_s = 0.5
    try:
        with engine:
            assert replay.wait_for_consumers(10.0, kinds=["eeg"])
            replay.start()
            summary = engine.run(duration=3 * T_R + 2.0)
    finally:
        replay.stop()
        del silent
    assert summary["volumes"] == 0 and summary["triggers"] == 0
    warnings = [r.getMessage() for r in rt_log.records if "No volume marker" in r.getMessage()]
    assert len(warnings) == 1
    assert f"trigger stream '{name}-scanner'" in warnings[0] and "'r128'" in warnings[0]
