"""``conv``: the Siamese per-channel 1-D CNN (the default model)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._modules import EncoderConfig, VoxelModel, check_choice, check_ints, mlp
from .heads import HEADS, make_head


@dataclass
class ConvConfig(EncoderConfig):
    """Configuration of :class:`ConvNet`.

    Data fields are in :class:`ModelConfig`, the per-channel encoder's in
    :class:`EncoderConfig`.

    Attributes
    ----------
    emb_dim : int
        Embedding size per channel.
    hidden : int
        Size of the layer after concatenating the channel embeddings.
    dropout : float
        Dropout in the encoder and after the hidden layer.
    head : str
        ``basis`` (low-rank spatial basis; keeps the model small) or ``full``.
    n_basis : int
        Components of the basis head.
    train_basis : bool
        Whether the basis is trained (after its PCA initialisation).
    """

    emb_dim: int = 32
    hidden: int = 256
    dropout: float = 0.1
    head: str = "basis"
    n_basis: int = 64
    train_basis: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "emb_dim", "hidden", "n_basis")
        check_choice(self, "head", HEADS)


class ConvNet(VoxelModel):
    """Shared per-channel CNN → channel embeddings concatenated → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_outputs).
    """

    name = "conv"

    def __init__(self, config: ConvConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = c.build_encoder(c.emb_dim, c.dropout)
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
