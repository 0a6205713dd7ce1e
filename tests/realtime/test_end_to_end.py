"""Online == offline: a trained checkpoint streamed over real LSL gives the trainer's predictions.

A small BIDS dataset (3 subjects, real BrainVision + NIfTI files) trains a tiny conv
checkpoint with ``trainer.run.train_and_evaluate``. One recorded run is then replayed over
LSL on loopback — in microvolts, with its channels in another order and an extra ECG
channel — into ``rt-eeg2fmri stream --sync samples`` (a subprocess) and into an in-process
:class:`Engine` at the same time. Every predicted volume must equal the offline prediction
of the same window by the evaluation code path (the window cache under the checkpoint's
``Preprocessing``, normalised with its statistics, + ``trainer.loop.predict``), which proves
the buffering, channel mapping, unit conversion, causal band-pass (the checkpoint is
trained on 1-40 Hz EEG), normalisation, scatter into the grid and window timing of the
online path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.data import Session, read_session
from rt_eeg2fmri.realtime.engine import Engine
from rt_eeg2fmri.replay import Replay
from tests.data.builders import write_bids_run, write_bold
from tests.realtime.engine_helpers import wait_for_line
from trainer.config import TrainConfig
from trainer.data import load_dataset
from trainer.loop import predict
from trainer.run import train_and_evaluate

ROOT = Path(__file__).resolve().parents[2]
CH = ["Fz", "Cz", "Pz", "Oz"]
SFREQ, T_R, LEAD, WINSIZE, N_VOLUMES = 100.0, 1.0, 1.25, 4.0, 24
GRID = (5, 6, 4)
N_STREAMED = 22  # windows ending at 4.25 s ... 25.25 s: the end of volumes 2 ... 23
SPEED = 10.0


def _bold(seed: int) -> np.ndarray:
    """A 'brain' block of signal in an empty grid, so the data mask is a strict subset."""
    rng = np.random.default_rng(seed)
    data = np.zeros((*GRID, N_VOLUMES), np.float32)
    data[1:4, 1:5, 1:3] = 1000 + 10 * rng.standard_normal((3, 4, 2, N_VOLUMES))
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset root, checkpoint path) of a conv model trained leaving subject 01 out."""
    root = tmp_path_factory.mktemp("e2e_bids")
    for s in range(3):
        paths = write_bids_run(
            root,
            sub=f"{s + 1:02d}",
            run="1",
            ch_names=CH,
            sfreq=SFREQ,
            n_volumes=N_VOLUMES,
            t_r=T_R,
            lead=LEAD,
            grid=GRID,
            seed=s,
        )
        write_bold(paths["bold"], N_VOLUMES, grid=GRID, t_r=T_R, data=_bold(s))
    cfg = TrainConfig.from_dict(dict(
        model="conv",
        model_args={"channels": [4, 8], "emb_dim": 8, "hidden": 16, "n_basis": 4},
        winsize=WINSIZE,
        l_freq=1.0,
        h_freq=40.0,
        epochs=1,
        batch_size=8,
        max_batches=3,
        split="loso",
        test_subjects=["01"],
        device="cpu",
    ))  # fmt: skip
    out = tmp_path_factory.mktemp("e2e_run")
    train_and_evaluate(root, cfg, out, progress=False)
    return root, out / "loso-sub-01" / "conv.pt"


def offline_predictions(root, ckpt) -> dict[int, np.ndarray]:
    """``{window end sample: in-mask prediction}`` of subject 01 by the evaluation path."""
    dataset = load_dataset(
        root,
        ckpt.preprocessing,
        subjects=["01"],
        ch_names=ckpt.ch_names,
        mask=ckpt.mask,
        progress=False,
    ).with_stats(ckpt.norm_stats)
    pred = predict(ckpt.model, dataset, np.arange(len(dataset)), device="cpu")
    return {int(s) + dataset.n_times: p for s, p in zip(dataset.start, pred, strict=True)}


def shuffled_session(root) -> Session:
    """Subject 01's run with its channels reordered and an extra (large) ECG channel."""
    s = read_session(root, subject="01")
    order = ["Oz", "Fz", "ECG", "Pz", "Cz"]
    rows = {name: s.eeg[i] for i, name in enumerate(s.ch_names)}
    rows["ECG"] = 1e-3 * np.sin(2 * np.pi * 1.2 * np.arange(s.n_times) / s.sfreq)
    return Session(
        eeg=np.stack([rows[c] for c in order]),
        sfreq=s.sfreq,
        ch_names=order,
        bold=s.bold,
        affine=s.affine,
        t_r=s.t_r,
        volume_onsets=s.volume_onsets,
        events=s.events,
        subject=s.subject,
        task=s.task,
        run=s.run,
        source=s.source,
    )


@pytest.mark.lsl
def test_online_equals_offline_cli_and_engine(trained, tmp_path, uid):
    root, ckpt_path = trained
    ckpt = load_checkpoint(ckpt_path)
    assert (ckpt.preprocessing.l_freq, ckpt.preprocessing.h_freq) == (1.0, 40.0)
    mask = np.asarray(ckpt.mask)
    assert 0 < mask.sum() < mask.size  # the scatter into the grid is exercised
    offline = offline_predictions(root, ckpt)
    assert len(offline) == N_VOLUMES - round(WINSIZE / T_R)  # 4 warm-up volumes

    replay = Replay(shuffled_session(root), name=uid, speed=SPEED, truth=False, source_id=uid)
    replay.open()
    source = f"name:{replay.stream_names['eeg']}"
    cli_nii, cli_tsv = tmp_path / "cli" / "pred.nii.gz", tmp_path / "cli" / "timing.tsv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "stream", "--model", str(ckpt_path),
         "--source", source, "--sync", "samples", "--phase", str(LEAD), "--out", str(cli_nii),
         "--timing", str(cli_tsv), "--name", f"{uid}-cli", "--device", "cpu",
         "--max-volumes", str(N_STREAMED), "--timeout", "30", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    rows, volumes = [], []
    try:
        wait_for_line(proc, "streaming conv")  # the CLI's inlet is open
        engine = Engine.from_checkpoint(
            ckpt,
            source=source,
            sync="samples",
            phase=LEAD,
            outlet_name=f"{uid}-engine",
            nifti=tmp_path / "engine" / "pred.nii",
            device="cpu",
        )
        # start playing at once: a consumer that waits > 1 s for data goes 'stalled' and
        # then looks its source up (0.2 s), which at 10x speed is a 2 s burst of stream
        with engine:
            replay.start()
            summary = engine.run(
                max_volumes=N_STREAMED,
                duration=60.0,
                on_volume=lambda i, v, row: (volumes.append(v.copy()), rows.append(row)),
            )
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        replay.stop()
    assert proc.returncode == 0, err
    cli_summary = json.loads(out)
    for s in (summary, cli_summary):
        assert s["volumes"] == N_STREAMED and s["skipped"] == 0, s
        assert s["gaps"] == 0 and s["samples_lost"] == 0 and s["nonfinite"] == 0, s

    # window j of the stream ends at sample 425 + 100·j: the end of volume j + 2
    step, n_times = round(T_R * SFREQ), ckpt.n_times
    first = round(LEAD * SFREQ)
    while first < n_times:
        first += step
    ends = first + step * np.arange(N_STREAMED)
    assert set(offline) <= set(ends.tolist())
    tol = dict(rtol=1e-4, atol=1e-5 * max(np.abs(p).max() for p in offline.values()))

    cli_img = nib.load(cli_nii)
    assert cli_img.shape == (*GRID, N_STREAMED)
    np.testing.assert_allclose(cli_img.affine, ckpt.affine)
    cli_vols = np.moveaxis(cli_img.get_fdata(dtype=np.float32), -1, 0)
    engine_vols = np.moveaxis(
        nib.load(tmp_path / "engine" / "pred.nii").get_fdata(dtype=np.float32), -1, 0
    )
    n_checked = 0
    for j, end in enumerate(ends):
        if int(end) not in offline:  # volumes 2 and 3: no pair offline (warm-up)
            continue
        want = offline[int(end)]
        for got in (volumes[j], engine_vols[j], cli_vols[j]):
            np.testing.assert_allclose(got[mask], want, **tol, err_msg=f"window ending {end}")
            assert not got[~mask].any()
        n_checked += 1
    assert n_checked == len(offline) == 20
    # the predictions depend on the window (equality is not trivially met by a constant)
    preds = np.stack([offline[e] for e in sorted(offline)])
    assert preds.std(axis=0).mean() > 100 * tol["atol"]

    # timing: each window ends at t0 + end / sfreq on the replay's stream clock
    want_times = replay.t0 + ends / SFREQ
    np.testing.assert_allclose([r["window_end"] for r in rows], want_times, atol=1e-4)
    sidecar = json.loads((tmp_path / "cli" / "pred.json").read_text())
    assert sidecar["NumberOfVolumes"] == N_STREAMED and sidecar["AcquisitionDuration"] == T_R
    ends = sidecar["VolumeTimingOriginLSL"] + np.asarray(sidecar["VolumeTiming"]) + T_R
    np.testing.assert_allclose(ends, want_times, atol=1e-3)
    timing = pd.read_csv(cli_tsv, sep="\t", na_values="n/a")
    assert timing["volume"].tolist() == list(range(N_STREAMED))
    assert not timing["skipped"].any() and not timing["gap"].any()


@pytest.mark.lsl
def test_online_equals_offline_with_the_tasks_events(trained, tmp_path, uid, capsys):
    """A checkpoint with a task readout, streamed with ``--events`` on the replay's marker
    stream (stimuli and scanner markers together), gives the evaluation path's prediction:
    the model's plus each trial type's HRF-convolved events times their weights. Without
    ``--events`` (or ``--no-events``) it refuses to start, naming both flags."""
    from apps.cli import main
    from rt_eeg2fmri.task import TaskReadout
    from tests.realtime.engine_helpers import stream_replay
    from trainer.baselines import task_part

    root, ckpt_path = trained
    base = load_checkpoint(ckpt_path)
    weights = np.random.default_rng(3).standard_normal((1, base.n_voxels))
    task = TaskReadout(["target"], [["S  1"]], [0.2], 50.0 * weights)
    path = base.save_adapted(tmp_path / "task.pt", base.model, norm_stats=base.norm_stats,
                             metadata={}, task=task)  # fmt: skip
    ckpt = load_checkpoint(path)
    dataset = load_dataset(root, ckpt.preprocessing, subjects=["01"], ch_names=ckpt.ch_names,
                           mask=ckpt.mask, progress=False).with_stats(ckpt.norm_stats)  # fmt: skip
    idx = np.arange(len(dataset))
    part = task_part(dataset, idx, ckpt.task)
    want = predict(ckpt.model, dataset, idx, device="cpu") + part
    offline = {int(s) + dataset.n_times: p for s, p in zip(dataset.start, want, strict=True)}
    assert np.abs(part).max() > 10 * np.abs(want - part).std()  # the task part shows

    session = read_session(root, subject="01")
    assert (session.events["trial_type"] == "target").sum() == N_VOLUMES // 2
    replay = Replay(session, name=uid, speed=SPEED, truth=False, source_id=uid).open()
    nii = tmp_path / "pred.nii"
    rc, out, err = stream_replay(
        replay, "--model", path, "--source", f"name:{uid}-EEG", "--sync", "samples", "--phase",
        LEAD, "--events", f"{uid}-Markers", "--out", nii, "--no-outlet", "--device", "cpu",
        "--max-volumes", N_STREAMED, "--timeout", "30",
    )  # fmt: skip
    assert rc == 0, err
    assert f"task events of '{uid}-Markers'" in err
    summary = json.loads(out)
    assert summary["volumes"] == N_STREAMED and summary["skipped"] == 0
    assert summary["events"]["heard"] == N_VOLUMES // 2 and summary["events"]["unknown"] == 0
    vols = np.moveaxis(nib.load(nii).get_fdata(dtype=np.float32), -1, 0)
    step, first = round(T_R * SFREQ), round(LEAD * SFREQ)
    while first < ckpt.n_times:
        first += step
    ends = first + step * np.arange(N_STREAMED)
    tol = dict(rtol=1e-4, atol=1e-4 * max(np.abs(p).max() for p in offline.values()))
    checked = 0
    for j, end in enumerate(ends):
        if int(end) in offline:
            np.testing.assert_allclose(vols[j][np.asarray(ckpt.mask)], offline[int(end)], **tol)
            checked += 1
    assert checked == 20

    # a task readout needs its marker stream, or --no-events; --events needs a task readout
    capsys.readouterr()
    assert main(["stream", "--model", str(path), "--source", "name:x", "--no-outlet"]) == 1
    err = capsys.readouterr().err
    assert f"'{path}' predicts with the task's events (1 trial type: target)" in err
    assert "--events NAME" in err and "--no-events" in err
    assert main(["stream", "--model", str(ckpt_path), "--events", "X", "--no-outlet"]) == 1
    err = capsys.readouterr().err
    assert "'events':" in err and "has no task readout" in err and "calibrate --events" in err
    assert main(["stream", "--model", str(path), "--events", "X", "--adapt", "Y",
                 "--adapt-minutes", "2", "--no-outlet"]) == 1  # fmt: skip
    assert "'adapt' cannot refit the checkpoint" in capsys.readouterr().err
