"""What is on the LSL network (``rt-eeg2fmri streams``), and where the volume triggers are.

Before ``stream --sync trigger`` or ``--correct gradient`` the question at the scanner is
the one ``info FILE`` answers for a recording: which ``--trigger`` times the volumes — a
marker stream's ``R128`` (``--trigger NAME:MARKER``) or a channel of the EEG stream
(``--trigger eeg:CHANNEL...``). :func:`survey` lists the visible streams and, asked to
listen, reads the EEG stream and every marker stream for a few seconds and answers from
what came, with the summary of :func:`~rt_eeg2fmri.data.recording.recording_summary`:
channels by type, the ECG lead, each marker stream's markers, the trigger channels, and the
``--trigger`` whose onsets come evenly spaced (a TR).
"""

from __future__ import annotations

import time

import numpy as np

from .._checks import check_positive
from .._logging import logger
from .resolve import resolve_eeg_stream

#: How long one pull waits for samples while listening (s)
_PULL_S = 0.05


def _describe(info) -> dict:
    rate = info.nominal_srate()
    return {
        "name": info.name(),
        "type": info.type(),
        "source_id": info.source_id(),
        "channels": info.channel_count(),
        "sfreq": rate if rate > 0 else None,
        "format": _FORMATS.get(info.channel_format(), str(info.channel_format())),
        "host": info.hostname(),
    }


_FORMATS = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16", 6: "int8", 7: "int64"}


def _is_marker_stream(info) -> bool:
    """A stream of markers: strings, or samples at an irregular rate."""
    import pylsl

    return info.channel_format() == pylsl.cf_string or info.nominal_srate() <= 0


def survey(*, source: str | None = None, listen: float = 0.0, wait: float = 2.0) -> dict:
    """The LSL streams on the network and, with ``listen``, where the volume triggers are.

    Parameters
    ----------
    source : str | None
        The EEG stream listened to (as ``stream --source``: ``name:X``, ``type:EEG``,
        ``source_id:Y``); default: the first stream of type EEG.
    listen : float
        Seconds to read the EEG stream and the marker streams (0: only list the streams).
    wait : float
        Seconds to wait for the streams to be seen.

    Returns
    -------
    survey : dict
        ``streams`` (each stream's name, type, source id, channel count, rate, sample
        format and host) and, with ``listen``, ``listened``: the summary of
        :func:`~rt_eeg2fmri.data.recording.recording_summary` of what came (its
        ``suggested`` is a ``--trigger``), with ``marker_streams`` and ``seconds``.

    Raises
    ------
    RuntimeError
        If ``listen`` is asked and no EEG stream is found (the visible ones are listed),
        or the EEG stream sent no samples.
    """
    import pylsl

    wait = check_positive(wait, "wait")
    infos = pylsl.resolve_streams(wait_time=wait)
    out = {"streams": [_describe(i) for i in infos], "listened": None}
    if not listen or listen <= 0:
        return out
    listen = check_positive(listen, "listen")
    if source is None:
        eegs = [i for i in infos if i.type().strip().lower() == "eeg" and not _is_marker_stream(i)]
        if not eegs:
            shown = "\n".join(f"  {s['name']!r} (type {s['type']!r})" for s in out["streams"])
            raise RuntimeError(
                "no stream of type EEG to listen to; name one with --source. Visible "
                f"streams:\n{shown or '  (none)'}"
            )
        eeg = eegs[0]
    else:
        eeg = resolve_eeg_stream(source, timeout=wait)
    markers = [i for i in infos if _is_marker_stream(i) and i.source_id() != eeg.source_id()]
    out["listened"] = _listen(eeg, markers, listen)
    return out


def _listen(eeg_info, marker_infos: list, seconds: float) -> dict:
    """Read the EEG stream and the marker streams for ``seconds``; their summary."""
    import pylsl

    from ..data.channels import is_ecg_channel
    from ..data.eeg_io import marker_name
    from ..data.recording import recording_summary, trigger_channels

    flags = pylsl.proc_clocksync
    eeg = pylsl.StreamInlet(eeg_info, max_buflen=int(np.ceil(seconds)) + 5, processing_flags=flags)
    inlets = [pylsl.StreamInlet(i, processing_flags=flags) for i in marker_infos]
    info = eeg.info(timeout=5.0)
    name, rate, n_ch = info.name(), info.nominal_srate(), info.channel_count()
    labels = info.get_channel_labels() or [f"ch{k}" for k in range(n_ch)]
    types = info.get_channel_types() or ["EEG"] * n_ch
    units = info.get_channel_units() or [None] * n_ch
    for inlet in [eeg, *inlets]:
        inlet.open_stream(timeout=5.0)
    chunks, stamps, got = [], [], {i.name(): [] for i in marker_infos}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data, ts = eeg.pull_chunk(timeout=_PULL_S)
        if ts:
            chunks.append(np.asarray(data, dtype=float))
            stamps.extend(ts)
        for mi, inlet in zip(marker_infos, inlets, strict=True):
            values, mts = inlet.pull_chunk(timeout=0.0)
            got[mi.name()] += [(str(v[0]), t) for v, t in zip(values, mts, strict=True)]
    for inlet in [eeg, *inlets]:
        inlet.close_stream()
    if not stamps:
        raise RuntimeError(f"LSL stream {name!r} sent no samples in {seconds:g} s of listening.")
    data = np.concatenate(chunks)
    t0 = stamps[0]
    channels: dict[str, list[str]] = {}
    for label, kind in zip(labels, types, strict=True):
        channels.setdefault(str(kind or "EEG"), []).append(label)
    marks: dict[str, list[float]] = {}
    for stream, values in got.items():
        for value, t in values:
            marks.setdefault(f"{stream}:{value}", []).append(t - t0)
    scanner = next((k for k in marks if marker_name(k.rpartition(":")[2]) == "r128"), None)
    triggers, voltages = trigger_channels(labels, units, types, data)
    ecg = [c for c, k in zip(labels, types, strict=True) if is_ecg_channel(c, k)]
    summary = recording_summary(
        f"LSL stream {name!r}",
        sfreq=rate,
        n_times=data.shape[0],
        channels=channels,
        ecg=ecg,
        markers={k: np.asarray(v) for k, v in marks.items()},
        triggers=triggers,
        marker=scanner or "R128",
        asked=np.asarray(marks.get(scanner, []), dtype=float),
        where="marker streams",
        voltages=voltages,
        flag="--trigger",
    )
    summary["marker_streams"] = [i.name() for i in marker_infos]
    summary["seconds"] = seconds
    logger.debug("listened %g s to %r: %d samples", seconds, name, data.shape[0])
    return summary


def format_survey(result: dict) -> str:
    """Human-readable text of a :func:`survey` result."""
    from ..data.recording import format_recording

    streams = result["streams"]
    lines = [f"LSL streams ({len(streams)}):"]
    for s in streams:
        rate = f"{s['sfreq']:g} Hz" if s["sfreq"] else "irregular"
        lines.append(
            f"  {s['name']!r:<24s} type {s['type']!r:<10s} {s['channels']:>3} ch  {rate:>9s}  "
            f"{s['format']:<8s} host {s['host']!r}  source_id {s['source_id']!r}"
        )
    if not streams:
        lines.append("  (none)")
    listened = result["listened"]
    if listened is not None:
        marker_streams = ", ".join(repr(n) for n in listened["marker_streams"]) or "none"
        lines += ["", f"Listened {listened['seconds']:g} s (marker streams: {marker_streams}):"]
        lines += [f"  {line}" if line else line for line in format_recording(listened).split("\n")]
    return "\n".join(lines)
