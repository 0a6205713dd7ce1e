"""Task events as regressors (offline == live), the checkpoint's task readout, live markers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from rt_eeg2fmri.hrf import events_to_regressor, hrf_convolve, spm_hrf
from rt_eeg2fmri.task import DT, LiveEvents, TaskReadout, regressors, table_regressors

TYPES = ["auditory_standard", "auditory_target", "visual_standard"]


def _events(rng, n=80, span=300.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "onset": np.sort(rng.uniform(0, span, n)),
            "duration": rng.choice([0.0, 0.2, 1.0], n),
            "trial_type": rng.choice(TYPES, n),
        }
    )


def test_the_regressors_are_the_events_convolved_with_the_canonical_hrf(rng):
    """Each trial type's boxcar on a 0.1 s grid from the first sample, convolved with SPM's
    HRF and sampled at the volumes' middles; a sustained rate of 1/s gives a plateau of 1."""
    ev = _events(rng)
    times = 6.0 + 2.0 * np.arange(140)
    n = int(np.ceil((times.max() + 1) / DT))
    want = np.empty((times.size, len(TYPES)))
    for j, t in enumerate(TYPES):
        sel = ev.trial_type == t
        box = events_to_regressor(ev.onset[sel], ev.duration[sel], sfreq=1 / DT, n_times=n)
        want[:, j] = np.interp(times, np.arange(n) * DT, hrf_convolve(box, spm_hrf(DT)) / DT)
    got = table_regressors(ev, TYPES, times)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.abs(got).max() > 0.1
    sustained = regressors(np.arange(0, 100.0), np.zeros(100), np.zeros(100, int), 1, [80.0])
    assert sustained[0, 0] == pytest.approx(1.0, abs=0.01)


def test_the_live_task_part_equals_the_offline_one(rng):
    """Volume by volume from the markers heard so far (on another clock, grid from the first
    EEG sample) as from the whole run's events table."""
    ev = _events(rng)
    readout = TaskReadout(
        TYPES, [["S 1"], ["S 2"], ["S 3"]], [0.2, 0.2, 0.2], rng.standard_normal((3, 7))
    )
    ev["duration"] = 0.2  # live markers carry none: each type's own duration
    t_r, origin = 2.0, 5000.25
    ends = 40.0 + t_r * np.arange(120)
    offline = table_regressors(ev, TYPES, ends - t_r / 2) @ readout.weights
    live = LiveEvents(readout, t_r=t_r)
    live.origin = origin
    heard, online = 0, []
    for end in ends:
        while heard < len(ev) and ev.onset[heard] < end:
            assert live.add(origin + ev.onset[heard], ev.trial_type[heard])
            heard += 1
        online.append(live.volume(origin + end))
    np.testing.assert_allclose(np.array(online), offline, rtol=1e-5, atol=1e-6)
    assert live.heard == heard == (ev.onset < ends[-1]).sum()
    assert len(live._onsets) < heard  # those too old to reach a volume are let go


def test_a_marker_names_a_trial_type_by_its_name_or_code(caplog):
    """By its name or its code (``Stimulus/S  1`` ~ ``S  1``); a code of two trial types (two
    tasks) names neither until ``--event-map`` says which, and the warnings say so."""
    readout = TaskReadout(TYPES, [["S  1"], ["S  2"], ["S  1"]], [0.2] * 3, np.ones((3, 2)))
    keys, shared = readout.label_map()
    assert "s1" not in keys and shared == {"s1": ["auditory_standard", "visual_standard"]}
    assert keys["s2"] == 1 and keys["visual_standard"] == 2
    keys, shared = readout.label_map("S1=visual_standard")
    assert keys["s1"] == 2 and keys["auditory_standard"] == 0 and not shared
    with pytest.raises(ValueError, match="'S9=nothing' must be MARKER=TRIAL_TYPE"):
        readout.label_map("S1=visual_standard,S9=nothing")
    with caplog.at_level(logging.WARNING, logger="rt_eeg2fmri"):
        live = LiveEvents(readout, t_r=2.0)
        assert "--event-map S1=auditory_standard; until then it is left out" in caplog.text
        assert live.add(1.0, "auditory_standard") and live.add(2.0, "Stimulus/S  2")
        assert not live.add(3.0, "S 99") and not live.add(4.0, "S 99")
        assert not live.add(5.0, "Stimulus/S  1")
    assert live.unknown == 3 and live.unknown_labels == ["S 99", "Stimulus/S  1"]
    assert live.heard == 2
    assert caplog.text.count("'S 99' is left out: it names no trial type") == 1
    assert "'Stimulus/S  1' is left out: the marker 's1' stands for 2 trial types" in caplog.text
    live = LiveEvents(readout, t_r=2.0, event_map="S1=auditory_standard")
    assert live.add(1.0, "S  1") and live.add(1.5, "Stimulus/S 1") and live.heard == 2


def test_a_task_readout_is_checked():
    with pytest.raises(ValueError, match="distinct trial types"):
        TaskReadout(["a", "a"], [[], []], [0, 0], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(2, n_voxels\)"):
        TaskReadout(["a", "b"], [[], []], [0, 0], np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        TaskReadout(["a"], [[]], [0], np.full((1, 3), np.nan))
