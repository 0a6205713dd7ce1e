"""Find the EEG stream on the network by name, type or source id."""

from __future__ import annotations

from .._checks import check_positive
from .._logging import logger

#: Prefixes of a source query, mapped to the stream property they match.
QUERY_KEYS = ("name", "type", "source_id")
_LIST_WAIT_S = 1.0  # how long to listen for the visible streams after a failed resolve
_UPPER, _LOWER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


def _predicate(key: str, value: str) -> str:
    """The XPath predicate of a query; stream types compare case-insensitively.

    Producers spell the type differently (``EEG``; mne-lsl's ``PlayerLSL`` writes ``eeg``).
    """
    quoted = "'" + value.replace("'", "") + "'"
    if key == "type":
        return f"translate(type,'{_UPPER}','{_LOWER}')={quoted.lower()}"
    return f"{key}={quoted}"


def lsl_timeout(timeout: float) -> float:
    """A resolve timeout liblsl honours.

    With liblsl 1.18.0b6 a resolve whose timeout is exactly 0.5 s often returns only after
    5.5 s (measured on loopback); nudge that value.
    """
    return 0.51 if abs(timeout - 0.5) < 5e-3 else timeout


def parse_source(source: str) -> tuple[str, str]:
    """Split a source query into ``(property, value)``.

    ``"type:EEG"``, ``"name:X"`` and ``"source_id:Y"`` name the property; anything else
    is a stream name (so names containing a colon still work).
    """
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"'source' must be a non-empty string, got {source!r}.")
    key, sep, value = source.partition(":")
    if sep and key.strip() in QUERY_KEYS and value.strip():
        return key.strip(), value.strip()
    return "name", source.strip()


def describe_stream(info) -> str:
    """One line describing a stream: name, type, source id, channels, rate, host."""
    rate = info.nominal_srate()
    return (
        f"name={info.name()!r} type={info.type()!r} source_id={info.source_id()!r} "
        f"channels={info.channel_count()} sfreq={'irregular' if rate == 0 else f'{rate:g} Hz'} "
        f"host={info.hostname()!r}"
    )


#: Longest single wait inside a resolve, so a stop request is seen within about this long.
_SLICE_S = 1.0


def resolve_until(resolve, timeout: float, cancel=None) -> list:
    """``resolve(wait)`` in slices of at most ``_SLICE_S`` until it finds something.

    liblsl's resolve blocks in C for its whole timeout, so a Ctrl-C (or any ``cancel``
    event, set from a signal handler) would wait for it; between slices ``cancel`` is
    checked and ``InterruptedError`` raised when it is set.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.is_set():
            raise InterruptedError("stopped while waiting for the stream.")
        remaining = deadline - time.monotonic()
        found = resolve(lsl_timeout(min(_SLICE_S, max(remaining, 0.05))))
        if found or time.monotonic() >= deadline:
            return found


def resolve_eeg_stream(source: str, *, timeout: float = 5.0, cancel=None):
    """The stream matching ``source``.

    Parameters
    ----------
    source : str
        ``"<name>"`` or ``"name:<name>"``, ``"type:<type>"`` (e.g. ``"type:EEG"``, compared
        case-insensitively) or ``"source_id:<id>"``.
    timeout : float
        Seconds to wait for a matching stream to appear.
    cancel : threading.Event | None
        Stop waiting when it is set (``InterruptedError``).

    Returns
    -------
    info : pylsl.StreamInfo
        The first matching stream (a warning lists the others when several match). Its
        ``desc`` is empty: the full description comes from the inlet.

    Raises
    ------
    RuntimeError
        If no stream matches; the message lists the streams that are visible.
    """
    import pylsl

    key, value = parse_source(source)
    timeout = check_positive(timeout, "timeout")
    pred = _predicate(key, value)
    logger.info("Waiting up to %g s for the LSL stream %s=%r...", timeout, key, value)
    found = resolve_until(
        lambda wait: pylsl.resolve_bypred(pred, minimum=1, timeout=wait), timeout, cancel
    )
    if not found:
        visible = pylsl.resolve_streams(wait_time=_LIST_WAIT_S)
        lines = "\n".join(f"  {describe_stream(s)}" for s in visible) or "  (none)"
        raise RuntimeError(
            f"no LSL stream with {key}={value!r} found within {timeout:g} s "
            f"(source={source!r}). Visible streams:\n{lines}"
        )
    if len(found) > 1:
        logger.warning(
            "%d streams match %s=%r; using the first (%s). Others: %s",
            len(found),
            key,
            value,
            describe_stream(found[0]),
            "; ".join(describe_stream(s) for s in found[1:]),
        )
    return found[0]


def check_name_free(name: str, *, what: str = "--name", wait: float = 0.6) -> None:
    """Refuse to publish a stream under a name another outlet on the network already has.

    Two outlets with one name (two ``stream`` processes, two demos) make every consumer
    pick one at random; the error names the stream already there and the flag to change.
    """
    import pylsl

    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=lsl_timeout(wait))
    if found:
        raise RuntimeError(
            f"an LSL stream named {name!r} is already published ({describe_stream(found[0])}); "
            f"two streams with one name confuse every consumer. Choose another {what}."
        )
