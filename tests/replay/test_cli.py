"""``rt-eeg2fmri replay`` in a subprocess: streams, signals, summary, errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.replay.helpers import connect, drain
from tests.replay.test_xdf import _eeg_stream, _marker_stream
from tests.replay.xdf_writer import write_xdf

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "replay", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture
def recording(tmp_path, rng):
    eeg = _eeg_stream(rng, n_times=400)
    markers = _marker_stream(["R128", "go", "R128"], [0.25, 0.5, 1.25])
    return write_xdf(tmp_path / "rec.xdf", [eeg, markers]), eeg


@pytest.mark.lsl
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(recording, uid, sig):
    path, _ = recording
    proc = _cli(path, "--name", uid, "--source-id", uid, "--loop", "--speed", "4", "--chunk", "50")
    try:
        inlet = connect(f"{uid}:eeg")
        info = inlet.info(5.0)
        assert info.name() == f"{uid}-EEG" and info.nominal_srate() == 200.0
        _, ts = drain(inlet, n_min=40)
        assert len(ts) >= 40 and np.all(np.diff(ts) > 0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"{uid}-EEG  (source_id {uid}:eeg)" in out
    assert f"stopped by {sig.name}: replayed " in out and f"on '{uid}-EEG'" in out
    # the last line of the log is the summary; outlets are gone once the process exits
    assert out.strip().splitlines()[-1].endswith("s of wall time.")


def test_plays_to_the_end(recording, uid):
    path, _ = recording
    proc = _cli(
        path, "--name", uid, "--speed", "50", "--start", "0.4", "--duration", "1", "--no-wait"
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "end of recording: replayed 200 samples (1.000 s of recording, 1 loop(s))" in out
    assert "2 markers (1 'R128')" in out  # "go" at 0.5 s and the volume at 1.25 s


@pytest.mark.lsl
def test_a_fast_replay_waits_for_its_consumer(recording, uid):
    """At 1000× a 2 s recording is over in 2 ms: by default it waits until an inlet
    subscribes, so the consumer gets all of it."""
    path, _ = recording
    proc = _cli(path, "--name", uid, "--source-id", uid, "--speed", "1000", "--no-truth")
    try:
        assert proc.stdout.readline().startswith("streaming ")
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[-1].strip() == f"waiting for a consumer of '{uid}-EEG'..."
        inlet = connect(f"{uid}:eeg")
        data, _ = drain(inlet, n_min=400)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(data) == 400 and "end of recording: replayed 400 samples" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.vhdr", r"error: recording not found: '.*missing\.vhdr'"),
        (
            lambda d: (d / "bad.xdf").write_bytes(b"garbage") and d / "bad.xdf",
            r"error: cannot read '.*bad\.xdf' as XDF",
        ),
        (
            lambda d: write_xdf(d / "m.xdf", [_marker_stream(["R128"], [0.0])]),
            r"error: '.*m\.xdf' has no EEG stream",
        ),
    ],
)
def test_errors_name_the_input(tmp_path, make, message):
    proc = _cli(make(tmp_path))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert re.search(message, err), err


def test_bad_options(recording):
    path, _ = recording
    proc = _cli(path, "--speed", "0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "'speed' must be positive and finite, got speed=0.0" in err
    proc = _cli(path, "--model", "nope.pt", "--fwhm", "6")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "--model sets the targets' preprocessing; drop --fwhm" in err


@pytest.mark.lsl
def test_a_fif_with_its_triggers_on_a_stim_channel(tmp_path, uid):
    """``replay rec_raw.fif --marker "eeg:STI 014"``: the stim channel is published after
    the EEG with its codes (typed STIM), and each rising edge is an ``R128`` on the marker
    stream too, so both ``--trigger "eeg:STI 014"`` and ``--trigger NAME-Markers`` work."""
    import mne

    sfreq, n = 200.0, 600
    data = 20e-6 * np.random.default_rng(0).standard_normal((3, n))
    data[2] = 0
    for a in (100, 300, 500):
        data[2, a : a + 3] = 128
    raw = mne.io.RawArray(data, mne.create_info(["Fz", "Cz", "STI 014"], sfreq,
                                                ["eeg", "eeg", "stim"]), verbose="error")  # fmt: skip
    raw.save(tmp_path / "rec_raw.fif", verbose="error")
    proc = _cli(tmp_path / "rec_raw.fif", "--name", uid, "--source-id", uid, "--speed", "4",
                "--marker", "eeg:STI 014")  # fmt: skip
    try:
        markers = connect(f"{uid}:markers")
        eeg = connect(f"{uid}:eeg")
        info = eeg.info(5.0)
        got, _ = drain(eeg, n_min=n)
        out, err = proc.communicate(timeout=30)
        sent = []
        while (sample := markers.pull_sample(timeout=1.0))[0] is not None:
            sent.append(sample[0][0])
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    ch = info.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append((ch.child_value("label"), ch.child_value("type"), ch.child_value("unit")))
        ch = ch.next_sibling()
    assert labels == [("Fz", "EEG", "microvolts"), ("Cz", "EEG", "microvolts"),
                      ("STI 014", "STIM", "none")]  # fmt: skip
    got = np.asarray(got)
    np.testing.assert_array_equal(got[:, 2], data[2])
    np.testing.assert_allclose(got[:, :2], data[:2].T * 1e6, rtol=1e-5)
    assert sent == ["R128"] * 3 and "3 markers (3 'R128')" in out
