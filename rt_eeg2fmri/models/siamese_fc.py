"""``siamese_fc``: one fully-connected encoder shared by all channels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive
from ._modules import FCEncoder, ModelConfig, VoxelModel, check_choice, check_ints, mlp
from .heads import HEADS, make_head


@dataclass
class SiameseFCConfig(ModelConfig):
    """Configuration of :class:`SiameseFCNet` (data fields in :class:`ModelConfig`).

    Attributes
    ----------
    rate : float
        Each channel is average-pooled in time to about this rate (Hz).
    emb_dim : int
        Embedding size per channel (the shared encoder's output).
    hidden : int
        Size of the layer after concatenating the channel embeddings.
    dropout : float
        Dropout after the hidden layer.
    head : str
        ``full`` or ``basis``.
    n_basis : int
        Components of the basis head.
    train_basis : bool
        Whether the basis is trained.
    """

    rate: float = 10.0
    emb_dim: int = 32
    hidden: int = 256
    dropout: float = 0.1
    head: str = "full"
    n_basis: int = 64
    train_basis: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rate = check_positive(self.rate, "rate")
        check_ints(self, "emb_dim", "hidden", "n_basis")
        check_choice(self, "head", HEADS)


class SiameseFCNet(VoxelModel):
    """Shared per-channel Linear encoder → concatenated embeddings → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_outputs).
    """

    name = "siamese_fc"

    def __init__(self, config: SiameseFCConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = FCEncoder(c.n_times, c.sfreq, rate=c.rate, emb_dim=c.emb_dim)
        self.hidden = mlp(c.n_chans * c.emb_dim, c.hidden, c.dropout)
        self.head = make_head(
            c.head, c.hidden, c.n_outputs, n_basis=c.n_basis, train_basis=c.train_basis
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict (B, n_outputs) from windows (B, n_chans, n_times)."""
        self.check_input(x)
        b, c, t = x.shape
        emb = self.encoder(x.reshape(b * c, t)).reshape(b, -1)
        return self.head(self.hidden(emb))
