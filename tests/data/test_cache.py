"""The memory-mapped window cache and ``PairDataset``, on real BIDS files (pybv + NIfTI)."""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from rt_eeg2fmri.data import (
    BoldChain,
    EEGChain,
    PairDataset,
    Preprocessing,
    RunRef,
    build_cache,
    channel_stats,
    find_runs,
    load_pairs,
)
from rt_eeg2fmri.data.cache import file_hash
from rt_eeg2fmri.data.pairs import run_file

from .builders import write_bids_run

GRID = (5, 6, 4)
WIN = 4.0  # s: 12 volumes at TR 2 s → skip 2 → 10 pairs per run
SFREQ = 250.0


def _mask():
    mask = np.ones(GRID, bool)
    mask[0, 0, :] = False
    return mask


MASK = _mask()


def _write(root, sub, run, **kw):
    seed = 10 * int(sub) + int(run)
    return write_bids_run(root, sub=sub, run=run, n_volumes=12, sfreq=SFREQ, seed=seed, **kw)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    for sub in ("01", "02"):
        for run in ("1", "2"):
            _write(root, sub, run)
    return root


@pytest.fixture
def runs(dataset_dir):
    return find_runs(dataset_dir)


@pytest.fixture
def loads(monkeypatch):
    """Counts ``RunRef.load`` calls (the real reader still runs)."""
    calls = []
    real = RunRef.load

    def counting(self):
        calls.append(self.name)
        return real(self)

    monkeypatch.setattr(RunRef, "load", counting)
    return calls


def _pre(**kw) -> Preprocessing:
    return Preprocessing(**{"winsize": WIN, **kw})


def _build(runs, tmp_path, **kw):
    """``build_cache`` with the preprocessing fields given flat."""
    fields = set(Preprocessing.field_names())
    pre = _pre(**{k: kw.pop(k) for k in list(kw) if k in fields})
    opts = dict(root=tmp_path / "cache", mask=MASK, progress=False, preprocessing=pre)
    opts.update(kw)
    return build_cache(runs, **opts)


def test_pairs_align_with_session(runs, tmp_path):
    ds = _build(runs, tmp_path)
    assert len(ds) == 40 and ds.n_times == 1000 and ds.sfreq == SFREQ and ds.t_r == 2.0
    assert ds.grid_shape == GRID and ds.ch_names == ["EEG00", "EEG01", "EEG02", "EEG03"]
    np.testing.assert_array_equal(ds.mask, MASK)
    assert [r["n_pairs"] for r in ds.runs] == [10] * 4
    assert [r["name"] for r in ds.runs] == [r.name for r in runs]
    for r, ref in enumerate(runs):
        s = ref.load()
        sel = np.flatnonzero(ds.run_index == r)
        np.testing.assert_array_equal(ds.volume[sel], np.arange(2, 12))
        assert (ds.subject[sel] == ref.subject).all()
        stop = np.round((s.volume_onsets[ds.volume[sel]] + s.t_r) * s.sfreq).astype(int)
        np.testing.assert_array_equal(ds.start[sel] + ds.n_times, stop)
        X, Y = ds.get_batch(sel)
        assert X.shape == (10, 4, 1000) and Y.shape == (10, MASK.sum())
        st = ds.stats[ref.subject]
        raw = X * st.scale[:, None] + st.center[:, None]
        for j, end in enumerate(stop):
            np.testing.assert_allclose(raw[j], s.eeg[:, end - 1000 : end], rtol=0, atol=1e-10)
        psc = BoldChain().run(s.bold, MASK, affine=s.affine, t_r=s.t_r)
        np.testing.assert_allclose(Y, psc[ds.volume[sel]], rtol=1e-6)
        x0, y0 = ds[int(sel[3])]
        np.testing.assert_array_equal(x0, X[3])
        np.testing.assert_array_equal(y0, Y[3])
        np.testing.assert_array_equal(ds.get_targets(sel), Y)
        np.testing.assert_array_equal(ds.volume_times(r), s.volume_onsets)
        ev = ds.events(r)
        np.testing.assert_allclose(ev["onset"], s.events["onset"])
        assert list(ev["trial_type"]) == list(s.events["trial_type"])


def test_stats_per_subject(runs, tmp_path):
    ds = _build(runs, tmp_path, norm="robust")
    for subject in ("01", "02"):
        eeg = [r.load().eeg for r in runs if r.subject == subject]
        want = channel_stats(eeg, method="robust", ch_names=ds.ch_names)
        np.testing.assert_allclose(ds.stats[subject].center, want.center, rtol=1e-6)
        np.testing.assert_allclose(ds.stats[subject].scale, want.scale, rtol=1e-6)
    zs = _build(runs, tmp_path)
    eeg = [r.load().eeg for r in runs if r.subject == "02"]
    want = channel_stats(eeg, ch_names=zs.ch_names)
    np.testing.assert_allclose(zs.stats["02"].center, want.center, rtol=1e-9)
    np.testing.assert_allclose(zs.stats["02"].scale, want.scale, rtol=1e-9)
    x, _ = zs.get_batch(np.arange(len(zs)))
    assert abs(x.mean()) < 0.1 and 0.9 < x.std() < 1.1
    pooled = zs.pooled_stats()
    assert pooled.n_times == sum(s.n_times for s in zs.stats.values())
    assert zs.subset(subjects=["01"]).pooled_stats().to_dict() == zs.stats["01"].to_dict()


def test_median_ratio_uses_subject_median(runs, tmp_path):
    ds = _build(runs, tmp_path, target="median_ratio")
    assert ds.target == "median_ratio"
    sessions = [r.load() for r in runs if r.subject == "01"]
    series = [s.bold[MASK].T.astype(np.float64) for s in sessions]
    median = np.median(np.concatenate(series), axis=0)
    for r, v in enumerate(series):
        sel = np.flatnonzero(ds.run_index == r)
        want = v[ds.volume[sel]] / median - 1
        np.testing.assert_allclose(ds.get_targets(sel), want, rtol=1e-5, atol=1e-7)


def test_resampled_and_filtered_cache(runs, tmp_path):
    ds = _build(runs, tmp_path, sfreq=125.0, l_freq=1.0, h_freq=40.0)
    assert ds.sfreq == 125.0 and ds.n_times == 500 and len(ds) == 40
    s = runs[1].load()
    cached = np.load(ds.path / "run-00001_eeg.npy")
    # the chain the live stream runs, fed the whole run at once
    want = EEGChain.for_session(ds.preprocessing, s).run(s.eeg)
    np.testing.assert_array_equal(cached, want)
    # chunk by chunk (20 ms, as a replayed stream) gives the same samples
    chain = EEGChain.for_session(ds.preprocessing, s)
    parts = [chain.process(s.eeg[:, a : a + 5].T)[0] for a in range(0, s.n_times, 5)]
    streamed = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(streamed, cached[:, : streamed.shape[1]], rtol=1e-5, atol=1e-9)
    stop = np.round((s.volume_onsets[ds.volume[ds.run_index == 1]] + 2.0) * 125).astype(int)
    np.testing.assert_array_equal(ds.start[ds.run_index == 1] + 500, stop)


def test_second_build_reuses_cache_without_loading(runs, tmp_path, loads):
    first = _build(runs, tmp_path)
    assert len(loads) == 4
    again = _build(runs, tmp_path)
    assert len(loads) == 4 and again.path == first.path
    assert again.fingerprint == first.fingerprint
    memo = json.loads((tmp_path / "cache" / "file-hashes.json").read_text())
    assert str(runs[0].files["eeg"].resolve()) in memo


def test_fingerprint_tracks_content_and_parameters(dataset_dir, tmp_path, loads):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset_dir, root)
    runs = find_runs(root)
    base = _build(runs, tmp_path).fingerprint
    assert _build(runs, tmp_path).fingerprint == base
    assert _build(runs, tmp_path, target="median_ratio").fingerprint != base
    assert _build(runs, tmp_path, winsize=6.0).fingerprint != base
    assert _build(runs, tmp_path, mask=~MASK).fingerprint != base
    n = len(loads)
    events = runs[2].files["eeg_events"]
    events.write_text(events.read_text().replace("target", "novel"))
    changed = _build(runs, tmp_path)
    assert changed.fingerprint != base and len(loads) == n + 4
    assert set(changed.events(2)["trial_type"]) == {"novel"}


def test_a_cache_built_by_other_preprocessing_code_is_rebuilt(runs, tmp_path, loads, caplog):
    """An upgrade or a fix of the code that reads and preprocesses the data must not reuse
    what the old code cached: the cache records its code's hash and is rebuilt, in place,
    when the hash differs (the data fingerprint stays the data's)."""
    import logging

    import rt_eeg2fmri.data.cache as cache

    first = _build(runs, tmp_path)
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["code"] == cache.code_version() and len(loads) == 4
    # the hash covers the sources of the data path (a readable file per module listed)
    root = Path(cache.__file__).resolve().parents[1]
    assert all((root / rel).exists() for rel in cache.CODE)
    meta["code"] = "0" * 20  # what another version of the code wrote
    (first.path / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO, logger="rt_eeg2fmri"):
        again = _build(runs, tmp_path)
    assert len(loads) == 8 and again.path == first.path
    assert again.fingerprint == first.fingerprint
    assert json.loads((again.path / "meta.json").read_text())["code"] == cache.code_version()
    assert "another version of the preprocessing code built it" in caplog.text
    _build(runs, tmp_path)
    assert len(loads) == 8  # and then reused


def test_file_hash_memo_skips_unchanged_files(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 << 20))  # 3 blocks of 1 MiB
    memo = {}
    digest = file_hash(path, memo=memo)
    import hashlib

    assert digest == hashlib.blake2b(path.read_bytes(), digest_size=20).hexdigest()
    key = str(path.resolve())
    memo[key][2] = "from-memo"  # same size and mtime: the memo answers
    assert file_hash(path, memo=memo) == "from-memo"
    os.utime(path, ns=(1, 1))
    assert file_hash(path, memo=memo) == digest


def test_interrupted_build_leaves_no_trusted_cache(runs, tmp_path, monkeypatch, loads):
    real = RunRef.load

    def failing(self):
        if len(loads) == 3:
            raise RuntimeError("disk unplugged")
        return real(self)

    monkeypatch.setattr(RunRef, "load", failing)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        _build(runs, tmp_path)
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert left == ["file-hashes.json"]
    monkeypatch.setattr(RunRef, "load", real)
    ds = _build(runs, tmp_path)
    assert len(ds) == 40


def test_incomplete_or_abandoned_cache_is_rebuilt(runs, tmp_path, loads):
    ds = _build(runs, tmp_path)
    (ds.path / "run-00001_targets.npy").unlink()
    stale_tmp = tmp_path / "cache" / f".tmp-{ds.fingerprint}-999999999-dead"
    stale_tmp.mkdir()
    again = _build(runs, tmp_path)
    assert len(loads) == 8 and (again.path / "run-00001_targets.npy").is_file()
    assert not stale_tmp.exists()


def test_channels_reordered_by_name(tmp_path):
    root = tmp_path / "bids"
    _write(root, "01", "1", ch_names=["Fz", "Cz", "Pz", "Oz"])
    _write(root, "01", "2", ch_names=["Pz", "fz", "Oz", "Cz"])
    runs = find_runs(root)
    ds = _build(runs, tmp_path)
    assert ds.ch_names == ["Fz", "Cz", "Pz", "Oz"]
    s = runs[1].load()
    cached = np.load(ds.path / "run-00001_eeg.npy")
    np.testing.assert_array_equal(cached, s.eeg[[1, 3, 0, 2]])


def test_a_run_with_another_cap_is_interpolated_or_named(tmp_path):
    """Runs need not record the same channels: the montage stage maps each onto the first's."""
    cap = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "P3", "P4"]
    root = tmp_path / "bids"
    _write(root, "01", "1", ch_names=cap)
    _write(root, "01", "2", ch_names=["Fz", "Cz", "Pz", "Oz", "C3", "C4", "P3", "POz"])  # no P4
    ds = _build(find_runs(root), tmp_path)
    assert ds.ch_names == cap
    assert np.isfinite(np.load(ds.path / "run-00001_eeg.npy")).all()
    # a model channel too far from every electrode of a run is named with the run
    other = tmp_path / "other"
    _write(other, "01", "1", ch_names=["Fz", "Cz", "Pz", "Oz"])
    _write(other, "01", "2", ch_names=["Fz", "Cz", "Pz", "T7"])
    with pytest.raises(
        ValueError, match=r"sub-01_task-oddball_run-2 .*model channel\(s\) Oz \(76 mm\)"
    ):
        _build(find_runs(other), tmp_path)
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_grid_mismatch_and_runs_of_two_trs(tmp_path, caplog):
    root = tmp_path / "grid"
    _write(root, "01", "1")
    _write(root, "02", "1", grid=(5, 6, 5))
    with pytest.raises(ValueError, match="BOLD grids differ: sub-01.*sub-02"):
        _build(find_runs(root), tmp_path, mask=None)
    root = tmp_path / "tr"
    _write(root, "01", "1")
    _write(root, "02", "1", t_r=2.5)
    ds = _build(find_runs(root), tmp_path)  # each run's windows end at its own volumes
    assert "sub-02_task-oddball_run-1" in caplog.text and "RepetitionTime 2.5 s" in caplog.text
    assert [ds.run_t_r(r) for r in range(2)] == [2.0, 2.5] and ds.t_r == 2.0


def test_masks(runs, tmp_path):
    auto = _build(runs, tmp_path, mask=None)  # small grid: mask from the data
    assert auto.mask.shape == GRID and auto.mask.any()
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(MASK.astype(np.uint8), np.diag([3.0, 3.0, 3.0, 1.0])), path)
    from_file = _build(runs, tmp_path, mask=path)
    np.testing.assert_array_equal(from_file.mask, MASK)
    assert from_file.fingerprint == _build(runs, tmp_path).fingerprint
    with pytest.raises(ValueError, match=r"'mask' has shape \(5, 6, 5\).*sub-01.* \(5, 6, 4\)"):
        _build(runs, tmp_path, mask=np.ones((5, 6, 5), bool))
    with pytest.raises(ValueError, match="'mask' selects no voxel"):
        _build(runs, tmp_path, mask=np.zeros(GRID, bool))
    with pytest.raises(ValueError, match="'mask' must be boolean"):
        _build(runs, tmp_path, mask=np.full(GRID, 2.0))
    with pytest.raises(FileNotFoundError, match="mask file not found"):
        _build(runs, tmp_path, mask=tmp_path / "nope.nii.gz")


def test_spm_grid_uses_mni_mask(tmp_path):
    from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mni_mask

    root = tmp_path / "spm"
    _write(root, "01", "1", grid=GRID_SHAPE, affine=np.array(GRID_AFFINE))
    ds = _build(find_runs(root), tmp_path, mask=None)
    np.testing.assert_array_equal(ds.mask, mni_mask())
    assert ds.get_targets([0]).shape == (1, int(mni_mask().sum()))


def test_build_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="'runs' is empty"):
        build_cache([], root=tmp_path)
    with pytest.raises(TypeError, match="must hold RunRef objects"):
        build_cache(["sub-01"], root=tmp_path)
    with pytest.raises(ValueError, match="more than once"):
        _build([runs[0], runs[0]], tmp_path)
    with pytest.raises(ValueError, match="'target' must be one of"):
        _build(runs, tmp_path, target="zscore")
    with pytest.raises(ValueError, match="'norm' must be one of"):
        _build(runs, tmp_path, norm="minmax")
    with pytest.raises(ValueError, match="Nyquist frequency of sfreq=125"):
        _build(runs, tmp_path, sfreq=125.0, h_freq=70.0)
    with pytest.raises(ValueError, match="Nyquist frequency of sfreq=250"):
        _build(runs, tmp_path, h_freq=130.0)
    with pytest.raises(ValueError, match="rational ratio"):
        _build(runs, tmp_path, sfreq=250.0 / 7.000001)
    with pytest.raises(ValueError, match=r"winsize=100.0 s.*too short"):
        _build(runs, tmp_path, winsize=100.0)
    with pytest.raises(ValueError, match="'skip' must be >= 0"):
        _build(runs, tmp_path, skip=-1)
    with pytest.raises(FileNotFoundError, match="not a window cache"):
        PairDataset(tmp_path)


def test_subset_shares_maps(runs, tmp_path):
    ds = _build(runs, tmp_path)
    two = ds.subset(subjects=["2"])
    assert len(two) == 20 and set(two.subject) == {"02"} and list(two.stats) == ["02"]
    assert two._maps is ds._maps
    np.testing.assert_array_equal(two.get_batch([0])[0], ds.get_batch([20])[0])
    assert len(ds.subset(exclude_subjects=["01"])) == 20
    one_run = ds.subset(runs=["sub-01_task-oddball_run-2"])
    assert set(one_run.run_index) == {1} and len(ds.subset(runs=[0, 3])) == 20
    assert len(ds.subset(subjects=[1], runs=[3])) == 0
    with pytest.raises(ValueError, match=r"unknown subject '07'; subjects: \['01', '02'\]"):
        ds.subset(subjects=["07"])
    with pytest.raises(ValueError, match="unknown run 'sub-09'"):
        ds.subset(runs=["sub-09"])
    with pytest.raises(ValueError, match="run index 4 out of range"):
        ds.subset(runs=[4])
    with pytest.raises(ValueError, match="'run_index' 9 out of range"):
        ds.events(9)
    with pytest.raises(IndexError, match="pair index 40 out of range"):
        ds[40]


def test_torch_interface_and_pickling(runs, tmp_path):
    ds = _build(runs, tmp_path)
    ds.get_batch(np.arange(len(ds)))  # open every map
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # index arrays only, never the mapped data
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.get_batch([7])[0], ds.get_batch([7])[0])
    loader = torch.utils.data.DataLoader(ds.as_torch(), batch_size=8, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == (8, 4, 1000) and y.shape == (8, MASK.sum()) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy(), ds.get_batch(np.arange(8))[0])
    out = (np.empty((8, 4, 1000), np.float32), np.empty((8, MASK.sum()), np.float32))
    X, _ = ds.get_batch([1, 2, 3], out=out)
    assert X.base is out[0] or X.base is out[0].base
    with pytest.raises(ValueError, match="cannot hold 9 pairs"):
        ds.get_batch(np.arange(9), out=out)


def test_iterating_windows_keeps_heap_flat(runs, tmp_path):
    ds = _build(runs, tmp_path)
    out = (np.empty((8, 4, ds.n_times), np.float32), np.empty((8, ds.n_voxels), np.float32))

    def epoch():
        for i in range(len(ds)):
            ds[i]
        for b in range(0, len(ds), 8):
            ds.get_batch(np.arange(b, min(b + 8, len(ds))), out=out)

    epoch()  # opens the maps
    tracemalloc.start()
    try:
        epoch()
        after_one = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            epoch()
        after_four, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after_four - after_one < 10_000
    assert peak < 200_000  # one window + one target at a time, far below the 40 windows


def test_load_pairs(dataset_dir, runs, tmp_path, loads):
    opts = dict(root=tmp_path / "c", preprocessing=_pre(), mask=MASK, progress=False)
    ds = load_pairs(dataset_dir, **opts)
    assert ds.root == dataset_dir and len(ds) == 40
    one = load_pairs(dataset_dir, subject="02", **opts)
    assert set(one.subject) == {"02"} and len(one) == 20
    same = load_pairs(runs, **opts)
    assert same.fingerprint == ds.fingerprint and same.root is None and len(loads) == 6
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['subject'\]"):
        load_pairs(runs, subject="01", root=tmp_path / "c")
    with pytest.raises(ValueError, match="no runs found"):
        load_pairs(dataset_dir, subject="09", root=tmp_path / "c")


@pytest.mark.parametrize(
    ("option", "value"), [("fwhm", 6.0), ("high_pass", 0.1)], ids=["fwhm", "high_pass"]
)
def test_bold_options_shape_the_targets(tmp_path, option, value):
    # spatial smoothing before the targets (SPM's s step), drift removal after them
    from rt_eeg2fmri.data.bold import cosine_drifts, masked_series, remove_drifts, smooth_bold

    write_bids_run(tmp_path / "ds", sub="01", n_chans=4, sfreq=50.0, n_volumes=24, t_r=1.0)
    runs = find_runs(tmp_path / "ds")
    opts = dict(root=tmp_path / "c", progress=False)
    plain = build_cache(runs, preprocessing=Preprocessing(winsize=4.0), **opts)
    ds = build_cache(runs, preprocessing=Preprocessing(winsize=4.0, **{option: value}), **opts)
    assert plain.fingerprint != ds.fingerprint and getattr(ds.preprocessing, option) == value
    s = runs[0].load()

    def psc(bold):
        v = masked_series(bold, ds.mask).astype(np.float64)
        return 100 * (v - v.mean(0)) / v.mean(0)

    if option == "fwhm":
        expected = psc(smooth_bold(s.bold, s.affine, value))
    else:
        expected = remove_drifts(psc(s.bold), s.t_r, value)
        # the cached run is orthogonal to every drift regressor (4 below 0.1 Hz in 24 s)
        cached = np.load(ds.path / run_file(0, "targets"))
        basis = cosine_drifts(24, 1.0, value)
        assert basis.shape == (24, 4)
        assert np.abs(basis.T @ cached).max() < 1e-3 * np.abs(cached).max()
    np.testing.assert_allclose(ds.get_targets([0])[0], expected[ds.volume[0]], atol=1e-5)
    assert not np.allclose(plain.get_targets([0]), ds.get_targets([0]))
    with pytest.raises(ValueError, match=f"'{option}' must be positive"):
        Preprocessing(winsize=4.0, **{option: -1.0})


def test_cosine_drifts_match_spm():
    from rt_eeg2fmri.data.bold import cosine_drifts, remove_drifts

    # SPM: 155 scans, TR 2 s, 128 s cut-off → spm_dctmtx order fix(2·310/128 + 1) = 5,
    # i.e. 4 drifts besides the constant
    basis = cosine_drifts(155, 2.0, 1 / 128)
    assert basis.shape == (155, 4)
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-12)
    t = np.arange(155) * 2.0
    series = np.stack([10 + 0.02 * t, 10 + np.sin(2 * np.pi * t / 20)], axis=1)
    out = remove_drifts(series, 2.0, 1 / 128)
    np.testing.assert_allclose(out.mean(0), series.mean(0), rtol=1e-5)  # means kept
    assert out[:, 0].std() < 0.05 * series[:, 0].std()  # the linear drift is gone
    assert np.corrcoef(out[:, 1], series[:, 1])[0, 1] > 0.99  # a 20 s signal stays
    with pytest.raises(ValueError, match=r"\(n_volumes, n_voxels\)"):
        remove_drifts(np.zeros(5), 2.0, 0.01)


def test_windows_over_bad_spans_are_left_out(tmp_path):
    """A span annotated ``BAD_*`` (MNE's convention; BrainVision gives ``Bad/BAD_…``) takes
    the windows that overlap it out of the pairs and its samples out of the normalisation
    statistics; reader option ``keep_bad`` keeps them."""
    root = tmp_path / "bids"
    paths = _write(root, "01", "1")
    vmrk = paths["eeg"].with_suffix(".vmrk")
    n_marks = vmrk.read_text().count("\nMk")
    # 8–11 s bad, with a 1-V glitch under it (the .eeg is float32 µV, multiplexed)
    vmrk.write_text(vmrk.read_text() + f"Mk{n_marks + 1}=Bad,BAD_glitch,{round(8 * SFREQ) + 1},"
                    f"{round(3 * SFREQ)},0\n")  # fmt: skip
    data = np.memmap(paths["eeg"].with_suffix(".eeg"), np.float32, "r+").reshape(-1, 4)
    data[round(9 * SFREQ) : round(10 * SFREQ)] = 1e6
    data.flush()
    del data
    runs = find_runs(root)
    session = runs[0].load()
    np.testing.assert_allclose(session.bad_spans, [[8.0, 11.0]])
    assert "BAD_glitch" not in set(session.events["trial_type"])
    ds = _build(runs, tmp_path)
    # volume k's window is [2k - 1, 2k + 3) s: k = 3, 4, 5 overlap 8–11 s
    np.testing.assert_array_equal(ds.volume, [2, 6, 7, 8, 9, 10, 11])
    assert ds.runs[0]["n_pairs"] == 7 and ds.runs[0]["n_bad_windows"] == 3
    good = np.delete(session.eeg, np.s_[round(8 * SFREQ) : round(11 * SFREQ)], axis=1)
    want = channel_stats([good], ch_names=ds.ch_names)
    np.testing.assert_allclose(ds.stats["01"].center, want.center, rtol=1e-6)
    np.testing.assert_allclose(ds.stats["01"].scale, want.scale, rtol=1e-6)
    kept = _build(find_runs(root, keep_bad=True), tmp_path)
    assert len(kept) == 10 and kept.runs[0]["n_bad_windows"] == 0
    assert kept.stats["01"].scale.min() > 100 * want.scale.max()  # the glitch is in
    # `info --full` counts the pairs training will have
    from rt_eeg2fmri.data.summary import format_summary, summarize

    summary = summarize(root, winsize=WIN, full=True)
    assert summary["n_pairs"] == 7 and summary["runs"][0]["n_bad_windows"] == 3
    assert "7 pairs (3 over bad spans left out)" in format_summary(summary)
    assert summarize(root, winsize=WIN, full=True, keep_bad=True)["n_pairs"] == 10


def test_a_cache_of_live_corrected_eeg_is_keyed_on_the_live_corrections_version(
    runs, dataset_dir, monkeypatch
):
    """EEG read through the live corrections (``correct=live``) changes with their code: a
    new version of it must not reuse a cache the old one built; other caches stay put."""
    import rt_eeg2fmri.data.correct as correct
    from rt_eeg2fmri.data.cache import fingerprint

    live = find_runs(dataset_dir, correct="live")
    offline = find_runs(dataset_dir, correct="gradient,bcg")
    before = fingerprint(live, {}), fingerprint(offline, {}), fingerprint(runs, {})
    monkeypatch.setattr(correct, "LIVE_VERSION", correct.LIVE_VERSION + 1)
    after = fingerprint(live, {}), fingerprint(offline, {}), fingerprint(runs, {})
    assert after[0] != before[0] and after[1:] == before[1:]
