"""Shared pieces of the model zoo: the base config, the voxel-model base class, encoders."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._checks import check_option, check_positive
from .._logging import logger
from .heads import BasisHead

NORMS = ("batch", "group", "none")


@dataclass
class ModelConfig:
    """Fields every architecture takes from the data.

    Attributes
    ----------
    n_chans : int
        EEG channels.
    n_times : int
        Samples per window (``winsize · sfreq``).
    sfreq : float
        Sampling rate of the window in Hz.
    n_voxels : int
        Voxels predicted (``mask.sum()``).
    grid_shape : list of int | None
        Shape of the volume grid, e.g. ``[53, 63, 52]``; ``None`` means a flat grid of
        ``n_voxels`` voxels.
    """

    n_chans: int
    n_times: int
    sfreq: float
    n_voxels: int
    grid_shape: list | None = None

    def __post_init__(self) -> None:
        for name in ("n_chans", "n_times", "n_voxels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"'{name}' must be an int, got {value!r}.")
            if value < 1:
                raise ValueError(f"'{name}' must be >= 1, got {name}={value}.")
            setattr(self, name, int(value))
        self.sfreq = check_positive(self.sfreq, "sfreq")
        if self.grid_shape is not None:
            shape = [int(s) for s in self.grid_shape]
            if not shape or min(shape) < 1:
                raise ValueError(f"'grid_shape' must be positive sizes, got {self.grid_shape!r}.")
            if self.n_voxels > math.prod(shape):
                raise ValueError(
                    f"'n_voxels' ({self.n_voxels}) exceeds the voxels of "
                    f"grid_shape={shape} ({math.prod(shape)})."
                )
            self.grid_shape = shape


@dataclass
class EncoderConfig(ModelConfig):
    """Fields of the shared per-channel :class:`ConvEncoder` (``conv``, ``transformer``).

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
    envelope_rate : float | None
        When set, the stem is a linear filter bank whose log band power over bins of
        ``1 / envelope_rate`` s feeds the blocks (the band-power envelope BOLD follows);
        ``None`` keeps the plain CNN stem (norm + GELU at ``frame_rate``).
    evoked : int
        With ``envelope_rate`` and no blocks after the stem: this many more learned filters
        whose *signed* mean over each bin joins the band power (the slow, phase-locked
        potentials that band power cannot see, such as the motor potential; 0: none).
    norm : str
        ``batch``, ``group`` or ``none``.
    """

    channels: list = field(default_factory=lambda: [16, 32, 32, 64])
    kernel: int = 7
    stride: int = 2
    stem_seconds: float = 0.25
    frame_rate: float = 50.0
    envelope_rate: float | None = 2.0
    evoked: int = 0
    norm: str = "batch"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, "channels", "kernel", "stride")
        check_ints(self, "evoked", minimum=0)
        check_choice(self, "norm", NORMS)
        self.stem_seconds = check_positive(self.stem_seconds, "stem_seconds")
        self.frame_rate = check_positive(self.frame_rate, "frame_rate")
        if self.envelope_rate is not None:
            self.envelope_rate = check_positive(self.envelope_rate, "envelope_rate")
            if self.envelope_rate > self.frame_rate:
                raise ValueError(
                    f"'envelope_rate' ({self.envelope_rate} Hz) must not exceed 'frame_rate' "
                    f"({self.frame_rate} Hz)."
                )

    def build_encoder(self, emb_dim: int, dropout: float) -> ConvEncoder:
        """The per-channel encoder these fields describe, with ``emb_dim`` outputs."""
        return ConvEncoder(
            self.n_times,
            self.sfreq,
            channels=self.channels,
            kernel=self.kernel,
            stride=self.stride,
            emb_dim=emb_dim,
            norm=self.norm,
            dropout=dropout,
            stem_seconds=self.stem_seconds,
            frame_rate=self.frame_rate,
            envelope_rate=self.envelope_rate,
            evoked=self.evoked,
        )


def check_choice(cfg, name: str, allowed) -> None:
    """``check_option`` for a config attribute."""
    check_option(getattr(cfg, name), name, allowed)


def check_ints(cfg, *names: str, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless every named attribute is an int ≥ ``minimum``."""
    for name in names:
        value = getattr(cfg, name)
        values = value if isinstance(value, list | tuple) else [value]
        if (
            not values
            or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in values)
            or min(values) < minimum
        ):
            raise ValueError(f"'{name}' must be int(s) >= {minimum}, got {name}={value!r}.")
        if isinstance(value, tuple):
            setattr(cfg, name, list(value))


class VoxelModel(nn.Module):
    """Base of every architecture: the mask buffer and volume helpers.

    ``mask`` (bool, ``grid_shape``) is a buffer, so it travels in the state dict. Until
    :meth:`set_mask` is called it marks the first ``n_voxels`` voxels in C order.
    Subclasses set ``name`` and implement ``forward(x) -> (B, n_voxels)``.
    """

    name = ""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        shape = config.grid_shape or [config.n_voxels]
        mask = torch.zeros(math.prod(shape), dtype=torch.bool)
        mask[: config.n_voxels] = True
        self.register_buffer("mask", mask.reshape(shape))
        self.register_buffer("vox_index", torch.arange(config.n_voxels), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._mask_changed())

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of the output grid."""
        return tuple(self.mask.shape)

    def set_mask(self, mask) -> None:
        """Use ``mask`` (bool array of shape ``grid_shape`` with ``n_voxels`` voxels)."""
        mask = mask if isinstance(mask, torch.Tensor) else torch.tensor(np.asarray(mask))
        if mask.dtype != torch.bool:
            raise TypeError(f"'mask' must be boolean, got dtype {mask.dtype}.")
        if tuple(mask.shape) != self.grid_shape:
            raise ValueError(f"'mask' must have shape {self.grid_shape}, got {tuple(mask.shape)}.")
        if int(mask.sum()) != self.config.n_voxels:
            raise ValueError(
                f"'mask' must select n_voxels={self.config.n_voxels} voxels, got {int(mask.sum())}."
            )
        self.mask.copy_(mask)
        self._mask_changed()

    def _mask_changed(self) -> None:
        self.vox_index = torch.nonzero(self.mask.reshape(-1)).squeeze(1).to(self.mask.device)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` has shape (B, n_chans, n_times)."""
        cfg = self.config
        if x.ndim != 3 or x.shape[1] != cfg.n_chans or x.shape[2] != cfg.n_times:
            raise ValueError(
                f"{type(self).__name__} expects x of shape (batch, {cfg.n_chans}, "
                f"{cfg.n_times}) (n_chans, n_times), got {tuple(x.shape)}."
            )

    def predict_volume(self, x: torch.Tensor) -> torch.Tensor:
        """Volumes of shape (B, *grid_shape), zero outside the mask."""
        y = self(x)
        out = y.new_zeros(y.shape[0], self.mask.numel())
        out[:, self.vox_index] = y
        return out.reshape(y.shape[0], *self.grid_shape)

    def init_from_pca(self, targets) -> None:
        """Initialise a ``basis`` head from training targets (n, n_voxels); no-op otherwise."""
        head = getattr(self, "head", None)
        if isinstance(head, BasisHead):
            head.init_from_pca(targets)
        else:
            logger.debug("%s has no basis head; PCA initialisation skipped.", self.name)


def pool_factor(sfreq: float, rate: float) -> int:
    """Integer average-pooling factor that brings ``sfreq`` down to about ``rate``."""
    return max(1, round(sfreq / rate))


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, GroupNorm (≤ 8 groups) or identity over ``channels``."""
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


def conv_out_len(n: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a 1-D convolution."""
    return (n + 2 * padding - kernel) // stride + 1


class BandPower(nn.Module):
    """Log mean power of each feature map over bins of ``factor`` frames.

    Maps (N, C, L) to (N, C, L // factor): ``log(mean(x²) + eps)`` over non-overlapping
    bins that end at the window's end. After a learned filter bank this is the band-power
    envelope that BOLD follows (the classic EEG-informed fMRI regressor), computed for
    every filter.
    """

    def __init__(self, factor: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.factor, self.eps = factor, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_bins = x.shape[-1] // self.factor
        power = decimate(x.float().square(), self.factor, n_bins)
        return torch.log(power + self.eps)


class BinMean(nn.Module):
    """Signed mean of each feature map over bins of ``factor`` frames.

    Maps (N, C, L) to (N, C, L // factor); the bins end at the window's end.
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return decimate(x.float(), self.factor, x.shape[-1] // self.factor)


class ConvEncoder(nn.Module):
    """1-D CNN applied to one channel at a time (weights shared across channels).

    A rate-aware stem (kernel ``stem_seconds · sfreq``, stride ``sfreq / frame_rate``)
    makes the frame rate independent of ``sfreq``. With ``envelope_rate`` set, the stem
    is a linear filter bank whose log band power is taken over bins of
    ``1 / envelope_rate`` s (:class:`BandPower`); otherwise it is followed by a norm and
    GELU. Strided blocks follow; the result is flattened and projected to ``emb_dim``.

    Parameters
    ----------
    n_times, sfreq : int, float
        Window length in samples and its rate (Hz).
    channels : list of int
        Feature maps of the stem and each block.
    kernel, stride : int
        Kernel and stride of the blocks after the stem.
    emb_dim : int
        Output size per channel.
    """

    def __init__(
        self,
        n_times: int,
        sfreq: float,
        *,
        channels: list,
        kernel: int,
        stride: int,
        emb_dim: int,
        norm: str = "batch",
        dropout: float = 0.0,
        stem_seconds: float = 0.1,
        frame_rate: float = 50.0,
        envelope_rate: float | None = None,
        evoked: int = 0,
    ) -> None:
        super().__init__()
        k0 = max(1, round(stem_seconds * sfreq))
        s0 = pool_factor(sfreq, frame_rate)
        length = conv_out_len(n_times, k0, s0, 0)
        layers: list[nn.Module] = [nn.Conv1d(1, channels[0], k0, stride=s0, bias=False)]
        if envelope_rate is not None:
            factor = pool_factor(sfreq / s0, envelope_rate)
            length //= factor
            layers += [BandPower(factor), make_norm(norm, channels[0])]
        else:
            layers += [make_norm(norm, channels[0]), nn.GELU()]
        for c_in, c_out in itertools.pairwise(channels):
            layers += [
                nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                make_norm(norm, c_out),
                nn.GELU(),
                nn.Dropout(dropout),
            ]
            length = conv_out_len(length, kernel, stride, kernel // 2)
        if length < 1:
            raise ValueError(
                f"the conv encoder's strides leave no samples of {n_times=} at {sfreq=} Hz; "
                "use a longer window or fewer/smaller strides."
            )
        self.convs = nn.Sequential(*layers)
        self.n_frames = length
        #: seconds per envelope bin when ``proj`` maps the band-power course directly (a
        #: learned HRF per filter; :meth:`stretch_hrf`), else ``None``
        self.bin_seconds = (
            s0 * factor / sfreq if envelope_rate is not None and len(channels) == 1 else None
        )
        self.evoked = None
        if evoked:
            if self.bin_seconds is None:
                raise ValueError(
                    f"'evoked' ({evoked}) needs an encoder whose projection reads the bins "
                    "(envelope_rate set, no blocks after the stem)."
                )
            self.evoked = nn.Sequential(  # signed bin means of their own filters
                nn.Conv1d(1, evoked, k0, stride=s0, bias=False),
                BinMean(factor),
                make_norm(norm, evoked),
            )
        self.eval_chunk = 64
        self.proj = nn.Linear((channels[-1] + evoked) * length, emb_dim)

    def stretch_hrf(self, factor: float) -> None:
        """Stretch the learned HRF in time, in place: ``w'(lag) = w(lag / factor) / factor``.

        ``proj`` weighs each filter's band-power course over the window's bins; read as a
        function of the lag before the window's end, it is the response BOLD follows. A
        person whose haemodynamic response peaks later than the training subjects' (HRF
        peaks vary from about 4 to 8 s) is fitted by ``factor > 1``. The weights are
        interpolated linearly between bin centres (zero past the window) and divided by
        ``factor``, which keeps each response's area.
        """
        if not factor > 0:
            raise ValueError(f"the HRF stretch must be positive, got {factor!r}.")
        w = self.proj.weight
        with torch.no_grad():
            w.copy_(self.warped_weight(factor=factor))

    def warped_weight(self, *, factor: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        """``proj``'s weights with the learned HRF warped in time; ``proj`` is unchanged.

        ``w'(lag) = w((lag - shift) / factor) / factor``: ``shift`` (s) delays the response
        (``> 0``: BOLD follows the EEG later); see :meth:`stretch_hrf` for ``factor``.
        """
        if self.bin_seconds is None:
            raise ValueError(
                "warping the HRF needs an encoder whose projection reads the band-power "
                "envelope (envelope_rate set, no blocks after the stem)."
            )
        n = self.n_frames
        lag = (np.arange(n)[::-1] + 0.5) * self.bin_seconds  # bin j's centre before the end
        order = np.argsort(lag)
        source = (lag - shift) / factor
        warp = np.stack(  # warp[j', j]: weight of old bin j in new bin j'
            [np.interp(source, lag[order], np.eye(n)[j][order], 0.0, 0.0) for j in range(n)],
            axis=1,
        )
        w = self.proj.weight.detach()
        m = torch.as_tensor(warp / factor, dtype=w.dtype, device=w.device)
        return (w.reshape(w.shape[0], -1, n) @ m.T).reshape(w.shape)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What ``proj`` reads: (N, n_times) single-channel series to (N, n_features)."""
        if self.training or x.shape[0] <= self.eval_chunk:
            x = x.unsqueeze(1)
            feats = self.convs(x)
            if self.evoked is not None:
                feats = torch.cat([feats, self.evoked(x)], dim=1)
            return feats.flatten(1)
        # evaluation: chunks keep the stem's activations in cache (3-4× the throughput of
        # one large batch on CPU); training keeps one chunk so BatchNorm sees the batch
        return torch.cat([self.features(part) for part in x.split(self.eval_chunk)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, n_times) single-channel series to (N, emb_dim)."""
        return self.proj(self.features(x))


class FCEncoder(nn.Module):
    """Average-pool a single channel to ``rate`` Hz, then Linear → GELU.

    Maps (N, n_times) to (N, emb_dim).
    """

    def __init__(self, n_times: int, sfreq: float, *, rate: float, emb_dim: int) -> None:
        super().__init__()
        self.factor = pool_factor(sfreq, rate)
        self.n_dec = n_times // self.factor
        if self.n_dec < 1:
            raise ValueError(f"{n_times=} is shorter than one decimated sample at {rate=} Hz.")
        self.linear = nn.Linear(self.n_dec, emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, n_times) to (N, emb_dim)."""
        return nn.functional.gelu(self.linear(decimate(x, self.factor, self.n_dec)))


def decimate(x: torch.Tensor, factor: int, n_dec: int) -> torch.Tensor:
    """Average-pool the last axis by ``factor`` keeping the last ``n_dec`` bins (window end)."""
    if factor == 1:
        return x[..., x.shape[-1] - n_dec :]
    tail = x[..., x.shape[-1] - n_dec * factor :]
    return tail.reshape(*x.shape[:-1], n_dec, factor).mean(-1)


def mlp(n_in: int, hidden: int, dropout: float) -> nn.Sequential:
    """Linear → GELU → Dropout."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout))
