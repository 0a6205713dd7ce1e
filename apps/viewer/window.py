"""The live viewer window (PyQtGraph): three orthogonal slices per stream, time course, EEG.

The window only draws: every number comes from :class:`~apps.viewer.model.ViewerModel`,
every image from its preallocated composers (one ``uint8`` RGB buffer per slice, set
with ``ImageItem.setImage``). A timer drains the stream sources
(:mod:`apps.viewer.streams`) every ``poll_ms`` and redraws when a volume arrived.

Layout: one row per stream (prediction, then truth when it exists) of sagittal,
coronal and axial views and a colour bar; below, the time course at the crosshair
(prediction and truth, with their running correlation) and an optional EEG strip.
Coordinates in the views are mm; the crosshair is linked across views (click or drag
to move it, arrow keys step, page up/down or the wheel change slice).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from .logic import COLORMAPS, VIEWS, colorbar_image
from .model import KINDS, ViewerModel
from .series import alert_text, status_text

_CROSS_PEN = pg.mkPen((0, 255, 0, 200), width=1)
_CURVE_PENS = {
    "prediction": pg.mkPen((255, 140, 0), width=2),
    "truth": pg.mkPen((200, 200, 200), width=2),
}
_KEYS = {
    QtCore.Qt.Key.Key_Left: "left",
    QtCore.Qt.Key.Key_Right: "right",
    QtCore.Qt.Key.Key_Up: "up",
    QtCore.Qt.Key.Key_Down: "down",
    QtCore.Qt.Key.Key_PageUp: "pageup",
    QtCore.Qt.Key.Key_PageDown: "pagedown",
}


class _RGBImage(pg.GraphicsObject):
    """An RGB image item that paints a ``Format_RGB32`` QImage over its own buffer.

    The raster engine draws RGB32 without a format conversion, about 4× faster than
    the RGB888 QImage an ``ImageItem`` makes of an RGB array.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buf = None
        self._qimage = None
        self._rect = QtCore.QRectF()

    def set_rgb(self, rgb) -> None:
        """Show ``rgb`` of shape (n_u, n_v, 3), uint8 (``[u, v]``: x right, y up)."""
        nu, nv = rgb.shape[:2]
        if self._buf is None or self._buf.shape[:2] != (nv, nu):
            self._buf = np.full((nv, nu, 4), 255, np.uint8)  # B, G, R, 0xFF per pixel
            self._qimage = QtGui.QImage(
                self._buf.data, nu, nv, 4 * nu, QtGui.QImage.Format.Format_RGB32
            )
        np.copyto(self._buf[..., :3], rgb.transpose(1, 0, 2)[..., ::-1])
        self.update()

    def set_rect(self, rect) -> None:
        """Place the image over ``rect`` (view coordinates, mm)."""
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF(rect)
        self.update()

    def boundingRect(self):
        return self._rect

    def paint(self, painter, *args) -> None:
        if self._qimage is not None:
            painter.drawImage(self._rect, self._qimage)


class _SliceBox(pg.ViewBox):
    """A view box that moves the crosshair on click/drag and changes slice on wheel."""

    def __init__(self, view: str, window: ViewerWindow) -> None:
        super().__init__(lockAspect=True, enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(False, False)
        self.view = view
        self._window = window

    def _point(self, ev) -> None:
        p = self.mapSceneToView(ev.scenePos())
        self._window.click(self.view, p.x(), p.y())

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._point(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._point(ev)

    def wheelEvent(self, ev, axis=None) -> None:
        ev.accept()
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self._window.step(self.view, "pageup" if delta > 0 else "pagedown")


class _Canvas(pg.GraphicsLayoutWidget):
    """The drawing area; arrow and page keys step the crosshair in the active view."""

    def __init__(self, window: ViewerWindow) -> None:
        super().__init__()
        self._window = window
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, ev) -> None:
        key = _KEYS.get(ev.key())
        if key is None:
            super().keyPressEvent(ev)
            return
        ev.accept()
        n = 5 if ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier else 1
        self._window.step(self._window.active_view, key, n=n)


class _Row:
    """The three slice views and the colour bar of one stream."""

    def __init__(self, canvas: _Canvas, window: ViewerWindow, kind: str, row: int) -> None:
        self.kind = kind
        self.title = canvas.addLabel(kind, row=row, col=0, angle=-90, size="11pt")
        self.boxes, self.images, self.lines, self.texts = {}, {}, {}, {}
        for col, view in enumerate(VIEWS, start=1):
            box = _SliceBox(view, window)
            box.setBackgroundColor((0, 0, 0))
            canvas.addItem(box, row=row, col=col)
            image = _RGBImage()
            box.addItem(image)
            vline = pg.InfiniteLine(angle=90, pen=_CROSS_PEN, movable=False)
            hline = pg.InfiniteLine(angle=0, pen=_CROSS_PEN, movable=False)
            box.addItem(vline, ignoreBounds=True)
            box.addItem(hline, ignoreBounds=True)
            texts = {}
            for edge, anchor in (
                ("left", (0, 0.5)),
                ("right", (1, 0.5)),
                ("top", (0.5, 0)),
                ("bottom", (0.5, 1)),
                ("slice", (0, 1)),
            ):
                text = pg.TextItem(
                    color=(255, 255, 0) if edge != "slice" else (255, 255, 255), anchor=anchor
                )
                box.addItem(text, ignoreBounds=True)
                texts[edge] = text
            self.boxes[view], self.images[view] = box, image
            self.lines[view], self.texts[view] = (vline, hline), texts
        bar = pg.PlotItem()
        bar.setMouseEnabled(False, False)
        bar.setMenuEnabled(False)
        bar.hideButtons()
        bar.hideAxis("bottom")
        bar.hideAxis("left")
        bar.showAxis("right")
        bar.getAxis("right").setLabel("% signal change")
        bar.getAxis("right").enableAutoSIPrefix(False)
        bar.setMaximumWidth(90)
        self.bar_image = pg.ImageItem()
        bar.addItem(self.bar_image)
        canvas.addItem(bar, row=row, col=len(VIEWS) + 1)
        self.bar = bar

    def place(self, model: ViewerModel) -> None:
        """Set image rectangles, orientation and edge labels for the model's grid."""
        geo = model.geometry
        for view in VIEWS:
            u0, v0, w, h = geo.rect(view)
            self.images[view].set_rect(QtCore.QRectF(u0, v0, w, h))
            box = self.boxes[view]
            box.invertX(model.radiological and view != "sagittal")
            box.setRange(xRange=(u0, u0 + w), yRange=(v0, v0 + h), padding=0.0)
            labels = geo.edge_labels(view, radiological=model.radiological)
            left, right = (u0 + w, u0) if box.xInverted() else (u0, u0 + w)
            t = self.texts[view]
            t["left"].setText(labels["left"])
            t["left"].setPos(left, v0 + h / 2)
            t["right"].setText(labels["right"])
            t["right"].setPos(right, v0 + h / 2)
            t["top"].setText(labels["top"])
            t["top"].setPos(u0 + w / 2, v0 + h)
            t["bottom"].setText(labels["bottom"])
            t["bottom"].setPos(u0 + w / 2, v0)
            t["slice"].setPos(left, v0)

    def draw(self, model: ViewerModel, *, with_overlay: bool = True) -> None:
        """Redraw the slices, crosshair and colour bar."""
        geo = model.geometry
        kind = self.kind if with_overlay and model.streams.get(self.kind) is not None else None
        if kind is not None and model.streams[kind].latest is None:
            kind = None
        for view in VIEWS:
            self.images[view].set_rgb(model.render(kind, view))
            u, v = geo.crosshair(view, model.crosshair)
            self.lines[view][0].setPos(u)
            self.lines[view][1].setPos(v)
            self.texts[view]["slice"].setText(f"{view}  {geo.slice_label(view, model.crosshair)}")

    def draw_bar(self, model: ViewerModel) -> None:
        """Redraw the colour bar for the stream's current levels."""
        lo, hi = model.levels(self.kind)
        style = model.style
        self.bar_image.setImage(
            colorbar_image(model.lut, threshold=style.threshold, signed=style.signed),
            autoLevels=False,
        )
        self.bar_image.setRect(QtCore.QRectF(0, lo, 1, hi - lo))
        self.bar.setXRange(0, 1, padding=0)
        self.bar.setYRange(lo, hi, padding=0)


class ViewerWindow(QtWidgets.QMainWindow):
    """The live viewer.

    Parameters
    ----------
    sources : dict
        ``{"prediction": src, "truth": src}`` (truth optional): objects with ``meta``,
        ``meta_version``, ``status`` and ``drain()``
        (:class:`~apps.viewer.streams.VolumeSubscriber`,
        :class:`~apps.viewer.streams.QueueSource`); they are started by the caller.
    eeg : EEGSubscriber | None
        Source of the EEG trace strip.
    model : ViewerModel | None
        State to draw (default: a new one).
    poll_ms : int
        Interval of the timer that drains the sources (0: no timer; call :meth:`poll`).
    record_dir : path-like | None
        Save a PNG of the window after every new volume into this folder.
    """

    def __init__(
        self,
        sources: dict | None = None,
        *,
        eeg=None,
        model: ViewerModel | None = None,
        poll_ms: int = 30,
        record_dir=None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("rt-eeg2fmri viewer")
        self.model = model or ViewerModel()
        self.sources = dict(sources or {})
        unknown = set(self.sources) - set(KINDS)
        if unknown:
            raise ValueError(f"'sources' keys must be {' / '.join(KINDS)}, got {sorted(unknown)}.")
        self.eeg = eeg
        self.active_view = "axial"
        self.paused = False
        #: extra status text (the in-process engine's adaptation phase)
        self.phase = ""
        self.record_dir: Path | None = None
        self.n_frames = 0
        self.n_updates = 0
        self._seen_meta = {k: 0 for k in self.sources}
        self._rows: dict[str, _Row] = {}
        self._eeg_version = -1
        self._build()
        if record_dir is not None:
            self.start_recording(record_dir)
        for kind in self.model.streams:  # a model fed beforehand
            self._ensure_row(kind)
        if self.model.geometry is not None:
            self.refresh()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.poll)
        if poll_ms:
            self.timer.start(int(poll_ms))

    # -- construction ---------------------------------------------------------------
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._controls())
        self.canvas = _Canvas(self)
        self.canvas.setBackground((16, 16, 16))
        layout.addWidget(self.canvas, stretch=1)
        self.setCentralWidget(central)
        self.course = self.canvas.addPlot(row=2, col=1, colspan=len(VIEWS))
        self.canvas.ci.layout.setRowStretchFactor(2, 1)
        self.course.setLabel("bottom", "time (s)")
        self.course.setLabel("left", "% signal change")
        self.course.addLegend(offset=(10, 5))
        self.course.setMaximumHeight(220)
        self.course.setMinimumHeight(160)
        self.course.setMenuEnabled(False)
        self.curves = {k: self.course.plot([], [], pen=_CURVE_PENS[k], name=k) for k in KINDS}
        self.eeg_plot = None
        if self.eeg is not None:
            self.eeg_plot = self.canvas.addPlot(row=3, col=1, colspan=len(VIEWS))
            self.eeg_plot.setLabel("bottom", "time (s, 0 = latest sample)")
            self.eeg_plot.setMaximumHeight(180)
            self.eeg_plot.setMenuEnabled(False)
            self.eeg_curves = []
        self.alert = QtWidgets.QLabel(self.canvas)
        self.alert.setStyleSheet(
            "QLabel { color: white; background: rgba(170, 0, 0, 210); padding: 8px; "
            "font-size: 15pt; font-weight: bold; }"
        )
        self.alert.move(12, 12)
        self.alert.hide()
        self.status_label = QtWidgets.QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.resize(1400, 900)

    def _controls(self) -> QtWidgets.QHBoxLayout:
        style = self.model.style
        row = QtWidgets.QHBoxLayout()
        self.threshold_box = QtWidgets.QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 0.99)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setValue(style.threshold)
        self.threshold_box.setToolTip("overlay threshold, as a fraction of the level")
        self.threshold_box.valueChanged.connect(lambda v: self.set_style(threshold=v))
        self.cmap_box = QtWidgets.QComboBox()
        self.cmap_box.addItems(COLORMAPS)
        self.cmap_box.setCurrentText(style.cmap)
        self.cmap_box.currentTextChanged.connect(lambda v: self.set_style(cmap=v))
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(style.opacity * 100))
        self.opacity_slider.setMaximumWidth(120)
        self.opacity_slider.valueChanged.connect(lambda v: self.set_style(opacity=v / 100))
        self.auto_box = QtWidgets.QCheckBox("auto levels")
        self.auto_box.setChecked(style.auto_levels)
        self.auto_box.toggled.connect(lambda v: self.set_style(auto_levels=v))
        self.vmax_box = QtWidgets.QDoubleSpinBox()
        self.vmax_box.setRange(0.01, 1000.0)
        self.vmax_box.setDecimals(2)
        self.vmax_box.setValue(style.vmax)
        self.vmax_box.setToolTip("fixed level (% signal change) when auto levels is off")
        self.vmax_box.valueChanged.connect(lambda v: self.set_style(vmax=v))
        self.radio_box = QtWidgets.QCheckBox("radiological")
        self.radio_box.setChecked(self.model.radiological)
        self.radio_box.toggled.connect(self.set_radiological)
        self.region_box = QtWidgets.QComboBox()
        self.region_box.setToolTip("time course of the crosshair voxel, or of a region's mean")
        self.region_box.addItem("crosshair voxel")
        self.region_box.currentIndexChanged.connect(self._region_chosen)
        self.region_box.setVisible(False)
        self.zscore_box = QtWidgets.QCheckBox("z-score courses")
        self.zscore_box.setChecked(self.model.zscore_course)
        self.zscore_box.setToolTip(
            "plot each time course z-scored, so the prediction's shape compares with the truth's"
        )
        self.zscore_box.toggled.connect(self.set_zscore)
        self.pause_button = QtWidgets.QPushButton("pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self.set_paused)
        snap = QtWidgets.QPushButton("snapshot")
        snap.clicked.connect(lambda: self.snapshot())
        self.record_button = QtWidgets.QPushButton("record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._toggle_recording)
        for label, widget in (
            ("threshold", self.threshold_box),
            ("colormap", self.cmap_box),
            ("opacity", self.opacity_slider),
            (None, self.auto_box),
            ("level", self.vmax_box),
            (None, self.radio_box),
            (None, self.region_box),
            (None, self.zscore_box),
            (None, self.pause_button),
            (None, snap),
            (None, self.record_button),
        ):
            if label:
                row.addWidget(QtWidgets.QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        self.position_label = QtWidgets.QLabel()
        row.addWidget(self.position_label)
        return row

    def _ensure_row(self, kind: str) -> _Row:
        row = self._rows.get(kind)
        if row is None:
            row = _Row(self.canvas, self, kind, KINDS.index(kind))
            self._rows[kind] = row
            self.canvas.ci.layout.setRowStretchFactor(KINDS.index(kind), 3)
            self.canvas.ci.layout.setRowPreferredHeight(KINDS.index(kind), 300)  # rows alike
            # the layout was clamped to the rows it had (the time course has a maximum
            # height): give it the whole view again
            pg.GraphicsView.setRange(
                self.canvas, self.canvas.range, padding=0, disableAutoPixel=False
            )
            if self.model.geometry is not None:
                row.place(self.model)
        return row

    # -- the update loop -------------------------------------------------------------
    def poll(self) -> int:
        """Drain the sources, redraw if a volume arrived; return the volumes taken."""
        n_new = 0
        for kind, src in self.sources.items():
            if src.meta is not None and src.meta_version != self._seen_meta[kind]:
                self._seen_meta[kind] = src.meta_version
                try:
                    first = self.model.geometry is None
                    self.model.set_stream(kind, src.meta)
                except ValueError as err:
                    src.status.error = str(err)
                    src.drain()
                    continue
                src.status.error = None
                self._ensure_row(kind)
                if first:
                    for row in self._rows.values():
                        row.place(self.model)
            if not self.model.has(kind):
                continue
            for sample, ts, _received in src.drain():
                self.model.add_volume(kind, sample, ts)
                n_new += 1
        if n_new and not self.paused:
            self.refresh()
            if self.record_dir is not None:
                self._save_frame()
        if self.eeg is not None and not self.paused:
            self._draw_eeg()
        self._draw_status()
        return n_new

    def refresh(self) -> None:
        """Redraw everything from the model."""
        if self.model.geometry is None:
            return
        for row in self._rows.values():
            row.draw(self.model)
            row.draw_bar(self.model)
        self._draw_course()
        self.position_label.setText(self.model.geometry.position_label(self.model.crosshair))
        self.n_updates += 1

    def _draw_crosshair(self) -> None:
        if self.model.geometry is None:
            return
        for row in self._rows.values():
            row.draw(self.model)
        self._draw_course()
        self.position_label.setText(self.model.geometry.position_label(self.model.crosshair))

    def _draw_course(self) -> None:
        for kind, curve in self.curves.items():
            t, y = self.model.time_course(kind)
            curve.setData(t, y)
        z = self.model.zscore_course
        self.course.setLabel("left", "z-score (each series)" if z else "% signal change")
        self._sync_regions()
        r = self.model.voxel_r()
        pairs = self.model.pairs
        title = f"time course at {self.model.geometry.position_label(self.model.crosshair)}"
        if self.model.region is not None:
            name = self.model.region_names[self.model.region]
            title = f"mean of region {name} ({self.model.regions.n_voxels[self.model.region]} vox)"
            self.course.setTitle(title, size="10pt")
            return
        if pairs is not None:
            summary = f"r = {r:.2f} here" if np.isfinite(r) else "r = n/a here"
            title += f"   —   prediction vs truth: {summary}, over {pairs.n} paired volumes"
        self.course.setTitle(title, size="10pt")

    def _draw_eeg(self) -> None:
        eeg = self.eeg
        if eeg.buffer is None or eeg.version == self._eeg_version:
            return
        with eeg.lock:
            self._eeg_version = eeg.version
            t, data = eeg.buffer.view(max_points=1500)
            names = list(eeg.ch_names)
        if t.size < 2:
            return
        t = t - t[-1]
        while len(self.eeg_curves) < data.shape[0]:
            self.eeg_curves.append(
                self.eeg_plot.plot([], [], pen=pg.mkPen((120, 200, 255), width=1))
            )
        for i, (curve, x) in enumerate(zip(self.eeg_curves, data, strict=False)):
            x = x - np.median(x)
            scale = np.percentile(np.abs(x), 95) or 1.0
            curve.setData(t, x / (2.5 * scale) - i)
        self.eeg_plot.getAxis("left").setTicks([[(-i, n) for i, n in enumerate(names)]])

    def _draw_status(self) -> None:
        statuses = [src.status for src in self.sources.values()]
        if self.eeg is not None:
            statuses.append(self.eeg.status)
        text = status_text(statuses)
        if self.paused:
            text = "PAUSED | " + text
        if self.record_dir is not None:
            text += f" | recording {self.n_frames} frames to {self.record_dir}"
        if self.phase:  # e.g. the live adaptation's phase, set by the in-process engine
            text += f" | {self.phase}"
        self.status_label.setText(text)
        alert = alert_text(statuses)
        if alert:
            self.alert.setText(alert)
            self.alert.adjustSize()
            self.alert.show()
        else:
            self.alert.hide()

    # -- interaction ------------------------------------------------------------------
    def click(self, view: str, u_mm: float, v_mm: float) -> None:
        """Move the crosshair to a point of ``view`` (mm) and make it the active view."""
        if self.model.geometry is None:
            return
        self.active_view = view
        self.model.click(view, u_mm, v_mm)
        self.canvas.setFocus()
        self._draw_crosshair()

    def step(self, view: str, key: str, n: int = 1) -> None:
        """Step the crosshair (``left``/``right``/``up``/``down``/``pageup``/``pagedown``)."""
        if self.model.geometry is None:
            return
        self.model.key(view, key, n=n)
        self._draw_crosshair()

    def set_crosshair_mm(self, xyz) -> None:
        """Move the crosshair to the voxel nearest to world coordinates ``xyz`` (mm)."""
        self.model.set_crosshair(self.model.geometry.mm_to_voxel(xyz))
        self._draw_crosshair()

    def set_style(self, **changes) -> None:
        """Change overlay settings (see :meth:`ViewerModel.set_style`) and redraw."""
        self.model.set_style(**changes)
        self.refresh()

    def set_radiological(self, on: bool) -> None:
        """Switch between neurological and radiological display."""
        self.model.radiological = bool(on)
        if self.model.geometry is not None:
            for row in self._rows.values():
                row.place(self.model)
            self.refresh()

    def _sync_regions(self) -> None:
        """List the model's regions in the course selector once they are known."""
        names = self.model.region_names
        if names and self.region_box.count() != len(names) + 1:
            self.region_box.blockSignals(True)
            self.region_box.clear()
            self.region_box.addItem("crosshair voxel")
            self.region_box.addItems(names)
            self.region_box.setVisible(True)
            self.region_box.blockSignals(False)

    def _region_chosen(self, index: int) -> None:
        self.set_region(None if index <= 0 else index - 1)

    def set_region(self, index: int | None) -> None:
        """Show region ``index``'s mean in the time course (``None``: the crosshair voxel)."""
        self.model.set_region(index)
        want = 0 if index is None else index + 1
        if self.region_box.currentIndex() != want and want < self.region_box.count():
            self.region_box.setCurrentIndex(want)
        self.refresh()

    def set_zscore(self, on: bool) -> None:
        """Plot the time courses z-scored (each on its own) or in their units."""
        self.model.zscore_course = bool(on)
        if self.zscore_box.isChecked() != bool(on):
            self.zscore_box.setChecked(bool(on))
        self.refresh()

    def set_paused(self, on: bool) -> None:
        """Freeze the display (volumes keep being recorded into the history)."""
        self.paused = bool(on)
        if not self.paused:
            self.refresh()

    def snapshot(self, path=None) -> Path:
        """Save the window as a PNG (default: a time-stamped file in the current folder)."""
        if path is None:
            path = Path(f"rt-eeg2fmri-{_dt.datetime.now():%Y%m%d-%H%M%S}.png")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise OSError(f"could not write the snapshot '{path}'.")
        self.statusBar().showMessage(f"saved {path}", 5000)
        return path

    def start_recording(self, folder=None) -> Path:
        """Save a PNG frame after every new volume into ``folder``."""
        folder = Path(folder or f"rt-eeg2fmri-frames-{_dt.datetime.now():%Y%m%d-%H%M%S}")
        folder.mkdir(parents=True, exist_ok=True)
        self.record_dir = folder
        self.n_frames = 0
        if not self.record_button.isChecked():
            self.record_button.blockSignals(True)
            self.record_button.setChecked(True)
            self.record_button.blockSignals(False)
        return folder

    def stop_recording(self) -> None:
        """Stop saving frames."""
        self.record_dir = None
        if self.record_button.isChecked():
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)

    def _toggle_recording(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def _save_frame(self) -> None:
        self.n_frames += 1
        self.grab().save(str(self.record_dir / f"frame_{self.n_frames:05d}.png"))

    # -- helpers for tests and screenshots ------------------------------------------
    def view_point_to_pixel(self, kind: str, view: str, u_mm: float, v_mm: float):
        """Where a view's point (mm) lands in the window, as ``(x, y)`` window pixels."""
        box = self._rows[kind].boxes[view]
        scene = box.mapViewToScene(QtCore.QPointF(u_mm, v_mm))
        local = self.canvas.mapFromScene(scene)
        return self.canvas.mapTo(self, local).toTuple()

    def closeEvent(self, ev) -> None:
        """Stop the update timer (the sources belong to the caller)."""
        self.timer.stop()
        super().closeEvent(ev)


__all__ = ["ViewerWindow"]
