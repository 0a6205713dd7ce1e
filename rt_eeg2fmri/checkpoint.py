"""Self-contained checkpoints: everything inference needs, loadable without unpickling code.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain Python values
(str, int, float, bool, None, lists, dicts), so :func:`load_checkpoint` reads it with
``torch.load(..., weights_only=True)`` and nothing in the file can execute. Like
nanoGPT, the architecture is rebuilt from its stored config dataclass fields.

Keys (format 2): ``format``, ``format_version``, ``model_name``, ``model_config``,
``state_dict`` (without the mask), ``preprocessing`` (the whole
:class:`~rt_eeg2fmri.data.preprocessing.Preprocessing` record: rate, band-pass,
normalisation method, window, target, smoothing, drift removal), ``norm_stats``
(:class:`~rt_eeg2fmri.data.norm.NormStats`), ``ch_names``, ``t_r``, ``grid`` (shape,
affine, n_voxels), ``mask`` (bit-packed uint8 tensor, C order) and ``metadata`` (data
fingerprint, split, metrics, package versions, creation time, …); optionally
``calibration`` (a per-voxel map of the output, :class:`~rt_eeg2fmri.models.Calibrated`)
and ``task`` (event weights beside the model, :class:`~rt_eeg2fmri.task.TaskReadout`).

Format 1 checkpoints (the first release; the shipped default among them) migrate on
load: their preprocessing is read back from ``sfreq``, ``winsize``, the old
``preprocessing`` dict and the training config in their metadata.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._checks import check_ch_names, check_file, check_positive
from ._io import atomic_path
from ._logging import logger
from .data.norm import NormStats
from .data.preprocessing import HasPreprocessing, Preprocessing, same_rate
from .task import TaskReadout

FORMAT = "rt-eeg2fmri-checkpoint"
FORMAT_VERSION = 2
# Model config fields added after a checkpoint may have been saved, with the value that
# rebuilds the architecture it was trained with (the new default may build another).
# Model config fields added since, with the value that rebuilds an older checkpoint's model:
# the plain CNN stem of the first release; ridge's TR-long frames and canonical HRF alone.
ADDED_CONFIG_FIELDS = {"envelope_rate": None, "frame_s": None, "hrf_basis": "canonical"}
# Model config fields renamed since (old name → new name).
RENAMED_CONFIG_FIELDS = {"n_outputs": "n_voxels"}
_COMMON = ("format_version", "model_name", "model_config", "state_dict", "preprocessing")
REQUIRED = {
    1: (*_COMMON, "ch_names", "sfreq", "winsize", "t_r", "grid", "mask", "metadata"),
    2: (*_COMMON, "norm_stats", "ch_names", "t_r", "grid", "mask", "metadata"),
}


@dataclass
class Checkpoint(HasPreprocessing):
    """A loaded checkpoint; ``model`` is built, loaded and in eval mode.

    Attributes
    ----------
    path : Path
    model_name : str
    model_config : dict
        Fields of the architecture's config dataclass.
    model : nn.Module
    preprocessing : Preprocessing
        What the model sees and is scored against (rate, band-pass, window, target, ...).
    norm_stats : NormStats
        The training EEG's normalisation statistics (pooled over the training subjects).
    ch_names : list of str
        Channels in the order the model expects.
    t_r : float
        Repetition time in seconds.
    grid_shape : tuple of int
    affine : array of shape (4, 4)
    mask : array of bool, shape ``grid_shape``
        Voxels the model predicts (C order of ``mask.nonzero()``).
    metadata : dict
    format_version : int
    task : TaskReadout | None
        Task-event weights added to the model's prediction (``calibrate --events``): the
        prediction of a volume is ``model(x) + task regressors @ task.weights``.
    """

    path: Path
    model_name: str
    model_config: dict
    model: nn.Module
    preprocessing: Preprocessing
    norm_stats: NormStats
    ch_names: list
    t_r: float
    grid_shape: tuple
    affine: np.ndarray
    mask: np.ndarray
    metadata: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    task: TaskReadout | None = None

    @property
    def n_times(self) -> int:
        """Samples per window."""
        return int(self.model_config["n_times"])

    @property
    def n_voxels(self) -> int:
        """Voxels per prediction."""
        return int(self.mask.sum())

    def predict(self, x):
        """Predict in-mask voxels from normalised windows.

        Parameters
        ----------
        x : array or tensor of shape (n_chans, n_times) or (B, n_chans, n_times)

        Returns
        -------
        y : same kind as ``x``, shape (n_voxels,) or (B, n_voxels), float32
        """
        as_numpy = not isinstance(x, torch.Tensor)
        xt = torch.as_tensor(np.asarray(x, np.float32) if as_numpy else x)
        single = xt.ndim == 2
        xt = xt.to(device=self.device, dtype=torch.float32)
        with torch.inference_mode():
            y = self.model(xt[None] if single else xt)
        y = y[0] if single else y
        return y.float().cpu().numpy() if as_numpy else y

    def save_adapted(self, path, model, *, norm_stats, metadata: dict, task=False) -> Path:
        """Write ``model`` (this one adapted to a person) with this checkpoint's recording fields.

        The preprocessing, channels, TR, grid and mask are this checkpoint's; ``metadata``
        is added to its own (e.g. ``{"calibration": {...}}``). ``task``: the task readout
        written (default this checkpoint's; ``None``: none).
        """
        return save_checkpoint(
            path,
            model,
            preprocessing=self.preprocessing,
            norm_stats=norm_stats,
            ch_names=self.ch_names,
            t_r=self.t_r,
            grid_shape=self.grid_shape,
            affine=self.affine,
            mask=self.mask,
            metadata={**self.metadata, **metadata},
            task=self.task if task is False else task,
        )

    @property
    def device(self) -> torch.device:
        """Device the model lives on."""
        return next(iter(self.model.buffers())).device


def array_checksum(ckpt: dict) -> str:
    """SHA-256 of a checkpoint's arrays and the fields that place them.

    Covers the weights, the model and its config, the preprocessing, the normalisation
    statistics, the mask bits, the grid, the channels, the TR and any calibration map, in
    a fixed order, so a checkpoint altered or damaged after it was written (a flipped
    mask bit keeps the voxel count) is caught on load. The metadata is not covered.
    """
    import hashlib

    h = hashlib.sha256()

    def add(key: str, value) -> None:
        h.update(key.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())

    for key in sorted(ckpt["state_dict"]):
        add(f"state_dict.{key}", ckpt["state_dict"][key])
    for key in ("model_name", "model_config", "preprocessing", "norm_stats", "mask", "grid",
                "ch_names", "t_r"):  # fmt: skip
        add(key, ckpt[key])
    for part in ("calibration", "task"):
        for key, value in sorted((ckpt.get(part) or {}).items()):
            add(f"{part}.{key}", value)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    preprocessing: Preprocessing,
    norm_stats: NormStats | dict,
    ch_names,
    t_r: float,
    grid_shape,
    affine,
    mask,
    metadata: dict | None = None,
    task: TaskReadout | None = None,
) -> Path:
    """Write a self-contained checkpoint atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination (``.pt``).
    model : nn.Module
        A model from :mod:`rt_eeg2fmri.models` (has ``name`` and ``config``).
    preprocessing : Preprocessing
        What the model was trained on, stored whole; its ``sfreq`` must equal
        ``model.config.sfreq`` and ``winsize · sfreq`` its ``n_times``.
    norm_stats : NormStats | dict
        EEG normalisation statistics (a dict as :meth:`NormStats.to_dict` gives).
    ch_names : list of str
        Channel order of the model's input (``n_chans`` names).
    t_r : float
        Repetition time in seconds.
    grid_shape : sequence of int
        Output grid, e.g. (53, 63, 52).
    affine : array of shape (4, 4)
        Voxel → MNI mm.
    mask : bool array of shape ``grid_shape``
        The model's voxels; ``mask.sum() == model.config.n_voxels``.
    metadata : dict | None
        Data fingerprint, split, metrics, … (plain values); package ``versions`` and
        ``created`` are added unless given.
    task : TaskReadout | None
        Task-event weights beside the model (one per trial type and voxel).

    Returns
    -------
    path : Path
    """
    from .models import MODELS, Calibrated

    path = Path(path)
    calibration = None
    if isinstance(model, Calibrated):  # the base model's weights + the per-voxel map
        calibration = {
            "gain": model.out_gain.detach().cpu().clone(),
            "bias": model.out_bias.detach().cpu().clone(),
        }
        if model.out_slope is not None:  # a per-voxel haemodynamic delay
            calibration["slope"] = model.out_slope.detach().cpu().clone()
            calibration["delay_step"] = model.step
        model = model.base
    name = getattr(model, "name", None)
    config = getattr(model, "config", None)
    if name not in MODELS or not isinstance(config, MODELS[name][1]):
        raise TypeError(
            f"'model' must be a model from rt_eeg2fmri.models ({', '.join(MODELS)}), "
            f"got {type(model).__name__}."
        )
    ch_names = check_ch_names(ch_names)
    if len(ch_names) != config.n_chans:
        raise ValueError(
            f"'ch_names' has {len(ch_names)} names but the model takes {config.n_chans}."
        )
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(f"'preprocessing' must be a Preprocessing, got {preprocessing!r}.")
    _check_window(preprocessing, config, where="'preprocessing'")
    if not isinstance(norm_stats, NormStats):
        norm_stats = NormStats.from_dict(norm_stats)
    if [c.lower() for c in norm_stats.ch_names] != [c.lower() for c in ch_names]:
        raise ValueError(
            f"'norm_stats' are for channels {norm_stats.ch_names}, the model takes {ch_names}."
        )
    if norm_stats.method != preprocessing.norm:
        raise ValueError(
            f"'norm_stats' were estimated with method {norm_stats.method!r}, but "
            f"preprocessing.norm is {preprocessing.norm!r}."
        )
    t_r = check_positive(t_r, "t_r")
    grid_shape = [int(s) for s in grid_shape]
    if config.grid_shape is not None and list(config.grid_shape) != grid_shape:
        raise ValueError(
            f"'grid_shape' {tuple(grid_shape)} differs from the model's {tuple(config.grid_shape)}."
        )
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
    if mask.dtype != bool:
        raise TypeError(f"'mask' must be boolean, got dtype {mask.dtype}.")
    if list(mask.shape) != grid_shape:
        raise ValueError(f"'mask' has shape {mask.shape}, expected grid_shape {tuple(grid_shape)}.")
    if int(mask.sum()) != config.n_voxels:
        raise ValueError(
            f"'mask' selects {int(mask.sum())} voxels, the model predicts {config.n_voxels}."
        )
    if config.grid_shape is not None:
        if not np.array_equal(model.mask.detach().cpu().numpy(), mask):
            raise ValueError(
                "'mask' differs from the model's mask buffer; call model.set_mask(mask)."
            )
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"'affine' must be a finite 4 × 4 matrix, got shape {affine.shape}.")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k != "mask"}
    meta = {"versions": _versions(), "created": _now()}
    meta.update(metadata or {})
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "model_config": _plain(asdict(config), "model_config"),
        "state_dict": state,
        "preprocessing": _plain(preprocessing.to_dict(), "preprocessing"),
        "norm_stats": _plain(norm_stats.to_dict(), "norm_stats"),
        "ch_names": ch_names,
        "t_r": t_r,
        "grid": {"shape": grid_shape, "affine": affine.tolist(), "n_voxels": int(mask.sum())},
        "mask": torch.from_numpy(np.packbits(mask.ravel())),
        "metadata": _plain(meta, "metadata"),
    }
    if calibration is not None:
        ckpt["calibration"] = calibration
    if task is not None:
        if task.n_voxels != int(mask.sum()):
            raise ValueError(
                f"'task' weighs {task.n_voxels} voxels, the model predicts {int(mask.sum())}."
            )
        ckpt["task"] = task.to_dict()
    ckpt["checksum"] = {"algorithm": "sha256", "arrays": array_checksum(ckpt)}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def load_checkpoint(path: str | Path, *, map_location="cpu") -> Checkpoint:
    """Load a checkpoint with ``torch.load(weights_only=True)``; build its model in eval mode.

    Parameters
    ----------
    path : path-like
    map_location : str | torch.device
        Where tensors and the model go.

    Returns
    -------
    checkpoint : Checkpoint

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If the file is corrupt, truncated, foreign, carries pickled objects (which are
        never executed), is missing keys, is of a newer format, or its config does not
        match its weights. The message names the file and the problem.
    """
    from .models import MODELS

    path = check_file(path, "checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(
            f"'{path}' is not a readable rt-eeg2fmri checkpoint: {_why(err, path)}"
        ) from None
    if not isinstance(ckpt, dict):
        raise ValueError(
            f"'{path}' is not an rt-eeg2fmri checkpoint: it holds a {type(ckpt).__name__}, "
            "not a dict."
        )
    if ckpt.get("format") != FORMAT:
        keys = sorted(map(str, ckpt))[:8]
        raise ValueError(
            f"'{path}' is not an rt-eeg2fmri checkpoint: format={ckpt.get('format')!r}, "
            f"expected {FORMAT!r} (top-level keys: {keys})."
        )
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"'{path}': invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"'{path}' has format_version {version}, newer than this rt-eeg2fmri reads "
            f"({FORMAT_VERSION}); upgrade rt-eeg2fmri."
        )
    missing = [k for k in REQUIRED[version] if k not in ckpt]
    if missing:
        raise ValueError(f"'{path}' is an incomplete checkpoint: missing key(s) {missing}.")
    stored_sum = ckpt.get("checksum")  # absent from checkpoints written before it existed
    if stored_sum is not None:
        try:
            found = array_checksum(ckpt)
            expected = stored_sum["arrays"]
        except (KeyError, TypeError, AttributeError, RuntimeError) as err:
            raise ValueError(f"'{path}': malformed arrays or checksum: {err}") from None
        if found != expected:
            raise ValueError(
                f"'{path}': its arrays do not match the checksum written with them (SHA-256 "
                f"{found[:12]}…, expected {expected[:12]}…): the file was altered or damaged "
                "after it was saved. Use the original checkpoint."
            )
    name = ckpt["model_name"]
    if name not in MODELS:
        raise ValueError(f"'{path}': unknown model_name {name!r}; known: {', '.join(MODELS)}.")
    try:
        grid = ckpt["grid"]
        shape = tuple(int(s) for s in grid["shape"])
        affine = np.asarray(grid["affine"], dtype=np.float64).reshape(4, 4)
        bits = ckpt["mask"].cpu().numpy()
        mask = np.unpackbits(bits, count=math.prod(shape)).astype(bool).reshape(shape)
        ch_names = check_ch_names(ckpt["ch_names"], source=f"'{path}' ch_names")
        t_r = check_positive(ckpt["t_r"], "t_r")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"'{path}': malformed grid, mask or recording fields: {err}") from None
    n_grid = grid.get("n_voxels", grid.get("n_vox", mask.sum()))  # n_vox: format 1
    if int(mask.sum()) != int(n_grid):
        raise ValueError(f"'{path}': the mask has {int(mask.sum())} voxels, grid says {n_grid}.")
    try:
        if version == 1:
            preprocessing, norm_stats = _migrate_v1(ckpt, path)
        else:
            preprocessing = Preprocessing.from_dict(
                dict(ckpt["preprocessing"]), where=f"'{path}' preprocessing"
            )
            norm_stats = NormStats.from_dict(dict(ckpt["norm_stats"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"'{path}': malformed preprocessing or norm_stats: {err}") from None
    from .models.registry import make_config

    stored = dict(ckpt["model_config"])
    for old, new in RENAMED_CONFIG_FIELDS.items():
        if old in stored and new not in stored:
            stored[new] = stored.pop(old)
    for key, value in ADDED_CONFIG_FIELDS.items():  # configs saved before a field existed
        if key not in stored and key in {f.name for f in fields(MODELS[name][1])}:
            stored[key] = value
    try:
        config = make_config(name, stored)
        model = MODELS[name][0](config)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"'{path}': cannot rebuild model {name!r} from its config: {err}"
        ) from None
    _check_window(preprocessing, config, where=f"'{path}': preprocessing")  # before any sizing
    state = dict(ckpt["state_dict"])
    # a model without a grid keeps its flat mask; otherwise the stored mask is its buffer
    state["mask"] = torch.from_numpy(mask) if config.grid_shape is not None else model.mask
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        msg = " ".join(str(err).split())
        raise ValueError(
            f"'{path}': the weights do not match the {name!r} model config: {msg[:600]}"
        ) from None
    if "calibration" in ckpt:
        from .models import Calibrated

        try:
            cal = ckpt["calibration"]
            delay = {"slope": cal["slope"], "step": cal["delay_step"]} if "slope" in cal else {}
            model = Calibrated(model, cal["gain"], cal["bias"], **delay)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"'{path}': malformed calibration: {err}") from None
    task = None
    if "task" in ckpt:
        try:
            task = TaskReadout.from_dict(dict(ckpt["task"]))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"'{path}': malformed task readout: {err}") from None
        if task.n_voxels != int(mask.sum()):
            raise ValueError(
                f"'{path}': its task readout weighs {task.n_voxels} voxels, the mask has "
                f"{int(mask.sum())}."
            )
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    model.eval()
    return Checkpoint(
        path=path,
        model_name=name,
        model_config=asdict(config),
        model=model,
        preprocessing=preprocessing,
        norm_stats=norm_stats,
        ch_names=ch_names,
        t_r=t_r,
        grid_shape=shape,
        affine=affine,
        mask=mask,
        metadata=dict(ckpt["metadata"]),
        format_version=version,
        task=task,
    )


def _check_window(preprocessing: Preprocessing, config, *, where: str) -> None:
    """The record's rate and window must be the model's (``ValueError`` naming ``where``)."""
    sfreq = preprocessing.sfreq
    if sfreq is None or not same_rate(sfreq, config.sfreq):
        raise ValueError(f"{where}: sfreq {sfreq} Hz differs from the model's {config.sfreq} Hz.")
    if preprocessing.n_times != config.n_times:
        raise ValueError(
            f"{where}: winsize {preprocessing.winsize:g} s at {sfreq:g} Hz is "
            f"{preprocessing.n_times} samples, but the model takes n_times={config.n_times} "
            f"({config.n_times / config.sfreq:g} s)."
        )


def _migrate_v1(ckpt: dict, path: Path) -> tuple[Preprocessing, NormStats]:
    """The ``Preprocessing`` and ``NormStats`` of a format-1 checkpoint.

    Format 1 stored the rate and window at the top level, the band-pass, target and
    statistics in ``preprocessing`` and the BOLD options only in the training config.
    """
    old = dict(ckpt["preprocessing"])
    train = dict(dict(ckpt.get("metadata") or {}).get("train_config") or {})
    stats = NormStats.from_dict(dict(old["norm"]))
    pre = Preprocessing(
        sfreq=float(ckpt["sfreq"]),
        l_freq=old.get("l_freq"),
        h_freq=old.get("h_freq"),
        norm=stats.method,
        winsize=float(ckpt["winsize"]),
        target=old.get("target") or "psc",
        fwhm=train.get("fwhm"),
        high_pass=train.get("high_pass"),
    )
    if pre.bandpass:
        logger.warning(
            "Checkpoint '%s' (format 1) was trained on EEG band-passed zero-phase, which a live "
            "stream cannot compute; the causal band-pass of this version is applied instead, "
            "so its predictions differ from those it was trained for. Retrain it.",
            path,
        )
    return pre, stats


def _why(err: Exception, path: Path) -> str:
    import zipfile

    text = str(err)
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    cause = f"{type(err).__name__}: {first}"
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic:
        return "the file is empty."
    # torch.save writes a zip archive; the legacy format starts with a pickle protocol byte
    if magic[:1] not in (b"P", b"\x80"):
        return (
            f"not a torch checkpoint file (it starts with bytes {magic!r}, expected a zip "
            "archive as torch.save writes)."
        )
    if "Weights only load failed" in text or "weights_only" in text:
        detail = next(
            (line.strip() for line in text.splitlines() if "Unsupported" in line),
            "it needs a non-allowlisted Python object",
        )
        return (
            "it contains pickled Python objects, which are refused and were not executed "
            f"({detail})."
        )
    if magic == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            return f"the file is truncated or corrupt (incomplete zip archive; {cause})."
        return f"a zip archive, but not a torch checkpoint ({cause})."
    if isinstance(err, EOFError):
        return f"the file is truncated ({cause})."
    return f"not a torch checkpoint file ({cause})."


def _plain(obj, where: str):
    """Copy ``obj`` as plain Python values / tensors; raise ``TypeError`` naming ``where``."""
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, np.generic):
        return _plain(obj.item(), where)
    for kind in (bool, int, float, str):  # subclasses (TorchVersion, np.float64) → exact type
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, str | int):
                raise TypeError(f"{where}: keys must be str or int, got {k!r}.")
            out[_plain(k, where)] = _plain(v, f"{where}[{k!r}]")
        return out
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return _plain(to_dict(), where)
    raise TypeError(
        f"{where} holds a {type(obj).__name__}; checkpoints store only numbers, strings, "
        "lists, dicts, arrays and tensors."
    )


def _versions() -> dict:
    from . import __version__

    return {
        "rt_eeg2fmri": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
