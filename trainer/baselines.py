"""Trivial and classic baselines, computed on the same test pairs as every model.

- ``subject_mean``: the test subject's own mean volume (no change over time) — the
  reference of R².
- ``train_mean``: the training set's mean volume.
- ``events``: task events convolved with the canonical HRF, regressed voxelwise on the
  training subjects — what the task alone predicts, without any EEG.
- ``with_events``: a model's prediction beside those event regressors, weighed per voxel
  on other subjects (:func:`model_and_events`) — what the EEG adds to the task.
(``ridge`` on HRF-convolved EEG band power is a model in ``rt_eeg2fmri.models``.)
"""

from __future__ import annotations

import numpy as np

from rt_eeg2fmri._logging import logger
from rt_eeg2fmri.task import TaskReadout, table_regressors


def targets(dataset, indices) -> np.ndarray:
    """Targets of ``indices`` as an array of shape (n, n_voxels), float32, without reading EEG."""
    return np.asarray(dataset.get_targets(np.asarray(indices)), dtype=np.float32)


def subject_mean(dataset, test_idx) -> np.ndarray:
    """Each test pair's prediction = the mean target of its subject over the test pairs."""
    y = targets(dataset, test_idx)
    subj = np.asarray(dataset.subject)[test_idx]
    out = np.empty_like(y)
    for s in np.unique(subj):
        sel = subj == s
        out[sel] = y[sel].mean(axis=0)
    return out


def train_mean(dataset, train_idx, n_test: int, *, batch: int = 256) -> np.ndarray:
    """The training set's mean volume repeated for ``n_test`` pairs."""
    total, n = None, 0
    for i in range(0, len(train_idx), batch):
        y = targets(dataset, train_idx[i : i + batch]).astype(np.float64)
        total = y.sum(axis=0) if total is None else total + y.sum(axis=0)
        n += y.shape[0]
    return np.broadcast_to((total / n).astype(np.float32), (n_test, total.size)).copy()


def event_design(dataset, indices, trial_types: list[str]) -> np.ndarray:
    """HRF-convolved event regressors (+ intercept) at each pair's volume, shape (n, k + 1).

    The regressor of a volume is sampled at the middle of its acquisition
    (:func:`rt_eeg2fmri.task.table_regressors`, which the live stream computes alike).
    """
    indices = np.asarray(indices)
    X = np.zeros((indices.size, len(trial_types) + 1))
    X[:, -1] = 1.0
    for _, sel, _, reg in run_regressors(dataset, indices, trial_types):
        X[sel, :-1] = reg
    return X


def run_regressors(dataset, indices, trial_types: list[str]):
    """``(run, sel, events, regressors)`` of each run of the pairs ``indices``.

    ``sel`` selects the run's pairs among ``indices``, ``events`` is its events table and
    ``regressors`` (shape (sel.sum(), k)) its trial types' regressors at the middle of each
    pair's volume (s, the EEG clock).
    """
    run_of = np.asarray(dataset.run_index)[indices]
    vol_of = np.asarray(dataset.volume)[indices]
    for r in np.unique(run_of):
        r, sel = int(r), run_of == r
        events = dataset.events(r)
        middles = np.asarray(dataset.volume_times(r)) + dataset.run_t_r(r) / 2
        yield r, sel, events, table_regressors(events, trial_types, middles[vol_of[sel]])


def trial_types_of(dataset, indices) -> list[str]:
    """The trial types of the runs of ``indices``, sorted."""
    runs = np.unique(np.asarray(dataset.run_index)[np.asarray(indices)])
    return sorted({t for r in runs for t in dataset.events(int(r))["trial_type"]})


def event_regression(
    dataset, train_idx, test_idx, *, alpha: float = 1e-3, batch: int = 512
) -> np.ndarray:
    """Fit task-event regressors voxelwise on ``train_idx``; predict ``test_idx``.

    Returns
    -------
    pred : array of shape (n_test, n_voxels)
    """
    trial_types = trial_types_of(dataset, train_idx)
    k = len(trial_types) + 1
    xtx, xty = np.zeros((k, k)), None
    for i in range(0, len(train_idx), batch):
        idx = train_idx[i : i + batch]
        X, Y = event_design(dataset, idx, trial_types), targets(dataset, idx).astype(np.float64)
        xtx += X.T @ X
        xty = X.T @ Y if xty is None else xty + X.T @ Y
    scale = np.trace(xtx) / k
    W = np.linalg.solve(xtx + alpha * scale * np.eye(k), xty)
    return (event_design(dataset, test_idx, trial_types) @ W).astype(np.float32)


def model_and_events(
    dataset,
    pred_fit,
    fit_idx,
    pred_apply,
    apply_idx,
    *,
    events: bool = True,
    alpha: float = 1e-3,
    batch: int = 512,
) -> np.ndarray:
    """A model's prediction and the task events, weighed per voxel on ``fit_idx``.

    Per voxel, ``y ≈ a · pred + E · b`` (``E``: :func:`event_design`, its intercept
    included) is fitted by ridge (:func:`fit_model_and_events`) on the pairs ``fit_idx``
    and applied to ``apply_idx``. With ``a`` fitted, a model whose maps have the wrong sign
    or scale for these data is turned round or shrunk, and with ``a = 0`` it is the
    ``events`` baseline: it tells what the EEG model adds to what the task alone predicts.

    Parameters
    ----------
    pred_fit, pred_apply : array of shape (n, n_voxels)
        The model's predictions of the pairs ``fit_idx`` and ``apply_idx``.
    events : bool
        ``False``: no event regressors, only the intercept: the model with a per-voxel
        gain and offset fitted on ``fit_idx`` (what a readout fitted on other people
        gives without the task).

    Returns
    -------
    pred : array of shape (n_apply, n_voxels), float32
    """
    fit = fit_model_and_events(dataset, pred_fit, fit_idx, events=events, alpha=alpha, batch=batch)
    return apply_model_and_events(dataset, fit, pred_apply, apply_idx, batch=batch)


def fit_model_and_events(
    dataset,
    pred,
    indices,
    *,
    events: bool = True,
    alpha: float = 1e-3,
    strength: float | None = None,
    batch: int = 512,
) -> tuple[list[str], np.ndarray]:
    """``(trial_types, w)``: the weights of :func:`model_and_events`, fitted on ``indices``.

    ``w`` has shape (n_voxels, k + 2): per voxel the prediction's gain, then the weight of
    each of the ``k`` trial types' regressors, then the intercept. The gain is a ridge with
    ``alpha`` of the prediction's variance, the intercept and events as
    :func:`event_regression` weighs them (``alpha`` of the mean diagonal of the design's
    Gram matrix); ``strength`` in place of ``alpha`` for the events alone shrinks them
    toward 0 (what ``calibrate --events`` chooses on held-out minutes).
    """
    indices = np.asarray(indices)
    trial_types = trial_types_of(dataset, indices) if events else []
    k = len(trial_types) + 1
    n_vox = pred.shape[1]
    ee, ep, pp, sp = np.zeros((k, k)), np.zeros((k, n_vox)), np.zeros(n_vox), np.zeros(n_vox)
    ey, py = np.zeros((k, n_vox)), np.zeros(n_vox)
    for i in range(0, indices.size, batch):
        E = event_design(dataset, indices[i : i + batch], trial_types)
        P = np.asarray(pred[i : i + batch], dtype=np.float64)
        Y = targets(dataset, indices[i : i + batch]).astype(np.float64)
        ee += E.T @ E
        ep += E.T @ P
        pp += (P * P).sum(axis=0)
        sp += P.sum(axis=0)
        ey += E.T @ Y
        py += (P * Y).sum(axis=0)
    gram = np.empty((n_vox, k + 1, k + 1))
    gram[:, 0, 0], gram[:, 0, 1:], gram[:, 1:, 0], gram[:, 1:, 1:] = pp, ep.T, ep.T, ee
    ridge = np.empty((n_vox, k + 1))
    var = pp - sp**2 / max(indices.size, 1)  # the prediction's power about its mean
    ridge[:, 0] = np.where(var > 0, alpha * var, 1.0)
    ridge[:, 1:] = alpha * np.trace(ee) / k  # the events as event_regression weighs them
    ridge[:, 1:-1] *= (alpha if strength is None else strength) / alpha
    gram[:, np.arange(k + 1), np.arange(k + 1)] += ridge
    rhs = np.concatenate([py[:, None], ey.T], axis=1)
    return trial_types, np.linalg.solve(gram, rhs[..., None])[..., 0]


def apply_model_and_events(dataset, fit, pred, indices, *, batch: int = 512) -> np.ndarray:
    """:func:`fit_model_and_events`'s ``fit`` applied to a model's ``pred`` of ``indices``."""
    trial_types, w = fit
    indices = np.asarray(indices)
    out = np.empty((indices.size, w.shape[0]), np.float32)
    for i in range(0, indices.size, batch):
        E = event_design(dataset, indices[i : i + batch], trial_types)
        P = np.asarray(pred[i : i + batch], dtype=np.float64)
        out[i : i + batch] = P * w[:, 0] + E @ w[:, 1:].T
    return out


def task_part(dataset, indices, task: TaskReadout) -> np.ndarray:
    """A checkpoint's task part of the pairs ``indices`` from their runs' events, (n, n_voxels).

    A run with no event of the readout's trial types gets none (logged: its task part is 0).
    """
    indices = np.asarray(indices)
    out = np.empty((indices.size, task.n_voxels), np.float32)
    for r, sel, events, reg in run_regressors(dataset, indices, task.trial_types):
        if not events["trial_type"].isin(task.trial_types).any():
            logger.warning(
                "%s has no event of the task readout's %s: its task part is 0.",
                dataset.runs[r]["name"],
                task.describe(),
            )
        out[sel] = reg @ task.weights
    return out


def task_readout(dataset, indices, fit) -> TaskReadout:
    """The event weights of ``fit`` as a checkpoint's :class:`~rt_eeg2fmri.task.TaskReadout`.

    Each trial type keeps the marker codes it was recorded with in the runs of ``indices``
    (the events tables' ``value`` column, where they have one) and its median duration.
    """
    trial_types, w = fit
    runs = np.unique(np.asarray(dataset.run_index)[np.asarray(indices)])
    tables = [dataset.events(int(r)) for r in runs]
    codes, durations = [], []
    for t in trial_types:
        rows = [tab[tab["trial_type"] == t] for tab in tables]
        values = {str(v) for tab in rows if "value" in tab.columns for v in tab["value"] if str(v)}
        codes.append(sorted(values - {"n/a", "nan", t}))
        durations.append(float(np.median(np.concatenate([tab["duration"] for tab in rows]))))
    return TaskReadout(trial_types, codes, durations, w[:, 1:-1].T)
