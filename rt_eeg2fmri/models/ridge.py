"""``ridge``: closed-form regression from HRF-convolved EEG band power to voxels.

The classic EEG-informed fMRI model and the strongest simple peer of the networks.
Features, per channel and band: log band power in overlapping Hann frames (``frame_s``
long, half a frame apart) across the window, convolved with SPM's canonical HRF (and,
with ``hrf_basis="derivative"``, its temporal derivative, which absorbs a subject's or a
region's haemodynamic delay) evaluated at each frame's centre, and read at the window's
end (``n_lags`` > 1 adds the convolved value 1, 2, … TRs earlier). Everything is
computed in torch, so the model runs on CPU or GPU and checkpoints like the others
(weights are buffers).

Checkpoints saved before frames existed (``frame_s`` absent) keep their features: one
frame per TR, no overlap, the HRF sampled at TR steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .._checks import check_option, check_positive
from .._logging import logger
from ..hrf import spm_hrf
from ._modules import ModelConfig, VoxelModel, check_ints

HRF_BASES = ("canonical", "derivative")
DEFAULT_BANDS = [[1.0, 4.0], [4.0, 8.0], [8.0, 13.0], [13.0, 30.0], [30.0, 45.0]]


@dataclass
class RidgeConfig(ModelConfig):
    """Configuration of :class:`RidgeModel` (data fields in :class:`ModelConfig`).

    Attributes
    ----------
    t_r : float
        Bin length in seconds (one repetition time).
    bands : list of [low, high]
        Frequency bands in Hz (delta, theta, alpha, beta, gamma); the upper edges are
        capped at Nyquist and bands starting at or above Nyquist are dropped.
    n_lags : int
        HRF-convolved values read at the window's end and ``1 … n_lags-1`` bins earlier.
    alphas : list of float
        Ridge penalties tried, relative to the number of training windows (the penalty
        is ``alpha · n_train`` on standardised features); one is chosen on validation.
    alpha_per_voxel : bool
        Choose the penalty per voxel instead of one for all.
    eps : float
        Added to band power before the log.
    frame_s : float | None
        Length of the power frames (s; half a frame apart). ``None``: the first
        release's features, one frame per TR without overlap.
    hrf_basis : ``"canonical"`` | ``"derivative"``
        The canonical HRF alone, or with its temporal derivative (twice the features).
    """

    t_r: float = 2.0
    bands: list = field(default_factory=lambda: [list(b) for b in DEFAULT_BANDS])
    n_lags: int = 1
    alphas: list = field(default_factory=lambda: [float(a) for a in np.logspace(-3, 4, 15)])
    alpha_per_voxel: bool = False
    eps: float = 1e-10
    frame_s: float | None = 1.0
    hrf_basis: str = "canonical"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.t_r = check_positive(self.t_r, "t_r")
        self.eps = check_positive(self.eps, "eps")
        if self.frame_s is not None:
            self.frame_s = check_positive(self.frame_s, "frame_s")
        self.hrf_basis = check_option(self.hrf_basis, "hrf_basis", HRF_BASES)
        check_ints(self, "n_lags")
        try:
            self.bands = [[float(lo), float(hi)] for lo, hi in self.bands]
        except (TypeError, ValueError):
            raise ValueError(
                f"'bands' must be [low, high] pairs in Hz, got {self.bands!r}."
            ) from None
        if any(not 0 <= lo < hi for lo, hi in self.bands):
            raise ValueError(f"'bands' must satisfy 0 <= low < high, got {self.bands!r}.")
        self.alphas = [check_positive(a, "alphas") for a in self.alphas]
        if not self.alphas:
            raise ValueError("'alphas' must hold at least one penalty, got [].")


class RidgeModel(VoxelModel):
    """HRF-convolved band power → standardised features → linear map to voxels.

    Fit with :meth:`fit_streaming`; input (B, n_chans, n_times), output (B, n_voxels).
    """

    name = "ridge"

    def __init__(self, config: RidgeConfig) -> None:
        super().__init__(config)
        c = config
        bin_len = round(c.t_r * c.sfreq)
        if c.n_times < bin_len:
            raise ValueError(
                f"the window (n_times={c.n_times}) is shorter than one t_r={c.t_r} s bin "
                f"({bin_len} samples at sfreq={c.sfreq} Hz)."
            )
        if c.frame_s is None:  # the first release: TR frames, no overlap
            self.frame_len, self.hop = bin_len, bin_len
        else:
            self.frame_len = max(2, round(c.frame_s * c.sfreq))
            self.hop = max(1, self.frame_len // 2)
        if self.frame_len > c.n_times:
            raise ValueError(
                f"'frame_s' ({c.frame_s} s = {self.frame_len} samples) is longer than the "
                f"window ({c.n_times} samples)."
            )
        self.n_frames = 1 + (c.n_times - self.frame_len) // self.hop
        if c.n_lags > c.n_times // bin_len:
            raise ValueError(
                f"'n_lags' ({c.n_lags}) exceeds the {c.n_times // bin_len} TRs per window."
            )
        freqs = np.fft.rfftfreq(self.frame_len, 1.0 / c.sfreq)
        nyq = c.sfreq / 2
        self.bands = [[lo, min(hi, nyq)] for lo, hi in c.bands if lo < nyq]
        if not self.bands:
            raise ValueError(f"no band of {c.bands} lies below Nyquist ({nyq} Hz).")
        band_matrix = np.zeros((freqs.size, len(self.bands)), np.float32)
        for j, (lo, hi) in enumerate(self.bands):
            sel = (freqs >= lo) & (freqs < hi) if hi < nyq else (freqs >= lo) & (freqs <= hi)
            if not sel.any():
                raise ValueError(
                    f"band {lo}-{hi} Hz holds no frequency bin at a resolution of "
                    f"{freqs[1]:.3g} Hz ({self.frame_len / c.sfreq:g} s frames); widen it "
                    "or lengthen 'frame_s'."
                )
            band_matrix[sel, j] = 1.0 / sel.sum()
        kernel = self._kernel()
        self.n_features = c.n_chans * len(self.bands) * kernel.shape[0]
        p, v = self.n_features, c.n_voxels
        self.register_buffer("band_matrix", torch.from_numpy(band_matrix), persistent=False)
        self.register_buffer("hrf_kernel", torch.from_numpy(kernel), persistent=False)
        self.register_buffer("taper", torch.hann_window(self.frame_len), persistent=False)
        self.register_buffer("feat_mean", torch.zeros(p))
        self.register_buffer("feat_std", torch.ones(p))
        self.register_buffer("weight", torch.zeros(p, v))
        self.register_buffer("bias", torch.zeros(v))
        self.register_buffer("alpha", torch.zeros(v if c.alpha_per_voxel else 1))
        self.register_buffer("fitted", torch.tensor(False))

    def _kernel(self) -> np.ndarray:
        """(n_basis · n_lags, n_frames): the weight of each frame's log power per regressor."""
        c = self.config
        if c.frame_s is None:  # the first release's kernel: the HRF at TR steps, by bin
            hrf = spm_hrf(c.t_r)
            kernel = np.zeros((c.n_lags, self.n_frames), np.float32)
            for lag in range(c.n_lags):
                for j in range(self.n_frames - lag):
                    k = self.n_frames - 1 - lag - j
                    if k < hrf.size:
                        kernel[lag, j] = hrf[k]
            return kernel
        dt = 0.01
        fine = spm_hrf(dt) / dt  # density: ∫ h dt = 1
        bases = [fine] if c.hrf_basis == "canonical" else [fine, np.gradient(fine, dt)]
        # each frame's centre, in seconds before the window's end
        ago = (self.n_frames - 1 - np.arange(self.n_frames)) * self.hop + self.frame_len / 2
        ago = ago / c.sfreq
        step = self.hop / c.sfreq  # a Riemann sum over the frames
        rows = []
        for basis in bases:
            t = np.arange(basis.size) * dt
            for lag in range(c.n_lags):
                rows.append(np.interp(ago - lag * c.t_r, t, basis, left=0.0, right=0.0) * step)
        return np.asarray(rows, np.float32)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, n_chans · n_bands · n_regressors), ordered channel, band, regressor.

        The regressors are the HRF basis functions, each at lags ``0 … n_lags-1``.
        """
        self.check_input(x)
        b, _, t = x.shape
        span = (self.n_frames - 1) * self.hop + self.frame_len
        frames = x[..., t - span :].unfold(-1, self.frame_len, self.hop)  # (B, C, F, L)
        frames = (frames - frames.mean(-1, keepdim=True)) * self.taper
        power = torch.fft.rfft(frames, dim=-1).abs().square() @ self.band_matrix
        logp = torch.log(power + self.config.eps)  # (B, C, n_frames, n_bands)
        return torch.einsum("bcjf,lj->bcfl", logp, self.hrf_kernel).reshape(b, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict (B, n_voxels) from windows (B, n_chans, n_times)."""
        if not bool(self.fitted):
            raise RuntimeError("the ridge model is not fitted; call fit_streaming() first.")
        z = (self.features(x) - self.feat_mean) / self.feat_std
        return torch.addmm(self.bias, z, self.weight)

    @torch.no_grad()
    def fit_streaming(self, batches, *, val_batches=None) -> dict:
        """Fit from ``(x, y)`` batches, accumulating XᵀX and XᵀY; pick alpha on validation.

        Memory is independent of the number of windows: O(n_features · n_voxels) in
        float64 (a few copies; ≈ 0.1 GB each for 170 features × 69,637 voxels).

        Parameters
        ----------
        batches : iterable of (x, y)
            Training windows (B, n_chans, n_times) and targets (B, n_voxels), read once.
        val_batches : iterable of (x, y) | None
            Validation batches, read once, for choosing alpha among ``config.alphas`` (the
            one with the lowest validation MSE; per voxel if ``alpha_per_voxel``). Needed
            when more than one alpha is configured.

        Returns
        -------
        info : dict
            ``alpha`` (chosen; the median when per voxel), ``train_loss`` and ``val_loss``
            (MSE per element), ``val_losses`` (per alpha), ``n_train``, ``n_val``.
        """
        alphas = self.config.alphas
        if val_batches is None and len(alphas) > 1:
            raise ValueError(
                f"'val_batches' is needed to choose among {len(alphas)} alphas; "
                "pass validation batches or configure a single alpha."
            )
        dev = self.weight.device
        p, v = self.n_features, self.config.n_voxels
        acc = _Sums(p, v, dev)
        for x, y in batches:
            acc.add(self.features(x.to(dev)), y.to(dev))
        if acc.n < 2:
            raise ValueError(f"ridge fitting needs at least 2 training windows, got {acc.n}.")
        n = acc.n
        mu = acc.sx / n
        var = (acc.sxx.diagonal() / n - mu.square()).clamp_min(0)
        sd = var.sqrt()
        sd = torch.where(sd > 1e-8 * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))
        ybar = acc.sy / n
        gram = (acc.sxx - n * torch.outer(mu, mu)) / torch.outer(sd, sd)
        cross = (acc.sxy - n * torch.outer(mu, ybar)) / sd[:, None]
        syy = acc.syy - n * ybar.square()
        del acc
        s, vecs = torch.linalg.eigh(gram)
        s = s.clamp_min(0)
        rot = vecs.T @ cross  # (p, v) targets in the eigenbasis
        del cross
        lam = torch.tensor(alphas, dtype=torch.float64, device=dev) * n
        val_losses, n_val = None, 0
        if val_batches is not None:
            vs = _Sums(p, v, dev, centred=True)
            for x, y in val_batches:
                z = (self.features(x.to(dev)).double() - mu) / sd
                vs.add(z, y.to(dev).double() - ybar)
            n_val = vs.n
        if n_val:
            gv = vecs.T @ vs.sxx @ vecs
            bv = vecs.T @ vs.sxy
            err = torch.empty(len(alphas), v, dtype=torch.float64, device=dev)
            for i in range(len(alphas)):
                c = rot / (s + lam[i])[:, None]
                err[i] = vs.syy - 2 * (bv * c).sum(0) + (c * (gv @ c)).sum(0)
            del gv, bv
            if self.config.alpha_per_voxel:
                best = err.argmin(0)
                chosen = lam[best] / n
                coef = rot / (s[:, None] + lam[best][None, :])
                val_loss = float(err.gather(0, best[None]).sum()) / (n_val * v)
            else:
                i = int(err.sum(1).argmin())
                chosen = lam[i : i + 1] / n
                coef = rot / (s + lam[i])[:, None]
                val_loss = float(err[i].sum()) / (n_val * v)
            val_losses = [float(e) / (n_val * v) for e in err.sum(1)]
        else:
            if val_batches is not None and len(alphas) > 1:
                raise ValueError("'val_batches' yielded no windows; cannot choose alpha.")
            chosen = lam[:1] / n
            coef = rot / (s + lam[0])[:, None]
            val_loss = float("nan")
        train_err = syy - 2 * (rot * coef).sum(0) + (s[:, None] * coef.square()).sum(0)
        self.weight.copy_((vecs @ coef).float())
        self.bias.copy_(ybar.float())
        self.feat_mean.copy_(mu.float())
        self.feat_std.copy_(sd.float())
        self.alpha.copy_(chosen.float().expand_as(self.alpha))
        self.fitted.fill_(True)
        info = {
            "alpha": float(chosen.median()),
            "train_loss": float(train_err.sum()) / (n * v),
            "val_loss": val_loss,
            "val_losses": val_losses,
            "alphas": list(alphas),
            "n_train": n,
            "n_val": n_val,
        }
        logger.info(
            "ridge: %d training windows, %d validation; alpha %.3g, val MSE %.5g.",
            n,
            n_val,
            info["alpha"],
            val_loss,
        )
        return info


class _Sums:
    """Running sums of features and targets (float64) for the normal equations."""

    def __init__(self, p: int, v: int, dev, *, centred: bool = False) -> None:
        kw = {"dtype": torch.float64, "device": dev}
        self.n = 0
        self.sxx = torch.zeros(p, p, **kw)
        self.sxy = torch.zeros(p, v, **kw)
        self.syy = torch.zeros(v, **kw)
        if not centred:
            self.sx = torch.zeros(p, **kw)
            self.sy = torch.zeros(v, **kw)
        self.centred = centred

    def add(self, f: torch.Tensor, y: torch.Tensor) -> None:
        f, y = f.double(), y.double()
        if y.ndim != 2 or y.shape[0] != f.shape[0] or y.shape[1] != self.syy.shape[0]:
            raise ValueError(
                f"targets must have shape ({f.shape[0]}, {self.syy.shape[0]}) "
                f"(batch, n_voxels), got {tuple(y.shape)}."
            )
        self.n += f.shape[0]
        self.sxx += f.T @ f
        self.sxy += f.T @ y
        self.syy += y.square().sum(0)
        if not self.centred:
            self.sx += f.sum(0)
            self.sy += y.sum(0)
