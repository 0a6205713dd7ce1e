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
    assert "expects a dataset folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--help"])
def test_info_help(flag, capsys):
    with pytest.raises(SystemExit) as err:
        main(["info", flag])
    assert err.value.code == 0
    assert "--winsize" in capsys.readouterr().out
