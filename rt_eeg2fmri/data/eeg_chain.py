"""The EEG chain: one implementation of what the EEG goes through before a model sees it.

channel mapping (montage interpolation of model channels the cap lacks) → units → finite
check → gap fill → [gradient-artifact correction, in the scanner] → resample → band-pass,
then (per window)
:meth:`~rt_eeg2fmri.data.norm.NormStats.apply`.

:class:`EEGChain` is pure numpy (no threads, no LSL, no files): the live source feeds it
each pulled chunk, the window cache feeds it a whole run in blocks (:meth:`EEGChain.run`),
and every stage keeps its state across chunks, so a run fed chunk by chunk gives the same
samples as fed at once — the model learns from exactly what the stream computes. The
band-pass is therefore causal (a Butterworth IIR run forward, MNE's ``method="iir"``,
``phase="forward"`` design), and runs after the resampler, at the model's rate, so it is
the same filter whatever the amplifier's rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._logging import logger
from .channels import ecg_column, map_channels, unit_scales
from .filters import CausalBandpass
from .montage import MAX_DISTANCE, Montage, make_montage
from .preprocessing import Preprocessing, same_rate
from .resample import PolyphaseResampler

_GAP_FACTOR = 1.5  # a timestamp step above 1.5 sample periods is a gap
_LOG_INTERVAL_S = 1.0  # at most one gap warning per second of stream
_RUN_BLOCK = 1 << 16  # input samples per block when a whole run is fed (bounds memory)


@dataclass
class ChunkReport:
    """What one chunk brought.

    Attributes
    ----------
    n_in : int
        Samples received (before gap filling and resampling).
    nonfinite : int
        Samples with a NaN or infinite value in a model channel, written as 0.
    gaps : int
        Timestamp steps larger than 1.5 sample periods (before this chunk's samples).
    samples_lost : int
        Samples missing in those gaps, estimated from the steps.
    clock_jumps : int
        Times the timestamps went back (the source's clock was reset); the samples from
        there on are re-stamped on the sample grid (see :meth:`EEGChain.process`).
    uncorrected : int
        With an in-scanner correction: input samples it did not flag clean (gradient:
        before the first volume marker, while its template fills, where the template did
        not fit; pulse: before the first heartbeat, while its template fills, while the
        ECG lead is off; both: samples lost in a gap or not finite, written as 0).
    no_pulse : int
        With the pulse correction: input samples it did not flag clean (of ``uncorrected``).
    clean : array of shape (n,) of bool | None
        With an in-scanner correction: which samples it flagged clean (the input's samples,
        after gap filling).
    """

    n_in: int = 0
    nonfinite: int = 0
    gaps: int = 0
    samples_lost: int = 0
    clock_jumps: int = 0
    uncorrected: int = 0
    no_pulse: int = 0
    clean: np.ndarray | None = None


class EEGChain:
    """Turn a source's EEG into the model's input, chunk by chunk, with state.

    Parameters
    ----------
    preprocessing : Preprocessing
        With a resolved ``sfreq`` (the model's rate).
    ch_names : list of str
        The model's channels, in the model's order.
    sfreq : float
        The source's rate in Hz (resampled to ``preprocessing.sfreq`` when it differs).
    labels : list of str | None
        The source's channel labels (``None``: unlabelled, see ``assume_order``).
    units : list of str | None
        Per source channel: ``"V"``, ``"µV"``, ``"microvolts"``, ... (``None`` or an empty
        unit: microvolts, the LSL convention, with a warning).
    n_in_chans : int | None
        The source's channel count (default ``len(labels)``).
    allow_missing : bool
        Zero-fill model channels the source lacks (with a warning) instead of
        interpolating them.
    interpolate : bool
        Interpolate model channels the source lacks from its other channels (spherical
        splines, :mod:`~rt_eeg2fmri.data.montage`); ``False``: they are an error.
    positions : mapping of str to array of shape (3,) | None
        Electrode positions (m) of the source's channels, overriding the 10-05 positions
        of their names.
    max_distance : float
        Farthest (m) an interpolated model channel may lie from every recorded electrode.
    assume_order : bool
        For an unlabelled source with as many channels as the model: take them in order.
    fill_gaps : bool
        Write the samples lost in a timestamp gap as zeros on the sample grid, so ``n``
        output samples always span ``n / sfreq`` seconds.
    max_fill : int | None
        Most zeros written per gap, in the source's samples (a stream: its ring's span).
        In the scanner a longer loss, or any with ``fill_gaps=False``, starts the
        corrections' templates over.
    source : str
        The source's name, for messages.
    kind : str
        What the source is, for messages (``"stream"``, ``"recording"``).
    gradient : int | None
        Correct the scanner's gradient artifact live (:class:`~rt_eeg2fmri.realtime.gradient.
        LiveGradientCorrector`) with a template of this many past volumes, at the source's
        rate before resampling; the volume markers come through :meth:`add_volume_marker`.
    t_r : float | None
        The volume spacing (s) for ``gradient``.
    pulse : int | None
        Correct the pulse artifact (BCG) live (:class:`~rt_eeg2fmri.realtime.pulse.
        LivePulseCorrector`) with a template of this many past heartbeats, found on the
        source's ECG channel, at the source's rate after the gradient correction (which
        corrects the ECG channel too).
    ecg : str | None
        The source's ECG channel for ``pulse`` (default: the one typed ECG in ``types``,
        else the one labelled ECG*/EKG*).
    types : list of str | None
        The source's channel types (a stream's ``desc/channels/channel/type``), one per
        source channel; only the ECG lead is looked for among them.
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        *,
        ch_names: Sequence[str],
        sfreq: float,
        labels: Sequence[str | None] | None,
        units: Sequence[str | None] | None,
        n_in_chans: int | None = None,
        allow_missing: bool = False,
        interpolate: bool = True,
        positions=None,
        max_distance: float = MAX_DISTANCE,
        assume_order: bool = False,
        fill_gaps: bool = True,
        max_fill: int | None = None,
        source: str = "EEG",
        kind: str = "stream",
        gradient: int | None = None,
        t_r: float | None = None,
        pulse: int | None = None,
        ecg: str | None = None,
        types: Sequence[str | None] | None = None,
    ) -> None:
        if preprocessing.sfreq is None:
            raise ValueError("EEGChain: 'preprocessing.sfreq' must be resolved (the model's rate).")
        self.preprocessing = preprocessing
        self.ch_names = list(ch_names)
        self.sfreq_in = float(sfreq)
        self.source = source
        index = map_channels(
            labels,
            self.ch_names,
            n_stream_channels=n_in_chans,
            allow_missing=allow_missing,
            assume_order=assume_order,
            stream=source,
            kind=kind,
            keep_missing=interpolate and not allow_missing,
        )
        self.n_in_chans = int(n_in_chans if n_in_chans is not None else len(labels))
        self.montage: Montage | None = None
        if (index < 0).any() and not allow_missing:
            self.montage = make_montage(
                labels, self.ch_names, index, positions=positions, max_distance=max_distance,
                where=source, kind=kind,
            )  # fmt: skip
            logger.info("%s: %s", source, self.montage.describe())
            columns = self.montage.columns
            names = [labels[c] for c in columns]
        else:
            columns, names = index, self.ch_names
        # the source's columns the chain reads, and their units
        scales = unit_scales(units, columns, names, stream=source)
        self._scales = {np.dtype(t): scales.astype(t) for t in (np.float32, np.float64)}
        if self.montage is not None:
            mix = self.montage.matrix.T
            self._mix = {
                np.dtype(t): np.ascontiguousarray(mix, t) for t in (np.float32, np.float64)
            }
        self._index = np.where(columns < 0, 0, columns)
        self._missing = np.flatnonzero(columns < 0)
        n = len(self.ch_names)
        self._resampler = None
        if not same_rate(self.sfreq_in, preprocessing.sfreq):
            self._resampler = PolyphaseResampler(self.sfreq_in, preprocessing.sfreq, n_chans=n)
        self._filter = None
        if preprocessing.bandpass:
            self._filter = CausalBandpass(
                preprocessing.sfreq,
                l_freq=preprocessing.l_freq,
                h_freq=preprocessing.h_freq,
                n_chans=n,
            )
        self.fill_gaps = bool(fill_gaps)
        self.max_fill = None if max_fill is None else int(max_fill)
        self._mapped = np.empty((0, n))
        self._last_ts: float | None = None
        self._clock_shift = 0.0  # added to the source's timestamps since its clock went back
        self._last_gap_log = -math.inf
        self._in_nan_burst = False
        self.gradient = self.pulse = None
        self._ecg_name = None
        if pulse:
            self._ecg_col, self._ecg_name = ecg_column(labels, ecg, types=types, stream=source)
            self._ecg_scale = float(unit_scales(units, np.array([self._ecg_col]),
                                                [self._ecg_name], stream=source)[0])  # fmt: skip
        # for the gradient stage: input samples through it (zero-filled ones too), and the
        # (timestamp, sample index) of the last one
        self._n_seen = 0
        self._anchor: tuple[float, int] | None = None
        self._early: list[float] = []  # markers given before any sample
        if gradient and (t_r is None or not t_r > 0):
            raise ValueError(f"{source}: the gradient correction needs the TR, got {t_r!r}.")
        self._corrections = (gradient, t_r, pulse)
        self._start_corrections()

    def _start_corrections(self) -> None:
        """The in-scanner stages with empty templates (their counts go on)."""
        from ..realtime.gradient import LiveGradientCorrector
        from ..realtime.pulse import LivePulseCorrector

        gradient, t_r, pulse = self._corrections
        n = len(self.ch_names)
        old = (self.gradient, self.pulse)
        if pulse:
            self.pulse = LivePulseCorrector(n, self.sfreq_in, n_template=int(pulse),
                                            source=f"{self.source} ECG {self._ecg_name!r}")  # fmt: skip
        if gradient:
            self.gradient = LiveGradientCorrector(  # with the ECG channel last, if any
                n + bool(pulse), round(t_r * self.sfreq_in), n_template=int(gradient)
            )
        for new, before in zip((self.gradient, self.pulse), old, strict=True):
            if before is not None:
                new.counts = before.counts

    @classmethod
    def for_session(cls, preprocessing: Preprocessing, session, *, ch_names=None) -> EEGChain:
        """The chain of a recorded ``Session`` (its labels, unit, rate and electrode positions)."""
        pre = preprocessing.resolve(session.sfreq)
        names = list(session.ch_names) if ch_names is None else list(ch_names)
        where = session.source.get("eeg") or session.name
        return cls(
            pre,
            ch_names=names,
            sfreq=session.sfreq,
            labels=list(session.ch_names),
            units=[session.eeg_unit] * session.n_chans,
            positions=session.positions,
            source=f"{session.name} ('{where}')",
            kind="recording",
        )

    def continue_after(self, previous: EEGChain) -> None:
        """Measure gaps from where ``previous`` (the chain of a lost connection) stopped."""
        self._last_ts, self._last_gap_log = previous._last_ts, previous._last_gap_log
        self._clock_shift = previous._clock_shift

    # -- properties ------------------------------------------------------------------------
    @property
    def sfreq(self) -> float:
        """Output rate in Hz (the model's)."""
        return float(self.preprocessing.sfreq)

    @property
    def latency(self) -> float:
        """Seconds the resampler holds back (0 without resampling)."""
        return 0.0 if self._resampler is None else self._resampler.latency

    def n_out(self, n_in: int) -> int:
        """Output samples of a run of ``n_in`` input samples (:meth:`run`)."""
        if self._resampler is None:
            return int(n_in)
        return math.ceil(n_in * self._resampler.up / self._resampler.down)

    # -- the chain -------------------------------------------------------------------------
    def process(self, chunk: np.ndarray, timestamps: np.ndarray | None = None):
        """Run the next chunk through the chain.

        Parameters
        ----------
        chunk : array of shape (n_times, n_in_chans)
            Samples as a source delivers them (time first, LSL's layout), any numeric
            dtype.
        timestamps : array of shape (n_times,) | None
            Their timestamps (s); needed for gap detection and returned resampled.

        Returns
        -------
        data : array of shape (n_chans, n_out)
            The model's channels in volts, float32 or float64; may be a view of an internal
            buffer that the next call overwrites.
        times : array of shape (n_out,) | None
            Timestamps of ``data`` (when ``timestamps`` was given).
        report : ChunkReport
        """
        raw = np.asarray(chunk)
        if raw.ndim != 2 or raw.shape[1] != self.n_in_chans:
            raise ValueError(
                f"{self.source}: a chunk must have shape (n_times, {self.n_in_chans}), got "
                f"{raw.shape}."
            )
        k = raw.shape[0]
        report = ChunkReport(n_in=k)
        ecg = self._ecg(raw) if self.pulse is not None else None
        mapped = self._map(raw)
        lost = self._check_finite(mapped, timestamps)  # samples not finite (written as 0)
        report.nonfinite = 0 if lost is None else int(lost.sum())
        mapped *= self._scales[mapped.dtype]
        if self.montage is not None:
            mapped = mapped @ self._mix[mapped.dtype]
        if timestamps is not None and k:
            timestamps = self._unjump(np.asarray(timestamps, dtype=np.float64).reshape(-1), report)
            where, missing = self._check_gaps(timestamps, report)
            if self.gradient is not None or self.pulse is not None:
                self._restart_after(missing)
            if report.samples_lost and self.fill_gaps:
                if ecg is not None:
                    ecg = self._zero_fill(ecg[:, None], timestamps, where, missing)[0][:, 0]
                if self.gradient is not None or self.pulse is not None:
                    came = np.ones(k, bool) if lost is None else ~lost
                    lost = ~self._zero_fill(came[:, None], timestamps, where, missing)[0][:, 0]
                mapped, timestamps = self._zero_fill(mapped, timestamps, where, missing)
        data = mapped.T
        if data.shape[1] and (self.gradient is not None or self.pulse is not None):
            data = self._correct_artifacts(data, ecg, timestamps, lost, report)
        if self._resampler is not None:
            data, timestamps = self._resample(data, timestamps)
        if self._filter is not None:
            data = self._filter.process(data)
        return data, timestamps, report

    def _correct_artifacts(self, data: np.ndarray, ecg, timestamps, lost, report: ChunkReport):
        """The in-scanner stages (gradient, then pulse): corrected samples; counts in ``report``.

        ``lost`` (or None) marks the samples a gap left out (zero-filled) or that were not
        finite: the stages write them as 0, flag them and keep them out of their templates.
        """
        clean = np.ones(data.shape[1], bool)
        if self.gradient is not None:
            if self._early and timestamps is not None:
                self._anchor = (float(timestamps[0]), self._n_seen)
                for when in self._early:
                    self.add_volume_marker(when)
                self._early.clear()
            both = data if ecg is None else np.vstack([data, ecg])
            both, clean = self.gradient.process(both, self._n_seen, lost)
            data, ecg = (both, None) if ecg is None else (both[:-1], both[-1])
            self._n_seen += data.shape[1]
            if timestamps is not None:
                self._anchor = (float(timestamps[-1]), self._n_seen - 1)
        if self.pulse is not None:
            data, beat_clean = self.pulse.process(data, ecg, lost)
            report.no_pulse = int(data.shape[1] - beat_clean.sum())
            clean &= beat_clean
        report.uncorrected = int(data.shape[1] - clean.sum())
        report.clean = clean
        return data

    def _restart_after(self, missing: np.ndarray) -> None:
        """After a loss the gap fill does not cover, the in-scanner templates start over.

        The samples not filled in would put every later sample off the volume grid and the
        heartbeats the templates hold; what comes after such a loss (the scanner may have
        stopped, the person moved) is corrected once new templates are made.
        """
        cap = self.max_fill if self.fill_gaps else 0
        if cap is None or not (missing > cap).any():
            return
        logger.warning(
            "%s: %.1f s of the stream lost, %s: the in-scanner corrections start their "
            "templates over",
            self.source,
            float(missing.max()) / self.sfreq_in,
            f"longer than gaps are filled ({cap / self.sfreq_in:g} s)" if cap else "not filled",
        )
        self._start_corrections()
        if self.gradient is not None:
            self.gradient.counts.restarts += 1

    def add_volume_marker(self, when: float) -> None:
        """A scanner volume marker at time ``when`` (s, the EEG's timestamps' clock).

        For the gradient correction; it may come before or after the samples it marks.
        """
        if self.gradient is None:
            return
        if self._anchor is None:  # no sample yet: placed by the first chunk's timestamps
            self._early.append(float(when))
            return
        t, n = self._anchor
        self.gradient.add_marker(n + round((when - t) * self.sfreq_in))

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds, as if zeros followed (end of a recording).

        Returns
        -------
        data : array of shape (n_chans, n_tail), float64
        """
        n = len(self.ch_names)
        if self._resampler is None:
            return np.empty((n, 0))
        r = self._resampler
        pad = np.zeros((n, math.ceil((r.delay + 1) * r.down / r.up) + 1))
        out = r.process(pad)
        return out if self._filter is None else self._filter.process(out)

    def run(self, eeg: np.ndarray) -> np.ndarray:
        """A whole recorded run through the chain, in blocks (offline; same as chunk by chunk).

        Parameters
        ----------
        eeg : array of shape (n_in_chans, n_times)
            The recording's channels (channels first, as MNE and ``Session`` hold them).

        Returns
        -------
        out : array of shape (n_chans, n_out), float32
            ``n_out = ceil(n_times · sfreq / sfreq_in)``; output sample ``j`` lies at
            ``j / sfreq`` seconds, like input sample ``i`` at ``i / sfreq_in``.
        """
        eeg = np.asarray(eeg)
        n_out = self.n_out(eeg.shape[1])
        out = np.empty((len(self.ch_names), n_out), np.float32)
        pos = 0
        for a in range(0, eeg.shape[1], _RUN_BLOCK):
            data = self.process(eeg[:, a : a + _RUN_BLOCK].T)[0]
            m = min(data.shape[1], n_out - pos)
            out[:, pos : pos + m] = data[:, :m]
            pos += m
        if pos < n_out:
            tail = self.flush()
            out[:, pos:] = tail[:, : n_out - pos]
        return out

    # -- stages ----------------------------------------------------------------------------
    def _map(self, raw: np.ndarray) -> np.ndarray:
        """The channels of ``raw`` the chain reads, shape (n_times, n_read), in a reused buffer.

        The model's channels (in its order), or with a montage the recorded channels it
        interpolates from (:meth:`_mix` makes the model's channels of them).
        """
        k = raw.shape[0]
        dtype = np.float32 if raw.dtype == np.float32 else np.float64
        if self._mapped.shape[0] < k or self._mapped.dtype != dtype:
            self._mapped = np.empty((max(k, 16), self._index.size), dtype)
        mapped = self._mapped[:k]
        if raw.dtype == dtype:
            np.take(raw, self._index, axis=1, out=mapped, mode="clip")
        else:
            mapped[...] = raw[:, self._index]
        if self._missing.size:
            mapped[:, self._missing] = 0
        return mapped

    def _ecg(self, raw: np.ndarray) -> np.ndarray:
        """The ECG channel of ``raw`` in volts, float64 (not finite: 0, no beat there)."""
        ecg = raw[:, self._ecg_col].astype(np.float64) * self._ecg_scale
        ecg[~np.isfinite(ecg)] = 0.0
        return ecg

    def _check_finite(self, mapped: np.ndarray, timestamps) -> np.ndarray | None:
        """Write non-finite values of ``mapped`` as 0; the samples that had any (or None)."""
        finite = np.isfinite(mapped)
        t = "" if timestamps is None or not len(timestamps) else f" at t={timestamps[0]:.3f}"
        if finite.all():
            if self._in_nan_burst:
                logger.info("%s: values are finite again%s", self.source, t)
                self._in_nan_burst = False
            return None
        bad = ~finite
        rows = bad.any(axis=1)
        n_bad = int(np.count_nonzero(rows))
        mapped[bad] = 0
        if not self._in_nan_burst:
            logger.warning(
                "%s: NaN/Inf in %d sample(s)%s, written as 0 (not logged again until values "
                "are finite)",
                self.source,
                n_bad,
                t,
            )
            self._in_nan_burst = True
        return rows

    def _unjump(self, stamps: np.ndarray, report: ChunkReport) -> np.ndarray:
        """Timestamps that never go back: a step back is a clock reset, not time travel.

        When the source's timestamps step back by more than half a sample period (its
        clock was set back, or an LSL time correction jumped), the samples from there on
        are re-stamped to follow the last one on the sample grid, and every later chunk
        keeps that shift; the jump is logged. Windows, gaps and the volume schedule then
        stay on one continuous clock instead of waiting out the jump (every later volume
        late by its size).
        """
        stamps = stamps + self._clock_shift if self._clock_shift else stamps.copy()
        prev = self._last_ts
        period = 1.0 / self.sfreq_in
        while True:
            steps = np.diff(stamps, prepend=stamps[0] if prev is None else prev)
            back = np.flatnonzero(steps < -0.5 * period)
            if not back.size:
                return stamps
            i = int(back[0])
            before = stamps[i - 1] if i else prev
            shift = before + period - stamps[i]
            stamps[i:] += shift
            self._clock_shift += shift
            report.clock_jumps += 1
            logger.warning(
                "%s: the timestamps went back by %.3f s at t=%.3f (the source's clock was "
                "reset?); later samples are re-stamped on the sample grid (+%.3f s in all).",
                self.source,
                shift,
                before,
                self._clock_shift,
            )

    def _check_gaps(self, stamps: np.ndarray, report: ChunkReport):
        """Gaps before the samples of ``stamps``: per gap, the index after it and its size."""
        none = np.zeros(0, dtype=np.intp)
        prev, self._last_ts = self._last_ts, float(stamps[-1])
        if prev is None:
            return none, none
        steps = np.diff(stamps, prepend=prev)
        big = steps > _GAP_FACTOR / self.sfreq_in
        if not big.any():
            return none, none
        gap_steps = steps[big]
        missing = np.maximum(np.rint(gap_steps * self.sfreq_in) - 1, 0).astype(np.intp)
        report.gaps, report.samples_lost = int(gap_steps.size), int(missing.sum())
        if stamps[0] - self._last_gap_log >= _LOG_INTERVAL_S:
            self._last_gap_log = float(stamps[0])
            logger.warning(
                "%s: %d gap(s) in the timestamps, ~%d sample(s) lost (largest %.3f s, t=%.3f)%s",
                self.source,
                report.gaps,
                report.samples_lost,
                gap_steps.max(),
                stamps[0],
                ", written as zeros" if self.fill_gaps else "",
            )
        return np.flatnonzero(big), missing

    def _zero_fill(self, data, stamps, where, missing):
        """``data`` (k, n_chans) and ``stamps`` with zeros inserted before ``where``.

        The inserted samples sit on the source's sample grid just before the sample that
        ends each gap; at most ``max_fill`` per gap.
        """
        count = missing if self.max_fill is None else np.minimum(missing, self.max_fill)
        pos = np.repeat(where, count)
        back = np.concatenate([np.arange(c, 0, -1) for c in count]) / self.sfreq_in
        fill_t = np.repeat(stamps[where], count) - back
        return np.insert(data, pos, 0.0, axis=0), np.insert(stamps, pos, fill_t)

    def _resample(self, data: np.ndarray, timestamps):
        if timestamps is None:
            return self._resampler.process(data), None
        return self._resampler.process(data, timestamps)
