"""``conv``: the Siamese per-channel 1-D CNN (the default model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._modules import EncoderConfig, VoxelModel, check_choice, check_ints, mlp
from .heads import HEADS, make_head


@dataclass
class ConvConfig(EncoderConfig):
    """Configuration of :class:`ConvNet`.

    Data fields are in :class:`ModelConfig`, the per-channel encoder's in
    :class:`EncoderConfig`.

    The defaults are a small network: a 16-filter bank, the log band power of each
    filter at 2 Hz, one linear map of its 30 s course per channel (a learned HRF), a
    64-unit layer across channels and the coefficients of a fixed 32-component PCA basis
    of the training volumes. Larger ones (more ``channels`` blocks, a trained basis) fit
    the training subjects better and new subjects worse on the simulated oddball data.

    Attributes
    ----------
    channels : list of int
        Feature maps of the stem (filter bank) and of each strided block after it.
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

    channels: list = field(default_factory=lambda: [16])
    emb_dim: int = 8
    hidden: int = 64
    dropout: float = 0.3
    head: str = "basis"
    n_basis: int = 32
    train_basis: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "emb_dim", "hidden", "n_basis")
        check_choice(self, "head", HEADS)


class ConvNet(VoxelModel):
    """Shared per-channel CNN → channel embeddings concatenated → hidden → voxels.

    Input (B, n_chans, n_times), output (B, n_voxels).
    """

    name = "conv"

    def __init__(self, config: ConvConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = c.build_encoder(c.emb_dim, c.dropout)
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

    def hrf_variants(self, x: torch.Tensor, weights: list) -> list:
        """The outputs (B, n_voxels) with each of ``weights`` as the encoder's projection.

        The filter bank runs once for all of them. With weights from
        :meth:`ConvEncoder.warped_weight` they are this model with its learned HRF shifted
        or stretched (:class:`~rt_eeg2fmri.models.Calibrated`'s delay readout).
        """
        self.check_input(x)
        b, c, t = x.shape
        feats = self.encoder.features(x.reshape(b * c, t))
        bias = self.encoder.proj.bias
        return [
            self.head(self.hidden(torch.nn.functional.linear(feats, w, bias).reshape(b, -1)))
            for w in weights
        ]
