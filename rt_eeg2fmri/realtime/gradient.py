"""Causal gradient-artifact correction, chunk by chunk: average artifact subtraction live.

The offline correction (:mod:`rt_eeg2fmri.data.correct`, MNE's ``GradientRemover``)
averages the four volumes before and the four after each one, so it cannot run while the
scanner does. :class:`LiveGradientCorrector` uses only the past: the template of volume
``v`` is the mean of the ``n_template`` volumes before it, and it is subtracted sample by
sample as the samples arrive — no sample waits for the rest of its volume. The template
keeps the volumes' means: the artifact has an offset of its own (tens of µV, steady from
volume to volume), which MNE's per-volume linear detrend removes offline but which needs
the whole volume to estimate. Subtracting the past volumes' mean removes it causally, with
the EEG's slowest part (a moving average over ``n_template`` volumes, a high-pass near
``1 / (n_template · TR)``); a model without a high-pass of its own would otherwise see the
offset as a shift of every channel.

Two refinements over a plain moving average, both made once per volume in the frequency
domain (the volume's harmonics):

- **Gating.** The mean of N volumes holds 1/N of everything that does not repeat from
  volume to volume — the EEG, and the pulse artifact, which is tens of µV below 8 Hz —
  and subtracting it adds that back (a floor near −9 dB of the EEG with N = 8, far more
  below 8 Hz where the pulse artifact is). Each harmonic of the template is weighed by how
  consistently it repeats (``GATE``): the artifact's harmonics are kept whole, the rest
  dropped.
- **Sub-sample alignment.** With the EEG clock not locked to the scanner's, each volume's
  artifact lands on another sub-sample phase (37 ppm at 5 kHz: a third of a sample per
  2-s volume) and the mean blurs it. Each volume's timing is measured to a fraction of a
  sample (the slope of the phase of its cross-spectrum with its template) and a line
  through the past volumes' timing predicts the next; the past volumes are shifted there
  (a phase ramp) before they are averaged, whenever they would lie ``ALIGN_MIN`` or more
  apart.

Volume onsets come from the scanner's markers (:meth:`LiveGradientCorrector.add_marker`,
as absolute sample indices). Once one marker is known, the next onsets are predicted at
the volume spacing, so a sample is corrected when it arrives even if its marker comes
later or never (a missed marker). The volume grid stays where the first marker put it;
each marker is expected where the last one lay against it, so markers that walk off the
grid with a scanner clock that drifts (spacings of N and N - 1 samples) are followed. A
marker far from where the next ones are expected is an extra one and is ignored; four in a row evenly spaced at another spacing (not a multiple of the
volume's: missed markers) mean the acquisition changed (a new TR): the template starts
over.

Samples are flagged (``clean`` is False) before the first marker and until
``n_template`` whole volumes form the template (volume ``v``'s is made from the volumes up
to ``v - 2``, on a worker thread while ``v - 1`` comes in); they are corrected with what
template there is (from the second volume on) but must not be taken as clean EEG. After a
marker off the volume grid nothing is flagged clean until a marker on it (a spurious
marker costs at most a volume of flags), and after two no volume joins the template (the
TR is changing). A volume predicted without its marker whose first samples the template
does not fit (the correction would add power, not remove it) means the scanner stopped:
nothing is subtracted until a marker comes. Where that is seen is decided sample by sample
(the 16th sample of the volume at the earliest), so it does not depend on the chunking: the
samples before it were corrected, and flagged, as a stream chunked finer gives them.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._blas import one_thread

N_VOLUMES = 8  # past volumes the template is made of (MNE's offline default: 4 + 4)
GATE = 2.0  # how many times its expected share of the mean a harmonic's spread must stay under
ALIGN_MIN = 0.1  # samples: past volumes' artifacts closer than this to the current one's
# timing are averaged as they are


@dataclass
class GradientCounts:
    """What a :class:`LiveGradientCorrector` has seen.

    Attributes
    ----------
    volumes : int
        Whole volumes added to the template.
    markers : int
        Markers accepted.
    predicted : int
        Volumes that began without their marker (corrected on the predicted onset).
    extra : int
        Markers ignored: far from every predicted onset (a spurious marker, or the first
        ones after the TR changed).
    restarts : int
        Times the template started over (the volume spacing changed).
    stops : int
        Times the template did not fit where a volume was predicted without its marker
        (the scanner stopped): nothing is subtracted until the next marker.
    lost : int
        Samples given as lost (a gap in the stream, or not finite): written as 0, flagged,
        and their volumes kept out of the template.
    """

    volumes: int = 0
    markers: int = 0
    predicted: int = 0
    extra: int = 0
    restarts: int = 0
    stops: int = 0
    lost: int = 0


class LiveGradientCorrector:
    """Subtract the gradient artifact from EEG chunks as they arrive, from past volumes only.

    Parameters
    ----------
    n_chans : int
        Channels in every chunk (every one is corrected: leave out an ECG channel).
    volume_samples : int
        Samples from one volume's onset to the next (TR × rate, rounded).
    n_template : int
        Past volumes averaged into the template (MNE's offline default uses 4 + 4).
    tolerance : int
        How far (samples) a marker may lie from its predicted onset and still be taken
        as that volume's.
    """

    def __init__(
        self,
        n_chans: int,
        volume_samples: int,
        *,
        n_template: int = N_VOLUMES,
        tolerance: int = 2,
    ) -> None:
        if int(volume_samples) < 2:
            raise ValueError(f"volume_samples must be >= 2, got {volume_samples!r}.")
        if int(n_template) < 1:
            raise ValueError(f"n_template must be >= 1, got {n_template!r}.")
        self.n_chans, self.n_template = int(n_chans), int(n_template)
        self.tolerance = int(tolerance)
        self.counts = GradientCounts()
        self._seen: list[int] = []  # the last markers, whatever they matched
        self._pool: ThreadPoolExecutor | None = None  # makes the templates, a volume ahead
        self._restart(int(volume_samples), None)

    def _restart(self, length: int, onset: int | None) -> None:
        """An empty template for volumes of ``length`` samples, the first at ``onset``."""
        if getattr(self, "_coming", None) is not None:
            self._coming.result()  # the template in the works uses the state reset here
        self._coming: Future | None = None  # the next volume's template, in the works
        self._current: _Template | None = None  # the current volume's
        self.length = length
        # the past volumes' spectra (complex64), their sum and the sum of their powers; the
        # template (the gated mean) is made from them once per volume
        self._past: deque[np.ndarray] = deque()
        self._sum = np.zeros((self.n_chans, length // 2 + 1), np.complex128)
        self._sum_power = np.zeros((self.n_chans, length // 2 + 1))
        # sub-sample timing: each past volume's number, onset and where its artifact
        # began (a fractional sample); the spectra are kept as they came
        self._timing: deque[tuple[int, int, float]] = deque()  # number, onset, artifact's
        self._ramp = 2j * np.pi * np.arange(length // 2 + 1) / length
        self._fit_k = timing_harmonics(length)
        self._origin: int | None = None  # the onset of the template's first volume
        self._buf = np.zeros((self.n_chans, length))
        self._ahead: list[int] = []  # markers of volumes still to come
        # where the markers lie against the volume grid (samples): with a scanner clock
        # that drifts against the EEG's they walk off it a fraction of a sample per
        # volume. The grid stays (the artifact's drift is measured and aligned to a
        # fraction of a sample; moving the grid would leave samples of no volume or of
        # two); each marker is expected where the last one lay.
        self._phase = 0
        self._doubt, self._n_doubts = False, 0  # markers off the grid since the last on it
        self._begin(onset, marked=onset is not None)

    def _begin(self, onset: int | None, *, marked: bool) -> None:
        self._onset, self._marked = onset, marked
        self._first = self._last = None  # offsets of the current volume seen so far
        self._fits = self._n_doubts < 2  # its timing is not in doubt: it may join the template
        self._energy = np.zeros(4)  # corrected, raw and template power so far; samples

    @property
    def ready(self) -> bool:
        """Whether the current volume's template holds ``n_template`` whole volumes."""
        return self._current is not None and self._current.n >= self.n_template

    def add_marker(self, sample: int) -> None:
        """A volume marker at absolute sample index ``sample``.

        A marker may come before or after the samples it marks: after them it confirms the
        onset they were corrected on; ahead of them it anchors that volume's onset.
        """
        sample = int(sample)
        self._seen = [*self._seen[-3:], sample]
        if self._new_spacing():
            self.counts.restarts += 1
            self.counts.markers += 1
            self._restart(int(round(np.median(np.diff(self._seen)))), sample)
            return
        if self._onset is None:
            self._begin(sample, marked=True)
            self._phase = 0
            self.counts.markers += 1
            return
        k = round((sample - self._onset - self._phase) / self.length)
        if abs(sample - (self._onset + self._phase + k * self.length)) > self.tolerance:
            # off the volume grid: a spurious marker, or the TR changed. Until a marker on
            # the grid, nothing is flagged clean; after two, no volume joins the template.
            self.counts.extra += 1
            self._n_doubts += 1
            self._doubt = True
            if self._n_doubts >= 2:
                self._fits = False
            return
        self.counts.markers += 1
        self._doubt, self._n_doubts = False, 0
        self._phase = sample - (self._onset + k * self.length)
        if k == 0:
            self._marked = True
        elif k > 0:
            self._ahead.append(sample)

    def _new_spacing(self) -> bool:
        """Whether the acquisition changed: the last four markers evenly spaced otherwise.

        Not at the template's spacing, nor at a multiple of it (missed markers).
        """
        if len(self._seen) < 4:
            return False
        gaps = np.diff(self._seen)
        if gaps.min() <= 2 * self.tolerance or np.ptp(gaps) > 2 * self.tolerance:
            return False
        k = max(1, round(gaps.mean() / self.length))
        return abs(gaps.mean() - k * self.length) > self.tolerance

    def process(
        self, chunk: np.ndarray, start: int, lost: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct ``chunk`` (``n_chans`` × ``n``), whose first sample is ``start``.

        Chunks must follow one another (``start`` = the previous chunk's end). ``lost``
        (``n``, bool) marks samples that never came (a gap in the stream, written as 0) or
        were not finite: there is nothing to subtract the artifact from, so they are
        written as 0 and flagged, and a volume that holds any is kept out of the template
        (the volumes before it still make it).

        Returns
        -------
        corrected : array (n_chans, n), float64
        clean : array (n,), bool
            False before the first marker, while the template is not ready, while a marker
            off the volume grid puts the timing in doubt, once the scanner stopped, and
            where samples were lost.
        """
        x = np.asarray(chunk, dtype=float)
        n = x.shape[1]
        out = x.copy()
        clean = np.zeros(n, bool)
        if lost is not None and not lost.any():
            lost = None
        i = 0
        while i < n and self._onset is not None:
            offset = start + i - self._onset
            if offset < 0:  # before the first volume: as it came, flagged
                i = min(n, i - offset)
                continue
            if offset >= self.length:  # this volume is over: the next one begins
                self._next_volume()
                continue
            j = min(n, i + self.length - offset)
            piece = x[:, i:j]
            came = slice(None)  # the piece's samples that came (all, without a loss)
            if lost is not None and lost[i:j].any():
                self._fits = False  # zeros where the artifact was: not a template volume
                came = ~lost[i:j]
            if self._current is not None:
                template = self._current.wave[:, offset : offset + j - i]
                fixed = piece - template
                stop = None if self._marked else self._stops_at(piece, template, fixed, came)
                if stop is not None:
                    # a volume without its marker that the template does not fit: the
                    # scanner stopped. Nothing is subtracted from that sample on until a
                    # marker comes.
                    out[:, i : i + stop] = fixed[:, :stop]  # as a stream chunked finer gives
                    clean[i : i + stop] = self.ready and not self._doubt
                    self.counts.stops += 1
                    self._begin(None, marked=False)
                    break
                out[:, i:j] = fixed
                clean[i:j] = self.ready and not self._doubt
            self._buf[:, offset : offset + j - i] = piece
            if self._first is None:
                self._first = offset
            self._last = offset + j - i
            i = j
        if lost is not None:
            out[:, lost] = 0.0
            clean[lost] = False
            self.counts.lost += int(lost.sum())
        return out, clean

    def _stops_at(self, piece, template, fixed, came) -> int | None:
        """The sample of ``piece`` where the template is found not to fit (``None``: it fits).

        It does not fit once, over enough of the volume's samples, subtracting it adds half
        the power again or more and it is no mere residue: a quarter of the samples' power
        or more (in the quiet parts of a volume the template is the averaged EEG, about 1/N
        of their power). The sums run sample by sample, so where the stop is seen does not
        depend on how the stream is chunked; ``came`` leaves lost samples out of them.
        """
        # einsum, not BLAS: a threaded BLAS spins its threads after every call, which costs
        # the acquisition thread's core as much again
        sums = np.stack([_powers(fixed), _powers(piece), _powers(template),
                         np.ones(piece.shape[1])])  # fmt: skip
        if not isinstance(came, slice):
            sums[:, ~came] = 0.0
        np.cumsum(sums, axis=1, out=sums)
        sums += self._energy[:, None]
        hit = (sums[3] >= max(16, self.length // 20)) & (sums[0] > 1.5 * sums[1])
        hit &= sums[2] > 0.25 * sums[1]
        if hit.any():
            return int(np.argmax(hit))
        self._energy = sums[:, -1].copy()
        return None

    def _next_volume(self) -> None:
        """The current volume is over: into the template if whole; the next one begins.

        The templates are made on a worker thread, a volume ahead, so the end of a volume
        (where the model's window ends) costs the stream nothing: the template of volume
        ``v + 1`` is the one made while volume ``v`` came in, from the volumes up to
        ``v - 1`` (two before it; the first only, from the first volume, is made at once).
        """
        joined = None
        if self._first == 0 and self._last == self.length and self._fits:
            joined = (self._buf, self._onset, self._current)
            self._buf = np.zeros_like(self._buf)
            self.counts.volumes += 1
        if not self._marked:
            self.counts.predicted += 1
        nxt = self._onset + self.length
        near = [m for m in self._ahead if abs(m - nxt - self._phase) <= self.tolerance]
        self._ahead = [m for m in self._ahead if m > nxt + self._phase + self.tolerance]
        if near:
            self._phase = near[0] - nxt
        self._begin(nxt, marked=bool(near))
        if self._coming is not None:
            self._current = _moved(self._coming.result(), self._onset, self._ramp)
        elif joined is not None:  # nothing in the works (the first volume): made now
            self._current = self._work(joined, self._onset)
            joined = None
        if self._past or joined is not None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="gradient-template")
            self._coming = self._pool.submit(self._work, joined, self._onset + self.length)

    def _work(self, joined, onset: int) -> _Template | None:
        """(On the worker) ``joined`` into the past volumes; the template of ``onset``'s."""
        if joined is not None:
            self._join(*joined)
        return self._template(onset) if self._past else None

    def _join(self, buf: np.ndarray, onset: int, used: _Template | None) -> None:
        """A whole volume (begun at sample ``onset``) into the past volumes.

        Where its artifact began is measured to a fraction of a sample: from where the
        template it was corrected with (``used``) put it, by the slope of the phase of
        their cross-spectrum over the low harmonics.
        """
        # single precision: the template's rounding (1e-7 of a mV artifact) is far below
        # the EEG, and it halves the per-volume work
        spec = np.fft.rfft(buf.astype(np.float32), axis=1)
        at = float(onset)
        if used is not None:
            late = phase_lag(spec, used.spectrum, self._fit_k, self.length)
            at = used.at + float(np.clip(late, -1.0, 1.0))
        elif self._past:
            at = self._predict(onset)
        if self._origin is None:
            self._origin = onset
        self._past.append(spec)  # complex64: the rfft of float32
        self._timing.append((self._number(onset), onset, at))
        self._sum += spec
        self._sum_power += spec.real**2 + spec.imag**2
        if len(self._past) > self.n_template:
            old = self._past.popleft()
            self._timing.popleft()
            self._sum -= old
            self._sum_power -= old.real**2 + old.imag**2

    def _number(self, onset: int) -> int:
        """The volume's number since the template's first."""
        return round((onset - self._origin) / self.length)

    def _line(self) -> tuple[float, float]:
        """A line through the past volumes' timing (the clocks' rates differ by a constant).

        Returns the samples per volume and where volume 0's artifact began.
        """
        u = np.array([t[0] for t in self._timing], float)
        at = np.array([t[2] for t in self._timing])
        if np.ptp(u) == 0:
            return float(self.length), float(at[-1] - self.length * u[-1])
        with one_thread():  # a thread pool would spin on the other cores after it
            slope, at0 = np.polyfit(u, at, 1)
        return float(slope), float(at0)

    def _predict(self, onset: int) -> float:
        """Where the artifact of the volume begun at ``onset`` should begin (fractional)."""
        slope, at0 = self._line()
        return at0 + slope * self._number(onset)

    def _template(self, onset: int) -> _Template:
        """The template of the volume begun at ``onset``: the past volumes, shifted and gated.

        Each past volume is shifted to where this volume's artifact should begin. With the
        EEG clock locked to the scanner's every volume's artifact begins on the same
        sub-sample phase and the volumes are averaged as they are. Otherwise (the
        past volumes' artifacts, on the line through their timing, would lie more than
        ``ALIGN_MIN`` samples apart from this one's) each is shifted by a phase ramp.
        """
        n = len(self._past)
        slope, at0 = self._line()
        due = at0 + slope * self._number(onset) - onset  # how late its artifact begins
        # how late each past volume's artifact began: measured, and on the line
        measured = np.array([at - start for _, start, at in self._timing])
        fitted = np.array([at0 + slope * u - start for u, start, _ in self._timing])
        lag = due - fitted
        if np.abs(lag).max() < ALIGN_MIN:
            mean = (self._sum * (1.0 / n)).astype(np.complex64)
            late = float(measured.mean())  # where the plain mean's artifact begins
        else:
            shifts = np.exp(-np.outer(lag, self._ramp)).astype(np.complex64)
            mean = np.einsum("vck,vk->ck", np.asarray(self._past), shifts)
            mean *= 1.0 / n
            late = due + float((measured - fitted).mean())
        # the template's own timing, against which the volume it corrects is measured: a
        # prediction in its place would add its error to every measurement, and the line
        # would wander off (locked clocks would be shifted after a few minutes)
        wave = np.fft.irfft(gate(mean, self._sum_power, n), n=self.length, axis=1)
        return _Template(onset, onset + late, n, wave, mean)


def gate(mean: np.ndarray, sum_power: np.ndarray, n: int) -> np.ndarray:
    """The mean of ``n`` volumes' spectra, each harmonic kept as far as it repeats.

    The mean of N volumes holds the artifact plus 1/N of whatever does not repeat (the
    EEG; the pulse artifact, tens of µV below 8 Hz), and subtracting it would add that
    back. At each harmonic of the volume (per channel) the mean is weighed by
    ``max(0, 1 − GATE·v / (N·|m|²))``, ``m`` the mean and ``v`` the volumes' spread about
    it (a phase shift leaves each volume's power as it is): the artifact's harmonics, the
    same in every volume, are kept whole; those that are mostly what does not repeat are
    dropped.

    Parameters
    ----------
    mean : array of shape (n_chans, n_harmonics), complex
    sum_power : array of shape (n_chans, n_harmonics)
        The sum of the volumes' powers ``|spectrum|²``.
    n : int
        Volumes in the mean.
    """
    if n < 2:
        return mean
    # spread / (n·m2) = (power / (n·m2) - 1) · n / (n - 1): one ratio, in place
    gain = mean.real**2 + mean.imag**2
    gain *= n
    np.maximum(gain, np.finfo(np.float32).tiny, out=gain)  # no mean: gated out
    np.divide(sum_power, gain, out=gain, casting="unsafe")
    gain -= 1.0
    gain *= -GATE / (n - 1)
    gain += 1.0
    np.clip(gain, 0.0, 1.0, out=gain)
    return mean * gain


def timing_harmonics(length: int) -> slice:
    """The harmonics of a ``length``-sample volume its artifact's timing is measured on."""
    return slice(1, max(2, length // 8))


def phase_lag(spec: np.ndarray, ref: np.ndarray, harmonics: slice, length: int) -> float:
    """How many samples later the artifact in ``spec`` begins than the one in ``ref``.

    The weighted slope of the phase of their cross-spectrum (summed over channels) over
    ``harmonics`` of the ``length``-sample volume: a fraction of a sample, good to about
    ``length / (2 · harmonics.stop)`` samples either way.

    Parameters
    ----------
    spec, ref : array of shape (n_chans, n_harmonics), complex
        The two volumes' spectra (``np.fft.rfft`` along time), up to ``harmonics.stop`` at
        least.
    """
    cross = np.einsum("ck,ck->k", spec[:, harmonics], np.conj(ref[:, harmonics]))
    w, phase = np.abs(cross), np.angle(cross)
    ks = np.arange(harmonics.start, harmonics.start + phase.size)
    denom = float(np.sum(w * ks**2))
    return -length / (2 * np.pi) * float(np.sum(w * ks * phase)) / denom if denom else 0.0


@dataclass
class _Template:
    """A volume's template.

    Where the volume begins (sample) and its artifact (fractional sample), how many past
    volumes made it, the template and its (ungated) spectrum.
    """

    onset: int
    at: float
    n: int
    wave: np.ndarray
    spectrum: np.ndarray


def _moved(t: _Template | None, onset: int, ramp: np.ndarray) -> _Template | None:
    """``t`` for a volume that began at ``onset`` instead (a marker ahead moved it).

    The artifact stays where ``t`` put it.
    """
    if t is None or t.onset == onset:
        return t
    m = onset - t.onset
    return _Template(onset, t.at, t.n, np.roll(t.wave, -m, axis=1), t.spectrum * np.exp(ramp * m))


def _powers(a: np.ndarray) -> np.ndarray:
    """Sum of squares of each column of ``a`` (channels × samples): shape (n_samples,)."""
    return np.einsum("ij,ij->j", a, a)
