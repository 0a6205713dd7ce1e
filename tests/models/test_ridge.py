"""The ridge model: band-power features, the streaming closed form, alpha on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.hrf import spm_hrf
from rt_eeg2fmri.models import build_model

SFREQ, N_TIMES, N_CHANS = 100.0, 1000, 3  # 10 s windows at 100 Hz, 2 s bins


def _cfg(**kw):
    return {"n_chans": N_CHANS, "n_times": N_TIMES, "sfreq": SFREQ, "n_voxels": 5, **kw}


def _alpha_data(n: int, seed: int, *, noise: float = 0.1):
    """Windows whose 10 Hz amplitude in channel 0 drives the targets linearly in log power."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_TIMES) / SFREQ
    amp = np.exp(rng.uniform(-1, 1, n))
    x = rng.standard_normal((n, N_CHANS, N_TIMES)) * 0.05
    x[:, 0] += amp[:, None] * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, (n, 1)))
    w = np.array([1.0, -0.5, 0.2, 0.0, 2.0])
    y = np.log(amp)[:, None] * w + noise * rng.standard_normal((n, 5))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def _batches(x, y, size=16):
    for i in range(0, len(x), size):
        yield x[i : i + size], y[i : i + size]


def test_features_pick_the_band_and_hrf():
    model = build_model("ridge", _cfg())
    # 1 s frames half a frame apart over 10 s; one canonical HRF regressor by default
    assert (model.frame_len, model.hop, model.n_frames) == (100, 50, 19)
    assert model.n_features == N_CHANS * 5
    t = np.arange(N_TIMES) / SFREQ
    x = torch.zeros(1, N_CHANS, N_TIMES)
    x[0, :] = torch.tensor(np.sin(2 * np.pi * 10 * t), dtype=torch.float32)
    f = model.features(x).reshape(N_CHANS, 5)
    assert int(f[0].argmax()) == 2  # alpha 8–13 Hz
    # a stationary input: every frame has the same log power, so the feature is that value
    # times the kernel's sum
    frame = x[0, 0, -100:]
    p = torch.fft.rfft((frame - frame.mean()) * torch.hann_window(100)).abs() ** 2
    logp = torch.log(p[8:13].mean() + 1e-10)  # 8–13 Hz at 1 Hz resolution
    torch.testing.assert_close(f[0, 2], logp * model.hrf_kernel.sum(), rtol=1e-4, atol=1e-4)


def test_hrf_kernel_is_centred_on_each_frame():
    """A frame's weight is the HRF (a density) at its centre's lag, times the frame step."""
    model = build_model("ridge", _cfg(n_times=3000))  # 30 s
    k = model.hrf_kernel.numpy()[0]
    ago = (model.n_frames - 1 - np.arange(model.n_frames)) * 0.5 + 0.5  # centres, s
    dense = spm_hrf(0.01) / 0.01
    np.testing.assert_allclose(k, np.interp(ago, np.arange(dense.size) * 0.01, dense) * 0.5,
                               rtol=1e-5, atol=1e-7)  # fmt: skip
    assert 4.5 <= ago[k.argmax()] <= 5.5  # SPM's HRF peaks at 5 s
    assert k.sum() == pytest.approx(1.0, abs=0.03)  # ∫ h = 1 (its tail beyond 30 s is tiny)


def test_derivative_basis_doubles_the_features():
    model = build_model("ridge", _cfg(hrf_basis="derivative", n_lags=2))
    assert model.hrf_kernel.shape == (4, model.n_frames)  # (canonical, derivative) × 2 lags
    assert model.n_features == N_CHANS * 5 * 4
    assert abs(float(model.hrf_kernel[2].sum())) < 0.05  # a derivative integrates to ~0
    with pytest.raises(ValueError, match="hrf_basis"):
        build_model("ridge", _cfg(hrf_basis="fir"))


def test_first_release_features_kept():
    """``frame_s=None``: one TR frame per bin, no overlap, the HRF at TR steps (old checkpoints)."""
    model = build_model("ridge", _cfg(frame_s=None))
    assert (model.frame_len, model.hop, model.n_frames) == (200, 200, 5)
    t = np.arange(N_TIMES) / SFREQ
    x = torch.zeros(1, N_CHANS, N_TIMES)
    x[0, :] = torch.tensor(np.sin(2 * np.pi * 10 * t), dtype=torch.float32)
    f = model.features(x).reshape(N_CHANS, 5)
    hrf = spm_hrf(2.0)[:5]
    bins = x[0, 0].reshape(5, 200)
    p = torch.fft.rfft((bins - bins.mean(-1, keepdim=True)) * torch.hann_window(200)).abs() ** 2
    logp = torch.log(p[0, 16:26].mean() + 1e-10)  # 8–13 Hz at 0.5 Hz resolution
    torch.testing.assert_close(f[0, 2], logp * float(hrf.sum()), rtol=1e-4, atol=1e-4)


def test_old_ridge_checkpoint_loads_with_its_features(tmp_path):
    from dataclasses import asdict

    from rt_eeg2fmri.checkpoint import load_checkpoint, save_checkpoint
    from rt_eeg2fmri.data.norm import NormStats
    from rt_eeg2fmri.data.preprocessing import Preprocessing

    x, y = _alpha_data(60, 0)
    model = build_model("ridge", _cfg(frame_s=None, hrf_basis="canonical", alphas=[1.0]))
    model.fit_streaming(_batches(x, y))
    names = [f"C{i}" for i in range(N_CHANS)]
    path = save_checkpoint(
        tmp_path / "old.pt", model, ch_names=names, t_r=2.0,
        preprocessing=Preprocessing(sfreq=SFREQ, winsize=N_TIMES / SFREQ),
        norm_stats=NormStats("zscore", np.zeros(N_CHANS), np.ones(N_CHANS), names),
        grid_shape=(5, 1, 1), affine=np.eye(4), mask=np.ones((5, 1, 1), bool),
    )  # fmt: skip
    raw = torch.load(path, weights_only=False)
    for key in ("frame_s", "hrf_basis"):  # a checkpoint written before these fields existed
        del raw["model_config"][key]
    del raw["checksum"]  # (and before checksums)
    torch.save(raw, path)
    loaded = load_checkpoint(path)
    assert asdict(loaded.model.config) == asdict(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))


def test_nyquist_caps_bands():
    model = build_model("ridge", _cfg(sfreq=50.0, n_times=500))
    assert model.bands[-1] == [13.0, 25.0]
    assert len(model.bands) == 4  # gamma (30–45 Hz) dropped above Nyquist


def test_lags_read_earlier_values():
    model = build_model("ridge", _cfg(n_lags=3))
    k = model.hrf_kernel.numpy()
    assert k.shape == (3, model.n_frames)
    # lag l is the lag-0 kernel shifted one TR (four frame steps) earlier
    np.testing.assert_allclose(k[1, :-4], k[0, 4:], atol=1e-7)
    assert k[1, -4:].sum() < 1e-6 and k[2, -8:].sum() < 1e-6


def test_fit_matches_direct_solution():
    x, y = _alpha_data(120, 0)
    model = build_model("ridge", _cfg(alphas=[0.5]))
    info = model.fit_streaming(_batches(x, y))
    f = model.features(x).double().numpy()
    mu, sd = f.mean(0), f.std(0)
    z = (f - mu) / sd
    yc = y.double().numpy() - y.double().numpy().mean(0)
    w = np.linalg.solve(z.T @ z + 0.5 * len(z) * np.eye(z.shape[1]), z.T @ yc)
    np.testing.assert_allclose(model.weight.numpy(), w, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.bias.numpy(), y.numpy().mean(0), atol=1e-5)
    train_mse = float(((z @ w - yc) ** 2).mean())
    assert info["train_loss"] == pytest.approx(train_mse, rel=1e-6)
    assert np.isnan(info["val_loss"]) and info["n_train"] == 120


def test_alpha_chosen_on_validation_and_generalises():
    x, y = _alpha_data(200, 1)
    xv, yv = _alpha_data(60, 2)
    xt, yt = _alpha_data(60, 3)
    model = build_model("ridge", _cfg())
    info = model.fit_streaming(_batches(x, y), val_batches=_batches(xv, yv))
    assert info["alpha"] == min(
        info["alphas"], key=lambda a: info["val_losses"][info["alphas"].index(a)]
    )
    with torch.no_grad():
        pred = model.eval()(xv)
    assert info["val_loss"] == pytest.approx(float(((pred - yv) ** 2).mean()), rel=1e-4)
    with torch.no_grad():
        pred = model(xt).numpy()
    for v in (0, 1, 4):
        assert np.corrcoef(pred[:, v], yt[:, v].numpy())[0, 1] > 0.9  # ceiling ≈ 0.94 for v=1


def test_noise_targets_pick_the_strongest_penalty():
    x, _ = _alpha_data(100, 4)
    xv, _ = _alpha_data(60, 5)
    gen = torch.Generator().manual_seed(0)
    y, yv = torch.randn(100, 5, generator=gen), torch.randn(60, 5, generator=gen)
    model = build_model("ridge", _cfg(alphas=[1e-3, 1.0, 1e3]))
    info = model.fit_streaming(_batches(x, y), val_batches=_batches(xv, yv))
    assert info["alpha"] == 1e3


def test_alpha_per_voxel():
    x, y = _alpha_data(150, 6)
    xv, yv = _alpha_data(60, 7)
    gen = torch.Generator().manual_seed(1)
    y[:, 3] = torch.randn(150, generator=gen)  # voxel 3 is pure noise
    yv[:, 3] = torch.randn(60, generator=gen)
    model = build_model("ridge", _cfg(alphas=[1e-3, 1e3], alpha_per_voxel=True))
    model.fit_streaming(_batches(x, y), val_batches=_batches(xv, yv))
    assert model.alpha.shape == (5,)
    assert model.alpha[3] == pytest.approx(1e3) and model.alpha[0] == pytest.approx(1e-3)


def test_errors():
    x, y = _alpha_data(20, 0)
    model = build_model("ridge", _cfg())
    with pytest.raises(RuntimeError, match="not fitted"):
        model(x)
    with pytest.raises(ValueError, match="'val_batches' is needed to choose among 15 alphas"):
        model.fit_streaming(_batches(x, y))
    with pytest.raises(ValueError, match=r"targets must have shape \(16, 5\)"):
        model.fit_streaming(_batches(x, y[:, :2]), val_batches=[])
    with pytest.raises(ValueError, match="at least 2 training windows"):
        build_model("ridge", _cfg(alphas=[1.0])).fit_streaming(_batches(x[:1], y[:1]))
    with pytest.raises(ValueError, match="shorter than one t_r=2.0 s bin"):
        build_model("ridge", _cfg(n_times=150))
    with pytest.raises(ValueError, match="holds no frequency bin"):
        build_model("ridge", _cfg(frame_s=0.1, bands=[[1.0, 4.0]]))
    with pytest.raises(ValueError, match="'frame_s' \\(20.0 s = 2000 samples\\) is longer"):
        build_model("ridge", _cfg(frame_s=20.0))
    with pytest.raises(ValueError, match="'n_lags' \\(9\\) exceeds the 5 TRs"):
        build_model("ridge", _cfg(n_lags=9))
    with pytest.raises(ValueError, match="'bands' must satisfy"):
        build_model("ridge", _cfg(bands=[[8, 4]]))
    with pytest.raises(ValueError, match="'alphas' must be positive"):
        build_model("ridge", _cfg(alphas=[0.0]))
