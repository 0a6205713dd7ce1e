"""``conv``: the Siamese per-channel 1-D CNN (the default model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._modules import NORMS, ConvEncoder, ModelConfig, VoxelModel, check_choice, check_ints, mlp
from .heads import HEADS, make_head


@dataclass
class ConvConfig(ModelConfig):
    """Configuration of :class:`ConvNet` (data fields in :class:`ModelConfig`).

    Attributes
    ----------
    channels : list of int
        Feature maps of the stem and of each strided block.
    kernel, stride : int
        Kernel size and stride of the blocks after the stem.
    stem_seconds : float
        Stem kernel length in seconds (a learned filter bank).
    frame_rate : float
        Rate after the stem's stride in Hz, whatever ``sfreq`` is.
    emb_dim : int
        Embedding size per channel.
    hidden : int
        Size of the layer after concatenating the channel embeddings.
    norm : str
        ``batch``, ``group`` or ``none``.
    dropout : float
        Dropout in the encoder and after the hidden layer.
    head : str
        ``basis`` (low-rank spatial basis; keeps the model small) or ``full``.
    n_basis : int
        Components of the basis head.
    train_basis : bool
        Whether the basis is trained (after its PCA initialisation).
    """

    channels: list = field(default_factory=lambda: [16, 32, 32, 64])
    kernel: int = 9
    stride: int = 4
    stem_seconds: float = 0.1
    frame_rate: float = 50.0
    emb_dim: int = 32
    hidden: int = 256
    norm: str = "batch"
    dropout: float = 0.1
    head: str = "basis"
    n_basis: int = 64
    train_basis: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "channels", "kernel", "stride", "emb_dim", "hidden", "n_basis")
        check_choice(self, "norm", NORMS)
        check_choice(self, "head", HEADS)


class ConvNet(VoxelModel):
    """Shared per-channel CNN → channel embeddings concatenated → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_outputs).
    """

    name = "conv"

    def __init__(self, config: ConvConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = ConvEncoder(
            c.n_times,
            c.sfreq,
            channels=c.channels,
            kernel=c.kernel,
            stride=c.stride,
            emb_dim=c.emb_dim,
            norm=c.norm,
            dropout=c.dropout,
            stem_seconds=c.stem_seconds,
            frame_rate=c.frame_rate,
        )
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
