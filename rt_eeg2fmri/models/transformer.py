"""``transformer``: EEG channels → volume slices, sequence to sequence.

The source sequence is the channels: each channel embedded by the shared per-channel
CNN plus an electrode-position encoding. The target sequence is the volume's axial
slices (last grid axis): slice ``z`` is produced from a low-dimensional code by a
per-slice spatial basis, and the decoder that emits the code attends causally to the
slices before it and across to the channels.

Training with ``y`` uses teacher forcing (the true previous slices, shifted right).
In evaluation mode, or whenever ``y`` is ``None``, the decoder runs autoregressively on
its own outputs; ``y`` is then ignored, so evaluation never sees the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ._modules import EncoderConfig, VoxelModel, check_ints

POS_ENCODINGS = ("learned", "sinusoidal", "electrode", "none")


@dataclass
class TransformerConfig(EncoderConfig):
    """Configuration of :class:`SliceTransformer`.

    Data fields are in :class:`ModelConfig`, the per-channel encoder's in
    :class:`EncoderConfig` (its output is ``d_model`` per channel). ``grid_shape`` must
    be 3-D; slices run along its last axis.

    Attributes
    ----------
    d_model, n_heads, ff_dim : int
        Attention width, heads and feed-forward width.
    n_enc_layers, n_dec_layers : int
        Self-attention layers over channels; decoder layers over slices.
    dropout : float
        Dropout in the encoder and the attention layers.
    pos_encoding : str
        Channel position encoding: ``learned``, ``sinusoidal`` (by channel index),
        ``electrode`` (a projection of the channel's 3-D position in the standard_1020
        montage, MNE's ``colin27_1020``, looked up by name in ``ch_names``; learned for
        unknown labels), ``none``, or several joined with ``+`` (summed), e.g.
        ``"electrode+sinusoidal"``.
    ch_names : list of str | None
        Channel labels for ``electrode`` encoding.
    slice_code : int
        Size of the code each decoder step emits; a per-slice basis (slice_code × slice
        voxels) turns it into the slice.
    """

    d_model: int = 128
    n_heads: int = 4
    ff_dim: int = 256
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    dropout: float = 0.1
    pos_encoding: str = "learned"
    ch_names: list | None = None
    slice_code: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grid_shape is None or len(self.grid_shape) != 3:
            raise ValueError(
                f"the transformer needs a 3-D 'grid_shape' (slices along the last axis), "
                f"got grid_shape={self.grid_shape!r}."
            )
        check_ints(self, "d_model", "n_heads", "ff_dim", "n_enc_layers", "n_dec_layers")
        check_ints(self, "slice_code")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"'d_model' ({self.d_model}) must divide by 'n_heads' ({self.n_heads})."
            )
        for part in self.pos_encoding.split("+"):
            if part not in POS_ENCODINGS:
                raise ValueError(
                    f"'pos_encoding' parts must be among {POS_ENCODINGS}, got {self.pos_encoding!r}."
                )
        if self.ch_names is not None:
            self.ch_names = [str(n) for n in self.ch_names]
            if len(self.ch_names) != self.n_chans:
                raise ValueError(
                    f"'ch_names' has {len(self.ch_names)} labels but n_chans={self.n_chans}."
                )


@lru_cache(maxsize=1)
def _standard_1020() -> dict[str, np.ndarray]:
    from mne.channels import get_builtin_montages, make_standard_montage

    # MNE ≥ 1.13 renamed standard_1020 to colin27_1020 (same positions)
    kind = "colin27_1020" if "colin27_1020" in get_builtin_montages() else "standard_1020"
    pos = make_standard_montage(kind).get_positions()["ch_pos"]
    return {name.lower(): np.asarray(xyz) for name, xyz in pos.items()}


def electrode_positions(ch_names) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, 3) in head radii (≈ 0.095 m) from standard_1020, and a found mask (n,)."""
    table = _standard_1020()
    pos = np.zeros((len(ch_names), 3), np.float32)
    found = np.zeros(len(ch_names), bool)
    for i, name in enumerate(ch_names):
        xyz = table.get(name.strip().lower())
        if xyz is not None:
            pos[i], found[i] = xyz / 0.095, True
    return pos, found


def sinusoidal(n: int, d: int) -> torch.Tensor:
    """The sinusoidal position table (n, d) of Vaswani et al. (2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(n, d)
    out[:, 0::2] = torch.sin(pos * div)
    out[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return out


class ChannelPositions(nn.Module):
    """Sum of the configured channel position encodings, shape (n_chans, d_model)."""

    def __init__(self, kinds: str, n_chans: int, d_model: int, ch_names=None) -> None:
        super().__init__()
        self.kinds = [k for k in kinds.split("+") if k != "none"]
        if "learned" in self.kinds:
            self.learned = nn.Parameter(torch.randn(n_chans, d_model) * 0.02)
        if "sinusoidal" in self.kinds:
            self.register_buffer("table", sinusoidal(n_chans, d_model))
        if "electrode" in self.kinds:
            pos, found = electrode_positions(ch_names or [""] * n_chans)
            self.register_buffer("electrode_pos", torch.from_numpy(pos))
            self.register_buffer("electrode_found", torch.from_numpy(found))
            self.electrode_proj = nn.Linear(3, d_model)
            self.fallback = nn.Parameter(torch.randn(n_chans, d_model) * 0.02)

    def forward(self) -> torch.Tensor | float:
        """The encoding to add to the channel embeddings (or 0.0)."""
        out: torch.Tensor | float = 0.0
        if "learned" in self.kinds:
            out = out + self.learned
        if "sinusoidal" in self.kinds:
            out = out + self.table
        if "electrode" in self.kinds:
            known = self.electrode_found[:, None]
            out = out + torch.where(known, self.electrode_proj(self.electrode_pos), self.fallback)
        return out


class SliceTransformer(VoxelModel):
    """Channels (source) → axial slices (target) with an autoregressive decoder.

    ``forward(x, y=None)``: x (B, n_chans, n_times), y (B, n_voxels) → (B, n_voxels).
    """

    name = "transformer"
    teacher_forcing = True  # the trainer passes y in training mode

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        c = config
        nx, ny, nz = c.grid_shape
        self.slice_size, self.n_slices = nx * ny, nz
        d = c.d_model
        self.encoder = c.build_encoder(d, c.dropout)
        self.positions = ChannelPositions(c.pos_encoding, c.n_chans, d, c.ch_names)
        enc_layer = nn.TransformerEncoderLayer(
            d, c.n_heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.channel_attn = nn.TransformerEncoder(
            enc_layer, c.n_enc_layers, enable_nested_tensor=False
        )
        dec_layer = nn.TransformerDecoderLayer(
            d, c.n_heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(dec_layer, c.n_dec_layers)
        self.start = nn.Parameter(torch.randn(d) * 0.02)
        self.slice_pos = nn.Parameter(torch.randn(nz, d) * 0.02)
        self.slice_in = nn.Linear(self.slice_size, d)
        self.to_code = nn.Linear(d, c.slice_code)
        self.slice_basis = nn.Parameter(
            torch.randn(nz, c.slice_code, self.slice_size) / math.sqrt(c.slice_code * 10)
        )
        self.slice_bias = nn.Parameter(torch.zeros(nz, self.slice_size))
        self.register_buffer(
            "causal", nn.Transformer.generate_square_subsequent_mask(nz), persistent=False
        )

    def slice_mask(self) -> torch.Tensor:
        """In-mask voxels of each slice, float (n_slices, slice_size)."""
        return self.mask.reshape(self.slice_size, self.n_slices).T.float()

    def to_slices(self, y: torch.Tensor) -> torch.Tensor:
        """Targets (B, n_voxels) → slices (B, n_slices, slice_size), zero outside the mask."""
        vol = y.new_zeros(y.shape[0], self.mask.numel())
        vol[:, self.vox_index] = y
        return vol.reshape(y.shape[0], self.slice_size, self.n_slices).transpose(1, 2)

    def from_slices(self, slices: torch.Tensor) -> torch.Tensor:
        """Slices (B, n_slices, slice_size) → targets (B, n_voxels)."""
        vol = slices.transpose(1, 2).reshape(slices.shape[0], -1)
        return vol[:, self.vox_index]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Channel memory (B, n_chans, d_model)."""
        b, c, t = x.shape
        emb = self.encoder(x.reshape(b * c, t)).reshape(b, c, -1)
        return self.channel_attn(emb + self.positions())

    def _emit(self, h: torch.Tensor, z: slice | int) -> torch.Tensor:
        # decoder states (B, L, d) for slices z → slices (B, L, slice_size) inside the mask
        code = self.to_code(h)
        out = torch.einsum("blk,lks->bls", code, self.slice_basis[z]) + self.slice_bias[z]
        return out * self.slice_mask()[z]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predict (B, n_voxels); ``y`` is used for teacher forcing in training mode only."""
        self.check_input(x)
        memory = self.encode(x)
        b, nz = x.shape[0], self.n_slices
        start = self.start.expand(b, 1, -1)
        if self.training and y is not None:
            if tuple(y.shape) != (b, self.config.n_voxels):
                raise ValueError(
                    f"'y' must have shape ({b}, {self.config.n_voxels}), got {tuple(y.shape)}."
                )
            prev = self.slice_in(self.to_slices(y.to(x.dtype))[:, :-1])
            tokens = torch.cat([start, prev], 1) + self.slice_pos
            h = self.decoder(tokens, memory, tgt_mask=self.causal, tgt_is_causal=True)
            return self.from_slices(self._emit(h, slice(0, nz)))
        return self.from_slices(self.decode(memory))

    def decode(self, memory: torch.Tensor) -> torch.Tensor:
        """Autoregressive decoding from the model's own slices, with a key/value cache.

        Each decoder layer keeps the normalised inputs of the slices decoded so far, so
        step ``z`` runs the layers on one new token (the causal mask makes earlier
        tokens' states final): the same result as re-running the decoder on the whole
        prefix, at ``1 / n_slices`` of its cost.

        Returns
        -------
        slices : tensor of shape (B, n_slices, slice_size)
        """
        nz, layers = self.n_slices, self.decoder.layers
        token = self.start.expand(memory.shape[0], 1, -1) + self.slice_pos[:1]
        cache: list[torch.Tensor | None] = [None] * len(layers)
        slices = []
        for z in range(nz):
            h = token
            for i, layer in enumerate(layers):  # TransformerDecoderLayer, norm_first
                q = layer.norm1(h)
                cache[i] = q if cache[i] is None else torch.cat([cache[i], q], 1)
                sa = layer.self_attn(q, cache[i], cache[i], need_weights=False)[0]
                h = h + layer.dropout1(sa)
                ca = layer.multihead_attn(layer.norm2(h), memory, memory, need_weights=False)[0]
                h = h + layer.dropout2(ca)
                h = h + layer._ff_block(layer.norm3(h))
            if self.decoder.norm is not None:
                h = self.decoder.norm(h)
            s = self._emit(h, slice(z, z + 1))
            slices.append(s)
            if z + 1 < nz:
                token = self.slice_in(s) + self.slice_pos[z + 1 : z + 2]
        return torch.cat(slices, 1)
