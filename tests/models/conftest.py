"""Small models of every architecture for fast tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.models import MODELS, build_model

GRID = (5, 6, 4)
N_CHANS, SFREQ, N_TIMES = 4, 50.0, 100  # 4 channels × 2 s at 50 Hz

# per-architecture overrides that keep the tests fast
SMALL = {
    "fc": {"emb_dim": 32, "hidden": 32},
    "siamese_fc": {"emb_dim": 8, "hidden": 32},
    "conv": {"channels": [4, 8, 8], "emb_dim": 8, "hidden": 32, "n_basis": 8},
    "transformer": {
        "channels": [4, 8, 8],
        "d_model": 16,
        "n_heads": 2,
        "ff_dim": 32,
        "n_enc_layers": 1,
        "n_dec_layers": 2,
        "slice_code": 4,
    },
    "ridge": {"t_r": 0.5, "alphas": [0.01, 1.0, 100.0]},
}


def small_mask(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random(GRID) < 0.6


def small_config(name: str, mask: np.ndarray | None = None, **overrides) -> dict:
    mask = small_mask() if mask is None else mask
    cfg = {
        "n_chans": N_CHANS,
        "n_times": N_TIMES,
        "sfreq": SFREQ,
        "n_voxels": int(mask.sum()),
        "grid_shape": list(GRID),
        **SMALL[name],
    }
    cfg.update(overrides)
    return cfg


def random_batches(n_batches: int, batch: int, n_voxels: int, *, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        yield (
            torch.randn(batch, N_CHANS, N_TIMES, generator=gen),
            torch.randn(batch, n_voxels, generator=gen),
        )


def make_model(name: str, *, seed: int = 0, **overrides) -> torch.nn.Module:
    """A small model with the test mask; ``ridge`` is fitted on random data."""
    torch.manual_seed(seed)
    mask = small_mask()
    model = build_model(name, small_config(name, mask, **overrides))
    model.set_mask(mask)
    if name == "ridge":
        n_voxels = int(mask.sum())
        model.fit_streaming(
            random_batches(4, 8, n_voxels, seed=seed),
            val_batches=random_batches(2, 8, n_voxels, seed=seed + 1),
        )
    return model


@pytest.fixture(params=list(MODELS))
def model_name(request) -> str:
    return request.param
