"""When to emit a volume.

Every TR on the stream clock (``clock``), on scanner triggers (``trigger``), or every
TR × sfreq received samples (``samples``).

Schedulers are pure bookkeeping — no threads, no LSL — so they are tested on their own.
They share one protocol (:class:`Scheduler`): the engine tells them the time of the first
received sample (:meth:`~Scheduler.start`) and every scanner marker
(:meth:`~Scheduler.add_trigger`), polls them with the ring's state and gets the volumes
that became due.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .._checks import check_option, check_positive

SYNC_MODES = ("clock", "trigger", "samples")


@dataclass(frozen=True)
class Due:
    """A volume whose window is complete.

    Attributes
    ----------
    index : int
        Running number of the scheduled volume (0-based).
    t_end : float | None
        End of the window on the LSL clock (``clock`` and ``trigger`` modes).
    end_sample : int | None
        End of the window as an absolute received-sample count (``samples`` mode).
    trigger : float | None
        Time of the scanner trigger that scheduled it (``trigger`` mode).
    """

    index: int
    t_end: float | None = None
    end_sample: int | None = None
    trigger: float | None = None


class Scheduler(Protocol):
    """What the engine asks of a scheduler."""

    def start(self, first_sample_time: float) -> None:
        """The first sample arrived at ``first_sample_time`` (LSL clock)."""

    def add_trigger(self, t: float) -> None:
        """A scanner-volume marker arrived at LSL time ``t``."""

    def poll(self, *, n_written: int, latest_time: float | None) -> list[Due]:
        """The volumes that became due."""


class SamplesScheduler:
    """Every ``step`` received samples once a full window has arrived — deterministic.

    Windows end at absolute sample counts ``phase + j·step`` (``j`` integer) that are at
    least ``n_times``; ``phase`` aligns them with the volume grid of a replayed recording.
    """

    def __init__(self, *, step: int, n_times: int, phase: int = 0) -> None:
        if step < 1 or n_times < 1:
            raise ValueError(f"'step' and 'n_times' must be >= 1, got {step=}, {n_times=}.")
        self.step, self.n_times = int(step), int(n_times)
        first = int(phase) % self.step
        while first < self.n_times:
            first += self.step
        self._next_end = first
        self._index = 0

    def start(self, first_sample_time: float) -> None:
        """Nothing to anchor: windows are counted in samples."""

    def add_trigger(self, t: float) -> None:
        """Markers do not schedule volumes in this mode."""

    def poll(self, *, n_written: int, latest_time: float | None = None) -> list[Due]:
        """Volumes that became due now that ``n_written`` samples have arrived."""
        due = []
        while self._next_end <= n_written:
            due.append(Due(self._index, end_sample=self._next_end))
            self._index += 1
            self._next_end += self.step
        return due


class ClockScheduler:
    """Every ``t_r`` seconds on the stream clock, the first once a full window is buffered."""

    def __init__(self, *, t_r: float, winsize: float) -> None:
        self.t_r = check_positive(t_r, "t_r")
        self.winsize = check_positive(winsize, "winsize")
        self._next_end: float | None = None
        self._index = 0

    def start(self, first_sample_time: float) -> None:
        """Anchor the schedule on the first received sample's timestamp."""
        self._next_end = float(first_sample_time) + self.winsize

    def add_trigger(self, t: float) -> None:
        """Markers do not schedule volumes in this mode."""

    def poll(self, *, n_written: int = 0, latest_time: float | None) -> list[Due]:
        """Volumes whose window end the EEG has passed."""
        if self._next_end is None or latest_time is None:
            return []
        due = []
        while latest_time >= self._next_end:
            due.append(Due(self._index, t_end=self._next_end))
            self._index += 1
            self._next_end += self.t_r
        return due


class TriggerScheduler:
    """On each scanner-volume trigger: the window ending at the end of that volume.

    Triggers are pushed as they arrive (``add_trigger``); a volume is due once EEG up to
    ``trigger + t_r`` has arrived. Triggers too early for a full window are dropped.
    """

    def __init__(self, *, t_r: float, winsize: float) -> None:
        self.t_r = check_positive(t_r, "t_r")
        self.winsize = check_positive(winsize, "winsize")
        self._pending: deque[float] = deque()
        self._index = 0
        self.first_sample_time: float | None = None
        self.n_dropped = 0

    def start(self, first_sample_time: float) -> None:
        """Triggers whose window would start before this time are dropped."""
        self.first_sample_time = float(first_sample_time)

    def add_trigger(self, t: float) -> None:
        """A scanner-volume marker at LSL time ``t`` (already clock-corrected)."""
        self._pending.append(float(t))

    def poll(self, *, n_written: int = 0, latest_time: float | None) -> list[Due]:
        """Triggered volumes whose window end the EEG has passed."""
        due = []
        while self._pending and latest_time is not None:
            trig = self._pending[0]
            t_end = trig + self.t_r
            if latest_time < t_end:
                break
            self._pending.popleft()
            if (
                self.first_sample_time is not None
                and t_end - self.winsize < self.first_sample_time - 1e-9
            ):
                self.n_dropped += 1
                continue
            due.append(Due(self._index, t_end=t_end, trigger=trig))
            self._index += 1
        return due


def make_scheduler(
    mode: str, *, t_r: float, winsize: float, sfreq: float, phase: float = 0.0
) -> Scheduler:
    """The scheduler of sync ``mode`` (``clock``, ``trigger`` or ``samples``)."""
    check_option(mode, "sync", SYNC_MODES)
    if mode == "samples":
        return SamplesScheduler(
            step=round(check_positive(t_r, "t_r") * sfreq),
            n_times=round(check_positive(winsize, "winsize") * sfreq),
            phase=round(phase * sfreq),
        )
    if mode == "clock":
        return ClockScheduler(t_r=t_r, winsize=winsize)
    return TriggerScheduler(t_r=t_r, winsize=winsize)
