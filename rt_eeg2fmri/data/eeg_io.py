"""EEG files through MNE: EEG-only channels in volts, stimulus events and scanner-volume markers.

Any file ``mne.io.read_raw`` reads works (BrainVision ``.vhdr``, EDF/BDF, EEGLAB ``.set``,
FIF). Scanner volume markers are annotations whose description ends with the marker
name: ``"Response/R128"`` matches ``marker="R128"`` (the last ``/``-separated token is
compared case-insensitively with spaces removed, so ``"Response/R 128"`` matches too).

Design of the EEG-only reader: :func:`read_eeg` returns a ``Session`` without BOLD whose
``volume_onsets`` holds the scanner-marker onsets (``None`` without markers) and whose
``t_r`` is their mean spacing; ``Session`` leaves both unvalidated when there is no
BOLD, so this module checks them (strictly increasing, inside the recording). The
markers themselves are not repeated in ``events``. :func:`scanner_onsets` gives the
same onsets from an already opened ``Raw`` or an ``Annotations`` object.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_ch_names, check_file
from .._logging import log_once, logger
from .session import Session, empty_events
from .triggers import TriggerChannel

EEG_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif", ".fif.gz")

# Annotations that are bookkeeping, not stimuli (MNE, BrainVision, EEGLAB, EDF).
_NOT_EVENTS = ("bad", "edge", "boundary", "new segment", "segment")

_READ_BLOCK = 2**22  # samples (all channels) read at a time: bounds the float64 copy


def marker_name(description: str) -> str:
    """Normalize an annotation description for marker matching.

    ``"Response/R128"`` → ``"r128"``, ``"Stimulus/S  1"`` → ``"s1"``: the last
    ``/``-separated token, lower-cased, with all whitespace removed.
    """
    return marker_label(description).lower()


def marker_label(description: str) -> str:
    """An annotation's marker as events name it: ``"Stimulus/S  1"`` → ``"S1"``.

    The description's last ``/``-separated token, whitespace removed (case kept).
    """
    return re.sub(r"\s+", "", str(description).rsplit("/", 1)[-1])


def _annotation_times(raw) -> np.ndarray:
    """Annotation onsets in seconds from the first sample of ``raw``."""
    ann = raw.annotations
    onset = np.asarray(ann.onset, dtype=float)
    return onset - raw.first_time if ann.orig_time is not None else onset


def bad_spans(raw) -> np.ndarray:
    """Spans annotated bad (MNE's convention: a description starting with ``bad``).

    The description's last ``/``-separated token counts, so BrainVision's
    ``Comment/BAD_uncorrected`` is bad too. Overlapping spans are merged.

    Returns
    -------
    spans : array of shape (n_spans, 2)
        ``[start, stop)`` in seconds from the first sample of ``raw``, sorted.
    """
    ann = raw.annotations
    hit = np.array([marker_name(d).startswith("bad") for d in ann.description], dtype=bool)
    if not hit.any():
        return np.zeros((0, 2))
    start = _annotation_times(raw)[hit]
    stop = start + np.asarray(ann.duration, dtype=float)[hit]
    order = np.argsort(start)
    spans = []
    for a, b in zip(start[order], stop[order], strict=True):
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return np.asarray(spans, dtype=float)


def scanner_onsets(raw_or_annotations, marker: str = "R128") -> np.ndarray:
    """Onsets of the scanner volume markers.

    Parameters
    ----------
    raw_or_annotations : mne.io.BaseRaw | mne.Annotations
        A ``Raw`` (onsets are returned relative to its first sample) or an
        ``Annotations`` object (its onsets are returned as they are).
    marker : str
        Marker name, matched on the description's last token (see :func:`marker_name`),
        or a trigger channel of the ``Raw``, ``eeg:CHANNEL[:LEVEL|:mask=BITS]``: the
        onsets are its rising edges (:mod:`~rt_eeg2fmri.data.triggers`).

    Returns
    -------
    onsets : array of shape (n_markers,)
        Seconds, sorted.
    """
    channel = TriggerChannel.parse(marker, what="'marker'")
    if channel is not None:
        if not hasattr(raw_or_annotations, "annotations"):
            raise ValueError(
                f"'marker' {marker!r} names a trigger channel, which annotations do not hold: "
                "pass the recording (Raw)."
            )
        return channel.onsets(raw_or_annotations)
    if hasattr(raw_or_annotations, "annotations"):
        times = _annotation_times(raw_or_annotations)
        desc = raw_or_annotations.annotations.description
    else:
        times = np.asarray(raw_or_annotations.onset, dtype=float)
        desc = raw_or_annotations.description
    key = marker_name(marker)
    hit = np.array([marker_name(d) == key for d in desc], dtype=bool)
    return np.sort(times[hit]) if hit.size else np.zeros(0)


def stim_picks(raw, marker: str | None = None) -> list[int]:
    """Indices of the trigger channels of ``raw``.

    MNE's stim channels, and the channel a ``marker`` spec (``eeg:CHANNEL...``) names,
    whatever its type.
    """
    import mne

    picks = list(mne.pick_types(raw.info, meg=False, stim=True, exclude=[]))
    channel = TriggerChannel.parse(marker, what="'marker'")
    if channel is not None:
        from .channels import named_column

        col, _ = named_column(raw.ch_names, channel.channel, what="trigger channel",
                              stream=f"'{raw.filenames[0]}'")  # fmt: skip
        picks = sorted({*picks, col})
    return picks


def trigger_lead_picks(raw, *, exclude=()) -> list[int]:
    """Indices of the analog trigger leads of ``raw`` (not in ``exclude``).

    Channels labelled as triggers (``TRIG``, ``TTL``, ...) that MNE reads in volts, whatever
    their type (BrainVision types a ``TRIG`` lead EEG).
    """
    from .triggers import TRIGGER_LABEL, mne_volts_per_unit

    return [
        i for i, name in enumerate(raw.ch_names)
        if i not in exclude and TRIGGER_LABEL.match(name) and mne_volts_per_unit(raw, i)
    ]  # fmt: skip


def stim_channels(raw, picks) -> tuple[dict | None, dict | None]:
    """``(stim, stim_units)`` of a :class:`Session` for the trigger channels ``picks``.

    Their samples as MNE reads them, and ``"V"`` for each that MNE reads in volts (an
    analog trigger lead), so a replay publishes it in its unit (``None``: none of either).
    """
    from .triggers import mne_volts_per_unit

    stim = {raw.ch_names[i]: raw.get_data(picks=[i])[0] for i in picks}
    units = {raw.ch_names[i]: "V" for i in picks if mne_volts_per_unit(raw, i) is not None}
    return stim or None, units or None


def ecg_picks(raw, *, exclude=(), types: dict | None = None) -> list[int]:
    """Indices of the ECG channels of ``raw`` (not in ``exclude``).

    Those MNE types ``ecg``, typed ECG/EKG in ``types`` (a BIDS ``channels.tsv``), or
    labelled ECG*/EKG*: the live pulse correction finds its lead among them.
    """
    from .channels import is_ecg_label

    types = types or {}
    kinds = raw.get_channel_types()
    return [
        i for i, name in enumerate(raw.ch_names)
        if i not in exclude and (str(types.get(name, "")).strip().upper() in ("ECG", "EKG")
                                 or kinds[i] == "ecg" or is_ecg_label(name))
    ]  # fmt: skip


def marker_hint(raw, marker: str) -> str:
    """What to try when ``raw`` has no ``marker`` onsets ("" when nothing to suggest).

    For a marker name: the stim channels, and the leads labelled as triggers (``TRIG``,
    ``TTL``, ...) that hold a voltage, with the spec to try. For a trigger-channel spec
    that finds no edge: what the channel holds, and a level within its range.
    """
    from .triggers import mne_volts_per_unit

    trigger = TriggerChannel.parse(marker, what="'marker'")
    if trigger is not None:
        from .channels import named_column

        col, name = named_column(raw.ch_names, trigger.channel, what="trigger channel",
                                 stream=f"'{raw.filenames[0]}'")  # fmt: skip
        x = raw.get_data(picks=[col])[0]
        finite = x[np.isfinite(x)]
        if not finite.size:
            return f"its trigger channel {name!r} holds no samples that are numbers."
        scale = mne_volts_per_unit(raw, col)
        held = (
            f"spans {finite.min():.3g} to {finite.max():.3g} V"
            if scale
            else f"holds the codes {np.unique(finite)[:8].tolist()}"
        )
        midway = TriggerChannel.midway(name, x, scale) if scale else None
        return f"no {trigger.describe()} on its trigger channel {name!r}, which {held}" + (
            f": try marker {midway.spec!r} (the middle of its range)." if midway else "."
        )
    stim = stim_picks(raw)
    leads = trigger_lead_picks(raw, exclude=stim)
    if not stim and not leads:
        return ""
    if stim:
        found, spec = (
            f"stim channel(s) {[raw.ch_names[i] for i in stim]}",
            f"eeg:{raw.ch_names[stim[0]]}",
        )
    else:
        name = raw.ch_names[leads[0]]
        midway = TriggerChannel.midway(name, raw.get_data(picks=[leads[0]])[0], 1.0)
        found = f"trigger lead(s) {[raw.ch_names[i] for i in leads]}"
        spec = midway.spec if midway else f"eeg:{name}:LEVEL"
    return (
        f"no '{marker}' scanner marker among its annotations, but it has {found}: if the "
        f"scanner's triggers are there, pass marker '{spec}' "
        "(eeg:CHANNEL[:LEVEL], or eeg:CHANNEL:mask=BITS for a status channel; "
        "'rt-eeg2fmri info FILE' shows which comes evenly spaced)."
    )


def annotation_events(raw, *, marker: str | None = "R128") -> pd.DataFrame:
    """Stimulus events from the annotations of ``raw`` (scanner markers and bookkeeping left out).

    Returns
    -------
    events : DataFrame
        Columns ``onset`` (s from the first sample), ``duration`` and ``trial_type`` (the
        normalized description, e.g. ``"S1"`` for ``"Stimulus/S  1"``).
    """
    ann = raw.annotations
    if not len(ann):
        return empty_events()
    times = _annotation_times(raw)
    key = marker_name(marker) if marker else None
    rows = []
    for t, dur, desc in zip(times, ann.duration, ann.description, strict=True):
        name = marker_name(desc)
        low = str(desc).strip().lower()
        if name == key or not name or low.startswith(_NOT_EVENTS) or name.startswith("bad"):
            continue
        rows.append((float(t), float(dur), marker_label(desc)))
    if not rows:
        return empty_events()
    return pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])


def _vhdr_names(path: Path) -> list[str]:
    """Channel names from a BrainVision header (MNE renames duplicates and then fails)."""
    names = []
    section = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
            continue
        if section == "[Channel Infos]" and re.match(r"Ch\d+=", line):
            names.append(line.split("=", 1)[1].split(",")[0].replace(r"\1", ","))
    return names


def open_raw(path: str | Path, *, preload: bool = False):
    """Open an EEG file with MNE.

    Parameters
    ----------
    path : path-like
        BrainVision ``.vhdr``, EDF/BDF, EEGLAB ``.set`` or FIF file.
    preload : bool
        Read the samples now (``False`` reads the header only).

    Returns
    -------
    raw : mne.io.BaseRaw
    """
    import mne

    path = check_file(path, "EEG file")
    name = path.name.lower()
    if not name.endswith(EEG_EXTENSIONS):
        raise ValueError(
            f"'{path}': unsupported EEG file type; expected one of {', '.join(EEG_EXTENSIONS)}."
        )
    if name.endswith(".vhdr"):
        check_ch_names(_vhdr_names(path), source=f"'{path}': [Channel Infos]")
    # MNE's warnings are collected (duplicate names are an error), its log output muted.
    mne_logger = logging.getLogger("mne")
    was_disabled, mne_logger.disabled = mne_logger.disabled, True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = mne.io.read_raw(path, preload=preload, verbose="warning")
    except Exception as err:  # MNE's readers raise (and assert) many types on corrupt files
        raise ValueError(f"cannot read the EEG file '{path}': {type(err).__name__}: {err}") from err
    finally:
        mne_logger.disabled = was_disabled
    for w in caught:
        msg = str(w.message)
        if "not unique" in msg and "duplicates" in msg:
            raise ValueError(f"'{path}': duplicate channel names ({msg.split(': ', 1)[-1]})")
        if "annotation(s) that were outside data range" in msg:
            _note_truncation(raw, path)
        logger.debug("MNE warning while reading '%s': %s", path, msg)
    return raw


def truncation(raw) -> dict | None:
    """How a truncated file is short, as :func:`open_raw` noted it; else ``None``.

    ``{"duration", "markers_until", "omitted"}``: the file's data ends before its markers
    do (a truncated ``.eeg``).
    """
    return getattr(raw, "_rt_truncated", None)


def _note_truncation(raw, path: Path) -> None:
    """The markers file lists events past the end of the data: say how much is missing."""
    import mne

    duration = raw.n_times / raw.info["sfreq"]
    try:
        onsets = mne.read_annotations(path.with_suffix(".vmrk"), sfreq=raw.info["sfreq"]).onset
    except Exception:  # not BrainVision, or an unreadable markers file: MNE's count only
        onsets = np.zeros(0)
    past = onsets[onsets > duration]
    until = float(past.max()) if past.size else float("nan")
    raw._rt_truncated = {"duration": duration, "markers_until": until, "omitted": int(past.size)}
    log_once(
        (str(path), "truncated"),
        f"'{path}' holds {duration:.1f} s of EEG but {past.size} of its markers lie past its "
        f"end (the last at {until:.1f} s): the data file looks truncated, about "
        f"{until - duration:.1f} s missing.",
        level=logging.WARNING,
    )


def eeg_picks(raw, *, path, channels=None, types=None, types_source=None) -> list[int]:
    """Indices of the EEG channels of ``raw``.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    path : path-like
        The EEG file, for error messages.
    channels : list of str | None
        Explicit channel names, in the order wanted; every name must exist in ``raw``.
    types : dict of str to str | None
        Channel name → type (e.g. from a BIDS ``channels.tsv``); channels of type
        ``EEG`` are kept. Default: MNE's channel types.
    types_source : path-like | None
        Where ``types`` came from, for error messages.

    Returns
    -------
    picks : list of int
    """
    names = list(raw.ch_names)
    if channels is not None:
        wanted = list(channels)
        where = "'channels'"
    elif types is not None:
        wanted = [n for n, t in types.items() if str(t).strip().upper() == "EEG"]
        where = f"'{types_source}'"
    else:
        import mne

        picks = list(mne.pick_types(raw.info, eeg=True, exclude=[]))
        if not picks:
            raise ValueError(
                f"'{path}': no EEG channels; channel types found: "
                f"{sorted(set(raw.get_channel_types()))}."
            )
        return picks
    if not wanted:
        raise ValueError(f"{where}: no channel is of type EEG.")
    check_ch_names(wanted, source=where)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise ValueError(
            f"{where}: unknown channel name(s) {unknown}, not in the EEG file '{path}' "
            f"(it has {names})."
        )
    return [names.index(n) for n in wanted]


def read_data(raw, picks, *, path) -> np.ndarray:
    """Samples of ``picks`` in volts as float32, read block by block.

    Returns
    -------
    data : array of shape (len(picks), n_times), float32
    """
    n_times = raw.n_times
    out = np.empty((len(picks), n_times), dtype=np.float32)
    step = max(1, _READ_BLOCK // max(1, len(picks)))
    try:
        for start in range(0, n_times, step):
            stop = min(n_times, start + step)
            out[:, start:stop] = raw.get_data(picks=picks, start=start, stop=stop)
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read samples from '{path}': {err}") from err
    return out


def read_eeg(
    path: str | Path,
    *,
    marker: str = "R128",
    channels: list[str] | None = None,
    ecg: bool = False,
) -> Session:
    """Read any MNE-readable EEG file as an EEG-only ``Session``.

    Parameters
    ----------
    path : path-like
        BrainVision ``.vhdr``, EDF/BDF, EEGLAB ``.set`` or FIF file.
    marker : str
        Scanner volume marker (default BrainVision ``R128``), or the trigger channel that
        carries them, ``eeg:CHANNEL[:LEVEL|:mask=BITS]`` (see :func:`scanner_onsets`).
    channels : list of str | None
        Channels to keep, in this order; default every channel MNE types as EEG.
    ecg : bool
        Keep the ECG channels too (typed ECG or labelled ECG*/EKG*), last: a replay
        publishes them for the live pulse correction.

    Returns
    -------
    session : Session
        ``eeg`` of shape (n_chans, n_times) in volts; ``events`` from the stimulus
        annotations; ``bold`` is ``None``. ``volume_onsets`` holds the scanner-marker
        onsets (s from the first sample; ``None`` without markers) and ``t_r`` their
        mean spacing (``None`` with fewer than two markers). ``stim`` holds the trigger
        channels (MNE's stim type, and the channel a ``marker`` spec names, which is never
        read as EEG). Identifiers come from BIDS entities in the file name when present.
    """
    path = Path(path)
    raw = open_raw(path, preload=False)
    stim = stim_picks(raw, marker)
    picks = eeg_picks(raw, path=path, channels=channels)
    if channels is None:  # a trigger lead MNE types as EEG is not EEG
        picks = [i for i in picks if i not in stim]
    kinds = None  # the rows' types for a replay (ecg): the ECG leads after the EEG
    if ecg:
        typed = set(ecg_picks(raw))  # a lead MNE types EEG but labelled ECG* is among them
        leads = [i for i in typed if i not in picks and i not in stim]
        kinds = ["ECG" if i in typed else "EEG" for i in picks] + ["ECG"] * len(leads)
        picks += sorted(leads)
    data = read_data(raw, picks, path=path)
    onsets = scanner_onsets(raw, marker)  # MNE drops annotations outside the data
    if not onsets.size and (hint := marker_hint(raw, marker)):
        log_once((str(path), "marker hint"), f"'{path}': {hint}", level=logging.WARNING)
    t_r = None
    if onsets.size > 1:
        if not np.all(np.diff(onsets) > 0):
            raise ValueError(f"'{path}': two '{marker}' markers share one onset.")
        t_r = float((onsets[-1] - onsets[0]) / (onsets.size - 1))
    ents = bids_entities(path)
    return Session(
        eeg=data,
        sfreq=float(raw.info["sfreq"]),
        ch_names=[raw.ch_names[i] for i in picks],
        t_r=t_r,
        volume_onsets=onsets if onsets.size else None,
        events=annotation_events(raw, marker=marker),
        **dict(zip(("stim", "stim_units"), stim_channels(raw, stim), strict=True)),
        ch_types=kinds,
        subject=ents.get("sub", "01"),
        task=ents.get("task", _stem(path)),
        run=ents.get("run"),
        session=ents.get("ses"),
        source={"eeg": str(path)},
    )


def _stem(path: Path) -> str:
    name = path.name
    for ext in EEG_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def bids_entities(path: str | Path) -> dict[str, str]:
    """BIDS key-value entities of a file name (``sub-01_task-x_eeg.vhdr`` → sub, task)."""
    stem = Path(path).name.split(".", 1)[0]
    out = {}
    for part in stem.split("_"):
        if "-" in part:
            key, value = part.split("-", 1)
            out[key] = value
    return out


def align_volumes(
    markers: np.ndarray,
    n_volumes: int,
    *,
    t_r: float,
    dummy_scans: int = 0,
    skip_markers: int = 0,
    first_volume: float = 0.0,
    where: str,
    marker: str = "R128",
    eeg_end: float | None = None,
    truncated: dict | None = None,
) -> tuple[np.ndarray, float]:
    """Onsets of the BOLD volumes kept after dummy scans, on the EEG clock.

    Rules: the first ``skip_markers`` scanner markers are dropped (triggers of volumes
    the NIfTI does not contain); then marker ``i`` is the onset of NIfTI volume ``i``.
    Markers left over after the last volume are ignored (the scanner kept triggering,
    or a last partial volume was not reconstructed) with a log message; fewer markers
    than volumes is an error. Without markers, volume ``i`` starts at
    ``first_volume + i * t_r``. Finally the first ``dummy_scans`` volumes (and their
    markers) are discarded.

    Parameters
    ----------
    markers : array of shape (n_markers,)
        Scanner marker onsets (s, EEG clock); may be empty.
    n_volumes : int
        Volumes in the NIfTI file (dummy scans included).
    t_r : float
        Repetition time (s); the marker spacing must agree within 1 %.
    dummy_scans, skip_markers : int
    first_volume : float
        Onset of the NIfTI's first volume when there are no markers (s).
    where : str
        Names the run/file in errors.
    marker : str
        Marker name, for messages.
    eeg_end : float | None
        End of the EEG (s, same clock), to say when it is the EEG that is short.
    truncated : dict | None
        :func:`truncation` of the EEG file, to say that the file is cut short.

    Returns
    -------
    onsets : array of shape (n_volumes - dummy_scans,)
    onset0 : float
        Onset of the NIfTI's first volume (before dropping dummies): the time origin
        of BIDS ``func/`` events.
    """
    dummy_scans, skip_markers = int(dummy_scans), int(skip_markers)
    if dummy_scans < 0 or skip_markers < 0:
        raise ValueError(
            f"'dummy_scans' and 'skip_markers' must be >= 0, got {dummy_scans=}, {skip_markers=}."
        )
    if dummy_scans >= n_volumes:
        raise ValueError(
            f"{where}: {dummy_scans=} leaves no volume of the {n_volumes} in the BOLD file."
        )
    markers = np.sort(np.asarray(markers, dtype=float))
    if markers.size == 0:
        onsets = float(first_volume) + np.arange(n_volumes) * t_r
        return onsets[dummy_scans:], float(onsets[0])
    found = markers.size
    markers = markers[skip_markers:]
    if markers.size < n_volumes:
        short = n_volumes - markers.size
        head = f"{where}: {found} '{marker}' scanner markers ({skip_markers=}) for {n_volumes} BOLD volumes"
        if truncated is not None:
            raise ValueError(
                f"{head}: the EEG file is truncated — it holds {truncated['duration']:.1f} s "
                f"but its markers run to {truncated['markers_until']:.1f} s (about "
                f"{truncated['markers_until'] - truncated['duration']:.1f} s missing), so "
                f"the last {short} volumes have no EEG. Restore the complete file; "
                "'dummy_scans'/'skip_markers' would misalign the pairs."
            )
        if eeg_end is not None and markers.size and markers[-1] + 1.5 * t_r >= eeg_end:
            raise ValueError(
                f"{head}: the EEG ends at {eeg_end:.1f} s, right after its last marker, and "
                f"the BOLD run goes on for {short} more volumes ({short * t_r:.1f} s): the "
                "EEG recording is shorter than the BOLD run. 'dummy_scans'/'skip_markers' "
                "would misalign the pairs."
            )
        raise ValueError(
            f"{head}: too few markers to time every volume. Check 'marker', or set "
            "'dummy_scans' (volumes of the NIfTI to drop) / 'skip_markers' (leading markers "
            "without a volume)."
        )
    if markers.size > n_volumes:
        logger.warning(
            "%s: ignoring %d '%s' markers after the last of %d volumes (set 'skip_markers' if "
            "the extra markers come first).",
            where,
            markers.size - n_volumes,
            marker,
            n_volumes,
        )
        markers = markers[:n_volumes]
    if n_volumes > 1:
        steps = np.diff(markers)
        spacing = float((markers[-1] - markers[0]) / (n_volumes - 1))
        if abs(spacing - t_r) > 0.01 * t_r:
            raise ValueError(
                f"{where}: RepetitionTime is {t_r} s but the '{marker}' scanner markers are "
                f"{spacing:.4f} s apart on average (mismatched TR)."
            )
        bad = np.flatnonzero(np.abs(steps - t_r) > 0.5 * t_r)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: '{marker}' markers {i} and {i + 1} (after {skip_markers=}) are "
                f"{steps[i]:.4f} s apart, not one TR ({t_r} s): a gap or an extra marker; "
                "the markers cannot be matched to the volumes."
            )
    return markers[dummy_scans:], float(markers[0])
