"""Self-contained checkpoints: round trips, and refusal of anything that is not ours."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
import torch

from rt_eeg2fmri.checkpoint import FORMAT, array_checksum, load_checkpoint, save_checkpoint
from rt_eeg2fmri.data import NormStats, Preprocessing
from rt_eeg2fmri.models import MODELS

from .models.conftest import GRID, N_CHANS, N_TIMES, SFREQ, make_model, small_mask

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
CH_NAMES = ["Fp1", "Cz", "O1", "O2"]


def _save(path, model, **kw):
    """``save_checkpoint`` with the preprocessing fields given flat."""
    pre = {k: kw.pop(k) for k in list(kw) if k in Preprocessing.field_names()}
    fields = dict(
        preprocessing=Preprocessing(**{"sfreq": SFREQ, "winsize": N_TIMES / SFREQ, **pre}),
        norm_stats=NormStats("zscore", np.zeros(N_CHANS), np.ones(N_CHANS), CH_NAMES),
        ch_names=CH_NAMES,
        t_r=2.0,
        grid_shape=GRID,
        affine=AFFINE,
        mask=small_mask(),
        metadata={
            "data_fingerprint": "abc123",
            "split": {"name": "loso-sub-01"},
            "metrics": {"r": np.float32(0.5)},
        },
    )
    fields.update(kw)
    return save_checkpoint(path, model, **fields)


@pytest.fixture
def ckpt_path(tmp_path):
    return _save(tmp_path / "conv.pt", make_model("conv"))


@pytest.mark.parametrize("model_name", list(MODELS))
def test_roundtrip_every_model(tmp_path, model_name):
    model = make_model(model_name).eval()
    path = _save(tmp_path / f"{model_name}.pt", model)
    ck = load_checkpoint(path)
    assert ck.model_name == model_name and not ck.model.training
    assert ck.model_config == asdict(model.config)
    x = torch.randn(2, N_CHANS, N_TIMES)
    with torch.no_grad():
        torch.testing.assert_close(ck.predict(x), model(x), rtol=0, atol=0)
    np.testing.assert_array_equal(ck.mask, small_mask())
    assert torch.equal(ck.model.mask, torch.from_numpy(small_mask()))
    out = ck.predict(x[0].numpy())
    assert isinstance(out, np.ndarray) and out.shape == (ck.n_voxels,)


def test_fields_and_plain_contents(ckpt_path):
    raw = torch.load(ckpt_path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == 2
    assert "mask" not in raw["state_dict"]
    assert raw["mask"].dtype == torch.uint8 and raw["mask"].numel() == -(-np.prod(GRID) // 8)
    ck = load_checkpoint(ckpt_path)
    assert ck.ch_names == CH_NAMES and ck.sfreq == SFREQ and ck.t_r == 2.0
    assert ck.winsize == 2.0 and ck.n_times == N_TIMES and ck.grid_shape == GRID
    np.testing.assert_array_equal(ck.affine, AFFINE)
    assert ck.preprocessing == Preprocessing(sfreq=SFREQ, winsize=2.0)
    assert ck.norm_stats.to_dict() == NormStats("zscore", [0.0] * 4, [1.0] * 4, CH_NAMES).to_dict()
    meta = ck.metadata
    assert meta["data_fingerprint"] == "abc123" and meta["metrics"] == {"r": 0.5}
    assert set(meta["versions"]) == {"torch", "numpy", "python", "rt_eeg2fmri"}
    assert meta["created"].startswith("20")


def test_atomic_write_keeps_old_file(tmp_path, ckpt_path):
    before = ckpt_path.read_bytes()
    with pytest.raises(TypeError, match=r"metadata\['bad'\] holds a object"):
        _save(ckpt_path, make_model("conv"), metadata={"bad": object()})
    assert ckpt_path.read_bytes() == before
    _save(ckpt_path, make_model("fc"))
    assert load_checkpoint(ckpt_path).model_name == "fc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.pt"]  # no temp files left


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    for i, write in enumerate(
        [
            lambda p: torch.save({"format": FORMAT, "x": _Evil(marker)}, p),
            lambda p: p.write_bytes(pickle.dumps({"x": _Evil(marker)})),
        ]
    ):
        path = tmp_path / f"evil{i}.pt"
        write(path)
        with pytest.raises(ValueError, match=r"evil\d\.pt.*pickled Python objects.*not executed"):
            load_checkpoint(path)
        assert not marker.exists()


def test_truncated(tmp_path, ckpt_path):
    data = ckpt_path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pt.*truncated or corrupt"):
        load_checkpoint(cut)


def test_foreign_files(tmp_path):
    sd = tmp_path / "foreign.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), sd)
    with pytest.raises(
        ValueError, match=r"foreign\.pt' is not an rt-eeg2fmri checkpoint: format=None"
    ):
        load_checkpoint(sd)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=r"tensor\.pt.*holds a Tensor"):
        load_checkpoint(tensor)
    zpath = tmp_path / "other.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("readme.txt", "not a model")
    with pytest.raises(
        ValueError, match=r"other\.zip' is not a readable .*a zip archive, but not a torch"
    ):
        load_checkpoint(zpath)
    text = tmp_path / "notes.pt"
    text.write_text("hello, I am a text file\n")
    with pytest.raises(
        ValueError,
        match=r"notes\.pt' is not a readable .*not a torch checkpoint file \(it starts with "
        r"bytes b'hell', expected a zip archive",
    ) as info:
        load_checkpoint(text)
    assert "pickled" not in str(info.value)  # garbage is not reported as a pickle
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt' is not a readable .*the file is empty"):
        load_checkpoint(empty)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def _edit(tmp_path, src, fn, *, resum: bool = True):
    """A copy of ``src`` edited by ``fn``; ``resum``: its checksum made to match again (a
    checkpoint written wrong, rather than one altered after it was written)."""
    raw = torch.load(src, weights_only=True)
    fn(raw)
    if resum and "checksum" in raw:
        try:
            raw["checksum"]["arrays"] = array_checksum(raw)
        except (KeyError, TypeError, AttributeError):
            del raw["checksum"]
    out = tmp_path / "edited.pt"
    torch.save(raw, out)
    return out


def test_config_saved_before_a_field_existed(tmp_path):
    # a checkpoint from before ``envelope_rate`` (plain CNN stem) still rebuilds as such
    model = make_model("conv", envelope_rate=None).eval()
    src = _save(tmp_path / "old.pt", model)
    path = _edit(tmp_path, src, lambda r: r["model_config"].pop("envelope_rate"))
    ck = load_checkpoint(path)
    assert ck.model_config["envelope_rate"] is None
    x = torch.randn(2, N_CHANS, N_TIMES)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), model(x))


def test_missing_key(tmp_path, ckpt_path):
    path = _edit(tmp_path, ckpt_path, lambda r: r.pop("t_r"))
    with pytest.raises(
        ValueError, match=r"edited\.pt' is an incomplete checkpoint: missing key\(s\) \['t_r'\]"
    ):
        load_checkpoint(path)


def test_newer_format_version(tmp_path, ckpt_path):
    path = _edit(tmp_path, ckpt_path, lambda r: r.update(format_version=3))
    with pytest.raises(
        ValueError, match=r"edited\.pt' has format_version 3, newer than .* \(2\); upgrade"
    ):
        load_checkpoint(path)


def test_config_not_matching_weights(tmp_path, ckpt_path):
    path = _edit(tmp_path, ckpt_path, lambda r: r["model_config"].update(hidden=48))
    with pytest.raises(
        ValueError,
        match=r"edited\.pt': the weights do not match the 'conv' model config: .*size mismatch",
    ):
        load_checkpoint(path)
    path = _edit(tmp_path, ckpt_path, lambda r: r["model_config"].update(wings=2))
    with pytest.raises(ValueError, match=r"cannot rebuild model 'conv'.*'wings'"):
        load_checkpoint(path)
    path = _edit(tmp_path, ckpt_path, lambda r: r.update(model_name="mlp"))
    with pytest.raises(ValueError, match="unknown model_name 'mlp'"):
        load_checkpoint(path)


def test_save_validates_against_model(tmp_path):
    model = make_model("conv")
    with pytest.raises(ValueError, match="'ch_names' has 2 names but the model takes 4"):
        _save(tmp_path / "a.pt", model, ch_names=["a", "b"])
    with pytest.raises(ValueError, match=r"'preprocessing': sfreq 100.0 Hz differs from"):
        _save(tmp_path / "a.pt", model, sfreq=100.0)
    with pytest.raises(ValueError, match="winsize 3 s at 50 Hz is 150 samples, but the model"):
        _save(tmp_path / "a.pt", model, winsize=3.0)
    with pytest.raises(ValueError, match="'mask' selects"):
        _save(tmp_path / "a.pt", model, mask=np.ones(GRID, bool))
    with pytest.raises(ValueError, match="differs from the model's mask buffer"):
        _save(tmp_path / "a.pt", model, mask=small_mask()[::-1].copy())
    with pytest.raises(ValueError, match="'affine' must be a finite 4 × 4"):
        _save(tmp_path / "a.pt", model, affine=np.eye(3))
    with pytest.raises(TypeError, match="'model' must be a model from rt_eeg2fmri.models"):
        _save(tmp_path / "a.pt", torch.nn.Linear(2, 2))
    assert not list(tmp_path.iterdir())


def test_map_location_and_size(tmp_path):
    # the realistic conv checkpoint stays small: the mask is bit-packed
    from rt_eeg2fmri.models import build_model

    mask = np.zeros((53, 63, 52), bool)
    mask[10:40, 10:50, 10:40] = True
    cfg = {
        "n_chans": 4,
        "n_times": 200,
        "sfreq": 100.0,
        "n_voxels": int(mask.sum()),
        "grid_shape": [53, 63, 52],
    }
    model = build_model("conv", cfg)
    model.set_mask(mask)
    path = _save(tmp_path / "big.pt", model, sfreq=100.0, grid_shape=mask.shape, mask=mask)
    n_weights = sum(
        v.numel() * v.element_size() for v in model.state_dict().values() if v.dtype != torch.bool
    )
    assert path.stat().st_size < n_weights + 40_000  # packed mask ≈ 21 kB, not 174 kB
    ck = load_checkpoint(path, map_location=torch.device("cpu"))
    assert ck.device.type == "cpu" and ck.n_voxels == int(mask.sum())


def test_save_rejects_bad_fields(tmp_path):
    model = make_model("conv")
    with pytest.raises(ValueError, match=r"'grid_shape' \(5, 6, 5\) differs from the model's"):
        _save(tmp_path / "a.pt", model, grid_shape=(5, 6, 5), mask=np.ones((5, 6, 5), bool))
    with pytest.raises(TypeError, match="'mask' must be boolean, got dtype float64"):
        _save(tmp_path / "a.pt", model, mask=small_mask().astype(float))
    with pytest.raises(ValueError, match=r"'mask' has shape \(120,\), expected grid_shape"):
        _save(tmp_path / "a.pt", model, mask=small_mask().ravel())
    with pytest.raises(TypeError, match="'preprocessing' must be a Preprocessing"):
        _save(tmp_path / "a.pt", model, preprocessing={"sfreq": SFREQ})
    with pytest.raises(ValueError, match="'norm_stats' were estimated with method 'zscore'"):
        _save(tmp_path / "a.pt", model, norm="robust")
    with pytest.raises(ValueError, match="'norm_stats' are for channels"):
        _save(tmp_path / "a.pt", model, ch_names=["a", "b", "c", "d"])
    with pytest.raises(TypeError, match=r"metadata: keys must be str or int, got \(1, 2\)"):
        _save(tmp_path / "a.pt", model, metadata={(1, 2): "x"})
    assert not list(tmp_path.iterdir())


def test_load_rejects_inconsistent_fields(tmp_path, ckpt_path):
    path = _edit(tmp_path, ckpt_path, lambda r: r.update(format_version=0))
    with pytest.raises(ValueError, match=r"edited\.pt': invalid format_version 0"):
        load_checkpoint(path)
    path = _edit(tmp_path, ckpt_path, lambda r: r["grid"].update(n_voxels=3))
    with pytest.raises(ValueError, match=r"edited\.pt': the mask has \d+ voxels, grid says 3"):
        load_checkpoint(path)
    path = _edit(tmp_path, ckpt_path, lambda r: r.update(grid={"affine": AFFINE.tolist()}))
    with pytest.raises(ValueError, match=r"edited\.pt': malformed grid, mask or recording fields"):
        load_checkpoint(path)


def test_every_preprocessing_field_is_carried(tmp_path):
    # the band-pass, the target and the BOLD options all come back typed
    pre = Preprocessing(
        sfreq=SFREQ, winsize=2.0, l_freq=1.0, h_freq=20.0, target="median_ratio", fwhm=6.0,
        high_pass=0.01, norm="robust",
    )  # fmt: skip
    stats = NormStats("robust", np.zeros(N_CHANS), np.ones(N_CHANS), CH_NAMES)
    path = _save(tmp_path / "b.pt", make_model("conv"), preprocessing=pre, norm_stats=stats)
    ck = load_checkpoint(path)
    assert ck.preprocessing == pre and ck.norm_stats.method == "robust"
    path = _edit(tmp_path, path, lambda r: r["preprocessing"].update(lfreq=1.0))
    with pytest.raises(
        ValueError, match=r"malformed preprocessing.*unknown field\(s\) \['lfreq'\]"
    ):
        load_checkpoint(path)


def _as_format_1(raw: dict, *, l_freq=None, train_config=None) -> dict:
    """A format-2 checkpoint rewritten as the first release wrote it."""
    pre, stats = raw.pop("preprocessing"), raw.pop("norm_stats")
    raw.update(format_version=1, sfreq=pre["sfreq"], winsize=pre["winsize"])
    raw["preprocessing"] = {"norm": stats, "l_freq": l_freq, "h_freq": None, "target": "psc"}
    raw["grid"]["n_vox"] = raw["grid"].pop("n_voxels")
    raw["model_config"]["n_outputs"] = raw["model_config"].pop("n_voxels")
    raw["metadata"]["train_config"] = train_config or {}
    return raw


def test_format_1_checkpoints_migrate(tmp_path, ckpt_path, caplog):
    path = _edit(
        tmp_path,
        ckpt_path,
        lambda r: _as_format_1(r, train_config={"fwhm": 6.0, "high_pass": 0.008}),
    )
    ck = load_checkpoint(path)
    assert ck.format_version == 1
    assert ck.preprocessing == Preprocessing(sfreq=SFREQ, winsize=2.0, fwhm=6.0, high_pass=0.008)
    assert ck.norm_stats.ch_names == CH_NAMES
    x = torch.randn(N_CHANS, N_TIMES)
    np.testing.assert_array_equal(ck.predict(x), load_checkpoint(ckpt_path).predict(x))
    from rt_eeg2fmri._logging import logger

    logger.addHandler(caplog.handler)
    try:
        path = _edit(tmp_path, ckpt_path, lambda r: _as_format_1(r, l_freq=1.0))
        assert load_checkpoint(path).preprocessing.l_freq == 1.0
    finally:
        logger.removeHandler(caplog.handler)
    assert "band-passed zero-phase" in caplog.text and "Retrain it" in caplog.text


def test_a_window_that_is_not_the_models_is_refused_on_load(tmp_path, ckpt_path):
    """A checkpoint whose winsize was edited (1e6 s) fails on load, before anything is sized."""

    def edit(raw):
        raw["preprocessing"] = {**raw["preprocessing"], "winsize": 1e6}

    path = _edit(tmp_path, ckpt_path, edit)
    with pytest.raises(ValueError, match=r"'.*\.pt': preprocessing: winsize 1e\+06 s at 50 Hz"):
        load_checkpoint(path)


def test_arrays_altered_after_saving_are_refused(tmp_path, ckpt_path):
    """Two mask bits swapped (the voxel count unchanged): the checksum names the damage."""

    def swap_bits(raw):
        bits = np.unpackbits(raw["mask"].numpy())
        on, off = np.flatnonzero(bits)[0], np.flatnonzero(bits == 0)[0]
        bits[on], bits[off] = 0, 1
        raw["mask"] = torch.from_numpy(np.packbits(bits))

    path = _edit(tmp_path, ckpt_path, swap_bits, resum=False)
    with pytest.raises(ValueError, match=r"edited\.pt': its arrays do not match the checksum"):
        load_checkpoint(path)
    path = _edit(tmp_path, ckpt_path, lambda r: r["state_dict"][next(iter(r["state_dict"]))]
                 .view(-1)[:1].add_(1.0), resum=False)  # fmt: skip
    with pytest.raises(ValueError, match="altered or damaged after it was saved"):
        load_checkpoint(path)
    # metadata is not covered (a note added by hand), and checkpoints from before the
    # checksum existed load as they did
    path = _edit(tmp_path, ckpt_path, lambda r: r["metadata"].update(note="x"), resum=False)
    assert load_checkpoint(path).metadata["note"] == "x"
    path = _edit(tmp_path, ckpt_path, lambda r: r.pop("checksum"), resum=False)
    load_checkpoint(path)


def test_a_checkpoint_keeps_its_task_readout(tmp_path, rng):
    """``calibrate --events``'s weights: written, read back, covered by the checksum."""
    from rt_eeg2fmri.task import TaskReadout

    n = int(small_mask().sum())
    task = TaskReadout(["go", "stop"], [["S  1"], []], [0.2, 0.0], rng.standard_normal((2, n)))
    path = _save(tmp_path / "task.pt", make_model("conv"), task=task)
    back = load_checkpoint(path).task
    assert back.trial_types == ["go", "stop"] and back.codes == [["S  1"], []]
    assert back.durations == [0.2, 0.0]
    np.testing.assert_array_equal(back.weights, task.weights)
    ckpt = torch.load(path, weights_only=True)
    ckpt["task"]["weights"][0, 0] += 1.0
    torch.save(ckpt, tmp_path / "altered.pt")
    with pytest.raises(ValueError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "altered.pt")
    ckpt["task"]["durations"] = [0.2]
    del ckpt["checksum"]
    torch.save(ckpt, tmp_path / "malformed.pt")
    with pytest.raises(ValueError, match="malformed task readout: a task readout has 2 trial"):
        load_checkpoint(tmp_path / "malformed.pt")
    with pytest.raises(ValueError, match=f"'task' weighs {n - 1} voxels, the model predicts {n}"):
        _save(tmp_path / "x.pt", make_model("conv"),
              task=TaskReadout(["go"], [[]], [0], np.ones((1, n - 1))))  # fmt: skip
