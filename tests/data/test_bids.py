"""BIDS simultaneous EEG-fMRI: discovery, pairing, TR, timing, events, channels, grids, errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from rt_eeg2fmri.data import check_grid, find_runs, read_session
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE
from tests.data.builders import SPM_FLIPPED, write_bids_run, write_bold


def test_find_and_load_runs(tmp_path):
    a = write_bids_run(tmp_path, sub="01", run="1")
    write_bids_run(tmp_path, sub="01", run="2", seed=1)
    write_bids_run(tmp_path, sub="02", run="1", fmt="edf", seed=2)
    runs = find_runs(tmp_path)
    assert [r.name for r in runs] == [
        "sub-01_task-oddball_run-1",
        "sub-01_task-oddball_run-2",
        "sub-02_task-oddball_run-1",
    ]
    assert all(r.layout == "bids" for r in runs)
    assert runs[0].files["eeg"] == a["eeg"] and runs[0].files["bold"] == a["bold"]
    s = runs[0].load()
    assert s.eeg.shape == (4, 6500) and s.eeg.dtype == np.float32 and s.sfreq == 250.0
    np.testing.assert_allclose(s.eeg, a["data"], atol=1e-10)
    assert s.bold.shape == (5, 6, 4, 12) and s.bold.dtype == np.float32
    assert s.t_r == 2.0
    np.testing.assert_allclose(s.volume_onsets, 1.0 + 2.0 * np.arange(12), atol=1e-3)
    np.testing.assert_allclose(s.events["onset"], a["stimuli"], atol=1e-3)
    assert set(s.events["trial_type"]) == {"target"}
    assert (s.subject, s.task, s.run, s.session) == ("01", "oddball", "1", None)
    assert s.source["bold"] == str(a["bold"])
    header = runs[0].header()
    assert header.n_volumes == 12 and header.n_markers == 12 and header.grid_shape == (5, 6, 4)
    assert runs[2].load().n_chans == 4  # EDF


def test_read_session_selection(tmp_path):
    write_bids_run(tmp_path, sub="01", run="01")
    write_bids_run(tmp_path, sub="01", run="02")
    s = read_session(tmp_path, subject="1", run=2)  # numbers compare as integers
    assert s.run == "02"
    with pytest.raises(ValueError, match=r"2 runs match subject='01'.*run-01.*run-02"):
        read_session(tmp_path, subject="01")
    with pytest.raises(ValueError, match=r"no run matches task='rest'; runs found: sub-01_task"):
        read_session(tmp_path, task="rest")
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        read_session(tmp_path / "nothing")


def test_sessions_and_acq(tmp_path):
    write_bids_run(tmp_path, sub="01", ses="pre", acq="hd")
    write_bids_run(tmp_path, sub="01", ses="post")
    runs = find_runs(tmp_path)
    assert [(r.session, r.name) for r in runs] == [
        ("post", "sub-01_ses-post_task-oddball"),
        ("pre", "sub-01_ses-pre_task-oddball"),
    ]
    assert read_session(tmp_path, session="pre").session == "pre"


def test_acq_relaxed_when_bold_lacks_it(tmp_path):
    a = write_bids_run(tmp_path, sub="01", acq="eegfmri", bold=False)
    b = write_bids_run(tmp_path / "tmp", sub="01")  # BOLD without acq, moved beside
    func = tmp_path / "sub-01" / "func"
    func.mkdir()
    b["bold"].rename(func / b["bold"].name)
    b["sidecar"].rename(func / b["sidecar"].name)
    (ref,) = find_runs(tmp_path)
    assert ref.files["eeg"] == a["eeg"] and ref.files["bold"].name == b["bold"].name
    assert ref.load().n_volumes == 12


def test_top_level_sidecar_inheritance(tmp_path):
    write_bids_run(tmp_path, sub="01", t_r=1.5, sidecar="top")
    s = read_session(tmp_path)
    assert s.t_r == 1.5
    # a closer sidecar overrides the top-level one
    func_json = tmp_path / "sub-01" / "func" / "sub-01_task-oddball_bold.json"
    func_json.write_text(json.dumps({"RepetitionTime": 1.5, "EchoTime": 0.03}))
    (tmp_path / "task-oddball_bold.json").write_text(json.dumps({"RepetitionTime": 9.0}))
    assert read_session(tmp_path).t_r == 1.5


def test_missing_sidecar_tr(tmp_path, rt_log):
    # no sidecar TR: the header's, with a warning; with no header TR either: an error
    a = write_bids_run(tmp_path, sidecar=None, t_r=2.0)
    assert read_session(tmp_path).t_r == 2.0
    assert "no 'RepetitionTime' in the sidecars" in rt_log.text
    assert "pixdim[4] = 2 s. Set it with --t-r" in rt_log.text
    assert read_session(tmp_path, t_r=2.0).t_r == 2.0  # --t-r
    write_bids_run(tmp_path / "u", sidecar=None, t_r=2.0)
    bold = next((tmp_path / "u").rglob("*_bold.nii.gz"))
    img = nib.load(bold)
    img.header.set_xyzt_units("mm", "unknown")
    nib.save(img, bold)
    assert read_session(tmp_path / "u").t_r == 2.0
    assert "pixdim[4] = 2 with unknown time units, read as seconds" in rt_log.text
    write_bids_run(tmp_path / "none", sidecar=None, header_tr=None)
    with pytest.raises(
        FileNotFoundError,
        match=r"no 'RepetitionTime' for the BOLD '.*_bold\.nii\.gz'.*set it with --t-r",
    ):
        read_session(tmp_path / "none")
    assert read_session(tmp_path / "none", t_r=2.0).n_volumes == 12
    a["bold"].with_name("sub-01_task-oddball_bold.json").write_text('{"RepetitionTime": "two"}')
    with pytest.raises(
        ValueError, match=r"_bold\.json': 'RepetitionTime' must be a number, got 'two'"
    ):
        read_session(tmp_path)
    a["bold"].with_name("sub-01_task-oddball_bold.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cannot read the sidecar '.*_bold\.json'"):
        read_session(tmp_path)


def test_the_sidecar_tr_wins_over_the_header(tmp_path, rt_log):
    # BIDS: the sidecar is the authority (fMRIPrep 23.2 wrote pixdim4 = 1 for TR 2)
    write_bids_run(tmp_path, t_r=2.0, header_tr=1.0)
    assert read_session(tmp_path).t_r == 2.0
    assert read_session(tmp_path).t_r == 2.0
    warned = [r.message for r in rt_log.records if "pixdim[4] = 1.0 s" in r.message]
    assert len(warned) == 1  # once per run
    assert "'RepetitionTime' is 2.0 s in '" in warned[0] and "_bold.json'" in warned[0]
    write_bids_run(tmp_path / "b", t_r=2.0, header_tr=None)  # pixdim[4] = 0: unset
    assert read_session(tmp_path / "b").t_r == 2.0


def test_a_sidecar_tr_in_milliseconds_and_nested_dicom_dumps(tmp_path, rt_log):
    # ds002158: 1280.0 at the top level (ms); a nested DICOM dump's RepetitionTime is ignored
    a = write_bids_run(tmp_path, t_r=1.28, n_volumes=12)
    a["sidecar"].write_text(
        json.dumps({"RepetitionTime": 1280.0, "DICOM": {"RepetitionTime": 999.0}})
    )
    assert read_session(tmp_path).t_r == pytest.approx(1.28)
    assert "'RepetitionTime' 1280.0" in rt_log.text and "read as milliseconds" in rt_log.text


def test_markers_disagree_with_tr(tmp_path):
    a = write_bids_run(tmp_path, t_r=2.0)
    a["sidecar"].write_text(json.dumps({"RepetitionTime": 2.2}))
    write_bold(a["bold"], 12, t_r=2.2)
    with pytest.raises(
        ValueError,
        match=r"sub-01_task-oddball .*_eeg\.vhdr.*RepetitionTime is 2\.2 s but the 'R128'",
    ):
        read_session(tmp_path)


def test_eeg_without_bold(tmp_path):
    a = write_bids_run(tmp_path, bold=False)
    (ref,) = find_runs(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=rf"no BOLD file for the EEG '{a['eeg']}'.*task-oddball"
    ):
        ref.load()


def test_eeg_shorter_than_bold(tmp_path):
    write_bids_run(tmp_path, markers=False, lead=0.0, tail=-3.0)
    with pytest.raises(
        ValueError, match=r"_eeg\.vhdr.*EEG covers 0–21\.000 s.*EEG shorter than the BOLD run"
    ):
        read_session(tmp_path)


def test_dummy_scans_with_markers(tmp_path):
    a = write_bids_run(tmp_path, n_volumes=12)
    full = read_session(tmp_path)
    s = read_session(tmp_path, dummy_scans=2)
    assert s.n_volumes == 10
    np.testing.assert_array_equal(s.bold, full.bold[..., 2:])
    np.testing.assert_allclose(s.volume_onsets, a["markers"][2:], atol=1e-3)


def test_more_markers_than_volumes(tmp_path):
    a = write_bids_run(tmp_path, n_volumes=10, markers=12, tail=5.0)
    s = read_session(tmp_path)  # trailing extra markers ignored
    np.testing.assert_allclose(s.volume_onsets, a["markers"][:10], atol=1e-3)
    s = read_session(tmp_path, skip_markers=2)  # or leading ones, when told
    np.testing.assert_allclose(s.volume_onsets, a["markers"][2:], atol=1e-3)
    with pytest.raises(
        ValueError, match=r"_eeg\.vhdr.*12 'R128' scanner markers \(skip_markers=3\) for 10"
    ):
        read_session(tmp_path, skip_markers=3)


def test_no_markers_uses_first_volume(tmp_path):
    write_bids_run(tmp_path, markers=False, lead=1.0)
    s = read_session(tmp_path, first_volume=1.0)
    np.testing.assert_allclose(s.volume_onsets, 1.0 + 2.0 * np.arange(12))
    assert read_session(tmp_path).volume_onsets[0] == 0.0


def test_func_events_shifted_to_eeg_clock(tmp_path):
    write_bids_run(tmp_path, eeg_events=False, lead=3.0)
    events = tmp_path / "sub-01" / "func" / "sub-01_task-oddball_events.tsv"
    events.write_text("onset\tduration\tvalue\n0.5\t0.1\tstd\n4.0\tn/a\ttgt\n")
    s = read_session(tmp_path)
    np.testing.assert_allclose(s.events["onset"], [3.5, 7.0], atol=1e-3)
    assert list(s.events["trial_type"]) == ["std", "tgt"]
    assert list(s.events["duration"]) == [0.1, 0.0]
    # with dummy scans the origin stays the NIfTI's first volume
    s = read_session(tmp_path, dummy_scans=1)
    np.testing.assert_allclose(s.events["onset"], [3.5, 7.0], atol=1e-3)
    events.write_text("onset\tduration\n0.5\t0.1\nsoon\t0\n")
    with pytest.raises(ValueError, match=r"_events\.tsv': 'onset' must be finite"):
        read_session(tmp_path)


def test_events_fall_back_to_annotations(tmp_path):
    a = write_bids_run(tmp_path, eeg_events=False)
    s = read_session(tmp_path)
    np.testing.assert_allclose(s.events["onset"], a["stimuli"], atol=1e-3)
    assert set(s.events["trial_type"]) == {"S1"}


def test_channels_tsv_types_and_unknown_names(tmp_path):
    write_bids_run(tmp_path, ch_names=["Fz", "Cz", "ECG", "Pz"])
    tsv = tmp_path / "sub-01" / "eeg" / "sub-01_task-oddball_channels.tsv"
    tsv.write_text("name\ttype\tunits\nFz\tEEG\tµV\nCz\tEEG\tµV\nECG\tECG\tµV\nPz\tEEG\tµV\n")
    assert read_session(tmp_path).ch_names == ["Fz", "Cz", "Pz"]
    tsv.write_text("name\ttype\nFz\tEEG\nCz\tEEG\nOz\tEEG\n")
    with pytest.raises(
        ValueError, match=r"_channels\.tsv': unknown channel name\(s\) \['Oz'\].*_eeg\.vhdr"
    ):
        read_session(tmp_path)
    tsv.write_text("name\tkind\nFz\tEEG\n")
    with pytest.raises(ValueError, match=r"_channels\.tsv': lacks column\(s\) \['type'\]"):
        read_session(tmp_path)
    assert read_session(tmp_path, channels=["Pz", "Fz"]).ch_names == ["Pz", "Fz"]


def test_duplicate_channel_names(tmp_path):
    a = write_bids_run(tmp_path)
    a["eeg"].write_text(a["eeg"].read_text().replace("Ch2=EEG01", "Ch2=eeg00"))
    with pytest.raises(ValueError, match=r"_eeg\.vhdr'.*duplicate channel name 'eeg00'"):
        read_session(tmp_path)


def test_nan_in_eeg(tmp_path):
    a = write_bids_run(tmp_path, fmt="fif")
    import mne

    raw = mne.io.read_raw_fif(a["eeg"], preload=True, verbose="error")
    raw._data[1, 50] = np.inf
    raw.save(a["eeg"], overwrite=True, verbose="error")
    with pytest.raises(ValueError, match=r"_eeg\.fif'\): EEG contains 1 NaN/Inf samples"):
        read_session(tmp_path)


def test_bold_not_4d(tmp_path):
    a = write_bids_run(tmp_path)
    nib.save(nib.Nifti1Image(np.ones((5, 6, 4), np.float32), np.eye(4)), a["bold"])
    with pytest.raises(
        ValueError, match=r"_bold\.nii\.gz': BOLD must be 4-D .* got shape \(5, 6, 4\)"
    ):
        read_session(tmp_path)


def test_derivatives_fmriprep(tmp_path):
    write_bids_run(tmp_path, n_volumes=12)
    func = tmp_path / "derivatives" / "fmriprep" / "sub-01" / "func"
    prefix = "sub-01_task-oddball_space-"
    prep = write_bold(
        func / f"{prefix}MNI152NLin2009cAsym_desc-preproc_bold.nii.gz", 12, grid=(7, 8, 6), seed=5
    )
    write_bold(func / f"{prefix}T1w_desc-preproc_bold.nii.gz", 12, grid=(9, 9, 9))
    s = read_session(tmp_path, derivatives="fmriprep")
    assert s.grid_shape == (7, 8, 6) and s.source["bold"] == str(prep)
    assert s.t_r == 2.0  # from the raw sidecar, inherited
    assert read_session(
        tmp_path, derivatives=tmp_path / "derivatives" / "fmriprep", space="T1w"
    ).grid_shape == (9, 9, 9)
    with pytest.raises(
        FileNotFoundError, match=r"derivatives folder not found.*holds \['fmriprep'\]"
    ):
        find_runs(tmp_path, derivatives="spm")
    with pytest.raises(FileNotFoundError, match=r"no BOLD file .* in '.*fmriprep' \(space-MNI305"):
        read_session(tmp_path, derivatives="fmriprep", space="MNI305")


def test_unknown_option(tmp_path):
    write_bids_run(tmp_path)
    with pytest.raises(TypeError, match=r"unknown BIDS reader option\(s\) \['bold_pattern'\]"):
        find_runs(tmp_path, bold_pattern="x")


def test_spm_flipped_grid_lands_on_grid_affine(tmp_path):
    """SPM's 3 mm MNI files (negative x voxel size) are reoriented onto GRID_AFFINE."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((*GRID_SHAPE, 3)).astype(np.float32)
    a = write_bids_run(tmp_path, n_volumes=3, affine=SPM_FLIPPED, bold=True)
    write_bold(a["bold"], 3, affine=SPM_FLIPPED, data=data)
    s = read_session(tmp_path)
    np.testing.assert_allclose(s.affine, GRID_AFFINE)
    assert s.grid_shape == GRID_SHAPE
    # the voxel at MNI (x, y, z) holds the same value in both files
    ijk_spm = np.array([10, 20, 30])
    xyz = SPM_FLIPPED[:3, :3] @ ijk_spm + SPM_FLIPPED[:3, 3]
    ijk_ras = np.rint(np.linalg.solve(GRID_AFFINE[:3, :3], xyz - GRID_AFFINE[:3, 3])).astype(int)
    np.testing.assert_array_equal(s.bold[tuple(ijk_ras)], data[tuple(ijk_spm)])
    assert check_grid(find_runs(tmp_path))[0] == GRID_SHAPE


def test_grid_mismatch_between_subjects(tmp_path):
    write_bids_run(tmp_path, sub="01")
    write_bids_run(tmp_path, sub="02", grid=(6, 6, 4))
    with pytest.raises(
        ValueError,
        match=r"BOLD grids differ: sub-01_task-oddball \('.*sub-01.*_bold\.nii\.gz'\) "
        r"has shape \(5, 6, 4\).*sub-02_task-oddball \('.*sub-02.*'\) has shape \(6, 6, 4\)",
    ):
        check_grid(find_runs(tmp_path))
    sessions = [r.load() for r in find_runs(tmp_path)]
    with pytest.raises(ValueError, match="BOLD grids differ"):
        check_grid(sessions)


def test_detect_layout_errors(tmp_path):
    with pytest.raises(ValueError, match=r"is not a recognised dataset"):
        find_runs(tmp_path)
    with pytest.raises(ValueError, match=r"'layout' must be one of"):
        find_runs(tmp_path, layout="xnat")


def test_a_name_listed_twice_in_channels_tsv_is_named(tmp_path):
    a = write_bids_run(tmp_path, ch_names=["Fz", "Cz", "Pz", "Oz"])
    tsv = a["eeg"].parent / "sub-01_task-oddball_channels.tsv"
    tsv.write_text("name\ttype\nFz\tEEG\nCz\tEEG\ncz\tEEG\nOz\tEEG\n")
    with pytest.raises(
        ValueError,
        match=r"_channels\.tsv': channel name\(s\) \['Cz', 'cz'\] appear more "
        r"than once \(lines \[3, 4\]\)",
    ):
        read_session(tmp_path)


def test_an_all_zero_bold_is_refused(tmp_path):
    a = write_bids_run(tmp_path, n_volumes=12)
    write_bold(a["bold"], 12, data=np.zeros((5, 6, 4, 12), np.float32))
    with pytest.raises(ValueError, match=r"_bold\.nii\.gz'\): the BOLD series is all zeros"):
        read_session(tmp_path)


@pytest.mark.parametrize(
    ("trigger", "spec"),
    [("stim", "eeg:STI 014"), ("analog", "eeg:TRIG:2.5")],
    ids=["stim", "eeg-typed"],
)
def test_volumes_timed_by_a_trigger_channel(tmp_path, rt_log, trigger, spec):
    """A FIF run whose scanner triggers are on a channel (a stim channel, or a TTL lead MNE
    types as EEG) and not in its annotations: reader option ``marker="eeg:CHANNEL..."``
    times the volumes by its rising edges and never reads it as EEG; without it the
    warning names the stim channel to use."""
    import mne

    a = write_bids_run(tmp_path, fmt="fif", markers=False, lead=1.5)
    raw = mne.io.read_raw_fif(a["eeg"], preload=True, verbose="error")
    name, kind = ("STI 014", "stim") if trigger == "stim" else ("TRIG", "eeg")
    onsets = 1.5 + np.arange(12) * 2.0  # the builder's 12 volumes, TR 2 s
    pulses = np.zeros((1, raw.n_times))
    for t in onsets:
        pulses[0, round(t * 250.0) : round(t * 250.0) + 5] = 5.0
    raw.add_channels([mne.io.RawArray(pulses, mne.create_info([name], 250.0, kind),
                                      verbose="error")], force_update_info=True)  # fmt: skip
    raw.save(a["eeg"], overwrite=True, verbose="error")
    s = read_session(tmp_path, marker=spec)
    np.testing.assert_allclose(s.volume_onsets, onsets, atol=1e-9)
    assert s.ch_names == [f"EEG{i:02d}" for i in range(4)]
    np.testing.assert_array_equal(s.stim[name], pulses[0])  # for a replay to publish
    # no markers: volume i at first_volume + i TR, with a hint
    assert read_session(tmp_path).volume_onsets[0] == 0.0
    if trigger == "stim":
        assert "it has stim channel(s) ['STI 014']: if the scanner's triggers are there, " \
               "pass marker 'eeg:STI 014'" in rt_log.text  # fmt: skip
    else:  # a TTL lead of 5 V typed EEG: a trigger lead, and the level midway to try
        assert "it has trigger lead(s) ['TRIG']: if the scanner's triggers are there, pass " \
               "marker 'eeg:TRIG:2.5V'" in rt_log.text  # fmt: skip
    # info DIR lists the run timed by the TR alone as a problem, saying what to try
    from rt_eeg2fmri.data.summary import summarize

    (problem,) = summarize(tmp_path)["problems"]
    assert problem.startswith("sub-01_task-oddball: timed by the TR alone; no 'R128' scanner ")
    assert f"pass marker 'eeg:{name}" in problem
    assert summarize(tmp_path, marker=spec)["problems"] == []
