"""Running the viewer: the Qt application, the LSL-fed window, the in-process engine window.

Also :func:`grab_array`, an offscreen render of a widget as a numpy image (tests,
screenshots).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtGui

from .model import ViewerModel
from .window import ViewerWindow


def grab_array(widget) -> np.ndarray:
    """Render a widget offscreen; returns its pixels, shape (height, width, 3), uint8."""
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def make_app():
    """The application object (created once).

    Raises
    ------
    RuntimeError
        With PySide6 6.12.0 on Python < 3.12, whose signals drop a reference to ``True``
        on every emit, so that a viewer crashes after a few thousand updates.
    """
    import sys

    if pg.Qt.QT_LIB == "PySide6" and sys.version_info < (3, 12):
        import PySide6

        if PySide6.__version__ == "6.12.0":
            raise RuntimeError(
                "PySide6 6.12.0 corrupts reference counts on Python < 3.12 (every signal "
                "emit drops a reference to True; the viewer would crash within minutes): "
                "install another version, e.g. pip install 'PySide6-Essentials!=6.12.0'."
            )
    return pg.mkQApp("rt-eeg2fmri")


def run_viewer(
    *,
    prediction: str | None = None,
    truth: str | None = None,
    with_truth: bool = True,
    eeg: str | None = None,
    radiological: bool = False,
    history: int = 100,
    record_dir=None,
    on_poll=None,
    atlas=None,
    atlas_labels=None,
) -> int:
    """Open the viewer on LSL streams and run the Qt event loop until it is closed.

    Parameters
    ----------
    prediction, truth : str | None
        Stream names (``None``: the first ``fMRI`` stream with that content). The truth
        row appears when a truth stream shows up.
    with_truth : bool
        Look for a truth stream at all.
    eeg : str | None
        EEG stream query for the trace strip (``None``: no strip).
    on_poll : callable | None
        Called on every timer tick; returning ``False`` closes the window.
    atlas, atlas_labels : path-like | None
        Regions (a label image or one mask, and its names) whose mean the time course
        can show.

    Returns
    -------
    code : int
        The event loop's exit code.
    """
    from .streams import EEGSubscriber, VolumeSubscriber

    app = make_app()
    sources = {"prediction": VolumeSubscriber(prediction, content="prediction").start()}
    if with_truth:
        sources["truth"] = VolumeSubscriber(truth, content="truth").start()
    eeg_sub = EEGSubscriber(eeg).start() if eeg else None
    model = ViewerModel(history=history, radiological=radiological)
    if atlas is not None:
        model.set_atlas(atlas, atlas_labels)
    window = ViewerWindow(sources, eeg=eeg_sub, model=model, record_dir=record_dir)
    if on_poll is not None:
        window.timer.timeout.connect(lambda: on_poll() is False and window.close())
    window.show()
    try:
        return int(app.exec())
    finally:
        for src in [*sources.values(), eeg_sub]:
            if src is not None:
                src.stop()


def run_engine_viewer(engine, *, max_volumes=None, duration=None, on_volume=None) -> dict:
    """Run a started :class:`~rt_eeg2fmri.realtime.engine.Engine` with the viewer in-process.

    The engine runs in a background thread and feeds the window directly (no LSL
    round trip); closing the window stops the engine, and the window closes when the
    engine stops (limits reached, stream ended, Ctrl-C).

    Returns
    -------
    summary : dict
        The engine's summary.
    """
    import threading

    from rt_eeg2fmri.volume_stream import VolumeStreamMeta

    from .streams import QueueSource

    out = engine.outputs
    meta = VolumeStreamMeta(
        grid_shape=tuple(out.grid_shape),
        affine=np.asarray(out.affine, float),
        t_r=out.t_r,
        content="prediction",
        model=out.model,
        mask=np.asarray(out.mask, bool),
    )
    source = QueueSource(meta)
    result: dict = {}

    def feed(index, volume, row):
        source.put(volume, row["window_end"])
        if row.get("adapt", "off") != "off":  # shown in the status bar on the next refresh
            window.phase = f"adapt: {engine.adapter.phase} ({len(engine.adapter.pairs)} pairs)"
        if on_volume is not None:
            on_volume(index, volume, row)

    def work():
        try:
            result["summary"] = engine.run(
                max_volumes=max_volumes, duration=duration, on_volume=feed
            )
        except BaseException as err:  # re-raised in the caller's thread
            result["error"] = err

    app = make_app()
    model = ViewerModel()
    if out.roi is not None:  # stream --roi: the regions the stream publishes
        model.set_atlas(out.roi.path, out.roi.labels_path)
    window = ViewerWindow({"prediction": source}, model=model)
    thread = threading.Thread(target=work, name="engine", daemon=True)
    window.timer.timeout.connect(lambda: thread.is_alive() or window.close())
    thread.start()
    window.show()
    app.exec()
    engine.stop()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["summary"]


__all__ = ["grab_array", "make_app", "run_engine_viewer", "run_viewer"]
