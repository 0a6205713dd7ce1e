"""``rt-eeg2fmri stream``: signals, summary, clear errors, LSL publishing without files.

Runs that need a signal or a live outlet use a subprocess; error paths that end before
streaming call ``apps.cli.main`` in-process.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pylsl
import pytest
import torch

from apps.cli import main
from rt_eeg2fmri.replay import Replay
from rt_eeg2fmri.volume_stream import parse_volume_stream_info
from tests.conftest import make_session
from tests.realtime.engine_helpers import (
    CH,
    GRID,
    stream_replay,
    tiny_checkpoint,
    wait_for_line,
)

ROOT = Path(__file__).resolve().parents[2]
SFREQ, T_R = 100.0, 0.5


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("stream_cli") / "m.pt", sfreq=SFREQ, t_r=T_R)


@pytest.fixture
def uid() -> str:
    """A unique stream name / source id."""
    return f"cli-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The command sets torch's thread count for its process; keep the test process's."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _stream(*args, file_size: int | None = None) -> subprocess.Popen:
    """``rt-eeg2fmri stream ARGS`` in a child; ``file_size``: its ``ulimit -f``, in bytes."""

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, resource.RLIM_INFINITY))

    return subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "stream", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if file_size is None else limit,
    )


def _stream_replay(model, uid, replay, *args, file_size=None, listen=0):
    """``stream`` (samples sync, CPU) on ``replay``'s EEG until it ends by itself.

    ``listen``: subscribe to the volume stream ``<uid>-pred`` first and pull that many
    volumes. Returns ``(exit status, stdout, stderr, volumes, the stream's description)``.
    """
    proc = _stream(
        "--model", model, "--source", f"name:{uid}-EEG", "--sync", "samples", "--device", "cpu",
        *args, file_size=file_size,
    )  # fmt: skip
    got, meta = [], None
    try:
        lines = wait_for_line(proc, "streaming conv")
        if listen:
            (info,) = pylsl.resolve_byprop("name", f"{uid}-pred", timeout=10.0)
            inlet = pylsl.StreamInlet(info)
            inlet.open_stream(10.0)
            meta = parse_volume_stream_info(inlet.info(10.0))
        replay.start()
        got = [inlet.pull_sample(timeout=10.0)[0] for _ in range(listen)]
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        replay.stop()
    return proc.returncode, out, "".join(lines) + err, got, meta


def _replay(uid: str, *, ch_names=CH, sfreq=SFREQ, **kw) -> Replay:
    session = make_session(
        n_chans=len(ch_names), sfreq=sfreq, n_volumes=20, t_r=T_R, ch_names=ch_names
    )
    return Replay(session, name=uid, source_id=uid, truth=False, **kw).open()


@pytest.mark.lsl
def test_sigterm_prints_the_summary_and_exits_0(model, uid):
    replay = _replay(uid, loop=True, speed=2.0)
    proc = _stream(
        "--model", model, "--source", f"name:{uid}-EEG", "--sync", "samples", "--device",
        "cpu", "--no-outlet", "--timeout", "30",
    )  # fmt: skip
    try:
        wait_for_line(proc, "streaming conv")
        replay.start()
        wait_for_line(proc, "volume     1 | latency")  # one status line per volume
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        replay.stop()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["volumes"] >= 2 and summary["skipped"] == 0 and summary["samples_lost"] == 0
    assert summary["latency_p50_ms"] == summary["latency_p50_ms"]  # a number, not NaN
    assert "error" not in err


@pytest.mark.lsl
def test_a_replay_that_ends_first_ends_the_stream_after_the_timeout(model, uid, tmp_path):
    """The scripted replay + stream of a user: the replay's process ends (its outlets go)
    before ``--max-volumes``; the stream stops ``--timeout`` later with exit status 0."""
    replay = _replay(uid, speed=4.0)  # 10 s of session in 2.5 s
    proc = _stream(
        "--model", model, "--source", f"name:{uid}-EEG", "--sync", "samples", "--device",
        "cpu", "--no-outlet", "--out", tmp_path / "pred.nii", "--max-volumes", "1000",
        "--timeout", "2", "--quiet",
    )  # fmt: skip
    try:
        lines = wait_for_line(proc, "streaming conv")
        replay.start()
        assert replay.wait(30.0)
        replay.stop()  # what the replay's process exiting does: its outlets disappear
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        replay.stop()
    err = "".join(lines) + err
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["source_gone"] and summary["state"] == "lost", summary
    assert summary["volumes"] >= 10, summary  # ~16 windows of 2 s in 10 s at a 0.5 s TR
    assert "has been gone from the network" in err and "--timeout" in err
    assert nib.load(tmp_path / "pred.nii").shape[-1] == summary["volumes"] + summary["skipped"]


@pytest.mark.lsl
def test_a_stream_at_another_rate_is_resampled_by_default(model, uid, tmp_path):
    replay = _replay(uid, sfreq=2 * SFREQ, speed=4.0)  # an amplifier at twice the model's rate
    code, out, err, _, _ = _stream_replay(
        model, uid, replay, "--no-outlet", "--out", tmp_path / "pred.nii", "--max-volumes", "2",
        "--timeout", "30",
    )  # fmt: skip
    assert code == 0, err
    assert "resampling 200 Hz to 100 Hz" in err
    summary = json.loads(out)
    assert summary["volumes"] == 2 and summary["samples_lost"] == 0
    assert nib.load(tmp_path / "pred.nii").shape[-1] == 2


@pytest.mark.lsl
@pytest.mark.timeout(600)
def test_a_bids_out_folder_is_a_valid_derivative(model, uid, tmp_path):
    out = tmp_path / "derivatives" / "rteeg2fmri"
    rc, _, err = stream_replay(
        _replay(uid, speed=4.0), "--model", model, "--source", f"name:{uid}-EEG", "--sync",
        "samples", "--device", "cpu", "--no-outlet", "--out", out, "--subject", "07", "--task",
        "nf", "--run", "2", "--max-volumes", "3", "--timeout", "30",
    )  # fmt: skip
    assert rc == 0, err
    stem = out / "sub-07" / "func" / "sub-07_task-nf_run-2_desc-eeg2fmri"
    assert nib.load(f"{stem}_bold.nii.gz").shape == (*GRID, 3)
    sidecar = json.loads(Path(f"{stem}_bold.json").read_text())
    assert sidecar["VolumeTiming"] == pytest.approx([0.0, T_R, 2 * T_R], abs=0.05)
    assert sidecar["Sources"][0].startswith("file://") and sidecar["Sources"][0].endswith("m.pt")
    assert Path(f"{stem}_timing.tsv").is_file()
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "rt-eeg2fmri"
    from tests.bids_validation import bids_errors

    assert bids_errors(out) == []


def test_a_huge_calibration_is_refused_before_anything_is_allocated(model, capsys):
    assert main(["stream", "--model", str(model), "--calibrate", "1e7", "--timeout", "0.1"]) == 1
    assert "'--calibrate' must be 0 to 3600 seconds of stream, got 10000000.0" in (
        capsys.readouterr().err
    )


def test_existing_outputs_are_never_replaced_silently(model, tmp_path, capsys):
    (tmp_path / "p.nii.gz").write_bytes(b"an earlier run")
    (tmp_path / "t.tsv").write_text("kept\n")
    rc = main(["stream", "--model", str(model), "--out", str(tmp_path / "p.nii.gz"),
               "--timing", str(tmp_path / "t.tsv"), "--timeout", "0.1"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "output file(s) already exist" in err and "p.nii.gz" in err and "t.tsv" in err
    assert "pass --overwrite to replace them" in err
    assert (tmp_path / "p.nii.gz").read_bytes() == b"an earlier run"
    assert (tmp_path / "t.tsv").read_text() == "kept\n"
    # a run of a BIDS --out folder refuses only its own files
    out = tmp_path / "deriv"
    stem = out / "sub-01" / "func" / "sub-01_task-rt_desc-eeg2fmri"
    stem.parent.mkdir(parents=True)
    Path(f"{stem}_timing.tsv").write_text("kept\n")
    assert main(["stream", "--model", str(model), "--out", str(out), "--timeout", "0.1"]) == 1
    assert "sub-01_task-rt_desc-eeg2fmri_timing.tsv" in capsys.readouterr().err
    # with --overwrite it gets as far as looking for the stream
    rc = main(["stream", "--model", str(model), "--out", str(tmp_path / "p.nii.gz"),
               "--timing", str(tmp_path / "t.tsv"), "--overwrite", "--source", "name:none-x",
               "--timeout", "0.1"])  # fmt: skip
    assert rc == 1 and "no LSL stream with name='none-x'" in capsys.readouterr().err


def test_bad_out_names_are_refused_before_connecting(model, tmp_path, capsys):
    (tmp_path / "t.tsv").write_text("kept\n")
    rc = main(["stream", "--model", str(model), "--out", str(tmp_path / "pred.nii.bak"),
               "--timing", str(tmp_path / "t.tsv"), "--timeout", "0.1"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "'--out'" in err and "pred.nii.bak" in err and "expected a .nii or .nii.gz" in err
    assert (tmp_path / "t.tsv").read_text() == "kept\n"
    rc = main(["stream", "--model", str(model), "--out", str(tmp_path), "--subject", "0-1",
               "--timeout", "0.1"])  # fmt: skip
    assert rc == 1
    assert "'subject' must be a BIDS label" in capsys.readouterr().err


@pytest.mark.lsl
def test_unknown_source_lists_the_visible_streams(model, uid):
    replay = _replay(uid)
    try:
        proc = _stream("--model", model, "--source", f"name:{uid}-nope", "--timeout", "1")
        out, err = proc.communicate(timeout=60)
    finally:
        replay.stop()
    assert proc.returncode == 1
    assert f"rt-eeg2fmri stream: error: no LSL stream with name='{uid}-nope' found" in err
    assert "Visible streams:" in err and f"name='{uid}-EEG'" in err
    assert out == ""


@pytest.mark.lsl
def test_unwritable_output_is_logged_and_lsl_publishing_goes_on(model, uid, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    replay = _replay(uid, speed=4.0)
    code, out, err, got, meta = _stream_replay(
        model, uid, replay, "--out", blocker / "pred.nii", "--name", f"{uid}-pred",
        "--max-volumes", "3", "--timeout", "30", listen=3,
    )  # fmt: skip
    assert code == 1, err  # an output requested and not written
    assert "cannot write the NIfTI output" in err and "file/pred.nii" in err
    assert "The other outputs go on" in err
    summary = json.loads(out)
    assert summary["volumes"] == 3 and summary["output_errors"] == 1
    (failed,) = summary["failed_outputs"]
    assert f"error: {failed}" in err and "not everything requested was written" in err
    for sample in got:
        vol = meta.to_volume(np.asarray(sample, np.float32))
        assert vol.shape == GRID and np.isfinite(vol).all() and np.abs(vol[1:]).max() > 0
    assert not (blocker / "pred.json").exists()


@pytest.mark.lsl
@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (
            dict(ch_names=["Fz", "Cz", "Oz", "ECG"]),
            r"1 of the model's 4 channels are missing from the stream: 'Pz'; they cannot be "
            r"interpolated: spherical splines need at least 4 .*\(pass --allow-missing to "
            r"zero-fill them\)",
        ),
        (dict(sfreq=2 * SFREQ), r"is 200 Hz, the model expects 100 Hz; drop --no-resample"),
    ],
    ids=["missing-channel", "rate"],
)
def test_stream_that_does_not_fit_the_model(model, uid, tmp_path, capsys, stream, message):
    replay = _replay(uid, **stream)
    try:
        code = main(
            ["stream", "--model", str(model), "--source", f"name:{uid}-EEG", "--no-outlet",
             "--out", str(tmp_path / "pred.nii"), "--timeout", "5", "--device", "cpu",
             "--no-resample"]
        )  # fmt: skip
    finally:
        replay.stop()
    err = capsys.readouterr().err
    assert code == 1
    assert f"rt-eeg2fmri stream: error: stream '{uid}-EEG'" in err
    assert re.search(message, err), err
    assert not (tmp_path / "pred.nii").exists()  # nothing written for a stream that does not fit


@pytest.mark.lsl
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [],
            r"the pulse \(BCG\) correction needs an ECG channel; none is typed ECG or labelled "
            r"ECG\*/EKG\* "
            r"among its channels \(\['Fz', 'Cz', 'Pz', 'Oz', 'EOG'\]\): name it with --ecg NAME",
        ),
        (["--ecg", "ECG2"], r"the ECG channel 'ECG2' is not among its channels"),
    ],
    ids=["no-ecg", "wrong-name"],
)
def test_correct_bcg_needs_the_streams_ecg_channel(model, uid, tmp_path, capsys, flags, message):
    """--correct bcg on a stream with no ECG channel (or not the one --ecg names) is an
    error naming the stream and its channels, before anything is written."""
    replay = _replay(uid, ch_names=[*CH, "EOG"])
    try:
        code = main(
            ["stream", "--model", str(model), "--source", f"name:{uid}-EEG", "--no-outlet",
             "--out", str(tmp_path / "pred.nii"), "--timeout", "5", "--device", "cpu",
             "--correct", "bcg", *flags]
        )  # fmt: skip
    finally:
        replay.stop()
    err = capsys.readouterr().err
    assert code == 1 and f"rt-eeg2fmri stream: error: stream '{uid}-EEG'" in err
    assert re.search(message, err), err
    assert not (tmp_path / "pred.nii").exists()


class _Payload:
    """Unpickling this would create ``marker``: proof that nothing in the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _truncated(path: Path, model: Path) -> Path:
    path.write_bytes(model.read_bytes()[:2000])
    return path


def _pickled(path: Path, model: Path) -> Path:
    torch.save({"format": "rt-eeg2fmri-checkpoint", "x": _Payload(path.with_suffix(".ran"))}, path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p, m: p.write_bytes(b"not a checkpoint at all") and p,
            r"'.*bad\.pt' is not a readable rt-eeg2fmri checkpoint",
        ),
        (_truncated, r"is not a readable rt-eeg2fmri checkpoint: the file is truncated"),
        (_pickled, r"contains pickled Python objects, which are refused and were not executed"),
        (lambda p, m: p, r"checkpoint not found: '.*bad\.pt'"),
    ],
    ids=["garbage", "truncated", "pickle", "missing"],
)
def test_corrupt_checkpoint_is_a_clear_error(model, tmp_path, capsys, make, message):
    path = make(tmp_path / "bad.pt", model)
    code = main(["stream", "--model", str(path), "--source", "name:none", "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("rt-eeg2fmri stream: error: ") and "bad.pt" in err
    assert re.search(message, err, re.IGNORECASE), err
    assert not (tmp_path / "bad.ran").exists()  # the pickled payload never ran


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threads", "0"], "'--threads' must be >= 1, got 0."),
        (["--max-volumes", "0"], "'--max-volumes' must be >= 1, got 0."),
        (["--max-volumes", "-1"], "'--max-volumes' must be >= 1, got -1."),
        (["--duration", "0"], "'--duration' must be a positive number of seconds, got 0.0."),
        (["--duration", "-5"], "'--duration' must be a positive number of seconds, got -5.0."),
        (["--timeout", "nan"], "'--timeout' must be a positive number of seconds, got nan."),
        (["--phase", "nan"], "'--phase' must be a finite number of seconds, got nan."),
        (["--calibrate", "-1"], "'--calibrate' must be 0 to 3600 seconds of stream, got -1.0."),
        (
            ["--correct", "gradient,ecg"],
            "'--correct': corrections must be 'gradient', 'bcg' or "
            "'gradient,bcg' (add 'live' for the stream's causal corrections), got 'gradient,ecg'.",
        ),
        (
            ["--ecg", "EKG"],
            "'--ecg' names the ECG channel of '--correct bcg', which is not asked for.",
        ),
        (["--correct", "bcg", "--correct-beats", "0"], "'--correct-beats' must be >= 1, got 0."),
        (
            ["--sync", "trigger"],
            "'--sync trigger' needs '--trigger NAME[:MARKER]' (the marker stream) or '--trigger "
            "eeg:CHANNEL[:LEVEL|:mask=BITS]' (a trigger channel of the EEG stream).",
        ),
        (
            ["--sync", "trigger", "--trigger", "eeg:Status:mask=on"],
            "'--trigger' eeg:CHANNEL[:LEVEL|:mask=BITS]: the mask must be an integer (e.g. 8 or "
            "0x8), got 'on'.",
        ),
        (
            ["--correct", "gradient"],
            "the gradient correction needs the scanner's volume markers: '--trigger' (the marker "
            "stream NAME[:MARKER], or eeg:CHANNEL[:LEVEL|:mask=BITS]).",
        ),
    ],
)
def test_limits_that_make_no_run_are_refused(model, capsys, tmp_path, flags, message):
    out = tmp_path / "pred.nii.gz"
    code = main(["stream", "--model", str(model), "--out", str(out), *flags])
    assert code == 1
    assert f"rt-eeg2fmri stream: error: {message}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing touched


def test_the_template_defaults_in_the_help_are_the_corrections(capsys):
    """``--correct-volumes`` and ``--correct-beats`` default to the live corrections' own
    template sizes, which their help names (one number, not a second spelling of it)."""
    from rt_eeg2fmri.realtime.gradient import N_VOLUMES
    from rt_eeg2fmri.realtime.pulse import N_BEATS

    with pytest.raises(SystemExit):
        main(["stream", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"past volumes in the template (default {N_VOLUMES})" in text
    assert f"past heartbeats in the template (default {N_BEATS})" in text


@pytest.mark.lsl
def test_unlabelled_stream_names_the_flag(model, uid, capsys):
    from tests.realtime.lsl_outlets import outlet_process

    spec = dict(name=uid, source_id=uid, n_chans=4, sfreq=SFREQ, n_samples=200,
                wait_consumer=False)  # fmt: skip
    with outlet_process(**spec):
        code = main(
            ["stream", "--model", str(model), "--source", f"name:{uid}", "--no-outlet",
             "--timeout", "5", "--device", "cpu", "--units", "uV"]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "has no channel labels" in err and "pass --assume-order to take its 4" in err
    code = main(["stream", "--model", str(model), "--units", "furlongs"])
    assert code == 1 and "'--units' must name a unit" in capsys.readouterr().err


@pytest.mark.lsl
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_liblsl_log_lines_only_when_verbose(uid, tmp_path, verbose):
    import os

    env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    env["RT_EEG2FMRI_CACHE"] = str(tmp_path)
    args = ["stream", "--source", f"name:{uid}", "--timeout", "0.3", *(["-v"] if verbose else [])]
    proc = subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and f"no LSL stream with name='{uid}'" in proc.stderr
    assert ("Loaded default config" in proc.stderr) is verbose, proc.stderr


@pytest.mark.lsl
def test_a_full_disk_on_the_nifti_stops_a_stream_with_nowhere_else_to_go(model, uid, tmp_path):
    """`ulimit -f` on `--out pred.nii.gz --no-outlet`: the file keeps its whole volumes, the
    stream stops instead of computing into nothing, and exits 1 naming the file."""
    import gzip

    out, timing = tmp_path / "pred.nii.gz", tmp_path / "t.tsv"
    replay = _replay(uid, loop=True, speed=4.0)
    code, out_text, err, _, _ = _stream_replay(
        model, uid, replay, "--out", out, "--timing", timing, "--no-outlet", "--max-volumes",
        "40", "--timeout", "30", file_size=4000,
    )  # fmt: skip
    assert code == 1, err
    assert f"writing the NIfTI output '{out}' failed: File too large" in err
    assert "Every output of the volumes has failed" in err
    summary = json.loads(out_text)
    assert 1 <= summary["volumes"] < 40
    n = nib.load(out).shape[3]
    gzip.decompress(out.read_bytes())  # whole gzip members only
    assert json.loads((tmp_path / "pred.json").read_text())["NumberOfVolumes"] == n
    assert timing.read_text().endswith("\n")


@pytest.mark.lsl
def test_a_full_disk_on_the_timing_log_stops_only_the_log(model, uid, tmp_path):
    """`ulimit -f` on `--timing`: LSL publishing goes on to the end, the log ends in a whole
    row, and the error names the file."""
    import pandas as pd

    timing = tmp_path / "t.tsv"
    replay = _replay(uid, loop=True, speed=4.0)
    code, out_text, err, got, _ = _stream_replay(
        model, uid, replay, "--timing", timing, "--name", f"{uid}-pred", "--max-volumes", "12",
        "--timeout", "30", file_size=700, listen=12,
    )  # fmt: skip
    assert code == 1, err
    assert all(g is not None for g in got)  # every volume was published
    assert f"writing the timing log '{timing}' failed: File too large" in err
    summary = json.loads(out_text)
    assert summary["volumes"] == 12 and summary["output_errors"] == 1
    table = pd.read_csv(timing, sep="\t", na_values="n/a")
    assert 1 <= len(table) < 12 and timing.read_text().endswith("\n")


def test_a_second_stream_on_the_same_outputs_is_refused(model, tmp_path, capsys):
    """Two processes, one `--out`: the second is refused before connecting, naming the first."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from rt_eeg2fmri.realtime.outputs import lock_outputs\n"
         "locks = lock_outputs(sys.argv[1:]); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "pred.nii.gz")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["stream", "--model", str(model), "--out", str(tmp_path / "pred.nii.gz"),
                     "--overwrite", "--source", "name:nobody", "--timeout", "1"])  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code != 0
    assert f"is being written by another process (pid {holder.pid} on" in err
    assert not (tmp_path / "pred.nii.gz").exists()


@pytest.mark.lsl
def test_ctrl_c_while_waiting_for_the_stream_ends_the_wait(model, uid, tmp_path):
    import time

    proc = _stream(
        "--model", model, "--source", f"name:{uid}-absent", "--out", tmp_path / "p.nii.gz",
        "--timeout", "60",
    )  # fmt: skip
    try:
        wait_for_line(proc, "Waiting up to 60 s for the LSL stream")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert waited < 10  # not the 60 s timeout
    assert "stopped while waiting for the stream; nothing was written" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.lsl
def test_a_volume_stream_name_already_on_the_network_is_refused(model, uid, tmp_path, capsys):
    """Two `stream` processes with one `--name` would publish twin outlets: refused first."""
    info = pylsl.StreamInfo(f"{uid}-pred", "fMRI", 1, 0.5, "float32", f"{uid}-other")
    outlet = pylsl.StreamOutlet(info)
    try:
        code = main(["stream", "--model", str(model), "--name", f"{uid}-pred", "--out",
                     str(tmp_path / "p.nii.gz"), "--source", "name:nobody", "--timeout", "1"])  # fmt: skip
    finally:
        del outlet
    err = capsys.readouterr().err
    assert code == 1
    assert f"an LSL stream named '{uid}-pred' is already published" in err
    assert f"source_id='{uid}-other'" in err and "Choose another --name" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.lsl
def test_correct_and_publish_eeg_are_checked_before_connecting(model, uid, tmp_path, capsys):
    """--correct gradient needs the scanner's markers (--trigger); a --publish-eeg name
    already on the network is refused like --name; nothing is written either way."""
    code = main(["stream", "--model", str(model), "--correct", "gradient", "--out",
                 str(tmp_path / "p.nii.gz"), "--source", "name:nobody", "--timeout", "1"])  # fmt: skip
    assert code == 1
    assert "the gradient correction needs the scanner's volume markers" in capsys.readouterr().err
    info = pylsl.StreamInfo(f"{uid}-clean", "EEG", 1, 100.0, "float32", f"{uid}-other")
    outlet = pylsl.StreamOutlet(info)
    try:
        code = main(["stream", "--model", str(model), "--publish-eeg", f"{uid}-clean", "--out",
                     str(tmp_path / "p.nii.gz"), "--source", "name:nobody", "--timeout", "1",
                     "--no-outlet"])  # fmt: skip
    finally:
        del outlet
    err = capsys.readouterr().err
    assert code == 1 and "Choose another --publish-eeg" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.lsl
def test_the_status_line_counts_the_windows_not_yet_corrected(model, uid):
    """With ``--correct``, each volume's status line says how many windows so far held
    samples the corrections had not flagged clean, and whether this one did."""
    replay = _replay(uid, speed=4.0)
    code, out, err, _, _ = _stream_replay(
        model, uid, replay, "--no-outlet", "--timeout", "30", "--max-volumes", "8",
        "--correct", "gradient", "--trigger", f"{uid}-Markers:R128", "--correct-volumes", "2",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("volume")]
    assert lines and len(lines) == summary["volumes"], err
    assert "| uncorrected 1 (this one)" in lines[0], lines[0]
    assert f"| uncorrected {summary['uncorrected']}" in lines[-1], lines[-1]
    assert not lines[-1].endswith("(this one)") and 0 < summary["uncorrected"] < len(lines)
