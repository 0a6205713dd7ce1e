"""Offline correction of EEG recorded in the scanner, built on MNE.

- Gradient artifact: average artifact subtraction (AAS, Allen 2000) on the scanner's
  volume markers, MNE's :class:`mne.preprocessing.GradientRemover` (a template of the
  four volumes before and the four after). MNE leaves the first and last volumes of a run
  uncorrected (they lack a full window); here they get the template of the nearest
  volumes that exist (the window shifted inward), from the same per-volume access. With
  an EEG clock not locked to the scanner's, the volumes averaged are first aligned to a
  fraction of a sample on the one corrected (MNE anchors them on whole samples, which
  blurs the template). The template is gated per harmonic, as the live one is (the mean
  of N volumes holds 1/N of the EEG, which MNE subtracts back), and the volumes are not
  detrended (MNE's per-volume detrend takes the EEG's own trend out of each volume, a step
  at every volume's edge); ``gated=False`` keeps MNE's template.
- Pulse artifact: optimal basis sets (OBS, Niazy 2005), MNE's
  :func:`mne.preprocessing.apply_pca_obs`, on the R-peaks that MNE's
  :func:`mne.preprocessing.find_ecg_events` detects on the ECG channel.
- ``live=True``: the causal corrections the stream runs (the EEG chain's gradient and
  pulse stages: :mod:`rt_eeg2fmri.realtime.gradient`, :mod:`rt_eeg2fmri.realtime.pulse`),
  over the recording in 100-ms chunks, so a recording shows what a live session would
  have given (``--correct live``). The samples they flag (templates filling, ECG lead
  off) are annotated ``BAD_uncorrected``.

:func:`correct_raw` returns the corrected recording and a report; ``rt-eeg2fmri correct``
writes it as BrainVision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._logging import logger
from .channels import is_ecg_label
from .eeg_io import marker_hint, scanner_onsets, stim_picks
from .triggers import TriggerChannel

CORRECTIONS = ("gradient", "bcg")
LIVE = "live"  # the causal corrections of the stream, not MNE's offline ones
# the live corrections' version: window caches of EEG read with them are keyed on it, so a
# cache built by an older version is not reused (3: gated, aligned gradient template;
# 4: 30 past beats and a stronger prior in the pulse fit)
LIVE_VERSION = 4
# samples beyond a volume on either side that the offline template's sub-sample shift runs
# over, so that what it wraps around is not the volume's own
SHIFT_MARGIN = 128


def parse_corrections(spec) -> tuple[str, ...]:
    """``"gradient,bcg"`` (or a sequence) → the corrections asked for, checked.

    ``live`` (alone: both corrections) asks for the stream's causal corrections; it comes
    last in the result.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [str(i).strip().lower() for i in items if str(i).strip()]
    unknown = sorted(set(items) - {*CORRECTIONS, LIVE})
    if unknown or not items:
        raise ValueError(
            f"corrections must be 'gradient', 'bcg' or 'gradient,bcg' (add 'live' for the "
            f"stream's causal corrections), got {spec!r}."
        )
    if items == [LIVE]:
        items = [*CORRECTIONS, LIVE]
    return tuple(c for c in (*CORRECTIONS, LIVE) if c in items)


@dataclass
class CorrectionReport:
    """What a correction did.

    Attributes
    ----------
    volumes : int
        Volume markers used for the gradient template (0 without ``gradient``).
    edge_volumes : int
        Volumes at the run's ends corrected with a template shifted inward.
    aligned_volumes : int
        Volumes whose template was aligned to a fraction of a sample (the EEG clock not
        locked to the scanner's).
    beats : int
        R-peaks used for the pulse artifact (0 without ``bcg``).
    ecg : str | None
        The ECG channel.
    flagged : int
        With ``live``: samples the live corrections did not flag clean (the first volumes
        and beats, while their templates fill; the ECG lead off), annotated
        ``BAD_uncorrected``, so the windows that hold them are left out of training and
        scoring as MNE leaves out bad spans.
    marked : int
        Volume onsets of a trigger channel (``marker`` ``eeg:CHANNEL...``) written into the
        corrected copy as ``R128`` annotations (0 when it had its own), so the tools that
        read it next find its volumes without the flag.
    notes : list of str
    """

    volumes: int = 0
    edge_volumes: int = 0
    aligned_volumes: int = 0
    beats: int = 0
    ecg: str | None = None
    flagged: int = 0
    marked: int = 0
    notes: list = field(default_factory=list)


def _ecg_channel(raw, ecg: str | None) -> str:
    if ecg is not None:
        if ecg not in raw.ch_names:
            raise ValueError(
                f"ECG channel {ecg!r} is not in the recording (channels: {raw.ch_names})."
            )
        return ecg
    typed = [raw.ch_names[i] for i, t in enumerate(raw.get_channel_types()) if t == "ecg"]
    named = [n for n in raw.ch_names if is_ecg_label(n)]
    found = typed or named
    if not found:
        raise ValueError(
            "the pulse (BCG) correction needs an ECG channel: none is typed ECG or named "
            "ECG*/EKG*; name it with ecg=... (--ecg NAME)."
        )
    return found[0]


def correct_raw(
    raw,
    *,
    gradient: bool = True,
    bcg: bool = True,
    marker: str = "R128",
    ecg: str | None = None,
    window: tuple[int, int] = (4, 4),
    gated: bool = True,
    n_components: int = 4,
    live: bool = False,
    volumes: int | None = None,
    beats: int | None = None,
):
    """Correct the gradient and/or pulse artifact of an in-scanner recording.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording, with its volume markers as annotations or on a trigger channel
        (loaded in memory here).
    gradient, bcg : bool
        Which artifacts to correct.
    marker : str
        The scanner's volume marker, or the trigger channel that carries them
        (``eeg:CHANNEL[:LEVEL|:mask=BITS]``, :func:`~rt_eeg2fmri.data.eeg_io.scanner_onsets`).
    ecg : str | None
        The ECG channel (default: the one typed ECG, else named ECG*/EKG*).
    window : (int, int)
        Volumes before and after in each gradient template.
    gated : bool
        Gate the gradient template per harmonic and keep the volumes' trends (see
        :func:`_aas`); ``False``: MNE's template, the mean of the detrended volumes.
    n_components : int
        Principal components of the pulse artifact's optimal basis set.
    live : bool
        Correct as the stream does, causally (``volumes`` past volumes and ``beats`` past
        heartbeats in the templates; default the stream's, 8 and 30), instead of with
        MNE's offline functions.

    Returns
    -------
    raw : mne.io.Raw
        A corrected copy (the ECG channel kept, typed ``ecg``).
    report : CorrectionReport
    """
    import mne

    if not (gradient or bcg):
        raise ValueError("nothing to correct: ask for the gradient and/or the bcg correction.")
    raw = raw.copy().load_data()
    report = CorrectionReport(marked=_mark_volumes(raw, marker))
    ecg_name = None
    if bcg or ecg is not None:
        ecg_name = _ecg_channel(raw, ecg)
        raw.set_channel_types({ecg_name: "ecg"}, on_unit_change="ignore")
    trigger = stim_picks(raw, marker)  # a trigger lead MNE types as EEG is not corrected
    picks = [i for i in mne.pick_types(raw.info, eeg=True, exclude=[]) if i not in trigger]
    if live:
        from ..realtime.gradient import N_VOLUMES
        from ..realtime.pulse import N_BEATS

        volumes, beats = volumes or N_VOLUMES, beats or N_BEATS
        return _correct_live(raw, picks, report, gradient=gradient, bcg=bcg, marker=marker,
                             ecg=ecg_name, volumes=volumes, beats=beats)  # fmt: skip
    if gradient:
        onsets = _volume_onsets(raw, marker)
        samples = np.round(onsets * raw.info["sfreq"]).astype(int)
        # the ECG lead carries the gradient artifact too: corrected first, its R-peaks are
        # found under the artifact (as the live chain does)
        both = list(picks) + ([raw.ch_names.index(ecg_name)] if ecg_name else [])
        fixed, n_edge, n_aligned = _aas(raw.get_data(both), samples, window, gated=gated)
        raw._data[both] = fixed
        report.volumes, report.edge_volumes = int(samples.size), n_edge
        report.aligned_volumes = n_aligned
    if bcg:
        peaks, _, _ = mne.preprocessing.find_ecg_events(raw, ch_name=ecg_name, verbose="error")
        qrs = (peaks[:, 0] - raw.first_samp) / raw.info["sfreq"]
        qrs = qrs[(qrs > 0) & (qrs < raw.times[-1])]
        if qrs.size < 3:
            raise ValueError(
                f"the pulse (BCG) correction found {qrs.size} R-peaks on {ecg_name!r}: is the "
                "ECG lead connected?"
            )
        names = [raw.ch_names[i] for i in picks]
        mne.preprocessing.apply_pca_obs(
            raw, names, qrs_times=qrs, n_components=n_components, copy=False, verbose="error"
        )
        report.beats, report.ecg = int(qrs.size), ecg_name
    logger.info(
        "Corrected: gradient on %d volumes (%d at the ends with a shifted template, %d "
        "aligned to a fraction of a sample), pulse artifact on %d beats%s.",
        report.volumes,
        report.edge_volumes,
        report.aligned_volumes,
        report.beats,
        f" of {ecg_name!r}" if report.beats else "",
    )
    return raw, report


def _volume_onsets(raw, marker: str) -> np.ndarray:
    """The scanner's volume onsets for the gradient template (s), at least two."""
    onsets = scanner_onsets(raw, marker)
    if onsets.size < 2:
        hint = marker_hint(raw, marker)
        raise ValueError(
            f"the gradient correction needs the scanner's volume markers ({marker!r}); "
            f"found {onsets.size}." + (f" The recording has {hint}" if hint else "")
        )
    return onsets


def _correct_live(raw, picks, report, *, gradient, bcg, marker, ecg, volumes, beats):
    """``correct_raw(live=True)``: the EEG chain's causal stages over the recording."""
    from .eeg_chain import EEGChain
    from .preprocessing import Preprocessing

    sfreq = float(raw.info["sfreq"])
    names = [raw.ch_names[i] for i in picks]
    labels = names + ([ecg] if bcg else [])
    onsets = _volume_onsets(raw, marker) if gradient else np.zeros(0)
    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=1.0), ch_names=names, sfreq=sfreq, labels=labels,
        units=["V"] * len(labels), gradient=volumes if gradient else None,
        t_r=float(np.median(np.diff(onsets))) if gradient else None,
        pulse=beats if bcg else None, ecg=ecg, fill_gaps=False, source=f"'{raw.filenames[0]}'",
    )  # fmt: skip
    for t in onsets:  # given ahead of their samples: each anchors its volume's onset
        chain.add_volume_marker(float(t))
    data = raw.get_data(picks=[raw.ch_names.index(c) for c in labels])
    stamps = np.arange(data.shape[1]) / sfreq
    step = max(1, round(0.1 * sfreq))  # 100-ms chunks, as the stream pulls
    clean = np.ones(data.shape[1], bool)
    for a in range(0, data.shape[1], step):
        out, _, chunk = chain.process(data[:, a : a + step].T, stamps[a : a + step])
        raw._data[picks, a : a + out.shape[1]] = out
        clean[a : a + out.shape[1]] = chunk.clean
    report.flagged = int(clean.size - clean.sum())
    _annotate_flagged(raw, clean)
    if gradient:
        report.volumes = chain.gradient.counts.volumes
    if bcg:
        report.beats, report.ecg = chain.pulse.counts.beats, ecg
        if chain.pulse.counts.lead_off:
            report.notes.append(f"the ECG lead was off {chain.pulse.counts.lead_off} time(s)")
    logger.info(
        "Corrected live (causal): gradient on %d volumes, pulse artifact on %d beats; %.0f %% "
        "of the samples flagged (templates filling%s).",
        report.volumes, report.beats, 100 * report.flagged / max(1, data.shape[1]),
        ", ECG lead off" if report.notes else "",
    )  # fmt: skip
    return raw, report


def _mark_volumes(raw, marker: str) -> int:
    """The onsets of a trigger-channel ``marker`` as ``R128`` annotations of ``raw``.

    Only where ``marker`` names a channel and ``raw`` has no ``R128`` annotation of its
    own; returns how many were added.
    """
    if TriggerChannel.parse(marker, what="'marker'") is None or scanner_onsets(raw, "R128").size:
        return 0
    onsets = scanner_onsets(raw, marker)
    shift = raw.first_time if raw.annotations.orig_time is not None else 0.0
    raw.annotations.append(onsets + shift, 0.0, [VOLUME_MARKER] * onsets.size)
    return int(onsets.size)


#: The annotation a corrected copy marks each volume with (as the BrainVision Recorder does)
VOLUME_MARKER = "Response/R128"
FLAGGED = "BAD_uncorrected"  # the annotation of the samples the live corrections flagged


def _annotate_flagged(raw, clean: np.ndarray) -> None:
    """Annotate each run of flagged samples ``BAD_uncorrected`` (left out of windows)."""
    from ..volume_stream import encode_mask  # run-length encoding: (start, length) pairs

    runs = encode_mask(~clean).reshape(-1, 2)
    if not runs.size:
        return
    sfreq = raw.info["sfreq"]
    shift = raw.first_time if raw.annotations.orig_time is not None else 0.0
    raw.annotations.append(runs[:, 0] / sfreq + shift, runs[:, 1] / sfreq, [FLAGGED] * len(runs))


def _aas(data: np.ndarray, samples: np.ndarray, window: tuple[int, int], *, gated: bool = True):
    """AAS on MNE's GradientRemover's volumes; the template aligned and gated.

    MNE's template of a volume is the mean of the detrended volumes in ``window`` around
    it, subtracted from the volume detrended. With ``gated`` (the default), from the same
    per-volume access:

    - each harmonic of the mean is kept as far as it repeats from volume to volume
      (:func:`~rt_eeg2fmri.realtime.gradient.gate`, as in the live template), so the 1/N
      of the EEG that a mean of N volumes holds is not subtracted back; the volumes are
      not detrended (a volume's own linear trend is EEG as much as artifact: removing it
      leaves a step at every volume's edge), as the gate keeps the artifact's steady
      offset and drops the EEG's drift;
    - the end volumes (MNE leaves them uncorrected) get the nearest ``sum(window)`` others;
    - with an EEG clock not locked to the scanner's, where each volume's artifact lands on
      another sub-sample phase (and the markers, on whole samples, jump between spacings
      of N and N − 1), the volumes averaged are first shifted (:func:`_shifted`) to where
      this volume's artifact begins (:func:`_artifact_lateness`), as the live template is,
      whenever they lie ``ALIGN_MIN`` samples or more apart.

    ``gated=False`` is MNE's template, with only the end volumes and the alignment added:
    with locked clocks, MNE's result to the last sample between the end volumes.

    Returns
    -------
    corrected : array of shape data.shape
    n_edge, n_aligned : int
        Volumes corrected with the window shifted inward; with aligned templates.
    """
    from mne.preprocessing import GradientRemover

    from ..realtime.gradient import ALIGN_MIN, gate

    spacing = int(np.round(np.median(np.diff(samples))))
    keep = samples + spacing <= data.shape[1]  # a last volume cut off by the recording's end
    samples = samples[keep]
    remover = GradientRemover(data, samples, window=window, tr_tol=2)
    before, after = remover.window
    n_tr = remover.n_tr
    span = before + after
    if n_tr <= span:
        raise ValueError(
            f"the gradient correction needs more than {span} volumes for its template, got {n_tr}."
        )
    volume = remover.get_tr if gated else remover.get_tr_detrended
    late = _artifact_lateness(remover, samples, spacing)
    spectra: dict[int, np.ndarray] = {}  # volume → its spectrum (a window's worth kept)
    out = data.copy()
    n_edge = n_aligned = 0
    for n in range(n_tr):
        edge = n < before or n >= n_tr - after
        if edge:  # the nearest `span` other volumes
            lo = min(max(n - before, 0), n_tr - span - 1)
            others = [k for k in range(lo, lo + span + 1) if k != n][:span]
        else:  # MNE's window (its two sides weigh as their shares: each volume as 1/span)
            others = [*range(n - before, n), *range(n + 1, n + after + 1)]
        lag = late[n] - late[others]
        aligned = bool(np.abs(lag).max() >= ALIGN_MIN)
        if aligned:
            specs = [np.fft.rfft(_shifted(data, samples[k], spacing, d, detrended=not gated),
                                 axis=1) for k, d in zip(others, lag, strict=True)]  # fmt: skip
        elif gated:
            for k in [k for k in spectra if k < n - span - 1]:
                del spectra[k]
            for k in others:
                if k not in spectra:
                    spectra[k] = np.fft.rfft(volume(k), axis=1)
            specs = [spectra[k] for k in others]
        if aligned or gated:
            mean = sum(specs) / span
            if gated:
                mean = gate(mean, sum(s.real**2 + s.imag**2 for s in specs), span)
            template = np.fft.irfft(mean, n=spacing, axis=1)
        elif edge:
            template = np.mean([volume(k) for k in others], axis=0)
        else:
            template = remover.get_tr_template(n)
        n_edge += edge
        n_aligned += aligned
        out[:, samples[n] : samples[n] + spacing] = volume(n) - template
    return out, n_edge, n_aligned


def _shifted(
    data: np.ndarray, start: int, spacing: int, lag: float, *, detrended: bool
) -> np.ndarray:
    """The volume of ``spacing`` samples from ``start``, moved ``lag`` samples later.

    A phase ramp over the volume and ``SHIFT_MARGIN`` samples either side (fewer at the
    recording's ends), so what the shift wraps around lies outside the volume; then
    ``detrended`` as MNE detrends the volumes it averages.
    """
    from scipy.signal import detrend

    margin = min(SHIFT_MARGIN, start, data.shape[1] - start - spacing)
    lo, hi = start - margin, start + spacing + margin
    ramp = 2j * np.pi * np.arange((hi - lo) // 2 + 1) / (hi - lo)
    moved = np.fft.irfft(np.fft.rfft(data[:, lo:hi], axis=1) * np.exp(-ramp * lag), n=hi - lo)
    moved = moved[:, margin : margin + spacing]
    return detrend(moved, axis=1) if detrended else moved


def _artifact_lateness(remover, samples: np.ndarray, spacing: int) -> np.ndarray:
    """Where each volume's artifact begins in its segment (fractional samples, up to a constant).

    Each volume's timing against the one before, by the phase of their cross-spectrum
    (:func:`~rt_eeg2fmri.realtime.gradient.phase_lag`), summed into the artifacts' onsets,
    and a line through them: the two clocks' rates differ by a constant.

    Returns
    -------
    late : array of shape (n_volumes,)
    """
    from ..realtime.gradient import phase_lag, timing_harmonics

    k = timing_harmonics(spacing)
    at = np.zeros(remover.n_tr)
    prev = np.fft.rfft(remover.get_tr_detrended(0), axis=1)[:, : k.stop]
    for v in range(1, remover.n_tr):
        cur = np.fft.rfft(remover.get_tr_detrended(v), axis=1)[:, : k.stop]
        step = float(samples[v] - samples[v - 1])
        at[v] = at[v - 1] + step + float(np.clip(phase_lag(cur, prev, k, spacing), -1.0, 1.0))
        prev = cur
    u = np.arange(remover.n_tr, dtype=float)
    slope, at0 = np.polyfit(u, at, 1) if remover.n_tr > 1 else (0.0, 0.0)
    return at0 + slope * u - (samples - samples[0])
