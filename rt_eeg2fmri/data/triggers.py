"""Scanner-volume triggers on a channel of the EEG: the spec and its rising edges.

Many amplifiers take the scanner's TTL pulse on a trigger input and record it as a
channel (MNE's ``STI 014`` in FIF, BioSemi's ``Status`` in BDF, an analog ``TRIG``
lead). The spec ``eeg:CHANNEL[:LEVEL]`` names such a channel: each rising edge through
``LEVEL`` (default 0.5) is a volume onset. ``LEVEL`` is in the channel's units as it is
read: in a file MNE's (the code for a stim channel, volts for a lead MNE types EEG), in a
stream the stream's (often microvolts); a TTL pulse of volts passes 0.5 in both, and a
stim channel's codes are the same in both (a replay publishes them unscaled).
``eeg:CHANNEL:mask=BITS``
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
from dataclasses import dataclass

import numpy as np

#: What starts a trigger-channel spec (``eeg:CHANNEL[:LEVEL]``), as opposed to a marker name.
PREFIX = "eeg:"
SYNTAX = "eeg:CHANNEL[:LEVEL|:mask=BITS]"


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
        The level a trigger rises through, in the channel's units (a code for a stim
        channel). Ignored with ``mask``.
    mask : int | None
        Bits of the channel's integer code that carry the trigger; an onset is where
        ``code & mask`` turns non-zero.
    """

    channel: str
    level: float = 0.5
    mask: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel.strip():
            raise ValueError(f"'channel' must name a channel, got {self.channel!r}.")
        if not math.isfinite(float(self.level)):
            raise ValueError(f"'level' must be a finite number, got {self.level!r}.")
        object.__setattr__(self, "level", float(self.level))
        if self.mask is not None and (int(self.mask) != self.mask or self.mask < 1):
            raise ValueError(f"'mask' must be a positive integer (bits), got {self.mask!r}.")

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
        try:
            level = float(rest) if rest else 0.5
        except ValueError:
            raise ValueError(
                f"{head}: the level must be a number (or mask=BITS), got {rest!r}."
            ) from None
        if not math.isfinite(level):
            raise ValueError(f"{head}: the level must be finite, got {rest!r}.")
        return cls(channel.strip(), level=level)

    @property
    def spec(self) -> str:
        """The spec that parses back to this trigger channel."""
        if self.mask is not None:
            return f"{PREFIX}{self.channel}:mask={self.mask:#x}"
        return f"{PREFIX}{self.channel}" + ("" if self.level == 0.5 else f":{self.level:g}")

    def describe(self) -> str:
        """The edge looked for, in words (``"rising edge through 0.5"``)."""
        if self.mask is not None:
            return f"rising edge of bits {self.mask:#x}"
        return f"rising edge through {self.level:g}"

    def high(self, x) -> np.ndarray:
        """Whether each sample of ``x`` is high (a trigger on), bool of ``x``'s shape."""
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
        col, _ = named_column(raw.ch_names, self.channel, what="trigger channel", stream=where)
        samples = self.edges().find(raw.get_data(picks=[col])[0])
        return samples / float(raw.info["sfreq"])


class RisingEdges:
    """Where a trigger channel turns high, chunk by chunk (see the module notes).

    Parameters
    ----------
    trigger : TriggerChannel
        The channel's level or mask.
    """

    def __init__(self, trigger: TriggerChannel) -> None:
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
