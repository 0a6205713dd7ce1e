"""Causal pulse-artifact (BCG) correction, chunk by chunk: R-peaks found live on the ECG.

The offline correction (:mod:`rt_eeg2fmri.data.correct`, MNE's ``apply_pca_obs``) fits
an optimal basis set of all the run's heartbeats to each one, on R-peaks found in the
whole ECG, so it cannot run while the person is in the scanner. Here:

- :class:`RPeakDetector` finds the R-peaks of one ECG lead as its samples arrive: a causal
  5–25 Hz band-pass, the lead's polarity and a first threshold learnt from its first
  seconds, then a threshold at a fraction of the median height of the last beats and a
  refractory period. A peak is confirmed a few tens of ms after it (once the signal has
  not risen above it for ``confirm`` seconds). A heart-rate change needs nothing: the
  threshold follows the heights, not the rate. A peak is a beat only if it is sharp (far
  above the median of the band-passed lead over the last seconds; the maxima of noise
  are not) and not far taller than the last beats. A lead that gives no beat for a while
  (off and flat, or noise) is *lead off*: the detector learns its threshold again from
  the next seconds.
- :class:`LivePulseCorrector` models each heartbeat's samples on the last ``n_template``
  beats (each less its mean), aligned on the R-peaks: the first ``n_components``
  principal components of those beats (across all channels: one pulse wave moves every
  electrode), fitted to the beat as its samples come in — a causal optimal basis set.
  The fit starts at the mean of the past beats (the moving-average template of Allen et
  al. 1998) and is refitted every 10 ms of the beat from the samples before (low-passed
  at 30 Hz: what is left of the gradient artifact must not steer it), so it follows the
  beat's own amplitude, shape and timing as the wave unfolds, and the result does not
  depend on how the stream is chunked. A beat's model starts when its R-peak is
  confirmed; the few samples between the peak and its confirmation get the previous
  beat's (the pulse wave itself starts ~0.2 s after the R-peak). A beat joins the past
  beats when the next R-peak ends it.

Samples are flagged (``clean`` is False) before the first beat, until ``n_template`` beats
make the template, and while the ECG lead is off; nothing is subtracted while it is off
(the EEG passes through with only the gradient correction, and a warning is logged).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .._blas import one_thread
from .._logging import logger

_BAND = (5.0, 25.0)  # Hz: the QRS complex, without baseline wander, T waves or mains
_LEARN_S = 2.0  # seconds of ECG the first threshold is learnt from
_REFRACTORY_S = 0.3  # no two beats closer (200 bpm)
_CONFIRM_S = 0.04  # a peak is confirmed when nothing taller follows within this
_THRESHOLD = 0.45  # fraction of the median height of the last beats
_TOO_TALL = 4.0  # a peak this many times the median height is noise, not a beat
_SHARP = 8.0  # a beat stands this many times above the median |ECG| of the last seconds
_HEIGHTS = 8  # beats whose median height sets the threshold
_LEAD_OFF_S = 2.0  # no beat for max(this, 2.5 RR): the lead is off
_MAX_BEAT_S = 1.5  # the longest template (s after the R-peak)
N_BEATS = 30  # past beats the basis is made of (FMRIB's OBS fits a window of 30)
N_COMPONENTS = 4  # components of the past beats fitted to each beat
_BLOCK_S = 0.01  # the fit is updated every 10 ms of a beat
_FIT_HZ = 30.0  # the fit sees the EEG low-passed here (the pulse wave is slow; what is left
# of the gradient artifact is not) and every sample at ~500 Hz
PRIOR = 0.3  # a beat's fit starts at the mean of the past beats, weighing this much of a beat


@dataclass
class PulseCounts:
    """What a :class:`LivePulseCorrector` has seen.

    Attributes
    ----------
    beats : int
        R-peaks found.
    template_beats : int
        Whole beats added to the past beats the correction is made of.
    rejected : int
        Peaks above the threshold that are no beat: far taller than the last beats, or
        not standing out of the lead's level (noise on the lead).
    long_intervals : int
        Beats that came more than 1.6 median intervals after the one before (a beat
        missed, or an arrhythmia): the interval is cut to 1.2 median intervals in the
        template.
    lead_off : int
        Times the ECG gave no beat for a while: the correction stopped until beats came
        back (gradient only meanwhile).
    lost_beats : int
        Beats that held lost samples (a gap in the stream, or not finite): flagged from
        the loss to their end and kept out of the past beats.
    """

    beats: int = 0
    template_beats: int = 0
    rejected: int = 0
    long_intervals: int = 0
    lead_off: int = 0
    lost_beats: int = 0


class RPeakDetector:
    """Find the R-peaks of an ECG lead causally, chunk by chunk.

    Parameters
    ----------
    sfreq : float
        The lead's sampling rate (Hz).
    """

    def __init__(self, sfreq: float) -> None:
        from ..data.filters import CausalBandpass

        self.sfreq = float(sfreq)
        self._filter = CausalBandpass(self.sfreq, l_freq=_BAND[0], h_freq=_BAND[1], n_chans=1)
        self._refractory = round(_REFRACTORY_S * self.sfreq)
        self._confirm = max(1, round(_CONFIRM_S * self.sfreq))
        self._n = 0  # samples seen
        self._recent = np.zeros(0)  # |band-passed lead| over the last _LEARN_S seconds
        self.heights: deque[float] = deque(maxlen=_HEIGHTS)
        self.intervals: deque[int] = deque(maxlen=_HEIGHTS)
        self.last: int | None = None  # the last accepted R-peak (sample index)
        self.lead_off = False  # no beat for a while: learning again
        self.rejected = 0
        self._relearn(0)

    def _relearn(self, at: int) -> None:
        self._learn_until = at + round(_LEARN_S * self.sfreq)
        self._learnt = 0.0  # the tallest |band-passed ECG| while learning
        self._polarity = 1.0
        self._cand: tuple[float, int] | None = None  # (height, sample) of a peak being confirmed
        self.heights.clear()

    @property
    def rr(self) -> float | None:
        """The median interval of the last beats (samples), or ``None`` before two."""
        return float(np.median(self.intervals)) if self.intervals else None

    @property
    def threshold(self) -> float:
        """The height a peak of the band-passed lead must pass to be a candidate beat."""
        base = np.median(self.heights) if self.heights else self._learnt
        return _THRESHOLD * float(base)

    def process(self, ecg: np.ndarray) -> list[tuple[int, int]]:
        """Take the next samples of the lead; the R-peaks confirmed in them.

        Returns
        -------
        peaks : list of (peak, confirmed)
            Sample indices (from the first sample ever given) of each R-peak and of the
            sample at which it was confirmed (within this chunk).
        """
        y = self._filter.process(np.asarray(ecg, float).reshape(1, -1))[0]
        start, n = self._n, y.size
        self._n += n
        keep = round(_LEARN_S * self.sfreq)
        self._recent = np.concatenate([self._recent[max(0, self._recent.size + n - keep) :],
                                       np.abs(y[-keep:])])  # fmt: skip
        found: list[tuple[int, int]] = []
        i = 0
        if start < self._learn_until:  # learning the lead's polarity and first threshold
            k = min(n, self._learn_until - start)
            if k:
                j = int(np.argmax(np.abs(y[:k])))
                if abs(y[j]) > self._learnt:
                    self._learnt, self._polarity = float(abs(y[j])), float(np.sign(y[j]) or 1.0)
            i = k
            if start + k < self._learn_until:
                return found
        y = self._polarity * y
        while i < n:
            if self._cand is None:
                lo = i if self.last is None else max(i, self.last + self._refractory - start)
                if lo >= n:
                    break
                above = np.flatnonzero(y[lo:] > self.threshold)
                if not above.size:
                    break
                j = lo + int(above[0])
                self._cand = (float(y[j]), start + j)
                i = j + 1
                continue
            height, at = self._cand
            end = min(n, at + self._confirm - start + 1)
            if i < end:
                seg = y[i:end]
                k = int(np.argmax(seg))
                if seg[k] > height:
                    self._cand = (float(seg[k]), start + i + k)
                    i += k + 1
                    continue
                i = end
            if at + self._confirm < start + i:  # nothing taller followed: confirmed
                self._cand = None
                too_tall = self.heights and height > _TOO_TALL * np.median(self.heights)
                if too_tall or height < _SHARP * np.median(self._recent):
                    self.rejected += 1
                    continue
                self.heights.append(height)
                if self.last is not None and not self.lead_off:
                    self.intervals.append(at - self.last)
                self.last, self.lead_off = at, False
                found.append((at, start + i - 1))
        return found

    def check_lead(self, now: int) -> bool:
        """Whether the lead just went off: no beat for a while up to sample ``now``.

        The silence counts from the last beat, or from the end of learning. A lead that is
        off learns its threshold again from the samples after ``now``, every while until
        beats come back; ``True`` only when it goes off.
        """
        since = max(self._learn_until, -1 if self.last is None else self.last)
        rr = self.rr
        limit = max(_LEAD_OFF_S * self.sfreq, 2.5 * rr if rr else 0.0)
        if now - since <= limit:
            return False
        self._relearn(self._n)
        went_off, self.lead_off = not self.lead_off, True
        return went_off


class LivePulseCorrector:
    """Subtract the pulse artifact from EEG chunks as they arrive, from past beats only.

    Parameters
    ----------
    n_chans : int
        EEG channels in every chunk.
    sfreq : float
        Their rate (and the ECG's), Hz.
    n_template : int
        Past beats the basis is made of.
    n_components : int
        Components of the past beats fitted to each beat as it comes in (0: subtract the
        plain mean of the past beats).
    prior : float
        How strongly a beat's fit is pulled toward the mean of the past beats: the weight
        of this fraction of a whole beat's samples.
    source : str
        Named in the warnings (the stream).
    """

    def __init__(
        self, n_chans: int, sfreq: float, *, n_template: int = N_BEATS,
        n_components: int = N_COMPONENTS, prior: float = PRIOR, source: str = "EEG",
    ) -> None:  # fmt: skip
        if int(n_template) < 1:
            raise ValueError(f"n_template must be >= 1, got {n_template!r}.")
        if int(n_components) < 0 or not prior > 0:
            raise ValueError(f"n_components must be >= 0 and prior > 0, got {n_components!r}, "
                             f"{prior!r}.")  # fmt: skip
        self.n_chans, self.sfreq = int(n_chans), float(sfreq)
        self.n_template, self.source = int(n_template), source
        self.n_components, self.prior = int(n_components), float(prior)
        self.detector = RPeakDetector(self.sfreq)
        self.counts = PulseCounts()
        self.length = round(_MAX_BEAT_S * self.sfreq)
        # the past beats, each less its mean (zero after its end), in a ring; the same
        # low-passed, every `_stride`-th sample, and their Gram matrix (the fit's)
        from ..data.filters import CausalBandpass

        self._beats = np.zeros((self.n_template, self.n_chans, self.length), np.float32)
        self._stride = max(1, round(self.sfreq / 500.0))
        n_low = -(-self.length // self._stride)
        self._lowpass = CausalBandpass(self.sfreq, l_freq=None, h_freq=min(_FIT_HZ, 0.4 * self.sfreq),
                                       n_chans=self.n_chans)  # fmt: skip
        self._low_beats = np.zeros((self.n_template, self.n_chans, n_low))
        self._low_buf = np.zeros((self.n_chans, n_low))
        self._low_level = np.zeros((self.n_chans, 1))
        self._gram = np.zeros((self.n_template, self.n_template))
        self._n_beats = 0  # beats in the ring
        self._next = 0  # the ring's slot of the next beat
        self._buf = np.zeros((self.n_chans, self.length))
        self._onset: int | None = None  # the current beat's R-peak
        self._whole = False  # the current beat's samples are all in _buf
        self._tainted = False  # samples of the current beat were lost: flagged, not kept
        self._ecg_last = 0.0  # the lead's last sample that came (held through a loss)
        self._level = np.zeros((self.n_chans, 1))  # each channel's mean over the last beat
        self._mix: np.ndarray | None = None  # this beat's basis: past beats → components
        self._weights: np.ndarray | None = None  # the fit now, as weights of the past beats
        self._low_basis: np.ndarray | None = None  # the basis, low-passed and decimated
        self._ata = self._atb = None  # normal equations of this beat's fit so far
        self._coef = self._pending = None  # the fit now; the current block's equations
        self._block = max(1, round(_BLOCK_S * self.sfreq))
        self._n = 0

    @property
    def ready(self) -> bool:
        """Whether ``n_template`` past beats make the basis."""
        return self._n_beats >= self.n_template

    def process(
        self, chunk: np.ndarray, ecg: np.ndarray, lost: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct ``chunk`` (``n_chans`` × ``n``); ``ecg`` holds the ECG lead's ``n`` samples.

        ``lost`` (``n``, bool) marks samples that never came (a gap in the stream) or were
        not finite: they are written as 0 and flagged, the lead is held at its last sample
        through them (a step to 0 would look like a beat), and the beat that holds them is
        flagged from there to its end (its fit saw them) and kept out of the past beats.

        Returns
        -------
        corrected : array (n_chans, n), float64
        clean : array (n,), bool
            False before the first beat, while the template is not ready, while the
            lead is off, and where samples were lost (to the end of their beat).
        """
        x = np.asarray(chunk, dtype=float)
        start, n = self._n, x.shape[1]
        out = x.copy()
        clean = np.zeros(n, bool)
        if lost is not None and lost.any():
            ecg = self._hold(np.asarray(ecg, float), lost)
        else:
            lost = None
        if n:
            self._ecg_last = float(ecg[-1])
        low = self._lowpass.process(x) if n else x
        peaks = self.detector.process(ecg)
        i = 0
        for peak, confirmed in [*peaks, (None, start + n)]:
            j = confirmed - start if peak is not None else n
            if lost is not None and self._onset is not None and lost[i:j].any():
                self._taint()
            if self._onset is not None and not self.detector.lead_off and j > i:
                self._correct(x, low, out, clean, i, j, start)
            i = j
            if peak is not None:
                self._new_beat(peak, start + j)
                if lost is not None and lost[max(0, peak - start) : j].any():
                    self._taint()  # the new beat's first samples (carried over) were lost
        self._n += n
        if self.detector.check_lead(self._n):
            self.counts.lead_off += 1
            self._onset = None
            logger.warning(
                "%s: no heartbeat on the ECG (lead off?): the pulse artifact is not corrected "
                "until beats come back.",
                self.source,
            )
        self.counts.rejected = self.detector.rejected
        if lost is not None:
            out[:, lost] = 0.0
            clean[lost] = False
        return out, clean

    def _taint(self) -> None:
        """Samples of the current beat were lost: flagged to its end, kept out of the past."""
        self.counts.lost_beats += not self._tainted
        self._tainted = True

    def _hold(self, ecg: np.ndarray, lost: np.ndarray) -> np.ndarray:
        """``ecg`` with each lost sample replaced by the last sample that came before it."""
        came = np.where(lost, 0, np.arange(1, ecg.size + 1))
        np.maximum.accumulate(came, out=came)
        return np.concatenate([[self._ecg_last], ecg])[came]

    def _correct(self, x, low, out, clean, i: int, j: int, start: int) -> None:
        """Subtract this beat's fit from samples ``i:j`` of the chunk (the current beat).

        The basis (:meth:`_start_fit`) is the past beats' first components; the fit of its
        coefficients on the beat's samples so far (less each channel's level over the last
        beat) starts at the mean of the past beats and follows the beat as it comes in:
        the pulse wave varies from beat to beat in amplitude, shape and timing, and one
        wave moves every channel, so the coefficients are shared by the channels. They
        are refitted every ``_block`` samples of the beat, from the blocks before, so the
        result does not depend on how the stream is chunked. The fit sees ``low`` (the
        chunk low-passed) every ``_stride``-th sample of the beat: the pulse wave is slow,
        and the residue of the gradient artifact, which is not, must not steer it.
        """
        a = start + i - self._onset
        b = min(a + j - i, self.length)
        if a >= b:
            return
        self._buf[:, a:b] = x[:, i : i + b - a]
        s = self._stride
        kept = np.arange(-(-a // s) * s, b, s)  # the beat's offsets the fit sees
        self._low_buf[:, kept // s] = low[:, i + kept - a]
        if self._mix is None:
            return
        step, lo = self._block, a
        past = self._beats[: self._mix.shape[0]]
        while lo < b:
            hi = min(b, (lo // step + 1) * step)
            # the fit (p components) is a weighting of the k past beats: applied to the
            # samples as they come, never the whole basis at once (no per-beat spike)
            fit = np.einsum("k,kcm->cm", self._weights, past[:, :, lo:hi])
            out[:, i + lo - a : i + hi - a] -= fit
            if self._ata is not None:
                q = slice(-(-lo // s), -(-hi // s))
                seen = self._low_basis[:, :, q]
                self._pending[0] += np.einsum("pcm,qcm->pq", seen, seen)
                self._pending[1] += np.einsum(
                    "pcm,cm->p", seen, self._low_buf[:, q] - self._low_level
                )
                if hi % step == 0:  # a whole block: into the fit
                    self._ata += self._pending[0]
                    self._atb += self._pending[1]
                    self._pending = [np.zeros_like(self._ata), np.zeros_like(self._atb)]
                    self._coef = np.linalg.solve(self._ata, self._atb)
                    self._weights = (self._mix @ self._coef).astype(np.float32)
            lo = hi
        clean[i : i + b - a] = self.ready and not self._tainted

    def _new_beat(self, peak: int, now: int) -> None:
        """An R-peak at ``peak``, confirmed at ``now``: the beat before ends there."""
        self.counts.beats += 1
        rr = self.detector.rr
        if self._onset is not None:
            length = peak - self._onset
            if rr and length > 1.6 * rr:
                self.counts.long_intervals += 1
                length = round(1.2 * rr)
            length = min(length, self.length)
            carry = min(now - peak, self.length)
            tail = self._buf[:, peak - self._onset : peak - self._onset + carry].copy()
            n_low = -(-length // self._stride)
            if length > 1 and not self._tainted:  # a beat with lost samples: nothing kept
                level = self._buf[:, :length].mean(axis=1, keepdims=True)
                low_level = self._low_buf[:, :n_low].mean(axis=1, keepdims=True)
                if self._whole:
                    self._add(self._buf[:, :length] - level, self._low_buf[:, :n_low] - low_level)
                self._level, self._low_level = level, low_level
            self._buf[:, :carry] = 0.0
            self._buf[:, : tail.shape[1]] = tail
            self._whole = tail.shape[1] == carry
        else:
            self._buf[:] = 0.0
            self._whole = False  # its first samples came before the peak was known
        # the new beat's first samples (before its peak was confirmed) are not in the fit
        self._low_buf[:] = 0.0
        self._tainted = False
        self._onset = peak
        if self._n_beats:
            self._start_fit(round(rr) if rr else self.length)

    def _add(self, beat: np.ndarray, low: np.ndarray) -> None:
        """A whole past beat (less its mean; and low-passed) into the ring, over the oldest."""
        k = self._next
        self._beats[k] = 0.0
        self._beats[k, :, : beat.shape[1]] = beat
        self._low_beats[k] = 0.0
        self._low_beats[k, :, : low.shape[1]] = low
        new = self._low_beats[k]
        dots = np.einsum("kcm,cm->k", self._low_beats[: max(self._n_beats, k + 1)], new)
        self._gram[k, : dots.size] = self._gram[: dots.size, k] = dots
        self._next = (k + 1) % self.n_template
        self._n_beats = min(self._n_beats + 1, self.n_template)
        self.counts.template_beats += 1

    def _start_fit(self, n: int) -> None:
        """The current beat's basis (the past beats' first components) and its prior fit.

        The prior is the mean of the past beats, weighing as ``prior`` of the ``n``
        samples of a typical beat. The basis is kept as its mix of the past beats (``k`` ×
        ``p``); :meth:`_correct` applies the fit to the past beats' samples as they are
        needed, so no beat starts with a product over all of them.
        """
        k = self._n_beats
        mean = np.full(k, 1.0 / k)
        p = min(self.n_components, k)
        if p == 0:
            self._mix, self._ata = mean[:, None], None  # the plain mean: nothing fitted
            self._weights = mean.astype(np.float32)
            return
        with one_thread():  # a thread pool would spin on the other cores after it
            w, v = np.linalg.eigh(self._gram[:k, :k])
        self._mix = v[:, ::-1][:, :p]  # orthonormal: the beats' principal directions
        self._low_basis = np.einsum("kp,kcm->pcm", self._mix, self._low_beats[:k])
        energy = np.maximum(w[::-1][:p], 1e-300) * n / self.length
        self._ata = self.prior * np.diag(energy)
        self._coef = self._mix.T @ mean
        self._weights = (self._mix @ self._coef).astype(np.float32)
        self._atb = self._ata @ self._coef
        self._pending = [np.zeros_like(self._ata), np.zeros_like(self._atb)]
