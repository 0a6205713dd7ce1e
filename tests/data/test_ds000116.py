"""ds000116 legacy layout: MATLAB v5 and v7.3 EEG, stimulus codes, BOLD choice, errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rt_eeg2fmri.data import find_runs, read_session
from rt_eeg2fmri.data.ds000116 import mat_variables, stimulus_events
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE
from tests.data.builders import SPM_FLIPPED, write_bold, write_ds000116_run


def test_find_and_load_v5(tmp_path):
    a = write_ds000116_run(tmp_path, sub=3, task=1, run=2)
    write_ds000116_run(tmp_path, sub=3, task=2, run=1)
    runs = find_runs(tmp_path)
    assert [r.name for r in runs] == ["sub-03_task-auditory_run-2", "sub-03_task-visual_run-1"]
    assert runs[0].layout == "ds000116" and runs[0].files["eeg"] == a["eeg"]
    s = runs[0].load()
    assert s.ch_names == [f"EEG{i:02d}" for i in range(1, 35)]
    assert s.sfreq == 1000.0 and s.eeg.dtype == np.float32
    np.testing.assert_allclose(s.eeg, a["eeg_uv"] * 1e-6, rtol=1e-6)  # µV → V
    assert s.t_r == 2.0 and s.n_volumes == 12
    np.testing.assert_allclose(s.volume_onsets, 2.0 * np.arange(12))
    assert list(s.events["trial_type"]) == ["standard", "target", "response", "standard"]
    np.testing.assert_allclose(s.events["onset"], [3.0, 7.0, 7.4, 11.0])
    assert s.events["duration"].iloc[0] == 0.2
    visual = runs[1].load()
    assert list(visual.events["trial_type"]) == ["standard", "target", "response", "standard"]


def test_v73_equals_v5(tmp_path):
    write_ds000116_run(tmp_path / "a", seed=4)
    write_ds000116_run(tmp_path / "b", seed=4, v73=True)
    s5, s73 = read_session(tmp_path / "a"), read_session(tmp_path / "b")
    np.testing.assert_array_equal(s5.eeg, s73.eeg)
    assert s5.events.equals(s73.events)
    assert mat_variables(tmp_path / "b" / "sub001/EEG/task001_run001/EEG_rereferenced.mat") == {
        "data_reref": (37, 24500)
    }


def test_noga_file(tmp_path):
    write_ds000116_run(tmp_path, kind="noGA", task=2)
    s = read_session(tmp_path)
    assert s.n_chans == 43 and s.ch_names[-1] == "EEG43"
    assert list(s.events["trial_type"])[:2] == ["standard", "target"]
    # both present: "auto" prefers the re-referenced file; eeg="noGA" picks the other
    write_ds000116_run(tmp_path, task=2)
    assert read_session(tmp_path).n_chans == 34
    assert read_session(tmp_path, eeg="noGA").n_chans == 43


def test_channels_txt(tmp_path):
    labels = [f"C{i}" for i in range(34)]
    write_ds000116_run(tmp_path, channels=labels)
    assert read_session(tmp_path).ch_names == labels
    write_ds000116_run(tmp_path, channels=[*labels, "ECG", "STIM", "RESP"])  # one per row
    assert read_session(tmp_path).ch_names == labels
    write_ds000116_run(tmp_path, channels=labels[:30])
    with pytest.raises(ValueError, match=r"channels\.txt': 30 channel labels for 34 EEG rows"):
        read_session(tmp_path)
    write_ds000116_run(tmp_path, channels=[*labels[:33], "c0"])
    with pytest.raises(ValueError, match=r"channels\.txt'.*duplicate channel name 'c0'"):
        read_session(tmp_path)


@pytest.mark.parametrize("v73", [False, True])
def test_wrong_variable_lists_found(tmp_path, v73):
    write_ds000116_run(tmp_path, variable="EEGdata", v73=v73)
    with pytest.raises(
        ValueError, match=r"EEG_rereferenced\.mat': no variable 'data_reref'.*found: \['EEGdata'\]"
    ):
        read_session(tmp_path)


def test_unreadable_mat(tmp_path):
    a = write_ds000116_run(tmp_path)
    a["eeg"].write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.raises(ValueError, match=r"cannot read the MATLAB file '.*EEG_rereferenced\.mat'"):
        read_session(tmp_path)


def test_too_few_rows(tmp_path):
    a = write_ds000116_run(tmp_path)
    from scipy.io import savemat

    savemat(a["eeg"], {"data_reref": np.zeros((20, 100))})
    with pytest.raises(
        ValueError, match=r"'data_reref' must be 2-D with at least 34 rows.*\(20, 100\)"
    ):
        read_session(tmp_path)


def test_missing_bold_and_missing_eeg(tmp_path):
    write_ds000116_run(tmp_path, bold=False)
    bold_only = tmp_path / "sub002" / "BOLD" / "task001_run001" / "bold.nii.gz"
    write_bold(bold_only, 12)
    runs = find_runs(tmp_path)
    assert [r.name for r in runs] == ["sub-01_task-auditory_run-1", "sub-02_task-auditory_run-1"]
    with pytest.raises(
        FileNotFoundError,
        match=r"no BOLD \(bold\.nii\.gz or bold\.nii\) in '.*sub001/BOLD/task001_run001'",
    ):
        runs[0].load()
    with pytest.raises(
        FileNotFoundError,
        match=r"no EEG file \(EEG_rereferenced\.mat or EEG_noGA\.mat\) in '.*sub002/EEG",
    ):
        runs[1].load()


def test_eeg_shorter_than_bold(tmp_path):
    write_ds000116_run(tmp_path, extra=-3.0)
    with pytest.raises(
        ValueError, match=r"EEG_rereferenced\.mat'\): the EEG covers 0–21\.000 s .*EEG shorter"
    ):
        read_session(tmp_path)


def test_tr_sources(tmp_path):
    write_ds000116_run(tmp_path, t_r=None)  # pixdim[4] = 0 → the dataset's 2 s
    assert read_session(tmp_path).t_r == 2.0
    write_ds000116_run(tmp_path, t_r=1.8)
    assert read_session(tmp_path).t_r == pytest.approx(1.8)
    s = read_session(tmp_path, t_r=1.5, first_volume=0.5)
    assert s.t_r == 1.5 and s.volume_onsets[0] == 0.5
    s = read_session(tmp_path, dummy_scans=2)
    assert s.n_volumes == 10 and s.volume_onsets[0] == pytest.approx(3.6)


def test_spm_series_by_pattern(tmp_path):
    """SPM-normalised 3-D files (flipped x, 3 mm MNI grid) stacked in name order."""
    write_ds000116_run(tmp_path, n_volumes=3)
    folder = tmp_path / "sub001" / "BOLD" / "task001_run001"
    rng = np.random.default_rng(1)
    vols = rng.standard_normal((3, *GRID_SHAPE)).astype(np.float32)
    for i, vol in enumerate(vols):
        nib.save(nib.Nifti1Image(vol, SPM_FLIPPED), folder / f"swabold_{i + 1:04d}.nii")
    runs = find_runs(tmp_path, bold_pattern="swa*.nii")
    assert runs[0].files["bold_3"].name == "swabold_0003.nii"
    s = runs[0].load()
    assert s.grid_shape == GRID_SHAPE and s.n_volumes == 3
    np.testing.assert_allclose(s.affine, GRID_AFFINE)
    np.testing.assert_array_equal(s.bold[..., 1], vols[1][::-1])  # x flipped back
    with pytest.raises(FileNotFoundError, match=r"no BOLD \(files matching 'w\*\.nii'\)"):
        read_session(tmp_path, bold_pattern="w*.nii")
    nib.save(nib.Nifti1Image(vols[0][:-1], SPM_FLIPPED), folder / "swabold_0004.nii")
    with pytest.raises(
        ValueError, match=r"swabold_0004\.nii': shape \(52, 63, 52\) / affine differ"
    ):
        read_session(tmp_path, bold_pattern="swa*.nii")


def test_bad_options(tmp_path):
    write_ds000116_run(tmp_path)
    with pytest.raises(TypeError, match=r"unknown ds000116 reader option\(s\) \['marker'\]"):
        find_runs(tmp_path, marker="R128")
    with pytest.raises(ValueError, match=r"'unit' must be one of"):
        find_runs(tmp_path, unit="nV")
    with pytest.raises(ValueError, match=r"'sfreq' must be positive"):
        find_runs(tmp_path, sfreq=0)


def test_stimulus_edges():
    stim = np.full(100, 25.0)
    stim[10:15] = 125
    stim[15:20] = 150  # a direct step between codes is a new event
    stim[50:52] = 125
    ev = stimulus_events(stim, None, task="auditory", sfreq=100.0)
    assert list(ev["trial_type"]) == ["standard", "target", "standard"]
    np.testing.assert_allclose(ev["onset"], [0.10, 0.15, 0.50])
    assert len(stimulus_events(stim, None, task="visual", sfreq=100.0)) == 0
    assert len(stimulus_events(None, np.zeros(100), task="visual", sfreq=100.0)) == 0


def test_a_header_tr_of_unknown_units_is_not_trusted(tmp_path, rt_log):
    # a legacy header says pixdim[4] = 1.0 with unknown time units: the dataset's
    # documented 2 s is used, with a warning (before: TR 1 s, every onset halved)
    import nibabel as nib

    paths = write_ds000116_run(tmp_path, t_r=2.0)
    img = nib.load(paths["bold"])
    img.header.set_zooms((*img.header.get_zooms()[:3], 1.0))
    img.header.set_xyzt_units("mm", "unknown")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), paths["bold"])
    s = read_session(tmp_path)
    assert s.t_r == 2.0 and s.volume_onsets[1] - s.volume_onsets[0] == pytest.approx(2.0)
    assert "pixdim[4] = 1 with unknown time units" in rt_log.text
    assert read_session(tmp_path, t_r=1.0).t_r == 1.0  # an explicit t_r still wins
