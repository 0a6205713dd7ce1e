"""The viewer's time-series bookkeeping and status text, free of Qt.

- :class:`VolumeHistory`: the last ``capacity`` volumes (in-mask values) in a ring with a
  moving index, so the time course of any voxel is one small gather;
- :class:`PairedCorrelation`: predicted and measured volumes paired by timestamp, with a
  running voxelwise Pearson correlation (five running sums per voxel);
- :class:`TraceBuffer`: the last seconds of EEG for the trace strip;
- :class:`StreamStatus` and :func:`status_text`: counts, latency and health of a stream.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


class VolumeHistory:
    """The last ``capacity`` volumes of a stream, as in-mask vectors.

    Parameters
    ----------
    capacity : int
        Volumes kept.
    columns : array of shape (n_voxels_total,), int
        Flat indices (into a volume's C-order sample) of the voxels kept.
    """

    def __init__(self, capacity: int, columns) -> None:
        capacity = int(capacity)
        if capacity < 2:
            raise ValueError(f"'history' must be at least 2 volumes, got {capacity}.")
        self.columns = np.asarray(columns, dtype=np.intp)
        self.capacity = capacity
        self.data = np.zeros((capacity, self.columns.size), np.float32)
        self.times = np.full(capacity, np.nan)
        self.n_written = 0

    def __len__(self) -> int:
        return min(self.n_written, self.capacity)

    def push(self, sample, timestamp: float) -> np.ndarray:
        """Store one volume's sample (flat, C order); return its stored in-mask row."""
        row = self.n_written % self.capacity
        np.take(np.asarray(sample).reshape(-1), self.columns, out=self.data[row])
        self.times[row] = float(timestamp)
        self.n_written += 1
        return self.data[row]

    def series(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times, values)`` of one kept voxel, oldest first.

        Returns
        -------
        times : array of shape (n,), float64
        values : array of shape (n,), float32
        """
        n = len(self)
        if n == 0:
            return np.zeros(0), np.zeros(0, np.float32)
        order = self._order()
        return self.times[order], self.data[order, int(column)]

    def region_series(self, columns) -> tuple[np.ndarray, np.ndarray]:
        """``(times, mean over columns)`` of a region's kept voxels, oldest first."""
        if len(self) == 0:
            return np.zeros(0), np.zeros(0, np.float32)
        order = self._order()
        return self.times[order], self.data[np.ix_(order, np.asarray(columns))].mean(axis=1)

    def _order(self) -> np.ndarray:
        n = len(self)
        start = self.n_written % self.capacity if self.n_written > self.capacity else 0
        return (np.arange(n) + start) % self.capacity


class PairedCorrelation:
    """Pair predicted and measured volumes by timestamp; running voxelwise Pearson r.

    Parameters
    ----------
    n_voxels : int
        Length of the vectors added.
    tolerance : float
        Largest timestamp difference (s) of a pair.
    max_pending : int
        Unpaired vectors kept per side (oldest dropped first).
    """

    KINDS = ("prediction", "truth")

    def __init__(self, n_voxels: int, *, tolerance: float, max_pending: int = 16) -> None:
        if not tolerance > 0:
            raise ValueError(f"'tolerance' must be positive, got {tolerance=}.")
        self.tolerance = float(tolerance)
        self.max_pending = int(max_pending)
        self.n = 0
        n = int(n_voxels)
        self._sx, self._sy, self._sxx, self._syy, self._sxy = (np.zeros(n) for _ in range(5))
        self._pending: dict[str, OrderedDict] = {k: OrderedDict() for k in self.KINDS}
        self.pairs: list[tuple[float, float]] = []  # (prediction time, truth time)

    def add(self, kind: str, timestamp: float, values) -> bool:
        """Add one volume's vector; return whether it completed a pair.

        Parameters
        ----------
        kind : ``"prediction"`` | ``"truth"``
        timestamp : float
        values : array of shape (n_voxels,)
        """
        if kind not in self._pending:
            raise ValueError(f"'kind' must be 'prediction' or 'truth', got {kind!r}.")
        other = self._pending["truth" if kind == "prediction" else "prediction"]
        best = None
        for t in other:
            if abs(t - timestamp) <= self.tolerance and (
                best is None or abs(t - timestamp) < abs(best - timestamp)
            ):
                best = t
        if best is None:
            mine = self._pending[kind]
            mine[float(timestamp)] = np.array(values, dtype=np.float32, copy=True)
            while len(mine) > self.max_pending:
                mine.popitem(last=False)
            return False
        partner = other.pop(best)
        x, y = (values, partner) if kind == "prediction" else (partner, values)
        self._update(np.asarray(x, np.float64), np.asarray(y, np.float64))
        self.pairs.append((timestamp, best) if kind == "prediction" else (best, timestamp))
        # anything older than this pair can no longer be paired
        for pending in self._pending.values():
            for t in [t for t in pending if t < min(timestamp, best) - self.tolerance]:
                del pending[t]
        return True

    def _update(self, x, y) -> None:
        self.n += 1
        self._sx += x
        self._sy += y
        self._sxx += x * x
        self._syy += y * y
        self._sxy += x * y

    def r(self, column=None) -> np.ndarray | float:
        """Pearson r over all pairs so far, per voxel (or for one column).

        NaN where fewer than 3 pairs or a constant series.
        """
        sel = slice(None) if column is None else int(column)
        n = self.n
        if n < 3:
            return float("nan") if column is not None else np.full(self._sx.size, np.nan)
        cov = self._sxy[sel] - self._sx[sel] * self._sy[sel] / n
        vx = self._sxx[sel] - self._sx[sel] ** 2 / n
        vy = self._syy[sel] - self._sy[sel] ** 2 / n
        with np.errstate(invalid="ignore", divide="ignore"):
            den = np.sqrt(vx * vy)
            r = np.where(den > 1e-12 * max(1.0, n), cov / np.where(den > 0, den, 1.0), np.nan)
        return float(r) if column is not None else r

    def std(self, kind: str) -> np.ndarray:
        """Per-voxel standard deviation of one side over the pairs so far, shape (n_voxels,)."""
        if kind not in self._pending:
            raise ValueError(f"'kind' must be 'prediction' or 'truth', got {kind!r}.")
        s, ss = (self._sx, self._sxx) if kind == "prediction" else (self._sy, self._syy)
        if self.n < 2:
            return np.zeros(s.size)
        return np.sqrt(np.maximum(ss / self.n - (s / self.n) ** 2, 0.0))

    def summary(self) -> dict:
        """Mean, median and 90th percentile of voxelwise r (finite voxels), number of pairs."""
        r = self.r()
        fin = r[np.isfinite(r)]
        stat = lambda f: float(f(fin)) if fin.size else float("nan")  # noqa: E731
        return {
            "n_pairs": self.n,
            "n_voxels": int(fin.size),
            "r_mean": stat(np.mean),
            "r_median": stat(np.median),
            "r_p90": stat(lambda a: np.percentile(a, 90)),
        }


class TraceBuffer:
    """The last ``seconds`` of a multichannel signal (ring with a moving index).

    Parameters
    ----------
    n_chans : int
    sfreq : float
        Sampling rate in Hz.
    seconds : float
        Span kept.
    """

    def __init__(self, n_chans: int, sfreq: float, seconds: float = 10.0) -> None:
        if not sfreq > 0:
            raise ValueError(f"'sfreq' must be positive, got {sfreq=}.")
        self.sfreq = float(sfreq)
        self.capacity = max(2, round(seconds * self.sfreq))
        self.data = np.zeros((int(n_chans), self.capacity), np.float32)
        self.times = np.full(self.capacity, np.nan)
        self.n_written = 0

    def write(self, chunk, timestamps) -> None:
        """Append a chunk.

        Parameters
        ----------
        chunk : array of shape (n_samples, n_chans)
            As LSL delivers it.
        timestamps : array of shape (n_samples,)
        """
        chunk = np.asarray(chunk)
        n = chunk.shape[0]
        if n == 0:
            return
        if n > self.capacity:
            chunk, timestamps, n = (
                chunk[-self.capacity :],
                timestamps[-self.capacity :],
                self.capacity,
            )
        start = self.n_written % self.capacity
        first = min(n, self.capacity - start)
        self.data[:, start : start + first] = chunk[:first].T
        self.times[start : start + first] = timestamps[:first]
        if first < n:
            self.data[:, : n - first] = chunk[first:].T
            self.times[: n - first] = timestamps[first:]
        self.n_written += n

    def view(self, *, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """``(times, data)`` oldest first, decimated to at most ``max_points`` samples.

        Returns
        -------
        times : array of shape (n,)
        data : array of shape (n_chans, n)
        """
        n = min(self.n_written, self.capacity)
        start = self.n_written % self.capacity if self.n_written > self.capacity else 0
        step = max(1, -(-n // max(1, int(max_points))))
        order = (np.arange(0, n, step) + start) % self.capacity
        return self.times[order], self.data[:, order]


STATES = ("searching", "connecting", "live", "stalled", "lost")


@dataclass
class StreamStatus:
    """What the status bar says about one stream.

    Attributes
    ----------
    label : str
        ``prediction``, ``truth`` or ``EEG``.
    name : str | None
        The LSL stream's name once found.
    state : str
        ``searching`` (not found yet), ``connecting``, ``live``, ``stalled`` (connected,
        no data for a while) or ``lost`` (the sender went away; resolving again).
    n_received : int
        Volumes (or samples, for EEG) received.
    last_latency : float
        ``local_clock() - timestamp`` of the last volume, in s (NaN before any).
    reconnects : int
        Times the stream came back after being lost.
    error : str | None
        Why the stream cannot be used (e.g. a grid that differs from the prediction's).
    not_clean : int | None
        Volumes whose EEG window the live in-scanner corrections did not flag clean (a
        volume stream with a ``Clean`` flag; ``None`` without one).
    last_clean : bool | None
        Whether the last volume's window was flagged clean (``None`` without the flag).
    """

    label: str
    name: str | None = None
    state: str = "searching"
    n_received: int = 0
    last_latency: float = float("nan")
    reconnects: int = 0
    error: str | None = None
    not_clean: int | None = None
    last_clean: bool | None = None
    since: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"'state' must be one of {', '.join(STATES)}, got {self.state!r}.")

    def text(self) -> str:
        """One phrase, e.g. ``prediction 'x': 12 volumes, latency 8.1 ms, live``."""
        name = f" '{self.name}'" if self.name else ""
        if self.error:
            return f"{self.label}{name}: {self.error}"
        unit = "samples" if self.label == "EEG" else "volumes"
        parts = [f"{self.n_received} {unit}"]
        if self.not_clean:
            last = " (this one too)" if self.last_clean is False else ""
            parts.append(f"{self.not_clean} from EEG not flagged clean{last}")
        if self.label != "EEG" and np.isfinite(self.last_latency):
            parts.append(f"latency {self.last_latency * 1e3:.1f} ms")
        state = self.state
        if self.reconnects:
            state += f" ({self.reconnects} reconnect{'s' * (self.reconnects > 1)})"
        parts.append(state)
        return f"{self.label}{name}: " + ", ".join(parts)


def status_text(statuses) -> str:
    """The status bar line: each stream's phrase joined with `` | ``."""
    return " | ".join(s.text() for s in statuses)


def alert_text(statuses, *, now: float | None = None) -> str | None:
    """The on-screen message while a stream is down (``None`` when all is well).

    A stream that was never found is reported as waited for; one that was live and
    stopped as lost or stalled, with for how long.
    """
    now = time.monotonic() if now is None else now
    lines = []
    for s in statuses:
        if s.error:
            lines.append(f"{s.label}: {s.error}")
            continue
        waited = now - s.since
        name = f" '{s.name}'" if s.name else ""
        if s.state == "lost":
            lines.append(
                f"{s.label} stream{name} lost {waited:.0f} s ago — waiting for it to return…"
            )
        elif s.state == "stalled":
            lines.append(f"{s.label} stream{name}: no data for {waited:.0f} s")
        elif s.state == "searching" and s.label == "prediction":
            lines.append(f"waiting for the prediction stream{name}…")
        elif s.state == "connecting" and s.label == "prediction":
            lines.append(f"prediction stream{name} connected — waiting for its first volume…")
    return "\n".join(lines) or None


__all__ = [
    "PairedCorrelation",
    "StreamStatus",
    "TraceBuffer",
    "VolumeHistory",
    "alert_text",
    "status_text",
]
