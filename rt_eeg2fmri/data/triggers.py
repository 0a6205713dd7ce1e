"""Scanner-volume triggers on a channel of the EEG: the spec and its rising edges.

Many amplifiers take the scanner's TTL pulse on a trigger input and record it as a
channel (MNE's ``STI 014`` in FIF, BioSemi's ``Status`` in BDF, an analog ``TRIG``
lead). The spec ``eeg:CHANNEL[:LEVEL]`` names such a channel: each rising edge through
``LEVEL`` (default 0.5) is a volume onset. A plain ``LEVEL`` is in the channel's units as it
is read: in a file MNE's (the code for a stim channel, volts for a lead MNE types EEG), in a
stream the stream's (often microvolts); a TTL pulse of volts passes 0.5 in both, and a
stim channel's codes are the same in both (a replay publishes them unscaled). A ``LEVEL``
with a voltage unit (``2.5V``, ``500mV``, ``100uV``) means the same voltage everywhere: it
is converted to the units of the file's channel (MNE's volts) or of the stream's channel
(its ``desc/channels/channel/unit``, microvolts where it gives none), so one spec serves
an analog trigger lead of a few microvolts offline and live. ``eeg:CHANNEL:mask=BITS``
instead tests bits of an integer code (``BITS`` decimal or ``0x``-hex), as
:func:`mne.find_events` does with ``mask_type="and"``: an onset is where ``code & BITS``
turns non-zero. That is what a status channel needs whose other bits (other devices'
triggers, amplifier state) are often set.

One :class:`RisingEdges` finds the edges, chunk by chunk in the live stream and over
the whole channel of a file (:meth:`TriggerChannel.onsets`), so the two cannot differ.
A pulse already high at the first sample has no known onset and is not an edge (as
``mne.find_events(..., initial_event=False)``); a value that is not a number counts as low.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from .._logging import logger
from .channels import DEFAULT_UNIT, unit_scale

#: What starts a trigger-channel spec (``eeg:CHANNEL[:LEVEL]``), as opposed to a marker name.
PREFIX = "eeg:"
SYNTAX = "eeg:CHANNEL[:LEVEL|:mask=BITS]"
#: A level and its optional unit: ``2.5``, ``2.5V``, ``100 uV``, ``-3e-4 V``.
_LEVEL = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(\D.*)?$")


#: Labels of channels that usually carry triggers, whatever their type (``TRIG``, ``TTL``,
#: ``STI 014``, ``Status``, ``Trigger``, ``Scanner``).
TRIGGER_LABEL = re.compile(r"^\s*(trig|ttl|sti(?![a-z])|status|stim|scan)", re.IGNORECASE)
#: Channel types of trigger channels (their samples are codes, whatever unit they carry)
TRIGGER_TYPES = {"STIM", "TRIG", "TRIGGER", "TRIGGERS", "MARKER", "MARKERS", "EVENT", "EVENTS"}


def is_channel_spec(spec) -> bool:
    """Whether ``spec`` names a trigger channel (``eeg:...``) rather than a marker."""
    return isinstance(spec, str) and spec.strip().lower().startswith(PREFIX)


@dataclass(frozen=True)
class TriggerChannel:
    """A channel that carries the scanner's volume triggers.

    Parameters
    ----------
    channel : str
        The channel's name.
    level : float
        The level a trigger rises through: in ``unit`` when it is given, else in the
        channel's units (a code for a stim channel). Ignored with ``mask``.
    mask : int | None
        Bits of the channel's integer code that carry the trigger; an onset is where
        ``code & mask`` turns non-zero.
    unit : str | None
        The voltage unit of ``level`` (``"V"``, ``"mV"``, ``"uV"``, ...), or ``None``.
        A level with a unit must be put in the samples' units (:meth:`in_units`) before
        edges are found.
    """

    channel: str
    level: float = 0.5
    mask: int | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel.strip():
            raise ValueError(f"'channel' must name a channel, got {self.channel!r}.")
        if not math.isfinite(float(self.level)):
            raise ValueError(f"'level' must be a finite number, got {self.level!r}.")
        object.__setattr__(self, "level", float(self.level))
        if self.mask is not None and (int(self.mask) != self.mask or self.mask < 1):
            raise ValueError(f"'mask' must be a positive integer (bits), got {self.mask!r}.")
        if self.unit is not None and (self.mask is not None or _volts(self.unit) is None):
            raise ValueError(
                f"'unit' must be a voltage unit (V, mV, uV, nV) of a level, got {self.unit!r}"
                + (" with a mask." if self.mask is not None else ".")
            )

    @classmethod
    def parse(cls, spec, *, what: str = "'trigger'") -> TriggerChannel | None:
        """The trigger channel of ``spec`` (``eeg:CHANNEL[:LEVEL|:mask=BITS]``).

        Returns ``None`` when ``spec`` is not a channel spec (a marker name, a marker
        stream, ``None``). ``what`` names the parameter in errors.
        """
        if not is_channel_spec(spec):
            return None
        head = f"{what} {SYNTAX}"
        channel, _, rest = spec.strip()[len(PREFIX) :].partition(":")
        if not channel.strip():
            raise ValueError(f"{head} names no channel: got {spec!r}.")
        rest = rest.strip()
        if rest.lower().startswith("mask="):
            bits = rest[5:].strip()
            try:
                mask = int(bits, 0)
            except ValueError:
                raise ValueError(
                    f"{head}: the mask must be an integer (e.g. 8 or 0x8), got {bits!r}."
                ) from None
            if mask < 1:
                raise ValueError(f"{head}: the mask must have a bit set, got {bits!r}.")
            return cls(channel.strip(), mask=mask)
        if not rest:
            return cls(channel.strip())
        if rest.lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
            raise ValueError(f"{head}: the level must be finite, got {rest!r}.")
        match = _LEVEL.match(rest)
        if match is None:
            raise ValueError(
                f"{head}: the level must be a number, with a voltage unit or none (0.5, 2.5V, "
                f"100uV), or mask=BITS; got {rest!r}."
            )
        number, unit = match.groups()
        if unit is not None and _volts(unit) is None:
            raise ValueError(
                f"{head}: the level's unit must be a voltage (V, mV, uV, nV), got {unit!r} "
                f"in {rest!r}."
            )
        return cls(channel.strip(), level=float(number), unit=unit and unit.strip())

    @property
    def spec(self) -> str:
        """The spec that parses back to this trigger channel."""
        if self.mask is not None:
            return f"{PREFIX}{self.channel}:mask={self.mask:#x}"
        if self.unit is not None:
            return f"{PREFIX}{self.channel}:{self.level:g}{self.unit}"
        return f"{PREFIX}{self.channel}" + ("" if self.level == 0.5 else f":{self.level:g}")

    def describe(self) -> str:
        """The edge looked for, in words (``"rising edge through 0.5"``)."""
        if self.mask is not None:
            return f"rising edge of bits {self.mask:#x}"
        return f"rising edge through {self.level:g}" + (f" {self.unit}" if self.unit else "")

    @classmethod
    def midway(cls, channel: str, x, volts_per_unit: float) -> TriggerChannel | None:
        """The trigger through the middle of an analog lead's range, its level in volts.

        ``x`` is the lead's samples, ``volts_per_unit`` their unit's volts. The level is
        put in V, mV or µV (three significant digits) so that one spec serves the file and
        a stream in any voltage unit. ``None`` for a flat (or empty) lead.
        """
        x = np.asarray(x, dtype=float)
        finite = x[np.isfinite(x)]
        if not finite.size or np.ptp(finite) <= 0:
            return None
        volts = 0.5 * (finite.min() + finite.max()) * float(volts_per_unit)
        for unit, scale in (("V", 1.0), ("mV", 1e-3), ("uV", 1e-6)):
            if abs(volts) >= scale or unit == "uV":
                return cls(channel, level=float(f"{volts / scale:.3g}"), unit=unit)
        raise AssertionError("unreachable")

    def in_units(
        self, volts_per_unit: float | None, *, where: str = "the channel"
    ) -> TriggerChannel:
        """The same trigger with its level in the samples' units.

        Parameters
        ----------
        volts_per_unit : float | None
            Volts per unit of the channel's samples (1 for MNE's data of a voltage
            channel), or ``None`` when the samples are not a voltage (codes).
        where : str
            The channel, for errors.

        Returns
        -------
        trigger : TriggerChannel
            Without a unit; ``self`` when its level has none.

        Raises
        ------
        ValueError
            If the level has a unit and the samples are not a voltage.
        """
        if self.unit is None:
            return self
        if volts_per_unit is None or not volts_per_unit > 0:
            raise ValueError(
                f"{where}: the level {self.level:g}{self.unit} of {self.spec!r} is a voltage, "
                "but the channel's samples are not (codes, or no voltage unit); give the "
                "level without a unit, in the channel's own values."
            )
        volts = self.level * _volts(self.unit)
        return replace(self, level=volts / float(volts_per_unit), unit=None)

    def in_stream_units(
        self, unit: str | None, *, where: str, kind: str | None = None
    ) -> TriggerChannel:
        """The same trigger with its level in the units of a stream's channel.

        ``unit`` is the channel's ``desc/channels/channel/unit``: a voltage unit, or none
        (microvolts, the LSL convention for EEG, with a warning); any other unit (a stim
        channel's ``"none"``) cannot take a level with a unit. Nor can a channel whose
        ``kind`` (its ``type``) is a trigger type (``stim``...): it holds codes, whatever
        unit it is given (mne-lsl gives a stim channel ``"0"``, volts, as MNE does).
        """
        if self.unit is None:
            return self
        if str(kind or "").upper() in TRIGGER_TYPES:
            return self.in_units(None, where=f"{where} (type {kind!r})")
        if not unit:
            logger.warning("%s has no unit; its level is taken in %s.", where, DEFAULT_UNIT)
            unit = DEFAULT_UNIT
        return self.in_units(volts_per_unit(unit), where=f"{where} (unit {unit!r})")

    def _check_in_samples_units(self) -> None:
        """Refuse a level that still has a unit: edges need it in the samples' units."""
        if self.unit is not None:
            raise ValueError(
                f"the level of {self.spec!r} has a unit: put it in the samples' units first "
                "(TriggerChannel.in_units)."
            )

    def high(self, x) -> np.ndarray:
        """Whether each sample of ``x`` is high (a trigger on), bool of ``x``'s shape."""
        self._check_in_samples_units()
        x = np.asarray(x, dtype=float)
        if self.mask is None:
            return x > self.level
        finite = np.isfinite(x)
        codes = np.rint(np.where(finite, x, 0.0)).astype(np.int64)
        return (codes & self.mask) != 0

    def edges(self) -> RisingEdges:
        """A fresh edge finder for this channel's next samples."""
        return RisingEdges(self)

    def onsets(self, raw, *, where: str | None = None) -> np.ndarray:
        """Onsets of the triggers on this channel of a recording.

        Parameters
        ----------
        raw : mne.io.BaseRaw
            The recording (MNE's units: the code for a stim channel, volts for EEG).
        where : str | None
            The recording, for errors (default: its file).

        Returns
        -------
        onsets : array of shape (n_triggers,)
            Seconds from the first sample, sorted.
        """
        from .channels import named_column

        if where is None:
            files = getattr(raw, "filenames", None) or [None]
            where = f"'{files[0]}'" if files[0] is not None else "the recording"
        col, name = named_column(raw.ch_names, self.channel, what="trigger channel", stream=where)
        trigger = self.in_units(mne_volts_per_unit(raw, col), where=f"{where}: channel {name!r}")
        samples = trigger.edges().find(raw.get_data(picks=[col])[0])
        return samples / float(raw.info["sfreq"])


def mne_volts_per_unit(raw, col: int) -> float | None:
    """Volts per unit of MNE's data of channel ``col``.

    1 for a voltage channel (MNE reads volts), ``None`` for one that is not a voltage: a
    stim channel's codes (which MNE gives the unit V all the same).
    """
    from mne.io.constants import FIFF

    ch = raw.info["chs"][col]
    return 1.0 if ch["unit"] == FIFF.FIFF_UNIT_V and ch["kind"] != FIFF.FIFFV_STIM_CH else None


def volts_per_unit(unit: str | None) -> float | None:
    """Volts per ``unit`` of a stream's channel, ``None`` when it is absent or not a voltage.

    Also mne-lsl's powers of ten (``"0"``: volts); ``"none"`` or ``"boolean"``: ``None``.
    """
    try:
        return unit_scale(unit)
    except ValueError:
        return None


def _volts(unit: str) -> float | None:
    """Volts per ``unit`` when it names a voltage by letters (``V``, ``mV``, ``uV``), else None."""
    try:
        return unit_scale(unit) if re.search(r"[^\d\s+-]", str(unit)) else None
    except ValueError:
        return None


class RisingEdges:
    """Where a trigger channel turns high, chunk by chunk (see the module notes).

    Parameters
    ----------
    trigger : TriggerChannel
        The channel's level or mask.
    """

    def __init__(self, trigger: TriggerChannel) -> None:
        trigger._check_in_samples_units()
        self.trigger = trigger
        self._high = True  # before the first sample

    def find(self, x) -> np.ndarray:
        """Indices into ``x`` (the channel's next samples) of the rising edges."""
        high = self.trigger.high(x)
        if not high.size:
            return np.zeros(0, np.intp)
        before = np.empty_like(high)
        before[0], before[1:] = self._high, high[:-1]
        self._high = bool(high[-1])
        return np.flatnonzero(high & ~before)
