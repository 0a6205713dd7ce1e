from __future__ import annotations

import numpy as np
import pytest

from trainer.splits import LeakyEvaluationWarning, loso_splits, make_splits, within_splits


def _labels(n_sub=4, n_run=3, per_run=5):
    subject = np.repeat([f"{i:02d}" for i in range(n_sub)], n_run * per_run)
    run = np.tile(np.repeat(np.arange(n_run), per_run), n_sub) + 10 * np.repeat(
        np.arange(n_sub), n_run * per_run
    )
    return subject, run


def test_loso_full_rotation_is_disjoint_and_validates_on_another_subject():
    subject, _ = _labels()
    folds = loso_splits(subject)
    assert [f.test_subjects for f in folds] == [("00",), ("01",), ("02",), ("03",)]
    for f in folds:
        assert set(subject[f.test]) == set(f.test_subjects)
        assert set(subject[f.val]) == set(f.val_subjects)
        assert f.val_subjects != f.test_subjects
        assert not set(subject[f.train]) & (set(f.test_subjects) | set(f.val_subjects))
        assert len(np.intersect1d(f.train, f.test)) == 0


def test_loso_needs_three_subjects():
    subject, _ = _labels(n_sub=2)
    with pytest.raises(ValueError, match="at least 3 subjects.*got 2"):
        loso_splits(subject)


def test_loso_unknown_subject():
    subject, _ = _labels()
    with pytest.raises(ValueError, match=r"\['99'\] not in"):
        loso_splits(subject, test_subjects=["99"])


def test_within_holds_out_last_run_per_subject():
    subject, run = _labels()
    (fold,) = within_splits(subject, run)
    for s in set(subject):
        sel = subject == s
        assert set(run[fold.test][subject[fold.test] == s]) == {run[sel].max()}
    with pytest.raises(ValueError, match="at least 3 runs per subject; sub-00 has 2"):
        within_splits(*_labels(n_run=2))


def test_random_split_warns_about_leakage():
    subject, run = _labels()
    with pytest.warns(LeakyEvaluationWarning, match="inflated"):
        (fold,) = make_splits("random", subject, run)
    assert fold.train.size + fold.val.size + fold.test.size == subject.size


def test_unknown_split_kind():
    with pytest.raises(ValueError, match="'split' must be one of"):
        make_splits("shuffle", *_labels())
