"""The one-command demo: simulated session → replay → real-time engine → viewer / summary.

Every piece is the real one: the simulator writes a BIDS dataset (once, cached under
:func:`rt_eeg2fmri.grid.cache_dir`), :class:`~rt_eeg2fmri.replay.Replay` plays it as
live LSL streams with the measured volumes, the :class:`~rt_eeg2fmri.realtime.engine.Engine`
predicts one volume per TR from the EEG stream, and the viewer subscribes to the
prediction and truth streams over LSL. Headless, the same subscribers feed a
:class:`~apps.viewer.model.ViewerModel` that pairs prediction and truth by timestamp, and
the window is rendered offscreen once for the screenshot.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt_eeg2fmri._io import write_text_atomic
from rt_eeg2fmri._logging import logger


@dataclass
class DemoConfig:
    """What ``rt-eeg2fmri demo`` runs (see its ``--help``)."""

    model: str | None = None
    preset: str = "tiny"
    seed: int = 2025
    speed: float | None = None
    volumes: int = 20
    out: str = "demo-out"
    name: str = "rt-eeg2fmri-demo"
    device: str = "auto"
    headless: bool = True


def has_display() -> bool:
    """Whether a window can be shown (``QT_QPA_PLATFORM=offscreen`` or no X/Wayland: no)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        return False
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


#: Debian/Ubuntu packages PySide6 >= 6.5 needs for its X11 (xcb) platform plugin.
QT_X11_PACKAGES = (
    "libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
    "libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 "
    "libegl1 libgl1"
)


def qt_platform_problem(timeout: float = 20.0) -> str | None:
    """Why Qt cannot open its platform here, with the packages to install; ``None`` if it can.

    Qt aborts a process whose platform plugin does not load, so the check runs in a
    child process (``QApplication`` is created there and closed at once).
    """
    import subprocess

    code = "from PySide6.QtWidgets import QApplication; QApplication([]).quit()"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"Qt did not open its platform within {timeout:g} s."
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    why = next((ln for ln in lines if "plugin" in ln.lower() or "display" in ln.lower()), None)
    why = why or (lines[-1] if lines else f"exit code {proc.returncode}")
    platform = os.environ.get("QT_QPA_PLATFORM") or "xcb"
    return (
        f"Qt cannot open its '{platform}' platform: {why} On Debian/Ubuntu, install its X11 "
        f"libraries: sudo apt-get install {QT_X11_PACKAGES}"
    )


def load_demo_model(path=None):
    """Load ``path`` or the built-in default checkpoint, saying clearly when it is missing."""
    from apps.commands.stream import default_model_path
    from rt_eeg2fmri.checkpoint import load_checkpoint

    if path is None:
        path = Path(str(default_model_path()))
        if not path.is_file():
            raise FileNotFoundError(
                f"the built-in default model '{path}' is not there (this checkout ships "
                "without trained weights): train one with `rt-eeg2fmri train --data "
                "DATASET --out RUN` and copy its conv checkpoint there, or pass "
                "--model CHECKPOINT.pt."
            )
    return load_checkpoint(path)


def truth_options(ckpt) -> dict:
    """Replay options that send the measured volumes as the checkpoint's targets."""
    return {"preprocessing": ckpt.preprocessing, "mask": ckpt.mask}


def demo_session(ckpt, *, preset: str = "tiny", seed: int = 2025, min_volumes: int = 0):
    """A simulated run matching the checkpoint's channels and TR (made once, cached).

    The EEG is simulated at the checkpoint's rate or 250 Hz, whichever is higher (an
    amplifier's rate; the engine resamples it to the model's), so the simulator's gamma
    band and line noise stay below Nyquist.

    Parameters
    ----------
    ckpt : Checkpoint
    preset : ``"tiny"`` | ``"small"``
    seed : int
    min_volumes : int
        Fewest volumes the run must have (the preset's count is raised to it).

    Returns
    -------
    session : Session
    """
    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.grid import cache_dir
    from rt_eeg2fmri.sim import PRESETS, simulate_dataset

    n_volumes = max(PRESETS[preset]["n_volumes"], int(min_volumes))
    overrides = dict(
        subjects=1,
        runs=1,
        volumes=n_volumes,
        channels=list(ckpt.ch_names),
        sfreq=max(float(ckpt.sfreq), 250.0),
        t_r=float(ckpt.t_r),
    )
    key = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_dir() / "demo" / f"{preset}-seed{seed}-{key}"
    if (folder / "dataset_description.json").is_file():
        try:
            return read_session(folder)
        except (OSError, ValueError) as err:
            logger.warning(
                "demo: cached simulation '%s' unreadable (%s); simulating again.", folder, err
            )
    logger.info("demo: simulating a %s session into '%s' (once)...", preset, folder)
    simulate_dataset(folder, preset=preset, seed=seed, overwrite=True, progress=False, **overrides)
    return read_session(folder)


def run_demo(config: DemoConfig) -> int:
    """Run the demo; return the exit code."""
    from rt_eeg2fmri.grid import same_grid

    if config.volumes < 1:
        raise ValueError(f"'--volumes' must be at least 1, got {config.volumes}.")
    speed = config.speed if config.speed is not None else (10.0 if config.headless else 1.0)
    if not speed > 0:
        raise ValueError(f"'--speed' must be positive, got {speed}.")
    ckpt = load_demo_model(config.model)
    warmup = math.ceil(ckpt.winsize / ckpt.t_r)
    session = demo_session(
        ckpt, preset=config.preset, seed=config.seed, min_volumes=warmup + config.volumes + 2
    )
    if not same_grid(session.grid_shape, session.affine, ckpt.grid_shape, ckpt.affine):
        logger.warning(
            "demo: the model's grid %s differs from the simulation's %s: no truth comparison.",
            tuple(ckpt.grid_shape),
            session.grid_shape,
        )
    run = _headless if config.headless else _interactive
    return run(config, ckpt, session, speed)


def _engine(config, ckpt, session, replay, *, out: Path | None):
    from rt_eeg2fmri.realtime.engine import Engine

    return Engine.from_checkpoint(
        ckpt,
        source=f"name:{replay.stream_names['eeg']}",
        sync="samples",  # window ends on the replayed volume grid, exactly
        phase=float(session.volume_onsets[0]),
        outlet_name=f"{config.name}-prediction",
        nifti=None if out is None else out / "prediction.nii",  # gzip would add to latency
        timing=None if out is None else out / "timing.tsv",
        device=config.device,
        consumer_options={"timeout": 15.0, "resample": True},
    )


def _interactive(config, ckpt, session, speed) -> int:
    from rt_eeg2fmri.replay import Replay

    from .app import run_viewer

    replay = Replay(
        session, name=config.name, speed=speed, truth=True, loop=True, **truth_options(ckpt)
    )
    replay.open()
    engine = _engine(config, ckpt, session, replay, out=None)
    result: dict = {}

    def work():
        try:
            result["summary"] = engine.run()
        except BaseException as err:  # reported after the window closes
            result["error"] = err

    print(
        f"demo: {ckpt.model_name} on simulated {session.name} ({len(ckpt.ch_names)} ch, "
        f"TR {ckpt.t_r:g} s) at {speed:g}× — the first prediction needs {ckpt.winsize:g} s of "
        f"EEG. Streams: {', '.join(replay.stream_names.values())}, {config.name}-prediction.",
        file=sys.stderr,
        flush=True,
    )
    thread = threading.Thread(target=work, name="engine", daemon=True)
    with engine:
        replay.start()
        thread.start()
        try:
            code = run_viewer(
                prediction=f"{config.name}-prediction",
                truth=replay.stream_names["truth"],
                eeg=f"name:{replay.stream_names['eeg']}",
                on_poll=thread.is_alive,
            )
        finally:
            engine.stop()
            thread.join(10.0)
            replay.stop()
    if "error" in result:
        raise RuntimeError(f"the engine failed: {result['error']}") from result["error"]
    return code


def _headless(config, ckpt, session, speed) -> int:
    from rt_eeg2fmri.replay import Replay

    from .model import ViewerModel
    from .streams import VolumeSubscriber

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    replay = Replay(session, name=config.name, speed=speed, truth=True, **truth_options(ckpt))
    replay.open()
    subs = {
        "prediction": VolumeSubscriber(f"{config.name}-prediction", resolve_timeout=0.3),
        "truth": VolumeSubscriber(
            replay.stream_names["truth"], content="truth", resolve_timeout=0.3
        ),
    }
    model = ViewerModel(history=max(100, config.volumes))
    rows = []
    engine = _engine(config, ckpt, session, replay, out=out)
    print(
        f"demo (headless): {ckpt.model_name} on simulated {session.name}, {config.volumes} "
        f"volumes at {speed:g}×...",
        file=sys.stderr,
        flush=True,
    )
    try:
        with engine:
            for sub in subs.values():
                sub.start()
            if not (
                replay.wait_for_consumers(15.0, kinds=["eeg", "truth"])
                and engine.outputs.outlet.wait_for_consumers(15.0)
            ):
                raise RuntimeError("the demo's LSL streams did not connect within 15 s.")
            replay.start()
            stream_s = session.volume_onsets[0] + ckpt.winsize + (config.volumes + 2) * ckpt.t_r
            summary = engine.run(
                max_volumes=config.volumes,
                duration=stream_s / speed + 30.0,
                on_volume=lambda i, v, row: (rows.append(row), _feed(model, subs)),
            )
            _drain_until(model, subs, n=len(rows), timeout=5.0)
            for sub in subs.values():  # before the prediction outlet closes
                sub.stop()
    finally:
        replay.stop()
        for sub in subs.values():
            sub.stop()
    if not rows:
        raise RuntimeError("the engine produced no volume (see the log above).")
    # latency after the window's last sample left the replay (wall clock, any speed)
    t0 = replay.t0
    lat = np.array([(r["publish"] - (t0 + (r["window_end"] - t0) / speed)) * 1e3 for r in rows])
    report = {
        "model": str(ckpt.path),
        "model_name": ckpt.model_name,
        "session": session.name,
        "simulation": {"preset": config.preset, "seed": config.seed},
        "speed": speed,
        "volumes": len(rows),
        "skipped": summary["skipped"],
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
        "compute_p50_ms": summary["compute_p50_ms"],
        "compute_p99_ms": summary["compute_p99_ms"],
        "received": {k: s.status.n_received for k, s in subs.items()},
        "correlation": None if model.pairs is None else model.pairs.summary(),
        "files": {},
    }
    files = report["files"]
    files["nifti"], files["timing"] = "prediction.nii", "timing.tsv"
    rmap = model.r_volume()
    if rmap is not None:
        import nibabel as nib

        meta = model.streams["prediction"].meta
        img = nib.Nifti1Image(rmap.astype(np.float32), meta.affine)
        img.set_qform(meta.affine, code="mni")  # the prediction grid is MNI space
        img.set_sform(meta.affine, code="mni")
        img.header.set_xyzt_units("mm", "sec")
        n_pairs = report["correlation"]["n_pairs"] if report["correlation"] else 0
        # voxelwise Pearson r of prediction and truth; NIfTI's parameter: degrees of freedom
        img.header.set_intent("correlation", (max(n_pairs - 2, 0),), name="Pearson r")
        nib.save(img, out / "r_map.nii.gz")
        files["r_map"] = "r_map.nii.gz"
        best, how = _showcase_voxel(model, ckpt)
        if best is not None:
            model.set_crosshair(model.geometry.clip(best))
            report["crosshair_mm"] = [float(v) for v in model.geometry.voxel_to_mm(model.crosshair)]
            report["crosshair_r"] = model.voxel_r()
            report["crosshair_choice"] = how
            report["crosshair_chance"] = chance_level(model)
        model.zscore_course = True  # the prediction's shape against the truth's
    try:
        corr = report["correlation"] or {}
        status = (
            f"demo: {ckpt.model_name} on simulated {session.name} | {len(rows)} volumes at "
            f"{speed:g}×, latency p50 {report['latency_p50_ms']:.1f} ms | online r vs truth over "
            f"{corr.get('n_pairs', 0)} paired volumes: mean {corr.get('r_mean', float('nan')):.3f}"
        )
        screenshot(model, out / "viewer.png", status=status)
        files["screenshot"] = "viewer.png"
    except ImportError as err:  # the viewer extra is not installed
        logger.warning("demo: no screenshot (%s).", err)
    write_text_atomic(out / "summary.json", json.dumps(report, indent=2, default=_plain) + "\n")
    files["summary"] = "summary.json"
    print(format_report(report, out))
    return 0


def _feed(model, subs) -> None:
    """Move what the subscribers received into the model, oldest timestamp first."""
    items = []
    for kind, sub in subs.items():
        if sub.meta is not None and not model.has(kind):
            try:
                model.set_stream(kind, sub.meta)
            except ValueError as err:  # a truth on another grid: no comparison
                logger.warning("demo: %s", err)
                sub.meta = None
        if model.has(kind):
            items += [(ts, kind, sample) for sample, ts, _ in sub.drain()]
    for ts, kind, sample in sorted(items, key=lambda item: item[0]):
        model.add_volume(kind, sample, ts)


def _drain_until(model, subs, *, n: int, timeout: float) -> None:
    """Feed the model until it holds ``n`` predictions and their truth (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        _feed(model, subs)
        n_pred = model.streams["prediction"].history.n_written if model.has("prediction") else 0
        paired = model.pairs.n if model.pairs is not None else 0
        if n_pred >= n and (paired >= n or not model.has("truth")):
            return
        if time.monotonic() > deadline:
            logger.warning("demo: %d of %d predictions paired with the truth.", paired, n)
            return
        time.sleep(0.02)


def _showcase_voxel(model, ckpt):
    """``(voxel, how)``: where to put the crosshair, chosen before any truth is seen.

    The checkpoint's showcase voxel (the best validation-subject r at training time) when
    it has one; otherwise the voxel whose prediction varies most over the demo (blind to
    the truth), away from the brain's edge. Never the best r over the reported volumes:
    among thousands of voxels the largest r of noise is already high.
    """
    shown = (ckpt.metadata or {}).get("showcase")
    if shown and "mm" in shown:
        ijk = model.geometry.mm_to_voxel(shown["mm"])
        how = (
            f"fixed at training: best r {shown['val_r']:.2f} on validation subject(s) "
            f"{', '.join(shown.get('val_subjects', [])) or '?'}"
        )
        return tuple(int(i) for i in ijk), how
    stream = model.streams.get("prediction")
    if stream is None or len(stream.history) < 3:
        return None, ""
    from scipy.ndimage import binary_erosion

    sd = stream.history.data[: len(stream.history)].std(axis=0)
    inner = binary_erosion(model._column_of >= 0, iterations=2)
    ok = np.zeros(sd.size, bool)
    ok[model._column_of[inner]] = True
    score = np.where(ok & np.isfinite(sd), sd, -np.inf)
    if not np.isfinite(score).any():
        return None, ""
    column = int(np.argmax(score))
    voxel = tuple(int(i) for i in np.argwhere(model._column_of == column)[0])
    return voxel, "largest predicted variance over the demo (blind to the truth)"


def chance_level(model, *, n_min: int = 8) -> dict | None:
    """The crosshair's r against a circular-shift null of its own paired series.

    The truth series is shifted circularly by every lag of at least 2 volumes (which keeps
    its autocorrelation, unlike shuffling); returns the null's 95th percentile and the
    one-sided permutation p of the observed r.
    """
    pred_t, pred = model.time_course("prediction")
    true_t, true = model.time_course("truth")
    if pred.size < n_min or true.size < n_min:
        return None
    j = np.searchsorted(true_t, pred_t)
    j = np.clip(j, 1, true_t.size - 1)
    j -= (pred_t - true_t[j - 1]) < (true_t[j] - pred_t)
    keep = np.abs(true_t[j] - pred_t) < 0.25
    x, y = pred[keep].astype(np.float64), true[j[keep]].astype(np.float64)
    if x.size < n_min or x.std() == 0 or y.std() == 0:
        return None
    return circular_shift_null(x, y)


def circular_shift_null(x, y) -> dict:
    """Pearson r of ``x`` and ``y`` and its null from circular shifts of ``y`` (lags ≥ 2)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.size
    r = float(np.corrcoef(x, y)[0, 1])
    null = np.array([np.corrcoef(x, np.roll(y, k))[0, 1] for k in range(2, n - 1)])
    return {
        "r": r,
        "n_pairs": int(n),
        "null_p95": float(np.percentile(null, 95)),
        "p": float((1 + np.sum(null >= r)) / (1 + null.size)),
        "method": "circular shifts of the truth series (lags 2 .. n-2)",
    }


def screenshot(model, path, *, status: str = "", size=(1400, 900)) -> Path:
    """Render the viewer for ``model`` offscreen and save it as a PNG.

    ``status`` replaces the status bar's text (the streams are gone by then).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .app import make_app
    from .window import ViewerWindow

    app = make_app()
    window = ViewerWindow({}, model=model, poll_ms=0)
    window.resize(*size)
    window.show()
    app.processEvents()
    window.refresh()
    window.status_label.setText(status)
    app.processEvents()
    try:
        return window.snapshot(path)
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()


def format_report(report: dict, out: Path) -> str:
    """The summary printed at the end of a headless run."""
    lines = [
        f"demo: {report['volumes']} volumes of {report['model_name']} on {report['session']} "
        f"at {report['speed']:g}× ({report['skipped']} skipped)",
        f"  latency   p50 {report['latency_p50_ms']:.1f} ms, p99 {report['latency_p99_ms']:.1f} ms "
        "(publish − last EEG sample sent)",
    ]
    corr = report.get("correlation")
    if corr and corr["n_pairs"]:
        lines.append(
            f"  online r  vs truth over {corr['n_pairs']} paired volumes: mean "
            f"{corr['r_mean']:.3f}, median {corr['r_median']:.3f}, p90 {corr['r_p90']:.3f} "
            f"({corr['n_voxels']} voxels)"
        )
    else:
        lines.append("  online r  n/a (no prediction/truth pair)")
    if "crosshair_mm" in report:
        x, y, z = report["crosshair_mm"]
        line = f"  crosshair ({x:.0f}, {y:.0f}, {z:.0f}) mm, r = {report['crosshair_r']:.2f}"
        chance = report.get("crosshair_chance")
        if chance:
            line += (
                f" (chance: 95th percentile {chance['null_p95']:.2f} of circular shifts, "
                f"p = {chance['p']:.2f}, {chance['n_pairs']} volumes)"
            )
        lines.append(line)
        lines.append(f"            chosen by {report.get('crosshair_choice', '?')}")
    names = ", ".join(report["files"].values())
    lines.append(f"  wrote     {names} in '{out}'")
    return "\n".join(lines)


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


__all__ = ["DemoConfig", "demo_session", "has_display", "load_demo_model", "run_demo", "screenshot"]
