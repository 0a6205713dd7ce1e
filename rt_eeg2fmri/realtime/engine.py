"""The real-time engine: EEG source → ring buffer → scheduler → mapper → outputs.

One volume per TR: the scheduler says which window is due, the mapper predicts it, and
the volume goes out on an LSL outlet (the self-describing volume stream), into an
optional NIfTI series and a per-TR timing log. When several volumes are due at once (a
burst of samples after a pause, or inference fell behind), as many are computed as fit
in half a TR at the recent inference time (at least ``max_backlog``); older ones are
counted as skipped, logged (the first few one by one, then summarised every 10 s) and
kept in the NIfTI series as placeholders, so its 4-D index stays the TR index.

:class:`Engine` is assembled from its parts (source, scheduler, mapper, outputs), each
testable alone; :meth:`Engine.from_checkpoint` builds them for the command line.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._checks import check_positive
from .._logging import logger
from ..data.triggers import SYNTAX, TriggerChannel
from .gradient import N_VOLUMES
from .mapper import Mapper
from .outputs import Outputs
from .pulse import N_BEATS
from .roi import Regions
from .scheduler import Due, Scheduler, make_scheduler

#: How far (s) a window's last timestamp may be ahead of its arrival on the LSL clock before
#: the stream's clock is taken to run faster than it (latency is then counted from arrival)
CLOCK_AHEAD_S = 0.05
#: Longest normalisation calibration (s): its samples are held in the ring buffer at once.
MAX_CALIBRATE_S = 3600.0


def _check_calibrate(calibrate) -> None:
    if not 0 <= float(calibrate) <= MAX_CALIBRATE_S:
        raise ValueError(
            f"'calibrate' must be 0 to {MAX_CALIBRATE_S:g} seconds of stream, got {calibrate!r}."
        )


#: Units of the predicted volumes, by the checkpoint's target.
TARGET_UNITS = {"psc": "percent signal change", "median_ratio": "volume / median - 1"}


@dataclass(frozen=True)
class Skip:
    """A due volume that was not computed, and why (``reason``, for the log)."""

    reason: str


@dataclass
class EngineStats:
    """Counters and times of a run, in ms.

    ``latencies``: LSL publish − window end (or − the window's arrival, for a stream whose
    clock runs ahead of LSL's); ``compute``: data ready → LSL publish; ``write``: appending
    to the NIfTI series (on its own thread, after publishing).
    """

    volumes: int = 0
    skipped: int = 0
    late: int = 0
    output_errors: int = 0
    uncorrected: int = 0  # volumes whose window the in-scanner correction had not cleaned
    no_pulse: int = 0  # of those, the pulse correction's (no template yet, ECG lead off)
    latencies: list = field(default_factory=list)
    compute: list = field(default_factory=list)
    write: list = field(default_factory=list)

    def summary(self, health=None) -> dict:
        """p50/p99 latency, counts and stream health as a dict."""
        lat = np.asarray(self.latencies, float)
        comp = np.asarray(self.compute, float)
        write = np.asarray(self.write, float)
        pct = lambda a, q: float(np.percentile(a, q)) if a.size else float("nan")  # noqa: E731
        out = {
            "volumes": self.volumes,
            "skipped": self.skipped,
            "late": self.late,
            "output_errors": self.output_errors,
            "uncorrected": self.uncorrected,
            "no_pulse": self.no_pulse,
            "latency_p50_ms": pct(lat, 50),
            "latency_p99_ms": pct(lat, 99),
            "compute_p50_ms": pct(comp, 50),
            "compute_p99_ms": pct(comp, 99),
            "write_p50_ms": pct(write, 50),
            "write_p99_ms": pct(write, 99),
        }
        if health is not None:
            out.update(
                state=health.state,
                samples=health.samples,
                gaps=health.gaps,
                samples_lost=health.samples_lost,
                stalls=health.stalls,
                reconnects=health.reconnects,
                nonfinite=health.nonfinite,
                clock_jumps=health.clock_jumps,
            )
        return out


class TriggerListener:
    """Scanner-volume markers from an LSL marker stream, on the local clock, in a queue.

    When the stream has sent nothing for ``look_again_s`` seconds, it is looked for again by
    name: an outlet of that name that is not the one connected (the trigger bridge was
    restarted: liblsl's own recovery follows a source id, and a restarted bridge often
    gets another) is connected instead, logged and counted in ``reconnects``.

    Parameters
    ----------
    spec : str
        ``NAME`` or ``NAME:MARKER`` — the marker stream's name and the marker that means
        "volume" (default ``R128``, compared case-insensitively, spaces ignored).
    also : sequence of queues
        Further queues every marker time is put in (the EEG chain's gradient correction).
    """

    #: Seconds without any marker before the stream is looked for again (then as often).
    look_again_s = 2.0
    hint = "--trigger NAME:MARKER"
    what = "trigger"

    def __init__(self, spec: str, *, timeout: float = 5.0, also=()) -> None:
        import pylsl

        name, _, marker = spec.partition(":")
        self.name = name
        self.where = f"the {self.what} stream '{name}'"
        self.marker = (marker or "R128").replace(" ", "").lower()
        self.timeout = float(timeout)
        infos = pylsl.resolve_byprop("name", name, timeout=timeout)
        if not infos:
            visible = ", ".join(f"{i.name()} ({i.type()})" for i in pylsl.resolve_streams(1.0))
            raise RuntimeError(
                f"no marker stream named {name!r}; visible streams: {visible or 'none'}."
            )
        self.reconnects = 0
        self.gone = False  # the connected outlet is no longer on the network
        self.inlet = self._open(infos[0])
        self.times: queue.Queue = queue.Queue()
        self._queues = [self.times, *also]  # also: e.g. the gradient correction's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="TriggerListener", daemon=True)
        self._thread.start()

    @property
    def silence(self) -> str:
        """Why no marker comes, as far as can be told."""
        if self.gone:
            return "the stream is gone from the network"
        return "the scanner stopped, or its marker stream is gone"

    def _open(self, info):
        import pylsl

        inlet = pylsl.StreamInlet(info, processing_flags=pylsl.proc_clocksync)
        inlet.time_correction(timeout=self.timeout)  # else the first pull waits ~0.6 s
        inlet.open_stream(timeout=self.timeout)
        self._uid = info.uid()
        return inlet

    def _run(self) -> None:
        heard = looked = time.monotonic()
        while not self._stop.is_set():
            sample, ts = self.inlet.pull_sample(timeout=0.05)
            now = time.monotonic()
            if sample is None:
                if now - max(heard, looked) >= self.look_again_s:
                    looked = now
                    self._look_again()
                continue
            heard = now
            self._heard(str(sample[0]), ts)

    def is_volume_marker(self, marker: str) -> bool:
        """Whether ``marker`` is the scanner's (``R128``, ``Response/R128``, ``r 128``...)."""
        label = marker.replace(" ", "").lower()
        return label == self.marker or label.endswith("/" + self.marker)

    def _heard(self, marker: str, ts: float) -> None:
        """A marker came: a volume marker goes into the queues."""
        if self.is_volume_marker(marker):
            for q in self._queues:
                q.put(ts)

    def _look_again(self) -> None:
        """Whether the connected outlet is still there; another of the name replaces it."""
        import pylsl

        found = pylsl.resolve_byprop("name", self.name, timeout=0.2)
        if any(info.uid() == self._uid for info in found):
            return
        if not found:
            if not self.gone:
                self.gone = True
                logger.warning(
                    "The %s stream '%s' is gone from the network; waiting for it to come back.",
                    self.what,
                    self.name,
                )
            return
        try:
            inlet = self._open(found[0])
        except (RuntimeError, pylsl.util.TimeoutError) as err:  # it went away again
            logger.warning("The %s stream '%s': reconnecting failed: %s", self.what, self.name, err)
            return
        old, self.inlet = self.inlet, inlet
        old.close_stream()
        self.gone = False
        self.reconnects += 1
        logger.warning(
            "The %s stream '%s' came back (a new outlet): reconnected.", self.what, self.name
        )

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join()
        self.inlet.close_stream()


class EventListener(TriggerListener):
    """A task's stimulus markers from an LSL marker stream, into :class:`~rt_eeg2fmri.task.LiveEvents`.

    The listening and reconnecting are :class:`TriggerListener`'s; every marker is handed to
    ``events`` (which keeps those that name a trial type of the checkpoint's task readout).
    The stream may be the trigger stream too: a scanner marker names no trial type.
    """

    hint = "--events NAME"
    what = "event"

    def __init__(self, name: str, events, *, timeout: float = 5.0) -> None:
        self.events = events
        super().__init__(name, timeout=timeout)

    def _heard(self, marker: str, ts: float) -> None:
        if not self.is_volume_marker(marker):  # the scanner's are not the task's
            self.events.add(ts, marker)


class ChannelTriggers:
    """Scanner-volume onsets from a trigger channel of the EEG stream itself.

    The consumer finds them (:class:`~rt_eeg2fmri.data.triggers.RisingEdges` on its
    ``trigger`` channel, each stamped with its sample's time) and hands them to the
    gradient correction; this gives them to the engine, as :class:`TriggerListener`
    does a marker stream's.
    """

    hint = f"--trigger {SYNTAX}"
    gone = False  # the channel comes with the EEG: it is gone when the EEG is
    reconnects = 0
    silence = "the scanner stopped, or its trigger line is off"

    def __init__(self, consumer) -> None:
        self.times = consumer.trigger_times
        self.where = f"the trigger channel '{consumer.trigger.channel}' of the EEG stream"
        self.marker = consumer.trigger.describe()

    def close(self) -> None:
        """Nothing to stop: the consumer finds the edges."""


class Engine:
    """Run a model on a live EEG stream and emit one volume per TR.

    Parameters
    ----------
    source : EEGConsumer
        The EEG source (its ring holds the model's channels at the model's rate).
    scheduler : Scheduler
        When a volume is due (:func:`~rt_eeg2fmri.realtime.scheduler.make_scheduler`).
    mapper : Mapper
        The model on its device.
    outputs : Outputs
        Where volumes go; opened by :meth:`start` once the stream is checked.
    triggers : callable | None
        Makes the scanner-marker listener when started (``trigger`` sync): a callable
        ``(timeout) -> TriggerListener``.
    calibrate : float
        Seconds of live EEG to estimate normalisation statistics from (0: the
        checkpoint's).
    max_backlog : int
        Due volumes computed in one go even when they do not fit in half a TR at the
        recent inference time; older ones are skipped (counted and logged), so work never
        queues without bound.
    lost_timeout : float | None
        Seconds the source may stay gone from the network before :meth:`run` ends (its
        outputs complete up to then); ``None``: wait for it to come back for as long as
        the run lasts.
    events : callable | None
        Makes the stimulus-marker listener when started: ``(timeout) -> EventListener``.
    task : LiveEvents | None
        The task part of each volume (:class:`~rt_eeg2fmri.task.LiveEvents`, fed by
        ``events``), added to the model's prediction.
    """

    def __init__(
        self,
        source,
        scheduler: Scheduler,
        mapper: Mapper,
        outputs: Outputs,
        *,
        triggers=None,
        calibrate: float = 0.0,
        max_backlog: int = 2,
        adapter=None,
        save_adapted=None,
        sync_on_triggers: bool = True,
        lost_timeout: float | None = None,
        events=None,
        task=None,
    ) -> None:
        if int(max_backlog) < 1:
            raise ValueError(f"'max_backlog' must be >= 1, got {max_backlog=}.")
        _check_calibrate(calibrate)
        self.consumer, self.scheduler, self.mapper, self.outputs = (
            source,
            scheduler,
            mapper,
            outputs,
        )
        self.n_times = mapper.n_times
        self.sfreq = float(source.sfreq)
        self.calibrate_s = float(calibrate)
        self.max_backlog = int(max_backlog)
        self._make_triggers = triggers
        self._make_events, self.task, self.events = events, task, None
        self._sync_on_triggers = bool(sync_on_triggers)  # else the markers only correct
        self.stats = EngineStats()
        self.triggers = self.mirror = None
        self._window = np.empty((len(source.ch_names), self.n_times), np.float32)
        self._times = np.empty(self.n_times, np.float64)
        self._stop = threading.Event()
        self._gaps_seen = self._jumps_seen = 0
        self._skips = _SkipLog()
        self._n_triggers, self._trigger_warned, self._eeg_since = 0, False, None
        self._last_trigger = 0.0  # monotonic time of the last volume marker
        self._trigger_silent_since: float | None = None  # warned: no marker since then
        #: Seconds of EEG without a volume marker before the warning (at least 3 TRs).
        self.trigger_wait_s = 10.0
        self._cost_s: deque = deque(maxlen=20)
        self._clock_marks: deque = deque(maxlen=20)  # (wall, stream) every 0.5 s: ~10 s
        self.adapter = adapter
        self.save_adapted = save_adapted
        self._adapted_saved = False
        if lost_timeout is not None:
            check_positive(lost_timeout, "lost_timeout")
        self.lost_timeout = lost_timeout
        self._lost_since: float | None = None
        self._gave_up = False  # the run ended on a source gone for lost_timeout

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint,
        *,
        source,
        sync: str = "clock",
        trigger: str | None = None,
        phase: float = 0.0,
        outlet_name: str | None = "rt-eeg2fmri-volume",
        nifti=None,
        timing=None,
        bids_root=None,
        roi=None,
        roi_labels=None,
        roi_name: str | None = None,
        calibrate: float = 0.0,
        device: str = "auto",
        consumer_options: dict | None = None,
        max_backlog: int = 2,
        adapt: str | None = None,
        adapt_minutes: float | None = None,
        adapt_gap: float = 20.0,
        adapt_delays: bool = False,
        save_adapted=None,
        correct=(),
        gradient_volumes: int | None = None,
        pulse_beats: int | None = None,
        ecg: str | None = None,
        lost_timeout: float | None = None,
        events: str | None = None,
        event_map: str | None = None,
        no_events: bool = False,
    ) -> Engine:
        """The engine of a loaded checkpoint on an LSL source.

        Parameters
        ----------
        checkpoint : Checkpoint
            Loaded with :func:`rt_eeg2fmri.checkpoint.load_checkpoint`; its
            ``Preprocessing`` is the stream's EEG chain.
        source : str | pylsl.StreamInfo
            The EEG stream (see :class:`~rt_eeg2fmri.realtime.inlet.EEGConsumer`).
        sync : str
            ``clock``, ``trigger`` or ``samples``.
        trigger : str | None
            The scanner's volume markers: a marker stream ``NAME[:MARKER]``, or
            ``eeg:CHANNEL[:LEVEL|:mask=BITS]``, the rising edges of a trigger channel of
            the EEG stream through ``LEVEL`` (default 0.5) or of its code's ``BITS``
            (:mod:`~rt_eeg2fmri.data.triggers`); needed for ``sync="trigger"`` and the
            gradient correction.
        phase : float
            ``samples`` mode: window ends fall at ``phase + j·t_r`` seconds of received
            stream (aligns them with a replayed recording's volumes).
        outlet_name : str | None
            Name of the predicted-volume LSL stream (``None``: no outlet).
        nifti, timing : path-like | None
            NIfTI series and per-TR timing log.
        bids_root : path-like | None
            The BIDS derivative folder ``nifti`` lies in (see
            :func:`~rt_eeg2fmri.realtime.outputs.derivative_paths`).
        roi, roi_labels : path-like | None
            An atlas (label image or one mask) and its look-up table: each region's mean
            predicted signal is published every TR (:mod:`~rt_eeg2fmri.realtime.roi`).
        roi_name : str | None
            Name of the ROI stream (default ``<outlet_name>-ROI``).
        adapt, adapt_minutes, adapt_gap : str, float, float
            Live adaptation (:mod:`~rt_eeg2fmri.realtime.adapt`): the measured-volume
            stream, its minutes and the gap of the final choice.
        adapt_delays : bool
            The final choice also offers per-voxel haemodynamic delays.
        save_adapted : path-like | None
            Where the adapted checkpoint is written when the map freezes.
        calibrate : float
            Seconds of live EEG to estimate normalisation statistics from.
        device : str
            ``auto``, ``cpu`` or ``cuda``; with CUDA the ring is mirrored on the GPU.
        consumer_options : dict | None
            Passed to :class:`~rt_eeg2fmri.realtime.inlet.EEGConsumer` (``allow_missing``,
            ``resample``, ``timeout``, ...).
        max_backlog : int
        correct : sequence of str
            In-scanner corrections in the EEG chain: ``"gradient"`` subtracts the
            gradient artifact live (:mod:`~rt_eeg2fmri.realtime.gradient`) on the volume
            markers of ``trigger``, whatever ``sync`` is; ``"bcg"`` the pulse artifact
            (:mod:`~rt_eeg2fmri.realtime.pulse`) on the heartbeats of the stream's ECG
            channel.
        gradient_volumes : int
            Past volumes in the gradient template (``None``: ``N_VOLUMES``, 8).
        pulse_beats : int
            Past heartbeats in the pulse template (``None``: ``N_BEATS``, 30).
        ecg : str | None
            The stream's ECG channel (default: the one labelled ECG*/EKG*).
        lost_timeout : float | None
            Seconds the source may stay gone before the run ends (``None``: no limit).
        events : str | None
            The marker stream of the task's stimuli, for a checkpoint with a task readout
            (``calibrate --events``): each volume is the model's prediction plus its
            trial types' HRF-convolved events times their weights.
        event_map : str | None
            ``MARKER=TRIAL_TYPE,...``: what a marker code stands for where the calibration
            data used it for several trial types.
        no_events : bool
            Run a checkpoint with a task readout without it (the EEG part alone).
        """
        from .inlet import EEGConsumer

        if sync == "trigger" and not trigger:
            raise ValueError(
                f"'trigger' (the marker stream NAME[:MARKER], or {SYNTAX}) is needed for "
                "sync='trigger'."
            )
        channel = TriggerChannel.parse(trigger, what="'trigger'")
        correct = tuple(correct or ())
        if set(correct) - {"gradient", "bcg"}:
            raise ValueError(f"'correct' can hold 'gradient' and 'bcg', got {list(correct)}.")
        if "gradient" in correct and not trigger:
            raise ValueError(
                "the gradient correction needs the scanner's volume markers: 'trigger' (the "
                f"marker stream NAME[:MARKER], or {SYNTAX})."
            )
        task = _live_events(checkpoint, events, event_map, no_events)
        pre = checkpoint.preprocessing
        _check_calibrate(calibrate)  # before the ring is sized by it
        options = {"bufsize": max(40.0, pre.winsize + 10.0, float(calibrate) + 5.0)}
        options.update(consumer_options or {})
        if "gradient" in correct:
            options.update(gradient=gradient_volumes or N_VOLUMES, t_r=checkpoint.t_r)
        if "bcg" in correct:
            options.update(pulse=pulse_beats or N_BEATS, ecg=ecg)
        if channel is not None:
            options.update(trigger=channel)
        consumer = EEGConsumer(source, ch_names=checkpoint.ch_names, preprocessing=pre, **options)
        scheduler = make_scheduler(
            sync, t_r=checkpoint.t_r, winsize=pre.winsize, sfreq=pre.sfreq, phase=phase
        )
        outputs = Outputs(
            grid_shape=checkpoint.grid_shape,
            affine=checkpoint.affine,
            t_r=checkpoint.t_r,
            mask=checkpoint.mask,
            model=checkpoint.model_name,
            checkpoint=str(checkpoint.path),
            units=TARGET_UNITS.get(pre.target, pre.target),
            outlet_name=outlet_name,
            nifti=nifti,
            timing=timing,
            bids_root=bids_root,
            roi=None
            if roi is None
            else Regions(
                roi,
                grid_shape=checkpoint.grid_shape,
                affine=checkpoint.affine,
                mask=checkpoint.mask,
                labels=roi_labels,
            ),
            roi_name=roi_name,
            clean_flag=bool(correct),
            sources=[
                Path(checkpoint.path).resolve().as_uri(),
                f"lsl:{source}" if isinstance(source, str) else f"lsl:{source.name()}",
            ],
        )
        triggers = None
        if channel is not None:  # the consumer finds them and corrects on them
            triggers = lambda timeout: ChannelTriggers(consumer)  # noqa: E731
        elif sync == "trigger" or "gradient" in correct:
            also = [consumer.volume_markers] if "gradient" in correct else []
            triggers = lambda timeout: TriggerListener(trigger, timeout=timeout, also=also)  # noqa: E731
        adapter = None
        if adapt is not None:
            if task is not None:
                raise ValueError(
                    f"'adapt' cannot refit the checkpoint '{checkpoint.path}' with its task "
                    "readout (its weights were fitted beside the model's prediction as it "
                    "is): adapt it with 'no_events' (--no-events), or calibrate it offline "
                    "with 'rt-eeg2fmri calibrate --events'."
                )
            if adapt_minutes is None:
                raise ValueError("'adapt_minutes' is needed with 'adapt' (the truth stream).")
            from .adapt import OnlineAdapter

            adapter = OnlineAdapter(
                adapt, checkpoint=checkpoint, minutes=adapt_minutes, gap=adapt_gap,
                delays=adapt_delays, timeout=(consumer_options or {}).get("timeout", 10.0),
            )  # fmt: skip
        elif save_adapted is not None:
            raise ValueError("'save_adapted' needs 'adapt' (the truth stream to adapt to).")
        elif adapt_delays:
            raise ValueError("'adapt_delays' needs 'adapt' (the truth stream to adapt to).")
        return cls(
            consumer,
            scheduler,
            Mapper(checkpoint, device=device),
            outputs,
            triggers=triggers,
            calibrate=calibrate,
            max_backlog=max_backlog,
            adapter=adapter,
            save_adapted=save_adapted,
            sync_on_triggers=sync == "trigger",
            lost_timeout=lost_timeout,
            events=None
            if task is None
            else lambda timeout: EventListener(events, task, timeout=timeout),
            task=task,
        )

    # -- set-up ------------------------------------------------------------------------
    def start(self) -> Engine:
        """Connect to the stream(s), start acquiring and open the outputs.

        The stream is checked first, so a wrong source, channel set or rate leaves no
        output file behind; on any error everything opened so far is closed again.
        """
        try:
            self.mapper.warmup()
            if self.adapter is not None:  # first: its stream is checked before the EEG flows
                self.adapter.open()
            self.consumer.start()
            if self._make_triggers is not None:
                self.triggers = self._make_triggers(self.consumer.timeout)
            if self._make_events is not None:
                self.events = self._make_events(self.consumer.timeout)
            montage = self.consumer.chain.montage if self.consumer.chain else None
            self.outputs.open(
                self.stats, sidecar={"Montage": montage.to_dict()} if montage else None
            )
            if self.mapper.device.type == "cuda":
                from .ring import TorchRingMirror

                self.mirror = TorchRingMirror(self.consumer.ring, device=self.mapper.device)
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Ask a running :meth:`run` to finish after the current volume.

        During :meth:`start` it ends the wait for the stream (``InterruptedError``).
        """
        self._stop.set()
        self.consumer.cancel.set()

    def close(self) -> None:
        """Disconnect and close every output (everything written stays valid)."""
        self.consumer.stop()
        for res in (self.triggers, self.events, self.mirror, self.adapter):
            if res is not None:
                res.close()
        self.outputs.close()
        self.triggers = self.events = self.mirror = None

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the loop ----------------------------------------------------------------------
    def _calibrate(self) -> None:
        n = round(self.calibrate_s * self.sfreq)
        logger.info(
            "Calibrating normalisation on the first %.1f s of the stream...", self.calibrate_s
        )
        while not self.consumer.wait_for(n, timeout=0.5):
            if self._stop.is_set():
                return
        data, _ = self.consumer.ring.read(n, n)
        self.mapper.calibrate(data)

    def _window_for(self, due: Due):
        """``(stop, window, t_end)``, a :class:`Skip`, or ``None`` while the samples are not in yet.

        ``t_end`` is when the window ends: the due time, or (samples mode) one sample period
        after its last sample's time, read with the window (at 100× a fast writer may have
        overwritten that sample by the time the model has run).
        """
        ring = self.consumer.ring
        if due.end_sample is not None:
            stop = due.end_sample
        else:
            stop = ring.count_before(due.t_end - 0.5 / self.sfreq)
            if stop is None:
                return None
            if stop < self.n_times:
                return Skip("its window starts before the stream")
        if stop - self.n_times < ring.n_written - ring.capacity:
            return Skip("its window has left the ring buffer")
        try:
            if self.mirror is not None:
                window = self.mirror.window(self.n_times, stop=stop)
                last = None if due.t_end is not None else float(ring.read(stop, 1)[1][0])
            else:
                ring.read(stop, self.n_times, out=self._window, times_out=self._times)
                window, last = self._window, float(self._times[-1])
        except RuntimeError as err:  # overwritten by the writer during the copy
            return Skip(str(err).rstrip("."))
        return stop, window, due.t_end if due.t_end is not None else last + 1.0 / self.sfreq

    def run(
        self, *, max_volumes: int | None = None, duration: float | None = None, on_volume=None
    ) -> dict:
        """Emit volumes until ``max_volumes``, ``duration`` seconds, :meth:`stop` or stream end.

        Parameters
        ----------
        on_volume : callable | None
            Called as ``on_volume(index, volume, row)`` after each published volume.

        Returns
        -------
        summary : dict
            Counts, latency p50/p99 and stream health.
        """
        import pylsl

        if self.calibrate_s > 0:
            self._calibrate()
        deadline = None if duration is None else time.monotonic() + duration
        first_seen = False
        while not self._stop.is_set():
            if max_volumes is not None and self.stats.volumes >= max_volumes:
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            if self._source_gone_too_long():
                break
            ring = self.consumer.ring
            self.consumer.wait_for(ring.n_written + 1, timeout=0.02)
            n_written, latest = ring.n_written, ring.latest_time
            self._track_pace(latest)
            if not first_seen and n_written:
                self.scheduler.start(ring.first_time)
                if self.task is not None:  # the event regressors' grid starts with the EEG
                    self.task.origin = ring.first_time
                first_seen = True
            if self.triggers is not None:
                while not self.triggers.times.empty():
                    t = self.triggers.times.get_nowait()
                    if self._sync_on_triggers:
                        self.scheduler.add_trigger(t)
                    self._n_triggers += 1
                    self._heard_trigger()
                self._check_triggers(first_seen)
            due = self.scheduler.poll(n_written=n_written, latest_time=latest)
            if not due:
                continue
            fit = self._fits_in_budget()
            n_skip = max(0, len(due) - fit)
            for old in due[:n_skip]:
                self._skip(
                    old,
                    f"{len(due)} volumes due at once and {fit} fit in half a TR (inference "
                    "fell behind, or samples arrived in a burst)",
                    late=True,
                )
            for i, d in enumerate(due[n_skip:]):
                if max_volumes is not None and self.stats.volumes >= max_volumes:
                    break  # a backlog never takes a run past its limit
                late = i < len(due) - n_skip - 1  # a newer volume was already due
                t0 = time.perf_counter()
                self._emit(d, late=late, on_volume=on_volume, clock=pylsl.local_clock)
                self._cost_s.append(time.perf_counter() - t0)
            if self.outputs.stranded():
                logger.error(
                    "Every output of the volumes has failed (%s); stopping.",
                    "; ".join(self.outputs.failed),
                )
                break
        self._skips.flush()
        summary = self.stats.summary(self.consumer.health)
        summary["failed_outputs"] = list(self.outputs.failed)
        summary["stopped"] = self._stop.is_set()  # by stop(): Ctrl-C, SIGTERM, the viewer
        summary["source_gone"] = self._gave_up
        if self.triggers is not None:
            summary["triggers"] = self._n_triggers
            summary["trigger_reconnects"] = self.triggers.reconnects
        if self.task is not None:
            summary["events"] = {
                "heard": self.task.heard,
                "unknown": self.task.unknown,
                "unknown_markers": list(self.task.unknown_labels),
                "reconnects": 0 if self.events is None else self.events.reconnects,
            }
        chain = self.consumer.chain
        if chain is not None and chain.gradient is not None:
            summary["gradient"] = {
                **dataclasses.asdict(chain.gradient.counts),
                "uncorrected_samples": self.consumer.health.uncorrected,
            }
        if chain is not None and chain.pulse is not None:
            summary["pulse"] = {
                **dataclasses.asdict(chain.pulse.counts),
                "uncorrected_samples": self.consumer.health.no_pulse,
            }
        if self.adapter is not None:
            a = self.adapter
            a.wait(30.0)  # a map being chosen (and saved) when the stream ended
            summary["adapt"] = {
                "phase": a.phase,
                "pairs": len(a.pairs),
                "chosen": (a.chosen or {}).get("chosen", {}).get("description"),
                "saved": a.saved,
            }
        return summary

    def _source_gone_too_long(self) -> bool:
        """Whether the source has been gone for more than ``lost_timeout`` (logged once)."""
        if self.lost_timeout is None:
            return False
        if self.consumer.health.state != "lost":
            self._lost_since = None
            return False
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since <= self.lost_timeout:
            return False
        self._gave_up = True
        src = self.consumer.source
        logger.error(
            "The EEG source %r has been gone from the network for %.0f s (more than the "
            "timeout, --timeout): stopping. Every volume until then is written.",
            src if isinstance(src, str) else src.name(),
            now - self._lost_since,
        )
        return True

    def _heard_trigger(self) -> None:
        now = time.monotonic()
        if self._trigger_silent_since is not None:
            logger.info(
                "Volume markers from %s again, after %.0f s.",
                self.triggers.where,
                now - self._trigger_silent_since,
            )
            self._trigger_silent_since = None
        self._last_trigger = now

    def _check_triggers(self, flowing: bool) -> None:
        """Warn when the EEG flows but no volume marker comes: none yet, or none for a while.

        Once when none has come at all; once per silence after markers came (the scanner
        stopped, or the marker stream is gone: the listener looks for it again).
        """
        if not flowing:
            return
        now = time.monotonic()
        if self._eeg_since is None:
            self._eeg_since = now
        wait = max(self.trigger_wait_s, 3 * self.outputs.t_r)
        if not self._n_triggers:
            if not self._trigger_warned and now - self._eeg_since >= wait:
                self._trigger_warned = True
                logger.warning(
                    "No volume marker %r from %s in %.0f s of EEG: %s until one arrives. Is "
                    "the scanner running, and is the marker right (%s)?",
                    self.triggers.marker,
                    self.triggers.where,
                    now - self._eeg_since,
                    "no volume is computed" if self._sync_on_triggers
                    else "the gradient artifact is not corrected",
                    self.triggers.hint,
                )  # fmt: skip
            return
        silent = now - self._last_trigger
        if self._trigger_silent_since is None and silent >= wait:
            self._trigger_silent_since = self._last_trigger
            logger.warning(
                "No volume marker from %s for %.0f s (%s): %s until markers come again.",
                self.triggers.where,
                silent,
                self.triggers.silence,
                "no volume is computed" if self._sync_on_triggers
                else "the gradient correction goes on predicting the volumes",
            )  # fmt: skip

    def _fits_in_budget(self) -> int:
        """How many due volumes to compute at once: those that fit in half a TR.

        Half a TR of wall time: a replay at 100× gives a TR of stream 1/100 of its length.
        """
        # a volume's whole cost: window, inference, outputs and the caller's on_volume
        cost_s = max(float(np.median(self._cost_s)) if self._cost_s else 0.05, 1e-3)
        budget_s = 0.5 * self.outputs.t_r / self._pace()
        return max(self.max_backlog, int(budget_s / cost_s))

    def _track_pace(self, latest: float | None) -> None:
        """Note the stream's clock against the wall clock (at most every 0.5 s)."""
        if latest is None:
            return
        now = time.monotonic()
        if not self._clock_marks or now - self._clock_marks[-1][0] >= 0.5:
            self._clock_marks.append((now, float(latest)))

    def _pace(self) -> float:
        """Seconds of stream per second of wall time over the last ~10 s (1 in real time).

        Over 10 s a burst after a pause averages out; at least 1, so a stalled stream
        never widens the budget.
        """
        if len(self._clock_marks) < 2:
            return 1.0
        (w0, s0), (w1, s1) = self._clock_marks[0], self._clock_marks[-1]
        if w1 - w0 < 2.0:
            return 1.0
        return float(np.clip((s1 - s0) / (w1 - w0), 1.0, 1000.0))

    def _skip(self, due, reason: str, *, late: bool = False) -> None:
        """A due volume not computed: counted, logged, a row and a placeholder volume."""
        self.stats.skipped += 1
        self._skips.add(due.index, reason)
        self.outputs.log(volume=due.index, window_end=due.t_end, skipped=True, late=late)
        self.outputs.skip(due.index, due.t_end)

    def _emit(self, due, *, late: bool, on_volume, clock) -> None:
        data_ready = clock()
        got = self._window_for(due)
        if got is None:
            return
        if isinstance(got, Skip):
            self._skip(due, got.reason)
            return
        stop, window, t_end = got
        t0 = clock()
        if self.adapter is not None and (adapted := self.adapter.take_model()) is not None:
            self.mapper.set_model(adapted)  # the adaptation's choice: another HRF or readout
        pred = self.mapper.predict(window)
        if self.task is not None:  # what the task's events predict of this volume
            pred = pred + torch.from_numpy(self.task.volume(t_end)).to(pred.device, pred.dtype)
        adapt = "off"
        if self.adapter is not None:
            if self.save_adapted and not self._adapted_saved:
                self._adapted_saved = True  # written by the adapter once its map is chosen
                self.adapter.save_when_frozen(self.save_adapted, self.mapper.norm_stats)
            adapt = self.adapter.observe(pred, t_end, window=self.mapper.last_input)
            pred = self.adapter.apply(pred)
        volume = self.mapper.volume(pred)
        health = self.consumer.health
        # the window holds samples the in-scanner correction did not flag clean
        since = t_end - self.n_times / self.sfreq
        dirty = health.last_uncorrected is not None and health.last_uncorrected >= since
        no_pulse = health.last_no_pulse is not None and health.last_no_pulse >= since
        t1 = clock()
        self.outputs.publish(volume, t_end, clean=not dirty)
        publish = clock()  # the volume is out; the NIfTI series is written on a thread
        self.outputs.store(volume, t_end, due.index)
        gap = health.gaps > self._gaps_seen
        self._gaps_seen = health.gaps
        clock_jump = health.clock_jumps > self._jumps_seen
        self._jumps_seen = health.clock_jumps
        arrived = self.consumer.arrival_of(stop)
        # a stream whose clock runs ahead of the LSL clock (a replay faster than real time):
        # its window end is not a time of this clock, the arrival of its last sample is
        ahead = arrived is not None and t_end - 1.0 / self.sfreq > arrived + CLOCK_AHEAD_S
        latency = (publish - (arrived if ahead else t_end)) * 1e3
        self.stats.volumes += 1
        self.stats.late += int(late)
        self.stats.latencies.append(latency)
        self.stats.compute.append((publish - data_ready) * 1e3)
        row = dict(
            volume=due.index,
            window_end=t_end,
            window_arrived=arrived,
            data_ready=data_ready,
            inference_start=t0,
            inference_end=t1,
            publish=publish,
            latency_ms=latency,
            late=late,
            skipped=False,
            gap=gap,
            clock_jump=clock_jump,
            adapt=adapt,
            uncorrected=dirty if self.consumer.gradient or self.consumer.pulse else None,
            no_pulse=no_pulse if self.consumer.pulse else None,
        )
        self.stats.uncorrected += int(bool(dirty))
        self.stats.no_pulse += int(bool(no_pulse))
        self.outputs.log(**row)
        if on_volume is not None:
            on_volume(due.index, volume, row)


def _live_events(checkpoint, events, event_map, no_events):
    """The :class:`~rt_eeg2fmri.task.LiveEvents` of a stream, or ``None`` (errors name flags)."""
    from ..task import LiveEvents

    task = checkpoint.task
    where = f"the checkpoint '{checkpoint.path}'"
    if task is None:
        if events is not None or event_map is not None:
            flag = "'events'" if events is not None else "'event_map'"
            raise ValueError(
                f"{flag}: {where} has no task readout; make one with 'rt-eeg2fmri calibrate "
                "--events' on paired data with task events."
            )
        return None
    if no_events:
        if events is not None:
            raise ValueError("'events' and 'no_events' exclude each other.")
        return None
    if events is None:
        raise ValueError(
            f"{where} predicts with the task's events ({task.describe()}): give their marker "
            "stream ('events', --events NAME), or predict from the EEG alone ('no_events', "
            "--no-events)."
        )
    return LiveEvents(task, t_r=checkpoint.t_r, event_map=event_map)


class _SkipLog:
    """Skipped volumes in the log: the first few one by one, then one line every ``every`` s.

    A loop replayed at 1000× skips thousands; one warning each would bury everything else.
    """

    def __init__(self, *, first: int = 5, every: float = 10.0) -> None:
        self.first, self.every = first, every
        self.n = 0
        self._held: list[int] = []
        self._reason = ""
        self._since = time.monotonic()

    def add(self, index: int, reason: str) -> None:
        self.n += 1
        if self.n <= self.first:
            logger.warning("Volume %d skipped: %s.", index, reason)
            if self.n == self.first:
                logger.warning("Further skipped volumes are summarised every %g s.", self.every)
            return
        self._held.append(index)
        self._reason = reason
        if time.monotonic() - self._since >= self.every:
            self.flush()

    def flush(self) -> None:
        """Log the skipped volumes held back since the last line."""
        if self._held:
            logger.warning(
                "%d more volumes skipped (%d to %d; the last: %s).",
                len(self._held),
                self._held[0],
                self._held[-1],
                self._reason,
            )
        self._held = []
        self._since = time.monotonic()


__all__ = ["Engine", "EngineStats", "Skip", "TriggerListener"]
