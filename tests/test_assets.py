"""The built-in default model that ships inside the package loads and predicts."""

from __future__ import annotations

import numpy as np

from apps.commands.stream import default_model_path
from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.data import Preprocessing
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mni_mask
from rt_eeg2fmri.sim.presets import CHANNELS_34


def test_shipped_default_model_loads_and_predicts():
    path = default_model_path()
    assert path.stat().st_size <= 25 * 2**20  # the package budget
    ckpt = load_checkpoint(path)
    assert ckpt.model_name == "conv"
    assert list(ckpt.ch_names) == list(CHANNELS_34)
    assert (ckpt.winsize, ckpt.t_r) == (30.0, 2.0)
    # a format-1 file: its preprocessing is read back whole from the old fields
    assert ckpt.preprocessing == Preprocessing(sfreq=100.0, fwhm=6.0, high_pass=0.008)
    assert tuple(ckpt.grid_shape) == GRID_SHAPE
    np.testing.assert_allclose(ckpt.affine, GRID_AFFINE)
    assert np.array_equal(ckpt.mask, mni_mask())
    meta = ckpt.metadata
    # provenance: the split the checkpoint was chosen on, and its training data
    assert meta["split"]["val_subjects"] and meta["split"]["test_subjects"]
    assert not set(meta["split"]["val_subjects"]) & set(meta["split"]["test_subjects"])
    assert meta["data_fingerprint"]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, len(ckpt.ch_names), ckpt.n_times)).astype(np.float32)
    y = ckpt.predict(x)
    assert y.shape == (3, int(mni_mask().sum()))
    assert np.isfinite(y).all()
    assert y.std(axis=0).max() > 0  # different windows give different volumes
