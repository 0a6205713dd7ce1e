"""EEG files through MNE: formats, units, markers, events, bad input; volume alignment rules."""

from __future__ import annotations

import time
from pathlib import Path

import mne
import numpy as np
import pytest

from rt_eeg2fmri.data import read_eeg, scanner_onsets
from rt_eeg2fmri.data.eeg_io import align_volumes, marker_name, open_raw
from tests.data.builders import eeg_signal, write_eeg

SFREQ = 250.0
NAMES = ["Fp1", "Cz", "Pz", "Oz"]
MARKERS = [1.0, 3.0, 5.0, 7.0]
STIMULI = [1.5, 4.5]


@pytest.mark.parametrize("ext", ["vhdr", "edf", "bdf", "set", "fif"])
def test_read_eeg_every_format(tmp_path, ext):
    data = eeg_signal(4, 2500, seed=1)
    path = write_eeg(
        tmp_path / f"sub-03_task-rest_run-2_eeg.{ext}",
        data,
        SFREQ,
        NAMES,
        markers=MARKERS,
        stimuli=STIMULI,
    )
    s = read_eeg(path)
    assert s.ch_names == NAMES
    assert s.sfreq == SFREQ and s.eeg.dtype == np.float32 and s.eeg_unit == "V"
    assert s.eeg.shape == (4, 2500)
    tol = {"edf": 1e-7, "bdf": 1e-8}.get(ext, 1e-10)  # EDF is 16-bit, BDF 24-bit
    np.testing.assert_allclose(s.eeg, data, atol=tol)
    np.testing.assert_allclose(s.volume_onsets, MARKERS, atol=1 / SFREQ)
    assert s.t_r == pytest.approx(2.0, abs=1e-3)
    assert s.bold is None
    np.testing.assert_allclose(s.events["onset"], STIMULI, atol=1 / SFREQ)
    assert list(s.events["trial_type"]) == ["S1", "S1"]
    assert (s.subject, s.task, s.run) == ("03", "rest", "2")
    assert s.source["eeg"] == str(path)


def test_read_eeg_without_markers_and_custom_marker(tmp_path):
    data = eeg_signal(4, 1500)
    path = write_eeg(tmp_path / "plain.fif", data, SFREQ, NAMES, stimuli=STIMULI)
    s = read_eeg(path)
    assert s.volume_onsets is None and s.t_r is None and len(s.events) == 2
    assert s.task == "plain" and s.subject == "01"
    # the stimulus markers become the scanner markers when asked for, and leave the events
    s = read_eeg(path, marker="S1")
    np.testing.assert_allclose(s.volume_onsets, STIMULI)
    assert len(s.events) == 0


def test_marker_matching_rules():
    assert marker_name("Response/R128") == "r128"
    assert marker_name("Response/R 128") == "r128"
    assert marker_name("  r128 ") == "r128"
    assert marker_name("Stimulus/S  1") == "s1"
    ann = mne.Annotations([2.0, 1.0, 3.0, 4.0], [0] * 4, ["Response/R128", "R 128", "r128x", "S1"])
    np.testing.assert_allclose(scanner_onsets(ann, "R128"), [1.0, 2.0])
    np.testing.assert_allclose(scanner_onsets(ann, "r128X"), [3.0])


def test_scanner_onsets_relative_to_first_sample(tmp_path):
    """FIF keeps first_samp and meas_date: annotation onsets are shifted to the data start."""
    info = mne.create_info(NAMES, 100.0, "eeg")
    raw = mne.io.RawArray(eeg_signal(4, 1000), info, first_samp=250, verbose="error")
    raw.set_meas_date(1e9)
    raw.set_annotations(
        mne.Annotations(
            [3.0, 5.0, 4.0],
            [0, 0, 0],
            ["Response/R128"] * 2 + ["S 2"],
            orig_time=raw.info["meas_date"],
        )
    )
    path = tmp_path / "x_raw.fif"
    raw.save(path, verbose="error")
    s = read_eeg(path)
    np.testing.assert_allclose(s.volume_onsets, [0.5, 2.5])
    np.testing.assert_allclose(s.events["onset"], [1.5])
    np.testing.assert_allclose(scanner_onsets(open_raw(path)), [0.5, 2.5])


def test_high_rate_many_channels(tmp_path):
    """5 kHz × 64 channels load quickly and exactly."""
    sfreq, n = 5000.0, 64
    data = eeg_signal(n, 10 * 5000, seed=2)
    names = [f"E{i}" for i in range(n)]
    path = write_eeg(
        tmp_path / "fast_eeg.vhdr", data, sfreq, names, markers=np.arange(4) * 2.0 + 0.5
    )
    t0 = time.perf_counter()
    s = read_eeg(path)
    elapsed = time.perf_counter() - t0
    assert s.eeg.shape == (64, 50_000) and s.sfreq == sfreq
    np.testing.assert_allclose(s.eeg, data, atol=1e-10)
    np.testing.assert_allclose(s.volume_onsets, [0.5, 2.5, 4.5, 6.5])
    assert elapsed < 10


def test_channel_selection(tmp_path):
    path = write_eeg(tmp_path / "c.fif", eeg_signal(4, 500), SFREQ, NAMES)
    s = read_eeg(path, channels=["Pz", "Fp1"])
    assert s.ch_names == ["Pz", "Fp1"]
    with pytest.raises(ValueError, match=r"unknown channel name\(s\) \['T7'\].*c\.fif"):
        read_eeg(path, channels=["Pz", "T7"])


def test_eeg_only_picks_eeg_types(tmp_path):
    info = mne.create_info(["Cz", "ECG", "STI"], SFREQ, ["eeg", "ecg", "stim"])
    raw = mne.io.RawArray(eeg_signal(3, 500), info, verbose="error")
    raw.save(tmp_path / "t_raw.fif", verbose="error")
    assert read_eeg(tmp_path / "t_raw.fif").ch_names == ["Cz"]
    info = mne.create_info(["ECG"], SFREQ, ["ecg"])
    mne.io.RawArray(eeg_signal(1, 500), info, verbose="error").save(
        tmp_path / "e_raw.fif", verbose="error"
    )
    with pytest.raises(ValueError, match=r"e_raw\.fif.*no EEG channels"):
        read_eeg(tmp_path / "e_raw.fif")


def test_duplicate_channel_names_brainvision(tmp_path):
    path = write_eeg(tmp_path / "d.vhdr", eeg_signal(4, 500), SFREQ, NAMES)
    path.write_text(path.read_text().replace("Ch2=Cz", "Ch2=fp1"))
    with pytest.raises(ValueError, match=r"d\.vhdr.*duplicate channel name 'fp1'"):
        read_eeg(path)


def test_duplicate_channel_names_edf(tmp_path):
    path = write_eeg(tmp_path / "d.edf", eeg_signal(3, 500), SFREQ, ["Fz", "Cz", "Pz"])
    raw = bytearray(path.read_bytes())
    i = raw.find(b"Cz  ")
    raw[i : i + 2] = b"Fz"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"d\.edf.*duplicate channel names.*Fz"):
        read_eeg(path)


def test_nan_samples_named(tmp_path):
    data = eeg_signal(4, 500)
    data[2, 100] = np.nan
    path = write_eeg(tmp_path / "nan_raw.fif", data, SFREQ, NAMES)
    with pytest.raises(ValueError, match=r"nan_raw\.fif.*NaN/Inf.*'Pz' at 0\.400 s"):
        read_eeg(path)


def test_missing_unsupported_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"EEG file not found: '.*nope\.vhdr'"):
        read_eeg(tmp_path / "nope.vhdr")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"x\.csv.*unsupported EEG file type"):
        read_eeg(tmp_path / "x.csv")
    (tmp_path / "bad.edf").write_bytes(b"0" * 300)
    with pytest.raises(ValueError, match=r"cannot read the EEG file '.*bad\.edf'"):
        read_eeg(tmp_path / "bad.edf")


def test_markers_sharing_an_onset_named(tmp_path):
    path = write_eeg(tmp_path / "m.vhdr", eeg_signal(4, 500), SFREQ, NAMES, markers=[0.5, 1.5])
    vmrk = path.with_suffix(".vmrk")
    vmrk.write_text(vmrk.read_text().replace("R128,376,", "R128,126,"))
    with pytest.raises(ValueError, match=r"m\.vhdr.*two 'R128' markers share one onset"):
        read_eeg(path)


# -- align_volumes: the documented marker ↔ volume rules ------------------------------------
def test_align_markers_one_to_one_and_dummies():
    marks = 1.0 + np.arange(10) * 2.0
    onsets, origin = align_volumes(marks, 10, t_r=2.0, where="w")
    np.testing.assert_allclose(onsets, marks)
    assert origin == 1.0
    onsets, origin = align_volumes(marks, 10, t_r=2.0, dummy_scans=3, where="w")
    np.testing.assert_allclose(onsets, marks[3:])
    assert origin == 1.0


def test_align_extra_markers_trailing_and_leading():
    marks = 1.0 + np.arange(12) * 2.0
    onsets, _ = align_volumes(marks, 10, t_r=2.0, where="w")  # trailing extras ignored
    np.testing.assert_allclose(onsets, marks[:10])
    onsets, origin = align_volumes(marks, 10, t_r=2.0, skip_markers=2, where="w")
    np.testing.assert_allclose(onsets, marks[2:])
    assert origin == 5.0


def test_align_without_markers():
    onsets, origin = align_volumes([], 5, t_r=2.0, first_volume=0.5, dummy_scans=1, where="w")
    np.testing.assert_allclose(onsets, [2.5, 4.5, 6.5, 8.5])
    assert origin == 0.5


def test_align_errors_name_the_run():
    marks = np.arange(8) * 2.0
    with pytest.raises(ValueError, match=r"run-x: 8 'R128' scanner markers .* for 10 BOLD volumes"):
        align_volumes(marks, 10, t_r=2.0, where="run-x")
    with pytest.raises(ValueError, match=r"run-x: RepetitionTime is 2\.5 s .* 2\.0000 s apart"):
        align_volumes(marks, 8, t_r=2.5, where="run-x")
    gap = np.concatenate([np.arange(4) * 2.0, 20 + np.arange(4) * 2.0])
    with pytest.raises(ValueError, match=r"run-x: 'R128' markers 3 and 4 .* 14\.0000 s apart"):
        align_volumes(gap, 8, t_r=(gap[-1] - gap[0]) / 7, where="run-x")
    with pytest.raises(ValueError, match=r"run-x: dummy_scans=5 leaves no volume of the 5"):
        align_volumes(marks, 5, t_r=2.0, dummy_scans=5, where="run-x")


def test_an_eeg_shorter_than_the_bold_says_so_and_by_how_much():
    marks = 1.0 + np.arange(8) * 2.0  # the EEG stops after 8 of 10 volumes
    with pytest.raises(ValueError) as err:
        align_volumes(marks, 10, t_r=2.0, where="run-x", eeg_end=17.2)
    message = str(err.value)
    assert "the EEG ends at 17.2 s, right after its last marker" in message
    assert "goes on for 2 more volumes (4.0 s): the EEG recording is shorter" in message
    assert "would misalign the pairs" in message


def test_a_truncated_eeg_file_is_named_with_what_is_missing(tmp_path, rt_log):
    """A .eeg cut in half: reading warns with how much is missing; pairing says so instead
    of advising dummy_scans; replaying it plays what is there after the same warning."""
    import os

    from rt_eeg2fmri.data import find_runs
    from rt_eeg2fmri.data.eeg_io import truncation
    from tests.data.builders import write_bids_run

    paths = write_bids_run(tmp_path / "ds", n_volumes=20, t_r=2.0, lead=1.0, tail=1.0)
    eeg = Path(paths["eeg"]).with_suffix(".eeg")
    os.truncate(eeg, eeg.stat().st_size // 2)
    raw = open_raw(paths["eeg"])
    cut = truncation(raw)
    assert cut["duration"] == pytest.approx(21.0, abs=0.05)
    assert cut["markers_until"] == pytest.approx(39.0, abs=0.01) and cut["omitted"] >= 9
    warned = [r.getMessage() for r in rt_log.records if "looks truncated" in r.getMessage()]
    assert len(warned) == 1 and "about 18.0 s missing" in warned[0] and eeg.stem in warned[0]
    (ref,) = find_runs(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"the EEG file is truncated — it holds 21\.0 s but its "
                       r"markers run to 39\.0 s \(about 18\.0 s missing\)"):  # fmt: skip
        ref.header()
