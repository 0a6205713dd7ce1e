"""ROI output for neurofeedback: each region's mean predicted signal, every TR, on LSL.

The tests build their own atlas (a label image and a look-up table) on the tiny model's
grid; a plain pylsl inlet reads the ROI stream of ``rt-eeg2fmri stream`` back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pylsl
import pytest

from rt_eeg2fmri.realtime.roi import Regions, read_lut
from rt_eeg2fmri.replay import Replay
from tests.conftest import make_session
from tests.realtime.engine_helpers import AFFINE, CH, GRID, tiny_checkpoint, wait_for_line

ROOT = Path(__file__).resolve().parents[2]
SFREQ, T_R = 100.0, 0.5
MASK = np.ones(GRID, bool)
MASK[0] = False  # tiny_checkpoint's mask: the grid minus its first x-slab


def _atlas(tmp_path, *, affine=AFFINE, shape=GRID) -> tuple[Path, Path]:
    labels = np.zeros(shape, np.int16)
    labels[1:3, :, :2] = 3  # "visual"
    labels[3:, 2:, 2:] = 7  # "motor"
    labels[0, :, :] = 9  # outside the model's mask: no name, never used below
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), path)
    lut = tmp_path / "atlas.tsv"
    lut.write_text("index\tname\n3\tvisual\n7\tmotor\n9\tnowhere\n")
    return path, lut


def test_regions_average_the_masked_voxels(tmp_path, rng):
    path, lut = _atlas(tmp_path)
    data = np.asarray(nib.load(path).dataobj)
    data[0] = 0
    nib.save(nib.Nifti1Image(data, AFFINE), path)  # drop the out-of-mask region
    regions = Regions(path, grid_shape=GRID, affine=AFFINE, mask=MASK, labels=lut)
    assert regions.names == ["visual", "motor"] and regions.labels == [3, 7]
    vol = rng.standard_normal(GRID).astype(np.float32)
    want = [vol[(data == 3) & MASK].mean(), vol[(data == 7) & MASK].mean()]
    np.testing.assert_allclose(regions.means(vol), want, rtol=1e-6)
    assert list(regions.n_voxels) == [int(((data == k) & MASK).sum()) for k in (3, 7)]
    # one binary mask is one region named after its file
    one = tmp_path / "V1.nii.gz"
    nib.save(nib.Nifti1Image((data == 3).astype(np.uint8), AFFINE), one)
    assert Regions(one, grid_shape=GRID, affine=AFFINE, mask=MASK).names == ["V1"]
    # an atlas on a finer grid is resampled to the model's (nearest neighbour)
    fine = np.kron(data, np.ones((2, 2, 2), np.int16))
    fine_affine = AFFINE.copy()
    fine_affine[:3, :3] /= 2
    fine_affine[:3, 3] -= 0.75  # voxel centres of the 2x grid
    nib.save(nib.Nifti1Image(fine, fine_affine), tmp_path / "fine.nii.gz")
    r2 = Regions(tmp_path / "fine.nii.gz", grid_shape=GRID, affine=AFFINE, mask=MASK, labels=lut)
    assert r2.names == ["visual", "motor"]


def test_bad_atlases_are_named(tmp_path):
    path, lut = _atlas(tmp_path)
    with pytest.raises(ValueError, match=r"region\(s\) \['nowhere'\] have no voxel inside"):
        Regions(path, grid_shape=GRID, affine=AFFINE, mask=MASK, labels=lut)
    short = tmp_path / "short.tsv"
    short.write_text("index\tname\n3\tvisual\n")
    with pytest.raises(ValueError, match=r"'.*short\.tsv' has no name for label\(s\) \[7, 9\]"):
        Regions(path, grid_shape=GRID, affine=AFFINE, mask=MASK, labels=short)
    empty = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(GRID, np.int16), AFFINE), empty)
    with pytest.raises(ValueError, match=r"'.*empty\.nii\.gz' holds no region"):
        Regions(empty, grid_shape=GRID, affine=AFFINE, mask=MASK)
    frac = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(np.full(GRID, 0.5, np.float32), AFFINE), frac)
    with pytest.raises(ValueError, match=r"labels must be integers"):
        Regions(frac, grid_shape=GRID, affine=AFFINE, mask=MASK)
    with pytest.raises(FileNotFoundError, match="ROI atlas"):
        Regions(tmp_path / "nope.nii.gz", grid_shape=GRID, affine=AFFINE, mask=MASK)
    (tmp_path / "fs.txt").write_text("# FreeSurfer style\n3 visual 255 0 0 0\n7 motor 0 0 255 0\n")
    assert read_lut(tmp_path / "fs.txt") == {3: "visual", 7: "motor"}


@pytest.mark.lsl
def test_the_roi_stream_is_read_back_by_plain_pylsl(tmp_path, uid):
    model = tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R)
    path, _ = _atlas(tmp_path)
    data = np.asarray(nib.load(path).dataobj)
    data[0] = 0
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    lut = tmp_path / "names.tsv"
    lut.write_text("index\tname\n3\tvisual\n7\tmotor\n")
    session = make_session(n_chans=len(CH), sfreq=SFREQ, n_volumes=20, t_r=T_R, ch_names=CH)
    replay = Replay(session, name=uid, source_id=uid, truth=False, speed=4.0).open()
    n = 4
    proc = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "stream", "--model", str(model), "--source",
         f"name:{uid}-EEG", "--sync", "samples", "--device", "cpu", "--name", f"{uid}-pred",
         "--no-outlet", "--out", str(tmp_path / "pred.nii"), "--roi", str(path),
         "--roi-labels", str(lut), "--max-volumes", str(n), "--timeout", "30"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples = []
    try:
        wait_for_line(proc, "streaming conv")
        (info,) = pylsl.resolve_byprop("name", f"{uid}-pred-ROI", 1, 10.0)
        inlet = pylsl.StreamInlet(info)
        full = inlet.info(10.0)
        inlet.open_stream(10.0)
        replay.start()
        while len(samples) < n:
            sample, ts = inlet.pull_sample(timeout=20.0)
            assert sample is not None, "no ROI sample"
            samples.append((sample, ts))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        replay.stop()
    assert proc.returncode == 0, err
    assert json.loads(out)["volumes"] == n
    assert full.type() == "ROI" and full.channel_count() == 2
    assert full.nominal_srate() == pytest.approx(1 / T_R)
    ch = full.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    assert labels == ["visual", "motor"]
    vols = np.asarray(nib.load(tmp_path / "pred.nii").dataobj)
    for k, (sample, _) in enumerate(samples):
        want = [vols[..., k][(data == 3) & MASK].mean(), vols[..., k][(data == 7) & MASK].mean()]
        np.testing.assert_allclose(sample, want, rtol=1e-5)
    stamps = np.diff([ts for _, ts in samples])
    np.testing.assert_allclose(stamps, T_R, atol=0.02)  # one sample per TR (stream time)
    table = pd.read_csv(tmp_path / "pred_roi.tsv", sep="\t")
    assert list(table.columns) == ["volume", "window_end", "visual", "motor"]
    np.testing.assert_allclose(table[["visual", "motor"]], [s for s, _ in samples], rtol=1e-5)
