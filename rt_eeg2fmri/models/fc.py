"""``fc``: the paper's fully-connected network on the flattened, decimated window."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive
from ._modules import ModelConfig, VoxelModel, check_choice, check_ints, decimate, mlp, pool_factor
from .heads import HEADS, make_head


@dataclass
class FCConfig(ModelConfig):
    """Configuration of :class:`FCNet` (data fields in :class:`ModelConfig`).

    Attributes
    ----------
    rate : float
        The window is average-pooled in time to about this rate (Hz) before flattening.
    emb_dim : int
        The embedding of the whole flattened window.
    hidden : int
        Size of the hidden layer.
    dropout : float
        Dropout after the embedding and hidden layers.
    head : str
        ``basis`` (default: a fixed PCA basis keeps the checkpoint near 10 MB) or
        ``full`` (the paper's output layer: ``hidden × n_voxels`` weights, ~70 MB).
    n_basis : int
        Components of the basis head.
    train_basis : bool
        Whether the basis is trained after its PCA initialisation.
    """

    rate: float = 10.0
    emb_dim: int = 256
    hidden: int = 256
    dropout: float = 0.3
    head: str = "basis"
    n_basis: int = 32
    train_basis: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rate = check_positive(self.rate, "rate")
        check_ints(self, "emb_dim", "hidden", "n_basis")
        check_choice(self, "head", HEADS)


class FCNet(VoxelModel):
    """Flatten (n_chans × decimated time) → embedding → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_voxels).
    """

    name = "fc"

    def __init__(self, config: FCConfig) -> None:
        super().__init__(config)
        c = config
        self.factor = pool_factor(c.sfreq, c.rate)
        self.n_dec = c.n_times // self.factor
        if self.n_dec < 1:
            raise ValueError(f"n_times={c.n_times} is shorter than one sample at rate={c.rate} Hz.")
        self.embed = mlp(c.n_chans * self.n_dec, c.emb_dim, c.dropout)
        self.hidden = mlp(c.emb_dim, c.hidden, c.dropout)
        self.head = make_head(
            c.head, c.hidden, c.n_voxels, n_basis=c.n_basis, train_basis=c.train_basis
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict (B, n_voxels) from windows (B, n_chans, n_times)."""
        self.check_input(x)
        z = decimate(x, self.factor, self.n_dec).flatten(1)
        return self.head(self.hidden(self.embed(z)))
