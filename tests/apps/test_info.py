"""``rt-eeg2fmri info``: human and JSON summaries, problems reported (not raised), errors."""

from __future__ import annotations

import json

import pytest

from apps.cli import main
from rt_eeg2fmri.data.summary import format_summary, summarize
from tests.data.builders import SPM_FLIPPED, write_bids_run, write_ds000116_run


def test_info_bids_human_and_json(tmp_path, capsys):
    write_bids_run(tmp_path, sub="01", run="1", n_volumes=20)
    write_bids_run(tmp_path, sub="02", run="1", n_volumes=20, fmt="edf")
    assert main(["info", str(tmp_path), "--winsize", "10"]) == 0
    out = capsys.readouterr().out
    assert "subjects  2 (01, 02)" in out
    assert "channels  4 (EEG00, EEG01, EEG02, EEG03)" in out
    assert "sfreq     250 Hz" in out and "TR        2 s" in out
    assert "grid      5 × 6 × 4, 3 × 3 × 3 mm (not the SPM 3 mm MNI grid)" in out
    assert "pairs     30 (10 s windows)" in out  # 20 volumes, 5 warm-up → 15 per run
    assert "Problems: none" in out
    assert main(["info", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "bids" and summary["n_runs"] == 2 and summary["n_readable"] == 2
    assert summary["n_volumes"] == 40 and summary["n_pairs"] == 10  # 30 s windows: 15 warm-up
    assert summary["runs"][0]["n_markers"] == 20
    assert summary["channels"]["consistent"] and summary["problems"] == []


def test_info_reports_problems_and_exits_0(tmp_path, capsys):
    write_bids_run(tmp_path, sub="01")
    write_bids_run(tmp_path, sub="02", grid=(6, 6, 4))  # grid mismatch
    write_bids_run(tmp_path, sub="03", ch_names=["EEG00", "EEG01", "EEG02", "Oz"])
    write_bids_run(tmp_path, sub="04", bold=False)  # EEG without BOLD
    write_bids_run(tmp_path, sub="05", task="rest", sidecar=None, header_tr=None)  # no TR
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "runs      5 (3 readable)" in out
    assert "sub-04_task-oddball  ERROR (see problems)" in out
    assert "Problems (4):" in out
    assert "BOLD grids differ: sub-01_task-oddball" in out and "(6, 6, 4)" in out
    assert (
        "channels differ: sub-03_task-oddball vs sub-01_task-oddball: missing ['EEG03'], extra ['Oz']"
        in out
    )
    assert "sub-04_task-oddball: no BOLD file for the EEG" in out
    assert "sub-05_task-rest: no 'RepetitionTime'" in out
    summary = summarize(tmp_path)
    assert not summary["channels"]["consistent"]
    assert summary["runs"][3]["error"].startswith("no BOLD file")


def test_info_full_catches_sample_problems(tmp_path, capsys):
    import mne
    import numpy as np

    a = write_bids_run(tmp_path, fmt="fif")
    raw = mne.io.read_raw_fif(a["eeg"], preload=True, verbose="error")
    raw._data[0, 10] = np.nan
    raw.save(a["eeg"], overwrite=True, verbose="error")
    assert summarize(tmp_path)["problems"] == []  # headers are fine
    assert main(["info", str(tmp_path), "--full"]) == 0
    assert "NaN/Inf samples" in capsys.readouterr().out


def test_info_bold_without_eeg(tmp_path):
    write_bids_run(tmp_path, sub="01")
    write_bids_run(tmp_path, sub="01", task="localizer", fmt="vhdr")
    for p in (tmp_path / "sub-01" / "eeg").glob("*localizer*"):
        p.unlink()
    summary = summarize(tmp_path)
    assert summary["n_runs"] == 1
    assert summary["problems"] == [
        f"BOLD without EEG: '{tmp_path}/sub-01/func/sub-01_task-localizer_bold.nii.gz'"
    ]


def test_info_ds000116_and_spm_grid(tmp_path, capsys):
    write_ds000116_run(tmp_path, n_volumes=3, grid=(53, 63, 52), affine=SPM_FLIPPED)
    write_ds000116_run(tmp_path, task=2, n_volumes=3, grid=(53, 63, 52), affine=SPM_FLIPPED)
    assert main(["info", str(tmp_path), "--layout", "ds000116", "--t-r", "2"]) == 0
    out = capsys.readouterr().out
    assert "Dataset" in out and "(ds000116)" in out
    assert "tasks     auditory, visual" in out
    assert "grid      53 × 63 × 52, 3 × 3 × 3 mm (SPM 3 mm MNI grid)" in out
    assert "TR-timed" in out
    summary = summarize(tmp_path)
    assert summary["grid"]["spm_mni_3mm"] is True
    assert summary["channels"]["n_chans"] == 34
    assert format_summary(summary).count("sub-01_task-") == 2


def test_info_errors_exit_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 1
    assert "rt-eeg2fmri info: error: dataset folder not found" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 1
    assert "is not a recognised dataset" in capsys.readouterr().err
    (tmp_path / "dataset_description.json").write_text("{}")
    assert main(["info", str(tmp_path)]) == 1
    assert "no runs found in this bids dataset" in capsys.readouterr().err
    write_bids_run(tmp_path)
    assert main(["info", str(tmp_path), "--bold-pattern", "x"]) == 1
    assert "unknown BIDS reader option(s) ['bold_pattern']" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("x")
    assert main(["info", str(tmp_path / "file.txt")]) == 1
    assert "file.txt': unsupported EEG file type; expected one of .vhdr" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--help"])
def test_info_help(flag, capsys):
    with pytest.raises(SystemExit) as err:
        main(["info", flag])
    assert err.value.code == 0
    assert "--winsize" in capsys.readouterr().out


def _fif(path, stim, *, sfreq=250.0, name="STI 014", ecg=True):
    """A FIF with 3 EEG channels, an ECG lead (typed ecg) and a stim channel ``stim``."""
    import mne
    import numpy as np

    names = ["Fz", "Cz", "Pz", *(["EKG"] if ecg else []), name]
    types = ["eeg"] * 3 + (["ecg"] if ecg else []) + ["stim"]
    data = np.vstack([1e-5 * np.random.default_rng(0).standard_normal((len(names) - 1,
                                                                       stim.size)), stim])  # fmt: skip
    mne.io.RawArray(data, mne.create_info(names, sfreq, types), verbose="error").save(
        path, verbose="error"
    )
    return path


def test_info_of_a_file_finds_the_trigger_channel_and_says_which_marker(tmp_path, capsys):
    """``info FILE``: a FIF whose scanner triggers are on ``STI 014`` (no annotations) —
    the triggers are found, evenly spaced at the TR, and ``--marker "eeg:STI 014"`` is
    suggested; a BioSemi-like status (high bits always set, stimulus codes on the low
    byte) gets the bit that carries the scanner: ``mask=0x100``."""
    import numpy as np

    stim = np.zeros(250 * 40)
    onsets = np.arange(500, stim.size - 10, 500)  # every 2 s from 2 s
    for t in onsets:
        stim[t : t + 3] = 1
    path = _fif(tmp_path / "scan_raw.fif", stim)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stim      1 (STI 014)" in out and "ECG       EKG" in out
    assert "volumes   0 'R128' onsets" in out
    assert f"eeg:STI 014: {onsets.size} onsets, TR 2 s" in out
    assert 'use       --marker "eeg:STI 014"' in out
    assert "no 'R128' scanner marker among the annotations: try --marker \"eeg:STI 014\"" in out
    assert main(["info", str(path), "--marker", "eeg:STI 014", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["marker"]["timing"] == {"n": onsets.size, "t_r": 2.0, "first": 2.0}
    assert summary["problems"] == [] and summary["suggested"] == "eeg:STI 014"

    rng = np.random.default_rng(1)
    status = np.full(stim.size, 0x3E00)
    for t in rng.integers(0, stim.size - 30, 60):  # stimulus codes, some over a pulse
        status[t : t + 20] |= int(rng.integers(1, 256))
    status[onsets[:, None] + np.arange(3)] |= 0x100
    path = _fif(tmp_path / "status_raw.fif", status.astype(float), name="Status", ecg=False)
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["suggested"] == "eeg:Status:mask=0x100", summary
    assert summary["triggers"]["Status"]["specs"]["eeg:Status"] is None  # always above 0.5
    assert summary["ecg"] == []


def test_info_of_a_file_suggests_a_level_in_volts_for_an_analog_trigger_lead(tmp_path, capsys):
    """A TTL lead of 150 µV that MNE types EEG (BrainVision's ``TRIG``) is looked at as a
    trigger by its label: the level through the middle of its range is suggested with its
    unit (``eeg:TRIG:75uV``), which times the volumes offline as the stream would live."""
    import mne
    import numpy as np

    from rt_eeg2fmri.data.eeg_io import read_eeg

    rng = np.random.default_rng(2)
    trig = 1e-6 * rng.standard_normal(250 * 30)
    onsets = np.arange(250, trig.size - 10, 500)
    for t in onsets:
        trig[t : t + 5] += 150e-6
    data = np.vstack([1e-5 * rng.standard_normal((2, trig.size)), trig])
    path = tmp_path / "lead_raw.fif"
    mne.io.RawArray(data, mne.create_info(["Fz", "Cz", "TRIG"], 250.0, "eeg"),
                    verbose="error").save(path, verbose="error")  # fmt: skip
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    spec = f"eeg:TRIG:{0.5 * (trig.min() + trig.max()) * 1e6:.3g}uV"
    assert f"trigger   TRIG: analog, {trig.min():.3g} to {trig.max():.3g} V" in out
    assert f"{spec}: {onsets.size} onsets, TR 2 s" in out and f"use       --marker {spec}" in out
    session = read_eeg(path, marker=spec)
    np.testing.assert_allclose(session.volume_onsets, onsets / 250.0)
    assert session.ch_names == ["Fz", "Cz"] and session.stim_units == {"TRIG": "V"}


def test_info_of_a_brainvision_file_with_its_markers(tmp_path, capsys):
    write_bids_run(tmp_path, sub="01", n_volumes=12, t_r=2.0)
    (path,) = tmp_path.glob("sub-01/eeg/*_eeg.vhdr")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "volumes   12 'R128' onsets, TR 2 s from 1.000 s" in out
    assert "R128 ×12" in out and "Problems: none" in out
    assert main(["info", str(path), "--dummy-scans", "2"]) == 1
    assert "is a file; --dummy-scans apply to dataset folders only" in capsys.readouterr().err
