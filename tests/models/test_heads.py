"""Output heads: the basis head's PCA initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.models import BasisHead, build_model
from rt_eeg2fmri.models.heads import make_head


def _low_rank(n=300, n_voxels=500, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    comps = rng.standard_normal((rank, n_voxels))
    scores = rng.standard_normal((n, rank)) * np.arange(rank, 0, -1)
    return (scores @ comps + 3.0).astype(np.float32), comps


def test_pca_init_spans_the_data():
    targets, comps = _low_rank()
    head = BasisHead(8, targets.shape[1], n_basis=5)
    head.init_from_pca(targets, chunk=64)  # several chunks
    np.testing.assert_allclose(head.offset.detach().numpy(), targets.mean(0), atol=1e-4)
    basis = head.basis.detach().double().numpy()
    # the basis spans the true components: projecting them leaves no residual
    q, _ = np.linalg.qr(basis.T)
    resid = comps.T - q @ (q.T @ comps.T)
    assert np.abs(resid).max() < 1e-3 * np.abs(comps).max()
    # rows are scaled by the component standard deviations (largest first)
    sd = np.linalg.norm(basis, axis=1)
    ref = np.linalg.svd(targets - targets.mean(0), compute_uv=False)[:5] / np.sqrt(299)
    np.testing.assert_allclose(sd, ref, rtol=1e-3)


def test_pca_init_from_memmap_and_tensor(tmp_path):
    targets, _ = _low_rank(n=50, n_voxels=80, rank=3)
    mm = np.lib.format.open_memmap(
        tmp_path / "t.npy", mode="w+", dtype=np.float32, shape=targets.shape
    )
    mm[:] = targets
    a, b = BasisHead(4, 80, n_basis=3), BasisHead(4, 80, n_basis=3)
    a.init_from_pca(mm)
    b.init_from_pca(torch.from_numpy(targets))
    torch.testing.assert_close(a.offset, b.offset)
    torch.testing.assert_close(a.basis.abs(), b.basis.abs(), rtol=1e-4, atol=1e-5)


def test_more_components_than_samples():
    targets, _ = _low_rank(n=4, n_voxels=30, rank=2)
    head = BasisHead(4, 30, n_basis=8)
    head.init_from_pca(targets)
    assert torch.isfinite(head.basis).all()
    assert (head.basis[4:] == 0).all()


def test_fixed_basis_is_a_buffer():
    head = make_head("basis", 4, 30, n_basis=3, train_basis=False)
    names = {n for n, _ in head.named_parameters()}
    assert names == {"coef.weight", "coef.bias"}
    assert "basis" in head.state_dict()


def test_model_init_from_pca_delegates():
    model = build_model("conv", {"n_chans": 2, "n_times": 100, "sfreq": 50.0, "n_voxels": 30})
    targets, _ = _low_rank(n=40, n_voxels=30, rank=3)
    model.init_from_pca(targets)
    np.testing.assert_allclose(model.head.offset.detach().numpy(), targets.mean(0), atol=1e-5)
    full = build_model(
        "fc", {"n_chans": 2, "n_times": 100, "sfreq": 50.0, "n_voxels": 30, "head": "full"}
    )
    before = {k: v.clone() for k, v in full.state_dict().items()}
    full.init_from_pca(targets)  # full head: nothing to initialise
    assert all(torch.equal(before[k], v) for k, v in full.state_dict().items())


def test_pca_errors():
    head = BasisHead(4, 30, n_basis=3)
    with pytest.raises(ValueError, match="'targets' must have 30 columns"):
        head.init_from_pca(np.zeros((10, 20), np.float32))
    with pytest.raises(ValueError, match="at least 2 rows"):
        head.init_from_pca(np.zeros((1, 30), np.float32))
    with pytest.raises(ValueError, match="'n_basis' must be >= 1"):
        BasisHead(4, 30, n_basis=0)
