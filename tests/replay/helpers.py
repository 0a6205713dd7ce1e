"""Helpers for the replay tests: a small session, inlets on loopback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pylsl

from tests.conftest import make_session


def replay_session(**kwargs):
    """A small session with 2 stimulus events, volumes from 1 s, named channels."""
    defaults = dict(
        n_chans=3,
        sfreq=250.0,
        n_volumes=6,
        t_r=1.0,
        lead=1.0,
        ch_names=["Fz", "Cz", "ECG"],
        events=pd.DataFrame(
            {"onset": [1.25, 3.5], "duration": [0.0, 0.0], "trial_type": ["standard", "oddball"]}
        ),
        source={"eeg": "/data/sub-01/eeg/sub-01_task-oddball_eeg.vhdr"},
        subject="01",
        task="oddball",
        run="1",
    )
    defaults.update(kwargs)
    return make_session(**defaults)


def connect(source_id: str, *, timeout: float = 10.0) -> pylsl.StreamInlet:
    """Resolve a stream by source id and open an inlet on it."""
    found = pylsl.resolve_byprop("source_id", source_id, timeout=timeout)
    assert found, f"no LSL stream with source_id {source_id!r}"
    inlet = pylsl.StreamInlet(found[0], max_buflen=360, recover=True)
    inlet.open_stream(timeout)
    return inlet


def drain(inlet: pylsl.StreamInlet, *, n_min: int, timeout: float = 10.0):
    """Pull until ``n_min`` samples arrived; return (samples as array or list, timestamps)."""
    data, stamps = [], []
    deadline = pylsl.local_clock() + timeout
    while len(stamps) < n_min and pylsl.local_clock() < deadline:
        d, ts = inlet.pull_chunk(timeout=0.2, max_samples=4096, min_samples=1)
        data.extend(d)
        stamps.extend(ts)
    return data, np.asarray(stamps)
