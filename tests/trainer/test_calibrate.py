"""``rt-eeg2fmri calibrate``: adapt a checkpoint to one person, choose on held-out minutes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from apps.cli import main
from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.models import Calibrated
from rt_eeg2fmri.readout import fit_readout
from tests.data.builders import write_bids_run
from trainer.calibrate import calibration_split
from trainer.config import TrainConfig
from trainer.data import load_dataset
from trainer.loop import predict
from trainer.run import train_and_evaluate

CH = ["Fz", "Cz", "Pz", "Oz"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(dataset, base checkpoint): 3 subjects × 2 runs of 60 volumes, TR 1 s; ridge, LOSO 01."""
    root = tmp_path_factory.mktemp("calib_bids")
    for s in range(3):
        for r in (1, 2):
            write_bids_run(
                root, sub=f"{s + 1:02d}", run=str(r), ch_names=CH, sfreq=50.0, n_volumes=60,
                t_r=1.0, seed=10 * s + r,
            )  # fmt: skip
    cfg = TrainConfig.from_dict(
        dict(model="ridge", model_args={"n_lags": 1}, winsize=4.0, split="loso",
             test_subjects=["01"], device="cpu")
    )  # fmt: skip
    out = tmp_path_factory.mktemp("calib_run")
    train_and_evaluate(root, cfg, out, progress=False)
    return root, out / "loso-sub-01" / "ridge.pt"


def test_fit_readout_recovers_a_planted_map_and_shrinks_toward_base():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((200, 5))
    y = 3.0 * p + 2.0
    gain, bias = fit_readout(p, y, "affine", 1e-6)
    np.testing.assert_allclose(gain, 3.0, rtol=1e-4)
    np.testing.assert_allclose(bias, 2.0, atol=1e-3)
    strong, _ = fit_readout(p, y, "affine", 1e6)  # pulled all the way to the base model
    np.testing.assert_allclose(strong, 1.0, atol=1e-3)
    g, b = fit_readout(p, y, "bias", None)
    assert np.all(g == 1.0) and np.allclose(b, (y - p).mean(0))


def test_the_split_is_chronological_with_a_gap(base, tmp_path):
    root, ckpt_path = base
    ckpt = load_checkpoint(ckpt_path)
    ds = load_dataset(root, ckpt.preprocessing, subjects=["01"], runs=["1"], progress=False)
    fit, val, span = calibration_split(ds, minutes=None, gap=20.0, val_fraction=0.25)
    end = ds.volume_times(0)[ds.volume] + 1.0 - ds.volume_times(0)[0]
    t = dict(zip(np.arange(len(ds)), end, strict=True))
    assert max(t[i] for i in fit) + 20.0 <= min(t[i] for i in val) - 1.0
    assert span == pytest.approx(60.0)
    _, val2, span2 = calibration_split(ds, minutes=0.75, gap=20.0, val_fraction=0.25)
    assert span2 <= 45.0 and max(t[i] for i in val2) <= 45.0


def test_calibrate_end_to_end(base, tmp_path, capsys):
    root, ckpt_path = base
    out = tmp_path / "sub-01.pt"
    rc = main(["calibrate", "--model", str(ckpt_path), "--data", str(root), "--subject", "01",
               "--runs", "1", "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "chosen on the held-out minutes:" in text and "held-out MSE" in text
    cal = load_checkpoint(out)
    assert isinstance(cal.model, Calibrated) and cal.model_name == "ridge"
    meta = cal.metadata["calibration"]
    assert meta["subject"] == "01" and meta["runs"] == ["sub-01_task-oddball_run-1"]
    assert meta["minutes"] == pytest.approx(1.0) and meta["base_checkpoint"] == str(ckpt_path)
    assert len(meta["base_sha256"]) == 64 and meta["data_fingerprint"]
    # the choice: the base, unless a candidate beats it beyond noise on the held-out part
    _check_the_choice(meta)
    # the calibrated model is the base model's prediction through the per-voxel map
    base_ckpt = load_checkpoint(ckpt_path)
    ds = load_dataset(root, cal.preprocessing, subjects=["01"], runs=["2"], progress=False)
    view = ds.with_stats(cal.norm_stats)
    idx = np.arange(5)
    want = (
        predict(base_ckpt.model, view, idx) * cal.model.out_gain.numpy()
        + cal.model.out_bias.numpy()
    )
    np.testing.assert_allclose(predict(cal.model, view, idx), want, rtol=1e-5, atol=1e-6)
    # it is scored like any checkpoint, on the person's other run
    assert main(["evaluate", "--model", str(out), "--data", str(root), "--subjects", "01",
                 "--runs", "2", "--stats", "checkpoint", "--no-progress"]) == 0  # fmt: skip
    assert "ridge" in capsys.readouterr().out
    # and calibrating a calibrated checkpoint composes the maps
    again = tmp_path / "again.pt"
    assert main(["calibrate", "--model", str(out), "--data", str(root), "--subject", "01",
                 "--runs", "2", "--out", str(again), "--no-progress"]) == 0  # fmt: skip
    twice = load_checkpoint(again)
    assert isinstance(twice.model.base, torch.nn.Module) and not isinstance(
        twice.model.base, Calibrated
    )


def test_a_labs_readout_from_several_people(base, tmp_path, capsys):
    """``--subject 02,03``: one readout from a lab's own people (their runs in turn), for the
    people it records next; the summary names them, and a subject the data lack is refused."""
    root, ckpt_path = base
    out = tmp_path / "lab.pt"
    assert main(["calibrate", "--model", str(ckpt_path), "--data", str(root), "--subject",
                 "02,03", "--runs", "1", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert "min of sub-02,03 (sub-02_task-oddball_run-1, sub-03_task-oddball_run-1)" in (
        capsys.readouterr().out
    )
    meta = load_checkpoint(out).metadata["calibration"]
    assert meta["subject"] == "02,03" and meta["minutes"] == pytest.approx(2.0)
    assert main(["calibrate", "--model", str(ckpt_path), "--data", str(root), "--subject",
                 "02,09", "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1  # fmt: skip
    assert "unknown subject '09'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_calibrate_errors(base, tmp_path, capsys):
    root, ckpt_path = base
    args = ["calibrate", "--model", str(ckpt_path), "--data", str(root), "--out",
            str(tmp_path / "x.pt"), "--no-progress"]  # fmt: skip
    assert main([*args, "--subject", "09"]) == 1
    err = capsys.readouterr().err
    assert "on subject '09'" in err and "unknown subject '09'" in err and "'01'" in err
    assert main([*args, "--subject", "01", "--minutes", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "too few minutes: 0.30 min" in err and "--minutes" in err
    assert main([*args, "--subject", "01", "--minutes", "-1"]) == 1
    assert "'--minutes' must be positive" in capsys.readouterr().err
    assert main([*args, "--subject", "01", "--delays"]) == 1  # a ridge has no learned HRF
    err = capsys.readouterr().err
    assert "'--delays' needs a model whose encoder reads the band-power envelope" in err
    assert "ridge.pt" in err and "(ridge)" in err
    # a checkpoint of another grid
    other = tmp_path / "other"
    write_bids_run(other, sub="01", ch_names=CH, sfreq=50.0, n_volumes=60, t_r=1.0, grid=(4, 4, 4))
    assert main(["calibrate", "--model", str(ckpt_path), "--data", str(other), "--subject",
                 "01", "--out", str(tmp_path / "y.pt"), "--no-progress"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "ridge.pt" in err and "(5, 6, 4)" in err and "is (4, 4, 4)" in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


@pytest.mark.lsl
def test_a_calibrated_checkpoint_streams(base, tmp_path):
    import json
    import uuid

    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.replay import Replay
    from tests.realtime.engine_helpers import stream_replay

    root, ckpt_path = base
    out = tmp_path / "sub-01.pt"
    assert main(["calibrate", "--model", str(ckpt_path), "--data", str(root), "--subject", "01",
                 "--runs", "1", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    uid = f"cal-{uuid.uuid4().hex[:10]}"
    session = read_session(root, subject="01", run="2")
    replay = Replay(session, name=uid, source_id=uid, truth=False, speed=8.0).open()
    rc, stdout, err = stream_replay(
        replay, "--model", out, "--source", f"name:{uid}-EEG", "--sync", "samples", "--device",
        "cpu", "--no-outlet", "--out", tmp_path / "pred.nii", "--max-volumes", "3",
        "--timeout", "30",
    )  # fmt: skip
    assert rc == 0, err
    assert json.loads(stdout)["volumes"] == 3


def test_an_external_ground_truth_gives_the_noise_ceiling(base, tmp_path, capsys):
    """``evaluate --truth DIR``: another generator's truth, in the documented layout."""
    import json
    import shutil

    root, ckpt_path = base
    truth = tmp_path / "truth"
    for bold in sorted(root.glob("sub-*/func/*_bold.nii.gz")):
        sub = bold.name.split("_")[0]
        dst = (
            truth
            / sub
            / "func"
            / bold.name.replace("_bold.nii.gz", "_desc-eegpredictable_bold.nii.gz")
        )
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bold, dst)  # a truth equal to the measurement: the ceiling is r = 1
    out = tmp_path / "e.json"
    args = ["evaluate", "--model", str(ckpt_path), "--data", str(root), "--no-progress"]
    assert main([*args, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["noise_ceiling_r_mean"] is None
    assert main([*args, "--truth", str(truth), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["noise_ceiling_r_mean"] == pytest.approx(1.0, abs=1e-4)
    capsys.readouterr()
    assert main([*args, "--truth", str(tmp_path / "nope")]) == 1
    assert "ground-truth folder not found" in capsys.readouterr().err


def test_evaluate_reports_per_region_r(base, tmp_path, capsys):
    import json

    import nibabel as nib

    root, ckpt_path = base
    ckpt = load_checkpoint(ckpt_path)
    labels = np.zeros(ckpt.grid_shape, np.int16)
    labels[:2] = 1
    labels[3:] = 2
    labels[~np.asarray(ckpt.mask)] = 0
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, ckpt.affine), atlas)
    (tmp_path / "lut.tsv").write_text("index\tname\n1\tleft\n2\tright\n")
    out = tmp_path / "e.json"
    assert main(["evaluate", "--model", str(ckpt_path), "--data", str(root), "--roi", str(atlas),
                 "--roi-labels", str(tmp_path / "lut.tsv"), "--json", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "| region |" in text and "| left |" in text and "| right |" in text
    res = json.loads(out.read_text())
    assert set(res["regions"]["ridge"]) == {"left", "right"}
    assert all(-1 <= v <= 1 for v in res["regions"]["ridge"].values())


def test_fit_basis_readout_recovers_planted_weights():
    from rt_eeg2fmri.readout import basis_coefficients, fit_basis_readout

    rng = np.random.default_rng(1)
    basis, offset = rng.standard_normal((4, 50)), rng.standard_normal(50)
    h = rng.standard_normal((300, 6))
    w_true, b_true = rng.standard_normal((4, 6)), rng.standard_normal(4)
    y = (h @ w_true.T + b_true) @ basis + offset
    coef = basis_coefficients(y, basis, offset)
    w, b = fit_basis_readout(h, coef, np.zeros((4, 6)), np.zeros(4), 1e-8)
    np.testing.assert_allclose(w, w_true, atol=1e-5)
    np.testing.assert_allclose(b, b_true, atol=1e-5)
    w0 = rng.standard_normal((4, 6))
    w_far, _ = fit_basis_readout(h, coef, w0, np.zeros(4), 1e8)  # pulled onto the base layer
    np.testing.assert_allclose(w_far, w0, atol=1e-4)


def test_a_basis_head_model_gets_readout_weight_candidates(base, tmp_path):
    from tests.trainer.conftest import SMALL_CONV
    from trainer.calibrate import calibrate

    root, _ = base
    cfg = TrainConfig.from_dict(
        dict(model="conv", model_args=dict(SMALL_CONV), winsize=4.0, epochs=1, batch_size=8,
             max_batches=3, split="loso", test_subjects=["01"], device="cpu")
    )  # fmt: skip
    train_and_evaluate(root, cfg, tmp_path / "run", progress=False)
    conv = tmp_path / "run" / "loso-sub-01" / "conv.pt"
    info = calibrate(conv, root, subject="01", runs=["1"], out=tmp_path / "c.pt", progress=False)
    readouts = {c["readout"] for c in info["candidates"]}
    assert readouts == {"none", "bias", "affine", "coef"}  # no learned HRF: no delay
    _check_the_choice(info)
    cal = load_checkpoint(tmp_path / "c.pt")
    base_ckpt = load_checkpoint(conv)
    if info["chosen"]["readout"] == "coef":  # an ordinary conv with its own readout weights
        assert not isinstance(cal.model, Calibrated)
        assert not torch.equal(cal.model.head.coef.weight, base_ckpt.model.head.coef.weight)
        assert torch.equal(cal.model.head.basis, base_ckpt.model.head.basis)
    else:
        assert isinstance(cal.model, Calibrated)


def test_the_choice_keeps_the_base_unless_a_candidate_beats_it_beyond_noise():
    """``pick``: a candidate whose held-out error is lower only by chance (within one
    standard error of the paired difference) does not replace the base; one clearly lower
    does; neighbouring volumes that share their errors count as fewer."""
    from rt_eeg2fmri.readout import paired_se, pick

    rng = np.random.default_rng(0)
    base = 1.0 + 0.3 * rng.standard_normal(12)
    lucky = base + 0.3 * rng.standard_normal(12)  # as good; lower by chance, by 0.01
    lucky += base.mean() - lucky.mean() - 0.01
    table = [{"mse": float(base.mean())}, {"mse": float(lucky.mean())}]
    assert table[1]["mse"] < table[0]["mse"]
    assert pick(table, [base, lucky], 0) == 0 and table[1]["margin"] < 1.0
    better = base - 0.5 + 0.05 * rng.standard_normal(12)
    table.append({"mse": float(better.mean())})
    assert pick(table, [base, lucky, better], 0) == 2 and table[2]["margin"] > 1.0
    white = rng.standard_normal(200)
    smooth = np.convolve(white, np.ones(8) / 8, mode="same")  # lag-1 correlation ~0.9
    naive = smooth.std(ddof=1) / np.sqrt(smooth.size)
    assert paired_se(white) == pytest.approx(white.std(ddof=1) / np.sqrt(200), rel=0.15)
    assert paired_se(smooth) > 3 * naive
    assert paired_se(np.ones(2)) == float("inf")


def _check_the_choice(summary):
    """The chosen candidate: the lowest held-out MSE among those beating the base model by
    more than one standard error, else the base; never worse than the base there."""
    cands, held = summary["candidates"], summary["held_out"]
    beating = [c for c in cands if c["margin"] > 1.0]
    want = min(beating, key=lambda c: c["mse"]) if beating else held["base"]
    assert held["chosen"] == want
    assert held["chosen"]["mse"] <= held["base"]["mse"]


def test_a_later_haemodynamic_response_is_fitted_by_stretching_the_learned_hrf(base, tmp_path):
    """A person whose BOLD follows the model's learned HRF stretched 1.4× in time: the
    fitted stretch is 1.4, and the stretched candidates are judged with the others."""
    from rt_eeg2fmri.adaptation import fit_stretch, stretched
    from trainer.calibrate import _predictor, calibrate

    root, _ = base
    cfg = TrainConfig.from_dict(
        dict(model="conv", model_args={"channels": [4], "emb_dim": 4, "hidden": 16,
             "n_basis": 4}, winsize=4.0, epochs=1, batch_size=8, max_batches=3, split="loso",
             test_subjects=["01"], device="cpu")
    )  # fmt: skip
    train_and_evaluate(root, cfg, tmp_path / "run", progress=False)
    conv = tmp_path / "run" / "loso-sub-01" / "conv.pt"
    ckpt = load_checkpoint(conv)
    data = load_dataset(root, ckpt.preprocessing, subjects=["01"], ch_names=ckpt.ch_names,
                        mask=ckpt.mask, progress=False).with_stats(ckpt.norm_stats)  # fmt: skip
    idx = np.arange(len(data))
    y = predict(stretched(ckpt.model, 1.4), data, idx).astype(np.float64)
    fit = idx < 80
    factor, model = fit_stretch(_predictor(data, idx), ckpt.model, y, fit)
    assert factor == 1.4
    torch.testing.assert_close(
        model.encoder.proj.weight, stretched(ckpt.model, 1.4).encoder.proj.weight
    )
    info = calibrate(conv, root, subject="01", runs=["1"], out=tmp_path / "c.pt", progress=False)
    stretches = {c["hrf_stretch"] for c in info["candidates"]}
    assert 1.0 in stretches and len(stretches) <= 3  # the base, and one fitted per statistics
    readouts = {c["readout"] for c in info["candidates"]}
    assert readouts == {"none", "bias", "affine", "coef"}  # delays only when asked for
    assert main(["calibrate", "--model", str(conv), "--data", str(root), "--subject", "01",
                 "--runs", "1", "--delays", "--out", str(tmp_path / "d.pt"),
                 "--no-progress"]) == 0  # fmt: skip
    meta = load_checkpoint(tmp_path / "d.pt").metadata["calibration"]
    assert {c["readout"] for c in meta["candidates"]} == {*readouts, "delay"}
    _check_the_choice(meta)
    _check_the_choice(info)
    cal = load_checkpoint(tmp_path / "c.pt")  # stretched or not, an ordinary checkpoint
    chosen = info["chosen"]["hrf_stretch"]
    want = stretched(ckpt.model, chosen) if chosen != 1.0 else ckpt.model
    torch.testing.assert_close(cal.model.encoder.proj.weight, want.encoder.proj.weight)


def test_per_voxel_haemodynamic_delays_are_fitted_by_the_delay_readout(tmp_path, rng):
    """A person whose regions answer earlier or later than the model's learned HRF (each
    voxel's response shifted by −0.75 to +0.75 s, times a gain): the delay readout is
    chosen, its per-voxel delays follow the planted ones, and the calibrated checkpoint
    loads with them and predicts what was fitted; pulled hard, it is the base model."""
    from rt_eeg2fmri.adaptation import choose
    from rt_eeg2fmri.readout import fit_delay_readout
    from tests.conftest import delayed_outputs, smooth_hrf
    from tests.realtime.engine_helpers import tiny_checkpoint

    path = tiny_checkpoint(tmp_path / "m.pt", sfreq=50.0, t_r=1.0, winsize=12.0, channels=[4])
    ckpt = load_checkpoint(path)
    model = smooth_hrf(ckpt.model)
    n = int(ckpt.mask.sum())
    delays = np.resize([-0.75, -0.25, 0.25, 0.75], n)
    # a slowly varying band power, as EEG rhythms wax and wane over seconds
    t = np.arange(600)[:, None, None] + np.arange(4)[None, :, None] * 7.0
    level = 1.0 + 0.8 * np.sin(2 * np.pi * (t + np.arange(600)[None, None, :] / 50) / 23.0)
    x = torch.as_tensor(rng.standard_normal((200, 4, 600)) * level[:200], dtype=torch.float32)
    y = 2.0 * delayed_outputs(model, x, delays) + 0.5

    @torch.no_grad()
    def run(m, rows):
        return m(x[rows]).double().numpy(), None

    fit = np.arange(200) < 150
    assert "delay" not in {row["readout"] for row in choose({"checkpoint": run}, model, y, fit)[2]}
    chosen, adapted, table, _, _ = choose({"checkpoint": run}, model, y, fit, delays=True)
    assert {"delay", "affine"} <= {row["readout"] for row in table}
    assert chosen.readout == "delay", [(r["readout"], r["mse"]) for r in table]
    assert isinstance(adapted, Calibrated) and adapted.out_slope is not None
    fitted = (adapted.out_slope / adapted.out_gain).numpy()
    for d in np.unique(delays):  # first order in the delay: close for small ones, then below
        got = np.median(fitted[delays == d])
        assert np.sign(got) == np.sign(d) and abs(got - d) < 0.3, (d, got)
    ckpt.save_adapted(tmp_path / "c.pt", adapted, norm_stats=ckpt.norm_stats, metadata={})
    cal = load_checkpoint(tmp_path / "c.pt")
    with torch.no_grad():
        torch.testing.assert_close(cal.model(x[:8]), adapted(x[:8]))
    assert cal.model.step == 0.5
    with torch.no_grad():
        p = model(x).double().numpy()
        dp = Calibrated(model, np.zeros(n), np.zeros(n), slope=np.ones(n))(x).double().numpy()
    gain, _, slope = fit_delay_readout(p, dp, y, 1e9)  # pulled onto the base model
    np.testing.assert_allclose(gain, 1.0, atol=1e-3)
    np.testing.assert_allclose(slope, 0.0, atol=1e-3 * np.abs(dp).max())


def test_the_choice_runs_the_base_model_once_per_normalisation(tmp_path, rng):
    """The fitted stretch and the readouts share one pass of the base model over all pairs."""
    from rt_eeg2fmri.adaptation import choose
    from tests.realtime.engine_helpers import tiny_checkpoint

    path = tiny_checkpoint(tmp_path / "m.pt", sfreq=50.0, t_r=1.0, winsize=12.0, channels=[4])
    model = load_checkpoint(path).model
    x = torch.as_tensor(rng.standard_normal((60, 4, 600)), dtype=torch.float32)
    y = rng.standard_normal((60, model.config.n_voxels))
    calls = []

    @torch.no_grad()
    def run(m, rows):
        calls.append((m is model, len(rows)))
        return m(x[rows]).double().numpy(), None

    choose({"checkpoint": run}, model, y, np.arange(60) < 40)
    assert [c for c in calls if c[0]] == [(True, 60)]  # once, on every pair
    assert len(calls) > 2  # and the stretched models, each on the fit part


def _task_driven(root, rng, subjects=("01", "02"), n_volumes=90):
    """BIDS runs (the base fixture's channels, grid and TR) whose BOLD follows two trial types.

    Blocks of 'go' (marker S 1) and 'stop' (S 2) events, irregularly spaced; every voxel
    responds to each with its own weight (the same in every person), plus noise.
    """
    from rt_eeg2fmri.task import table_regressors
    from tests.data.builders import write_bold

    weights = rng.standard_normal((2, 5 * 6 * 4))
    for sub in subjects:
        for run in ("1", "2"):
            paths = write_bids_run(root, sub=sub, run=run, ch_names=CH, sfreq=50.0,
                                   n_volumes=n_volumes, t_r=1.0, seed=int(sub) * 7 + int(run))  # fmt: skip
            onsets = np.sort(rng.uniform(2.0, n_volumes - 5.0, 40))
            onsets = onsets[(onsets // 15) % 2 == 0]  # blocks of 15 s on, 15 s off
            kinds = rng.integers(0, 2, onsets.size)
            events = pd.DataFrame({"onset": onsets, "duration": 0.2,
                                   "trial_type": np.array(["go", "stop"])[kinds],
                                   "value": np.array(["S  1", "S  2"])[kinds]})  # fmt: skip
            events.to_csv(paths["eeg_events"], sep="\t", index=False)
            middles = 1.0 + np.arange(n_volumes) + 0.5  # lead 1 s, TR 1 s
            signal = table_regressors(events, ["go", "stop"], middles) @ weights
            noise = 0.3 * rng.standard_normal(signal.shape)
            data = 1000 + 5 * (signal + noise).T.reshape(5, 6, 4, n_volumes)
            write_bold(paths["bold"], n_volumes, t_r=1.0, data=data.astype(np.float32))
    return root


def test_a_task_readout_from_a_labs_people(base, tmp_path, capsys, rng):
    """``calibrate --events``: the task's events beside the model, kept when they beat it
    alone on the held-out minutes; ``evaluate`` then adds their part from the runs' events,
    and a person the readout never saw is predicted far better than without it."""
    import json

    _, ckpt_path = base
    root = _task_driven(tmp_path / "task", rng)
    args = ["calibrate", "--model", str(ckpt_path), "--data", str(root), "--subject", "02",
            "--no-progress"]  # fmt: skip
    out = tmp_path / "task.pt"
    assert main([*args, "--events", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "task events (go, stop) beside the model: held-out r mean" in text
    assert "; kept (strength " in text
    cal = load_checkpoint(out)
    assert cal.task.trial_types == ["go", "stop"] and cal.task.codes == [["S  1"], ["S  2"]]
    assert cal.task.durations == [0.2, 0.2]
    meta = cal.metadata["calibration"]["task"]
    kept = next(r for r in meta["held_out"] if r["strength"] == meta["strength"])
    assert meta["chosen"] and kept["r_mean"] > meta["held_out"][0]["r_mean"] + 0.3
    assert [r["strength"] for r in meta["held_out"]] == [None, 0.001, 0.01, 0.1, 1.0, 10.0]
    # evaluate: the model's prediction and the task part of the person's own events
    ds = load_dataset(root, cal.preprocessing, subjects=["01"], ch_names=cal.ch_names,
                      mask=cal.mask, progress=False).with_stats(cal.norm_stats)  # fmt: skip
    from trainer.baselines import task_part

    idx = np.arange(len(ds))
    want = predict(cal.model, ds, idx) + task_part(ds, idx, cal.task)
    scored = {}
    for name, path in (("task", out), ("plain", tmp_path / "plain.pt")):
        if name == "plain":
            assert main([*args, "--out", str(path)]) == 0
        res = tmp_path / f"{name}.json"
        assert main(["evaluate", "--model", str(path), "--data", str(root), "--subjects", "01",
                     "--stats", "checkpoint", "--no-ssim", "--no-progress", "--json",
                     str(res)]) == 0  # fmt: skip
        scored[name] = json.loads(res.read_text())["metrics"]["ridge"]["r_mean"]
    assert scored["task"] > 0.4 and scored["plain"] < 0.1, scored
    from trainer.evaluate import evaluate_checkpoint

    got = evaluate_checkpoint(out, root, subjects=["01"], stats="checkpoint", progress=False,
                              ssim=False)  # fmt: skip
    assert got["metrics"]["ridge"]["r_mean"] == pytest.approx(scored["task"])
    from trainer.metrics import voxelwise_r

    y = ds.get_targets(idx)
    assert float(voxelwise_r(want, y).mean()) == pytest.approx(scored["task"], abs=1e-4)
    # calibrated again without --events, it keeps the task readout (and fits what it leaves)
    again = tmp_path / "again.pt"
    assert main(["calibrate", "--model", str(out), "--data", str(root), "--subject", "01",
                 "--runs", "1", "--out", str(again), "--no-progress"]) == 0  # fmt: skip
    np.testing.assert_array_equal(load_checkpoint(again).task.weights, cal.task.weights)
    # data without task events
    bare = tmp_path / "bare"
    paths = write_bids_run(bare, sub="01", ch_names=CH, sfreq=50.0, n_volumes=60, t_r=1.0)
    paths["eeg_events"].write_text("onset\tduration\ttrial_type\n")  # a rest run
    capsys.readouterr()
    assert main(["calibrate", "--model", str(ckpt_path), "--data", str(bare), "--subject",
                 "01", "--events", "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "'--events' needs task events, but the runs ['sub-01_task-oddball'] have none" in err
    assert not (tmp_path / "x.pt").exists()
