"""``siamese_fc``: one fully-connected encoder shared by all channels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._modules import FCEncoder, VoxelModel, mlp
from .fc import FCConfig
from .heads import make_head


@dataclass
class SiameseFCConfig(FCConfig):
    """Configuration of :class:`SiameseFCNet`: the fields of :class:`FCConfig`.

    ``emb_dim`` is the embedding size *per channel* (the shared encoder's output; default
    32), and the embeddings of all channels are concatenated before ``hidden``.
    """

    emb_dim: int = 32


class SiameseFCNet(VoxelModel):
    """Shared per-channel Linear encoder → concatenated embeddings → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_voxels).
    """

    name = "siamese_fc"

    def __init__(self, config: SiameseFCConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = FCEncoder(c.n_times, c.sfreq, rate=c.rate, emb_dim=c.emb_dim)
        self.hidden = mlp(c.n_chans * c.emb_dim, c.hidden, c.dropout)
        self.head = make_head(
            c.head, c.hidden, c.n_voxels, n_basis=c.n_basis, train_basis=c.train_basis
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict (B, n_voxels) from windows (B, n_chans, n_times)."""
        self.check_input(x)
        b, c, t = x.shape
        emb = self.encoder(x.reshape(b * c, t)).reshape(b, -1)
        return self.head(self.hidden(emb))
