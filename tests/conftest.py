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
