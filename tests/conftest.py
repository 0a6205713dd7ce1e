"""Shared fixtures."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from rt_eeg2fmri.data import Session


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the package cache inside the test session unless the caller set one."""
    if "RT_EEG2FMRI_CACHE" not in os.environ:
        os.environ["RT_EEG2FMRI_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def rt_log(caplog):
    """Records of the package logger (which does not propagate to the root logger)."""
    from rt_eeg2fmri._logging import logger

    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="rt_eeg2fmri")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def make_session(
    *,
    n_chans: int = 4,
    sfreq: float = 100.0,
    n_volumes: int = 20,
    t_r: float = 2.0,
    grid: tuple[int, int, int] = (5, 6, 4),
    lead: float = 0.0,
    seed: int = 0,
    **kwargs,
) -> Session:
    """A small random session whose EEG covers every volume (``lead`` s before the first)."""
    rng = np.random.default_rng(seed)
    n_times = round((lead + n_volumes * t_r) * sfreq)
    eeg = rng.standard_normal((n_chans, n_times)).astype(np.float32) * 1e-5
    bold = 1000 + rng.standard_normal((*grid, n_volumes)).astype(np.float32)
    defaults = dict(
        eeg=eeg,
        sfreq=sfreq,
        ch_names=[f"EEG{i:02d}" for i in range(n_chans)],
        bold=bold,
        affine=np.diag([3.0, 3.0, 3.0, 1.0]),
        t_r=t_r,
        volume_onsets=lead + np.arange(n_volumes) * t_r,
    )
    defaults.update(kwargs)
    return Session(**defaults)


@pytest.fixture
def small_session() -> Session:
    return make_session()


def smooth_hrf(model, seed: int = 0):
    """``model`` (a conv with a learned HRF) with SPM's canonical HRF as that HRF, in place.

    Each projection row weighs every filter's band-power course by the canonical response
    times a random amplitude: a smooth response like a trained model's, so shifting it
    by a fraction of a second changes the prediction as a delayed BOLD response would.
    """
    import torch

    from rt_eeg2fmri.hrf import spm_hrf

    enc = model.encoder
    lag = (np.arange(enc.n_frames)[::-1] + 0.5) * enc.bin_seconds
    hrf = np.interp(lag, np.arange(320) * 0.1, spm_hrf(0.1)[:320], right=0.0)
    w = enc.proj.weight
    amp = np.random.default_rng(seed).standard_normal((w.shape[0], w.shape[1] // enc.n_frames, 1))
    with torch.no_grad():
        w.copy_(torch.as_tensor((amp * hrf).reshape(w.shape), dtype=w.dtype))
    return model


def delayed_outputs(model, x, delays) -> np.ndarray:
    """The outputs of ``model`` on ``x`` with voxel v's learned HRF ``delays[v]`` s later."""
    import copy

    import torch

    out = np.zeros((x.shape[0], len(delays)))
    for d in sorted(set(delays)):
        m = copy.deepcopy(model).eval()
        with torch.no_grad():
            m.encoder.proj.weight.copy_(model.encoder.warped_weight(shift=float(d)))
            cols = np.flatnonzero(np.asarray(delays) == d)
            out[:, cols] = m(x).double().numpy()[:, cols]
    return out
