"""Read an XDF recording (LabRecorder) into an EEG-only ``Session`` for replay.

The EEG stream is picked by name or type; every marker stream (type ``Markers`` or
string-valued) becomes events, and the scanner marker (``R128`` by default) becomes the
volume onsets (or, with ``marker="eeg:CHANNEL..."``, the rising edges of a trigger
channel of the EEG stream). Times are on the EEG clock: 0 is the first EEG sample (pyxdf
synchronises the streams' clocks and removes jitter).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_file
from .._logging import logger
from ..data.channels import named_column
from ..data.session import Session
from ..data.triggers import TRIGGER_TYPES, TriggerChannel, volts_per_unit


def is_scanner_marker(value: str, marker: str) -> bool:
    """Whether a marker string is the scanner's volume marker.

    As for EEG files: the last ``/``-separated token is compared case-insensitively with
    whitespace removed, so ``"R128"`` matches ``"R128"``, ``"r 128"`` and ``"Response/R128"``.
    """

    def norm(text: str) -> str:
        return re.sub(r"\s+", "", str(text).rsplit("/", 1)[-1]).lower()

    return norm(value) == norm(marker)


def read_xdf(
    path: str | Path,
    *,
    stream: str | None = None,
    marker: str = "R128",
    subject: str = "01",
    task: str = "xdf",
    run: str | None = None,
) -> Session:
    """Read the EEG and markers of an XDF file.

    Parameters
    ----------
    path : path-like
        ``.xdf`` or ``.xdfz`` file.
    stream : str | None
        Name (or type) of the EEG stream; default: the only numeric stream of type EEG.
    marker : str
        Scanner volume marker; its occurrences become ``volume_onsets``. Or a trigger
        channel of the EEG stream, ``eeg:CHANNEL[:LEVEL|:mask=BITS]``: its rising edges
        are the onsets, and it is kept out of the EEG (in ``stim``).
    subject, task, run : str | None
        Identifiers of the returned session.

    Returns
    -------
    session : Session
        EEG in volts; no BOLD.
    """
    path, streams, eeg, name, sfreq, data, stamps = _load(path, stream)
    info = eeg["info"]
    if len(info.get("segments") or []) > 1:
        logger.warning(
            "'%s': EEG stream '%s' has %d segments (breaks); they are replayed back to back.",
            path,
            name,
            len(info["segments"]),
        )
    labels, units, kinds = _channels(info, data.shape[1])
    t_first = stamps[0]
    onsets, rows, stim, stim_units = [], [], None, None
    trigger = TriggerChannel.parse(marker, what="'marker'")
    if trigger is not None:  # the triggers on a channel of the EEG stream: not EEG
        col, label = named_column(labels, trigger.channel, what="trigger channel",
                                  stream=f"'{path}': EEG stream '{name}'")  # fmt: skip
        stim = {label: data[:, col]}  # as recorded, in its unit when that is a voltage
        analog = volts_per_unit(units[col]) and str(kinds[col]).upper() not in TRIGGER_TYPES
        stim_units = {label: units[col]} if analog else None
        trigger = trigger.in_stream_units(
            units[col], where=f"'{path}': trigger channel {label!r}", kind=kinds[col]
        )
        onsets = list(stamps[trigger.edges().find(data[:, col])] - t_first)
        keep = [i for i in range(len(labels)) if i != col]
        data, labels, units = data[:, keep], [labels[i] for i in keep], [units[i] for i in keep]
    scale = np.array([_volts_per_unit(u, ch, path) for ch, u in zip(labels, units, strict=True)])
    for label, onset in _markers(streams, eeg, t_first):
        if trigger is None and is_scanner_marker(label, marker):
            onsets.append(onset)
        else:
            rows.append((onset, 0.0, label))
    events = pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])
    return Session(
        eeg=(data * scale).T.astype(np.float32),
        sfreq=sfreq,
        ch_names=labels,
        volume_onsets=np.sort(np.asarray(onsets, dtype=float)) if onsets else None,
        events=events,
        stim=stim,
        stim_units=stim_units,
        subject=subject,
        task=task,
        run=run,
        source={"eeg": str(path)},
    )


def _load(path, stream: str | None):
    """``(path, streams, eeg, name, sfreq, data, stamps)`` of an XDF file's EEG stream."""
    import pyxdf

    path = check_file(path, "XDF recording")
    try:
        streams, _ = pyxdf.load_xdf(str(path))
    except Exception as err:
        raise ValueError(f"cannot read '{path}' as XDF: {err}") from err
    eeg = _pick_eeg(streams, stream, path=path)
    name = _first(eeg["info"], "name")
    sfreq = float(_first(eeg["info"], "nominal_srate") or 0)
    if sfreq <= 0:
        raise ValueError(f"'{path}': EEG stream '{name}' has an irregular rate (nominal_srate=0).")
    data = np.asarray(eeg["time_series"], dtype=np.float64)
    stamps = np.asarray(eeg["time_stamps"], dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"'{path}': EEG stream '{name}' holds no samples.")
    return path, streams, eeg, name, sfreq, data, stamps


def summarize_xdf(path: str | Path, *, marker: str = "R128", stream: str | None = None) -> dict:
    """``rt-eeg2fmri info FILE.xdf``: channels, markers, trigger channels, the ``--marker``.

    The EEG stream's channels by type, the marker streams' markers, and the trigger
    channels (see :func:`~rt_eeg2fmri.data.recording.recording_summary` and
    :func:`~rt_eeg2fmri.data.recording.trigger_channels`).
    """
    from ..data.channels import is_ecg_channel
    from ..data.recording import recording_summary, trigger_channels

    path, streams, eeg, name, sfreq, data, stamps = _load(path, stream)
    labels, units, kinds = _channels(eeg["info"], data.shape[1])
    channels: dict[str, list[str]] = {}
    for label, kind in zip(labels, kinds, strict=True):
        channels.setdefault(kind, []).append(label)
    t_first = stamps[0]
    markers: dict[str, list[float]] = {}
    for label, onset in _markers(streams, eeg, t_first):
        markers.setdefault(label, []).append(onset)
    triggers, voltages = trigger_channels(labels, units, kinds, data)
    trigger = TriggerChannel.parse(marker, what="'marker'")
    if trigger is not None:
        col, label = named_column(labels, trigger.channel, what="trigger channel",
                                  stream=f"'{path}': EEG stream '{name}'")  # fmt: skip
        trigger = trigger.in_stream_units(
            units[col], where=f"'{path}': trigger channel {label!r}", kind=kinds[col]
        )
        asked = stamps[trigger.edges().find(data[:, col])] - t_first
    else:
        asked = [t for label, ts in markers.items() if is_scanner_marker(label, marker) for t in ts]
    return recording_summary(
        f"{path} (EEG stream '{name}')",
        sfreq=sfreq,
        n_times=data.shape[0],
        channels=channels,
        ecg=[c for c, k in zip(labels, kinds, strict=True) if is_ecg_channel(c, k)],
        markers={k: np.asarray(v) for k, v in markers.items()},
        triggers=triggers,
        marker=marker,
        asked=np.sort(np.asarray(asked, dtype=float)),
        where="marker streams",
        voltages=voltages,
    )


def _markers(streams: list[dict], eeg: dict, t_first: float):
    """``(label, onset)`` of every marker-stream sample from the first EEG sample on (s)."""
    for s in streams:
        if s is eeg or not _is_marker_stream(s):
            continue
        for value, ts in zip(s["time_series"], s["time_stamps"], strict=True):
            if ts >= t_first:
                label = str(value[0] if isinstance(value, list | tuple | np.ndarray) else value)
                yield label, float(ts) - t_first


def _first(info: dict, key: str):
    value = info.get(key)
    return value[0] if isinstance(value, list) and value else value


def _is_marker_stream(stream: dict) -> bool:
    info = stream["info"]
    stype = str(_first(info, "type") or "").lower()
    return stype in ("markers", "marker", "events") or _first(info, "channel_format") == "string"


def _pick_eeg(streams: list[dict], wanted: str | None, *, path: Path) -> dict:
    def describe(s):
        i = s["info"]
        return f"'{_first(i, 'name')}' ({_first(i, 'type')}, {_first(i, 'channel_count')} ch)"

    numeric = [s for s in streams if _first(s["info"], "channel_format") != "string"]
    if wanted is not None:
        found = [s for s in numeric if _first(s["info"], "name") == wanted]
        found = found or [
            s for s in numeric if str(_first(s["info"], "type")).lower() == wanted.lower()
        ]
    else:
        found = [s for s in numeric if str(_first(s["info"], "type")).lower() == "eeg"]
    available = ", ".join(map(describe, streams)) or "none"
    if not found:
        what = f"numeric stream named {wanted!r}" if wanted else "EEG stream (type 'EEG')"
        raise ValueError(f"'{path}' has no {what}; its streams: {available}.")
    if len(found) > 1:
        raise ValueError(
            f"'{path}' has {len(found)} EEG streams ({', '.join(map(describe, found))}); "
            "pick one by name (--stream)."
        )
    return found[0]


def _channels(info: dict, n_chans: int) -> tuple[list[str], list[str | None], list[str]]:
    """The EEG stream's channel labels, units and types (``EEG`` where it gives none)."""
    desc = _first(info, "desc")
    chans = []
    if isinstance(desc, dict):
        node = _first(desc, "channels")
        if isinstance(node, dict):
            chans = node.get("channel") or []
    if len(chans) != n_chans:
        if chans:
            logger.warning(
                "XDF EEG stream: %d channel descriptions for %d channels; numbering them.",
                len(chans),
                n_chans,
            )
        return [f"Ch{i + 1}" for i in range(n_chans)], [None] * n_chans, ["EEG"] * n_chans
    labels = [str(_first(c, "label") or f"Ch{i + 1}") for i, c in enumerate(chans)]
    units = [_first(c, "unit") for c in chans]
    return labels, units, [str(_first(c, "type") or "EEG") for c in chans]


def _volts_per_unit(unit: str | None, ch_name: str, path: Path) -> float:
    if not unit:
        return 1e-6
    scale = volts_per_unit(unit)  # "uV", "microvolts", mne-lsl's powers of ten ("-6")...
    if scale is None:  # an auxiliary channel: keep its values, they are sent as recorded
        logger.warning(
            "'%s': channel %r has unit %r, not a voltage; replayed unchanged.", path, ch_name, unit
        )
        return 1e-6
    return scale
