"""Simulation presets and the validated configuration they resolve to.

Three presets, all on the full 53 × 63 × 52 grid with TR 2 s:

======== ======== ==== ======= ======== ======= ==============================
preset   subjects runs volumes channels sfreq   use
======== ======== ==== ======= ======== ======= ==============================
tiny     2        2    40      16       250 Hz  tests, demo (a few seconds)
small    4        2    120     34       250 Hz  laptops
oddball  16       6    170     34       1000 Hz the founding dataset's shape
======== ======== ==== ======= ======== ======= ==============================

Runs alternate between the ``auditory`` and ``visual`` oddball tasks (auditory first),
each task numbering its own runs from 1, as ds000116's ``task001``/``task002``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._checks import check_ch_names, check_option, check_positive

# A 34-channel 10-20/10-10 subset (a 32-channel MR cap's layout plus AF3/AF4); FCz is the
# recording reference and not part of the set.
CHANNELS_34: tuple[str, ...] = (
    "Fp1", "Fp2", "AF3", "AF4", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2",
    "FC6", "T7", "C3", "Cz", "C4", "T8", "TP9", "CP5", "CP1", "CP2", "CP6", "TP10",
    "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10",
)  # fmt: skip
CHANNELS_32: tuple[str, ...] = tuple(c for c in CHANNELS_34 if c not in ("AF3", "AF4"))
CHANNELS_16: tuple[str, ...] = (
    "Fp1", "Fp2", "F3", "Fz", "F4", "T7", "C3", "Cz", "C4", "T8", "P3", "Pz", "P4",
    "O1", "Oz", "O2",
)  # fmt: skip
CHANNEL_SETS: dict[int, tuple[str, ...]] = {16: CHANNELS_16, 32: CHANNELS_32, 34: CHANNELS_34}

TASKS: tuple[str, str] = ("auditory", "visual")
LAYOUTS: tuple[str, ...] = ("bids", "ds000116", "both")
MAT_VERSIONS: tuple[str, ...] = ("5", "7.3")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Attributes
    ----------
    n_subjects, n_runs, n_volumes : int
        Subjects, runs per subject (alternating auditory/visual), volumes per run.
    sfreq : float
        EEG sampling rate (Hz).
    ch_names : tuple of str
        EEG channels, names of the standard 10-20/10-10 montage.
    t_r : float
        Repetition time (s).
    lead_in : float
        EEG recorded before the first volume in the BIDS layout (s).
    tail : float
        EEG recorded after the end of the last volume (s).
    legacy_lead_in : float
        EEG before the first volume in the ds000116 layout (s; 0 as in the real dataset,
        whose EEG acquisition was triggered by the scan start).
    line_freq : float
        Power-line frequency (Hz) of the residual line noise and the sidecars.
    mat_version : ``"5"`` | ``"7.3"``
        MATLAB file version of the ds000116 layout.
    jobs : int
        Worker processes (subjects are simulated in parallel; output does not depend on it).
    artifacts : tuple of str
        In-scanner artifacts added to the recorded EEG (``"gradient"``, ``"bcg"``); the
        clean EEG is written beside the truth and an ECG channel is recorded
        (:mod:`.artifacts`).
    scanner_sync : bool
        Whether the EEG clock is locked to the scanner's (the gradient artifact falls on
        the same sub-sample phase every slice) or drifts (it does not).
    randomize : bool
        Draw the generative choices (which bands couple to which region and with which
        sign, blob sizes, HRF shapes and per-region delays, noise levels) per seed and
        subject instead of using the fixed ones our models were designed on
        (:func:`.regions.randomize_regions`).
    """

    n_subjects: int
    n_runs: int
    n_volumes: int
    sfreq: float
    ch_names: tuple[str, ...]
    t_r: float = 2.0
    lead_in: float = 5.0
    tail: float = 2.0
    legacy_lead_in: float = 0.0
    line_freq: float = 60.0
    mat_version: str = "5"
    jobs: int = 1
    randomize: bool = False
    artifacts: tuple[str, ...] = ()
    scanner_sync: bool = True

    def runs(self) -> list[tuple[str, int]]:
        """``(task, run)`` of each run in acquisition order: auditory 1, visual 1, auditory 2, ..."""
        return [(TASKS[k % 2], k // 2 + 1) for k in range(self.n_runs)]


PRESETS: dict[str, dict] = {
    "tiny": dict(n_subjects=2, n_runs=2, n_volumes=40, sfreq=250.0, ch_names=CHANNELS_16),
    "small": dict(n_subjects=4, n_runs=2, n_volumes=120, sfreq=250.0, ch_names=CHANNELS_34),
    "oddball": dict(n_subjects=16, n_runs=6, n_volumes=170, sfreq=1000.0, ch_names=CHANNELS_34),
}

# Override name (CLI flag / keyword) → SimConfig field.
_ALIASES = {
    "subjects": "n_subjects",
    "runs": "n_runs",
    "volumes": "n_volumes",
    "channels": "ch_names",
}


def resolve_config(preset: str = "small", **overrides) -> SimConfig:
    """Build a validated configuration from a preset and per-field overrides.

    Parameters
    ----------
    preset : str
        ``"tiny"``, ``"small"`` or ``"oddball"``.
    **overrides
        ``subjects``, ``runs``, ``volumes`` (int ≥ 1), ``sfreq`` (Hz), ``channels`` (list
        of 10-20/10-10 names, a comma-separated string, or 16/32/34 for the built-in
        sets), ``t_r``, ``lead_in``, ``tail``, ``legacy_lead_in`` (s), ``line_freq``
        (Hz), ``mat_version`` (``"5"``/``"7.3"``), ``jobs`` (int ≥ 1), ``randomize``
        (bool), ``artifacts`` (``"gradient,bcg"`` or a sequence), ``scanner_sync`` (bool).
        ``None`` values are ignored.

    Returns
    -------
    config : SimConfig
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(
            f"unknown simulation preset {preset!r}; known presets: {', '.join(PRESETS)}."
        )
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    values = {n: f.default for n, f in fields.items() if f.default is not dataclasses.MISSING}
    values.update(PRESETS[preset])
    for key, value in overrides.items():
        if value is None:
            continue
        name = _ALIASES.get(key, key)
        if name not in fields:
            known = sorted(set(_ALIASES) | (set(fields) - set(_ALIASES.values())))
            raise TypeError(f"unknown simulation override {key!r}; known overrides: {known}.")
        values[name] = value
    for name, minimum in (("n_subjects", 1), ("n_runs", 1), ("n_volumes", 2), ("jobs", 1)):
        values[name] = _check_int(values[name], _public(name), minimum)
    if values["n_subjects"] > 999:
        raise ValueError(f"'subjects' must be at most 999, got {values['n_subjects']}.")
    for name in ("sfreq", "t_r", "line_freq"):
        values[name] = check_positive(values[name], name)
    for name in ("lead_in", "tail", "legacy_lead_in"):
        values[name] = _check_non_negative(values[name], name)
    if values["sfreq"] < 100:
        raise ValueError(
            f"'sfreq' must be at least 100 Hz (evoked responses, alpha and gamma need it), "
            f"got sfreq={values['sfreq']!r}."
        )
    from .artifacts import parse_artifacts

    values["artifacts"] = parse_artifacts(values["artifacts"])
    if not isinstance(values["scanner_sync"], bool):
        raise ValueError(f"'scanner_sync' must be True or False, got {values['scanner_sync']!r}.")
    if not isinstance(values["randomize"], bool):
        raise ValueError(f"'randomize' must be True or False, got {values['randomize']!r}.")
    values["mat_version"] = check_option(str(values["mat_version"]), "mat_version", MAT_VERSIONS)
    values["ch_names"] = resolve_channels(values["ch_names"])
    return SimConfig(**values)


def _public(name: str) -> str:
    return {v: k for k, v in _ALIASES.items()}.get(name, name)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise TypeError(f"'{name}' must be an integer, got {name}={value!r}.")
    if value < minimum:
        raise ValueError(f"'{name}' must be at least {minimum}, got {name}={value!r}.")
    return int(value)


def _check_non_negative(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a number, got {value!r}.") from None
    if not out >= 0 or out == float("inf"):
        raise ValueError(f"'{name}' must be >= 0 and finite, got {name}={value!r}.")
    return out


def resolve_channels(channels) -> tuple[str, ...]:
    """Channel names from a list, a comma-separated string or a built-in set size.

    Names are matched case-insensitively to the standard 10-20/10-10 montage and returned
    in its spelling.
    """
    if isinstance(channels, int | str) and str(channels).strip().isdigit():
        n = int(channels)
        if n not in CHANNEL_SETS:
            raise ValueError(
                f"'channels': no built-in set of {n} channels; built-in sets: "
                f"{sorted(CHANNEL_SETS)} (or give the names)."
            )
        return CHANNEL_SETS[n]
    if isinstance(channels, str):
        channels = [c.strip() for c in channels.split(",") if c.strip()]
    names = check_ch_names(channels, source="'channels'")
    from .eeg import montage_names

    known = {n.lower(): n for n in montage_names()}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise ValueError(
            f"'channels': unknown channel name(s) {unknown}; expected names of the standard "
            f"10-20/10-10 montage such as {', '.join(CHANNELS_34[:8])}, ..."
        )
    return tuple(known[n.lower()] for n in names)
