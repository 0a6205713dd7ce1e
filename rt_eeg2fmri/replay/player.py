"""``Replay``: a recorded session played as live LSL streams (amplifier, trigger box, scanner).

Timing model
------------
``t0`` is the LSL time (:func:`pylsl.local_clock`) at which playback starts; it is the
timestamp of the first replayed sample. Everything is placed on one stream clock:

- EEG sample ``i`` of loop ``k`` has timestamp ``t0 + (k * n_times + i) / sfreq``
  exactly (per-sample timestamps, computed from integers, never accumulated), where
  ``n_times`` is the number of replayed samples per loop;
- a marker (stimulus event or scanner volume) at recording time ``onset`` has timestamp
  ``t0 + k * n_times / sfreq + (onset - start)``;
- a measured volume has the timestamp of the **end of its acquisition**,
  ``t0 + ... + (onset + t_r - start)``: the earliest moment a scanner could deliver it,
  and the same convention as the prediction stream (window end = end of acquisition), so
  truth and prediction pair by timestamp.

Every item is pushed once the wall clock reaches its stream time divided by ``speed``:
an EEG chunk when its last sample is complete (like an amplifier), a marker or volume
at its own time. The wall schedule is computed from the start time, not from
accumulated sleeps, so pacing never drifts; a late wake-up only delays that push.

At ``speed != 1`` the timestamps stay sample-spaced at the nominal rate, so the stream's
clock runs ``speed`` times faster than the LSL clock (10 min of stream in 1 min of wall at
``speed=10``); consumers that only use timestamps see exactly the recording.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_positive
from .._logging import logger
from ..data.session import Session
from ..volume_stream import volume_stream_info
from .outlets import (
    EEG_UNIT,
    STIM_UNIT,
    channel_type,
    eeg_stream_info,
    marker_stream_info,
    source_id_for,
)

_UV_PER_UNIT = {"V": 1e6, "mV": 1e3, "uV": 1.0, "µV": 1.0}
_EEG, _MARKER, _VOLUME = 0, 1, 2  # kinds of scheduled pushes, in their order at equal times


@dataclass(frozen=True)
class Schedule:
    """One loop of a replay: every push, sorted by stream time.

    Attributes
    ----------
    times : array of shape (n_items,)
        Stream seconds from the loop's start at which each push is due.
    kinds : array of shape (n_items,)
        0 = EEG chunk, 1 = marker, 2 = measured volume.
    items : array of shape (n_items,)
        Index of the chunk, marker or volume.
    chunk_starts, chunk_ends : array of shape (n_chunks,)
        Sample range of each EEG chunk within the loop.
    """

    times: np.ndarray
    kinds: np.ndarray
    items: np.ndarray
    chunk_starts: np.ndarray
    chunk_ends: np.ndarray


class Replay:
    """Play a ``Session`` as LSL streams: EEG, markers and (with BOLD) measured volumes.

    Parameters
    ----------
    session : Session
        The recording. EEG is sent in microvolts; its trigger channels (``stim``) after
        the EEG, in their own units, typed ``STIM``.
    name : str | None
        Stream name prefix; the streams are ``{name}-EEG``, ``{name}-Markers`` and
        ``{name}-truth``. Default: the session's name (``sub-01_task-x_run-1``).
    chunk : float
        Chunk duration in seconds (default 20 ms); at least one sample.
    speed : float
        Playback speed; ``10`` plays 10 s of recording per second of wall time.
    loop : bool
        Restart seamlessly at the end; timestamps keep increasing.
    start : float
        Offset into the recording, in seconds.
    duration : float | None
        Seconds of recording to replay from ``start`` (default: to the end).
    source_id : str | None
        Base of the streams' source ids (suffixed ``:eeg``, ``:markers``, ``:truth``).
        Default: derived from the source file and subject/task/run, so it is stable
        across restarts and inlets recover.
    truth : bool
        Send the measured volumes when the session has BOLD.
    preprocessing : Preprocessing | None
        Prepare the measured volumes as a model's targets: its
        :class:`~rt_eeg2fmri.data.bold.BoldChain` (smoothing, target units, drift removal)
        over the whole recorded run, so the truth shown beside a prediction is what the
        model learned to predict. Default: percent signal change from the run mean.
    mask : array of shape grid_shape, bool | None
        Voxels sent (a model's mask); default
        :func:`~rt_eeg2fmri.data.bold.default_mask`. 0 elsewhere.
    marker : str
        Marker string sent at each volume onset.
    """

    def __init__(
        self,
        session: Session,
        *,
        name: str | None = None,
        chunk: float = 0.02,
        speed: float = 1.0,
        loop: bool = False,
        start: float = 0.0,
        duration: float | None = None,
        source_id: str | None = None,
        truth: bool = True,
        preprocessing=None,
        mask=None,
        marker: str = "R128",
    ) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"'session' must be a Session, got {type(session).__name__}.")
        if session.eeg_unit not in _UV_PER_UNIT:
            raise ValueError(
                f"{session.name}: cannot convert EEG unit {session.eeg_unit!r} to microvolts "
                f"(known: {', '.join(_UV_PER_UNIT)})."
            )
        if not isinstance(marker, str) or not marker:
            raise ValueError(f"'marker' must be a non-empty string, got {marker!r}.")
        self.session = session
        self.sfreq = session.sfreq
        self.speed = check_positive(speed, "speed")
        self.loop = bool(loop)
        self.marker = marker
        chunk = check_positive(chunk, "chunk")
        self.chunk_size = max(1, round(chunk * self.sfreq))
        length = session.n_times / self.sfreq
        self.start_time = float(start)
        if not 0 <= self.start_time < length:
            raise ValueError(
                f"'start' must be within the {length:.3f} s recording "
                f"{session.source.get('eeg') or session.name}, got {start=}."
            )
        self._first = round(self.start_time * self.sfreq)
        stop = session.n_times
        if duration is not None:
            duration = check_positive(duration, "duration")
            want = self._first + round(duration * self.sfreq)
            if want > stop:
                logger.warning(
                    "Replay: 'duration' %.3f s runs past the end of the recording; replaying "
                    "the %.3f s left after 'start'.",
                    duration,
                    (stop - self._first) / self.sfreq,
                )
            stop = min(stop, want)
        self.n_times = stop - self._first  # samples per loop
        if self.n_times < 1:
            raise ValueError(f"Nothing to replay: {start=} and {duration=} select no sample.")
        self._scale = np.float32(_UV_PER_UNIT[session.eeg_unit])
        stim = session.stim or {}
        self._stim = np.vstack(list(stim.values())).astype(np.float32) if stim else None

        src = session.source.get("eeg") or session.source.get("path")
        self.name = name or session.name
        self.source_file = str(src) if src else None
        base = source_id or source_id_for(
            str(Path(src).resolve()) if src else session.name,
            session.subject,
            session.session,
            session.task,
            session.run,
        )
        self.source_ids = {"eeg": f"{base}:eeg", "markers": f"{base}:markers"}
        self._build_markers()
        self._truth = truth and session.bold is not None
        self.preprocessing = preprocessing
        if self._truth:
            self.source_ids["truth"] = f"{base}:truth"
            self._build_truth(mask)

        self._outlets: dict = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._t0: float | None = None
        self._wall_end: float | None = None
        self.n_pushed = 0
        self.n_markers = 0
        self.n_scanner_markers = 0
        self.n_volumes = 0
        self.n_loops = 0

    # -- schedule -------------------------------------------------------------------
    def _build_markers(self) -> None:
        """Marker times (s from the replay's start, within one loop) and strings."""
        s = self.session
        lo, hi = self._first / self.sfreq, (self._first + self.n_times) / self.sfreq
        times, labels, scanner = [], [], []
        if s.volume_onsets is not None:
            for onset in np.asarray(s.volume_onsets, dtype=float):
                if lo <= onset < hi:
                    times.append(onset - lo)
                    labels.append(self.marker)
                    scanner.append(True)
        for onset, label in zip(s.events["onset"], s.events["trial_type"], strict=True):
            if lo <= onset < hi:
                times.append(float(onset) - lo)
                labels.append(str(label))
                scanner.append(False)
        order = np.argsort(times, kind="stable")
        self._marker_times = np.asarray(times, dtype=float)[order]
        self._marker_labels = [labels[i] for i in order]
        self._marker_is_scanner = np.asarray(scanner, dtype=bool)[order]

    def _build_truth(self, mask) -> None:
        """Volumes whose acquisition ends within the replayed span, prepared as targets."""
        from ..data.bold import BoldChain, default_mask

        s = self.session
        lo, hi = self._first / self.sfreq, (self._first + self.n_times) / self.sfreq
        ends = np.asarray(s.volume_onsets, dtype=float) + s.t_r
        keep = np.flatnonzero((ends > lo) & (ends <= hi + 0.5 / self.sfreq))
        self._truth_index = keep
        self._truth_times = ends[keep] - lo
        if mask is None:
            mask, _ = default_mask(s)
        self._mask = np.asarray(mask, dtype=bool)
        if self._mask.shape != s.grid_shape:
            raise ValueError(
                f"'mask' has shape {self._mask.shape}, but the BOLD grid of {s.name} is "
                f"{s.grid_shape}."
            )
        pre = self.preprocessing
        chain = BoldChain() if pre is None else pre.bold_chain()
        # the whole run, as the cache prepares a model's targets
        self._series = chain.run(s.bold, self._mask, affine=s.affine, t_r=s.t_r)

    def truth_volume(self, index: int) -> np.ndarray:
        """The measured volume sent for BOLD volume ``index``, in the targets' units.

        Returns
        -------
        volume : array of shape grid_shape, float32
            0 outside the mask.
        """
        if not self._truth:
            raise RuntimeError(f"Replay of {self.session.name} sends no measured volumes.")
        out = np.zeros(self._mask.shape, dtype=np.float32)
        out[self._mask] = self._series[index]
        return out

    # -- state ----------------------------------------------------------------------
    @property
    def stream_names(self) -> dict[str, str]:
        """``{"eeg": ..., "markers": ..., "truth": ...}`` (``truth`` only with BOLD)."""
        names = {"eeg": f"{self.name}-EEG", "markers": f"{self.name}-Markers"}
        if self._truth:
            names["truth"] = f"{self.name}-truth"
        return names

    @property
    def t0(self) -> float | None:
        """LSL timestamp of the first replayed sample (``None`` before playback starts)."""
        return self._t0

    @property
    def running(self) -> bool:
        """Whether the background thread is playing."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def duration(self) -> float:
        """Seconds of recording per loop."""
        return self.n_times / self.sfreq

    def stream_time(self, onset: float, *, loop: int = 0) -> float:
        """LSL timestamp of recording time ``onset`` (s on the EEG clock) in loop ``loop``."""
        if self._t0 is None:
            raise RuntimeError("The replay has not started: 't0' is not known yet.")
        return self._t0 + loop * self.n_times / self.sfreq + (onset - self._first / self.sfreq)

    def open(self) -> Replay:
        """Create the outlets (idempotent), so consumers can connect before playback."""
        if self._outlets:
            return self
        import pylsl

        s, names = self.session, self.stream_names
        model = f"{s.name} ({s.n_chans} ch @ {s.sfreq:g} Hz)"
        stim = list(s.stim or ())
        self._outlets["eeg"] = pylsl.StreamOutlet(
            eeg_stream_info(
                names["eeg"],
                ch_names=[*s.ch_names, *stim],
                sfreq=self.sfreq,
                source_id=self.source_ids["eeg"],
                model=model,
                source_file=self.source_file,
                ch_types=[*(s.ch_types or map(channel_type, s.ch_names)), *["STIM"] * len(stim)],
                units=[EEG_UNIT] * len(s.ch_names)
                + [(s.stim_units or {}).get(name) or STIM_UNIT for name in stim],
            ),
            chunk_size=self.chunk_size,
        )
        self._outlets["markers"] = pylsl.StreamOutlet(
            marker_stream_info(
                names["markers"], source_id=self.source_ids["markers"], scanner_marker=self.marker
            )
        )
        if self._truth:
            self._outlets["truth"] = pylsl.StreamOutlet(
                volume_stream_info(
                    names["truth"],
                    content="truth",
                    grid_shape=s.grid_shape,
                    affine=s.affine,
                    t_r=s.t_r,
                    source_id=self.source_ids["truth"],
                    mask=self._mask,
                ),
                max_buffered=60,  # 30 volumes at TR 2 s: a volume is 0.7 MB
            )
        logger.info("Replay: streaming %s as %s.", s.name, ", ".join(names.values()))
        return self

    def close(self, *, linger: float = 0.2) -> None:
        """Destroy the outlets; consumers see the streams disappear.

        With consumers connected, wait ``linger`` seconds first so that the last chunk
        leaves the outlet's send queue (liblsl drops what is still queued).
        """
        if self._outlets and any(o.have_consumers() for o in self._outlets.values()):
            time.sleep(linger)
        self._outlets.clear()

    def wait_for_consumers(self, timeout: float = 5.0, *, kinds=None) -> bool:
        """Wait until outlets have a consumer; return whether they all do in time.

        Parameters
        ----------
        timeout : float
            Seconds to wait in total.
        kinds : iterable of str | None
            Outlets to wait for (``"eeg"``, ``"markers"``, ``"truth"``); default: all.
        """
        import pylsl

        self.open()
        kinds = list(self._outlets) if kinds is None else list(kinds)
        deadline = pylsl.local_clock() + timeout
        for kind in kinds:
            if kind not in self._outlets:
                raise ValueError(
                    f"'kinds' must name outlets of this replay ({', '.join(self._outlets)}), "
                    f"got {kind!r}."
                )
            remaining = max(0.0, deadline - pylsl.local_clock())
            if not self._outlets[kind].wait_for_consumers(remaining):
                return False
        return True

    # -- control ----------------------------------------------------------------------
    def start(self) -> Replay:
        """Start playing in a background thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("The replay was already started; create a new Replay.")
        self.open()
        self._thread = threading.Thread(
            target=self._play_guarded, name=f"replay-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop playing and destroy the outlets (idempotent; safe from a signal handler).

        Raises
        ------
        RuntimeError
            If the background thread failed (its error is chained).
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"The replay thread did not stop within {timeout} s.")
            self.close()
        elif thread is None and not self._playing_here:
            self.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"Replay of {self.session.name} failed: {error}") from error

    _playing_here = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background playback to end; return whether it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self, until: float | None = None) -> None:
        """Play in the calling thread until the end, ``stop()`` or ``until`` seconds of wall time.

        The outlets are destroyed on return. ``stop()`` may be called from a signal
        handler or another thread.
        """
        if self._thread is not None:
            raise RuntimeError("The replay is playing in the background; use stop().")
        if until is not None:
            until = check_positive(until, "until")
        self.open()
        self._playing_here = True
        try:
            self._play(until)
        finally:
            self._playing_here = False
            self.close()

    def __enter__(self) -> Replay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self) -> str:
        """One line on what was sent."""
        names = self.stream_names
        line = (
            f"replayed {self.n_pushed} samples ({self.n_pushed / self.sfreq:.3f} s of recording, "
            f"{self.n_loops} loop(s)) on '{names['eeg']}', {self.n_markers} markers "
            f"({self.n_scanner_markers} '{self.marker}') on '{names['markers']}'"
        )
        if self._truth:
            line += f", {self.n_volumes} volumes on '{names['truth']}'"
        if self._t0 is not None and self._wall_end is not None:
            line += f"; t0={self._t0:.6f}, {self._wall_end - self._t0:.3f} s of wall time"
        return line + "."

    # -- playback ----------------------------------------------------------------------
    def _play_guarded(self) -> None:
        try:
            self._play(None)
        except BaseException as err:  # reported by stop()
            logger.error("Replay of %s failed: %s", self.session.name, err)
            self._error = err

    def schedule(self) -> Schedule:
        """One loop's pushes, sorted by stream time (s from the loop's start).

        EEG chunks are due when their last sample is complete, markers and measured volumes
        at their own time; at equal times EEG goes first, then markers, then volumes, so a
        consumer has the samples a marker or volume refers to.
        """
        ends = np.minimum(
            np.arange(self.chunk_size, self.n_times + self.chunk_size, self.chunk_size),
            self.n_times,
        )
        starts = np.r_[0, ends[:-1]]
        v_times = self._truth_times if self._truth else np.zeros(0)
        times = np.r_[ends / self.sfreq, self._marker_times, v_times]
        kinds = np.r_[
            np.full(ends.size, _EEG),
            np.full(self._marker_times.size, _MARKER),
            np.full(v_times.size, _VOLUME),
        ]
        items = np.r_[
            np.arange(ends.size), np.arange(self._marker_times.size), np.arange(v_times.size)
        ]
        order = np.lexsort((kinds, times))
        return Schedule(
            times=times[order],
            kinds=kinds[order],
            items=items[order],
            chunk_starts=starts,
            chunk_ends=ends,
        )

    def _play(self, until: float | None) -> None:
        from pylsl import local_clock

        eeg, markers = self._outlets["eeg"], self._outlets["markers"]
        truth = self._outlets.get("truth")
        sched = self.schedule()
        volumes = np.flatnonzero(sched.kinds == _VOLUME)  # positions, to prepare ahead
        sfreq, speed, n, first = self.sfreq, self.speed, self.n_times, self._first
        data, stim, stop = self.session.eeg, self._stim, self._stop
        t0 = local_clock()
        self._t0 = t0
        deadline = None if until is None else t0 + until
        loop = 0
        try:
            while not stop.is_set():
                base = loop * n / sfreq  # stream seconds before this loop
                ready: dict[int, np.ndarray] = {}  # a measured volume prepared ahead of time
                next_volume = 0
                for pos, (due, kind, item) in enumerate(
                    zip(sched.times, sched.kinds, sched.items, strict=True)
                ):
                    target = t0 + (base + due) / speed
                    if deadline is not None and target > deadline:
                        return
                    delay = target - local_clock()
                    while next_volume < volumes.size and volumes[next_volume] < pos:
                        next_volume += 1
                    if delay > 0.001 and next_volume < volumes.size and not ready:
                        # use the slack to prepare the next volume (~1 ms for the full grid)
                        k = int(sched.items[volumes[next_volume]])
                        ready[k] = self.truth_volume(int(self._truth_index[k]))
                        delay = target - local_clock()
                    if delay > 0 and stop.wait(delay):
                        return
                    if kind == _EEG:
                        a, b = sched.chunk_starts[item], sched.chunk_ends[item]
                        x = np.ascontiguousarray(data[:, first + a : first + b].T) * self._scale
                        if stim is not None:  # trigger channels, in their own units
                            x = np.hstack([x, stim[:, first + a : first + b].T])
                        ts = t0 + np.arange(loop * n + a, loop * n + b) / sfreq
                        eeg.push_chunk(x, ts.tolist())
                        self.n_pushed += int(b - a)
                    elif kind == _MARKER:
                        markers.push_sample([self._marker_labels[item]], t0 + base + due)
                        self.n_markers += 1
                        self.n_scanner_markers += bool(self._marker_is_scanner[item])
                    else:
                        volume = ready.pop(item, None)
                        if volume is None:
                            volume = self.truth_volume(int(self._truth_index[item]))
                        # push_chunk takes the array's buffer; push_sample would box every voxel
                        truth.push_chunk(volume.reshape(1, -1), t0 + base + due)
                        self.n_volumes += 1
                self.n_loops += 1
                if not self.loop:
                    return
                loop += 1
        finally:
            self._wall_end = local_clock()
