from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from rt_eeg2fmri.grid import GRID_SHAPE, mm_to_voxel, mni_mask
from rt_eeg2fmri.hrf import events_to_regressor, hrf_convolve, spm_hrf
from rt_eeg2fmri.sim import REGIONS, load_truth, noise_ceiling
from tests.sim.conftest import VOLUMES


def _bold(root, task):
    path = root / "sub-01" / "func" / f"sub-01_task-{task}_run-1_bold.nii.gz"
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def _centres(root):
    params = json.loads((root / "derivatives/simulation/sub-01/sub-01_simulation.json").read_text())
    return {
        name: tuple(np.round(mm_to_voxel([p["x"], p["y"], p["z"]])).astype(int))
        for name, p in params["regions"].items()
    }


def _cube(data, ijk, r=1):
    i, j, k = ijk
    return data[i - r : i + r + 1, j - r : j + r + 1, k - r : k + r + 1].reshape(-1, data.shape[-1])


def test_load_truth(bids_root):
    t = load_truth(bids_root, subject=1, task="auditory", run="01")
    assert t["noisefree"].shape == t["eeg_predictable"].shape == (*GRID_SHAPE, VOLUMES)
    assert t["noisefree"].dtype == np.float32
    assert t["drive"].shape == (len(REGIONS), t["drive_times"].size)
    centres = _centres(bids_root)
    thal = t["eeg_predictable"][centres["Thalamus_L"]]
    assert np.ptp(thal) < 0.05  # silent region: nothing EEG-predictable
    assert np.ptp(t["noisefree"][centres["Thalamus_L"]]) > 2.0
    a1 = t["eeg_predictable"][centres["A1_L"]]
    np.testing.assert_allclose(a1, t["noisefree"][centres["A1_L"]], rtol=2e-3)
    measured = _cube(_bold(bids_root, "auditory"), centres["A1_L"]).mean(axis=0)
    truth = _cube(t["noisefree"], centres["A1_L"]).mean(axis=0)
    assert np.corrcoef(measured, truth)[0, 1] > 0.5


def test_load_truth_missing_run_names_it(bids_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="sub-01_task-auditory_run-9"):
        load_truth(bids_root, subject="01", task="auditory", run=9)
    with pytest.raises(FileNotFoundError, match="derivatives/simulation"):
        load_truth(tmp_path, subject="01", task="auditory", run=1)


def test_activation_where_the_regions_are(bids_root):
    centres = _centres(bids_root)
    events = __import__("pandas").read_csv(
        bids_root / "sub-01/func/sub-01_task-auditory_run-1_events.tsv", sep="\t"
    )
    onsets = events.onset[events.trial_type.str.startswith("auditory")].to_numpy()
    sfreq = 10.0
    n = VOLUMES * 20
    reg = hrf_convolve(events_to_regressor(onsets, 0.2, sfreq=sfreq, n_times=n), spm_hrf(0.1))
    x = reg[10::20]  # mid-volume
    bold = _bold(bids_root, "auditory")

    def r(name):
        ts = _cube(bold, centres[name]).mean(axis=0)
        return np.corrcoef(ts, x)[0, 1]

    assert r("A1_L") > 0.3 and r("A1_R") > 0.3
    assert r("A1_L") > r("V1_L") + 0.2  # visual cortex does not follow auditory events


def test_noise_ceiling_higher_where_eeg_sees(bids_root):
    mask = mni_mask()
    centres = _centres(bids_root)
    for task in ("auditory", "visual"):
        t = load_truth(bids_root, subject="01", task=task, run=1)
        bold = _bold(bids_root, task)
        ceiling = noise_ceiling(bold, t["eeg_predictable"], mask)
        assert ceiling.shape == (int(mask.sum()),)
        assert np.all(np.abs(ceiling) <= 1.0)
        full = np.zeros(GRID_SHAPE)
        full[mask] = ceiling
        visible = [full[centres[r.name]] for r in REGIONS if r.eeg_visible]
        silent = [full[centres[r.name]] for r in REGIONS if not r.eeg_visible]
        assert 0.0 < np.median(visible) < 1.0
        assert np.median(visible) > np.median(silent) + 0.2
        assert np.max(np.abs(silent)) < 0.2


def test_noise_ceiling_shapes_and_errors():
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((30, 5))
    meas = pred + rng.standard_normal((30, 5))
    meas[:, 4] = 1.0  # constant → 0
    r = noise_ceiling(meas, pred)
    assert r.shape == (5,) and r[4] == 0.0 and np.all(r[:4] > 0.3)
    np.testing.assert_allclose(
        noise_ceiling(meas, pred, np.array([1, 0, 1, 0, 0], bool)), r[[0, 2]]
    )
    with pytest.raises(ValueError, match="same shape"):
        noise_ceiling(meas, pred[:, :4])
    with pytest.raises(ValueError, match="4-D inputs need a 'mask'"):
        noise_ceiling(np.zeros((2, 2, 2, 3)), np.zeros((2, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"'mask' has shape \(3, 3, 3\)"):
        noise_ceiling(np.zeros((2, 2, 2, 3)), np.zeros((2, 2, 2, 3)), np.ones((3, 3, 3), bool))
    with pytest.raises(ValueError, match="got shape"):
        noise_ceiling(np.zeros(3), np.zeros(3))


def test_the_regions_atlas_labels_each_region_where_it_is(bids_root):
    """``derivatives/simulation/atlas-regions_dseg``: the per-region report's default atlas."""
    import pandas as pd

    from rt_eeg2fmri.sim.truth import truth_atlas

    image, lut = truth_atlas(bids_root)
    labels = np.asarray(nib.load(image).dataobj)
    table = pd.read_csv(lut, sep="\t")
    assert list(table["name"]) == [r.name for r in REGIONS]
    assert list(table["index"]) == list(range(1, len(REGIONS) + 1))
    assert labels.shape == mni_mask().shape and not labels[~mni_mask()].any()
    for i, region in enumerate(REGIONS):
        at = tuple(np.round(mm_to_voxel(np.asarray(region.xyz))).astype(int))
        assert labels[at] == i + 1, region.name  # its own centre
        assert 5 <= (labels == i + 1).sum() <= 400, region.name
