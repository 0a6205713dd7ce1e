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
    **preprocessing,
):
    """Save a small conv checkpoint (mask: the grid minus its first x-slab); return the path.

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
            "channels": [4, 8],
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
