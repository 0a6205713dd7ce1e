from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest

from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mni_mask
from rt_eeg2fmri.volume_stream import (
    decode_mask,
    encode_mask,
    parse_volume_stream_info,
    volume_stream_info,
)
from tests.replay.helpers import connect

GRID = (5, 6, 4)


def test_info_round_trip(uid, rng):
    mask = rng.random(GRID) > 0.4
    affine = np.array([[3.0, 0, 0, -78.25], [0, 3, 0, -112], [0, 0, 3, -70], [0, 0, 0, 1]])
    info = volume_stream_info(
        uid,
        content="prediction",
        grid_shape=GRID,
        affine=affine,
        t_r=1.5,
        source_id=uid,
        model="conv",
        mask=mask,
    )
    assert (info.type(), info.channel_count(), info.channel_format()) == ("fMRI", 120, 1)
    assert info.nominal_srate() == pytest.approx(1 / 1.5)
    meta = parse_volume_stream_info(info)
    assert meta.grid_shape == GRID and meta.t_r == 1.5 and meta.n_voxels == 120
    assert (meta.content, meta.model, meta.order, meta.units) == (
        "prediction",
        "conv",
        "C",
        "percent signal change",
    )
    np.testing.assert_array_equal(meta.affine, affine)
    np.testing.assert_array_equal(meta.mask, mask)
    vol = rng.standard_normal(GRID).astype(np.float32)
    sample = meta.to_sample(vol)
    np.testing.assert_array_equal(sample, vol.ravel())  # C order: z fastest
    np.testing.assert_array_equal(meta.to_volume(sample), vol)
    # the XML alone is enough (what LabRecorder stores in an XDF header)
    assert parse_volume_stream_info(info.as_xml()).grid_shape == GRID


def test_truth_without_mask_and_model(uid):
    info = volume_stream_info(
        uid, content="truth", grid_shape=GRID, affine=np.eye(4), t_r=2.0, source_id=uid
    )
    meta = parse_volume_stream_info(info)
    assert meta.content == "truth" and meta.model is None and meta.mask is None


@pytest.mark.parametrize("shape", [(53, 63, 52), (3, 1, 2), (4,)])
def test_mask_rle(rng, shape):
    for mask in (rng.random(shape) > 0.5, np.ones(shape, bool), np.zeros(shape, bool)):
        np.testing.assert_array_equal(decode_mask(encode_mask(mask), shape), mask)


def test_mni_mask_is_compact():
    runs = encode_mask(mni_mask())
    assert len(" ".join(map(str, runs))) < 40_000  # fits comfortably in the XML header


def test_flags_after_the_voxels(uid, rng):
    """A prediction of EEG corrected in the scanner carries a ``Clean`` flag after the
    voxels, named in the description; volumes come out the same with or without it."""
    info = volume_stream_info(
        uid, content="prediction", grid_shape=GRID, affine=np.eye(4), t_r=2.0, source_id=uid,
        flags=["Clean"],
    )  # fmt: skip
    assert info.channel_count() == 121
    meta = parse_volume_stream_info(info.as_xml())
    assert meta.flags == ("Clean",) and (meta.n_voxels, meta.n_channels) == (120, 121)
    vol = rng.standard_normal(GRID).astype(np.float32)
    sample = np.append(meta.to_sample(vol), 0.0)
    np.testing.assert_array_equal(meta.to_volume(sample), vol)
    np.testing.assert_array_equal(meta.to_volume(sample[:120]), vol)
    assert meta.flag(sample, "Clean") == 0.0 and meta.flag(sample, "Other") is None
    with pytest.raises(ValueError, match=r"has 121 values \(with its flags\), got 120"):
        meta.flag(sample[:120], "Clean")
    with pytest.raises(ValueError, match=r"has 120 \+ 1 flags values, got 7"):
        meta.to_volume(np.zeros(7))
    xml = info.as_xml()
    with pytest.raises(ValueError, match=r"121 channels for a \(5, 6, 4\) grid \(120 voxels\)\."):
        parse_volume_stream_info(xml.replace("<flags>", "<other>").replace("</flags>", "</other>"))
    with pytest.raises(ValueError, match=r"\(120 voxels and 2 flags \(Clean, Late\)\)"):
        parse_volume_stream_info(xml.replace("<flag>Clean</flag>",
                                             "<flag>Clean</flag><flag>Late</flag>"))  # fmt: skip
    with pytest.raises(ValueError, match="'flags' must be distinct, non-empty names"):
        volume_stream_info(uid, content="prediction", grid_shape=GRID, affine=np.eye(4),
                           t_r=2.0, source_id=uid, flags=["Clean", "Clean"])  # fmt: skip


def test_bad_infos(uid, rng):
    with pytest.raises(ValueError, match="'content' must be one of 'truth', 'prediction'"):
        volume_stream_info(
            uid, content="x", grid_shape=GRID, affine=np.eye(4), t_r=2, source_id=uid
        )
    with pytest.raises(ValueError, match=r"'grid_shape' must be 3 positive integers, got \(5, 6\)"):
        volume_stream_info(
            uid, content="truth", grid_shape=(5, 6), affine=np.eye(4), t_r=2, source_id=uid
        )
    with pytest.raises(ValueError, match=r"'affine' must be 4 × 4, got shape \(3, 3\)"):
        volume_stream_info(
            uid, content="truth", grid_shape=GRID, affine=np.eye(3), t_r=2, source_id=uid
        )
    with pytest.raises(ValueError, match="'t_r' must be positive"):
        volume_stream_info(
            uid, content="truth", grid_shape=GRID, affine=np.eye(4), t_r=0, source_id=uid
        )
    with pytest.raises(ValueError, match=r"'mask' shape \(2, 2, 2\) differs from 'grid_shape'"):
        volume_stream_info(
            uid,
            content="truth",
            grid_shape=GRID,
            affine=np.eye(4),
            t_r=2,
            source_id=uid,
            mask=np.ones((2, 2, 2), bool),
        )
    eeg = pylsl.StreamInfo(uid, "EEG", 8, 100, pylsl.cf_float32, uid)
    with pytest.raises(ValueError, match=f"LSL stream '{uid}': expected type 'fMRI', got 'EEG'"):
        parse_volume_stream_info(eeg)
    bare = pylsl.StreamInfo(uid, "fMRI", 120, 0.5, pylsl.cf_float32, uid)  # as resolve_* returns
    with pytest.raises(
        ValueError, match=f"'{uid}': no desc/grid.*StreamInlet\\(info\\)\\.info\\(\\)"
    ):
        parse_volume_stream_info(bare)
    xml = volume_stream_info(
        uid, content="truth", grid_shape=GRID, affine=np.eye(4), t_r=2, source_id=uid
    ).as_xml()
    with pytest.raises(ValueError, match=r"120 channels for a \(5, 6, 5\) grid \(150 voxels\)"):
        parse_volume_stream_info(xml.replace("<shape>5 6 4</shape>", "<shape>5 6 5</shape>"))
    with pytest.raises(ValueError, match="malformed desc/grid"):
        parse_volume_stream_info(xml.replace("<t_r>2.0</t_r>", "<t_r>two</t_r>"))
    with pytest.raises(TypeError, match="'info' must be a pylsl or mne_lsl StreamInfo"):
        parse_volume_stream_info(42)
    meta = parse_volume_stream_info(xml)
    with pytest.raises(ValueError, match=r"has 120 values, got 7"):
        meta.to_volume(np.zeros(7))
    with pytest.raises(ValueError, match=r"Expected a volume of shape \(5, 6, 4\), got shape"):
        meta.to_sample(np.zeros((4, 6, 5)))


@pytest.mark.lsl
def test_full_grid_over_loopback(uid, rng):
    """173,628 channels per sample: liblsl pushes and pulls them on loopback in milliseconds."""
    info = volume_stream_info(
        uid,
        content="truth",
        grid_shape=GRID_SHAPE,
        affine=GRID_AFFINE,
        t_r=2.0,
        source_id=uid,
        mask=mni_mask(),
    )
    assert info.channel_count() == 173_628
    outlet = pylsl.StreamOutlet(info, max_buffered=60)
    inlet = connect(uid)
    meta = parse_volume_stream_info(inlet.info(5.0))
    np.testing.assert_array_equal(meta.mask, mni_mask())
    np.testing.assert_array_equal(meta.affine, GRID_AFFINE)
    assert outlet.wait_for_consumers(5.0)
    vols = rng.standard_normal((5, *GRID_SHAPE)).astype(np.float32)
    buf = np.empty((1, meta.n_voxels), np.float32)
    took = []
    for k, vol in enumerate(vols):
        t = time.perf_counter()
        outlet.push_chunk(meta.to_sample(vol)[None], 100.0 + 2 * k)
        _, ts = inlet.pull_chunk(timeout=5.0, max_samples=1, dest_obj=buf, min_samples=1)
        took.append(time.perf_counter() - t)
        assert ts == [100.0 + 2 * k]
        np.testing.assert_array_equal(meta.to_volume(buf[0]), vol)
    assert np.median(took) < 0.1, took  # ~5 ms here; a TR is 2000 ms
    del inlet, outlet


@pytest.mark.lsl
def test_mne_lsl_info_parses(uid):
    from mne_lsl.lsl import StreamInlet, resolve_streams

    outlet = pylsl.StreamOutlet(
        volume_stream_info(
            uid,
            content="prediction",
            grid_shape=GRID,
            affine=np.eye(4),
            t_r=2.0,
            source_id=uid,
            model="ridge",
        )
    )
    found = resolve_streams(timeout=10.0, source_id=uid)
    assert found
    inlet = StreamInlet(found[0])
    inlet.open_stream(timeout=5.0)
    meta = parse_volume_stream_info(inlet.get_sinfo(timeout=5.0))
    assert meta.grid_shape == GRID and meta.model == "ridge"
    del inlet, outlet
