"""The transformer never decodes from the true slices outside teacher-forced training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.models import build_model
from rt_eeg2fmri.models.transformer import electrode_positions

from .conftest import GRID, N_CHANS, N_TIMES, make_model, small_config, small_mask


@pytest.fixture
def model():
    # no dropout, no batch statistics: training and evaluation mode compute the same maths
    return make_model("transformer", dropout=0.0, norm="group")


def test_eval_output_ignores_y(model):
    model.eval()
    x = torch.randn(2, N_CHANS, N_TIMES)
    n_voxels = model.config.n_voxels
    with torch.no_grad():
        free = model(x)
        with_y = model(x, torch.randn(2, n_voxels))
        with_other_y = model(x, torch.randn(2, n_voxels) * 100)
    torch.testing.assert_close(with_y, free, rtol=0, atol=0)
    torch.testing.assert_close(with_other_y, free, rtol=0, atol=0)


def test_training_without_y_decodes_own_outputs(model):
    x = torch.randn(2, N_CHANS, N_TIMES)
    model.train()
    free_train = model(x)
    model.eval()
    with torch.no_grad():
        free_eval = model(x)
    torch.testing.assert_close(free_train.detach(), free_eval, rtol=1e-5, atol=1e-6)


def test_teacher_forcing_uses_y_and_is_causal(model):
    model.train()
    x = torch.randn(1, N_CHANS, N_TIMES)
    n_voxels = model.config.n_voxels
    y = torch.randn(1, n_voxels)
    out = model.to_slices(model(x, y))
    # changing the true slice k changes only the predictions of slices after k
    k = 1
    y_slices = model.to_slices(y)
    y_slices[:, k] += 5.0
    out2 = model.to_slices(model(x, model.from_slices(y_slices)))
    torch.testing.assert_close(out2[:, : k + 1], out[:, : k + 1], rtol=0, atol=0)
    assert not torch.allclose(out2[:, k + 1 :], out[:, k + 1 :])


def test_autoregressive_equals_teacher_forcing_on_own_outputs(model):
    # fed its own eval output as "truth", teacher forcing reproduces that output exactly:
    # the eval path really decodes slice by slice from its previous outputs
    x = torch.randn(2, N_CHANS, N_TIMES)
    model.eval()
    with torch.no_grad():
        own = model(x)
    model.train()
    with torch.no_grad():
        tf = model(x, own)
    torch.testing.assert_close(tf, own, rtol=1e-4, atol=1e-5)


def test_slices_roundtrip_and_mask(model):
    n_voxels = model.config.n_voxels
    y = torch.randn(3, n_voxels)
    slices = model.to_slices(y)
    assert slices.shape == (3, GRID[2], GRID[0] * GRID[1])
    torch.testing.assert_close(model.from_slices(slices), y)
    # slice z holds grid[:, :, z] in C order
    vol = torch.zeros(3, *GRID)
    vol[:, torch.from_numpy(small_mask())] = y
    torch.testing.assert_close(slices[:, 2], vol[..., 2].reshape(3, -1))


def test_bad_y_shape(model):
    model.train()
    with pytest.raises(ValueError, match="'y' must have shape"):
        model(torch.randn(2, N_CHANS, N_TIMES), torch.randn(2, 3))


@pytest.mark.parametrize(
    "encoding", ["learned", "sinusoidal", "electrode", "none", "electrode+sinusoidal"]
)
def test_position_encodings(encoding):
    names = ["Fp1", "cz", "O2", "ECG"]
    torch.manual_seed(0)
    cfg = small_config("transformer", pos_encoding=encoding, ch_names=names)
    model = build_model("transformer", cfg).eval()
    with torch.no_grad():
        y = model(torch.randn(1, N_CHANS, N_TIMES))
    assert torch.isfinite(y).all()
    if "electrode" in encoding:
        found = model.positions.electrode_found.tolist()
        assert found == [True, True, True, False]  # case-insensitive; ECG is not an electrode


def test_electrode_positions_are_head_scale():
    pos, found = electrode_positions(["Cz", "T7", "T8", "nope"])
    assert found.tolist() == [True, True, True, False]
    assert np.all(np.abs(pos[:3]) < 1.5)
    assert pos[1, 0] < 0 < pos[2, 0]  # T7 left, T8 right
    assert np.all(pos[3] == 0)


def test_config_errors():
    with pytest.raises(ValueError, match="3-D 'grid_shape'"):
        build_model("transformer", small_config("transformer", grid_shape=None))
    with pytest.raises(ValueError, match="'pos_encoding' parts"):
        build_model("transformer", small_config("transformer", pos_encoding="gps"))
    with pytest.raises(ValueError, match="'ch_names' has 2 labels but n_chans=4"):
        build_model("transformer", small_config("transformer", ch_names=["Cz", "Pz"]))
    with pytest.raises(ValueError, match="must divide by 'n_heads'"):
        build_model("transformer", small_config("transformer", n_heads=3))
