"""Any cap onto a model's channels: MNE's spherical splines, one fixed matrix per run or stream."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from rt_eeg2fmri.data import EEGChain, Preprocessing, build_cache, find_runs
from rt_eeg2fmri.data.montage import standard_positions
from rt_eeg2fmri.sim.presets import CHANNELS_16, CHANNELS_32, CHANNELS_34
from tests.data.builders import write_bids_run

MODEL = list(CHANNELS_34)


def _chain(labels, *, ch_names=MODEL, **kw):
    pre = Preprocessing(sfreq=100.0)
    return EEGChain(
        pre, ch_names=ch_names, sfreq=100.0, labels=list(labels), units=["V"] * len(labels), **kw
    )


def _field(names, n_times=2000, seed=0):
    """A smooth scalp field: a few broad sources over the head, shape (n_chans, n_times)."""
    rng = np.random.default_rng(seed)
    pos = np.array([standard_positions()[n.lower()] for n in names])
    centres = rng.standard_normal((6, 3))
    centres = 0.09 * centres / np.linalg.norm(centres, axis=1, keepdims=True)
    gain = np.exp(-(np.linalg.norm(pos[:, None] - centres[None], axis=-1) ** 2) / (2 * 0.05**2))
    return gain @ rng.standard_normal((6, n_times))


def test_matrix_is_mnes_interpolate_bads():
    chain = _chain(CHANNELS_16)
    montage = chain.montage
    missing = [c for c in MODEL if c not in CHANNELS_16]
    assert montage.interpolated == missing and len(missing) == 18
    # MNE: the missing channels as bads of a recording that has all 34 positions
    raw = mne.io.RawArray(
        np.vstack([np.eye(16), np.zeros((18, 16))]),
        mne.create_info([*CHANNELS_16, *missing], 100.0, "eeg"),
        verbose="error",
    )
    pos = {c: standard_positions()[c.lower()] for c in raw.ch_names}
    raw.set_montage(mne.channels.make_dig_montage(pos, coord_frame="head"), verbose="error")
    raw.info["bads"] = missing
    with mne.utils.use_log_level("error"):
        raw.interpolate_bads(reset_bads=True)
    want = raw.get_data()[16:]
    rows = [MODEL.index(c) for c in missing]
    np.testing.assert_allclose(montage.matrix[rows], want, atol=1e-12)
    np.testing.assert_allclose(montage.matrix[rows].sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("cap", [CHANNELS_16, CHANNELS_32], ids=["16ch", "32ch"])
def test_recorded_channels_pass_and_missing_ones_are_interpolated(cap):
    truth = _field(MODEL)
    recorded = truth[[MODEL.index(c) for c in cap]]
    chain = _chain([*cap, "ECG"])  # a channel without a position is left out of the fit
    out = chain.process(np.vstack([recorded, np.ones(truth.shape[1])]).T)[0]
    for c in cap:
        np.testing.assert_allclose(out[MODEL.index(c)], truth[MODEL.index(c)], rtol=1e-12)
    r = [
        np.corrcoef(out[MODEL.index(c)], truth[MODEL.index(c)])[0, 1]
        for c in chain.montage.interpolated
    ]
    assert np.mean(r) > 0.9 and min(r) > 0.75, r  # the edge of a 16-channel cap extrapolates
    # better than taking the nearest recorded electrode
    nearest = []
    for c in chain.montage.interpolated:
        d = [
            np.linalg.norm(standard_positions()[c.lower()] - standard_positions()[o.lower()])
            for o in cap
        ]
        nearest.append(np.corrcoef(recorded[int(np.argmin(d))], truth[MODEL.index(c)])[0, 1])
    assert np.mean(r) > np.mean(nearest)


def test_the_chain_stays_chunked_equals_one_shot():
    x = _field(list(CHANNELS_16), 1000).T
    one = _chain(CHANNELS_16).process(x)[0]
    chain = _chain(CHANNELS_16)
    parts = np.concatenate([chain.process(x[a : a + 7])[0] for a in range(0, 1000, 7)], axis=1)
    np.testing.assert_allclose(parts, one, rtol=1e-12)


def test_positions_given_win_over_the_names():
    cap = list(CHANNELS_16)
    given = {c: standard_positions()[c.lower()] for c in cap}
    given["Oz"] = given["Oz"] + [0.0, 0.015, 0.0]  # a cap whose 'Oz' sits 15 mm forward
    a, b = _chain(cap).montage, _chain(cap, positions=given).montage
    assert not np.allclose(a.matrix, b.matrix)


def test_channels_that_cannot_be_interpolated_are_named():
    frontal = ["Fp1", "Fp2", "AF3", "AF4", "F3", "Fz", "F4"]
    with pytest.raises(
        ValueError, match=r"model channel\(s\) O1 \(\d+ mm\), Oz .* lie farther than 70 mm"
    ):
        _chain(frontal, ch_names=["Fz", "O1", "Oz"])
    with pytest.raises(
        ValueError, match=r"missing from the stream: 'X7'.*no position for \['X7'\]"
    ):
        _chain(["Fz", "Cz", "Pz", "Oz"], ch_names=["Cz", "X7"])
    with pytest.raises(ValueError, match="spherical splines need at least 4 recorded channels"):
        _chain(["Fz", "Cz"], ch_names=["Fz", "Pz"])
    with pytest.raises(ValueError, match=r"missing from the stream: 'Pz'"):
        _chain(["Fz", "Cz", "Oz", "O1"], ch_names=["Fz", "Pz"], interpolate=False)
    # zero-filling stays an explicit choice
    zero = _chain(["Fz", "Cz", "Oz", "O1"], ch_names=["Fz", "Pz"], allow_missing=True)
    assert zero.montage is None and (zero.process(np.ones((3, 4)))[0][1] == 0).all()


def test_the_cache_puts_any_cap_on_the_models_channels(tmp_path):
    # evaluate and calibration read another cap's recording onto a checkpoint's channels
    write_bids_run(tmp_path / "ds", sub="01", ch_names=list(CHANNELS_16), n_chans=16,
                   sfreq=100.0, n_volumes=12, t_r=1.0)  # fmt: skip
    runs = find_runs(tmp_path / "ds")
    pre = Preprocessing(winsize=4.0)
    ds = build_cache(runs, preprocessing=pre, ch_names=MODEL, root=tmp_path / "c", progress=False)
    assert ds.ch_names == MODEL and ds.n_chans == 34
    s = runs[0].load()
    want = EEGChain.for_session(ds.preprocessing, s, ch_names=MODEL).run(s.eeg)
    np.testing.assert_array_equal(np.load(ds.path / "run-00000_eeg.npy"), want)


def test_a_caps_own_frame_and_units_are_aligned_to_the_10_05_positions():
    # the cap's electrodes in mm, rotated and shifted (a digitiser's frame); the model
    # channels it lacks come from the 10-05 positions, mapped into that frame
    cap = list(CHANNELS_16)
    theta = 0.4
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    own = {c: 1e3 * rot @ standard_positions()[c.lower()] + [5.0, -3.0, 40.0] for c in cap}
    a, b = _chain(cap).montage, _chain(cap, positions=own).montage
    np.testing.assert_allclose(b.matrix, a.matrix, atol=1e-6)
    assert b.distance == pytest.approx(a.distance, rel=1e-6)  # in mm either way


def test_bids_electrodes_tsv_gives_the_positions(tmp_path):
    paths = write_bids_run(tmp_path / "ds", sub="01", ch_names=list(CHANNELS_16), n_chans=16,
                           sfreq=100.0, n_volumes=12, t_r=1.0)  # fmt: skip
    eeg_dir = paths["eeg"].parent
    rows = ["name\tx\ty\tz"] + [
        "\t".join([c, *(f"{1e3 * v:.4f}" for v in standard_positions()[c.lower()])])
        for c in CHANNELS_16
    ]
    rows[4] = "Fz\tn/a\tn/a\tn/a"  # an electrode without a position is left out
    (eeg_dir / "sub-01_electrodes.tsv").write_text("\n".join(rows) + "\n")
    (run,) = find_runs(tmp_path / "ds")
    assert run.files["electrodes"].name == "sub-01_electrodes.tsv"
    s = run.load()
    assert len(s.positions) == 15 and s.positions["Cz"] == pytest.approx(
        1e3 * standard_positions()["cz"], abs=1e-3
    )
    chain = EEGChain.for_session(Preprocessing(), s, ch_names=MODEL)
    assert chain.montage.interpolated == [c for c in MODEL if c not in CHANNELS_16]
    # in mm and the 10-05 frame: the same matrix as from the names
    np.testing.assert_allclose(chain.montage.matrix, _chain(CHANNELS_16).montage.matrix, atol=1e-6)
