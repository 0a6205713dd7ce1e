"""What one EEG file holds, for ``rt-eeg2fmri info FILE``: channels, markers, triggers.

Before a lab's recording can be replayed, corrected or trained on, the questions are the
same: which channels MNE reads as EEG, where the ECG lead is, and where the scanner's
volume triggers are — annotations (``R128``) or a trigger channel, and with which level or
bit. :func:`summarize_recording` answers from the file and suggests the ``--marker`` that
times its volumes: the spec whose onsets are evenly spaced (a TR), found by the same edge
finder the readers and the stream use (:mod:`rt_eeg2fmri.data.triggers`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .eeg_io import (
    ecg_picks,
    marker_label,
    marker_name,
    open_raw,
    scanner_onsets,
    stim_picks,
    trigger_lead_picks,
)
from .triggers import TRIGGER_LABEL, TRIGGER_TYPES, TriggerChannel, volts_per_unit

#: How evenly the onsets of a volume trigger are spaced: the spread (max − min) of their
#: steps may be this share of the step (and at least 2 samples)
EVEN = 0.01
#: Fewest onsets taken for a scanner's triggers
MIN_VOLUMES = 3
_MAX_BITS = 24  # a status channel's bits looked at (BioSemi: 24)


def volume_timing(onsets: np.ndarray, sfreq: float) -> dict | None:
    """``{"n": ..., "t_r": ..., "first": ...}`` when ``onsets`` (s) are evenly spaced, else ``None``."""
    onsets = np.asarray(onsets, dtype=float)
    if onsets.size < MIN_VOLUMES:
        return None
    steps = np.diff(onsets)
    step = float(np.median(steps))
    if step <= 0 or np.ptp(steps) > max(EVEN * step, 2.0 / sfreq):
        return None
    return {"n": int(onsets.size), "t_r": round(step, 6), "first": float(onsets[0])}


#: Channel types that name a trigger channel in a stream's description


def trigger_channels(labels, units, kinds, data: np.ndarray) -> tuple[dict, dict]:
    """The trigger channels of a stream's samples (an XDF recording's, a live stream's).

    Those typed as triggers (``STIM``, ``TRIG``, ...) or whose samples are all whole
    numbers, not all the same (codes); and the analog leads labelled as triggers (``TRIG``,
    ``TTL``, ...) in a voltage unit.

    Parameters
    ----------
    labels, units, kinds : list of str | None
        The channels' labels, units and types (``desc/channels/channel``).
    data : array of shape (n_times, n_channels)

    Returns
    -------
    triggers : dict of str to array of shape (n_times,)
    voltages : dict of str to float
        The analog leads among them: volts per unit of their samples.
    """
    triggers, voltages = {}, {}
    for col, (label, unit, kind) in enumerate(zip(labels, units, kinds, strict=True)):
        x = data[:, col]
        coded = str(kind or "").upper() in TRIGGER_TYPES or _coded(x)
        if not coded and TRIGGER_LABEL.match(label) and (scale := volts_per_unit(unit)):
            voltages[label] = scale
        if coded or label in voltages:
            triggers[label] = x
    return triggers, voltages


def _coded(x: np.ndarray) -> bool:
    """Whether a channel's samples are codes: all whole numbers, not all the same."""
    finite = x[np.isfinite(x)]
    return bool(finite.size and np.ptp(finite) > 0 and np.all(finite == np.rint(finite)))


def summarize_recording(path: str | Path, *, marker: str = "R128") -> dict:
    """Channels, markers and trigger channels of one EEG file, and the ``--marker`` to use.

    Parameters
    ----------
    path : path-like
        Any EEG file MNE reads.
    marker : str
        The scanner marker asked for (a name, or ``eeg:CHANNEL...``).

    Returns
    -------
    summary : dict
        See :func:`recording_summary`; ``channels`` by MNE type, ``triggers`` for MNE's
        stim channels and the leads labelled as triggers (``TRIG``, ``TTL``, ...) that
        MNE reads in volts.
    """
    path = Path(path)
    raw = open_raw(path, preload=False)
    channels: dict[str, list[str]] = {}
    for name, kind in zip(raw.ch_names, raw.get_channel_types(), strict=True):
        channels.setdefault(kind, []).append(name)
    picks = stim_picks(raw)
    leads = trigger_lead_picks(raw, exclude=picks)
    labels = sorted({marker_label(d) for d in raw.annotations.description})
    return recording_summary(
        str(path),
        sfreq=float(raw.info["sfreq"]),
        n_times=raw.n_times,
        channels=channels,
        ecg=[raw.ch_names[i] for i in ecg_picks(raw)],
        markers={key: scanner_onsets(raw, key) for key in labels},
        triggers={raw.ch_names[c]: raw.get_data(picks=[c])[0] for c in [*picks, *leads]},
        voltages={raw.ch_names[c]: 1.0 for c in leads},
        marker=marker,
        asked=scanner_onsets(raw, marker),
        where="annotations",
    )


def recording_summary(
    path: str,
    *,
    sfreq: float,
    n_times: int,
    channels: dict,
    ecg: list,
    markers: dict,
    triggers: dict,
    marker: str,
    asked: np.ndarray,
    where: str,
    voltages: dict | None = None,
    flag: str = "--marker",
) -> dict:
    """The summary of a recording read by any reader (an MNE file, an XDF recording).

    Parameters
    ----------
    path : str
    sfreq : float
    n_times : int
    channels : dict of str to list of str
        Channel names by type.
    ecg : list of str
        The ECG leads (typed ECG or labelled ECG*/EKG*).
    markers : dict of str to array
        Each marker's onsets (s from the first sample).
    triggers : dict of str to array of shape (n_times,)
        The trigger channels' samples, as recorded.
    marker : str
        The scanner marker asked for; ``asked`` its onsets (s).
    where : str
        Where markers come from, for messages (``"annotations"``, ``"marker streams"``).
    voltages : dict of str to float | None
        The trigger channels that are analog leads, not codes: volts per unit of their
        samples. Their spec rises through the middle of their range, in volts.
    flag : str
        The option a suggestion is for (``--marker`` for a file, ``--trigger`` live).

    Returns
    -------
    summary : dict
        ``path``, ``sfreq``, ``duration_s``, ``channels``, ``ecg``, ``annotations``
        (each marker's count, most first), ``marker`` (the one asked for, with its ``n``
        onsets and ``timing`` when evenly spaced), ``triggers`` (per trigger channel: its
        codes, and the specs through 0.5 and per bit with their timing when evenly
        spaced; for an analog lead its ``range`` in volts and the spec through its
        middle), ``suggested`` (the ``--marker`` whose onsets are evenly spaced, or
        ``None``) and ``problems`` (list of str).
    """
    asked = np.asarray(asked, dtype=float)
    counts = sorted(((key, int(np.size(t))) for key, t in markers.items()), key=lambda kv: -kv[1])
    summary = {
        "path": path,
        "sfreq": sfreq,
        "duration_s": n_times / sfreq,
        "channels": channels,
        "ecg": list(ecg),
        "annotations": dict(counts),
        "marker": {"spec": marker, "n": int(asked.size), "timing": volume_timing(asked, sfreq)},
        "triggers": {},
        "suggested": None,
        "flag": flag,
        "problems": [],
    }
    candidates = [marker] if summary["marker"]["timing"] else []
    for key, _ in counts:  # a marker that comes evenly spaced: the scanner's
        if marker_name(key) != marker_name(marker) and volume_timing(markers[key], sfreq):
            candidates.append(key)
    for name, x in triggers.items():
        x = np.asarray(x, float)
        if name in (voltages or {}):
            entry = _lead_entry(name, x, sfreq, voltages[name])
        else:
            entry = _trigger_entry(name, x, sfreq)
        summary["triggers"][name] = entry
        candidates += [spec for spec, timing in entry["specs"].items() if timing]
    summary["suggested"] = candidates[0] if candidates else None
    if not asked.size:
        missing = (
            f"no '{marker}' scanner marker among the {where}"
            if TriggerChannel.parse(marker, what="'marker'") is None
            else f"no trigger on {marker!r}"
        )
        summary["problems"].append(
            missing + (f": try {flag} {_quoted(candidates[0])}" if candidates else
                       ", and no marker or trigger channel comes evenly spaced")
        )  # fmt: skip
    elif not summary["marker"]["timing"]:
        summary["problems"].append(
            f"the {asked.size} '{marker}' onsets are not evenly spaced (a gap, an extra "
            "marker, or not the scanner's)"
        )
    return summary


def _trigger_entry(name: str, x: np.ndarray, sfreq: float) -> dict:
    """A stim channel's codes and the specs whose rising edges come evenly spaced."""
    finite = x[np.isfinite(x)]
    codes = np.unique(finite[finite != 0])
    specs: dict[str, dict | None] = {}
    level = TriggerChannel(name)
    specs[level.spec] = volume_timing(level.edges().find(x) / sfreq, sfreq)
    integral = codes.size and np.allclose(codes, np.rint(codes)) and np.all(codes > 0)
    if integral and not specs[level.spec]:
        present = np.bitwise_or.reduce(np.rint(codes).astype(np.int64))
        for bit in range(_MAX_BITS):
            mask = 1 << bit
            if present & mask:
                channel = TriggerChannel(name, mask=mask)
                timing = volume_timing(channel.edges().find(x) / sfreq, sfreq)
                if timing:
                    specs[channel.spec] = timing
    return {"codes": [float(c) for c in codes[:20]], "n_codes": int(codes.size), "specs": specs}


def _lead_entry(name: str, x: np.ndarray, sfreq: float, volts_per_unit: float) -> dict:
    """An analog trigger lead's range (V) and the spec through its middle, if evenly spaced."""
    finite = x[np.isfinite(x)] * volts_per_unit
    span = [float(finite.min()), float(finite.max())] if finite.size else None
    trigger = TriggerChannel.midway(name, x, volts_per_unit)
    specs = {}
    if trigger is not None:
        edges = trigger.in_units(volts_per_unit).edges()
        specs[trigger.spec] = volume_timing(edges.find(x) / sfreq, sfreq)
    return {"range_v": span, "specs": specs}


def _quoted(spec: str) -> str:
    return f'"{spec}"' if " " in spec else spec


def format_recording(summary: dict) -> str:
    """Human-readable text of a :func:`summarize_recording` result."""
    s = summary
    lines = [f"Recording {s['path']}", f"  sfreq     {s['sfreq']:g} Hz, {s['duration_s']:.1f} s"]
    for kind, names in s["channels"].items():
        shown = ", ".join(names) if len(names) <= 6 else f"{names[0]} … {names[-1]}"
        lines.append(f"  {kind:<9s} {len(names)} ({shown})")
    lines.append(f"  ECG       {', '.join(s['ecg']) if s['ecg'] else 'none (no pulse correction)'}")
    if s["annotations"]:
        items = list(s["annotations"].items())
        shown = ", ".join(f"{k} ×{n}" for k, n in items[:8]) + (" …" if len(items) > 8 else "")
        lines.append(f"  markers   {shown}")
    m = s["marker"]
    timing = m["timing"]
    lines.append(
        f"  volumes   {m['n']} '{m['spec']}' onsets"
        + (f", TR {timing['t_r']:g} s from {timing['first']:.3f} s" if timing else "")
    )
    for name, entry in s["triggers"].items():
        found = [f"{spec}: {t['n']} onsets, TR {t['t_r']:g} s" for spec, t in entry["specs"].items()
                 if t]  # fmt: skip
        if "range_v" in entry:
            span = entry["range_v"]
            what = "analog, " + (f"{span[0]:.3g} to {span[1]:.3g} V" if span else "no samples")
        else:
            what = f"{entry['n_codes']} code(s)"
        lines.append(
            f"  trigger   {name}: {what}"
            + (f"; evenly spaced — {'; '.join(found)}" if found else "; none evenly spaced")
        )
    live = s.get("flag") == "--trigger"  # nothing was asked for: say it even when it is R128
    if s["suggested"] and (s["suggested"] != m["spec"] or live):
        lines.append(f"  use       {s.get('flag', '--marker')} {_quoted(s['suggested'])}")
    problems = s["problems"]
    lines += ["", f"Problems ({len(problems)}):" if problems else "Problems: none"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)
