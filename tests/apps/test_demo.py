"""``rt-eeg2fmri demo`` headless end to end: simulator → replay → engine → viewer model → files."""

from __future__ import annotations

import json
import uuid

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from apps.cli import main
from apps.viewer.demo import has_display
from rt_eeg2fmri.checkpoint import save_checkpoint
from rt_eeg2fmri.data import NormStats, Preprocessing
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mni_mask
from rt_eeg2fmri.models import build_model
from rt_eeg2fmri.sim.presets import CHANNELS_16

SFREQ, WINSIZE, T_R = 100.0, 4.0, 2.0


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small untrained conv model on the full SPM grid (the demo needs no trained one)."""
    torch.manual_seed(0)
    mask = np.array(mni_mask())
    model = build_model(
        "conv",
        {
            "n_chans": 16,
            "n_times": int(WINSIZE * SFREQ),
            "sfreq": SFREQ,
            "n_voxels": int(mask.sum()),
            "grid_shape": list(GRID_SHAPE),
            "n_basis": 8,
            "hidden": 16,
        },
    )
    model.set_mask(torch.as_tensor(mask))
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "tiny.pt",
        model.eval(),
        preprocessing=Preprocessing(sfreq=SFREQ, winsize=WINSIZE),
        norm_stats=NormStats("zscore", [0.0] * 16, [1e-5] * 16, list(CHANNELS_16)),
        ch_names=list(CHANNELS_16),
        t_r=T_R,
        grid_shape=GRID_SHAPE,
        affine=np.asarray(GRID_AFFINE),
        mask=mask,
    )


@pytest.mark.lsl
@pytest.mark.gui
@pytest.mark.slow
def test_demo_headless_writes_everything(tiny_model, tmp_path, capsys):
    out = tmp_path / "demo-out"
    argv = ["demo", "--headless", "--model", str(tiny_model), "--volumes", "5"]
    argv += ["--speed", "8", "--out", str(out), "--name", f"demo-{uuid.uuid4().hex[:8]}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "demo: 5 volumes of conv on sub-01_task-auditory_run-1 at 8×" in printed
    assert "online r  vs truth over" in printed and "latency   p50" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["volumes"] == 5 and summary["skipped"] == 0
    # the first window ends 1 TR before the first volume's acquisition does: 4 of 5 pair
    assert summary["correlation"]["n_pairs"] == 4
    assert summary["correlation"]["n_voxels"] > 60000
    assert -1 <= summary["correlation"]["r_mean"] <= 1
    assert np.isfinite(summary["latency_p50_ms"]) and summary["latency_p99_ms"] < 5000
    assert summary["received"]["prediction"] == 5
    # the crosshair is chosen blind to the truth (this model has no training showcase)
    assert "blind to the truth" in summary["crosshair_choice"]
    assert "chosen by largest predicted variance" in printed
    img = nib.load(out / "prediction.nii")
    assert img.shape == (*GRID_SHAPE, 5)
    np.testing.assert_allclose(img.affine, GRID_AFFINE)
    timing = pd.read_csv(out / "timing.tsv", sep="\t")
    assert len(timing) == 5 and (np.diff(timing["window_end"]) == pytest.approx(T_R))
    rimg = nib.load(out / "r_map.nii.gz")
    rmap = rimg.get_fdata()
    # MNI codes, units and the meaning of the values, for nilearn/FSL/AFNI
    assert int(rimg.header["qform_code"]) == 4 and int(rimg.header["sform_code"]) == 4
    assert rimg.header.get_xyzt_units()[0] == "mm"
    assert rimg.header.get_intent() == ("correlation", (2.0,), "Pearson r")
    assert rmap.shape == GRID_SHAPE and np.isnan(rmap[0, 0, 0])
    # the screenshot is a real render: T1 anatomy (grey) and overlay colours
    from PySide6.QtGui import QImage

    shot = QImage(str(out / "viewer.png"))
    assert (shot.width(), shot.height()) == (1400, 900)
    assert summary["files"]["screenshot"] == "viewer.png"


def test_demo_missing_model_and_bad_options(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["demo", "--headless", "--model", str(missing), "--out", str(tmp_path)]) == 1
    assert "nope.pt" in capsys.readouterr().err
    assert main(["demo", "--headless", "--volumes", "0", "--out", str(tmp_path)]) == 1
    assert "'--volumes' must be at least 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--headless", "--speed", "-2", "--out", str(tmp_path)]) == 1
    assert "'--speed' must be positive, got -2.0" in capsys.readouterr().err


def test_default_model_missing_is_said_clearly(tmp_path, capsys, monkeypatch):
    import apps.commands.stream as stream

    monkeypatch.setattr(stream, "default_model_path", lambda: tmp_path / "assets" / "conv.pt")
    assert main(["demo", "--headless", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the built-in default model" in err and "conv.pt' is not there" in err
    assert "--model CHECKPOINT.pt" in err


def test_no_display_falls_back_to_headless(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["demo", "--model", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "no display" in err and "running headless, outputs in" in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not has_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert has_display()


@pytest.mark.gui
def test_a_display_qt_cannot_open_falls_back_to_headless_naming_the_packages(
    monkeypatch, tmp_path, capsys
):
    # a display is set, but Qt cannot open it (here: no X server on :12345, and without
    # libxcb-cursor0 PySide6 >= 6.5 cannot even load its xcb plugin)
    from apps.viewer.demo import qt_platform_problem

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":12345")
    problem = qt_platform_problem()
    assert problem and "cannot open its 'xcb' platform" in problem
    assert "apt-get install libxcb-cursor0" in problem
    assert main(["demo", "--model", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Running headless instead" in err and "libxcb-cursor0" in err
    assert "x.pt" in err  # then the headless demo ran and reported the missing model
    assert main(["view"]) == 1
    assert "cannot open its 'xcb' platform" in capsys.readouterr().err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert qt_platform_problem() is None


def test_chance_level_of_a_voxel_by_circular_shifts(rng):
    from apps.viewer.demo import circular_shift_null

    t = np.arange(60)
    signal = np.sin(2 * np.pi * t / 15)
    strong = circular_shift_null(signal + 0.2 * rng.standard_normal(60), signal)
    assert strong["r"] > 0.9 and strong["p"] < 0.1 and strong["null_p95"] < strong["r"]
    noise = circular_shift_null(rng.standard_normal(60), rng.standard_normal(60))
    assert noise["p"] > 0.01 and noise["n_pairs"] == 60
