"""What adapting a model to a person can change, and the choice among the candidates.

Shared by ``rt-eeg2fmri calibrate`` (offline, from a recording) and ``stream --adapt``
(live, from the scanner's volumes). Every candidate is fitted on the first part of the
person's paired volumes and scored on the last part (:mod:`rt_eeg2fmri.readout`):

- the EEG normalisation the caller offers (the checkpoint's statistics, the person's...);
- the haemodynamic timing: for a model whose encoder reads the band-power envelope through
  a learned HRF (the default conv), that HRF stretched in time by the factor that fits the
  fit part best (:func:`fit_stretch`; HRF peaks vary from about 4 to 8 s between people);
- the readout: none, a per-voxel offset, a per-voxel gain and offset pulled toward the base
  model, on request (``delays``) for a model with a learned HRF a per-voxel gain, offset
  and haemodynamic delay (:class:`~rt_eeg2fmri.models.Calibrated`'s slope; regions differ
  in delay by about a second), or — for a model with a basis head — the head's
  coefficient layer refitted on the person's targets, pulled toward the base layer; each
  at the strengths of :data:`~rt_eeg2fmri.readout.STRENGTHS`.

:func:`choose` keeps the base model unless a candidate beats it on the held-out volumes by
more than one standard error (:func:`~rt_eeg2fmri.readout.pick`), then refits the chosen one
on every volume.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from .readout import (
    STRENGTHS,
    Candidate,
    basis_coefficients,
    candidates,
    fit_basis_readout,
    fit_delay_readout,
    fit_readout,
    pick,
    score_readouts,
    scores,
    volume_errors,
)

#: Candidate stretches of the learned HRF (:meth:`ConvEncoder.stretch_hrf`)
STRETCHES = (0.7, 0.8, 0.9, 1.0, 1.12, 1.25, 1.4, 1.6, 1.8)
STRETCH_READOUT = 0.03  # the pull toward gain 1 of the readout each stretch is scored with

#: Every volume, as ``build(rows)`` of :func:`options` takes it
ALL = slice(None)

#: ``predict(model, rows) -> (predictions, features)``: the model's outputs for the paired
#: volumes ``rows`` (positions, in order), and the input of its basis head
#: (:func:`basis_head`) when it has one, else ``None``
Predict = Callable


def basis_head(model):
    """The model's basis head (conv's default), when it has one and is not calibrated."""
    from .models import BasisHead, Calibrated

    if isinstance(model, Calibrated):
        return None
    head = getattr(model, "head", None)
    return head if isinstance(head, BasisHead) else None


def can_stretch(model) -> bool:
    """Whether ``model``'s encoder reads the band-power envelope through a learned HRF."""
    return getattr(getattr(model, "encoder", None), "bin_seconds", None) is not None


def stretched(model, factor: float):
    """A copy of ``model`` whose learned HRF is stretched ``factor``× in time."""
    out = copy.deepcopy(model)
    out.encoder.stretch_hrf(factor)
    return out


def with_coef(model, w, b):
    """A copy of ``model`` whose basis head's coefficient layer is ``(w, b)``."""
    import torch

    out = copy.deepcopy(model)
    with torch.no_grad():
        out.head.coef.weight.copy_(torch.as_tensor(w, dtype=out.head.coef.weight.dtype))
        out.head.coef.bias.copy_(torch.as_tensor(b, dtype=out.head.coef.bias.dtype))
    return out


def head_features(model, run: Callable):
    """``(run(), features)``: ``run``'s result and the inputs ``model``'s basis head saw.

    ``features`` is an array of shape (n, n_features) in float64 on the host, ``None`` when
    the model has no basis head.
    """
    import torch

    head, grabbed = basis_head(model), []
    if head is None:
        return run(), None
    hook = head.register_forward_hook(lambda m, inp, o: grabbed.append(inp[0].detach()))
    try:
        out = run()
    finally:
        hook.remove()
    return out, torch.cat(grabbed).double().cpu().numpy()


def fit_stretch(predict: Predict, model, y: np.ndarray, fit: np.ndarray) -> tuple:
    """``(factor, model)``: the HRF stretch that fits the fit part best.

    Each stretch of :data:`STRETCHES` is scored on the fit part itself (one number per
    person, so fitting it in sample costs little): the squared error left after a nearly
    free per-voxel gain and offset, which every stretch is given alike. The held-out part
    then judges the stretched model's readouts beside the others.
    """
    rows = np.flatnonzero(fit)
    best = (np.inf, 1.0, model)
    for factor in STRETCHES:
        m = model if factor == 1.0 else stretched(model, factor)
        p = np.asarray(predict(m, rows)[0], np.float64)
        gain, bias = fit_readout(p, y[rows], "affine", STRETCH_READOUT)
        mse = float(((p * gain + bias - y[rows]) ** 2).mean())
        if mse < best[0]:
            best = (mse, factor, m)
    return best[1], best[2]


def options(
    predict: Predict, model, y, fit, *, norm: str, stretch: float = 1.0, delays: bool = False
) -> list:
    """Every readout of ``model`` under one normalisation: ``(candidate, row, errors, build)``.

    ``row`` holds the candidate's fields and its held-out scores, ``errors`` its per-volume
    held-out errors, and ``build(rows=ALL)`` returns the model refitted on the volumes
    ``rows`` (default every one): a per-voxel map
    (:class:`~rt_eeg2fmri.models.Calibrated`) or, for a basis head, the model with its
    coefficient layer refitted.
    """
    from .models import Calibrated

    head = basis_head(model)
    pred, feat = predict(model, np.arange(y.shape[0]))
    pred = np.asarray(pred, np.float64)
    cands = candidates((norm,), hrf_stretch=stretch)
    table, errors = score_readouts({norm: pred}, y, fit, ~fit, cands)

    def readout(c):
        return lambda rows=ALL: Calibrated(
            model, *fit_readout(pred[rows], y[rows], c.readout, c.strength)
        )

    out = [(c, t, e, readout(c)) for c, t, e in zip(cands, table, errors, strict=True)]
    if delays:
        out += delay_options(predict, model, pred, y, fit, norm=norm, stretch=stretch)
    if head is None or feat is None:
        return out
    basis = head.basis.detach().double().cpu().numpy()
    offset = head.offset.detach().double().cpu().numpy()
    w0 = head.coef.weight.detach().double().cpu().numpy()
    b0 = head.coef.bias.detach().double().cpu().numpy()
    coef = basis_coefficients(y, basis, offset)

    def refit(strength):  # the readout weights themselves, refitted on the volumes rows
        return lambda rows=ALL: with_coef(
            model, *fit_basis_readout(feat[rows], coef[rows], w0, b0, strength)
        )

    for strength in STRENGTHS:
        w, b = fit_basis_readout(feat[fit], coef[fit], w0, b0, strength)
        p = (feat[~fit] @ w.T + b) @ basis + offset
        c = Candidate(norm, "coef", strength, stretch)
        row = {**c.__dict__, **scores(p, y[~fit])}
        out.append((c, row, volume_errors(p, y[~fit]), refit(strength)))
    return out


def delay_options(predict: Predict, model, pred, y, fit, *, norm: str, stretch: float) -> list:
    """The per-voxel delay readouts of ``model`` (outputs ``pred``), as :func:`options` gives them.

    None unless ``model`` has a learned HRF (:func:`~rt_eeg2fmri.models.can_delay`).
    """
    from .models import Calibrated, can_delay

    if not can_delay(model):
        return []
    n = model.config.n_voxels
    derivative = Calibrated(model, np.zeros(n), np.zeros(n), slope=np.ones(n))
    dp = np.asarray(predict(derivative, np.arange(y.shape[0]))[0], np.float64)

    def build(strength):
        return lambda rows=ALL: Calibrated(
            model, *fit_delay_readout(pred[rows], dp[rows], y[rows], strength)
        )

    out = []
    for strength in STRENGTHS:
        gain, bias, slope = fit_delay_readout(pred[fit], dp[fit], y[fit], strength)
        p = pred[~fit] * gain + dp[~fit] * slope + bias
        c = Candidate(norm, "delay", strength, stretch)
        row = {**c.__dict__, **scores(p, y[~fit])}
        out.append((c, row, volume_errors(p, y[~fit]), build(strength)))
    return out


def base_once(predict: Predict, model, n: int) -> Predict:
    """``predict`` that runs the base ``model`` once, on all ``n`` pairs, and reuses that.

    The fitted HRF stretch scores the base model on the fit part and the readouts use it
    on every pair: one pass serves both.
    """
    memo: list = []

    def run(m, rows):
        if m is not model:
            return predict(m, rows)
        if not memo:
            memo.append(predict(model, np.arange(n)))
        pred, feat = memo[0]
        return np.asarray(pred)[rows], None if feat is None else np.asarray(feat)[rows]

    return run


def choose(
    predicts: dict,
    model,
    y: np.ndarray,
    fit: np.ndarray,
    *,
    timing: bool = True,
    delays: bool = False,
):
    """Fit every candidate on ``fit``, choose on the rest, refit the chosen one on all.

    Parameters
    ----------
    predicts : dict of str to Predict
        One prediction function per normalisation offered; the first is the base model's.
    model : nn.Module
        The base model.
    y : array of shape (n, n_voxels)
        The person's measured volumes (in-mask).
    fit : bool array of shape (n,)
        The fit part; the rest is held out.
    timing : bool
        Also offer the fitted HRF stretch, when the model has a learned HRF (``predict``
        must then run the models it is given).
    delays : bool
        With ``timing``, also offer per-voxel haemodynamic delays (:func:`delay_options`;
        off by default: on simulated cohorts they were chosen in 1 of 24 calibrations and
        lifted nothing, README *Calibrating to a person*).

    Returns
    -------
    chosen : Candidate
    adapted : nn.Module
        The chosen candidate refitted on every volume.
    table : list of dict
        Every candidate with its held-out ``mse``, ``r_mean`` and ``margin``.
    best, base : int
        Rows of ``table``: the chosen one and the base model's.
    """
    chosen, build, table, best, base = choose_build(
        predicts, model, y, fit, timing=timing, delays=delays
    )
    return chosen, build(), table, best, base


def choose_build(
    predicts: dict,
    model,
    y: np.ndarray,
    fit: np.ndarray,
    *,
    timing: bool = True,
    delays: bool = False,
):
    """:func:`choose`, with the chosen candidate's ``build(rows=ALL)`` in place of its model.

    Refitted on the fit part alone, the chosen candidate's predictions of the held-out
    volumes are held out still (``calibrate --events`` weighs the task's events on them).
    """
    out = []
    for norm, predict in predicts.items():
        predict = base_once(predict, model, y.shape[0])
        variants = [(1.0, model)]
        if timing and can_stretch(model):
            variants.append(fit_stretch(predict, model, y, fit))
        for stretch, m in variants:
            if stretch == 1.0 and m is not model:
                continue  # the fitted timing is the base model's: nothing new
            out += options(predict, m, y, fit, norm=norm, stretch=stretch,
                           delays=timing and delays)  # fmt: skip
    table, errors = [o[1] for o in out], [o[2] for o in out]
    base = 0  # the first normalisation's model without a readout: options' first row
    best = pick(table, errors, base)
    return out[best][0], out[best][3], table, best, base
