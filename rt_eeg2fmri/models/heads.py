"""Output heads: hidden features → voxel values.

``FullHead`` is one linear layer to every voxel (the paper's output layer).
``BasisHead`` predicts ``n_basis`` coefficients of a spatial basis of shape
(n_basis, n_voxels) plus a per-voxel offset; initialised from a PCA of training
volumes it keeps models small (64 × 69,637 weights instead of hidden × 69,637).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._checks import check_option

HEADS = ("full", "basis")


class FullHead(nn.Module):
    """A linear layer from ``n_in`` features to ``n_voxels`` voxels."""

    def __init__(self, n_in: int, n_voxels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_voxels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map (B, n_in) to (B, n_voxels)."""
        return self.linear(h)


class BasisHead(nn.Module):
    """``coef = Linear(h)``; ``out = coef @ basis + offset``.

    Parameters
    ----------
    n_in : int
        Input features.
    n_voxels : int
        Voxels.
    n_basis : int
        Number of spatial components.
    train_basis : bool
        If False the basis (and offset) stay fixed buffers, e.g. after
        :meth:`init_from_pca`.
    """

    def __init__(
        self, n_in: int, n_voxels: int, *, n_basis: int = 64, train_basis: bool = True
    ) -> None:
        super().__init__()
        if n_basis < 1:
            raise ValueError(f"'n_basis' must be >= 1, got {n_basis=}.")
        self.coef = nn.Linear(n_in, n_basis)
        basis = torch.randn(n_basis, n_voxels) / math.sqrt(n_voxels)
        offset = torch.zeros(n_voxels)
        if train_basis:
            self.basis = nn.Parameter(basis)
            self.offset = nn.Parameter(offset)
        else:
            self.register_buffer("basis", basis)
            self.register_buffer("offset", offset)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map (B, n_in) to (B, n_voxels)."""
        return torch.addmm(self.offset, self.coef(h), self.basis)

    @torch.no_grad()
    def init_from_pca(self, targets, *, chunk: int = 128, n_iter: int = 4, seed: int = 0) -> None:
        """Set the basis to the leading principal components of ``targets``.

        Randomized SVD (Halko et al. 2011) over row chunks, so ``targets`` may be a
        memory map: extra memory is O(n_basis · n_voxels) beyond one chunk.
        Components are scaled by their standard deviation so the coefficients
        start near unit variance; the offset becomes the mean volume.

        Parameters
        ----------
        targets : array of shape (n_samples, n_voxels)
            Training volumes (inside the mask).
        chunk : int
            Rows processed at once.
        n_iter : int
            Power iterations.
        seed : int
            Seed of the random projection.
        """
        n, n_voxels = targets.shape
        k = self.basis.shape[0]
        if n_voxels != self.basis.shape[1]:
            raise ValueError(
                f"'targets' must have {self.basis.shape[1]} columns (voxels), got {n_voxels}."
            )
        if n < 2:
            raise ValueError(f"'targets' needs at least 2 rows for a PCA, got {n}.")
        dev = self.basis.device
        mean = torch.zeros(n_voxels, dtype=torch.float64, device=dev)
        for i in range(0, n, chunk):
            mean += _rows(targets, i, chunk, dev).sum(0)
        mean /= n
        q = min(k + 10, n, n_voxels)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        omega = torch.randn(n_voxels, q, generator=gen, dtype=torch.float64).to(dev)
        y = _mat(targets, mean, omega, chunk)  # (n, q) = A_c @ omega
        for _ in range(n_iter):
            y, _ = torch.linalg.qr(y)
            z = _tmat(targets, mean, y, chunk)  # (n_voxels, q) = A_cᵀ @ y
            z, _ = torch.linalg.qr(z)
            y = _mat(targets, mean, z, chunk)
        qmat, _ = torch.linalg.qr(y)
        b = _tmat(targets, mean, qmat, chunk).T  # (q, n_voxels) = Qᵀ A_c
        _, s, vt = torch.linalg.svd(b, full_matrices=False)
        comps = vt[:k] * (s[:k, None] / math.sqrt(n - 1))
        basis = torch.zeros_like(self.basis)
        basis[: comps.shape[0]] = comps.to(basis.dtype)
        self.basis.copy_(basis)
        self.offset.copy_(mean.to(self.offset.dtype))
        nn.init.normal_(self.coef.weight, std=0.01)
        nn.init.zeros_(self.coef.bias)


def _rows(a, i: int, chunk: int, dev) -> torch.Tensor:
    block = a[i : i + chunk]
    if isinstance(block, torch.Tensor):
        return block.to(dev, torch.float64)
    return torch.from_numpy(np.asarray(block, dtype=np.float64)).to(dev)


def _mat(a, mean, m, chunk) -> torch.Tensor:
    n = a.shape[0]
    return torch.cat([(_rows(a, i, chunk, m.device) - mean) @ m for i in range(0, n, chunk)])


def _tmat(a, mean, m, chunk) -> torch.Tensor:
    out = torch.zeros(a.shape[1], m.shape[1], dtype=m.dtype, device=m.device)
    for i in range(0, a.shape[0], chunk):
        out += (_rows(a, i, chunk, m.device) - mean).T @ m[i : i + chunk]
    return out


def make_head(
    kind: str, n_in: int, n_voxels: int, *, n_basis: int = 64, train_basis: bool = True
) -> nn.Module:
    """Build a ``"full"`` or ``"basis"`` head."""
    check_option(kind, "head", HEADS)
    if kind == "full":
        return FullHead(n_in, n_voxels)
    return BasisHead(n_in, n_voxels, n_basis=n_basis, train_basis=train_basis)
