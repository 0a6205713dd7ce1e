"""The EEG consumer: an LSL inlet read by a thread into the ring buffer.

A thin LSL shell around the :class:`~rt_eeg2fmri.data.eeg_chain.EEGChain`: the
acquisition thread pulls into a preallocated array (``pull_chunk(dest_obj=...)``), hands
each chunk to the chain (the model's channels in the model's order, volts, NaN/Inf → 0,
gaps zero-filled, resampled and band-passed as the checkpoint's ``Preprocessing`` says —
the code the window cache runs over recorded runs), and writes the result into a
:class:`~rt_eeg2fmri.realtime.ring.RingBuffer` with a moving index.

Timestamps are on the local LSL clock: the inlet is opened with ``proc_clocksync``, so
liblsl adds the :meth:`pylsl.StreamInlet.time_correction` offset of a remote source to
every timestamp (the offset is ~0 for a local source). ``dejitter=True`` adds
``proc_dejitter``, which smooths the timestamps of an amplifier that stamps chunks at
push time, at the cost of blurring the timestamp jumps that reveal lost samples.

Health is tracked in :class:`Health`: a gap is a step between consecutive timestamps
larger than 1.5 sample periods (the samples lost are estimated from its length and, with
``fill_gaps``, written to the ring as zeros on the stream's sample grid by the chain, so a
window keeps its duration and the volumes after a gap stay aligned with the EEG); a stall
is no data for ``stall_timeout`` seconds; while stalled, the source is looked up on the
network and the state becomes ``"lost"`` when it is gone. liblsl reconnects a recovered
source with the same source id by itself (``recover=True``); a source without one raises
``LostError``, after which the consumer resolves the stream again and opens a new inlet.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .._checks import check_ch_names, check_positive
from .._logging import logger
from ..data.channels import named_column, unit_scale
from ..data.eeg_chain import EEGChain
from ..data.preprocessing import Preprocessing, same_rate
from ..data.triggers import RisingEdges, TriggerChannel
from ..volume_stream import CLEAN
from .resolve import describe_stream, lsl_timeout, resolve_eeg_stream

_POLL_S = 0.05  # longest wait of one pull: the stop flag is checked this often
_ARRIVALS = 4096  # chunks whose arrival time is kept (minutes of stream at ~10 pulls/s)
STATES = ("stopped", "ok", "stalled", "lost")
# numpy dtype of each numeric LSL channel format (pylsl's cf_float32 ... cf_int64)
_NP_DTYPES = {1: np.float32, 2: np.float64, 4: np.int32, 5: np.int16, 6: np.int8, 7: np.int64}


@dataclass
class Health:
    """Counters of an :class:`EEGConsumer`, as of the moment they were read.

    Attributes
    ----------
    state : str
        ``"ok"`` (receiving), ``"stalled"`` (no data for ``stall_timeout`` s, source still
        visible), ``"lost"`` (source gone) or ``"stopped"`` (not running).
    samples : int
        Samples received from the stream (before any resampling).
    chunks : int
        Non-empty pulls.
    gaps : int
        Timestamp steps larger than 1.5 sample periods.
    samples_lost : int
        Samples missing in those gaps, estimated from the steps.
    stalls : int
        Times the stream went silent for ``stall_timeout`` seconds.
    reconnects : int
        Times the stream came back from a new outlet (same source).
    nonfinite : int
        Samples with a NaN or infinite value, written as 0.
    clock_jumps : int
        Times the stream's timestamps went back (re-stamped on the sample grid).
    last_time : float | None
        Timestamp of the last sample received (LSL clock).
    uncorrected : int
        With an in-scanner correction: samples it did not flag clean.
    last_uncorrected : float | None
        Timestamp (LSL clock, at the model's rate) of the last output sample of a chunk
        that held uncorrected samples: a window that reaches back to it is flagged.
    no_pulse, last_no_pulse : int, float | None
        The same for the pulse correction alone (no heartbeat template yet, ECG lead off).
    """

    state: str = "stopped"
    samples: int = 0
    chunks: int = 0
    gaps: int = 0
    samples_lost: int = 0
    stalls: int = 0
    reconnects: int = 0
    nonfinite: int = 0
    clock_jumps: int = 0
    last_time: float | None = None
    uncorrected: int = 0
    last_uncorrected: float | None = None
    no_pulse: int = 0
    last_no_pulse: float | None = None


class EEGConsumer:
    """Receive an EEG stream into a ring buffer of the model's channels, in volts.

    Parameters
    ----------
    source : str | pylsl.StreamInfo
        The stream: a resolved ``StreamInfo`` or a query for
        :func:`~rt_eeg2fmri.realtime.resolve.resolve_eeg_stream` (``"<name>"``,
        ``"type:EEG"``, ``"name:<name>"``, ``"source_id:<id>"``).
    ch_names : list of str
        The model's channels; the ring holds exactly these, in this order.
    sfreq : float | None
        The model's rate in Hz, when no ``preprocessing`` is given.
    preprocessing : Preprocessing | None
        The model's EEG preprocessing (its ``sfreq`` is the ring's rate; band-pass);
        default: ``Preprocessing(sfreq=sfreq)``.
    bufsize : float
        Ring capacity in seconds: the window plus a margin (default 40 s = 30 + 10).
    chunk_samples : int | None
        Most samples taken per pull (rows of the preallocated pull buffer); 0.1 s of the
        stream by default.
    allow_missing : bool
        Zero-fill model channels the stream lacks instead of raising.
    positions : mapping of str to array of shape (3,) | None
        Electrode positions (m) for montage interpolation, overriding the stream's
        ``desc/channels/channel/location`` and the 10-05 positions of the labels.
    units : str | None
        Unit of every stream channel (``"uV"``, ``"V"``, ``"-6"``, ...), overriding what
        the stream describes (none, or odd ones); ``None``: the stream's.
    assume_order : bool
        For a stream without channel labels with as many channels as the model: take
        them in the model's order.
    resample : bool
        Resample a stream whose rate differs from the model's (streaming polyphase FIR)
        instead of raising.
    recover : bool
        Reconnect to a source that disappears and comes back.
    timeout : float
        Seconds to wait when resolving and opening the stream.
    stall_timeout : float
        Seconds without data after which the stream counts as stalled.
    dejitter : bool
        Smooth timestamps with liblsl's ``proc_dejitter`` (see the module notes).
    fill_gaps : bool
        Write the samples lost in a gap as zeros (at most a ring's worth), so the ring's
        last ``n`` samples always span ``n / sfreq`` seconds. ``False`` appends the next
        samples right after the gap.
    trigger : TriggerChannel | None
        A channel of the stream that carries the scanner's volume triggers (TTL pulses or
        codes, :class:`~rt_eeg2fmri.data.triggers.TriggerChannel`): each rising edge is a
        volume onset, stamped with its sample's timestamp; it goes to ``trigger_times``
        and, with ``gradient``, to the gradient correction.

    Attributes
    ----------
    ring : RingBuffer
        The samples, shape (n_chans, capacity), volts, on the local LSL clock.
    chain : EEGChain | None
        The connected stream's chain (``None`` before :meth:`start`).
    """

    def __init__(
        self,
        source,
        *,
        ch_names,
        sfreq: float | None = None,
        preprocessing: Preprocessing | None = None,
        bufsize: float = 40.0,
        chunk_samples: int | None = None,
        allow_missing: bool = False,
        positions=None,
        units: str | None = None,
        assume_order: bool = False,
        resample: bool = False,
        recover: bool = True,
        timeout: float = 5.0,
        stall_timeout: float = 1.0,
        dejitter: bool = False,
        fill_gaps: bool = True,
        gradient: int | None = None,
        t_r: float | None = None,
        pulse: int | None = None,
        ecg: str | None = None,
        publish: str | None = None,
        trigger: TriggerChannel | None = None,
    ) -> None:
        from .ring import RingBuffer

        if preprocessing is None:
            preprocessing = Preprocessing(sfreq=check_positive(sfreq, "sfreq"))
        elif preprocessing.sfreq is None or (
            sfreq is not None and not same_rate(sfreq, preprocessing.sfreq)
        ):
            raise ValueError(
                f"EEGConsumer: 'preprocessing.sfreq' must be the model's rate, got "
                f"{preprocessing.sfreq} (sfreq={sfreq})."
            )
        self.ch_names = check_ch_names(ch_names)
        self.preprocessing = preprocessing
        self.sfreq = float(preprocessing.sfreq)
        self.bufsize = check_positive(bufsize, "bufsize")
        self.timeout = check_positive(timeout, "timeout")
        self.stall_timeout = check_positive(stall_timeout, "stall_timeout")
        if chunk_samples is not None and (int(chunk_samples) != chunk_samples or chunk_samples < 1):
            raise ValueError(f"'chunk_samples' must be an integer >= 1, got {chunk_samples=}.")
        if not isinstance(source, str) and not hasattr(source, "source_id"):
            raise TypeError(f"'source' must be a str or a pylsl.StreamInfo, got {source!r}.")
        self.source = source
        self.chunk_samples = chunk_samples
        self.allow_missing, self.assume_order = bool(allow_missing), bool(assume_order)
        if units is not None:
            try:
                known = unit_scale(units) is not None
            except ValueError as err:
                raise ValueError(f"'units' must name a unit: {err}") from None
            if not known:
                raise ValueError(f"'units' must name a unit (V, mV, uV, ...), got {units!r}.")
        self.units = units
        self.positions = None if positions is None else dict(positions)
        self.resample, self.recover, self.dejitter = bool(resample), bool(recover), bool(dejitter)
        self.fill_gaps = bool(fill_gaps)
        if gradient is not None and (int(gradient) != gradient or gradient < 1):
            raise ValueError(f"'gradient' must be an integer >= 1 (volumes), got {gradient!r}.")
        self.gradient, self.t_r = gradient, t_r
        if pulse is not None and (int(pulse) != pulse or pulse < 1):
            raise ValueError(f"'pulse' must be an integer >= 1 (heartbeats), got {pulse!r}.")
        self.pulse, self.ecg = pulse, ecg
        #: Scanner volume-marker times (LSL clock) for the gradient correction; any thread.
        self.volume_markers: queue.SimpleQueue = queue.SimpleQueue()
        #: Volume onsets found on the ``trigger`` channel (LSL clock), for the scheduler.
        self.trigger_times: queue.SimpleQueue = queue.SimpleQueue()
        if trigger is not None and not isinstance(trigger, TriggerChannel):
            raise TypeError(f"'trigger' must be a TriggerChannel, got {trigger!r}.")
        self.trigger = trigger
        self._edges: RisingEdges | None = None  # made with the chain (_configure)
        self._trigger_col: int | None = None
        self.publish = publish
        self._eeg_outlet = None
        self.ring = RingBuffer(len(self.ch_names), math.ceil(self.bufsize * self.sfreq))
        self.stream_info = None  # full description of the connected stream
        self.chain: EEGChain | None = None
        self._chain_key = None
        self._health = Health()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        #: Set to give up waiting for the stream in :meth:`start` (a Ctrl-C while resolving).
        self.cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._inlet = None
        self._uid: str | None = None
        self._error: BaseException | None = None
        #: ``(ring.n_written after a chunk, LSL clock when it was pulled)``, oldest first
        self._arrivals: deque = deque(maxlen=_ARRIVALS)

    # -- public -------------------------------------------------------------------------
    @property
    def health(self) -> Health:
        """A snapshot of the counters."""
        with self._cond:
            return dataclasses.replace(self._health)

    def arrival_of(self, n_samples: int) -> float | None:
        """LSL clock time at which the ring's ``n_samples``-th sample was pulled, if known.

        ``None`` when it has not arrived yet or arrived too long ago to be remembered.
        """
        found, older = None, False
        with self._cond:  # newest first: a volume's window ends among the last chunks
            for written, arrived in reversed(self._arrivals):
                if written < n_samples:
                    older = True
                    break
                found = arrived
            full = len(self._arrivals) == _ARRIVALS
        return found if older or not full else None  # else older chunks are forgotten

    @property
    def running(self) -> bool:
        """Whether the acquisition thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EEGConsumer:
        """Resolve and open the stream, check it against the model, start acquiring.

        Raises
        ------
        RuntimeError
            If already started, or no stream matches the source.
        ValueError
            If the stream's channels, units or rate do not fit the model.
        """
        if self.running:
            raise RuntimeError("the consumer is already running; call stop() first.")
        info = self._resolve()
        self.chain = self._chain_key = None
        inlet = self._connect(info)
        self._stop.clear()
        self._error = None
        with self._cond:
            self._health.state = "ok"
        self._thread = threading.Thread(
            target=self._run, args=(inlet,), name=f"EEGConsumer[{info.name()}]", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop acquiring and close the inlet; the ring keeps its content."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None
        self._eeg_outlet = None  # unpublished: the stream is gone from the network
        with self._cond:
            self._health.state = "stopped"
            self._cond.notify_all()

    def __enter__(self) -> EEGConsumer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, n_samples: int, timeout: float) -> bool:
        """Block until the ring has received ``n_samples`` in total (``ring.n_written``).

        Returns ``False`` if ``timeout`` seconds pass first; raises ``RuntimeError`` if
        acquisition ended (stopped, or the stream was lost for good) before that.
        """
        deadline = time.monotonic() + float(timeout)
        with self._cond:
            while self.ring.n_written < n_samples:
                if self._error is not None:
                    raise RuntimeError(f"acquisition failed: {self._error}") from self._error
                if not self.running:
                    raise RuntimeError(
                        f"the consumer is not running ({self.ring.n_written} of "
                        f"{n_samples} samples received)."
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _POLL_S))
        return True

    # -- connection ---------------------------------------------------------------------
    def _resolve(self):
        if isinstance(self.source, str):
            return resolve_eeg_stream(self.source, timeout=self.timeout, cancel=self.cancel)
        return self.source

    def _find_again(self, timeout: float):
        """The connected stream's source on the network (by source id, else by name)."""
        import pylsl

        sid = self.stream_info.source_id()
        key, value = ("source_id", sid) if sid else ("name", self.stream_info.name())
        found = pylsl.resolve_byprop(key, value, timeout=lsl_timeout(timeout))
        return found[0] if found else None

    def _connect(self, info):
        """Open an inlet on ``info`` and configure the pipeline from its description."""
        import pylsl

        flags = pylsl.proc_clocksync | (pylsl.proc_dejitter if self.dejitter else 0)
        inlet = pylsl.StreamInlet(
            info,
            max_buflen=max(1, math.ceil(self.bufsize)),
            recover=self.recover,
            processing_flags=flags,
        )
        try:
            full = inlet.info(timeout=self.timeout)
            self._configure(full)
            # the first clock offset takes ~0.6 s: estimate it before subscribing, or
            # proc_clocksync holds the first pull that long and the data comes in a burst
            inlet.time_correction(timeout=self.timeout)
            inlet.open_stream(timeout=self.timeout)
        except pylsl.util.TimeoutError:
            raise RuntimeError(
                f"stream {describe_stream(info)} did not answer within {self.timeout:g} s."
            ) from None
        self._inlet = inlet
        self._uid = full.uid()
        return inlet

    def _configure(self, info) -> None:
        name = info.name()
        label = f"stream {name!r}"
        np_dtype = _NP_DTYPES.get(info.channel_format())
        if np_dtype is None:
            raise ValueError(f"{label} has string samples; an EEG stream must be numeric.")
        rate = info.nominal_srate()
        if rate <= 0:
            raise ValueError(f"{label} has an irregular rate; an EEG stream needs a nominal rate.")
        if not same_rate(rate, self.sfreq) and not self.resample:
            raise ValueError(
                f"{label} is {rate:g} Hz, the model expects {self.sfreq:g} Hz; pass "
                "resample=True to resample it online."
            )
        n_stream = info.channel_count()
        labels = info.get_channel_labels()
        units = [self.units] * n_stream if self.units else info.get_channel_units()
        types = info.get_channel_types()
        key = (rate, n_stream, np_dtype, tuple(labels or ()), tuple(units or ()),
               tuple(types or ()))  # fmt: skip
        if key != self._chain_key:  # a source that comes back unchanged keeps its chain state
            positions = {**_stream_locations(info), **(self.positions or {})}
            chain = EEGChain(
                self.preprocessing,
                ch_names=self.ch_names,
                sfreq=rate,
                labels=labels,
                units=units,
                n_in_chans=n_stream,
                allow_missing=self.allow_missing,
                positions=positions,
                assume_order=self.assume_order,
                fill_gaps=self.fill_gaps,
                max_fill=math.ceil(self.bufsize * rate),  # the ring's span, in the source's samples
                source=label,
                gradient=self.gradient,
                t_r=self.t_r,
                pulse=self.pulse,
                ecg=self.ecg,
                types=types,
            )
            if self.chain is not None:
                chain.continue_after(self.chain)
            self.chain, self._chain_key = chain, key
            if self.trigger is not None:
                self._trigger_col, name = named_column(
                    labels, self.trigger.channel, what="trigger channel", stream=label
                )
                trigger = self.trigger.in_stream_units(
                    units[self._trigger_col] if units else None,
                    where=f"{label}: trigger channel {name!r}",
                    kind=types[self._trigger_col] if types else None,
                )
                self._edges = trigger.edges()
                logger.info(
                    "%s: volume triggers on channel %r (%s%s)",
                    label,
                    name,
                    self.trigger.describe(),
                    "" if trigger is self.trigger else f": {trigger.level:g} in its unit",
                )
            if chain.latency:
                logger.info(
                    "%s: resampling %g Hz to %g Hz (latency %.1f ms)",
                    label,
                    rate,
                    self.sfreq,
                    chain.latency * 1e3,
                )
        if self.publish and self._eeg_outlet is None:
            self._eeg_outlet = self._open_eeg_outlet()
        n_pull = self.chunk_samples or max(16, math.ceil(0.1 * rate))
        self.stream_info = info
        self._label = label
        self._pull = np.empty((n_pull, n_stream), dtype=np_dtype)
        self._stamps = np.empty(n_pull)
        logger.info("connected to %s", describe_stream(info))

    # -- acquisition thread -------------------------------------------------------------
    def _run(self, inlet) -> None:
        import pylsl

        last_data = time.monotonic()
        next_check = 0.0
        new_source = False
        try:
            while not self._stop.is_set():
                try:
                    k = self._pull_into(inlet)
                    arrived = pylsl.local_clock()
                except pylsl.util.LostError:
                    inlet = self._on_lost()
                    if inlet is None:
                        return
                    last_data, new_source = time.monotonic(), True
                    continue
                now = time.monotonic()
                if k:
                    last_data = now
                    state = self._health.state
                    if state != "ok":
                        self._on_resume(state, new_source)
                        new_source = False
                    self._ingest(self._pull[:k], self._stamps[:k], arrived=arrived)
                elif now - last_data > self.stall_timeout and now >= next_check:
                    new_source |= self._on_silence(now - last_data)
                    next_check = now + self.stall_timeout
        except BaseException as err:
            logger.exception("%s: acquisition failed", self._label)
            self._error = err
        finally:
            with self._cond:
                self._cond.notify_all()

    def _pull_into(self, inlet) -> int:
        """Take the samples that are there into ``_pull``/``_stamps``; how many.

        Waits up to ``_POLL_S`` for the first sample, then takes what else is buffered, up
        to the buffer's size. liblsl writes the samples straight into ``_pull`` (``dest_obj``: a C-contiguous
        array of shape (max_samples, n_chans) in the stream's dtype) and returns the
        timestamps as a list.
        """
        _, first = inlet.pull_chunk(timeout=_POLL_S, max_samples=1, dest_obj=self._pull)
        if not first:
            return 0
        self._stamps[0] = first[0]
        if self._pull.shape[0] == 1:
            return 1
        _, rest = inlet.pull_chunk(
            timeout=0.0, max_samples=self._pull.shape[0] - 1, dest_obj=self._pull[1:]
        )
        k = 1 + len(rest)
        self._stamps[1:k] = rest
        return k

    def _open_eeg_outlet(self):
        """The outlet of the EEG the model sees (``publish``), after the chain.

        The model's channels at its rate in µV; with an in-scanner correction a last
        channel ``Clean`` is 1 where a chunk's samples were all flagged clean, else 0.
        """
        import pylsl

        from ..replay.outlets import eeg_stream_info

        names, types, units = list(self.ch_names), ["EEG"] * len(self.ch_names), None
        fixed = [a for a, on in (("gradient", self.gradient), ("pulse", self.pulse)) if on]
        if fixed:
            names, types = [*names, CLEAN], [*types, "MISC"]
            units = ["microvolts"] * len(self.ch_names) + ["boolean"]
        info = eeg_stream_info(
            self.publish, ch_names=names, sfreq=self.sfreq, source_id=f"rt-eeg2fmri:{self.publish}",
            model="rt-eeg2fmri EEG chain"
            + (f" ({' and '.join(fixed)} artifacts corrected)" if fixed else ""),
            ch_types=types, units=units,
        )  # fmt: skip
        return pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)

    def _ingest(self, raw: np.ndarray, stamps: np.ndarray, *, arrived: float | None = None) -> None:
        while not self.volume_markers.empty():
            self.chain.add_volume_marker(self.volume_markers.get_nowait())
        if self._trigger_col is not None:  # edges of the trigger channel: volume onsets
            for i in self._edges.find(raw[:, self._trigger_col]):
                self.trigger_times.put(float(stamps[i]))
                self.chain.add_volume_marker(float(stamps[i]))  # ahead of its samples
        data, times, report = self.chain.process(raw, stamps)
        if self._eeg_outlet is not None and data.shape[1] and times is not None:
            block = data * 1e6
            if self.gradient or self.pulse:
                block = np.vstack(
                    [block, np.full((1, data.shape[1]), float(not report.uncorrected))]
                )
            self._eeg_outlet.push_chunk(np.ascontiguousarray(block.T, np.float32), float(times[-1]))
        with self._cond:  # the ring and the counters change together for wait_for()
            self.ring.write(data, times, channels_first=True)
            if arrived is not None and data.shape[1]:
                self._arrivals.append((self.ring.n_written, arrived))
            h = self._health
            h.samples += report.n_in
            h.chunks += 1
            h.gaps += report.gaps
            h.samples_lost += report.samples_lost
            h.nonfinite += report.nonfinite
            h.clock_jumps += report.clock_jumps
            h.last_time = float(stamps[-1])
            last = h.last_time if times is None or not len(times) else float(times[-1])
            if report.uncorrected:
                h.uncorrected += report.uncorrected
                h.last_uncorrected = last
            if report.no_pulse:
                h.no_pulse += report.no_pulse
                h.last_no_pulse = last
            self._cond.notify_all()

    def _on_silence(self, silent_s: float) -> bool:
        """While no data comes: stalled, or lost if the source is gone.

        Returns True if a new outlet of the source is seen: its data is a reconnect.
        """
        with self._cond:
            if self._health.state == "ok":
                self._health.state = "stalled"
                self._health.stalls += 1
                logger.warning("%s: no data for %.1f s", self._label, silent_s)
        found = self._find_again(timeout=min(0.2, self.stall_timeout))
        with self._cond:
            if found is None and self._health.state != "lost":
                self._health.state = "lost"
                logger.warning(
                    "%s: the source is gone%s",
                    self._label,
                    "; waiting for it to come back" if self.recover else "",
                )
            self._cond.notify_all()
        return found is not None and found.uid() != self._uid

    def _on_resume(self, state: str, new_source: bool) -> None:
        with self._cond:
            self._health.state = "ok"
            if state == "lost" or new_source:
                self._health.reconnects += 1
                logger.info("%s: reconnected", self._label)
            else:
                logger.info("%s: data resumed", self._label)

    def _on_lost(self):
        """After ``LostError``: a new inlet on the stream once it is back, or None."""
        with self._cond:
            if self._health.state != "lost":
                self._health.state = "lost"
                logger.warning("%s: the stream was lost", self._label)
            self._cond.notify_all()
        if self.recover:
            while not self._stop.is_set():
                info = self._find_again(timeout=0.5)
                if info is None:
                    continue
                try:
                    return self._connect(info)  # gaps are measured across the loss
                except RuntimeError as err:  # it went away again
                    logger.warning("%s: reconnecting failed: %s", self._label, err)
        return None


def _stream_locations(info) -> dict:
    """Electrode positions (m) of a stream's ``desc/channels/channel/location`` (X, Y, Z in mm).

    Channels without a full, numeric location are left out.
    """
    out = {}
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        label, loc = ch.child_value("label"), ch.child("location")
        try:
            xyz = [float(loc.child_value(axis)) for axis in ("X", "Y", "Z")]
        except ValueError:
            xyz = None
        if label and xyz is not None and np.isfinite(xyz).all():
            out[label] = np.asarray(xyz) / 1e3
        ch = ch.next_sibling()
    return out
