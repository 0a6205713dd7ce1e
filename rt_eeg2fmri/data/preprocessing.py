"""``Preprocessing``: the one record of what a model sees and is scored against.

Every option that changes a model's input or its targets lives here, once: the EEG rate,
band-pass, normalisation method and window length, and the BOLD target, smoothing and
drift removal. The window cache is keyed by it, the trainer holds one, every checkpoint
stores it whole, and the two chains are built from it:
:class:`~rt_eeg2fmri.data.eeg_chain.EEGChain` (the same code per chunk live and over
whole runs offline) and :class:`~rt_eeg2fmri.data.bold.BoldChain`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from .._checks import check_option, check_positive
from .bold import TARGET_METHODS, BoldChain
from .norm import NORM_METHODS


@dataclass(frozen=True)
class Preprocessing:
    """What a model sees and is scored against.

    Attributes
    ----------
    sfreq : float | None
        Rate of the model's EEG input in Hz; ``None`` before it is resolved to a
        recording's own rate (:meth:`resolve`). Other rates are resampled (streaming
        polyphase FIR).
    l_freq, h_freq : float | None
        Causal band-pass of the EEG at ``sfreq`` (Hz; ``None``: no high- / low-pass): a
        4th-order Butterworth IIR run forward (MNE's ``method="iir"``,
        ``phase="forward"``), the same offline and live.
    norm : ``"zscore"`` | ``"robust"``
        Per-channel EEG normalisation (:class:`~rt_eeg2fmri.data.norm.NormStats`).
    winsize : float
        Window length in seconds.
    target : ``"psc"`` | ``"median_ratio"``
        BOLD target: percent signal change from the run mean, or the paper's
        ``volume / subject median − 1``.
    fwhm : float | None
        Spatial smoothing of the BOLD before the targets (mm FWHM; SPM's ``s`` step).
    high_pass : float | None
        Drift removal of the targets (Hz; SPM's cosine basis regressed out per run).
    """

    sfreq: float | None = None
    l_freq: float | None = None
    h_freq: float | None = None
    norm: str = "zscore"
    winsize: float = 30.0
    target: str = "psc"
    fwhm: float | None = None
    high_pass: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> Preprocessing:
        """Check every field; raise ``ValueError`` naming the field, the expectation and the value."""
        for name in ("sfreq", "l_freq", "h_freq", "fwhm", "high_pass"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_positive(value, name))
        object.__setattr__(self, "winsize", check_positive(self.winsize, "winsize"))
        check_option(self.norm, "norm", NORM_METHODS)
        check_option(self.target, "target", TARGET_METHODS)
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(
                f"'l_freq' must be below 'h_freq', got l_freq={self.l_freq}, h_freq={self.h_freq}."
            )
        if self.sfreq is not None:
            for name in ("l_freq", "h_freq"):
                value = getattr(self, name)
                if value is not None and value >= self.sfreq / 2:
                    raise ValueError(
                        f"'{name}' must be below the Nyquist frequency of sfreq={self.sfreq:g} Hz "
                        f"({self.sfreq / 2:g} Hz), got {name}={value}."
                    )
        return self

    # -- derived --------------------------------------------------------------------------
    @property
    def n_times(self) -> int:
        """Samples per window (``winsize · sfreq``); needs a resolved ``sfreq``."""
        if self.sfreq is None:
            raise ValueError("Preprocessing.n_times: 'sfreq' is not resolved yet.")
        return round(self.winsize * self.sfreq)

    @property
    def bandpass(self) -> bool:
        """Whether the EEG is band-passed (``l_freq`` or ``h_freq`` set)."""
        return self.l_freq is not None or self.h_freq is not None

    def resolve(self, sfreq: float) -> Preprocessing:
        """A copy whose ``sfreq`` is set: its own if set, else ``sfreq`` (a recording's rate)."""
        return self if self.sfreq is not None else replace(self, sfreq=sfreq)

    def bold_chain(self) -> BoldChain:
        """The :class:`~rt_eeg2fmri.data.bold.BoldChain` of the targets."""
        return BoldChain(target=self.target, fwhm=self.fwhm, high_pass=self.high_pass)

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``100 Hz, 1-40 Hz, zscore, 30 s → psc``."""
        rate = "native rate" if self.sfreq is None else f"{self.sfreq:g} Hz"
        band = ""
        if self.bandpass:
            lo = "" if self.l_freq is None else f"{self.l_freq:g}"
            hi = "" if self.h_freq is None else f"{self.h_freq:g}"
            band = f", band-pass {lo}-{hi} Hz (causal)"
        bold = self.target
        if self.fwhm:
            bold += f", {self.fwhm:g} mm"
        if self.high_pass:
            bold += f", high-pass {self.high_pass:g} Hz"
        return f"EEG {rate}{band}, {self.norm}, {self.winsize:g} s windows → {bold}"

    # -- plain values -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain values (for checkpoints, JSON and the cache fingerprint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "preprocessing") -> Preprocessing:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming ``where``."""
        if not isinstance(d, dict):
            raise TypeError(f"{where}: expected a dict of preprocessing fields, got {d!r}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}.")
        return cls(**d)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The record's fields, in order."""
        return tuple(f.name for f in fields(cls))


class HasPreprocessing:
    """``sfreq`` and ``winsize`` of an object's resolved ``preprocessing`` record."""

    preprocessing: Preprocessing

    @property
    def sfreq(self) -> float:
        """Rate of the model's EEG input in Hz."""
        return float(self.preprocessing.sfreq)

    @property
    def winsize(self) -> float:
        """Window length in seconds."""
        return float(self.preprocessing.winsize)


def same_rate(a: float, b: float) -> bool:
    """Whether two sampling rates are equal to a part in 10⁹."""
    return math.isclose(float(a), float(b), rel_tol=1e-9)
