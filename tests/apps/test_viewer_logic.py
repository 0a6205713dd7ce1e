"""The viewer's Qt-free maths: orientation, slicing, colour, crosshair, time series, status."""

from __future__ import annotations

import numpy as np
import pytest

from apps.viewer.logic import (
    COLORMAPS,
    OverlayStyle,
    SliceComposer,
    SliceGeometry,
    colorbar_image,
    colormap_lut,
    nice_level,
    robust_vmax,
    underlay_u8,
)
from apps.viewer.model import ViewerModel
from apps.viewer.series import (
    PairedCorrelation,
    StreamStatus,
    TraceBuffer,
    VolumeHistory,
    alert_text,
    status_text,
)
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mm_to_voxel, mni_mask, voxel_to_mm
from rt_eeg2fmri.volume_stream import VolumeStreamMeta

SMALL = (7, 8, 6)
SMALL_AFFINE = np.array(
    [[2.0, 0, 0, -6.0], [0, 2.0, 0, -7.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]], float
)


@pytest.fixture(scope="module")
def geo():
    return SliceGeometry(GRID_SHAPE, GRID_AFFINE)


def _meta(content="prediction", *, shape=SMALL, affine=SMALL_AFFINE, mask=None, t_r=2.0):
    return VolumeStreamMeta(tuple(shape), np.asarray(affine, float), t_r, content, mask=mask)


# -- geometry --------------------------------------------------------------------------
def test_spm_grid_is_already_ras(geo):
    assert geo.shape == GRID_SHAPE
    np.testing.assert_allclose(geo.affine, GRID_AFFINE)
    vol = np.zeros(GRID_SHAPE, np.float32)
    assert geo.to_ras(vol) is vol  # no copy, no view needed
    np.testing.assert_allclose(geo.zooms, [3, 3, 3])
    ijk = geo.center()
    np.testing.assert_allclose(geo.voxel_to_mm(ijk), [0, 0, 0], atol=1.5)
    np.testing.assert_allclose(geo.voxel_to_mm([10, 20, 30]), voxel_to_mm([10, 20, 30]))
    np.testing.assert_array_equal(
        geo.mm_to_voxel([-42, -22, 8]), np.rint(mm_to_voxel([-42, -22, 8]))
    )
    # outside the grid: clipped to its edge
    np.testing.assert_array_equal(geo.mm_to_voxel([-500, 0, 500]), [0, 37, 51])


def test_slices_are_the_right_planes(geo, rng):
    vol = rng.standard_normal(GRID_SHAPE).astype(np.float32)
    ijk = (10, 20, 30)
    np.testing.assert_array_equal(geo.slice(vol, "axial", ijk), vol[:, :, 30])
    np.testing.assert_array_equal(geo.slice(vol, "coronal", ijk), vol[:, 20, :])
    np.testing.assert_array_equal(geo.slice(vol, "sagittal", ijk), vol[10, :, :])
    assert geo.plane_shape("axial") == (53, 63)
    assert geo.plane_shape("coronal") == (53, 52)
    assert geo.plane_shape("sagittal") == (63, 52)
    assert np.shares_memory(geo.slice(vol, "axial", ijk), vol)  # views, no copies
    # extents in mm cover voxel edges: x −78…78 mm at 3 mm → −79.5…79.5
    assert geo.rect("axial") == (-79.5, -113.5, 159.0, 189.0)
    assert geo.rect("sagittal") == (-113.5, -71.5, 189.0, 156.0)
    assert geo.crosshair("coronal", ijk) == (-78 + 30.0, -70 + 90.0)
    assert geo.slice_label("axial", ijk) == "z = 20 mm"
    assert geo.position_label(ijk) == "(x, y, z) = (-48, -52, 20) mm   voxel [10, 20, 30]"


@pytest.mark.parametrize(
    "affine",
    [
        # x flipped (LAS, radiological storage)
        [[-2.0, 0, 0, 6.0], [0, 2.0, 0, -7.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]],
        # axes permuted: voxel axis 0 is z, 1 is x, 2 is y; y flipped
        [[0, 2.0, 0, -6.0], [0, 0, -2.0, 7.0], [2.0, 0, 0, -5.0], [0, 0, 0, 1]],
    ],
)
def test_reorientation_keeps_world_positions(affine):
    affine = np.asarray(affine, float)
    shape = (6, 7, 8) if affine[2, 0] else SMALL
    geo = SliceGeometry(shape, affine)
    src = np.zeros(shape, np.float32)
    src[1, 2, 3] = 1.0
    world = (affine @ [1, 2, 3, 1])[:3]
    ras = geo.to_ras(src)
    assert ras.shape == geo.shape
    hit = np.argwhere(ras == 1.0)[0]
    np.testing.assert_allclose(geo.voxel_to_mm(hit), world)
    # RAS order: the first axis runs left → right
    assert geo.affine[0, 0] > 0 and geo.affine[1, 1] > 0 and geo.affine[2, 2] > 0


def test_edge_labels_neurological_and_radiological(geo):
    assert geo.edge_labels("axial") == {"left": "L", "right": "R", "bottom": "P", "top": "A"}
    assert geo.edge_labels("axial", radiological=True)["left"] == "R"
    assert geo.edge_labels("coronal") == {"left": "L", "right": "R", "bottom": "I", "top": "S"}
    assert geo.edge_labels("coronal", radiological=True) == {
        "left": "R",
        "right": "L",
        "bottom": "I",
        "top": "S",
    }
    # sagittal: no left/right on screen, the same in both conventions
    assert geo.edge_labels("sagittal") == geo.edge_labels("sagittal", radiological=True)
    assert geo.edge_labels("sagittal") == {"left": "P", "right": "A", "bottom": "I", "top": "S"}


def test_clicks_move_the_crosshair_in_mm(geo):
    ijk = (26, 37, 23)
    # a click on the axial view at (x, y) = (-42, -22) mm keeps z
    assert geo.point_to_voxel("axial", -42.0, -22.0, ijk) == (12, 30, 23)
    # a click on the sagittal view sets y and z, keeps x
    assert geo.point_to_voxel("sagittal", 10.0, 20.0, ijk) == (26, 41, 30)
    # off the image: clipped to the edge
    assert geo.point_to_voxel("coronal", 1000.0, -1000.0, ijk) == (52, 37, 0)
    # sub-voxel positions round to the nearest voxel centre
    assert geo.point_to_voxel("axial", -78 + 1.4, -112 + 1.6, ijk)[:2] == (0, 1)


def test_arrow_keys_step_as_seen_on_screen(geo):
    ijk = (26, 37, 23)
    assert geo.step(ijk, "axial", "right") == (27, 37, 23)
    assert geo.step(ijk, "axial", "right", radiological=True) == (25, 37, 23)
    assert geo.step(ijk, "axial", "up") == (26, 38, 23)
    assert geo.step(ijk, "axial", "pagedown") == (26, 37, 22)
    assert geo.step(ijk, "coronal", "pageup", n=5) == (26, 42, 23)
    # sagittal: left/right is posterior/anterior in both conventions
    assert geo.step(ijk, "sagittal", "right", radiological=True) == (26, 38, 23)
    assert geo.step((0, 0, 0), "axial", "left") == (0, 0, 0)  # clipped at the edge
    assert geo.step((52, 62, 51), "coronal", "up", n=10) == (52, 62, 51)


def test_geometry_errors_name_the_input(geo):
    with pytest.raises(ValueError, match="'grid_shape' must be 3 positive integers"):
        SliceGeometry((5, 5), np.eye(4))
    with pytest.raises(ValueError, match="'affine' must be a finite 4 × 4"):
        SliceGeometry((5, 5, 5), np.eye(3))
    with pytest.raises(ValueError, match="'affine' is singular"):
        SliceGeometry((5, 5, 5), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(
        ValueError, match="'view' must be one of sagittal, coronal, axial, got 'top'"
    ):
        geo.slice(np.zeros(GRID_SHAPE), "top", (0, 0, 0))
    with pytest.raises(ValueError, match="'key' must be one of left, right"):
        geo.step((0, 0, 0), "axial", "home")
    with pytest.raises(
        ValueError, match=r"Expected a volume of shape \(53, 63, 52\), got shape \(5, 5, 5\)"
    ):
        geo.to_ras(np.zeros((5, 5, 5)))


# -- colour ------------------------------------------------------------------------------
def test_colormaps():
    for name in COLORMAPS:
        lut = colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    cold_hot = colormap_lut("cold_hot")
    assert tuple(cold_hot[-1]) == (255, 255, 0)  # most positive: yellow
    assert tuple(cold_hot[0]) == (0, 255, 255)  # most negative: cyan
    assert cold_hot[127].max() < 10 and cold_hot[128].max() < 10  # dark near zero
    assert cold_hot[200, 0] > cold_hot[200, 2]  # positive side is red, not blue
    with pytest.raises(ValueError, match="'cmap' must be one of cold_hot, .*got 'jet'"):
        colormap_lut("jet")


def test_compose_draws_the_overlay_only_above_threshold():
    comp = SliceComposer((4, 3))
    under = np.full((4, 3), 100, np.uint8)
    values = np.zeros((4, 3), np.float32)
    values[1, 2] = 2.0  # strong positive
    values[2, 0] = -2.0  # strong negative
    values[3, 1] = 0.2  # below threshold
    values[0, 0] = np.nan
    lut = colormap_lut("cold_hot")
    out = comp.compose(under, values, lut=lut, levels=(-2, 2), threshold=0.5, opacity=1.0)
    assert out is comp.out and out.shape == (4, 3, 3)
    assert tuple(out[1, 2]) == (255, 255, 0)
    assert tuple(out[2, 0]) == (0, 255, 255)
    shown = np.zeros((4, 3), bool)
    shown[1, 2] = shown[2, 0] = True
    assert (out[~shown] == 100).all()  # underlay untouched elsewhere (NaN included)
    # half opacity blends
    out = comp.compose(under, values, lut=lut, levels=(-2, 2), threshold=0.5, opacity=0.5)
    assert tuple(out[1, 2]) == (178, 178, 50)  # round(100 + 0.5 * (255 - 100)), ...
    # a mask hides voxels; a positive colour map hides negative values
    mask = np.ones((4, 3), bool)
    mask[1, 2] = False
    out = comp.compose(under, values, lut=lut, levels=(-2, 2), threshold=0.5, opacity=1, mask=mask)
    assert tuple(out[1, 2]) == (100, 100, 100)
    hot = colormap_lut("hot")
    out = comp.compose(under, values, lut=hot, levels=(0, 2), threshold=0.5, opacity=1.0)
    assert tuple(out[2, 0]) == (100, 100, 100) and tuple(out[1, 2]) == tuple(hot[-1])
    # no values or opacity 0: the underlay alone
    assert (comp.compose(under, None, lut=lut, levels=(-2, 2), threshold=0, opacity=1) == 100).all()
    assert (
        comp.compose(under, values, lut=lut, levels=(-2, 2), threshold=0, opacity=0) == 100
    ).all()


def test_compose_accepts_transposed_views():
    comp = SliceComposer((5, 3))
    vol = np.zeros((3, 5), np.float32)
    vol[1, 4] = 3.0
    under = np.zeros((3, 5), np.uint8)
    out = comp.compose(
        under.T, vol.T, lut=colormap_lut("hot"), levels=(0, 3), threshold=1, opacity=1
    )
    assert out[4, 1].max() == 255 and out.sum(axis=2).astype(bool).sum() == 1


def test_levels_underlay_colorbar():
    assert robust_vmax(np.zeros(10)) == 1.0
    x = np.r_[np.arange(1, 101, dtype=np.float32), np.nan, -np.inf]
    assert robust_vmax(x, percentile=50) == 49.0  # NaN and -inf count as 0
    scratch = np.empty(x.size, np.float32)
    assert robust_vmax(x, percentile=100, scratch=scratch) == 100.0
    assert [nice_level(v) for v in (0.55, 1.0, 1.01, 0.0023, 7.9, 8.1, 120)] == [
        0.6,
        1.0,
        1.2,
        0.0025,
        8.0,
        10.0,
        120.0,
    ]
    assert nice_level(0) == 1.0 and nice_level(float("nan")) == 1.0
    grey = underlay_u8(np.arange(100, dtype=float).reshape(4, 5, 5))
    assert grey.dtype == np.uint8 and grey.max() == 210 and grey[0, 0, 0] == 0
    assert (underlay_u8(np.zeros((2, 2, 2))) == 0).all()
    bar = colorbar_image(colormap_lut("cold_hot"), threshold=0.5, signed=True, n=100)
    assert bar.shape == (1, 100, 3)
    assert (bar[0, 40:60] == 64).all() and tuple(bar[0, -1]) == (255, 255, 0)
    bar = colorbar_image(colormap_lut("hot"), threshold=0.25, signed=False, n=100)
    assert (bar[0, :20] == 64).all() and not (bar[0, 30] == 64).all()


def test_overlay_style_validation():
    style = OverlayStyle(cmap="hot")
    assert not style.signed and style.levels(2.0) == (0.0, 2.0)
    assert OverlayStyle().levels(2.0) == (-2.0, 2.0)
    for field, value, message in (
        ("cmap", "gray", "'cmap' must be one of"),
        ("threshold", 1.0, r"'threshold' must be in \[0, 1\), got threshold=1.0"),
        ("opacity", -0.1, r"'opacity' must be in \[0, 1\], got opacity=-0.1"),
        ("vmax", 0.0, "'vmax' must be positive and finite, got vmax=0.0"),
    ):
        with pytest.raises(ValueError, match=message):
            OverlayStyle(**{field: value})


# -- time series ---------------------------------------------------------------------------
def test_volume_history_ring():
    hist = VolumeHistory(3, columns=[1, 4])
    assert len(hist) == 0 and hist.series(0)[0].size == 0
    for k in range(5):
        hist.push(np.arange(6, dtype=np.float32) + 10 * k, timestamp=100.0 + k)
    t, y = hist.series(1)
    np.testing.assert_array_equal(t, [102, 103, 104])
    np.testing.assert_array_equal(y, [24, 34, 44])
    assert len(hist) == 3
    with pytest.raises(ValueError, match="'history' must be at least 2 volumes, got 1"):
        VolumeHistory(1, columns=[0])


def test_paired_correlation_pairs_by_timestamp(rng):
    n_voxels, n = 5, 12
    x = rng.standard_normal((n, n_voxels))
    y = 0.5 * x + rng.standard_normal((n, n_voxels))
    pairs = PairedCorrelation(n_voxels, tolerance=0.1)
    assert np.isnan(pairs.r()).all() and np.isnan(pairs.r(0))
    # truth arrives first for even volumes, prediction first for odd; jitter < tolerance
    for k in range(n):
        t = 100.0 + 2 * k
        order = [("truth", y[k], t + 0.03), ("prediction", x[k], t)]
        for kind, values, ts in order if k % 2 == 0 else order[::-1]:
            pairs.add(kind, ts, values)
    pairs.add("prediction", 500.0, x[0])  # never paired: ignored
    assert pairs.n == n
    expected = [np.corrcoef(x[:, v], y[:, v])[0, 1] for v in range(n_voxels)]
    np.testing.assert_allclose(pairs.r(), expected, rtol=1e-6)  # float32 volumes
    assert pairs.r(2) == pytest.approx(expected[2])
    summary = pairs.summary()
    assert summary["n_pairs"] == n and summary["r_mean"] == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match="'kind' must be 'prediction' or 'truth', got 'eeg'"):
        pairs.add("eeg", 1.0, x[0])
    with pytest.raises(ValueError, match="'tolerance' must be positive"):
        PairedCorrelation(3, tolerance=0)


def test_paired_correlation_drops_stale_and_constant():
    pairs = PairedCorrelation(2, tolerance=0.1, max_pending=2)
    for k in range(4):  # predictions without truth: only the last 2 are kept
        pairs.add("prediction", float(k), np.ones(2))
    assert list(pairs._pending["prediction"]) == [2.0, 3.0]
    for k in range(4, 8):
        pairs.add("prediction", float(k), np.array([k, 1.0]))
        pairs.add("truth", float(k), np.array([2 * k, 1.0]))
    r = pairs.r()
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])  # constant voxel: undefined
    assert not pairs._pending["prediction"]  # stale ones dropped once later pairs formed


def test_trace_buffer():
    buf = TraceBuffer(2, sfreq=10.0, seconds=1.0)
    for k in range(3):
        chunk = np.column_stack([np.arange(4) + 4 * k, -np.arange(4) - 4 * k]).astype(np.float32)
        buf.write(chunk, np.arange(4) / 10 + 0.4 * k)
    t, data = buf.view()
    np.testing.assert_array_equal(data[0], np.arange(2, 12))
    np.testing.assert_allclose(t, np.arange(2, 12) / 10)
    t, data = buf.view(max_points=5)
    np.testing.assert_array_equal(data[1], -np.arange(2, 12, 2))
    buf.write(np.zeros((25, 2)), np.arange(25.0))  # longer than the buffer
    assert buf.view()[0][-1] == 24
    with pytest.raises(ValueError, match="'sfreq' must be positive"):
        TraceBuffer(1, sfreq=0)


def test_status_and_alert_text():
    pred = StreamStatus(
        "prediction", name="rt-vol", state="live", n_received=12, last_latency=0.0081
    )
    truth = StreamStatus("truth", name="sub-01-truth", state="lost", reconnects=2, since=10.0)
    eeg = StreamStatus("EEG", name="amp", state="stalled", n_received=5000, since=17.0)
    assert pred.text() == "prediction 'rt-vol': 12 volumes, latency 8.1 ms, live"
    assert truth.text() == "truth 'sub-01-truth': 0 volumes, lost (2 reconnects)"
    assert status_text([pred, eeg]) == (
        "prediction 'rt-vol': 12 volumes, latency 8.1 ms, live | EEG 'amp': 5000 samples, stalled"
    )
    assert alert_text([pred]) is None
    assert alert_text([pred, truth, eeg], now=20.0) == (
        "truth stream 'sub-01-truth' lost 10 s ago — waiting for it to return…\n"
        "EEG stream 'amp': no data for 3 s"
    )
    assert alert_text([StreamStatus("prediction")]) == "waiting for the prediction stream…"
    assert alert_text([StreamStatus("prediction", name="p", state="connecting")]) == (
        "prediction stream 'p' connected — waiting for its first volume…"
    )
    flagged = StreamStatus("prediction", state="live", n_received=9, not_clean=3, last_clean=False)
    assert flagged.text() == (
        "prediction: 9 volumes, 3 from EEG not flagged clean (this one too), live"
    )
    bad = StreamStatus("truth", error="grid (5, 5, 5) differs")
    assert "grid (5, 5, 5) differs" in bad.text() and "differs" in alert_text([bad])
    with pytest.raises(ValueError, match="'state' must be one of searching, .*got 'gone'"):
        StreamStatus("truth", state="gone")


# -- the model ------------------------------------------------------------------------------
def test_model_blob_time_course_and_correlation(rng):
    mask = np.asarray(mni_mask())
    model = ViewerModel(history=10)
    model.set_stream("prediction", _meta(shape=GRID_SHAPE, affine=GRID_AFFINE, mask=mask))
    model.set_stream("truth", _meta("truth", shape=GRID_SHAPE, affine=GRID_AFFINE, mask=mask))
    assert model.underlay_kind == "MNI152 T1" and model.underlay.shape == GRID_SHAPE
    blob = tuple(int(i) for i in np.rint(mm_to_voxel([-42, -22, 8])))
    amps = np.sin(np.arange(15) / 2.0)
    for k, a in enumerate(amps):
        for kind, jitter in (("truth", 0.0), ("prediction", 0.05)):
            vol = np.zeros(GRID_SHAPE, np.float32)
            vol[blob] = (a if kind == "truth" else 2 * a + 0.1) + (k % 3) * 1e-3
            model.add_volume(kind, vol.ravel(), 100.0 + 2 * k + jitter)
    model.set_crosshair(blob)
    t, y = model.time_course("truth")
    np.testing.assert_allclose(t, np.arange(5, 15) * 2.0)  # last 10, since the first volume
    np.testing.assert_allclose(y, amps[5:] + (np.arange(5, 15) % 3) * 1e-3, atol=1e-6)
    assert model.voxel_r() == pytest.approx(1.0)
    assert model.pairs.n == 15
    rmap = model.r_volume()
    assert rmap.shape == GRID_SHAPE and rmap[blob] == pytest.approx(1.0)
    assert np.isnan(rmap[0, 0, 0])  # outside the mask
    # the blob is overlay-coloured in the axial slice through it, nothing else is
    img = model.render("truth", "axial")
    grey = model.geometry.slice(model.underlay, "axial", blob)
    coloured = (img != grey[..., None]).any(axis=2)
    assert coloured[blob[0], blob[1]] and coloured.sum() == 1
    # outside the mask: no time course
    model.set_crosshair((0, 0, 0))
    assert model.crosshair_column() == -1 and model.time_course("truth")[0].size == 0
    assert np.isnan(model.voxel_r())


def test_model_crosshair_style_and_errors():
    model = ViewerModel(radiological=True)
    with pytest.raises(RuntimeError, match="no prediction stream declared"):
        model.add_volume("prediction", np.zeros(int(np.prod(SMALL))), 0.0)
    with pytest.raises(RuntimeError, match="the grid is unknown"):
        model.render(None, "axial")
    model.set_stream("prediction", _meta())
    assert model.underlay_kind == "mask"
    with pytest.raises(
        ValueError,
        match=r"the truth stream's grid \(5, 5, 5\) .* differs from the viewer's \(7, 8, 6\)",
    ):
        model.set_stream("truth", _meta("truth", shape=(5, 5, 5)))
    with pytest.raises(ValueError, match="'kind' must be one of prediction, truth, got 'eeg'"):
        model.set_stream("eeg", _meta())
    vol = np.arange(np.prod(SMALL), dtype=np.float32).reshape(SMALL)
    model.add_volume("prediction", vol, 5.0)
    assert model.underlay_kind == "first volume"  # no template on this grid
    assert model.render(None, "coronal").shape == (7, 6, 3)
    model.set_crosshair((3, 4, 2))
    model.key("axial", "right")  # radiological: screen-right is the subject's left
    assert model.crosshair == (2, 4, 2)
    model.click("coronal", 6.0, -5.0)
    assert model.crosshair == (6, 4, 0)
    model.set_crosshair((100, -3, 2))
    assert model.crosshair == (6, 0, 2)
    model.set_style(cmap="hot", threshold=0.1)
    assert model.lut.shape == (256, 3) and model.levels("prediction")[0] == 0.0
    with pytest.raises(ValueError, match="'opacity' must be in"):
        model.set_style(opacity=2.0, threshold=0.5)
    assert model.style.threshold == 0.1  # rolled back
    with pytest.raises(ValueError, match="unknown overlay setting 'alpha'"):
        model.set_style(alpha=1)
    model.set_style(auto_levels=False, vmax=3.0)
    assert model.levels("prediction") == (0.0, 3.0)
    with pytest.raises(ValueError, match="'history' must be at least 2 volumes"):
        ViewerModel(history=1)
