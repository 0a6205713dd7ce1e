"""Map a source's channels onto a model's channels, and its units onto volts.

Pure functions: the labels and units come from a stream's ``desc/channels/channel`` or a
recording's header; the result is the first stage of the
:class:`~rt_eeg2fmri.data.eeg_chain.EEGChain`, so the chain's output holds exactly the
model's channels, in the model's order, in volts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_ch_names
from .._logging import logger

#: Volts per unit, keyed by the lower-cased unit string.
UNIT_SCALES = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,  # micro sign
    "μv": 1e-6,  # greek mu
    "microvolt": 1e-6,
    "microvolts": 1e-6,
    "nv": 1e-9,
    "nanovolt": 1e-9,
    "nanovolts": 1e-9,
}
#: Unit assumed for channels without one: microvolts, the LSL convention for EEG.
DEFAULT_UNIT = "microvolts"


def _key(label: str | None) -> str | None:
    if label is None:
        return None
    key = str(label).strip().lower()
    return key or None


def map_channels(
    stream_labels: Sequence[str | None] | None,
    ch_names: Sequence[str],
    *,
    n_stream_channels: int | None = None,
    allow_missing: bool = False,
    assume_order: bool = False,
    stream: str = "stream",
    kind: str = "stream",
    keep_missing: bool = False,
) -> np.ndarray:
    """The stream column of each model channel, matched by label.

    Labels are compared case-insensitively after stripping whitespace. Stream channels
    the model does not use are ignored.

    Parameters
    ----------
    stream_labels : list of str | None, or None
        The stream's channel labels (``desc/channels/channel/label``); ``None`` (or all
        ``None``) when the stream describes no labels.
    ch_names : list of str
        The model's channels, in the model's order.
    n_stream_channels : int | None
        The stream's channel count; ``len(stream_labels)`` by default.
    allow_missing : bool
        If True, model channels absent from the stream are zero-filled (index ``-1``)
        with a logged warning; otherwise they are an error.
    assume_order : bool
        For a stream without labels: take its channels as the model's, in order (only
        when the counts are equal).
    stream : str
        The stream's name, for messages.
    kind : str
        What the source is, for messages (``"stream"``, ``"recording"``).
    keep_missing : bool
        Return ``-1`` for missing model channels without a word (the caller interpolates
        them, :mod:`~rt_eeg2fmri.data.montage`).

    Returns
    -------
    index : array of int, shape (n_model_channels,)
        Column of the stream chunk for each model channel, ``-1`` for a zero-filled one.

    Raises
    ------
    ValueError
        On missing channels (unless ``allow_missing``), a label that matches several
        stream channels, or a stream without labels (unless ``assume_order`` and the
        channel counts agree).
    """
    names = check_ch_names(ch_names)
    if n_stream_channels is None:
        if stream_labels is None:
            raise ValueError("'n_stream_channels' is needed when 'stream_labels' is None.")
        n_stream_channels = len(stream_labels)
    n_stream = int(n_stream_channels)
    if stream_labels is not None and len(stream_labels) != n_stream:
        raise ValueError(f"{stream}: {len(stream_labels)} channel labels for {n_stream} channels.")
    keys = None if stream_labels is None else [_key(x) for x in stream_labels]
    if keys is None or all(k is None for k in keys):
        if not assume_order:
            raise ValueError(
                f"{stream}: the stream has no channel labels (desc/channels/channel/label); "
                f"pass assume_order=True to take its {n_stream} channels as the model's "
                f"{len(names)} channels in order."
            )
        if n_stream != len(names):
            raise ValueError(
                f"{stream}: assume_order=True needs as many stream channels as model "
                f"channels, got {n_stream} stream channels and {len(names)} in 'ch_names'."
            )
        return np.arange(n_stream, dtype=np.intp)
    columns: dict[str, list[int]] = {}
    for col, key in enumerate(keys):
        if key is not None:
            columns.setdefault(key, []).append(col)
    index = np.full(len(names), -1, dtype=np.intp)
    missing, ambiguous = [], []
    for i, name in enumerate(names):
        cols = columns.get(_key(name), [])
        if len(cols) > 1:
            ambiguous.append(f"{name!r} (stream columns {cols})")
        elif cols:
            index[i] = cols[0]
        else:
            missing.append(name)
    if ambiguous:
        raise ValueError(
            f"{stream}: several stream channels carry the label of model channel(s) "
            f"{', '.join(ambiguous)}."
        )
    if missing and not keep_missing:
        if not allow_missing:
            raise ValueError(
                f"{stream}: {len(missing)} of the model's {len(names)} channels are missing "
                f"from the {kind}: {', '.join(map(repr, missing))}"
                + (" (pass allow_missing=True to zero-fill them)." if kind == "stream" else ".")
            )
        logger.warning(
            "%s: zero-filling %d model channel(s) missing from the %s: %s",
            stream,
            len(missing),
            kind,
            ", ".join(missing),
        )
    return index


ECG_PREFIXES = ("ECG", "EKG")  # how amplifiers and BIDS label an ECG lead


def is_ecg_label(label: str | None) -> bool:
    """Whether a channel label names an ECG lead (``ECG``, ``EKG``, ``ECG1``, ...)."""
    return label is not None and str(label).strip().upper().startswith(ECG_PREFIXES)


def is_ecg_channel(label: str | None, kind: str | None) -> bool:
    """Whether a stream's channel is an ECG lead: typed ECG/EKG, or labelled ECG*/EKG*."""
    return str(kind or "").strip().upper() in ("ECG", "EKG") or is_ecg_label(label)


def ecg_column(
    labels: Sequence[str | None] | None,
    name: str | None = None,
    *,
    types: Sequence[str | None] | None = None,
    stream: str = "stream",
) -> tuple[int, str]:
    """The column and label of a source's ECG channel.

    ``name``; else the one typed ECG/EKG in ``types`` (mne-lsl's players and many
    amplifier apps type their channels); else the one labelled ECG*/EKG*.

    Raises
    ------
    ValueError
        Naming the source and its labels, when there is no such channel.
    """
    found = list(labels or ())
    if name is not None:
        return named_column(found, name, what="ECG channel", stream=stream)
    kinds = [str(t or "").strip().upper() for t in (types or ())]
    cols = [i for i, kind in enumerate(kinds[: len(found)]) if kind in ("ECG", "EKG")]
    cols = cols or [i for i, label in enumerate(found) if is_ecg_label(label)]
    if not cols:
        raise ValueError(
            f"{stream}: the pulse (BCG) correction needs an ECG channel; none is typed ECG or "
            f"labelled ECG*/EKG* among its channels ({found}): name it with --ecg NAME."
        )
    return cols[0], str(found[cols[0]])


def named_column(
    labels: Sequence[str | None] | None, name: str, *, what: str, stream: str = "stream"
) -> tuple[int, str]:
    """The column and label of a source's channel ``name`` (case and spaces ignored).

    Raises
    ------
    ValueError
        Naming the source, ``what`` was asked for, and the source's labels.
    """
    found = list(labels or ())
    keys = [_key(label) for label in found]
    if _key(name) in keys:
        col = keys.index(_key(name))
        return col, str(found[col])
    raise ValueError(f"{stream}: the {what} {name!r} is not among its channels ({found}).")


def unit_scale(unit: str | None) -> float | None:
    """Volts per ``unit``.

    Names and symbols (``"microvolts"``, ``"µV"``, ``"mV"``, ``"V"``, ...) and mne-lsl's
    powers of ten (``"0"`` = V, ``"-6"`` = µV: volts × 10ⁿ, FIFF's unit multiplier).
    Returns ``None`` for an empty or absent unit and raises ``ValueError`` for an unknown
    one.
    """
    key = _key(unit)
    if key is None:
        return None
    if key.lstrip("+-").isdigit() and -12 <= int(key) <= 0:
        return 10.0 ** int(key)
    if key not in UNIT_SCALES:
        raise ValueError(
            f"unknown unit {unit!r}; expected one of V, mV, uV/µV, nV, their names "
            "(volts, millivolts, microvolts, nanovolts) or a power of ten of volts (0, -3, "
            "-6, -9: mne-lsl's convention)."
        )
    return UNIT_SCALES[key]


def unit_scales(
    units: Sequence[str | None] | None,
    index: np.ndarray,
    ch_names: Sequence[str],
    *,
    stream: str = "stream",
) -> np.ndarray:
    """Factor to volts for each model channel, from the units of the stream channels.

    A channel without a unit is taken to be in microvolts (:data:`DEFAULT_UNIT`, the LSL
    convention for EEG), with one warning for the stream; zero-filled channels get 0.

    Parameters
    ----------
    units : list of str | None, or None
        The stream's channel units (``desc/channels/channel/unit``), one per stream
        channel; ``None`` when the stream describes none.
    index : array of int, shape (n_model_channels,)
        From :func:`map_channels`.
    ch_names : list of str
        The model's channels, for messages.
    stream : str
        The stream's name, for messages.

    Returns
    -------
    scales : array of float64, shape (n_model_channels,)
        Multiply the mapped samples by these to get volts.
    """
    index = np.asarray(index)
    if len(index) != len(ch_names):
        raise ValueError(f"{len(index)} indices for {len(ch_names)} channel names.")
    scales = np.zeros(len(index))
    no_unit = []
    for i, (col, name) in enumerate(zip(index, ch_names, strict=True)):
        if col < 0:
            continue
        unit = None if units is None else units[col]
        try:
            scale = unit_scale(unit)
        except ValueError as err:
            raise ValueError(f"{stream}: channel {name!r}: {err}") from None
        if scale is None:
            no_unit.append(name)
            scale = UNIT_SCALES[DEFAULT_UNIT]
        scales[i] = scale
    if no_unit:
        logger.warning(
            "%s: %d channel(s) have no unit (desc/channels/channel/unit); assuming %s: %s",
            stream,
            len(no_unit),
            DEFAULT_UNIT,
            ", ".join(no_unit[:8]) + (", ..." if len(no_unit) > 8 else ""),
        )
    return scales
