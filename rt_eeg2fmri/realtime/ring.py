"""A preallocated ring buffer of EEG samples with their timestamps, and its torch mirror.

The writer (the acquisition thread) copies each chunk into the slots after the last one
with at most two slice assignments per array — no ``np.roll``, no whole-buffer copy.
Samples are addressed by their absolute count since the first write: sample ``i`` lives
in slot ``i % capacity`` until ``capacity`` more samples have been written.

Thread safety: one writer, any number of readers, and reads take no lock. The writer
announces the slots it is about to overwrite (``_reserved``) before touching them and
publishes ``n_written`` after; a reader copies first and checks afterwards that none of
the samples it copied were reserved for overwriting meanwhile (a seqlock-style validated
read). ``latest`` retries on such an overrun; reads of a fixed range raise. With a margin
of several seconds between the window and the capacity an overrun cannot happen in
practice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

_READ_RETRIES = 3


class RingBuffer:
    """Continuous multichannel samples with timestamps, written with a moving index.

    Parameters
    ----------
    n_chans : int
        Number of channels.
    bufsize_samples : int
        Capacity in samples. Make it the longest window read plus a margin (e.g. 30 s +
        10 s at the sampling rate), so a reader copying a window never races the writer.
    dtype : numpy dtype
        Sample type of the buffer (default float32).

    Attributes
    ----------
    on_write : list of callable
        Called by the writer after each chunk as ``callback(start, n)``: ``n`` samples
        were written from slot ``start`` on, wrapping past the end of the buffer to slot
        0 if ``start + n > capacity``. Used by :class:`TorchRingMirror`.
    first_time : float | None
        Timestamp of the first sample ever written.
    """

    def __init__(self, n_chans: int, bufsize_samples: int, *, dtype=np.float32) -> None:
        if int(n_chans) != n_chans or n_chans < 1:
            raise ValueError(f"'n_chans' must be an integer >= 1, got {n_chans=}.")
        if int(bufsize_samples) != bufsize_samples or bufsize_samples < 1:
            raise ValueError(f"'bufsize_samples' must be an integer >= 1, got {bufsize_samples=}.")
        # np.full touches every page now, not on first write in the acquisition thread
        self._data = np.full((int(n_chans), int(bufsize_samples)), 0, dtype=dtype)
        self._times = np.full(int(bufsize_samples), np.nan)
        self._n_written = 0
        self._reserved = 0
        self._write_lock = threading.Lock()
        self.on_write: list[Callable[[int, int], None]] = []
        self.first_time: float | None = None

    @property
    def n_chans(self) -> int:
        """Number of channels."""
        return self._data.shape[0]

    @property
    def capacity(self) -> int:
        """Number of samples the buffer holds."""
        return self._data.shape[1]

    @property
    def dtype(self) -> np.dtype:
        """Sample type."""
        return self._data.dtype

    @property
    def n_written(self) -> int:
        """Total number of samples written since creation (not capped by the capacity)."""
        return self._n_written

    @property
    def latest_time(self) -> float | None:
        """Timestamp of the newest sample, or ``None`` before the first write."""
        n = self._n_written
        return None if n == 0 else float(self._times[(n - 1) % self.capacity])

    # -- writer -------------------------------------------------------------------------
    def write(self, data, timestamps, *, channels_first: bool | None = None) -> int:
        """Append a chunk.

        Parameters
        ----------
        data : array of shape (n_samples, n_chans) or (n_chans, n_samples)
            The samples, converted to the buffer's dtype on copy.
        timestamps : array of shape (n_samples,)
            Their timestamps (seconds, nondecreasing).
        channels_first : bool | None
            The layout of ``data``; inferred from the shapes when ``None`` (an error if
            ``n_samples == n_chans``).

        Returns
        -------
        n : int
            Number of samples written (only the last ``capacity`` of a larger chunk are
            kept, but all count in :attr:`n_written`).
        """
        times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        data = np.asarray(data)
        k, n_chans = times.size, self.n_chans
        if channels_first is None:
            if data.shape == (k, n_chans) and data.shape != (n_chans, k):
                channels_first = False
            elif data.shape == (n_chans, k) and data.shape != (k, n_chans):
                channels_first = True
            elif data.shape == (k, n_chans):
                raise ValueError(
                    f"'data' of shape {data.shape} is ambiguous with {k} timestamps and "
                    f"{n_chans} channels; pass channels_first=True or False."
                )
            else:
                raise ValueError(
                    f"'data' must have shape (n_samples, n_chans) = ({k}, {n_chans}) or "
                    f"(n_chans, n_samples) = ({n_chans}, {k}), got {data.shape}."
                )
        chan = data if channels_first else data.T
        if chan.shape != (n_chans, k):
            raise ValueError(
                f"'data' must have shape {(n_chans, k) if channels_first else (k, n_chans)} for "
                f"{k} timestamps and {n_chans} channels, got {data.shape}."
            )
        if k == 0:
            return 0
        cap = self.capacity
        first_time = float(times[0])
        skip = max(0, k - cap)
        if skip:
            chan, times = chan[:, skip:], times[skip:]
        m = k - skip
        with self._write_lock:
            if self.first_time is None:
                self.first_time = first_time
            start_abs = self._n_written + skip
            self._reserved = start_abs + m  # announce before overwriting
            start = start_abs % cap
            first = min(m, cap - start)
            self._data[:, start : start + first] = chan[:, :first]
            self._times[start : start + first] = times[:first]
            if first < m:
                self._data[:, : m - first] = chan[:, first:]
                self._times[: m - first] = times[first:]
            self._n_written = start_abs + m  # publish
            for callback in self.on_write:
                callback(start, m)
        return m

    # -- readers ------------------------------------------------------------------------
    def read(self, stop: int, n: int, *, out=None, times_out=None):
        """Copy the samples ``[stop - n, stop)`` (absolute counts), in time order.

        Parameters
        ----------
        stop : int
            One past the last sample, as an absolute count (``<= n_written``).
        n : int
            Number of samples (``<= capacity``).
        out : array of shape (n_chans, n) | None
            Destination of the data; allocated when ``None``.
        times_out : array of shape (n,) | None
            Destination of the timestamps; allocated when ``None``.

        Returns
        -------
        data : array of shape (n_chans, n)
        timestamps : array of shape (n,)

        Raises
        ------
        RuntimeError
            If samples of the range have not arrived yet, or were overwritten (also
            during the copy: the reader was too slow for the margin).
        """
        n, stop = self._check_n(n), int(stop)
        if stop > self._n_written:
            raise RuntimeError(
                f"samples up to {stop} requested, only {self._n_written} written so far."
            )
        data, times = self._outputs(n, out, times_out)
        self._copy(stop, n, data, times)
        return data, times

    def latest(self, n: int, *, out=None, times_out=None):
        """Copy the newest ``n`` samples, in time order.

        Parameters
        ----------
        n : int
            Number of samples (``<= capacity``).
        out : array of shape (n_chans, n) | None
            Destination of the data; allocated when ``None``.
        times_out : array of shape (n,) | None
            Destination of the timestamps; allocated when ``None``.

        Returns
        -------
        data : array of shape (n_chans, n)
        timestamps : array of shape (n,)
        """
        n = self._check_n(n)
        data, times = self._outputs(n, out, times_out)
        for _ in range(_READ_RETRIES):
            stop = self._n_written
            if stop < n:
                raise RuntimeError(f"{n} samples requested, only {stop} written so far.")
            try:
                self._copy(stop, n, data, times)
                return data, times
            except RuntimeError:
                continue  # overrun by the writer: take the newer window
        raise RuntimeError(
            f"the writer overran {_READ_RETRIES} reads of {n} samples in a buffer of "
            f"{self.capacity}; make the buffer larger than the window."
        )

    def count_before(self, t_end: float) -> int | None:
        """Absolute count of the samples with a timestamp ``< t_end``.

        ``None`` while that is not known yet: no sample at or after ``t_end`` has arrived.
        Samples older than the buffer count but cannot be read any more.
        """
        nw = self._n_written
        if nw == 0:
            return None
        cap = self.capacity
        if self._times[(nw - 1) % cap] < t_end:
            return None
        avail = min(nw, cap)
        start_abs = nw - avail
        start = start_abs % cap
        older = self._times[start : start + min(avail, cap - start)]
        newer = self._times[: avail - older.size]
        if newer.size and t_end > newer[0]:
            return start_abs + older.size + int(np.searchsorted(newer, t_end, "left"))
        return start_abs + int(np.searchsorted(older, t_end, "left"))

    def window_ending_at(self, t_end: float, n: int, *, out=None, times_out=None):
        """Copy the ``n`` samples just before ``t_end`` (timestamps ``< t_end``).

        Parameters
        ----------
        t_end : float
            End of the window on the stream clock (excluded).
        n : int
            Number of samples.
        out, times_out : array | None
            Destinations, as in :meth:`read`.

        Returns
        -------
        window : tuple (data (n_chans, n), timestamps (n,)) | None
            ``None`` while no sample at or after ``t_end`` has arrived.

        Raises
        ------
        ValueError
            If fewer than ``n`` samples precede ``t_end`` (the window starts before the
            stream did).
        RuntimeError
            If the window was already overwritten.
        """
        stop = self.count_before(t_end)
        if stop is None:
            return None
        if stop < n:
            raise ValueError(f"only {stop} samples precede t_end={t_end!r}, the window needs {n=}.")
        return self.read(stop, n, out=out, times_out=times_out)

    # -- internals ----------------------------------------------------------------------
    def _check_n(self, n: int) -> int:
        if int(n) != n or not 1 <= n <= self.capacity:
            raise ValueError(f"'n' must be an integer in [1, {self.capacity}], got {n=}.")
        return int(n)

    def _outputs(self, n: int, out, times_out):
        shape = (self.n_chans, n)
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif out.shape != shape:
            raise ValueError(f"'out' must have shape {shape}, got {out.shape}.")
        if times_out is None:
            times_out = np.empty(n)
        elif times_out.shape != (n,):
            raise ValueError(f"'times_out' must have shape {(n,)}, got {times_out.shape}.")
        return out, times_out

    def _check_available(self, begin: int) -> None:
        oldest = self._reserved - self.capacity
        if begin < oldest:
            raise RuntimeError(
                f"samples from {begin} on were overwritten: the buffer of {self.capacity} "
                f"samples now starts at {max(oldest, 0)}."
            )

    def _copy(self, stop: int, n: int, data: np.ndarray, times: np.ndarray) -> None:
        begin, cap = stop - n, self.capacity
        self._check_available(begin)
        start = begin % cap
        first = min(n, cap - start)
        data[:, :first] = self._data[:, start : start + first]
        times[:first] = self._times[start : start + first]
        if first < n:
            data[:, first:] = self._data[:, : n - first]
            times[first:] = self._times[: n - first]
        self._check_available(begin)  # validate: nothing we copied was being overwritten


class TorchRingMirror:
    """A torch copy of a :class:`RingBuffer` on a device, updated chunk by chunk.

    Registers itself in ``ring.on_write``: each chunk is copied host → device as it
    arrives, on CUDA through a pinned staging buffer on a side stream, so a window is
    already on the device when a volume is due.

    Parameters
    ----------
    ring : RingBuffer
        The host ring to mirror (its current content is copied on creation).
    device : str | torch.device
        Where the mirror lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    dtype : torch.dtype | None
        Element type on the device; the ring's dtype by default.
    """

    def __init__(self, ring: RingBuffer, *, device="cpu", dtype=None) -> None:
        import torch

        self.ring = ring
        self.device = torch.device(device)
        host_dtype = torch.from_numpy(ring._data[:, :0]).dtype
        self.dtype = host_dtype if dtype is None else dtype
        self.data = torch.zeros((ring.n_chans, ring.capacity), dtype=self.dtype, device=self.device)
        self._cuda = self.device.type == "cuda"
        if self._cuda:
            self._stream = torch.cuda.Stream(device=self.device)
            self._event = torch.cuda.Event()
            # pinned once for chunks up to 1/16 of the ring: pinning later, mid-stream, is a
            # cudaHostAlloc of milliseconds
            size = ring.n_chans * max(1, ring.capacity // 16)
            self._staging = torch.empty(size, dtype=host_dtype).pin_memory()
            # CUDA loads a kernel's module on its first use (a few ms): use both window
            # paths (one slice, two slices joined on a wrap) before the stream does
            torch.cat((self.data[:, :1], self.data[:, -1:]), dim=1)
            self.data[:, :1].clone()
            torch.cuda.synchronize(self.device)
        with ring._write_lock:  # no chunk lands between the bulk copy and the hook
            n = min(ring.n_written, ring.capacity)
            if n:
                self._copy(0, ring.capacity)
            self._n_written = ring.n_written
            ring.on_write.append(self._on_write)

    @property
    def n_written(self) -> int:
        """Samples copied to the device so far (absolute count, as in the ring)."""
        return self._n_written

    def close(self) -> None:
        """Stop mirroring (unregister from the ring)."""
        if self._on_write in self.ring.on_write:
            self.ring.on_write.remove(self._on_write)

    def window(self, n: int, *, stop: int | None = None):
        """The samples ``[stop - n, stop)`` on the device, in time order.

        Parameters
        ----------
        n : int
            Number of samples (``<= capacity``).
        stop : int | None
            One past the last sample as an absolute count; the newest mirrored sample
            by default.

        Returns
        -------
        window : torch.Tensor of shape (n_chans, n)
            A new tensor (one slice copy, or ``torch.cat`` of two slices on a wrap).
        """
        import torch

        ring = self.ring
        n = ring._check_n(n)
        nw = self._n_written
        stop = nw if stop is None else int(stop)
        if stop > nw or stop < n:
            raise RuntimeError(f"samples [{stop - n}, {stop}) requested, {nw} mirrored so far.")
        begin, cap = stop - n, ring.capacity
        ring._check_available(begin)
        if self._cuda:
            torch.cuda.current_stream(self.device).wait_event(self._event)
        start = begin % cap
        first = min(n, cap - start)
        if first == n:
            out = self.data[:, start : start + n].clone()
        else:
            out = torch.cat((self.data[:, start:], self.data[:, : n - first]), dim=1)
        ring._check_available(begin)
        return out

    def _on_write(self, start: int, n: int) -> None:
        cap = self.ring.capacity
        first = min(n, cap - start)
        self._copy(start, first)
        if first < n:
            self._copy(0, n - first)
        self._n_written = self.ring._n_written

    def _copy(self, start: int, n: int) -> None:
        import torch

        host = torch.from_numpy(self.ring._data[:, start : start + n])
        if not self._cuda:
            self.data[:, start : start + n].copy_(host)
            return
        self._event.synchronize()  # the previous copy no longer reads the staging buffer
        size = host.numel()
        if self._staging.numel() < size:
            self._staging = torch.empty(max(size, 2 * self._staging.numel()), dtype=host.dtype)
            self._staging = self._staging.pin_memory()
        staged = self._staging[:size].view(host.shape)  # contiguous: one DMA transfer
        staged.copy_(host)
        with torch.cuda.stream(self._stream):
            self.data[:, start : start + n].copy_(staged, non_blocking=True)
            self._event.record(self._stream)
