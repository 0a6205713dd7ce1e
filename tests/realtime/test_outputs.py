from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rt_eeg2fmri.realtime.outputs import NiftiSeriesWriter, TimingLog

GRID = (5, 6, 4)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_series_is_valid_after_every_volume(tmp_path, rng, suffix):
    path = tmp_path / f"pred{suffix}"
    vols = rng.standard_normal((3, *GRID)).astype(np.float32)
    with NiftiSeriesWriter(
        path, affine=AFFINE, grid_shape=GRID, t_r=2.0, sidecar={"Model": "conv"}
    ) as w:
        for k, v in enumerate(vols):
            w.append(v, time=10.0 + 2 * k)
            img = nib.load(path)
            assert img.shape == (*GRID, k + 1)
            np.testing.assert_array_equal(
                img.get_fdata(dtype=np.float32), np.moveaxis(vols[: k + 1], 0, -1)
            )
            np.testing.assert_allclose(img.affine, AFFINE)
            assert img.header.get_zooms()[3] == pytest.approx(2.0)
    side = json.loads(path.with_name("pred.json").read_text())
    # a BIDS derivative's sidecar: onsets from the first, each volume lasting a TR
    assert side["NumberOfVolumes"] == 3 and side["Model"] == "conv"
    assert side["AcquisitionDuration"] == 2.0 and "RepetitionTime" not in side
    assert side["SkullStripped"] is True
    assert side["VolumeTiming"] == [0.0, 2.0, 4.0] and side["VolumeTimingOriginLSL"] == 8.0


def test_the_sidecar_and_sync_follow_at_most_once_a_second(tmp_path, rng):
    """At a long TR every volume is synced and described; at 100x replay speed the data
    are synced and the sidecar rewritten once a second, and always on closing."""
    path = tmp_path / "pred.nii.gz"
    side = path.with_name("pred.json")
    w = NiftiSeriesWriter(path, affine=AFFINE, grid_shape=GRID, t_r=2.0)
    clock, syncs, fsync = [100.0], [], w._fh.sync
    w.clock = lambda: clock[0]
    w._fh.sync = lambda: syncs.append(clock[0]) or fsync()
    vols = rng.standard_normal((60, *GRID)).astype(np.float32)
    for k in range(3):  # a 2 s TR: each volume synced and in the sidecar at once
        clock[0] += 2.0
        w.append(vols[k], time=2.0 * k)
        assert json.loads(side.read_text())["NumberOfVolumes"] == k + 1
    assert len(syncs) == 3
    for k in range(3, 53):  # 100x: 50 volumes in one second
        clock[0] += 0.021
        w.append(vols[k], time=2.0 * k)
        assert nib.load(path).shape == (*GRID, k + 1)  # the header counts every volume
    assert len(syncs) == 3 + 1 and json.loads(side.read_text())["NumberOfVolumes"] < 53
    w.append_many([(vols[k], 2.0 * k, False) for k in range(53, 60)])  # a backlog: one record
    w.close()
    doc = json.loads(side.read_text())
    assert doc["NumberOfVolumes"] == 60 and len(doc["VolumeTiming"]) == 60
    assert len(syncs) == 3 + 1 + 1
    np.testing.assert_array_equal(
        nib.load(path).get_fdata(dtype=np.float32), np.moveaxis(vols, 0, -1)
    )


def test_gz_series_survives_a_crash_mid_volume(tmp_path, rng):
    path = tmp_path / "pred.nii.gz"
    vols = rng.standard_normal((2, *GRID)).astype(np.float32)
    w = NiftiSeriesWriter(path, affine=AFFINE, grid_shape=GRID, t_r=2.0)
    for v in vols:
        w.append(v)
    w.close()
    with open(path, "ab") as fh:  # a volume in flight when the process died: half a gzip member
        fh.write(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    img = nib.load(path)
    assert img.shape == (*GRID, 2)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32)[..., 1], vols[1])


def test_bad_outputs(tmp_path):
    with pytest.raises(ValueError, match=r"'.*pred\.img': expected a \.nii or \.nii\.gz"):
        NiftiSeriesWriter(tmp_path / "pred.img", affine=AFFINE, grid_shape=GRID, t_r=2.0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"cannot write the NIfTI output '.*file/pred\.nii'"):
        NiftiSeriesWriter(blocker / "pred.nii", affine=AFFINE, grid_shape=GRID, t_r=2.0)
    w = NiftiSeriesWriter(tmp_path / "ok.nii", affine=AFFINE, grid_shape=GRID, t_r=2.0)
    with pytest.raises(ValueError, match=r"volume shape \(5, 6\) differs from the series grid"):
        w.append(np.zeros((5, 6)))


def test_timing_log_rows(tmp_path):
    log = TimingLog(tmp_path / "timing.tsv")
    log.write(volume=0, window_end=1.5, publish=1.52, latency_ms=20.0, late=False, skipped=False)
    log.write(volume=1, skipped=True)
    log.close()
    df = pd.read_csv(tmp_path / "timing.tsv", sep="\t", na_values="n/a")
    assert list(df["volume"]) == [0, 1] and df["latency_ms"][0] == 20.0
    assert df["skipped"].tolist() == [0, 1] and np.isnan(df["publish"][1])
    with pytest.raises(ValueError, match="unknown timing column"):
        log.write(foo=1)


# -- faults: a full disk, a second writer ---------------------------------------------------

_FILL = """
import resource, sys
import numpy as np
from rt_eeg2fmri.realtime.outputs import NiftiSeriesWriter, TimingLog, RoiLog
kind, path, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # `ulimit -f`
rng = np.random.default_rng(0)
n = 0
try:
    if kind == "nifti":
        w = NiftiSeriesWriter(path, affine=np.eye(4), grid_shape=(5, 6, 4), t_r=2.0)
        for n in range(1000):
            w.append(rng.standard_normal((5, 6, 4)).astype(np.float32), time=2.0 * n)
    elif kind == "timing":
        w = TimingLog(path)
        for n in range(1000):
            w.write(volume=n, window_end=1000.0 + n, latency_ms=3.25, late=False)
    else:
        w = RoiLog(path, ["V1", "A1"])
        for n in range(1000):
            w.write(n, 1000.0 + n, np.array([0.5, -0.25]))
except OSError as err:
    print(n, err)
"""


def _fill(kind: str, path, limit: int) -> tuple[int, str]:
    """Write ``kind`` in a child process whose files may not grow past ``limit`` bytes."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _FILL, kind, str(path), str(limit)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    n, _, message = proc.stdout.strip().partition(" ")
    return int(n), message


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_full_disk_leaves_the_series_whole(tmp_path, suffix):
    """The volume that did not fit is cut off again: header, data and sidecar agree."""
    import gzip

    path = tmp_path / f"pred{suffix}"
    n, message = _fill("nifti", path, 1024 + 3 * 480 + 100)
    assert n >= 1
    assert f"writing the NIfTI output '{path}' failed" in message
    assert "File too large" in message and "keeps what was written before" in message
    img = nib.load(path)
    assert img.shape == (*GRID, n)
    vols = img.get_fdata(dtype=np.float32)
    rng = np.random.default_rng(0)
    for k in range(n):
        np.testing.assert_array_equal(vols[..., k], rng.standard_normal(GRID).astype(np.float32))
    if suffix == ".nii.gz":
        gzip.decompress(path.read_bytes())  # no truncated member: `gzip -t` passes
    side = json.loads(path.with_name("pred.json").read_text())
    assert side["NumberOfVolumes"] == n and len(side["VolumeTiming"]) == n


@pytest.mark.parametrize("kind", ["timing", "roi"])
def test_a_full_disk_leaves_the_table_in_whole_rows(tmp_path, kind):
    path = tmp_path / "t.tsv"
    n, message = _fill(kind, path, 1000)
    what = "timing log" if kind == "timing" else "ROI time series"
    assert f"writing the {what} '{path}' failed: File too large" in message
    text = path.read_text()
    assert text.endswith("\n") and len(text.encode()) <= 1000
    table = pd.read_csv(path, sep="\t", na_values="n/a")
    assert len(table) == n and list(table["volume"]) == list(range(n))


def test_an_empty_series_is_not_left_behind(tmp_path):
    path = tmp_path / "pred.nii.gz"
    NiftiSeriesWriter(path, affine=AFFINE, grid_shape=GRID, t_r=2.0).close()
    assert not path.exists() and not path.with_name("pred.json").exists()


_HOLD = """
import sys, time
from rt_eeg2fmri.realtime.outputs import lock_outputs
locks = lock_outputs(sys.argv[1:])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    import os
    import subprocess
    import sys

    from rt_eeg2fmri.realtime.outputs import lock_outputs

    out, log = tmp_path / "pred.nii.gz", tmp_path / "t.tsv"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out), str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FileExistsError) as err:
            lock_outputs([tmp_path / "other.nii.gz", log])
        message = str(err.value)
        assert f"output '{log}' is being written by another process (pid {holder.pid} on" in message
        assert "nothing was written" in message
        assert not (tmp_path / ".other.nii.gz.lock").exists()  # all or none: let go again
    finally:
        holder.kill()
        holder.wait()
    # the system let go when the holder died: the files are free again
    locks = lock_outputs([out, log])
    assert (tmp_path / ".pred.nii.gz.lock").read_text().startswith(f"pid {os.getpid()} on ")
    for lock in locks:
        lock.release()
    assert not (tmp_path / ".pred.nii.gz.lock").exists()


def test_a_skipped_volume_keeps_its_place_in_the_series(tmp_path, rng):
    """4-D index = TR index: a volume due but not computed is a zero placeholder, listed in
    the sidecar; skips before the first volume add nothing."""
    from types import SimpleNamespace

    from rt_eeg2fmri.realtime.outputs import Outputs

    path = tmp_path / "pred.nii.gz"
    out = Outputs(grid_shape=GRID, affine=AFFINE, t_r=2.0, mask=np.ones(GRID, bool),
                  model="conv", nifti=path)  # fmt: skip
    out.open(SimpleNamespace(output_errors=0, write=[]))
    vols = rng.standard_normal((2, *GRID)).astype(np.float32)
    out.skip(0, 10.0)  # before the stream's first volume: nothing to keep a place for
    out.store(vols[0], 12.0, 1)
    out.skip(2, 14.0)
    out.skip(3, None)
    out.store(vols[1], 18.0, 4)
    out.close()
    data = nib.load(path).get_fdata(dtype=np.float32)
    assert data.shape == (*GRID, 4)
    np.testing.assert_array_equal(data[..., 0], vols[0])
    assert not data[..., 1:3].any()
    np.testing.assert_array_equal(data[..., 3], vols[1])
    side = json.loads(path.with_name("pred.json").read_text())
    assert side["PlaceholderVolumes"] == [1, 2]
    assert side["VolumeTiming"] == [0.0, 2.0, 4.0, 6.0]
