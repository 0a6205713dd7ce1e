"""``Session``: one run of simultaneous EEG-fMRI recording, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._checks import check_ch_names, check_positive

EVENT_COLUMNS = ("onset", "duration", "trial_type")


def empty_events() -> pd.DataFrame:
    """An events table with the BIDS columns and no rows."""
    return pd.DataFrame(
        {
            "onset": np.zeros(0),
            "duration": np.zeros(0),
            "trial_type": pd.Series([], dtype=object),
        }
    )


def bids_name(subject: str, task: str, run: str | None = None, session: str | None = None) -> str:
    """BIDS-style run identifier, e.g. ``sub-01_ses-2_task-oddball_run-1``."""
    parts = [f"sub-{subject}"]
    if session:
        parts.append(f"ses-{session}")
    parts.append(f"task-{task}")
    if run:
        parts.append(f"run-{run}")
    return "_".join(parts)


@dataclass(eq=False)
class Session:
    """One run of simultaneous EEG-fMRI.

    Parameters
    ----------
    eeg : array of shape (n_chans, n_times)
        EEG samples, stored as float32, in ``eeg_unit``.
    sfreq : float
        EEG sampling rate in Hz.
    ch_names : list of str
        EEG channel labels, unique (case-insensitive).
    bold : array of shape (n_x, n_y, n_z, n_volumes) | None
        BOLD series, float32; ``None`` for an EEG-only session (replay of a plain EEG file).
    affine : array of shape (4, 4) | None
        Voxel → world (mm) transform of ``bold``.
    t_r : float | None
        Repetition time in seconds.
    volume_onsets : array of shape (n_volumes,) | None
        Acquisition onset of each volume, in seconds on the EEG clock (0 = first EEG
        sample); strictly increasing.
    mask : array of shape (n_x, n_y, n_z) | None
        Brain mask (bool). ``None`` means "decide later" (the grid's MNI mask).
    events : DataFrame | None
        Columns ``onset``, ``duration`` (s, EEG clock) and ``trial_type``.
    subject, task, run, session : str | None
        BIDS-style identifiers (without ``sub-`` etc. prefixes).
    eeg_unit : str
        Unit of ``eeg`` (``"V"`` as in MNE).
    source : dict
        Where the data came from (``{"eeg": path, "bold": path}``); used in error messages.
    positions : dict of str to array of shape (3,) | None
        Electrode positions of the EEG channels (e.g. a BIDS ``electrodes.tsv``), in the
        recording's own frame and units; ``None``: the 10-05 positions of the names.
    bad_spans : array of shape (n_spans, 2) | None
        ``[start, stop)`` in seconds on the EEG clock of spans annotated bad (MNE's
        ``BAD_*``); windows that overlap one are left out of training and scoring.
    ch_types : list of str | None
        The EEG rows' channel types as an LSL stream types them (``EEG``, ``ECG``), for a
        replay to publish; ``None``: guessed from the labels.
    stim : dict of str to array of shape (n_times,) | None
        Trigger channels (MNE's ``stim`` type: the scanner's volume triggers, stimulus
        codes) in their own units, never model input; a replay publishes them beside the
        EEG, so a live ``--trigger eeg:CHANNEL`` finds them.
    stim_units : dict of str to str | None
        The unit of each ``stim`` channel that holds a voltage (``"V"`` for an analog
        trigger lead MNE reads in volts), as a replay publishes it; a channel not named
        holds codes (published with unit ``"none"``).
    """

    eeg: np.ndarray
    sfreq: float
    ch_names: list[str]
    bold: np.ndarray | None = None
    affine: np.ndarray | None = None
    t_r: float | None = None
    volume_onsets: np.ndarray | None = None
    mask: np.ndarray | None = None
    events: pd.DataFrame | None = None
    subject: str = "01"
    task: str = "task"
    run: str | None = None
    session: str | None = None
    eeg_unit: str = "V"
    source: dict = field(default_factory=dict)
    positions: dict | None = None
    bad_spans: np.ndarray | None = None
    stim: dict | None = None
    ch_types: list | None = None
    stim_units: dict | None = None

    def __post_init__(self) -> None:
        where = self._where("eeg")
        eeg = np.asarray(self.eeg)
        if eeg.ndim != 2:
            raise ValueError(f"{where}: EEG must be 2-D (n_chans, n_times), got shape {eeg.shape}.")
        self.eeg = np.ascontiguousarray(eeg, dtype=np.float32)
        self.sfreq = check_positive(self.sfreq, "sfreq")
        self.ch_names = check_ch_names(self.ch_names, source=f"{where}: ch_names")
        if len(self.ch_names) != self.eeg.shape[0]:
            raise ValueError(
                f"{where}: {len(self.ch_names)} channel names for {self.eeg.shape[0]} EEG rows."
            )
        bad = ~np.isfinite(self.eeg)
        if bad.any():
            ch, t = np.argwhere(bad)[0]
            raise ValueError(
                f"{where}: EEG contains {int(bad.sum())} NaN/Inf samples (first in channel "
                f"{self.ch_names[ch]!r} at {t / self.sfreq:.3f} s)."
            )
        self.events = _check_events(self.events, where=self._where("events"))
        if self.stim:
            self.stim = self._check_stim(self.stim)
        extra = set(self.stim_units or ()) - set(self.stim or ())
        if extra:
            raise ValueError(
                f"{where}: 'stim_units' names {sorted(extra)}, which are not stim channels "
                f"({list(self.stim or ())})."
            )
        if self.ch_types is not None and len(self.ch_types) != self.n_chans:
            raise ValueError(
                f"{where}: {len(self.ch_types)} channel types for {self.n_chans} EEG rows."
            )
        if self.bad_spans is not None:
            spans = np.asarray(self.bad_spans, dtype=float).reshape(-1, 2)
            if not np.isfinite(spans).all() or (spans[:, 1] < spans[:, 0]).any():
                raise ValueError(
                    f"{where}: bad spans must be finite [start, stop) pairs with stop >= "
                    f"start, got {spans.tolist()[:3]}."
                )
            self.bad_spans = spans
        if self.bold is not None:
            self._check_bold()

    # -- validation -----------------------------------------------------------------
    def _where(self, kind: str) -> str:
        path = self.source.get(kind) or self.source.get("eeg")
        ident = f"sub-{self.subject} task-{self.task}" + (f" run-{self.run}" if self.run else "")
        return f"{ident} ('{path}')" if path else ident

    def _check_stim(self, stim: dict) -> dict:
        where = self._where("eeg")
        names = check_ch_names([*self.ch_names, *stim], source=f"{where}: EEG and stim channels")
        out = {}
        for name in names[self.n_chans :]:
            x = np.asarray(stim[name], dtype=np.float32)  # exact for 24-bit codes
            if x.shape != (self.n_times,):
                raise ValueError(
                    f"{where}: stim channel {name!r} has shape {x.shape}, expected "
                    f"({self.n_times},) (one value per EEG sample)."
                )
            out[name] = x
        return out

    def _check_bold(self) -> None:
        where = self._where("bold")
        bold = np.asarray(self.bold)
        if bold.ndim != 4:
            raise ValueError(
                f"{where}: BOLD must be 4-D (x, y, z, volumes), got shape {bold.shape}."
            )
        self.bold = np.asarray(bold, dtype=np.float32)
        if self.affine is None:
            raise ValueError(f"{where}: 'affine' is required with BOLD.")
        self.affine = np.asarray(self.affine, dtype=float)
        if self.affine.shape != (4, 4):
            raise ValueError(f"{where}: 'affine' must be 4 × 4, got shape {self.affine.shape}.")
        if self.t_r is None:
            raise ValueError(f"{where}: 'RepetitionTime' (t_r) is required with BOLD.")
        self.t_r = check_positive(self.t_r, "t_r")
        if not np.isfinite(self.bold).all():
            raise ValueError(f"{where}: BOLD contains NaN/Inf values.")
        if not self.bold.any():
            raise ValueError(f"{where}: the BOLD series is all zeros (an empty or failed export).")
        n_vol = self.bold.shape[3]
        if self.volume_onsets is None:
            self.volume_onsets = np.arange(n_vol) * self.t_r
        onsets = np.asarray(self.volume_onsets, dtype=float)
        if onsets.shape != (n_vol,):
            raise ValueError(
                f"{where}: {onsets.size} volume onsets (scanner markers) for {n_vol} volumes."
            )
        if n_vol > 1 and not np.all(np.diff(onsets) > 0):
            raise ValueError(f"{where}: volume onsets must be strictly increasing.")
        if n_vol > 1:
            spacing = float(np.median(np.diff(onsets)))
            if abs(spacing - self.t_r) > 0.05 * self.t_r:
                raise ValueError(
                    f"{where}: RepetitionTime is {self.t_r} s but the scanner markers are "
                    f"{spacing:.4f} s apart (mismatched TR)."
                )
        self.volume_onsets = onsets
        duration = self.n_times / self.sfreq
        if onsets[0] < 0 or onsets[-1] + self.t_r > duration + 0.5 / self.sfreq:
            raise ValueError(
                f"{self._where('eeg')}: EEG covers 0–{duration:.3f} s but the BOLD volumes span "
                f"{onsets[0]:.3f}–{onsets[-1] + self.t_r:.3f} s (EEG shorter than the BOLD run)."
            )
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.shape != self.bold.shape[:3]:
                raise ValueError(
                    f"{where}: mask shape {mask.shape} differs from BOLD grid {self.bold.shape[:3]}."
                )
            self.mask = mask

    # -- convenience ----------------------------------------------------------------
    @property
    def n_chans(self) -> int:
        """Number of EEG channels."""
        return self.eeg.shape[0]

    @property
    def n_times(self) -> int:
        """Number of EEG samples."""
        return self.eeg.shape[1]

    @property
    def n_volumes(self) -> int:
        """Number of BOLD volumes (0 without BOLD)."""
        return 0 if self.bold is None else self.bold.shape[3]

    @property
    def grid_shape(self) -> tuple[int, int, int] | None:
        """Spatial shape of the BOLD grid."""
        return None if self.bold is None else tuple(self.bold.shape[:3])

    @property
    def name(self) -> str:
        """BIDS-style identifier, e.g. ``sub-01_task-oddball_run-1``."""
        return bids_name(self.subject, self.task, self.run, self.session)

    def __repr__(self) -> str:
        bold = "no BOLD" if self.bold is None else f"BOLD {self.bold.shape} t_r={self.t_r}"
        return (
            f"<Session {self.name} | {self.n_chans} ch × {self.n_times} samples @ "
            f"{self.sfreq:g} Hz, {bold}, {len(self.events)} events>"
        )


def _check_events(events, *, where: str) -> pd.DataFrame:
    if events is None:
        return empty_events()
    if not isinstance(events, pd.DataFrame):
        events = pd.DataFrame(events)
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"{where}: events table lacks column(s) {missing}; has {list(events)}.")
    events = events.reset_index(drop=True)
    onsets = pd.to_numeric(events["onset"], errors="coerce").to_numpy(float)
    if not np.isfinite(onsets).all():
        raise ValueError(f"{where}: events 'onset' must be finite numbers.")
    events["onset"] = onsets
    events["duration"] = pd.to_numeric(events["duration"], errors="coerce").fillna(0.0)
    events["trial_type"] = events["trial_type"].astype(str)
    return events.sort_values("onset", kind="stable").reset_index(drop=True)
