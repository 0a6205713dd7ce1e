"""Task events as the scanner sees them: HRF-convolved regressors, offline and live alike.

What the task alone predicts of a volume is each trial type's events convolved with the
canonical HRF (SPM's), sampled at the middle of the volume's acquisition. The ``events``
baseline regresses them on the training subjects; a :class:`TaskReadout` stores weights
fitted beside a model (``rt-eeg2fmri calibrate --events``), so a checkpoint predicts
``model(EEG) + regressors @ weights`` — offline from a run's events table, live from a
stimulus marker stream (:class:`LiveEvents`). Both go through :func:`regressors`, on the
same grid of :data:`DT` seconds counted from the recording's first EEG sample, so the
streamed task part equals the offline one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ._logging import logger
from .data.eeg_io import marker_name  # how markers are compared: "Stimulus/S  1" → "s1"
from .hrf import events_to_regressor, spm_hrf

#: s, the grid the event regressors are built on before sampling at volume times
DT = 0.1
_HRF = spm_hrf(DT)


def regressors(onsets, durations, kinds, k: int, times, *, origin: float = 0.0) -> np.ndarray:
    """HRF-convolved event regressors of ``k`` trial types at ``times``, shape (n, k).

    Parameters
    ----------
    onsets, durations : arrays of shape (n_events,)
        Seconds, on the clock of ``times``.
    kinds : int array of shape (n_events,)
        Each event's trial type, ``0 ≤ kind < k`` (others are left out).
    times : array of shape (n,)
        Where the regressors are sampled (the middle of each volume's acquisition).
    origin : float
        The time of the grid's sample 0 (the recording's first EEG sample). Only the
        events of the last 32 s before ``min(times)`` on matter, so a live caller passes the
        recent ones and gets the values the whole run's events give.

    A sustained rate of one event per second gives a plateau of 1.
    """
    times = np.asarray(times, float) - origin
    if times.size == 0 or k == 0:
        return np.zeros((times.size, k))
    onsets = np.asarray(onsets, float) - origin
    durations = np.broadcast_to(np.asarray(durations, float), onsets.shape)
    kinds = np.asarray(kinds, int)
    first = int(np.floor(times.min() / DT)) - _HRF.size - 1
    n = int(np.ceil(times.max() / DT)) + 2 - first
    # the convolution at the two grid points around each time only: conv[i] is the HRF
    # (reversed) against the regressor's last len(HRF) samples up to i
    pos = times / DT - first
    left = np.clip(np.floor(pos).astype(int), 0, n - 2)
    frac = pos - left
    at = np.concatenate([left, left + 1])
    kernel = _HRF[::-1] / DT  # a sustained 1/s event rate → plateau of 1
    reg = np.zeros((k, _HRF.size - 1 + n))  # each type's boxcars, after len(HRF) - 1 zeros
    for j in np.unique(kinds[(kinds >= 0) & (kinds < k)]):
        sel = kinds == j
        reg[j, _HRF.size - 1 :] = events_to_regressor(
            onsets[sel], durations[sel], sfreq=1 / DT, n_times=n, first=first
        )
    conv = np.lib.stride_tricks.sliding_window_view(reg, _HRF.size, axis=1)[:, at] @ kernel
    return (conv[:, : times.size] * (1 - frac) + conv[:, times.size :] * frac).T


def event_kinds(events, trial_types) -> np.ndarray:
    """Each row's index in ``trial_types`` (−1 for a trial type not among them)."""
    index = {t: i for i, t in enumerate(trial_types)}
    return np.array([index.get(str(t), -1) for t in events["trial_type"]], int)


def table_regressors(events, trial_types, times) -> np.ndarray:
    """:func:`regressors` of an events table (``onset``, ``duration``, ``trial_type``)."""
    return regressors(
        events["onset"].to_numpy(float),
        events["duration"].to_numpy(float),
        event_kinds(events, trial_types),
        len(trial_types),
        times,
    )


@dataclass
class TaskReadout:
    """Per-voxel weights of the task's event regressors, beside a model's prediction.

    Attributes
    ----------
    trial_types : list of str
        As the calibration data's events tables name them.
    codes : list of list of str
        The marker codes each trial type was recorded with (``events.tsv``'s ``value``,
        e.g. ``["S  1"]``): a live marker may name either.
    durations : list of float
        Each trial type's median duration (s): live markers carry none.
    weights : array of shape (n_types, n_voxels), float32
    """

    trial_types: list
    codes: list
    durations: list
    weights: np.ndarray

    def __post_init__(self) -> None:
        self.trial_types = [str(t) for t in self.trial_types]
        k = len(self.trial_types)
        if k == 0 or len(set(self.trial_types)) != k:
            raise ValueError(f"a task readout needs distinct trial types, got {self.trial_types}.")
        self.codes = [[str(c) for c in cs] for cs in self.codes]
        self.durations = [float(d) for d in self.durations]
        if len(self.codes) != k or len(self.durations) != k:
            raise ValueError(
                f"a task readout has {k} trial types but {len(self.codes)} code lists and "
                f"{len(self.durations)} durations."
            )
        if not all(np.isfinite(d) and d >= 0 for d in self.durations):
            raise ValueError(f"task durations must be finite and ≥ 0, got {self.durations}.")
        self.weights = np.asarray(self.weights, np.float32)
        if self.weights.ndim != 2 or self.weights.shape[0] != k:
            raise ValueError(
                f"task weights must have shape ({k}, n_voxels), got {self.weights.shape}."
            )
        if not np.isfinite(self.weights).all():
            raise ValueError("task weights must be finite.")

    @property
    def n_voxels(self) -> int:
        """Voxels weighed (the model's)."""
        return int(self.weights.shape[1])

    def describe(self) -> str:
        """``2 trial types: auditory_standard, auditory_target``."""
        n = len(self.trial_types)
        return f"{n} trial type{'s' if n > 1 else ''}: {', '.join(self.trial_types)}"

    def to_dict(self) -> dict:
        """Plain values and one tensor, as a checkpoint stores them."""
        import torch

        return {
            "trial_types": list(self.trial_types),
            "codes": [list(c) for c in self.codes],
            "durations": list(self.durations),
            "weights": torch.from_numpy(self.weights.copy()),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TaskReadout:
        """The readout :meth:`to_dict` stored."""
        w = d["weights"]
        w = w.cpu().numpy() if hasattr(w, "cpu") else np.asarray(w)
        return cls(d["trial_types"], d["codes"], d["durations"], w)

    def label_map(self, event_map: str | None = None) -> tuple[dict[str, int], dict[str, list]]:
        """``({marker key: trial type index}, {marker key: trial types})``.

        A marker names a trial type by its name or by one of its codes. The second dict
        holds the codes the calibration data used for several trial types (two tasks, one
        code each), which name none until ``event_map``
        (``"S1=auditory_standard,S2=auditory_target"``) says what they mean.

        Raises
        ------
        ValueError
            For an ``event_map`` entry that names no trial type.
        """
        out: dict[str, int] = {}
        shared: dict[str, set] = {}
        for i, (name, codes) in enumerate(zip(self.trial_types, self.codes, strict=True)):
            for key in {marker_name(name), *map(marker_name, codes)}:
                if key in out and out[key] != i:
                    shared.setdefault(key, {self.trial_types[out[key]]}).add(name)
                out.setdefault(key, i)
        for item in filter(None, (p.strip() for p in (event_map or "").split(","))):
            code, sep, name = (s.strip() for s in item.partition("="))
            if not sep or not code or name not in self.trial_types:
                raise ValueError(
                    f"--event-map: {item!r} must be MARKER=TRIAL_TYPE with a trial type of "
                    f"the checkpoint's task readout ({', '.join(self.trial_types)})."
                )
            out[marker_name(code)] = self.trial_types.index(name)
            shared.pop(marker_name(code), None)
        for key in shared:
            del out[key]
        return out, {key: sorted(names) for key, names in shared.items()}

    def ambiguity(self, key: str, names: list) -> str:
        """Why the marker ``key`` names no trial type, and the ``--event-map`` that settles it."""
        return (
            f"the marker {key!r} stands for {len(names)} trial types of the checkpoint's task "
            f"readout ({', '.join(names)}); say which this session runs with --event-map "
            f"{key.upper()}={names[0]}"
        )


class LiveEvents:
    """A task's events as they are heard, and the task part of a volume at a time.

    Thread-safe: a marker inlet's thread adds, the engine reads. Markers that name no trial
    type are counted in ``unknown`` (the first few kept in ``unknown_labels``).
    """

    def __init__(self, readout: TaskReadout, *, t_r: float, event_map: str | None = None) -> None:
        self.readout = readout
        self.t_r = float(t_r)
        #: s before a volume's time from which an event can reach it (the HRF, a boxcar)
        self.reach = _HRF.size * DT + max(readout.durations, default=0.0) + 2 * DT
        self.keys, self.shared = readout.label_map(event_map)
        for key, names in sorted(self.shared.items()):
            logger.warning(
                "Task events: %s; until then it is left out.", readout.ambiguity(key, names)
            )
        self._lock = threading.Lock()
        self._onsets: list[float] = []
        self._kinds: list[int] = []
        self.origin: float | None = None  # the EEG's first sample, set by the engine
        self.heard = 0
        self.unknown = 0
        self.unknown_labels: list[str] = []

    def add(self, t: float, label: str) -> bool:
        """Record the marker ``label`` at ``t`` (s, the EEG's clock); whether it is an event."""
        key = marker_name(label)
        kind = self.keys.get(key)
        with self._lock:
            if kind is None:
                self.unknown += 1
                if len(self.unknown_labels) < 5 and label not in self.unknown_labels:
                    self.unknown_labels.append(label)
                    names = self.shared.get(key)
                    why = (
                        self.readout.ambiguity(key, names)
                        if names
                        else f"it names no trial type of the checkpoint's task readout "
                        f"({', '.join(self.readout.trial_types)})"
                    )
                    logger.warning("The marker %r is left out: %s.", label, why)
                return False
            self._onsets.append(float(t))
            self._kinds.append(kind)
            self.heard += 1
            self._forget(float(t))
            return True

    def _forget(self, now: float) -> None:
        """Drop events too old to reach a volume (one up to a minute behind the newest marker)."""
        horizon = now - self.reach - 60.0
        if self._onsets and self._onsets[0] < horizon:
            keep = next(i for i, t in enumerate(self._onsets) if t >= horizon)
            del self._onsets[:keep], self._kinds[:keep]

    def volume(self, t_end: float) -> np.ndarray:
        """The task part of the volume whose acquisition ends at ``t_end``: :meth:`at` its middle."""
        return self.at(t_end - self.t_r / 2)

    def at(self, t: float) -> np.ndarray:
        """The task part of a volume sampled at ``t`` (mid-acquisition), shape (n_voxels,)."""
        with self._lock:  # the events that can reach t (and those just after it)
            onsets, kinds = np.array(self._onsets), np.array(self._kinds, int)
        near = onsets >= t - self.reach
        onsets, kinds = onsets[near], kinds[near]
        durations = np.asarray(self.readout.durations)[kinds] if kinds.size else np.zeros(0)
        origin = 0.0 if self.origin is None else self.origin
        x = regressors(onsets, durations, kinds, len(self.readout.trial_types), [t], origin=origin)
        return x[0].astype(np.float32) @ self.readout.weights
