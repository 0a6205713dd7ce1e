"""The viewer's LSL subscribers, free of Qt: threads that turn streams into numpy arrays.

- :class:`VolumeSubscriber` follows a volume stream (by name, or the first ``fMRI`` stream
  whose description says ``content`` = prediction / truth) and queues ``(sample,
  timestamp, received)`` for the GUI to drain; it only uses LSL resolution, so the
  sender may be on another machine (timestamps of a remote sender are corrected to the
  local clock with ``time_correction()``, polled in the background);
- :class:`EEGSubscriber` keeps the last seconds of an EEG stream in a
  :class:`~apps.viewer.series.TraceBuffer` for the trace strip;
- :class:`QueueSource` has the same interface and is fed in-process (``stream --view``).

A stream that drops is reported as ``lost`` (the inlet is opened with ``recover=False``,
so liblsl raises ``LostError`` at once) and looked up again until it returns, possibly
with a new description; one that stays connected but sends nothing is ``stalled``.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from rt_eeg2fmri._logging import logger
from rt_eeg2fmri.realtime.resolve import lsl_timeout, parse_source
from rt_eeg2fmri.volume_stream import CLEAN, CONTENTS, STREAM_TYPE, parse_volume_stream_info

from .series import StreamStatus, TraceBuffer

_POLL_S = 0.05  # longest blocking pull: the stop flag is checked this often


class _ClockOffset:
    """Offset from a stream's LSL clock to the local one, kept up to date in a thread.

    A source on this host shares the local clock (offset 0, nothing to do). For a remote
    one, ``time_correction()`` is polled every ``interval`` seconds in its own thread, so
    that pulling never waits for it (``proc_clocksync`` holds the first samples back
    while it probes); the offset is 0 until the first estimate arrives.
    """

    def __init__(self, inlet, info, *, interval: float = 5.0) -> None:
        import socket

        self.offset = 0.0
        self._stop = threading.Event()
        self._thread = None
        if info.hostname() != socket.gethostname():
            self._thread = threading.Thread(
                target=self._run, args=(inlet, interval), name="viewer-clock", daemon=True
            )
            self._thread.start()

    def _run(self, inlet, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.offset = float(inlet.time_correction(timeout=2.0))
            except Exception as err:  # lost or timed out: keep the last estimate
                logger.debug("viewer: time_correction failed: %s", err)
            self._stop.wait(interval)

    def stop(self) -> None:
        """Stop polling (the inlet is closed by its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)


class _Subscriber:
    """Thread life cycle shared by the subscribers: resolve → open → pull → lost → ..."""

    def __init__(self, label: str, *, stall_timeout: float, resolve_timeout: float) -> None:
        if not stall_timeout > 0:
            raise ValueError(f"'stall_timeout' must be positive, got {stall_timeout=}.")
        self.status = StreamStatus(label)
        self.stall_timeout = float(stall_timeout)
        self.resolve_timeout = lsl_timeout(float(resolve_timeout))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_live = False
        self._clock: _ClockOffset | None = None

    def start(self):
        """Start the background thread (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"viewer-{self.status.label}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the inlet."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _set_state(self, state: str) -> None:
        if self.status.state != state:
            self.status.state = state
            self.status.since = time.monotonic()

    def _run(self) -> None:
        import pylsl

        while not self._stop.is_set():
            try:
                inlet = self._find_and_open()
            except (pylsl.util.LostError, TimeoutError):  # it went away while opening
                self._set_state("lost" if self._was_live else "searching")
                continue
            except Exception as err:  # a malformed stream: say so, keep looking
                self.status.error = str(err)
                logger.warning("viewer: %s stream unusable: %s", self.status.label, err)
                self._stop.wait(1.0)
                continue
            if inlet is None:
                continue
            self.status.error = None
            if self._was_live:
                self.status.reconnects += 1
            self._set_state("connecting")
            last = time.monotonic()
            try:
                while not self._stop.is_set():
                    n = self._pull(inlet)
                    now = time.monotonic()
                    if n:
                        last = now
                        self._was_live = True
                        self._set_state("live")
                    elif now - last > self.stall_timeout and self.status.state == "live":
                        self._set_state("stalled")
            except pylsl.util.LostError:
                logger.warning("viewer: %s stream lost", self.status.label)
                self._set_state("lost")
            finally:
                if self._clock is not None:
                    self._clock.stop()
                inlet.close_stream()

    def _resolve(self, prop: str, value: str):
        import pylsl

        return pylsl.resolve_byprop(prop, value, timeout=self.resolve_timeout)

    def _find_and_open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _pull(self, inlet) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class VolumeSubscriber(_Subscriber):
    """Follow a volume stream and queue its volumes.

    Parameters
    ----------
    name : str | None
        Stream name; ``None`` takes the first ``fMRI`` stream with the given ``content``.
    content : ``"prediction"`` | ``"truth"``
        What the stream must carry (also the status label).
    stall_timeout : float | None
        Seconds without a volume before the stream is reported stalled (default: twice
        the stream's TR plus one second).
    resolve_timeout : float
        Seconds of each LSL resolve while searching.
    max_queue : int
        Volumes kept for the GUI to drain (oldest dropped first when it falls behind).

    Attributes
    ----------
    meta : VolumeStreamMeta | None
        Description of the connected stream.
    meta_version : int
        Incremented on every (re)connection, so the GUI knows to re-read :attr:`meta`.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        content: str = "prediction",
        stall_timeout: float | None = None,
        resolve_timeout: float = 1.0,
        max_queue: int = 64,
    ) -> None:
        if content not in CONTENTS:
            raise ValueError(f"'content' must be one of {', '.join(CONTENTS)}, got {content!r}.")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"'name' must be a non-empty string or None, got {name!r}.")
        super().__init__(
            content, stall_timeout=stall_timeout or 1.0, resolve_timeout=resolve_timeout
        )
        self._auto_stall = stall_timeout is None
        self.name = name
        self.content = content
        self.meta = None
        self.meta_version = 0
        self._queue: queue.Queue = queue.Queue(maxsize=int(max_queue))
        self._skip: set[str] = set()  # source ids of fMRI streams with another content
        self._buf = None

    def drain(self) -> list[tuple[np.ndarray, float, float]]:
        """Everything received since the last call: ``(sample, timestamp, received)``.

        ``sample`` is the flat C-order volume and its flags (``(n_channels,)``, float32),
        ``timestamp`` its LSL timestamp (end of acquisition, local clock) and
        ``received`` the local LSL clock when it arrived.
        """
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def _find_and_open(self):
        import pylsl

        infos = (
            self._resolve("name", self.name)
            if self.name
            else [i for i in self._resolve("type", STREAM_TYPE) if i.source_id() not in self._skip]
        )
        for info in infos:
            # no proc_clocksync: it holds the first samples back ~1.5 s (see _ClockOffset)
            inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
            try:
                meta = parse_volume_stream_info(inlet.info(timeout=5.0))
            except TimeoutError:
                inlet.close_stream()
                continue
            if meta.content != self.content:
                inlet.close_stream()
                if self.name:
                    raise ValueError(
                        f"stream '{self.name}' carries {meta.content!r} volumes, expected "
                        f"{self.content!r}."
                    )
                if info.source_id():
                    self._skip.add(info.source_id())
                continue
            inlet.open_stream(timeout=5.0)
            self._clock = _ClockOffset(inlet, info)
            self.meta = meta
            self._buf = np.empty((1, meta.n_channels), np.float32)
            if self._auto_stall:
                self.stall_timeout = 2.0 * meta.t_r + 1.0
            self.status.name = info.name()
            self.meta_version += 1
            logger.info("viewer: %s stream '%s' (%s)", self.content, info.name(), meta.grid_shape)
            return inlet
        return None

    def _pull(self, inlet) -> int:
        import pylsl

        _, stamps = inlet.pull_chunk(
            timeout=_POLL_S, max_samples=1, dest_obj=self._buf, min_samples=1
        )
        if not stamps:
            return 0
        received = pylsl.local_clock()
        ts = float(stamps[0]) + self._clock.offset
        item = (self._buf[0].copy(), ts, received)
        if self._queue.full():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put_nowait(item)
        self.status.n_received += 1
        self.status.last_latency = received - ts
        clean = self.meta.flag(self._buf[0], CLEAN)
        if clean is not None:  # a prediction of EEG corrected live in the scanner
            self.status.last_clean = clean == 1.0
            self.status.not_clean = (self.status.not_clean or 0) + (clean != 1.0)
        return 1


class EEGSubscriber(_Subscriber):
    """Keep the last ``seconds`` of an EEG stream for the trace strip.

    Parameters
    ----------
    source : str
        ``NAME``, ``name:NAME``, ``type:TYPE`` or ``source_id:ID``.
    seconds : float
        Span kept.
    max_channels : int
        Channels kept (the stream's first ones).
    stall_timeout : float
        Seconds without samples before the stream is reported stalled.

    Attributes
    ----------
    buffer : TraceBuffer | None
        Created on connection; read it under :attr:`lock`.
    ch_names : list of str
    """

    def __init__(
        self,
        source: str = "type:EEG",
        *,
        seconds: float = 10.0,
        max_channels: int = 8,
        stall_timeout: float = 2.0,
        resolve_timeout: float = 1.0,
    ) -> None:
        self._prop, self._value = parse_source(source)
        super().__init__("EEG", stall_timeout=stall_timeout, resolve_timeout=resolve_timeout)
        if int(max_channels) < 1:
            raise ValueError(f"'max_channels' must be at least 1, got {max_channels=}.")
        self.seconds = float(seconds)
        self.max_channels = int(max_channels)
        self.lock = threading.Lock()
        self.buffer: TraceBuffer | None = None
        self.ch_names: list[str] = []
        self.version = 0  # incremented on every chunk

    def _find_and_open(self):
        import pylsl

        infos = self._resolve(self._prop, self._value)
        if not infos:
            return None
        inlet = pylsl.StreamInlet(infos[0], max_buflen=30, recover=False)
        info = inlet.info(timeout=5.0)
        sfreq = info.nominal_srate()
        if not sfreq > 0:
            inlet.close_stream()
            raise ValueError(f"EEG stream '{info.name()}' has no nominal rate ({sfreq}).")
        n = info.channel_count()
        names, ch = [], info.desc().child("channels").child("channel")
        while not ch.empty() and len(names) < n:
            names.append(ch.child_value("label") or f"ch{len(names) + 1}")
            ch = ch.next_sibling()
        names += [f"ch{i + 1}" for i in range(len(names), n)]
        keep = min(n, self.max_channels)
        with self.lock:
            self.buffer = TraceBuffer(keep, sfreq, self.seconds)
            self.ch_names = names[:keep]
        self._pullbuf = np.empty((max(1, round(sfreq * 0.5)), n), np.float32)
        self._keep = keep
        inlet.open_stream(timeout=5.0)
        self._clock = _ClockOffset(inlet, info)
        self.status.name = info.name()
        return inlet

    def _pull(self, inlet) -> int:
        _, stamps = inlet.pull_chunk(
            timeout=_POLL_S,
            max_samples=self._pullbuf.shape[0],
            dest_obj=self._pullbuf,
            min_samples=1,
        )
        k = len(stamps)
        if k:
            with self.lock:
                self.buffer.write(
                    self._pullbuf[:k, : self._keep], np.asarray(stamps) + self._clock.offset
                )
                self.version += 1
            self.status.n_received += k
        return k


class QueueSource:
    """A volume source fed in-process, with :class:`VolumeSubscriber`'s interface.

    Parameters
    ----------
    meta : VolumeStreamMeta
        What the volumes are.
    label : str
        ``prediction`` or ``truth``.
    """

    def __init__(self, meta, *, label: str = "prediction", max_queue: int = 64) -> None:
        self.meta = meta
        self.meta_version = 1
        self.content = label
        self.status = StreamStatus(label, name="in-process", state="connecting")
        self._queue: queue.Queue = queue.Queue(maxsize=int(max_queue))

    def put(self, volume, timestamp: float) -> None:
        """Queue one volume (any shape with ``prod(grid_shape)`` values)."""
        import pylsl

        received = pylsl.local_clock()
        sample = self.meta.to_sample(np.asarray(volume, np.float32).reshape(self.meta.grid_shape))
        if self._queue.full():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put_nowait((sample, float(timestamp), received))
        self.status.n_received += 1
        self.status.last_latency = received - float(timestamp)
        if self.status.state != "live":
            self.status.state = "live"
            self.status.since = time.monotonic()

    def drain(self) -> list[tuple[np.ndarray, float, float]]:
        """Everything put since the last call (see :meth:`VolumeSubscriber.drain`)."""
        return VolumeSubscriber.drain(self)

    def start(self) -> QueueSource:
        """Nothing to start (for interface parity)."""
        return self

    def stop(self, timeout: float = 0.0) -> None:
        """Nothing to stop (for interface parity)."""


__all__ = ["EEGSubscriber", "QueueSource", "VolumeSubscriber"]
