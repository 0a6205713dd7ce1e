"""``stream --adapt``: the scanner's volumes adapt the readout live, then it freezes.

A replay publishes a session's EEG and its measured volumes in the model's target units
(``Replay(..., preprocessing=, mask=)``, as ``replay --model M.pt``); the stream pairs each
prediction with the measured volume of the same window end, adapts, freezes after the
given minutes, keeps streaming from EEG alone and writes the adapted checkpoint.
"""

from __future__ import annotations

import itertools
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from apps.cli import main
from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.models import Calibrated
from rt_eeg2fmri.realtime.adapt import OnlineAdapter
from rt_eeg2fmri.replay import Replay
from tests.conftest import make_session
from tests.realtime.engine_helpers import CH, stream_replay, tiny_checkpoint

SFREQ, T_R = 100.0, 0.5


@pytest.mark.lsl
def test_stream_adapts_then_freezes_and_saves(tmp_path, uid):
    model = tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R)
    ckpt = load_checkpoint(model)
    session = make_session(n_chans=len(CH), sfreq=SFREQ, n_volumes=90, t_r=T_R, ch_names=CH)
    replay = Replay(
        session, name=uid, source_id=uid, speed=4.0, preprocessing=ckpt.preprocessing,
        mask=ckpt.mask,
    ).open()  # fmt: skip
    n = 60
    rc, out, err = stream_replay(
        replay, "--model", model, "--source", f"name:{uid}-EEG", "--sync", "samples",
        "--device", "cpu", "--no-outlet", "--adapt", f"name:{replay.stream_names['truth']}",
        "--adapt-minutes", "0.25", "--adapt-gap", "2", "--save-adapted", tmp_path / "adapted.pt",
        "--out", tmp_path / "pred.nii", "--timing", tmp_path / "t.tsv", "--max-volumes", n,
        "--timeout", "30",
    )  # fmt: skip
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["volumes"] == n and summary["skipped"] == 0, err[-3000:]
    adapt = summary["adapt"]
    assert adapt["phase"] == "frozen" and adapt["pairs"] >= 20
    assert adapt["saved"] == str(tmp_path / "adapted.pt")
    assert "adapt adapting" in err or "adapt frozen" in err  # the status line shows the phase
    # the timing log marks the phase of every volume, in order
    phases = pd.read_csv(tmp_path / "t.tsv", sep="\t")["adapt"].tolist()
    assert phases[0] == "waiting" and phases[-1] == "frozen" and "adapting" in phases
    order = {"waiting": 0, "adapting": 1, "frozen": 2}
    assert all(order[a] <= order[b] for a, b in itertools.pairwise(phases))
    # the adapted checkpoint is an ordinary checkpoint: the base model and a per-voxel map,
    # or the conv with its own readout weights
    adapted = load_checkpoint(tmp_path / "adapted.pt")
    cal = adapted.metadata["calibration"]
    assert {c["readout"] for c in cal["candidates"]} == {"none", "bias", "affine", "coef"}
    assert isinstance(adapted.model, Calibrated) == (cal["chosen"]["readout"] != "coef")
    assert cal["live"] is True and cal["pairs"] == adapt["pairs"]
    assert cal["chosen"]["description"] and cal["base_checkpoint"] == str(model)
    # once frozen, the stream's volumes are the base model's through the frozen map
    vols = np.asarray(nib.load(tmp_path / "pred.nii").dataobj)
    assert vols.shape[-1] == n and np.isfinite(vols).all()


def test_adapter_freezes_and_chooses_like_calibrate(tmp_path, rng):
    """Without LSL: pairs fed directly; a planted per-voxel map is recovered at freeze."""
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R))
    a = OnlineAdapter("name:none", checkpoint=ckpt, minutes=1.0, gap=2.0)
    n_vox = int(ckpt.mask.sum())
    gain = rng.uniform(0.5, 3.0, n_vox)
    for k in range(130):
        t = 10.0 + k * T_R
        p = rng.standard_normal(n_vox)
        a._truth[t] = gain * p + 1.5  # the scanner's volume of that window
        phase = a.observe(p, t)
        assert phase in ("waiting", "adapting", "frozen")
    assert a.phase == "frozen" and a.wait(30.0) and len(a.pairs) >= 120
    assert a.chosen["chosen"]["readout"] == "affine"
    np.testing.assert_allclose(a.gain, gain, rtol=0.05)
    np.testing.assert_allclose(a.bias, 1.5, atol=0.05)
    p = rng.standard_normal(n_vox).astype(np.float32)
    np.testing.assert_allclose(a.apply(p), gain * p + 1.5, rtol=0.05, atol=0.1)


def test_adapter_fits_a_later_haemodynamic_response_and_hands_the_stream_its_model(tmp_path, rng):
    """The person's volumes follow the model's learned HRF stretched 1.4× (times a gain):
    at freezing, the choice runs the model's variants on the kept input windows, fits the
    stretch, and the stream takes the adapted model, whose own readout replaces the map."""
    import torch

    from rt_eeg2fmri.adaptation import stretched

    path = tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R, winsize=12.0, channels=[4])
    ckpt = load_checkpoint(path)
    later = stretched(ckpt.model, 1.4).eval()
    a = OnlineAdapter("name:none", checkpoint=ckpt, minutes=1.0, gap=2.0)
    for k in range(130):
        t = 10.0 + k * T_R
        x = torch.as_tensor(rng.standard_normal((len(CH), 1200)), dtype=torch.float32)
        with torch.no_grad():
            p, y = ckpt.model(x[None])[0], later(x[None])[0].double().numpy()
        a._truth[t] = 2.0 * y + 0.5
        a.observe(p, t, window=x)
    assert a.phase == "frozen" and a.wait(60.0)
    chosen = a.chosen["chosen"]
    assert chosen["hrf_stretch"] == 1.4, a.chosen["candidates"]
    model = a.take_model()
    assert model is not None and a.take_model() is None  # handed over once
    x = torch.as_tensor(rng.standard_normal((1, len(CH), 1200)), dtype=torch.float32)
    with torch.no_grad():
        want = 2.0 * later(x)[0] + 0.5
        np.testing.assert_allclose(model(x)[0], want, rtol=0.02, atol=0.02 * float(want.std()))
    p = rng.standard_normal(int(ckpt.mask.sum())).astype(np.float32)
    np.testing.assert_array_equal(a.apply(p), p)  # the model's own readout, no map on top
    a.save(tmp_path / "a.pt", ckpt.norm_stats)
    saved = load_checkpoint(tmp_path / "a.pt")
    with torch.no_grad():
        torch.testing.assert_close(saved.model(x), model(x))
    assert saved.metadata["calibration"]["chosen"]["hrf_stretch"] == 1.4


def test_adapter_fits_per_voxel_delays_and_hands_the_stream_its_model(tmp_path, rng):
    """The person's regions answer 0.5 s earlier or later than the model's learned HRF: the
    live choice takes the delay readout, the stream runs it, and it is saved as is."""
    import torch

    from tests.conftest import delayed_outputs, smooth_hrf

    path = tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R, winsize=12.0, channels=[4])
    ckpt = load_checkpoint(path)
    smooth_hrf(ckpt.model)
    delays = np.resize([-0.5, 0.5], int(ckpt.mask.sum()))
    a = OnlineAdapter("name:none", checkpoint=ckpt, minutes=1.0, gap=2.0, delays=True)
    level = 1.0 + 0.8 * np.sin(2 * np.pi * np.arange(1200) / SFREQ / 17.0)
    for k in range(130):
        t = 10.0 + k * T_R
        x = torch.as_tensor(rng.standard_normal((len(CH), 1200)) * np.roll(level, 37 * k),
                            dtype=torch.float32)  # fmt: skip
        with torch.no_grad():
            p = ckpt.model(x[None])[0]
        a._truth[t] = 2.0 * delayed_outputs(ckpt.model, x[None], delays)[0] + 0.5
        a.observe(p, t, window=x)
    assert a.phase == "frozen" and a.wait(60.0)
    assert a.chosen["chosen"]["readout"] == "delay", a.chosen["candidates"]
    model = a.take_model()
    assert isinstance(model, Calibrated) and model.out_slope is not None
    fitted = (model.out_slope / model.out_gain).numpy()
    assert np.median(fitted[delays < 0]) < -0.3 and np.median(fitted[delays > 0]) > 0.3
    a.save(tmp_path / "a.pt", ckpt.norm_stats)
    saved = load_checkpoint(tmp_path / "a.pt")
    x = torch.as_tensor(rng.standard_normal((2, len(CH), 1200)), dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(saved.model(x), model(x))


def test_adapt_option_errors(tmp_path, capsys):
    model = tiny_checkpoint(tmp_path / "m.pt", sfreq=SFREQ, t_r=T_R)
    assert main(["stream", "--model", str(model), "--adapt", "name:x", "--timeout", "0.1"]) == 1
    assert "'--adapt-minutes' is needed with '--adapt TRUTH_STREAM'" in capsys.readouterr().err
    assert main(["stream", "--model", str(model), "--save-adapted", str(tmp_path / "a.pt"),
                 "--timeout", "0.1"]) == 1  # fmt: skip
    assert "'--save-adapted' needs '--adapt TRUTH_STREAM'" in capsys.readouterr().err
    assert main(["stream", "--model", str(model), "--adapt-delays", "--timeout", "0.1"]) == 1
    assert "'--adapt-delays' needs '--adapt TRUTH_STREAM'" in capsys.readouterr().err
    two = tiny_checkpoint(tmp_path / "two.pt", sfreq=SFREQ, t_r=T_R)  # two encoder stages
    assert main(["stream", "--model", str(two), "--adapt", "name:x", "--adapt-minutes", "1",
                 "--adapt-delays", "--timeout", "0.1"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "'--adapt-delays' needs a model whose encoder reads" in err
    assert "two.pt': conv with 2 encoder stages" in err
    assert main(["stream", "--model", str(model), "--adapt", "name:x", "--adapt-minutes", "0",
                 "--timeout", "0.1"]) == 1  # fmt: skip
    assert "'--adapt-minutes' must be positive" in capsys.readouterr().err
