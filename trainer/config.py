"""Training configuration: a dataclass, loadable from TOML with command-line overrides."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rt_eeg2fmri._checks import check_option

DEVICES = ("auto", "cpu", "cuda")
BOLD_OPTIONS = ("fwhm", "high_pass")


def bold_options(values: dict) -> dict:
    """The optional BOLD preprocessing settings of ``values`` that are set.

    ``values`` is a :class:`TrainConfig` as a dict (or a checkpoint's ``train_config``).
    They are passed to the cache only when set, so caches built without them keep their
    fingerprint.
    """
    return {k: values[k] for k in BOLD_OPTIONS if values.get(k)}


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
    sfreq : float | None
        Rate of the cached EEG the model sees (Hz; default: the recording's rate).
    l_freq, h_freq : float | None
        Optional band-pass of the continuous EEG before caching (Hz).
    winsize : float
        Window length in seconds.
    target : str
        ``psc`` (percent signal change from the run mean) or ``median_ratio`` (the paper's).
    fwhm : float | None
        Spatial smoothing of the BOLD before the targets (mm FWHM; SPM's ``s`` step).
    high_pass : float | None
        High-pass cut-off of the targets in Hz (cosine drifts regressed out per run;
        nilearn's ``high_pass``). Default 0.008, SPM's 128 s filter: scanner drift is
        not in the EEG, and networks trained on it overfit each run's drift. ``None``
        keeps the drifts.
    norm : str
        EEG normalisation per subject and channel: ``zscore`` or ``robust``.
    epochs, batch_size, lr, weight_decay, patience : training loop settings
        Early stopping stops after ``patience`` epochs without a better validation loss.
    device : str
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    amp : bool
        Mixed precision (bfloat16 autocast) on CUDA.
    seed : int
        Seed of weights and batch order; CPU runs are deterministic.
    max_batches : int | None
        Cap on training batches per epoch (quick runs).
    """

    model: str = "conv"
    model_args: dict = field(default_factory=dict)
    split: str = "loso"
    test_subjects: list | None = None
    subjects: list | None = None
    sfreq: float | None = None
    l_freq: float | None = None
    h_freq: float | None = None
    winsize: float = 30.0
    target: str = "psc"
    fwhm: float | None = None
    high_pass: float | None = 0.008
    norm: str = "zscore"
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-2
    patience: int = 3
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    max_batches: int | None = None

    def __post_init__(self) -> None:
        check_option(self.device, "device", DEVICES)
        check_option(self.split, "split", ("loso", "within", "random"))
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"'{name}' must be >= 1, got {getattr(self, name)!r}.")

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)


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

    ``model_args.KEY=VALUE`` sets one architecture option. Values are parsed as JSON
    when they can be (numbers, lists, true/false), else taken as strings.
    """
    values: dict = {}
    known = {f.name for f in fields(TrainConfig)}
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
        values[key] = _coerce(key, raw, values.get(key, getattr(defaults, key)))
    return TrainConfig(**values)
