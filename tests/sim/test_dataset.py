from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat

from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE
from rt_eeg2fmri.sim import REGIONS, simulate_dataset
from tests.sim.conftest import VOLUMES

RUN_FILES = [
    "eeg/{s}_channels.tsv",
    "eeg/{s}_eeg.eeg",
    "eeg/{s}_eeg.json",
    "eeg/{s}_eeg.vhdr",
    "eeg/{s}_eeg.vmrk",
    "eeg/{s}_events.tsv",
    "func/{s}_bold.json",
    "func/{s}_bold.nii.gz",
    "func/{s}_events.tsv",
]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_bids_layout(bids_root):
    expected = {
        "README", "dataset_description.json", "participants.tsv", "participants.json",
        "task-auditory_events.json", "task-visual_events.json",
        "derivatives/simulation/dataset_description.json",
        "derivatives/simulation/simulation.json", "derivatives/simulation/regions.tsv",
        "derivatives/simulation/.bidsignore",
        "derivatives/simulation/atlas-regions_dseg.nii.gz",
        "derivatives/simulation/atlas-regions_dseg.tsv",
        "derivatives/simulation/sub-01/sub-01_simulation.json",
        "sub-01/eeg/sub-01_space-CapTrak_electrodes.tsv",
        "sub-01/eeg/sub-01_space-CapTrak_coordsystem.json",
    }  # fmt: skip
    for task in ("auditory", "visual"):
        stem = f"sub-01_task-{task}_run-1"
        expected |= {f"sub-01/{f.format(s=stem)}" for f in RUN_FILES}
        for name in ("desc-noisefree_bold.nii.gz", "desc-eegpredictable_bold.nii.gz",
                     "desc-noisefree_bold.json", "desc-eegpredictable_bold.json",
                     "desc-neuraldrive_timeseries.tsv", "desc-neuraldrive_timeseries.json"):  # fmt: skip
            expected.add(f"derivatives/simulation/sub-01/func/{stem}_{name}")
    assert _files(bids_root) == expected


def test_sidecars(bids_root):
    desc = json.loads((bids_root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] and desc["DatasetType"] == "raw"
    stem = bids_root / "sub-01" / "eeg" / "sub-01_task-visual_run-1"
    eeg = json.loads(Path(f"{stem}_eeg.json").read_text())
    assert eeg["TaskName"] == "visual" and eeg["SamplingFrequency"] == 250.0
    assert eeg["PowerLineFrequency"] == 60.0 and eeg["EEGReference"] == "FCz"
    channels = pd.read_csv(f"{stem}_channels.tsv", sep="\t")
    assert list(channels.columns[:3]) == ["name", "type", "units"]
    assert len(channels) == 16 and set(channels.type) == {"EEG"}
    bold = json.loads((bids_root / "sub-01/func/sub-01_task-visual_run-1_bold.json").read_text())
    assert bold["RepetitionTime"] == 2.0 and bold["TaskName"] == "visual"
    assert len(bold["SliceTiming"]) == GRID_SHAPE[2] and max(bold["SliceTiming"]) < 2.0
    regions = pd.read_csv(bids_root / "derivatives/simulation/regions.tsv", sep="\t")
    assert list(regions.columns[:5]) == ["name", "x", "y", "z", "eeg_visible"]
    assert regions.eeg_visible.any() and not regions.eeg_visible.all()
    params = json.loads(
        (bids_root / "derivatives/simulation/sub-01/sub-01_simulation.json").read_text()
    )
    assert 5.0 <= params["hrf_peak_s"] <= 7.0 and set(params["regions"]) == {
        r.name for r in REGIONS
    }
    participants = pd.read_csv(bids_root / "participants.tsv", sep="\t")
    assert list(participants.participant_id) == ["sub-01"]


def test_events_agree_between_eeg_and_func(bids_root):
    for task in ("auditory", "visual"):
        stem = f"sub-01_task-{task}_run-1"
        eeg = pd.read_csv(bids_root / "sub-01/eeg" / f"{stem}_events.tsv", sep="\t")
        func = pd.read_csv(bids_root / "sub-01/func" / f"{stem}_events.tsv", sep="\t")
        volumes = eeg[eeg.trial_type == "Response/R128"]  # the scanner's, on the EEG clock
        np.testing.assert_allclose(volumes.onset, 5.0 + 2.0 * np.arange(VOLUMES), atol=1e-9)
        assert (volumes.value == "R128").all()
        eeg = eeg[eeg.trial_type != "Response/R128"].reset_index(drop=True)
        assert list(eeg.trial_type) == list(func.trial_type)
        np.testing.assert_allclose(eeg.onset - func.onset, 5.0, atol=1e-6)  # lead-in
        np.testing.assert_array_equal(eeg["sample"], np.round(eeg.onset * 250).astype(int))
        assert set(eeg.trial_type) == {f"{task}_standard", f"{task}_target", "button_press"}
        assert func.onset.min() > 0 and func.onset.max() < VOLUMES * 2.0


def test_bold_files(bids_root):
    img = nib.load(bids_root / "sub-01/func/sub-01_task-auditory_run-1_bold.nii.gz")
    assert img.shape == (*GRID_SHAPE, VOLUMES) and img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.affine, GRID_AFFINE)
    assert img.header.get_zooms()[3] == 2.0
    data = np.asarray(img.dataobj)
    from rt_eeg2fmri.grid import mni_mask

    brain = data[mni_mask()].mean(axis=1)
    assert 700 < np.median(brain) < 1300 and np.percentile(brain, 99) < 2000
    assert np.median(data[~mni_mask()].mean(axis=1)) < 100


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    def digest(root):
        return {
            str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    kw = dict(preset="tiny", subjects=1, runs=1, volumes=4, layout="both", mat_version="7.3")
    a = digest(simulate_dataset(tmp_path / "a", seed=7, **kw))
    b = digest(simulate_dataset(tmp_path / "b", seed=7, **kw))
    c = digest(simulate_dataset(tmp_path / "c", seed=8, **kw))
    assert a == b
    assert (
        a["sub-01/func/sub-01_task-auditory_run-1_bold.nii.gz"]
        != c["sub-01/func/sub-01_task-auditory_run-1_bold.nii.gz"]
    )


def test_refuses_foreign_non_empty_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=f"'{out}'.*not empty"):
        simulate_dataset(out, preset="tiny", subjects=1, runs=1, volumes=4)
    simulate_dataset(out, preset="tiny", subjects=1, runs=1, volumes=4, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    # a previous simulation is replaced without --overwrite, stale subjects removed
    simulate_dataset(out, preset="tiny", subjects=2, runs=1, volumes=4)
    simulate_dataset(out, preset="tiny", subjects=1, runs=1, volumes=4)
    assert not (out / "sub-02").exists()
    assert not (out / "derivatives/simulation/sub-02").exists()


def test_legacy_layout_files(legacy_root):
    eeg_dir = legacy_root / "sub001/EEG/task002_run001"
    mat = loadmat(eeg_dir / "EEG_rereferenced.mat")["data_reref"]
    n_times = round((12 * 2.0 + 2.0) * 250)  # no lead-in, 2 s tail
    assert mat.shape == (34 + 3, n_times)
    codes = set(np.unique(mat[35]))
    assert {0.0, 225.0} <= codes <= {0.0, 225.0, 250.0}  # visual standard/target codes
    assert set(np.unique(mat[36])) <= {0.0, 1.0}
    assert np.abs(mat[:34].mean(axis=0)).max() < 1e-2  # average reference, µV
    assert 200 < np.abs(mat[34]).max() < 3000  # ECG in µV
    labels = (eeg_dir / "channels.txt").read_text().split()
    assert len(labels) == 34 and labels[0] == "Fp1"
    bold = nib.load(legacy_root / "sub001/BOLD/task002_run001/bold.nii.gz")
    same = nib.load(legacy_root / "sub-01/func/sub-01_task-visual_run-1_bold.nii.gz")
    np.testing.assert_array_equal(np.asarray(bold.dataobj), np.asarray(same.dataobj))
    assert (legacy_root / ".bidsignore").is_file()
    # stimulus pulses sit at the func/ onsets (legacy EEG starts at the first volume)
    func = pd.read_csv(legacy_root / "sub-01/func/sub-01_task-visual_run-1_events.tsv", sep="\t")
    stim = func[func.trial_type != "button_press"].onset.to_numpy()
    rising = np.flatnonzero(np.diff(mat[35]) > 0) + 1
    np.testing.assert_array_equal(rising, np.round(stim * 250).astype(int))


def test_legacy_mat_v73(tmp_path):
    out = simulate_dataset(
        tmp_path / "v73", preset="tiny", subjects=1, runs=1, volumes=4, layout="ds000116",
        mat_version="7.3",
    )  # fmt: skip
    path = out / "sub001/EEG/task001_run001/EEG_rereferenced.mat"
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        ds = f["data_reref"]
        assert ds.shape == (round(10.0 * 250), 16 + 3)  # stored transposed
        assert ds.attrs["MATLAB_class"] == b"single"
        assert set(np.unique(ds[:, 17])) <= {0.0, 125.0, 150.0}
    assert not (out / "sub-01").exists() and (out / "derivatives/simulation").is_dir()


def test_readers_read_both_layouts(legacy_root):
    from rt_eeg2fmri.data.dataset import find_runs

    bids = {r.name: r for r in find_runs(legacy_root, layout="bids")}
    legacy = {r.name: r for r in find_runs(legacy_root, layout="ds000116", sfreq=250.0)}
    assert sorted(bids) == sorted(legacy) == [
        "sub-01_task-auditory_run-1", "sub-01_task-visual_run-1"
    ]  # fmt: skip
    a = bids["sub-01_task-auditory_run-1"].load()
    b = legacy["sub-01_task-auditory_run-1"].load()
    assert a.ch_names == b.ch_names and a.eeg.shape[0] == 34
    np.testing.assert_allclose(a.volume_onsets - a.volume_onsets[0], b.volume_onsets)
    start = round(a.volume_onsets[0] * a.sfreq)
    ref = a.eeg[:, start:] - a.eeg[:, start:].mean(axis=0)
    np.testing.assert_allclose(b.eeg, ref, atol=1e-9)  # float32 µV round trip
    np.testing.assert_array_equal(a.bold, b.bold)
