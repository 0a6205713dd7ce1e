"""Stream descriptions of a replay: EEG (like an amplifier) and markers (like a trigger box).

The volume stream of measured BOLD is described in :mod:`rt_eeg2fmri.volume_stream`.
"""

from __future__ import annotations

import hashlib
import re

MANUFACTURER = "rt-eeg2fmri replay"
EEG_UNIT = "microvolts"
STIM_UNIT = "none"  # trigger codes: no physical unit
_TYPE_PATTERNS = (  # channel type from the label, as amplifier software reports it
    ("ECG", re.compile(r"^(ECG|EKG)", re.IGNORECASE)),
    ("EOG", re.compile(r"^(V|H)?EOG", re.IGNORECASE)),
    ("EMG", re.compile(r"^EMG", re.IGNORECASE)),
)


def source_id_for(*parts) -> str:
    """A source id that is stable across restarts: a hash of what is replayed.

    Parameters
    ----------
    *parts : str | None
        Typically the file path and subject, task and run; ``None`` parts are skipped.

    Returns
    -------
    source_id : str
        ``"rt-eeg2fmri-replay-"`` followed by 16 hexadecimal digits.
    """
    text = "\x1f".join(str(p) for p in parts if p is not None)
    return "rt-eeg2fmri-replay-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def channel_type(label: str) -> str:
    """LSL channel type guessed from a label: ``"ECG"``, ``"EOG"``, ``"EMG"`` or ``"EEG"``."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.match(label):
            return kind
    return "EEG"


def eeg_stream_info(
    name: str,
    *,
    ch_names,
    sfreq: float,
    source_id: str,
    model: str = "recorded session",
    source_file: str | None = None,
    ch_types=None,
    units=None,
):
    """Describe an EEG stream the way amplifier software does.

    Parameters
    ----------
    name : str
        Stream name.
    ch_names : list of str
        Channel labels, written to ``desc/channels/channel/label``.
    sfreq : float
        Nominal sampling rate in Hz.
    source_id : str
        Stable source id.
    model : str
        ``desc/acquisition/model``.
    source_file : str | None
        ``desc/acquisition/source_file``: the replayed recording.
    ch_types : list of str | None
        Channel types; guessed from the labels by default (:func:`channel_type`).
    units : list of str | None
        Channel units; microvolts by default.

    Returns
    -------
    info : pylsl.StreamInfo
        Type ``"EEG"``, ``cf_float32``, units ``"microvolts"``.
    """
    import pylsl

    ch_names = list(ch_names)
    ch_types = [channel_type(c) for c in ch_names] if ch_types is None else list(ch_types)
    if len(ch_types) != len(ch_names):
        raise ValueError(f"{len(ch_types)} channel types for {len(ch_names)} channels.")
    info = pylsl.StreamInfo(name, "EEG", len(ch_names), sfreq, pylsl.cf_float32, source_id)
    desc = info.desc()
    channels = desc.append_child("channels")
    units = [EEG_UNIT] * len(ch_names) if units is None else list(units)
    for label, kind, unit in zip(ch_names, ch_types, units, strict=True):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("type", kind)
        ch.append_child_value("unit", unit)
    acq = desc.append_child("acquisition")
    acq.append_child_value("manufacturer", MANUFACTURER)
    acq.append_child_value("model", model)
    if source_file:
        acq.append_child_value("source_file", str(source_file))
    return info


def marker_stream_info(name: str, *, source_id: str, scanner_marker: str = "R128"):
    """Describe the marker stream: stimulus events and one scanner marker per volume.

    Parameters
    ----------
    name : str
        Stream name.
    source_id : str
        Stable source id.
    scanner_marker : str
        The string sent at each volume onset (``desc/scanner_marker``).

    Returns
    -------
    info : pylsl.StreamInfo
        Type ``"Markers"``, one ``cf_string`` channel, irregular rate.
    """
    import pylsl

    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    desc = info.desc()
    desc.append_child("channels").append_child("channel").append_child_value("label", "Marker")
    desc.append_child_value("scanner_marker", scanner_marker)
    desc.append_child("acquisition").append_child_value("manufacturer", MANUFACTURER)
    return info
