from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from apps.cli import main
from rt_eeg2fmri.checkpoint import load_checkpoint
from trainer.config import TrainConfig, load_config
from trainer.data import load_dataset
from trainer.run import train_and_evaluate

from .conftest import SMALL_CONV


def _cfg(**kw):
    base = dict(
        model="conv",
        model_args=dict(SMALL_CONV),
        winsize=4.0,
        epochs=2,
        batch_size=8,
        split="loso",
        test_subjects=["01"],
    )
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_train_evaluate_end_to_end(tiny_bids, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(model_args={"conv": dict(SMALL_CONV), "ridge": {"n_lags": 1}})
    report = train_and_evaluate(tiny_bids, cfg, out, models=["conv", "ridge"], progress=False)
    metrics = report["summary"]
    for name in ("conv", "ridge", "subject_mean", "train_mean", "events"):
        assert name in metrics, name
        assert np.isfinite(metrics[name]["mse"][0])
    # the subject-mean baseline is R²'s reference
    assert metrics["subject_mean"]["r2_vs_subject_mean"][0] == pytest.approx(0.0, abs=1e-6)
    assert (out / "report.md").read_text().count("|") > 20
    # the architecture is chosen per fold on the validation subject, never on the test one
    fold = json.loads((out / "metrics.json").read_text())["folds"][0]
    chosen = fold["selected"]["model"]
    assert set(fold["selected"]["val_r_mean"]) == {"conv", "ridge"}
    assert chosen == max(fold["selected"]["val_r_mean"], key=fold["selected"]["val_r_mean"].get)
    assert metrics["selected on validation"]["r_mean"] == metrics[chosen]["r_mean"]
    # what the EEG adds to the task: the selected model beside the events, weighed on the
    # validation subject's pairs (never the test subject's)
    assert np.isfinite(metrics["selected on validation+events"]["r_mean"][0])
    assert f"{chosen} (loso-sub-01)" in (out / "report.md").read_text()
    assert (out / "loss_curves.png").stat().st_size > 1000
    assert (out / "r_map_loso-sub-01.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["folds"][0]["split"]["test_subjects"] == [
        "01"
    ]
    ckpt = load_checkpoint(out / "loso-sub-01" / "conv.pt")
    # the checkpoint was picked on the validation subject, never the test subject
    assert ckpt.metadata["split"]["val_subjects"] == ["02"]
    # the demo's showcase voxel is fixed at training, on the validation subject
    shown = ckpt.metadata["showcase"]
    assert shown["val_subjects"] == ["02"] and ckpt.mask[tuple(shown["ijk"])]
    assert -1 <= shown["val_r"] <= 1
    ds = load_dataset(tiny_bids, _cfg().preprocessing, progress=False)
    x, _ = ds.get_batch([0])
    assert ckpt.predict(x[0]).shape == (ds.n_voxels,)


def test_training_is_deterministic_on_cpu(tiny_bids, tmp_path):
    from trainer.loop import fit
    from trainer.splits import loso_splits

    ds = load_dataset(tiny_bids, _cfg().preprocessing, progress=False)
    (split,) = loso_splits(ds.subject, test_subjects=["01"])
    a = fit(ds, split, _cfg(), progress=False)
    b = fit(ds, split, _cfg(loader_threads=2), progress=False)  # batches read ahead: the same
    assert a.history == b.history
    for (k, va), vb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k


def test_resume_continues_from_last_state(tiny_bids, tmp_path):
    from trainer.loop import fit
    from trainer.splits import loso_splits

    ds = load_dataset(tiny_bids, _cfg().preprocessing, progress=False)
    (split,) = loso_splits(ds.subject, test_subjects=["01"])
    fit(ds, split, _cfg(epochs=1), workdir=tmp_path, progress=False)
    assert (tmp_path / "last.pt").is_file()
    # a different config does not resume from it (and says so)
    res = fit(ds, split, _cfg(epochs=2), workdir=tmp_path, progress=False)
    assert len(res.history) == 2


def test_too_few_subjects_for_loso(tmp_path):
    from tests.data.builders import write_bids_run

    for s in (1, 2):
        write_bids_run(tmp_path, sub=f"0{s}", n_chans=4, sfreq=50.0, n_volumes=12, t_r=1.0)
    with pytest.raises(ValueError, match="at least 3 subjects"):
        train_and_evaluate(tmp_path, _cfg(test_subjects=None), tmp_path / "out", progress=False)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('[train]\nmodel = "fc"\nepochs = 3\n[train.model_args]\nhidden = 8\n')
    cfg = load_config(path, ["epochs=5", "model_args.n_basis=4", "amp=true"])
    assert (cfg.model, cfg.epochs, cfg.amp) == ("fc", 5, True)
    assert cfg.model_args == {"hidden": 8, "n_basis": 4}
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]"):
        load_config(path)
    with pytest.raises(ValueError, match="'device' must be one of"):
        load_config(None, ["device=tpu"])
    # every number is checked before any data is read
    for bad, message in (
        ("lr=NaN", "'lr' must be positive and finite, got lr=nan"),
        ("lr=0", "'lr' must be positive and finite"),
        ("weight_decay=-1", "'weight_decay' must be >= 0 and finite, got -1"),
        ("epochs=0", "'epochs' must be >= 1, got 0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            load_config(None, [bad])


def test_train_cli(tiny_bids, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--data",
            str(tiny_bids),
            "--out",
            str(tmp_path / "cli"),
            "--model",
            "ridge",
            "--test-subjects",
            "02",
            "--no-progress",
            "--set",
            "winsize=4.0",
        ]
    )
    assert rc == 0
    assert "| ridge |" in capsys.readouterr().out


def test_evaluate_checkpoint_on_any_dataset(tiny_bids, tmp_path, capsys):
    out = tmp_path / "run"
    train_and_evaluate(tiny_bids, _cfg(epochs=1), out, progress=False)
    ckpt = out / "loso-sub-01" / "conv.pt"
    rc = main(
        [
            "evaluate",
            "--model",
            str(ckpt),
            "--data",
            str(tiny_bids),
            "--no-progress",
            "--json",
            str(tmp_path / "e.json"),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for name in ("conv", "subject_mean", "train_mean", "events", "conv rescaled", "conv+events"):
        assert f"| {name} |" in text
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["n_pairs"] == 6 * 20 and res["metrics"]["conv"]["mse"] > 0
    assert "| SSIM |" in text and "ssim" in res["metrics"]["conv"]
    rc = main(["evaluate", "--model", str(ckpt), "--data", str(tiny_bids), "--no-progress",
               "--no-ssim", "--json", str(tmp_path / "n.json")])  # fmt: skip
    assert rc == 0 and "SSIM" not in capsys.readouterr().out
    fast = json.loads((tmp_path / "n.json").read_text())["metrics"]
    assert "ssim" not in fast["conv"] and fast["conv"]["mse"] == res["metrics"]["conv"]["mse"]


def test_evaluate_channel_mismatch(tiny_bids, tmp_path, capsys):
    from tests.data.builders import write_bids_run

    out = tmp_path / "run"
    train_and_evaluate(tiny_bids, _cfg(epochs=1), out, progress=False)
    other = tmp_path / "other"
    write_bids_run(
        other,
        sub="09",
        n_chans=4,
        sfreq=50.0,
        n_volumes=24,
        t_r=1.0,
        ch_names=["Fz", "Cz", "Pz", "Oz"],
    )
    rc = main(
        [
            "evaluate",
            "--model",
            str(out / "loso-sub-01" / "conv.pt"),
            "--data",
            str(other),
            "--no-progress",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "conv.pt' cannot be scored on" in err
    assert "4 of the model's 4 channels are missing from the recording: 'EEG00'" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("nproc", "device", "backend"),
    [
        (2, "cpu", "gloo"),
        pytest.param(1, "cuda", "nccl", marks=pytest.mark.gpu, id="1-cuda-nccl"),
    ],
)
def test_data_parallel_training_under_torchrun(tiny_bids, tmp_path, nproc, device, backend):
    import os
    import socket
    import subprocess
    import sys

    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(port),
        "-m", "apps.cli", "train", "--data", str(tiny_bids), "--out", str(out),
        "--model", "conv", "--test-subjects", "01", "--epochs", "2", "--device", device,
        "--no-progress", "--set", "winsize=4.0", "--set", "batch_size=4",
        "--set", "model_args=" + json.dumps(SMALL_CONV),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=240, cwd=os.getcwd()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["world_size"] == nproc
    assert report["distributed_backend"] == backend
    assert "conv" in report["summary"]
    ckpt = load_checkpoint(out / "loso-sub-01" / "conv.pt")
    assert ckpt.metadata["split"]["test_subjects"] == ["01"]


def test_subject_selection(tiny_bids):
    ds = load_dataset(tiny_bids, _cfg().preprocessing, subjects=["01", "3"], progress=False)
    assert set(ds.subject) == {"01", "03"}


@pytest.mark.slow
def test_simulated_data_reports_the_noise_ceiling_of_filtered_targets(tmp_path):
    from rt_eeg2fmri.sim import simulate_dataset

    root = simulate_dataset(
        tmp_path / "sim", preset="tiny", subjects=3, runs=1, volumes=24, progress=False
    )
    cfg = TrainConfig.from_dict(
        dict(
            model="ridge",
            model_args={"n_lags": 1},
            winsize=10.0,
            test_subjects=["01"],
            fwhm=6.0,
            high_pass=0.01,
        )
    )
    report = train_and_evaluate(root, cfg, tmp_path / "run", progress=False)
    ridge = report["summary"]["ridge"]
    assert 0 < ridge["ceiling_r_mean_top"][0] <= 1
    assert np.isfinite(ridge["ceiling_fraction_top"][0])
    pre = report["config"]["preprocessing"]
    assert pre["fwhm"] == 6.0 and pre["high_pass"] == 0.01


def test_checkpoint_carries_preprocessing_and_evaluate_reproduces_the_fold(
    tiny_bids, tmp_path, monkeypatch
):
    # every preprocessing option travels in the checkpoint; evaluate on the fold's test
    # subject scores the same pairs from the same cache with the same metrics
    from rt_eeg2fmri.data import Preprocessing
    from trainer.evaluate import evaluate_checkpoint

    cfg = _cfg(epochs=1, l_freq=1.0, h_freq=20.0, fwhm=6.0, target="median_ratio")
    out = tmp_path / "run"
    report = train_and_evaluate(tiny_bids, cfg, out, progress=False)
    ckpt = load_checkpoint(out / "loso-sub-01" / "conv.pt")
    want = Preprocessing(
        sfreq=50.0, l_freq=1.0, h_freq=20.0, winsize=4.0, target="median_ratio", fwhm=6.0,
        high_pass=0.008,
    )  # fmt: skip
    assert ckpt.preprocessing == want
    from rt_eeg2fmri.data import RunRef

    loads = []
    real = RunRef.load
    monkeypatch.setattr(RunRef, "load", lambda self: loads.append(self.name) or real(self))
    res = evaluate_checkpoint(ckpt.path, tiny_bids, subjects=["01"], progress=False)
    assert loads == []  # one cache for train and evaluate of the same data: no run re-read
    assert res["n_pairs"] == report["folds"][0]["split"]["n_test"]
    fold = report["folds"][0]["metrics"]
    for name in ("conv", "subject_mean"):
        for metric, value in fold[name].items():
            assert res["metrics"][name][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), (
                name,
                metric,
            )


def test_run_selection(tiny_bids):
    pre = _cfg().preprocessing
    ds = load_dataset(tiny_bids, pre, runs=["2"], progress=False)
    assert {row["run"] for row in (ds.runs[r] for r in set(ds.run_index.tolist()))} == {"2"}
    one = load_dataset(tiny_bids, pre, runs=["sub-03_task-oddball_run-1"], progress=False)
    assert set(one.subject) == {"03"} and len(set(one.run_index.tolist())) == 1
    with pytest.raises(ValueError, match="no run matches 'run-7'"):
        load_dataset(tiny_bids, pre, runs=["run-7"], progress=False)


def test_train_refuses_an_earlier_run_and_clears_it_with_overwrite(tiny_bids, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "loso-sub-09").mkdir(parents=True)  # a fold of an earlier run
    (out / "metrics.json").write_text("{}")
    argv = ["train", "--data", str(tiny_bids), "--out", str(out), "--model", "ridge",
            "--test-subjects", "01", "--set", "winsize=4", "--set", "model_args.n_lags=1",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "holds an earlier training run (loso-sub-09, metrics.json)" in err
    assert "--overwrite" in err and (out / "loso-sub-09").is_dir()
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "loso-sub-09").exists()  # no stale fold beside the new run
    assert (out / "loso-sub-01" / "ridge.pt").is_file()


def test_per_region_report(tiny_bids, tmp_path):
    """``roi``: every model's and baseline's mean r in each region, per fold and averaged."""
    import nibabel as nib

    bold = nib.load(next(tiny_bids.rglob("*_bold.nii.gz")))
    labels = np.zeros(bold.shape[:3], np.int16)
    labels[:2], labels[3:] = 1, 2
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, bold.affine), atlas)
    lut = tmp_path / "atlas.tsv"
    lut.write_text("index\tname\n1\tfront\n2\tback\n")
    out = tmp_path / "run"
    cfg = _cfg(model="ridge", model_args={"ridge": {"frame_s": 0.5}})
    report = train_and_evaluate(
        tiny_bids, cfg, out, progress=False, roi=atlas, roi_labels=lut, save_checkpoints=False
    )
    assert set(report["regions"]) >= {"ridge", "events", "subject_mean"}
    assert list(report["regions"]["ridge"]) == ["front", "back"]
    fold = json.loads((out / "metrics.json").read_text())["folds"][0]
    assert fold["regions"]["ridge"] == report["regions"]["ridge"]  # one fold: its own
    text = (out / "report.md").read_text()
    assert "## Mean voxelwise r per region (mean over folds)" in text
    assert "| front |" in text and "| back |" in text
