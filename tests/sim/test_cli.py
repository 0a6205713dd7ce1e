from __future__ import annotations

from apps.cli import main


def test_simulate_command(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--preset", "tiny", "--out", str(out), "--subjects", "1", "--runs", "1"]
    rc = main([*args, "--volumes", "4", "--seed", "2", "--jobs", "1", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Simulated 'tiny' (seed 2)" in text and "1 subjects × 1 runs" in text
    assert (out / "sub-01/eeg/sub-01_task-auditory_run-1_eeg.vhdr").is_file()


def test_simulate_command_errors(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2\n")
    assert main(["simulate", "--preset", "tiny", "--out", str(foreign)]) == 1
    err = capsys.readouterr().err
    assert "rt-eeg2fmri simulate: error:" in err and str(foreign) in err and "--overwrite" in err
    assert main(["simulate", "--preset", "medium", "--out", str(tmp_path / "x")]) == 1
    assert "unknown simulation preset 'medium'" in capsys.readouterr().err
    assert main(["simulate", "--preset", "tiny", "--out", str(tmp_path / "x"), "--sfreq", "0"]) == 1
    assert "'sfreq' must be positive" in capsys.readouterr().err
    bad = ["simulate", "--preset", "tiny", "--out", str(tmp_path / "x"), "--channels", "Cz,Q7"]
    assert main(bad) == 1
    assert "unknown channel name(s) ['Q7']" in capsys.readouterr().err
