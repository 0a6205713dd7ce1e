"""Simulated datasets shared by the simulator tests (written once per test session)."""

from __future__ import annotations

import pytest

from rt_eeg2fmri.sim import simulate_dataset

VOLUMES = 60


@pytest.fixture(scope="session")
def bids_root(tmp_path_factory):
    """One subject, an auditory and a visual run of 60 volumes (tiny preset: 16 ch, 250 Hz)."""
    out = tmp_path_factory.mktemp("sim") / "bids"
    return simulate_dataset(out, preset="tiny", seed=3, subjects=1, volumes=VOLUMES)


@pytest.fixture(scope="session")
def legacy_root(tmp_path_factory):
    """Both layouts, 34 channels (as ds000116), MATLAB v5, 12 volumes per run."""
    out = tmp_path_factory.mktemp("sim") / "legacy"
    return simulate_dataset(
        out, preset="tiny", seed=1, subjects=1, volumes=12, channels=34, layout="both"
    )
