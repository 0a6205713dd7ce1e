"""Honest data splits: by subject or by run, never by overlapping windows unless flagged.

A split is three sorted arrays of pair indices (train, validation, test) into a dataset
whose pairs carry a ``subject`` and a ``run_index`` label. The validation part picks the
checkpoint (early stopping); the test part is touched only by the final evaluation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rt_eeg2fmri._checks import check_option

SPLITS = ("loso", "within", "random")


class LeakyEvaluationWarning(UserWarning):
    """The split lets the same recording time appear in training and test data."""


@dataclass(frozen=True)
class Split:
    """One fold: pair indices for training, validation and test, and a readable name."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_subjects: tuple[str, ...] = ()
    val_subjects: tuple[str, ...] = ()

    def describe(self) -> dict:
        """A JSON-able summary for reports and checkpoints."""
        return {
            "name": self.name,
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_test": int(self.test.size),
            "test_subjects": list(self.test_subjects),
            "val_subjects": list(self.val_subjects),
        }


def _nonempty(split: Split) -> Split:
    for part in ("train", "val", "test"):
        if getattr(split, part).size == 0:
            raise ValueError(f"split {split.name!r}: the {part} part is empty.")
    return split


def loso_splits(
    subject: np.ndarray, *, test_subjects=None, val_subjects: dict | None = None
) -> list[Split]:
    """Leave-one-subject-out folds.

    Parameters
    ----------
    subject : array of shape (n_pairs,)
        Subject label of each pair.
    test_subjects : list of str | None
        Subjects to hold out, one fold each (default: every subject, a full rotation).
    val_subjects : dict | None
        Validation subject per test subject; default: the next subject in sorted order
        (cyclic), so no fold ever picks its checkpoint on its test subject.
    """
    subject = np.asarray(subject).astype(str)
    subjects = sorted(set(subject.tolist()))
    if len(subjects) < 3:
        raise ValueError(
            "leave-one-subject-out needs at least 3 subjects (train, validation, test), "
            f"got {len(subjects)}: {subjects}."
        )
    chosen = subjects if test_subjects is None else [str(s) for s in test_subjects]
    unknown = sorted(set(chosen) - set(subjects))
    if unknown:
        raise ValueError(f"'test_subjects' {unknown} not in the dataset's subjects {subjects}.")
    folds = []
    for test in chosen:
        if val_subjects and test in val_subjects:
            val = str(val_subjects[test])
        else:
            val = subjects[(subjects.index(test) + 1) % len(subjects)]
        if val == test or val not in subjects:
            raise ValueError(f"validation subject {val!r} for test subject {test!r} is invalid.")
        idx = np.arange(subject.size)
        folds.append(
            _nonempty(
                Split(
                    name=f"loso-sub-{test}",
                    train=idx[(subject != test) & (subject != val)],
                    val=idx[subject == val],
                    test=idx[subject == test],
                    test_subjects=(test,),
                    val_subjects=(val,),
                )
            )
        )
    return folds


def within_splits(subject: np.ndarray, run_index: np.ndarray) -> list[Split]:
    """Within-subject folds by run, one fold pooling every subject.

    In each subject the last run is test, the one before it validation, the rest training;
    every subject needs at least 3 runs.
    """
    subject = np.asarray(subject).astype(str)
    run_index = np.asarray(run_index)
    train, val, test = [], [], []
    for s in sorted(set(subject.tolist())):
        runs = sorted(set(run_index[subject == s].tolist()))
        if len(runs) < 3:
            raise ValueError(
                f"within-subject split needs at least 3 runs per subject; sub-{s} has {len(runs)}."
            )
        sel = subject == s
        test.append(np.flatnonzero(sel & (run_index == runs[-1])))
        val.append(np.flatnonzero(sel & (run_index == runs[-2])))
        train.append(np.flatnonzero(sel & np.isin(run_index, runs[:-2])))
    return [
        _nonempty(
            Split(
                name="within-last-run",
                train=np.sort(np.concatenate(train)),
                val=np.sort(np.concatenate(val)),
                test=np.sort(np.concatenate(test)),
            )
        )
    ]


def random_splits(
    n_pairs: int, *, val: float = 0.1, test: float = 0.2, seed: int = 0
) -> list[Split]:
    """Shuffled windows — leaks: neighbouring windows overlap by 28 of 30 s.

    Allowed only for comparison with the literature; always warns.
    """
    warnings.warn(
        "random split: overlapping windows from the same run land in both training and test "
        "data, so test scores are inflated (the founding paper's mistake). Use 'loso' or "
        "'within' for honest numbers.",
        LeakyEvaluationWarning,
        stacklevel=2,
    )
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(
            f"'val' and 'test' must be fractions summing below 1, got {val=}, {test=}."
        )
    perm = np.random.default_rng(seed).permutation(n_pairs)
    n_test, n_val = int(round(test * n_pairs)), int(round(val * n_pairs))
    return [
        _nonempty(
            Split(
                name="random-LEAKY",
                train=np.sort(perm[n_test + n_val :]),
                val=np.sort(perm[n_test : n_test + n_val]),
                test=np.sort(perm[:n_test]),
            )
        )
    ]


def make_splits(kind: str, subject, run_index, **options) -> list[Split]:
    """Build the folds of split ``kind`` (``"loso"``, ``"within"`` or ``"random"``)."""
    check_option(kind, "split", SPLITS)
    if kind == "loso":
        return loso_splits(subject, **options)
    if kind == "within":
        return within_splits(subject, run_index)
    return random_splits(len(subject), **options)
