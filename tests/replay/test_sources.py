"""Replaying real files: BrainVision (pybv), a BIDS run (pybv + nibabel), FIF without EEG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest

from rt_eeg2fmri.replay import Replay, load_recording
from tests.replay.helpers import connect, drain

ROOT = Path(__file__).resolve().parents[2]
SFREQ, T_R, N_VOL, LEAD = 250.0, 1.0, 5, 0.5
GRID = (5, 6, 4)


def _write_vhdr(folder, stem, rng):
    import pybv

    n_times = round((LEAD + N_VOL * T_R + 0.5) * SFREQ)
    data = rng.standard_normal((3, n_times)) * 20e-6  # volts
    events = [
        {"onset": round((LEAD + k * T_R) * SFREQ), "description": 128, "type": "Response"}
        for k in range(N_VOL)
    ] + [{"onset": round(1.75 * SFREQ), "description": 3, "type": "Stimulus"}]
    folder.mkdir(parents=True, exist_ok=True)
    pybv.write_brainvision(
        data=data,
        sfreq=SFREQ,
        ch_names=["Fz", "Cz", "Pz"],
        fname_base=stem,
        folder_out=folder,
        events=events,
        unit="µV",
    )
    return folder / f"{stem}.vhdr"


def _file_uv(path) -> np.ndarray:
    """The file's samples as MNE reads them, in µV float32 (what the stream must carry)."""
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    return raw.get_data().astype(np.float32) * np.float32(1e6)


@pytest.fixture
def bids_root(tmp_path, rng):
    root = tmp_path / "bids"
    _write_vhdr(root / "sub-01" / "eeg", "sub-01_task-rest_run-1_eeg", rng)
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = (1000 + 10 * rng.standard_normal((*GRID, N_VOL))).astype(np.float32)
    img = nib.Nifti1Image(bold, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_zooms((3.0, 3.0, 3.0, T_R))
    nib.save(img, func / "sub-01_task-rest_run-1_bold.nii.gz")
    (func / "sub-01_task-rest_run-1_bold.json").write_text(json.dumps({"RepetitionTime": T_R}))
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "replay test", "BIDSVersion": "1.8.0"})
    )
    return root, bold


@pytest.mark.lsl
def test_bids_run_replays_exactly(bids_root, uid):
    root, bold = bids_root
    s = load_recording(root, subject="01", task="rest", run="1")
    eeg_file = root / "sub-01" / "eeg" / "sub-01_task-rest_run-1_eeg.vhdr"
    replay = Replay(s, name=uid, speed=20.0)
    replay.open()
    inlets = {k: connect(sid) for k, sid in replay.source_ids.items()}
    assert replay.wait_for_consumers(10.0)
    with replay:
        replay.wait(20.0)
        data, ts = drain(inlets["eeg"], n_min=s.n_times)
        markers, mts = drain(inlets["markers"], n_min=N_VOL + 1)
        from rt_eeg2fmri.volume_stream import parse_volume_stream_info

        meta = parse_volume_stream_info(inlets["truth"].info(5.0))
        buf = np.empty((N_VOL, meta.n_voxels), np.float32)
        _, vts = inlets["truth"].pull_chunk(
            timeout=5.0, max_samples=N_VOL, dest_obj=buf, min_samples=N_VOL
        )
    np.testing.assert_array_equal(np.asarray(data, np.float32).T, _file_uv(eeg_file))
    t0 = replay.t0
    np.testing.assert_array_equal(ts, t0 + np.arange(s.n_times) / SFREQ)
    onsets = LEAD + np.arange(N_VOL) * T_R
    scanner = [t for m, t in zip(markers, mts, strict=True) if m[0] == "R128"]
    np.testing.assert_allclose(scanner, t0 + onsets, atol=1e-3)
    assert len(markers) == N_VOL + 1  # and the stimulus
    np.testing.assert_allclose(vts, t0 + onsets + T_R, atol=1e-3)
    mean = bold.mean(axis=3, dtype=np.float64)
    for k in range(N_VOL):
        want = (100 * (bold[..., k] - mean) / mean).astype(np.float32)
        np.testing.assert_allclose(meta.to_volume(buf[k]), want, rtol=1e-4, atol=1e-4)
    assert meta.grid_shape == GRID and meta.t_r == T_R


def test_brainvision_file(tmp_path, rng):
    path = _write_vhdr(tmp_path, "rec", rng)
    s = load_recording(path)
    assert s.ch_names == ["Fz", "Cz", "Pz"] and s.bold is None
    np.testing.assert_allclose(s.volume_onsets, LEAD + np.arange(N_VOL) * T_R)
    r = Replay(s, truth=True)  # no BOLD: EEG and markers only
    assert set(r.stream_names) == {"eeg", "markers"}
    assert r.source_file == str(path)
    assert r.source_ids == Replay(load_recording(path)).source_ids  # stable across loads


def test_selection_errors_name_the_dataset(bids_root):
    root, _ = bids_root
    with pytest.raises(ValueError, match=r"bids': no run matches subject='02'"):
        load_recording(root, subject="02")


def test_file_without_eeg_channels(tmp_path):
    info = mne.create_info(["STI", "temp"], 100.0, ["stim", "misc"])
    path = tmp_path / "noeeg_raw.fif"
    mne.io.RawArray(np.zeros((2, 500)), info, verbose="error").save(path, verbose="error")
    with pytest.raises(ValueError, match=r"noeeg_raw\.fif': no EEG channels"):
        load_recording(path)
    proc = subprocess.run(
        [sys.executable, "-m", "apps.cli", "replay", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "rt-eeg2fmri replay: error: " in proc.stderr and "noeeg_raw.fif': no EEG" in proc.stderr


def test_a_files_ecg_and_stim_channels_are_kept_for_the_live_corrections(tmp_path):
    """A FIF with an ECG lead MNE types ``ecg`` (named so nothing guesses it) and a stim
    channel: a replay keeps the ECG after the EEG (the live pulse correction's lead, named
    with ``--ecg``) and the stim channel in ``stim``; training's reader leaves both out."""
    from rt_eeg2fmri.data import read_eeg

    info = mne.create_info(["Fz", "heart", "Cz", "STI 014"], SFREQ, ["eeg", "ecg", "eeg", "stim"])
    data = np.random.default_rng(0).standard_normal((4, 1000)) * 1e-5
    data[3] = 0
    data[3, [100, 350, 600]] = 1
    mne.io.RawArray(data, info, verbose="error").save(tmp_path / "x_raw.fif", verbose="error")
    s = load_recording(tmp_path / "x_raw.fif")
    assert s.ch_names == ["Fz", "Cz", "heart"] and list(s.stim) == ["STI 014"]
    assert s.ch_types == ["EEG", "EEG", "ECG"]  # published so: the live chain finds the lead
    np.testing.assert_allclose(s.eeg[2], data[1], rtol=1e-6)
    assert read_eeg(tmp_path / "x_raw.fif").ch_names == ["Fz", "Cz"]
