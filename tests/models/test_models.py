"""The shared checks every architecture passes (forward shape, backward, determinism, …)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from rt_eeg2fmri.models import MODELS, build_model, make_config, n_params

from .conftest import GRID, N_CHANS, N_TIMES, make_model, small_config, small_mask


def test_forward_shape(model_name):
    model = make_model(model_name).eval()
    x = torch.randn(3, N_CHANS, N_TIMES)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, int(small_mask().sum()))
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_predict_volume_scatters_into_mask(model_name):
    model = make_model(model_name).eval()
    x = torch.randn(2, N_CHANS, N_TIMES)
    with torch.no_grad():
        vol = model.predict_volume(x)
        y = model(x)
    mask = torch.from_numpy(small_mask())
    assert vol.shape == (2, *GRID)
    assert (vol[:, ~mask] == 0).all()
    # C order of mask.nonzero()
    torch.testing.assert_close(vol[:, mask], y)


def test_backward(model_name):
    model = make_model(model_name).train()
    x = torch.randn(4, N_CHANS, N_TIMES, requires_grad=True)
    n_voxels = int(small_mask().sum())
    y = torch.randn(4, n_voxels)
    pred = model(x, y) if getattr(model, "teacher_forcing", False) else model(x)
    torch.nn.functional.mse_loss(pred, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    params = [p for p in model.parameters() if p.requires_grad]
    if model_name == "ridge":
        assert params == []  # closed form: nothing to train by gradient
    else:
        assert params
        no_grad = [n for n, p in model.named_parameters() if p.grad is None]
        assert not no_grad, f"parameters without gradient: {no_grad}"


def test_deterministic_with_seed(model_name):
    x = torch.randn(2, N_CHANS, N_TIMES)
    a, b = make_model(model_name, seed=3).eval(), make_model(model_name, seed=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    c = make_model(model_name, seed=4).eval()
    with torch.no_grad():
        assert not torch.equal(a(x), c(x))


def test_param_counts(model_name):
    model = make_model(model_name)
    n = n_params(model)
    assert n > 0
    if model_name == "ridge":
        n_feat = model.n_features
        assert n == n_feat * 2 + n_feat * model.config.n_voxels + model.config.n_voxels + 1
    else:
        assert n == sum(p.numel() for p in model.parameters()) + sum(
            b.numel()
            for k, b in model.named_buffers()
            if k.endswith(("table", "head.basis", "head.offset"))  # fixed PCA basis
        )


def test_config_is_json_and_rebuilds(model_name):
    model = make_model(model_name)
    d = asdict(model.config)
    d2 = json.loads(json.dumps(d))
    assert d2 == d
    rebuilt = type(model)(type(model.config)(**d2))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, N_CHANS, N_TIMES)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_models_take_shape_from_config(model_name):
    # a different rate, window, channel count and grid
    mask = np.zeros((4, 3, 5), bool)
    mask[1:3, :, 1:4] = True
    cfg = small_config(model_name, mask, n_chans=3, sfreq=100.0, n_times=400)
    cfg["grid_shape"] = [4, 3, 5]
    model = build_model(model_name, cfg)
    model.set_mask(mask)
    if model_name == "ridge":
        from .conftest import random_batches  # noqa: F401

        gen = torch.Generator().manual_seed(0)
        data = [(torch.randn(6, 3, 400, generator=gen), torch.randn(6, 18, generator=gen))]
        model.fit_streaming(iter(data), val_batches=iter(data))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 400)).shape == (2, 18)


def test_wrong_input_shape_names_expected(model_name):
    model = make_model(model_name).eval()
    with pytest.raises(ValueError, match=r"\(batch, 4, 100\).*got \(2, 5, 100\)"):
        model(torch.randn(2, 5, 100))


def test_set_mask_validates(model_name):
    model = make_model(model_name)
    with pytest.raises(ValueError, match="must have shape"):
        model.set_mask(np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match="n_voxels"):
        model.set_mask(np.ones(GRID, bool))
    with pytest.raises(TypeError, match="boolean"):
        model.set_mask(small_mask().astype(np.float32))


def test_mask_travels_in_state_dict(model_name):
    model = make_model(model_name)
    other = build_model(model_name, asdict(model.config))
    assert not torch.equal(other.mask, model.mask)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.mask, model.mask)
    assert torch.equal(other.vox_index, model.vox_index)


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'.*conv"):
        build_model("nope", {})
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['colour'\]"):
        build_model("conv", {**small_config("conv"), "colour": 1})
    with pytest.raises(ValueError, match=r"missing required field\(s\) \['n_times'\]"):
        build_model("fc", {"n_chans": 2, "sfreq": 10.0, "n_voxels": 3})
    with pytest.raises(ValueError, match="'head' must be one of"):
        build_model("conv", small_config("conv", head="huge"))
    with pytest.raises(ValueError, match="'n_voxels' .* exceeds"):
        build_model("conv", small_config("conv", n_voxels=10_000))
    with pytest.raises(ValueError, match="'sfreq' must be positive"):
        build_model("fc", small_config("fc", sfreq=-1))
    with pytest.raises(TypeError, match="'n_chans' must be an int"):
        build_model("fc", small_config("fc", n_chans=2.5))
    with pytest.raises(ValueError, match="'channels' must be int"):
        build_model("conv", small_config("conv", channels=[]))
    with pytest.raises(ValueError, match="strides leave no samples"):
        build_model("conv", small_config("conv", n_times=3))
    with pytest.raises(ValueError, match="shorter than one"):
        build_model("fc", small_config("fc", n_times=3))


def test_registry_lists_all_architectures():
    assert set(MODELS) == {"fc", "siamese_fc", "conv", "transformer", "ridge"}
    for name in MODELS:
        assert make_config(name, small_config(name)).n_chans == N_CHANS
        assert MODELS[name][0].name == name


@pytest.mark.parametrize(
    ("extra", "n_frames"),
    [
        ({}, 59),  # band-power envelope at 2 Hz over the 29.5 s after the stem's taps
        ({"channels": [16, 32, 32, 64]}, 8),  # then three stride-2 blocks
        (
            {
                "envelope_rate": None,
                "channels": [16, 32, 32, 64],
                "kernel": 9,
                "stride": 4,
                "stem_seconds": 0.1,
            },
            24,
        ),
    ],
)
def test_conv_rate_independent_frames(extra, n_frames):
    # the stem's stride follows sfreq, so the same 30 s window at 100, 250 and 1000 Hz
    # gives the same architecture and parameter count (apart from the stem's taps)
    counts = []
    for sfreq in (100.0, 250.0, 1000.0):
        cfg = {"n_chans": 2, "n_times": int(30 * sfreq), "sfreq": sfreq, "n_voxels": 10}
        model = build_model("conv", {**cfg, **extra})
        counts.append(n_params(model) - model.encoder.convs[0].weight.numel())
        assert model.encoder.n_frames == n_frames
    assert len(set(counts)) == 1


def test_band_power_measures_envelope():
    from rt_eeg2fmri.models._modules import BandPower

    t = torch.arange(1000) / 50.0  # 20 s at 50 Hz
    amp = torch.where(t < 10, 1.0, 3.0)  # amplitude triples half way
    x = (amp * torch.sin(2 * torch.pi * 7.0 * t))[None, None]
    out = BandPower(25)(x)[0, 0]  # 0.5 s bins
    assert out.shape == (40,)
    # log mean power of a sinusoid of amplitude a is log(a² / 2)
    torch.testing.assert_close(out[:20], torch.full((20,), math.log(0.5)), atol=0.02, rtol=0)
    torch.testing.assert_close(out[20:], torch.full((20,), math.log(4.5)), atol=0.02, rtol=0)


def test_envelope_rate_above_frame_rate_is_refused():
    cfg = {"n_chans": 2, "n_times": 3000, "sfreq": 100.0, "n_voxels": 10}
    with pytest.raises(ValueError, match="'envelope_rate' .* must not exceed 'frame_rate'"):
        build_model("conv", {**cfg, "envelope_rate": 60.0})


def test_flat_grid_default():
    model = build_model("conv", {"n_chans": 2, "n_times": 100, "sfreq": 50.0, "n_voxels": 7})
    assert model.grid_shape == (7,)
    assert model.eval().predict_volume(torch.randn(1, 2, 100)).shape == (1, 7)


@pytest.mark.parametrize("name", ["conv", "transformer"])
def test_eval_chunking_is_exact(name):
    model = make_model(name).eval()
    x = torch.randn(5, N_CHANS, N_TIMES)
    with torch.no_grad():
        whole = model(x)
        model.encoder.eval_chunk = 3  # 20 channel series in chunks of 3
        chunked = model(x)
    torch.testing.assert_close(chunked, whole)


def test_stretching_the_learned_hrf_moves_its_peak_and_keeps_its_area():
    cfg = {"n_chans": 2, "n_times": 3000, "sfreq": 100.0, "n_voxels": 10}
    enc = build_model("conv", cfg).encoder
    n, dt = enc.n_frames, enc.bin_seconds
    assert dt == pytest.approx(0.5)
    lag = (np.arange(n)[::-1] + 0.5) * dt  # proj's bins, window end last
    hrf = np.exp(-0.5 * ((lag - 5.0) / 1.5) ** 2)  # a response peaking 5 s before the end
    with torch.no_grad():
        enc.proj.weight.copy_(torch.as_tensor(np.tile(hrf, (8, 16)), dtype=torch.float32))
    before = enc.proj.weight.detach().clone()
    enc.stretch_hrf(1.0)
    torch.testing.assert_close(enc.proj.weight, before)
    enc.stretch_hrf(1.4)
    w = enc.proj.weight.detach().numpy().reshape(8, 16, n)
    assert np.allclose(w, w[:1, :1])  # every filter and output alike
    assert lag[np.argmax(w[0, 0])] == pytest.approx(7.0, abs=dt / 2)
    assert w[0, 0].sum() == pytest.approx(hrf.sum(), rel=0.01)
    blocks = build_model("conv", {**cfg, "channels": [4, 8]}).encoder
    assert blocks.bin_seconds is None
    with pytest.raises(ValueError, match="band-power envelope"):
        blocks.stretch_hrf(1.2)
    with pytest.raises(ValueError, match="must be positive"):
        enc.stretch_hrf(0.0)


def test_the_evoked_filters_see_the_sign_that_band_power_cannot():
    """Band power is blind to a potential's sign: a window and its negative give the same
    volume. ``evoked`` filters add signed bin means, so the two differ; they are read
    through the same learned HRF (stretched with it), and need the envelope encoder."""
    cfg = {"n_chans": 2, "n_times": 3000, "sfreq": 100.0, "n_voxels": 10}
    x = torch.randn(3, 2, 3000)
    torch.manual_seed(0)
    plain = build_model("conv", cfg).eval()
    torch.testing.assert_close(plain(x), plain(-x))
    evoked = build_model("conv", {**cfg, "evoked": 4}).eval()
    assert not torch.allclose(evoked(x), evoked(-x))
    enc = evoked.encoder
    assert enc.proj.in_features == (16 + 4) * enc.n_frames
    before = evoked(x)
    enc.stretch_hrf(1.3)  # the evoked rows of the projection are bins too
    assert not torch.allclose(evoked(x), before)
    assert torch.isfinite(evoked(x)).all()
    with pytest.raises(ValueError, match="'evoked' .* needs an encoder"):
        build_model("conv", {**cfg, "evoked": 2, "channels": [4, 8]})
    with pytest.raises(ValueError, match="'evoked' must be int"):
        build_model("conv", {**cfg, "evoked": -1})


def test_the_delay_slope_is_the_derivative_of_the_learned_hrf_shifted_later():
    """``Calibrated`` with a slope: the identity map reproduces the base model; the slope
    alone is the central difference of the model with its HRF shifted ±0.5 s; a shift by
    one bin moves every HRF weight one bin back; a model without a learned HRF refuses."""
    import copy

    from rt_eeg2fmri.models import Calibrated, can_delay
    from rt_eeg2fmri.models.calibrated import DELAY_STEP

    from ..conftest import smooth_hrf

    cfg = {"n_chans": 2, "n_times": 1200, "sfreq": 100.0, "n_voxels": 10}
    torch.manual_seed(0)
    model = smooth_hrf(build_model("conv", cfg).eval())
    assert can_delay(model) and not can_delay(build_model("conv", {**cfg, "channels": [4, 8]}))
    x = torch.randn(5, 2, 1200)
    ones, zeros = torch.ones(10), torch.zeros(10)
    with torch.no_grad():
        torch.testing.assert_close(Calibrated(model, ones, zeros, slope=zeros)(x), model(x))
        shifted = {}
        for s in (DELAY_STEP, -DELAY_STEP):
            m = copy.deepcopy(model)
            m.encoder.proj.weight.copy_(model.encoder.warped_weight(shift=s))
            shifted[s] = m(x)
        want = (shifted[DELAY_STEP] - shifted[-DELAY_STEP]) / (2 * DELAY_STEP)
        got = Calibrated(model, zeros, zeros, slope=ones)(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        assert got.abs().max() > 0
    enc = model.encoder  # shifting by one bin (0.5 s at 2 Hz) moves the weights one bin
    w = enc.proj.weight.reshape(enc.proj.out_features, -1, enc.n_frames)
    later = enc.warped_weight(shift=enc.bin_seconds).reshape(w.shape)
    torch.testing.assert_close(later[..., :-1], w[..., 1:])
    assert (later[..., -1] == 0).all()  # nothing is known of the response before lag 0
    ridge = make_model("ridge")
    with pytest.raises(ValueError, match="a delay slope needs a model whose encoder .* got ridge"):
        Calibrated(ridge, np.ones(ridge.config.n_voxels), np.zeros(ridge.config.n_voxels),
                   slope=np.zeros(ridge.config.n_voxels))  # fmt: skip
