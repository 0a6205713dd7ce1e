"""The viewer window rendered offscreen: what is drawn where, interaction, real LSL streams."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")

from pyqtgraph.Qt import QtCore

from apps.viewer.app import grab_array
from apps.viewer.model import ViewerModel
from apps.viewer.streams import QueueSource, VolumeSubscriber
from apps.viewer.window import ViewerWindow
from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mm_to_voxel, mni_mask
from rt_eeg2fmri.volume_stream import VolumeStreamMeta, volume_stream_info

pytestmark = pytest.mark.gui

BLOB_MM = (-42.0, -22.0, 8.0)  # left Heschl's gyrus
FAR_MM = (30.0, 30.0, 8.0)  # right frontal: in the brain, far from the blob


def _meta(content, mask):
    return VolumeStreamMeta(GRID_SHAPE, np.asarray(GRID_AFFINE), 2.0, content, mask=mask)


def _blob_volume(amplitude=5.0):
    ijk = np.rint(mm_to_voxel(BLOB_MM)).astype(int)
    vol = np.zeros(GRID_SHAPE, np.float32)
    vol[ijk[0] - 1 : ijk[0] + 2, ijk[1] - 1 : ijk[1] + 2, ijk[2] - 1 : ijk[2] + 2] = amplitude
    return vol, tuple(ijk)


@pytest.fixture
def window(qtbot):
    mask = np.asarray(mni_mask())
    model = ViewerModel(history=20)
    model.set_stream("prediction", _meta("prediction", mask))
    model.set_stream("truth", _meta("truth", mask))
    vol, ijk = _blob_volume()
    for t in range(3):
        model.add_volume("truth", vol.ravel() * (t + 1), 100.0 + 2 * t)
        model.add_volume("prediction", vol.ravel() * (t + 1) * 0.5, 100.0 + 2 * t)
    model.set_crosshair(ijk)
    win = ViewerWindow(model=model, poll_ms=0)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.refresh()
    return win


def _pixel(img, win, kind, view, u, v):
    """The pixel at (u, v) mm, shifted 2.5 mm off the crosshair lines through it."""
    x, y = win.view_point_to_pixel(kind, view, u + 2.5, v + 2.5)
    return img[round(y), round(x)].astype(int)


def _is_overlay(rgb):  # cold_hot positive end: red → yellow, no blue
    return rgb[0] > 200 and rgb[2] < 80


def _is_grey(rgb):
    return abs(rgb[0] - rgb[1]) <= 2 and abs(rgb[1] - rgb[2]) <= 2


def test_overlay_is_drawn_where_the_activity_is(window):
    img = grab_array(window)
    x, y, z = BLOB_MM
    fx, fy, _ = FAR_MM
    for kind in ("prediction", "truth"):
        assert _is_overlay(_pixel(img, window, kind, "axial", x, y))
        assert _is_overlay(_pixel(img, window, kind, "coronal", x, z))
        assert _is_overlay(_pixel(img, window, kind, "sagittal", y, z))
        far = _pixel(img, window, kind, "axial", fx, fy)
        assert _is_grey(far) and far[0] > 60  # the T1 underlay, not black, not coloured
    # crosshair (green) through the blob, drawn away from it along both lines
    for du, dv in ((0.0, 40.0), (40.0, 0.0)):
        gx, gy = window.view_point_to_pixel("truth", "axial", x + du, y + dv)
        patch = img[round(gy) - 1 : round(gy) + 2, round(gx) - 1 : round(gx) + 2].reshape(-1, 3)
        assert any(p[1] > 150 and p[0] < 120 and p[2] < 120 for p in patch.astype(int))


def test_left_hemisphere_is_on_the_left_unless_radiological(window):
    x, y, _ = BLOB_MM
    box = window._rows["truth"].boxes["axial"]
    centre = window.view_point_to_pixel("truth", "axial", 0.0, y)[0]
    img = grab_array(window)
    bx = window.view_point_to_pixel("truth", "axial", x, y)[0]
    assert bx < centre and _is_overlay(_pixel(img, window, "truth", "axial", x, y))
    assert window._rows["truth"].texts["axial"]["left"].toPlainText() == "L"
    window.radio_box.setChecked(True)
    img = grab_array(window)
    bx = window.view_point_to_pixel("truth", "axial", x, y)[0]
    assert box.xInverted() and bx > centre
    assert _is_overlay(_pixel(img, window, "truth", "axial", x, y))
    # the pixel where the blob was is now plain anatomy (or background)
    mirror = window.view_point_to_pixel("truth", "axial", -x, y)
    assert not _is_overlay(img[round(mirror[1]), round(mirror[0])].astype(int))
    assert window._rows["truth"].texts["axial"]["left"].toPlainText() == "R"


def test_the_time_course_can_show_a_regions_mean(window, tmp_path):
    import nibabel as nib

    vol, _ijk = _blob_volume()
    labels = np.zeros(GRID_SHAPE, np.int16)
    labels[vol > 0] = 4  # the blob
    far = np.rint(mm_to_voxel(FAR_MM)).astype(int)
    labels[far[0] - 1 : far[0] + 2, far[1] - 1 : far[1] + 2, far[2] - 1 : far[2] + 2] = 9
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.asarray(GRID_AFFINE)), atlas)
    (tmp_path / "lut.tsv").write_text("index\tname\n4\tHeschl_L\n9\tfrontal_R\n")
    win = window
    win.model.set_atlas(atlas, tmp_path / "lut.tsv")  # the grid is known: read at once
    win.refresh()
    assert win.region_box.isVisibleTo(win) and win.region_box.count() == 3
    win.set_region(0)  # the blob's mean: truth 5, 10, 15 (a uniform cube)
    _, y = win.model.time_course("truth")
    np.testing.assert_allclose(y, [5.0, 10.0, 15.0])
    assert "Heschl_L (27 vox)" in win.course.titleLabel.text
    win.set_region(1)
    np.testing.assert_allclose(win.model.time_course("prediction")[1], 0.0)
    win.set_region(None)  # back to the crosshair voxel
    np.testing.assert_allclose(win.model.time_course("truth")[1], [5.0, 10.0, 15.0])
    win.set_zscore(True)
    _t, y = win.model.time_course("truth")
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1) < 1e-6
    assert "z-score" in win.course.getAxis("left").labelText
    win.phase = "adapt: frozen (30 pairs)"  # what stream --view --adapt shows
    win._draw_status()  # as every timer tick does
    assert win.status_label.text().endswith("| adapt: frozen (30 pairs)")


def test_threshold_opacity_and_colormap_controls(window):
    x, y, _ = BLOB_MM
    window.threshold_box.setValue(0.9)  # the latest prediction is 0.5 × 3 × 5 = 7.5
    window.auto_box.setChecked(False)
    window.vmax_box.setValue(10.0)  # 7.5 < 0.9 × 10: hidden
    assert not _is_overlay(_pixel(grab_array(window), window, "prediction", "axial", x, y))
    assert _is_overlay(_pixel(grab_array(window), window, "truth", "axial", x, y))  # 15
    window.threshold_box.setValue(0.1)
    window.opacity_slider.setValue(0)
    assert _is_grey(_pixel(grab_array(window), window, "truth", "axial", x, y))
    window.opacity_slider.setValue(100)
    window.cmap_box.setCurrentText("viridis")
    rgb = _pixel(grab_array(window), window, "truth", "axial", x, y)
    assert rgb[1] > 200 and rgb[2] < 80  # viridis' top end is yellow-green
    assert window.model.style.cmap == "viridis"


def test_click_drag_and_keys_move_the_linked_crosshair(window, qtbot):
    view = window.canvas.viewport()
    x, y = window.view_point_to_pixel("truth", "axial", 30.0, -60.0)
    canvas_xy = window.canvas.mapFrom(window, QtCore.QPoint(round(x), round(y)))
    qtbot.mouseClick(view, QtCore.Qt.MouseButton.LeftButton, pos=canvas_xy)
    old_z = window.model.crosshair[2]
    assert window.model.crosshair == (36, 17, old_z)  # x = 30 mm, y = -60 mm
    assert window.active_view == "axial"
    assert "(x, y, z) = (30, -61, 8) mm" in window.position_label.text()
    # the coronal and sagittal views moved with it
    assert window._rows["prediction"].lines["coronal"][0].value() == pytest.approx(30.0)
    assert window._rows["prediction"].lines["sagittal"][0].value() == pytest.approx(-61.0)
    assert "y = -61 mm" in window._rows["prediction"].texts["coronal"]["slice"].toPlainText()
    qtbot.keyClick(window.canvas, QtCore.Qt.Key.Key_Right)
    qtbot.keyClick(window.canvas, QtCore.Qt.Key.Key_Up)
    qtbot.keyClick(window.canvas, QtCore.Qt.Key.Key_PageUp)
    assert window.model.crosshair == (37, 18, old_z + 1)
    window.set_crosshair_mm(BLOB_MM)
    _, y_truth = window.model.time_course("truth")
    assert y_truth.tolist() == [5.0, 10.0, 15.0]
    assert window.curves["truth"].getData()[1].tolist() == [5.0, 10.0, 15.0]
    assert "r = 1.00 here, over 3 paired volumes" in window.course.titleLabel.text


def test_snapshot_recording_pause_and_queue_source(qtbot, tmp_path):
    mask = np.asarray(mni_mask())
    source = QueueSource(_meta("prediction", mask))
    win = ViewerWindow({"prediction": source}, poll_ms=0, record_dir=tmp_path / "frames")
    qtbot.addWidget(win)
    win.show()
    assert win.poll() == 0
    assert win.alert.text() == (
        "prediction stream 'in-process' connected — waiting for its first volume…"
    )
    vol, ijk = _blob_volume()
    source.put(vol, 10.0)
    source.put(vol * 2, 12.0)
    assert win.poll() == 2
    assert win.model.crosshair != ijk and win.model.streams["prediction"].history.n_written == 2
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_00001.png"]
    win.stop_recording()
    win.pause_button.setChecked(True)
    n = win.n_updates
    source.put(vol * 3, 14.0)
    assert win.poll() == 1 and win.n_updates == n  # recorded, not redrawn
    assert "PAUSED" in win.status_label.text()
    assert "prediction 'in-process': 3 volumes" in win.status_label.text()
    win.pause_button.setChecked(False)
    assert win.n_updates == n + 1
    path = win.snapshot(tmp_path / "shot.png")
    from PySide6.QtGui import QImage

    shot = QImage(str(path))
    assert shot.width() == win.width() and shot.height() == win.height()
    with pytest.raises(
        ValueError, match=r"'sources' keys must be prediction / truth, got \['eeg'\]"
    ):
        ViewerWindow({"eeg": source}, poll_ms=0)


def _outlet(name, content, grid, mask=None, flags=()):
    import pylsl

    info = volume_stream_info(
        name,
        content=content,
        grid_shape=grid,
        affine=np.diag([4.0, 4.0, 4.0, 1.0]),
        t_r=0.5,
        source_id=f"{name}-src",
        mask=mask,
        flags=flags,
    )
    return pylsl.StreamOutlet(info, chunk_size=1, max_buffered=10)


@pytest.mark.lsl
def test_real_lsl_streams_update_the_window_drop_and_recover(qtbot):
    import pylsl

    grid = (9, 10, 8)
    name = f"gui-{uuid.uuid4().hex[:8]}"
    mask = np.zeros(grid, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    pred_out = _outlet(f"{name}-pred", "prediction", grid, mask, flags=["Clean"])
    truth_out = _outlet(f"{name}-truth", "truth", grid)
    sources = {
        "prediction": VolumeSubscriber(f"{name}-pred", resolve_timeout=0.2).start(),
        "truth": VolumeSubscriber(f"{name}-truth", content="truth", resolve_timeout=0.2).start(),
    }
    win = ViewerWindow(sources, poll_ms=20)
    qtbot.addWidget(win)
    win.show()
    try:
        assert pred_out.wait_for_consumers(10) and truth_out.wait_for_consumers(10)
        qtbot.waitUntil(
            lambda: win.model.has("prediction") and win.model.has("truth"), timeout=10000
        )
        rng = np.random.default_rng(0)
        t0 = pylsl.local_clock() - 2.0  # volumes acquired in the last 2 s
        for k in range(4):  # the third from EEG the in-scanner corrections did not clean
            vol = rng.standard_normal(grid).astype(np.float32) * mask
            pred_out.push_sample(np.append(vol.ravel(), float(k != 2)), t0 + 0.5 * k)
            truth_out.push_sample((2 * vol).ravel(), t0 + 0.5 * k + 0.01)
        qtbot.waitUntil(
            lambda: win.model.pairs is not None and win.model.pairs.n == 4, timeout=10000
        )
        assert win.n_updates >= 1
        np.testing.assert_allclose(win.model.streams["prediction"].latest, vol)
        assert win.model.underlay_kind in ("mask", "first volume")  # not the SPM grid
        assert win.model.r_volume()[mask] == pytest.approx(1.0)
        assert "prediction" in win.status_label.text() and "4 volumes" in win.status_label.text()
        assert "1 from EEG not flagged clean," in win.status_label.text()
        assert sources["prediction"].status.state == "live"
        assert 0.5 <= sources["prediction"].status.last_latency < 5.0
        # the truth stream drops: an on-screen message, then recovery when it returns
        del truth_out
        qtbot.waitUntil(lambda: sources["truth"].status.state == "lost", timeout=10000)
        qtbot.waitUntil(lambda: win.alert.isVisible(), timeout=5000)
        assert "truth stream" in win.alert.text() and "lost" in win.alert.text()
        truth_out = _outlet(f"{name}-truth", "truth", grid)
        assert truth_out.wait_for_consumers(15)
        truth_out.push_sample(np.ones(int(np.prod(grid)), np.float32), t0 + 10)
        qtbot.waitUntil(lambda: sources["truth"].status.state == "live", timeout=10000)
        qtbot.waitUntil(lambda: not win.alert.isVisible(), timeout=5000)
        assert sources["truth"].status.reconnects == 1
        assert "1 reconnect" in win.status_label.text()
        qtbot.waitUntil(lambda: abs(win.model.streams["truth"].latest_time - t0 - 10) < 0.01)
    finally:
        for src in sources.values():
            src.stop()


@pytest.mark.lsl
def test_stream_view_runs_the_engine_with_the_window_in_process(tmp_path, capsys):
    import json

    import torch

    from apps.cli import main
    from rt_eeg2fmri.checkpoint import save_checkpoint
    from rt_eeg2fmri.data import NormStats, Preprocessing
    from rt_eeg2fmri.models import build_model
    from rt_eeg2fmri.replay import Replay
    from tests.conftest import make_session

    grid, ch = (5, 6, 4), ["Fz", "Cz", "Pz", "Oz"]
    session = make_session(n_chans=4, sfreq=100.0, n_volumes=12, t_r=1.0, grid=grid, ch_names=ch)
    torch.manual_seed(0)
    model = build_model(
        "conv",
        {"n_chans": 4, "n_times": 300, "sfreq": 100.0, "n_voxels": 120, "grid_shape": list(grid),
         "n_basis": 4, "hidden": 8},
    )  # fmt: skip
    model.set_mask(torch.ones(grid, dtype=torch.bool))
    path = save_checkpoint(
        tmp_path / "m.pt",
        model.eval(),
        preprocessing=Preprocessing(sfreq=100.0, winsize=3.0),
        norm_stats=NormStats("zscore", [0.0] * 4, [1e-5] * 4, ch),
        ch_names=ch,
        t_r=1.0,
        grid_shape=grid,
        affine=session.affine,
        mask=np.ones(grid, bool),
    )
    name = f"sv-{uuid.uuid4().hex[:8]}"
    replay = Replay(session, name=name, speed=4.0, truth=False, source_id=name).open()
    replay.start()
    try:
        code = main(
            ["stream", "--model", str(path), "--source", f"name:{name}-EEG", "--sync", "samples",
             "--no-outlet", "--view", "--max-volumes", "3", "--duration", "20", "--quiet"]
        )  # fmt: skip
    finally:
        replay.stop()
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["volumes"] == 3


def test_view_command_rejects_a_short_history(capsys):
    from apps.cli import main

    assert main(["view", "--history", "1"]) == 1
    assert "'--history' must be at least 2 volumes, got 1" in capsys.readouterr().err


@pytest.mark.lsl
def test_eeg_strip_from_a_real_eeg_stream(qtbot):
    import pylsl

    from apps.viewer.streams import EEGSubscriber

    name = f"eeg-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo(name, "EEG", 4, 100.0, pylsl.cf_float32, f"{name}-src")
    chans = info.desc().append_child("channels")
    for label in ("Fz", "Cz", "Pz", "Oz"):
        chans.append_child("channel").append_child_value("label", label)
    outlet = pylsl.StreamOutlet(info)
    eeg = EEGSubscriber(f"name:{name}", max_channels=3, resolve_timeout=0.2).start()
    win = ViewerWindow({}, eeg=eeg, poll_ms=20)
    qtbot.addWidget(win)
    try:
        assert outlet.wait_for_consumers(10)
        qtbot.waitUntil(lambda: eeg.buffer is not None, timeout=5000)
        t0 = pylsl.local_clock()
        data = np.sin(np.arange(300)[:, None] / 10.0 + np.arange(4)).astype(np.float32)
        outlet.push_chunk(data, (t0 + np.arange(300) / 100.0).tolist())
        qtbot.waitUntil(lambda: eeg.status.n_received == 300, timeout=5000)
        qtbot.waitUntil(lambda: len(win.eeg_curves) == 3, timeout=5000)
        assert eeg.ch_names == ["Fz", "Cz", "Pz"]
        x, y = win.eeg_curves[0].getData()
        assert x[-1] == pytest.approx(0.0) and x[0] == pytest.approx(-2.99, abs=0.02)
        assert y.size == 300 and np.ptp(y) > 0
        ticks = win.eeg_plot.getAxis("left")._tickLevels[0]
        assert [label for _, label in ticks] == ["Fz", "Cz", "Pz"]
        assert "EEG" in win.status_label.text() and "300 samples, live" in win.status_label.text()
    finally:
        eeg.stop()
