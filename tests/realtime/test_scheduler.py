from __future__ import annotations

import pytest

from rt_eeg2fmri.realtime.scheduler import (
    ClockScheduler,
    SamplesScheduler,
    TriggerScheduler,
    make_scheduler,
)


def test_samples_scheduler_is_deterministic_and_phase_aligned():
    s = SamplesScheduler(step=200, n_times=3000, phase=100)
    assert s.poll(n_written=3099) == []
    (d,) = s.poll(n_written=3100)
    assert d.end_sample == 3100 and d.index == 0
    due = s.poll(n_written=3900)  # a late poll gets every volume that became due
    assert [x.end_sample for x in due] == [3300, 3500, 3700, 3900]
    assert [x.index for x in due] == [1, 2, 3, 4]


def test_clock_scheduler_every_tr_after_a_full_window():
    s = ClockScheduler(t_r=2.0, winsize=30.0)
    assert s.poll(latest_time=100.0) == []  # not started
    s.start(10.0)
    assert s.poll(latest_time=39.99) == []
    assert [d.t_end for d in s.poll(latest_time=42.0)] == [40.0, 42.0]


def test_trigger_scheduler_waits_for_eeg_and_drops_early_triggers():
    s = TriggerScheduler(t_r=2.0, winsize=30.0)
    s.start(0.0)  # the first sample's time: windows may not start before it
    for t in (10.0, 30.0, 32.0):
        s.add_trigger(t)
    assert s.poll(latest_time=31.9) == []  # the early trigger is dropped only once due
    assert s.n_dropped == 1
    (d,) = s.poll(latest_time=32.0)
    assert (d.t_end, d.trigger, d.index) == (32.0, 30.0, 0)
    assert [x.t_end for x in s.poll(latest_time=40.0)] == [34.0]


def test_make_scheduler_bad_mode():
    with pytest.raises(ValueError, match="'sync' must be one of 'clock', 'trigger', 'samples'"):
        make_scheduler("vsync", t_r=2.0, winsize=30.0, sfreq=100.0)
    assert make_scheduler("samples", t_r=2.0, winsize=30.0, sfreq=100.0).step == 200


@pytest.mark.parametrize("mode", ["clock", "trigger", "samples"])
def test_every_scheduler_speaks_the_engine_protocol(mode):
    # the engine calls these three on any scheduler, with no type checks
    s = make_scheduler(mode, t_r=2.0, winsize=4.0, sfreq=100.0)
    s.start(100.0)
    s.add_trigger(104.0)
    due = s.poll(n_written=600, latest_time=106.0)  # 6 s of stream at 100 Hz
    assert [(d.index, d.end_sample, d.t_end) for d in due] == {
        "clock": [(0, None, 104.0), (1, None, 106.0)],  # every TR after a full window
        "trigger": [(0, None, 106.0)],  # the end of the triggered volume
        "samples": [(0, 400, None), (1, 600, None)],
    }[mode]
