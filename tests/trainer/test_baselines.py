"""The event baselines: the task alone, and a model's prediction beside the task."""

from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.data import Preprocessing
from trainer import baselines
from trainer.data import load_dataset
from trainer.evaluate import cross_subject_with_events


@pytest.fixture(scope="module")
def pairs(tiny_bids):
    return load_dataset(tiny_bids, Preprocessing(winsize=4.0), progress=False)


def _r(a, b):
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return float(np.mean((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))))


def test_a_model_that_adds_nothing_is_the_events_baseline(pairs):
    """A prediction of zeros: its weight is 0 and what is left is the task regression."""
    subj = np.asarray(pairs.subject)
    fit, test = np.flatnonzero(subj != "01"), np.flatnonzero(subj == "01")
    zeros = np.zeros((len(pairs), pairs.n_voxels), np.float32)
    got = baselines.model_and_events(pairs, zeros[fit], fit, zeros[test], test)
    want = baselines.event_regression(pairs, fit, test)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_a_model_of_the_wrong_sign_and_scale_is_turned_round_on_the_other_subjects(pairs):
    """A model whose maps are −3× the BOLD (plus noise) scores r < 0 alone; weighed per
    voxel on the other subjects beside the events, its sign and scale come right."""
    idx = np.arange(len(pairs))
    y = baselines.targets(pairs, idx)
    rng = np.random.default_rng(0)
    pred = (-3.0 * y + 0.5 * y.std() * rng.standard_normal(y.shape)).astype(np.float32)
    assert _r(pred, y) < -0.5
    stacked = cross_subject_with_events(pairs, idx, pred)
    assert _r(stacked, y) > 0.8
    subj = np.asarray(pairs.subject)
    sel = subj == "02"  # each subject from the others: its own BOLD is not in its weights
    alone = baselines.model_and_events(pairs, pred[~sel], idx[~sel], pred[sel], idx[sel])
    np.testing.assert_allclose(stacked[sel], alone, rtol=1e-5, atol=1e-6)


def test_rescaled_is_a_per_voxel_gain_and_offset_from_the_others(pairs):
    """``events=False``: per voxel ``a · pred + c`` fitted on the other subjects, which is
    least squares (its small ridge aside): a prediction of 2 × BOLD + 1 comes back as the BOLD
    up to the fitted offset."""
    idx = np.arange(len(pairs))
    y = baselines.targets(pairs, idx)
    pred = 2.0 * y + 1.0
    got = cross_subject_with_events(pairs, idx, pred, events=False)
    assert _r(got, y) > 0.999
    np.testing.assert_allclose(got, y, atol=0.05 * np.abs(y).max())


def test_a_strength_shrinks_the_events_alone(pairs):
    """``strength``: the events' ridge toward 0; the gain and the intercept keep theirs, so a
    very strong one leaves the prediction's gain and offset (``events=False``, up to the
    intercept's small ridge, which the events' power scales)."""
    idx = np.arange(len(pairs))
    y = baselines.targets(pairs, idx)
    pred = 2.0 * y + 1.0
    types, w = baselines.fit_model_and_events(pairs, pred, idx)
    assert types and np.abs(w[:, 1:-1]).max() > 0
    _, strong = baselines.fit_model_and_events(pairs, pred, idx, strength=1e9)
    assert np.abs(strong[:, 1:-1]).max() < 1e-6 * np.abs(w[:, 1:-1]).max()
    _, plain = baselines.fit_model_and_events(pairs, pred, idx, events=False)
    np.testing.assert_allclose(strong[:, [0, -1]], plain, rtol=0.02, atol=1e-6)
