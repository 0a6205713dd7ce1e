"""Live adaptation: the scanner's volumes adapt the model to the person, then it freezes.

``stream --adapt TRUTH_STREAM --adapt-minutes M``: while the scanner's real-time export
(a volume stream; the replay's truth stream stands in for one) sends the measured
volumes in the model's target units, each prediction is paired with the volume of the
same window end, and a per-voxel gain and offset — the readout of ``calibrate``, pulled
toward the base model — is refitted after every pair and applied to what the stream
publishes. After M minutes the same choice as ``calibrate`` is made on the collected pairs
(:func:`~rt_eeg2fmri.adaptation.choose`: the haemodynamic timing, the per-voxel maps and
the readout weights, fitted on the first three quarters, chosen on the last quarter after
a gap, refitted on all) from the model's input windows, kept while adapting; the truth
stream is let go, and the stream goes on from EEG alone with the chosen model. Phases, in
the timing log's ``adapt`` column: ``waiting`` (no pair yet: the base model's output),
``adapting`` (the running map), ``frozen``.
"""

from __future__ import annotations

import numpy as np

from .._logging import logger
from ..readout import affine_readout, chronological_split

RUNNING_STRENGTH = 3.0  # the running map's pull toward the base model (a middle candidate)
MIN_FIT, MIN_VAL = 12, 6


class OnlineAdapter:
    """Pair predictions with the scanner's volumes, adapt the readout, freeze after M minutes.

    Parameters
    ----------
    source : str
        The volume stream of measured volumes (``name:X``, ``X``, ``source_id:Y``), on the
        checkpoint's grid and in its target units (``replay --model M.pt`` sends them so).
    checkpoint : Checkpoint
    minutes : float
        Stream minutes of adaptation, from the first prediction.
    gap : float
        Seconds between fitted and held-out volumes in the final choice.
    delays : bool
        The final choice also offers per-voxel haemodynamic delays.
    timeout : float
        Seconds to wait for the stream.
    """

    def __init__(self, source: str, *, checkpoint, minutes: float, gap: float = 20.0,
                 delays: bool = False, timeout: float = 10.0) -> None:  # fmt: skip
        if not minutes > 0:
            raise ValueError(f"'adapt_minutes' must be positive, got {minutes!r}.")
        if gap < 0:
            raise ValueError(f"'adapt_gap' must be >= 0 seconds, got {gap!r}.")
        self.source, self.minutes, self.gap, self.timeout = source, float(minutes), gap, timeout
        self.delays = bool(delays)
        from ..models.calibrated import NO_DELAY, can_delay, describe_model

        if self.delays and not can_delay(checkpoint.model):
            raise ValueError(
                f"'adapt_delays' {NO_DELAY} ('{checkpoint.path}': "
                f"{describe_model(checkpoint.model)})."
            )
        self.checkpoint = checkpoint
        self.mask = np.asarray(checkpoint.mask, bool)
        self.t_r = float(checkpoint.t_r)
        n = int(self.mask.sum())
        #: ``(gain, bias)``: one attribute, so the chooser thread swaps both at once
        self.map = (np.ones(n), np.zeros(n))
        self._sums = np.zeros((4, n))  # Σp, Σy, Σp², Σpy
        self._n = 0
        self._torch: dict = {}  # (device, dtype) -> (the map it was made from, tensors)
        self.phase = "waiting"
        self._t0: float | None = None
        self._preds: dict[float, tuple] = {}  # window end -> (prediction, input window)
        self._truth: dict[float, np.ndarray] = {}
        #: ``(window end, prediction, measured volume, input window or None)``
        self.pairs: list[tuple] = []
        self.inlet = self.meta = None
        self._buf: np.ndarray | None = None
        self.chosen: dict | None = None
        #: the chosen model when it is not the base model under a per-voxel map (another
        #: HRF timing or readout weights): the stream takes it (:meth:`take_model`)
        self.adapted = None
        self._pending = None
        self._swapped = False
        self._save_to = None
        self.saved = None

    # -- stream ---------------------------------------------------------------------------
    def open(self) -> None:
        """Resolve and open the truth stream; check its grid and mask against the model."""
        import pylsl

        from ..grid import same_grid
        from ..volume_stream import parse_volume_stream_info
        from .resolve import resolve_eeg_stream

        info = resolve_eeg_stream(self.source, timeout=self.timeout)
        inlet = pylsl.StreamInlet(info, max_buflen=360, processing_flags=pylsl.proc_clocksync)
        meta = parse_volume_stream_info(inlet.info(self.timeout))
        ck = self.checkpoint
        if not same_grid(meta.grid_shape, meta.affine, ck.grid_shape, ck.affine):
            inlet.close_stream()
            raise ValueError(
                f"--adapt stream {self.source!r} sends volumes on grid {meta.grid_shape}, but "
                f"the model predicts on {tuple(ck.grid_shape)}; adapt with measured volumes on "
                "the model's grid (replay --model M.pt sends them so)."
            )
        if meta.mask is not None and not meta.mask[self.mask].all():
            inlet.close_stream()
            raise ValueError(
                f"--adapt stream {self.source!r} carries no data for "
                f"{int((~meta.mask[self.mask]).sum())} of the model's voxels."
            )
        inlet.time_correction(timeout=self.timeout)  # else the first pull waits ~0.6 s
        inlet.open_stream(self.timeout)
        self.inlet, self.meta = inlet, meta
        logger.info(
            "Adapting to the scanner's volumes on '%s' for %g min.", info.name(), self.minutes
        )

    def close(self) -> None:
        """Let the truth stream go."""
        if self.inlet is not None:
            self.inlet.close_stream()
            self.inlet = None

    # -- per volume -----------------------------------------------------------------------
    def observe(self, pred, t_end: float, window=None) -> str:
        """Record the raw in-mask prediction (array or tensor) of the window ending at ``t_end``.

        ``window``: the model's input (the normalised window, array or tensor), kept while
        adapting so that the choice at freezing can run the model's variants on it; without
        it only the per-voxel maps are candidates. Returns the phase the volume belongs to
        (before this call's update).
        """
        phase = self.phase
        if phase == "frozen":
            return phase
        if self._t0 is None:
            self._t0 = t_end
        if hasattr(pred, "cpu"):  # a tensor: copied to the host only while adapting
            pred = pred.float().cpu().numpy()
        if window is not None:  # the engine's buffer is reused: a copy on the host
            window = _host_copy(window)
        self._preds[round(t_end, 4)] = (np.asarray(pred, np.float64).ravel(), window)
        self._pull()
        self._pair()
        if self._n >= 3 and self.phase == "waiting":
            self.phase = "adapting"
        if t_end - self._t0 >= self.minutes * 60.0:
            self.freeze()
        return phase

    def _pull(self) -> None:
        if self.inlet is None:
            return
        if self._buf is None:  # liblsl writes the samples into it: no Python lists
            self._buf = np.empty((8, self.meta.n_channels), np.float32)
        _, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=8, dest_obj=self._buf)
        for sample, ts in zip(self._buf, stamps or [], strict=False):
            volume = self.meta.to_volume(sample)
            self._truth[float(ts)] = np.asarray(volume[self.mask], np.float64)

    def _pair(self) -> None:
        tol = min(0.25, self.t_r / 4)
        truth_ts = np.array(sorted(self._truth))
        for t_end in sorted(self._preds):
            if truth_ts.size == 0:
                return
            k = int(np.argmin(np.abs(truth_ts - t_end)))
            if abs(truth_ts[k] - t_end) > tol:
                continue
            (p, x), y = self._preds.pop(t_end), self._truth.pop(float(truth_ts[k]))
            truth_ts = np.delete(truth_ts, k)
            self.pairs.append((t_end, p, y, x))
            self._sums += (p, y, p * p, p * y)
            self._n += 1
            self._refit()
        # predictions whose volume never came (a dropped export) are let go after 4 TRs
        latest = max(self._preds, default=None)
        for t in [t for t in self._preds if latest is not None and latest - t > 4 * self.t_r]:
            del self._preds[t]

    def _refit(self) -> None:
        """The running map: the affine readout at :data:`RUNNING_STRENGTH`, from the sums."""
        n = self._n
        sp, sy, spp, spy = self._sums
        pm, ym = sp / n, sy / n
        self.map = affine_readout(pm, ym, spp - sp * pm, spy - sp * ym, RUNNING_STRENGTH)

    def freeze(self, *, wait: bool = False) -> None:
        """Stop adapting; choose the map on the collected pairs as ``calibrate`` does.

        The choice runs on a thread (it fits a dozen candidates over every voxel), so the
        stream's next volume is not held up; until it is made, the running map applies.
        ``wait`` blocks until it is.
        """
        import threading

        self.phase = "frozen"
        self._pull()
        self._pair()
        self.close()
        self._chooser = threading.Thread(target=self._choose, name="adapt-choice", daemon=True)
        self._chooser.start()
        if wait:
            self._chooser.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the frozen map's choice (and saving); ``True`` once made."""
        chooser = getattr(self, "_chooser", None)
        if chooser is not None:
            chooser.join(timeout)
            return not chooser.is_alive()
        return self.phase == "frozen"

    def _choose(self) -> None:
        n = len(self.pairs)
        summary = {"pairs": n, "minutes": self.minutes, "gap_s": self.gap}
        if n:
            ends = np.array([pair[0] for pair in self.pairs]) - self._t0
            fit, val = chronological_split(ends, gap=self.gap, val_fraction=0.25, t_r=self.t_r)
            if fit.sum() >= MIN_FIT and val.sum() >= MIN_VAL:
                chosen, table = self._choose_model(fit, val)
                summary.update(
                    chosen={**chosen.__dict__, "description": chosen.describe()},
                    candidates=table,
                    n_fit=int(fit.sum()),
                    n_held_out=int(val.sum()),
                )
            else:
                logger.warning(
                    "Adaptation: %d paired volumes give %d fitting and %d held-out (a %g s "
                    "gap); too few to choose, so the running map is kept.",
                    n, int(fit.sum()), int(val.sum()), self.gap,
                )  # fmt: skip
                summary["chosen"] = {"description": f"running map (strength {RUNNING_STRENGTH:g})"}
        else:
            logger.warning("Adaptation: no scanner volume was paired; the base model is kept.")
            summary["chosen"] = {"description": "base model (no pair)"}
        self.chosen = summary
        logger.info(
            "Adaptation frozen after %d paired volumes: %s.", n, summary["chosen"]["description"]
        )
        if self._save_to is not None:
            path, stats = self._save_to
            self.save(path, stats)

    def _choose_model(self, fit: np.ndarray, val: np.ndarray):
        """Choose among the candidates on the pairs ``fit | val``; ``(chosen, table)``."""
        import copy
        import time

        import torch

        from ..adaptation import choose, head_features

        t0 = time.perf_counter()
        rows = np.flatnonzero(fit | val)
        pairs = [self.pairs[i] for i in rows]
        p = np.stack([pair[1] for pair in pairs])
        y = np.stack([pair[2] for pair in pairs])
        windows = None
        if all(pair[3] is not None for pair in pairs):
            windows = torch.stack([pair[3] for pair in pairs])
        model = self.checkpoint.model
        if windows is not None:  # the choice runs its own copy, on the host
            model = copy.deepcopy(model).cpu().eval()

        @torch.inference_mode()
        def predict(m, idx):
            if windows is None:  # the predictions the stream made: the base model's only
                return p[idx], None

            def run():
                return torch.cat([m(windows[idx[k : k + 32]]) for k in range(0, idx.size, 32)])

            out, feat = head_features(m, run)
            return out.double().numpy(), feat

        chosen, adapted, table, _, _ = choose(
            {"stream": predict},
            model,
            y,
            fit[rows],
            timing=windows is not None,
            delays=self.delays,
        )
        if chosen.changes_model:
            self.adapted = self._pending = adapted  # the stream swaps it in (take_model)
        else:  # a per-voxel map of the base model: swapped whole, apply() sees old or new
            self.map = (adapted.out_gain.double().numpy(), adapted.out_bias.double().numpy())
        logger.info("Adaptation choice: %d candidates in %.1f s.", len(table),
                    time.perf_counter() - t0)  # fmt: skip
        return chosen, table

    def take_model(self):
        """The chosen model once it replaces the base model, else ``None`` (once).

        The stream runs it from the next window on; its own readout is in it, so the
        adapter's map is no longer applied.
        """
        model, self._pending = self._pending, None
        if model is not None:
            self._swapped = True
        return model

    def apply(self, pred):
        """``gain ⊙ pred + bias`` (numpy array or torch tensor, on its device)."""
        if self.phase == "waiting" or self._swapped:
            return pred
        current = self.map
        if isinstance(pred, np.ndarray):
            return (pred * current[0] + current[1]).astype(pred.dtype, copy=False)
        key = (pred.device, pred.dtype)
        made = self._torch.get(key)
        if made is None or made[0] is not current:  # tensors of the map now in force
            import torch

            made = self._torch[key] = (
                current,
                tuple(torch.as_tensor(a, dtype=pred.dtype, device=pred.device) for a in current),
            )
        gain, bias = made[1]
        return pred * gain + bias

    @property
    def gain(self) -> np.ndarray:
        """The per-voxel gain in force."""
        return self.map[0]

    @property
    def bias(self) -> np.ndarray:
        """The per-voxel offset in force."""
        return self.map[1]

    def save_when_frozen(self, path, norm_stats) -> None:
        """Write the adapted checkpoint once the frozen map is chosen (:meth:`save`)."""
        self._save_to = (path, norm_stats)

    def save(self, path, norm_stats) -> None:
        """The adapted model as an ordinary checkpoint (``Calibrated``) with its record."""
        from ..models import Calibrated

        ck = self.checkpoint
        calibration = {"live": True, "base_checkpoint": str(ck.path), **self.chosen}
        ck.save_adapted(
            path,
            self.adapted if self.adapted is not None else Calibrated(ck.model, *self.map),
            norm_stats=norm_stats,
            metadata={"calibration": calibration},
        )
        self.saved = str(path)
        logger.info("Adapted checkpoint written to '%s'.", path)


def _host_copy(window):
    """A float32 tensor on the host holding a copy of ``window`` (array or tensor)."""
    import torch

    if isinstance(window, torch.Tensor):
        return window.detach().to("cpu", torch.float32, copy=True)
    return torch.tensor(np.asarray(window), dtype=torch.float32)
