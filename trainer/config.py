"""Training configuration: a dataclass, loadable from TOML with command-line overrides.

The preprocessing options (``sfreq``, ``l_freq``, ``h_freq``, ``norm``, ``winsize``,
``target``, ``fwhm``, ``high_pass``) are written flat in a TOML ``[train]`` table and in
``--set KEY=VALUE``, and held as one
:class:`~rt_eeg2fmri.data.preprocessing.Preprocessing` record.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rt_eeg2fmri._checks import check_option, check_positive
from rt_eeg2fmri.data.preprocessing import Preprocessing

DEVICES = ("auto", "cpu", "cuda")
#: The training default: targets high-passed at SPM's 128 s (scanner drift is not in the
#: EEG, and networks trained on it overfit each run's drift).
DEFAULT_PREPROCESSING = Preprocessing(high_pass=0.008)


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved into the checkpoint's metadata).

    Attributes
    ----------
    model : str
        Architecture name (``conv``, ``fc``, ``siamese_fc``, ``transformer``, ``ridge``).
    model_args : dict
        Overrides of the architecture's config dataclass: flat (for ``model``) or keyed by
        model name when several models are trained in one run.
    split : str
        ``loso`` (leave-one-subject-out), ``within`` (by run) or ``random`` (leaky; warns).
    test_subjects : list of str | None
        LOSO folds to run (default: full rotation).
    subjects : list of str | None
        Use only these subjects of the dataset (default: all).
    runs : list of str | None
        Use only these runs: run numbers (``"2"``) or names (``task-visual_run-1``, any
        part of ``sub-01_task-visual_run-1``); default: all.
    channels : list of str | None
        The model's channels, in order; recordings with other caps are interpolated onto
        them (spherical splines). Default: the first run's channels.
    mask : str | None
        A NIfTI mask on the BOLD grid: the voxels modelled and scored. Default: the MNI
        mask (SPM's 3 mm grid) or the first run's EPI mask, less what it does not cover.
    preprocessing : Preprocessing
        What the models see and are scored against (:data:`DEFAULT_PREPROCESSING`:
        the recording's rate, no band-pass, z-score, 30 s windows, percent signal
        change high-passed at 0.008 Hz, SPM's 128 s).
    epochs, batch_size, lr, weight_decay, patience : training loop settings
        Early stopping stops after ``patience`` epochs without a better validation loss.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    amp : bool
        Mixed precision (bfloat16 autocast) on CUDA. Off by default: on an H200 it trained
        every model more slowly than fp32 at batch 16 (conv 4,934 vs 7,317 windows/s at
        250 Hz; ``benchmarks/bench_training.py --device cuda --amp both``).
    seed : int
        Seed of weights and batch order; CPU runs are deterministic.
    max_batches : int | None
        Cap on training batches per epoch (quick runs).
    loader_threads : int
        Threads that prepare batches ahead of the loop, into page-locked memory on CUDA
        (the batches are the same). 0 (default): in the loop's thread. On this 2-core CPU
        threads made reading slower (2,052 windows/s with 0, 1,313 with 1, 1,160 with 2;
        ``benchmarks/bench_loading.py``); the loop overlaps reading with the GPU without
        them, as it no longer reads the loss after every step.
    """

    model: str = "conv"
    model_args: dict = field(default_factory=dict)
    split: str = "loso"
    test_subjects: list | None = None
    subjects: list | None = None
    runs: list | None = None
    channels: list | None = None
    mask: str | None = None
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-2
    patience: int = 3
    device: str = "auto"
    amp: bool = False
    seed: int = 0
    max_batches: int | None = None
    loader_threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)
        if not isinstance(self.preprocessing, Preprocessing):
            raise TypeError(f"'preprocessing' must be a Preprocessing, got {self.preprocessing!r}.")
        check_option(self.device, "device", DEVICES)
        check_option(self.split, "split", ("loso", "within", "random"))
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"'{name}' must be >= 1, got {getattr(self, name)!r}.")
        if int(self.loader_threads) < 0:
            raise ValueError(f"'loader_threads' must be >= 0, got {self.loader_threads!r}.")
        self.lr = check_positive(self.lr, "lr")
        wd = float(self.weight_decay)
        if not (math.isfinite(wd) and wd >= 0):
            raise ValueError(f"'weight_decay' must be >= 0 and finite, got {self.weight_decay!r}.")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``preprocessing`` as a nested dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from :meth:`to_dict`'s dict, or one with the preprocessing fields flat.

        ``TrainConfig.from_dict({"model": "conv", "winsize": 4.0})`` sets ``winsize`` in
        the record and keeps the other preprocessing defaults (:data:`DEFAULT_PREPROCESSING`).
        """
        values = dict(values)
        pre_keys = set(Preprocessing.field_names())
        flat = {k: values.pop(k) for k in list(values) if k in pre_keys}
        nested = values.pop("preprocessing", None)
        if isinstance(nested, Preprocessing):
            nested = nested.to_dict()
        base = DEFAULT_PREPROCESSING.to_dict() if nested is None else dict(nested)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known: {sorted(known | pre_keys)}.")
        return cls(**values, preprocessing=Preprocessing.from_dict({**base, **flat}))


def _coerce(name: str, raw: str, current):
    import json

    if isinstance(current, bool):
        low = raw.lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"override {name}={raw!r}: expected true or false.")
        return low in ("true", "1", "yes")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from an optional TOML file and ``key=value`` overrides.

    ``model_args.KEY=VALUE`` sets one architecture option; a preprocessing field
    (``sfreq=100``, ``l_freq=1``, ``high_pass=null``, ...) sets it in the record. Values
    are parsed as JSON when they can be (numbers, lists, true/false, null), else taken as
    strings.
    """
    values: dict = {}
    pre_keys = set(Preprocessing.field_names())
    known = ({f.name for f in fields(TrainConfig)} - {"preprocessing"}) | pre_keys
    if path is not None:
        path = Path(path)
        try:
            with path.open("rb") as fh:
                values = tomllib.load(fh)
        except FileNotFoundError:
            raise FileNotFoundError(f"training config not found: '{path}'.") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"training config '{path}' is not valid TOML: {err}.") from None
        values = dict(values.get("train", values))
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"training config '{path}': unknown key(s) {unknown}; known: {sorted(known)}."
            )
    defaults = TrainConfig()
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like KEY=VALUE.")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key.startswith("model_args."):
            values.setdefault("model_args", {})[key.split(".", 1)[1]] = _coerce(key, raw, None)
            continue
        if key not in known:
            raise ValueError(f"override {key!r}: unknown key; known: {sorted(known)}.")
        current = getattr(defaults.preprocessing if key in pre_keys else defaults, key)
        values[key] = _coerce(key, raw, values.get(key, current))
    return TrainConfig.from_dict(values)
