"""Adapt a checkpoint to one person from a few minutes of their paired recording.

Candidates (:mod:`rt_eeg2fmri.adaptation`), compared on held-out minutes: the EEG
normalisation (the person's own statistics or the checkpoint's), times the haemodynamic
timing (the base model's learned HRF, or it stretched in time to fit the person), times a
per-voxel affine map of the output (``gain ⊙ prediction + bias``) or — for models with a
basis head (the default conv) — the readout weights themselves (the head's coefficient
layer, refitted on the person's targets), each shrunk toward the base model with a
strength picked on the held-out minutes. The recording's calibration minutes are split
chronologically: the first part fits every candidate, the last part (after a gap of at
least ``gap`` seconds, so no target of the fit is within 20 s of one scored) picks the
best; the chosen one is then refitted on all the minutes. Nothing here sees the data a
calibrated checkpoint is later scored on, when ``evaluate`` is given the person's other
runs.

With ``events``, the task's event regressors are offered beside the adapted model
(:class:`~rt_eeg2fmri.task.TaskReadout`, weighed per voxel with the model's prediction, at
the ridge strengths of :data:`EVENT_STRENGTHS`): kept when they beat the adapted model
alone, given the same per-voxel gain and offset, on the held-out minutes by more than one
standard error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from rt_eeg2fmri._logging import logger
from rt_eeg2fmri.adaptation import choose_build, head_features
from rt_eeg2fmri.models.calibrated import NO_DELAY, can_delay, describe_model
from rt_eeg2fmri.readout import chronological_split, fit_readout, pick, scores, volume_errors

from .baselines import (
    apply_model_and_events,
    fit_model_and_events,
    task_part,
    task_readout,
    trial_types_of,
)

__all__ = ["calibrate", "calibration_split", "fit_readout", "scores"]

MIN_FIT, MIN_VAL = 12, 6  # pairs: below these, minutes are too few to choose anything
#: Ridge of the task's event weights toward 0, relative to the design's mean power
EVENT_STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)


def calibration_split(dataset, *, minutes: float | None, gap: float, val_fraction: float):
    """``(fit, val, used_s)``: pair indices of the calibration minutes, in recording order.

    Runs follow in the dataset's order; a pair's time is the end of its volume counted from
    the start of the first run's first volume. ``minutes`` keeps pairs whose volume ended
    within them; the last ``val_fraction`` of that span is held out, and fit pairs end at
    least ``gap`` seconds before the first held-out volume starts.
    """
    order, ends, offset = [], [], 0.0
    for r in sorted(set(np.asarray(dataset.run_index).tolist())):
        sel = np.flatnonzero(dataset.run_index == r)
        times = dataset.volume_times(r)
        t_r = dataset.run_t_r(r)
        t0 = times[0]
        sel = sel[np.argsort(dataset.volume[sel], kind="stable")]
        order.append(sel)
        ends.append(offset + times[dataset.volume[sel]] + t_r - t0)
        offset += times[-1] + t_r - t0
    order, ends = np.concatenate(order), np.concatenate(ends)
    if minutes is not None:
        keep = ends <= minutes * 60.0 + 1e-9
        order, ends = order[keep], ends[keep]
    if order.size == 0:
        return order, order, 0.0
    t_r0 = dataset.run_t_r(int(dataset.run_index[order[0]]))
    fit, val = chronological_split(
        np.concatenate([[0.0], ends]), gap=gap, val_fraction=val_fraction, t_r=t_r0
    )
    return order[fit[1:]], order[val[1:]], float(ends[-1])


def calibrate(
    ckpt_path,
    data,
    *,
    subject: str,
    out,
    runs=None,
    minutes: float | None = None,
    gap: float = 20.0,
    val_fraction: float = 0.25,
    delays: bool = False,
    events: bool = False,
    reader: dict | None = None,
    progress: bool = True,
) -> dict:
    """Adapt the checkpoint at ``ckpt_path`` to ``subject``; write it to ``out``.

    Parameters
    ----------
    ckpt_path : path-like
        The base checkpoint.
    data : path-like | list of path-like
        Dataset folder(s) holding the person's paired recording.
    subject : str
        The person; or several, comma-separated (``"02,03,04"``): a lab's readout from its
        own people, for the people it records next. Their runs follow one another, so the
        held-out minutes are the last people's.
    out : path-like
        The calibrated checkpoint (an ordinary checkpoint; see
        :class:`~rt_eeg2fmri.models.Calibrated`).
    runs : list of str | None
        The person's runs used (run numbers or entities); default all, in order.
    minutes : float | None
        Calibration minutes from the start of the first run (default: all of ``runs``).
    gap : float
        Seconds between the last fit volume and the first held-out one.
    val_fraction : float
        Fraction of the minutes held out to choose the candidate.
    delays : bool
        Also offer per-voxel haemodynamic delays (a model with a learned HRF only).
    events : bool
        Also offer the task's events beside the model (a checkpoint that predicts
        ``model + events`` live from a stimulus marker stream: ``stream --events``).
    reader : dict | None
        Dataset-reader options.

    Returns
    -------
    summary : dict
        What was chosen and every candidate's held-out scores (also in the checkpoint's
        ``metadata["calibration"]``).
    """
    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.data.norm import _Accumulator

    from .data import load_dataset
    from .evaluate import check_grid

    if minutes is not None and not minutes > 0:
        raise ValueError(f"'minutes' must be positive, got {minutes!r}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"'val_fraction' must be in (0, 1), got {val_fraction!r}.")
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    subjects = [p.strip() for p in str(subject).split(",") if p.strip()]
    if not subjects:
        raise ValueError(
            f"'subject' must name a subject (or several, comma-separated), got {subject!r}."
        )
    where = f"calibrating '{ckpt.path}' on subject {subject!r} of '{data}'"
    if delays and not can_delay(ckpt.model):
        raise ValueError(f"{where}: 'delays' {NO_DELAY} ({describe_model(ckpt.model)}).")
    try:
        dataset = load_dataset(
            data,
            ckpt.preprocessing,
            subjects=subjects,
            runs=runs,
            ch_names=ckpt.ch_names,
            mask=ckpt.mask,
            progress=progress,
            reader=reader,
        )
        check_grid(dataset, ckpt)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    fit, val, span = calibration_split(dataset, minutes=minutes, gap=gap, val_fraction=val_fraction)
    if fit.size < MIN_FIT or val.size < MIN_VAL:
        have = f"{span / 60:.2f} min" if span else "no volume"
        raise ValueError(
            f"{where}: too few minutes: {have} of paired recording give {fit.size} fitting and "
            f"{val.size} held-out pairs ({ckpt.winsize:g} s windows, a {gap:g} s gap); at least "
            f"{MIN_FIT} and {MIN_VAL} are needed. Give more --minutes or runs."
        )
    every = np.concatenate([fit, val])
    if events and not trial_types_of(dataset, every):
        runs = sorted({dataset.runs[r]["name"] for r in dataset.run_index[every].tolist()})
        raise ValueError(
            f"{where}: '--events' needs task events, but the runs {runs} have none (no "
            "events.tsv rows or stimulus annotations besides the scanner markers)."
        )
    subject_stats = _subject_stats(dataset, every, ckpt, _Accumulator)
    stats = {"checkpoint": ckpt.norm_stats, "subject": subject_stats}
    y = dataset.get_targets(every).astype(np.float64)
    task = None if events else ckpt.task  # kept as it is unless refitted
    if task is not None:  # the model is fitted to what the task part leaves
        y = y - task_part(dataset, every, task)
    fit_mask = np.arange(every.size) < fit.size
    predicts = {norm: _predictor(dataset.with_stats(s), every) for norm, s in stats.items()}
    chosen, build, table, best, base = choose_build(
        predicts, ckpt.model, y, fit_mask, delays=delays
    )
    model, task_summary = build(), None
    if events:
        view = dataset.with_stats(stats[chosen.norm])
        held_out = build(np.flatnonzero(fit_mask))  # fitted without the held-out volumes
        model, task, task_summary = _with_events(view, every, fit_mask, held_out, model)
    base_val = table[base]
    logger.info(
        "Calibration of subject %s: %s; held-out MSE %.4g (base %.4g), r %.3f (base %.3f).",
        subject,
        chosen.describe(),
        table[best]["mse"],
        base_val["mse"],
        table[best]["r_mean"],
        base_val["r_mean"],
    )
    run_names = [dataset.runs[r]["name"] for r in sorted(set(dataset.run_index[every].tolist()))]
    summary = {
        "base_checkpoint": str(ckpt.path),
        "base_sha256": _sha256(ckpt.path),
        "subject": ",".join(subjects),
        "runs": run_names,
        "minutes": round(span / 60.0, 4),
        "data_fingerprint": dataset.fingerprint,
        "n_fit": int(fit.size),
        "n_held_out": int(val.size),
        "gap_s": float(gap),
        "chosen": {**chosen.__dict__, "description": chosen.describe()},
        "candidates": table,
        "held_out": {"chosen": table[best], "base": base_val},
    }
    if task_summary is not None:
        summary["task"] = task_summary
    ckpt.save_adapted(
        out,
        model,
        norm_stats=stats[chosen.norm],
        metadata={"calibration": summary},
        task=task,
    )
    return summary


def _with_events(view, every, fit_mask, held_out, model):
    """``(model, task, summary)``: ``model`` beside the task's events, when they earn it.

    ``held_out`` is the chosen adaptation fitted on the fit part alone. Its prediction
    is given a per-voxel gain and offset on the fit part, without the task's events and
    with them at each strength of :data:`EVENT_STRENGTHS` (their ridge toward 0;
    :func:`~trainer.baselines.fit_model_and_events`); the events are kept when they lower
    the held-out volumes' error beyond one standard error
    (:func:`~rt_eeg2fmri.readout.pick`), at the strength with the lowest held-out error,
    and then weighed with ``model`` (the adaptation fitted on every volume) on every
    volume.
    """
    from rt_eeg2fmri.models import Calibrated

    predict = _predictor(view, every)
    pred = np.asarray(predict(held_out, np.arange(every.size))[0], np.float64)
    fit, val = every[fit_mask], every[~fit_mask]
    y_val = view.get_targets(val).astype(np.float64)
    table, errors = [], []
    for strength in (None, *EVENT_STRENGTHS):
        w = fit_model_and_events(
            view, pred[fit_mask], fit, events=strength is not None, strength=strength
        )
        p = apply_model_and_events(view, w, pred[~fit_mask], val)
        table.append({"events": strength is not None, "strength": strength, **scores(p, y_val)})
        errors.append(volume_errors(p, y_val))
    best = pick(table, errors, 0)
    trial_types = trial_types_of(view, fit)
    summary = {"chosen": best > 0, "trial_types": trial_types, "held_out": table}
    with_events = table[max(best, 1 + int(np.argmin([t["mse"] for t in table[1:]])))]
    logger.info(
        "Task events (%s) beside the model: held-out r %.3f (strength %g) against %.3f "
        "without; %s.",
        ", ".join(trial_types),
        with_events["r_mean"],
        with_events["strength"],
        table[0]["r_mean"],
        "kept" if best else "left out (they do not beat the model alone beyond noise)",
    )
    if not best:
        return model, None, summary
    summary["strength"] = table[best]["strength"]
    pred = np.asarray(predict(model, np.arange(every.size))[0], np.float64)
    weights = fit_model_and_events(view, pred, every, strength=table[best]["strength"])
    task = task_readout(view, every, weights)
    _, w = weights
    summary["codes"] = dict(zip(task.trial_types, task.codes, strict=True))
    return Calibrated(model, w[:, 0], w[:, -1]), task, summary


def _predictor(view, indices):
    """``predict(model, rows)`` of :mod:`rt_eeg2fmri.adaptation` over ``view``'s pairs.

    It returns the outputs for the pairs ``indices[rows]`` on the CPU, and the input of the
    model's basis head (``None`` without one).
    """
    from .loop import predict

    def run(model, rows):
        return head_features(model, lambda: predict(model, view, indices[rows], device="cpu"))

    return run


def _subject_stats(dataset, indices, ckpt, accumulator):
    """The person's EEG statistics over the calibration windows (no target is used)."""
    acc = accumulator(ckpt.preprocessing.norm)
    n_times = dataset.n_times
    for r in sorted(set(dataset.run_index[indices].tolist())):
        starts = dataset.start[indices][dataset.run_index[indices] == r]
        lo, hi = int(starts.min()), int(starts.max()) + n_times
        acc.update(dataset.run_eeg(r)[:, lo:hi])
    return acc.result(list(ckpt.ch_names))


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
