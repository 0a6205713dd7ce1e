"""Merging the folds of several training runs into one report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.cli import main
from trainer.report import merge_runs


def _fold(subject: str, r: float) -> dict:
    split = {"name": f"loso-sub-{subject}", "test_subjects": [subject], "val_subjects": ["09"]}
    metrics = {
        "subject_mean": {"mse": 1.0, "r_mean": 0.0},
        "conv": {"mse": 0.9, "r_mean": r, "ceiling_r_mean": 2 * r},
    }
    return {"split": split, "metrics": metrics}


def _run(path, subjects, rs, **config) -> str:
    path.mkdir(parents=True)
    doc = {
        "folds": [_fold(s, r) for s, r in zip(subjects, rs, strict=True)],
        "histories": {f"conv/loso-sub-{s}": [] for s in subjects},
        "config": {"lr": 3e-4, "test_subjects": list(subjects), **config},
        "models": ["conv"],
        "data": {"fingerprint": "abc", "n_pairs": 10},
        "seconds": 60.0,
    }
    (path / "metrics.json").write_text(json.dumps(doc))
    return str(path)


def test_merge_joins_folds_as_one_run(tmp_path, capsys):
    a = _run(tmp_path / "a", ["03", "01"], [0.1, 0.3])
    b = _run(tmp_path / "b", ["02"], [0.2])
    assert main(["report", a, b, "--out", str(tmp_path / "m")]) == 0
    doc = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert [f["split"]["name"] for f in doc["folds"]] == [
        "loso-sub-01",
        "loso-sub-02",
        "loso-sub-03",
    ]
    mean, sd = doc["summary"]["conv"]["r_mean"]
    assert mean == pytest.approx(0.2) and sd == pytest.approx(np.std([0.1, 0.2, 0.3]))
    assert doc["noise_ceiling_r_mean"] == pytest.approx(0.4)  # from the folds' ceilings
    assert doc["config"]["test_subjects"] == ["01", "02", "03"]
    assert doc["seconds"] == 120.0 and len(doc["merged_from"]) == 2
    report = (tmp_path / "m" / "report.md").read_text()
    assert "loso-sub-01, loso-sub-02, loso-sub-03" in report
    assert "| conv | 0.9000 | 0.200 ± 0.082 |" in report
    assert "3 folds from 2 runs" in capsys.readouterr().out


def test_merge_refuses_runs_that_do_not_belong_together(tmp_path):
    a = _run(tmp_path / "a", ["01"], [0.1])
    with pytest.raises(ValueError, match="other settings than .*: lr=0.001 vs 0.0003"):
        merge_runs([a, _run(tmp_path / "b", ["02"], [0.2], lr=1e-3)], tmp_path / "m")
    with pytest.raises(ValueError, match=r"fold 'loso-sub-01' is in both .*a.*c"):
        merge_runs([a, _run(tmp_path / "c", ["01"], [0.2])], tmp_path / "m")
    d = _run(tmp_path / "d", ["02"], [0.2])
    doc = json.loads((tmp_path / "d" / "metrics.json").read_text())
    doc["data"]["fingerprint"] = "xyz"
    (tmp_path / "d" / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="trained on other data .*'xyz', expected 'abc'"):
        merge_runs([a, d], tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no metrics.json in .*empty"):
        (tmp_path / "empty").mkdir()
        merge_runs([a, tmp_path / "empty"], tmp_path / "m")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json' is not valid JSON"):
        merge_runs([a, tmp_path / "bad"], tmp_path / "m")
    with pytest.raises(ValueError, match="at least 2 run folders"):
        merge_runs([a], tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing written when refused


def test_small_mse_keeps_its_digits():
    from trainer.report import markdown_table

    table = markdown_table({"a": {"mse": [2.0066e-05, 1e-6]}, "b": {"mse": [0.1684, 0.0088]}})
    assert "| a | 2.007e-05 ± 1.000e-06 |" in table  # median_ratio targets, not 0.0000
    assert "| b | 0.1684 ± 0.0088 |" in table
