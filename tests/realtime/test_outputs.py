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
