"""A tiny random-weight conv checkpoint for the engine, CLI and reliability tests."""

from __future__ import annotations

import contextlib
import multiprocessing as mp

import numpy as np
import torch

from rt_eeg2fmri.checkpoint import save_checkpoint
from rt_eeg2fmri.data import NormStats, Preprocessing
from rt_eeg2fmri.models import build_model

CH = ["Fz", "Cz", "Pz", "Oz"]
GRID = (5, 6, 4)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def tiny_checkpoint(
    path,
    *,
    ch_names=CH,
    sfreq: float = 100.0,
    winsize: float = 2.0,
    t_r: float = 0.5,
    scale: float = 1e-5,
    seed: int = 0,
    channels=(4, 8),
    **preprocessing,
):
    """Save a small conv checkpoint (mask: the grid minus its first x-slab); return the path.

    ``channels``: the encoder's feature maps (one entry: the band-power envelope feeds a
    learned HRF, which adaptation can stretch).

    The normalisation statistics are centre 0 and ``scale`` volts for every channel;
    ``preprocessing`` fields (``l_freq``, ``h_freq``, ...) join the checkpoint's record.
    """
    torch.manual_seed(seed)
    mask = np.ones(GRID, bool)
    mask[0] = False
    model = build_model(
        "conv",
        {
            "n_chans": len(ch_names),
            "n_times": round(winsize * sfreq),
            "sfreq": sfreq,
            "n_voxels": int(mask.sum()),
            "grid_shape": list(GRID),
            "channels": list(channels),
            "emb_dim": 8,
            "n_basis": 4,
            "hidden": 16,
        },
    )
    model.set_mask(torch.as_tensor(mask))
    n = len(ch_names)
    return save_checkpoint(
        path,
        model.eval(),
        preprocessing=Preprocessing(sfreq=sfreq, winsize=winsize, **preprocessing),
        norm_stats=NormStats("zscore", [0.0] * n, [scale] * n, list(ch_names)),
        ch_names=list(ch_names),
        t_r=t_r,
        grid_shape=GRID,
        affine=AFFINE,
        mask=mask,
    )


def direct_volume(ckpt, window_volts: np.ndarray) -> np.ndarray:
    """The model on one window (n_chans, n_times) in volts, scattered into the grid."""
    x = ckpt.norm_stats.apply(np.asarray(window_volts, np.float32))
    vol = np.zeros(ckpt.grid_shape, np.float32)
    vol[ckpt.mask] = ckpt.predict(x)
    return vol


def _play(session_kwargs: dict, replay_kwargs: dict, ready, done) -> None:
    from rt_eeg2fmri.replay import Replay
    from tests.conftest import make_session

    chunk = replay_kwargs.pop("chunk_samples", None)
    replay = Replay(make_session(**session_kwargs), truth=False, **replay_kwargs)
    if chunk:
        replay.chunk_size = chunk
    replay.open()
    ready.set()
    replay.wait_for_consumers(60.0, kinds=["eeg"])
    replay.start()
    done.wait()
    replay.stop()


@contextlib.contextmanager
def replay_process(session_kwargs: dict, **replay_kwargs):
    """Replay ``make_session(**session_kwargs)`` from its own process, like an amplifier.

    Playback starts once a consumer connects to the EEG outlet. ``replay_kwargs`` go to
    :class:`~rt_eeg2fmri.replay.Replay` (plus ``chunk_samples``: samples per push).
    """
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_play, args=(session_kwargs, replay_kwargs, ready, done), daemon=True)
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the replay process did not start")
        yield proc
    finally:
        done.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def wait_for_line(proc, text: str) -> list[str]:
    """Read a text-mode ``Popen``'s stderr until a line contains ``text``; the lines read."""
    lines = []
    while True:
        line = proc.stderr.readline()
        if not line:
            rest = proc.communicate(timeout=10)[1]
            raise AssertionError(f"the process ended before {text!r}:\n{''.join(lines)}{rest}")
        lines.append(line)
        if text in line:
            return lines


def stream_replay(replay, *args, timeout: float = 90.0) -> tuple[int, str, str]:
    """Run ``rt-eeg2fmri stream *args`` in a subprocess; start ``replay`` once it streams.

    Returns ``(returncode, stdout, stderr)``; the process is killed and the replay stopped
    whatever happens.
    """
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "stream", *map(str, args)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = wait_for_line(proc, "streaming ")
        replay.start()
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        replay.stop()
    return proc.returncode, out, "".join(lines) + err


def stream_in_scanner(
    session, ckpt, tmp_path, *, speed, max_volumes, duration, roi_samples=None,
    volume_samples=None, **engine,
):  # fmt: skip
    """Replay ``session`` with its marker stream into an engine that corrects it live
    (``engine``: ``correct``, ``gradient_volumes``, ``pulse_beats``) and publishes the EEG
    it sees, read by a pylsl inlet. With ``engine["roi"]`` the ROI stream is read by
    another inlet, its samples appended to the list ``roi_samples``; with a list
    ``volume_samples``, the volume stream too (its description first, then the samples).

    Returns
    -------
    summary : dict
    online : array (n_chans, n)
        Every sample of the engine's ring (the EEG the model sees).
    published : array (n_published, n_chans + 1)
        What the inlet received of the published EEG (µV, and the ``Clean`` flags).
    """
    import time
    import uuid

    import pylsl

    from rt_eeg2fmri.realtime.engine import Engine
    from rt_eeg2fmri.replay import Replay

    uid = f"mr-{uuid.uuid4().hex[:8]}"
    replay = Replay(session, name=uid, speed=speed, truth=False, source_id=uid)
    replay.open()
    if engine.get("roi") is not None:
        engine["roi_name"] = f"{uid}-ROI"
    engine = Engine.from_checkpoint(
        ckpt, source=f"name:{replay.stream_names['eeg']}", sync="samples",
        trigger=f"{replay.stream_names['markers']}:R128",
        outlet_name=None if volume_samples is None else f"{uid}-pred",
        timing=tmp_path / "timing.tsv", device="cpu",
        consumer_options={"resample": True, "publish": f"{uid}-clean"}, **engine,
    )  # fmt: skip
    with engine:
        (info,) = pylsl.resolve_byprop("name", f"{uid}-clean", timeout=5.0)
        inlet = pylsl.StreamInlet(info, max_buflen=60)
        inlet.open_stream(timeout=5.0)
        roi_inlet = volume_inlet = None
        if roi_samples is not None:
            (info,) = pylsl.resolve_byprop("name", f"{uid}-ROI", timeout=5.0)
            roi_inlet = pylsl.StreamInlet(info, max_buflen=60)
            roi_inlet.open_stream(timeout=5.0)
        if volume_samples is not None:
            (info,) = pylsl.resolve_byprop("name", f"{uid}-pred", timeout=5.0)
            volume_inlet = pylsl.StreamInlet(info, max_buflen=60)
            volume_samples.append(volume_inlet.info(timeout=5.0))
            volume_inlet.open_stream(timeout=5.0)
        assert replay.wait_for_consumers(10.0)
        replay.start()
        summary = engine.run(max_volumes=max_volumes, duration=duration)
        ring = engine.consumer.ring
        online = ring.latest(ring.n_written)[0]
        time.sleep(0.3)
        published, _ = inlet.pull_chunk(timeout=1.0, max_samples=100_000)
        if roi_inlet is not None:
            roi_samples += roi_inlet.pull_chunk(timeout=1.0, max_samples=1000)[0]
        if volume_inlet is not None:
            volume_samples += volume_inlet.pull_chunk(timeout=1.0, max_samples=1000)[0]
    replay.stop()
    return summary, online, np.asarray(published)


def chain_offline(session, ckpt, *, step, **chain):
    """``session`` through the checkpoint's EEG chain (``chain``: its corrections) in
    chunks of ``step`` samples, every volume marker given ahead; the output."""
    from rt_eeg2fmri.data import EEGChain

    offline = EEGChain(
        ckpt.preprocessing, ch_names=ckpt.ch_names, sfreq=session.sfreq,
        labels=list(session.ch_names), units=[session.eeg_unit] * session.n_chans, **chain,
    )  # fmt: skip
    for t in session.volume_onsets:
        offline.add_volume_marker(float(t))
    stamps = np.arange(session.n_times) / session.sfreq
    outs = [
        np.array(offline.process(session.eeg[:, a : a + step].T, stamps[a : a + step])[0])
        for a in range(0, session.n_times, step)
    ]
    return np.concatenate(outs, axis=1)


def simulated_in_scanner(root, **sim):
    """Simulate one in-scanner run (``sim``: ``simulate_dataset`` options) into ``root``;
    ``(raw, clean)``: the recorded run and the clean EEG under its artifacts, as MNE reads
    them."""
    from rt_eeg2fmri.sim import read_in_scanner_run, simulate_dataset

    root = simulate_dataset(root, preset="tiny", subjects=1, runs=1, progress=False, **sim)
    return read_in_scanner_run(root)
