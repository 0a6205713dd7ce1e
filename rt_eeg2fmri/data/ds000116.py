"""The legacy OpenfMRI layout of ds000116 (auditory and visual oddball, Walz et al. 2013).

Layout read::

    subNNN/EEG/taskNNN_runNNN/EEG_rereferenced.mat   variable ``data_reref``, 37 × n_times
    subNNN/EEG/taskNNN_runNNN/EEG_noGA.mat           variable ``data_noGA``, ≥ 43 × n_times
    subNNN/EEG/taskNNN_runNNN/channels.txt           optional, one EEG label per line
    subNNN/BOLD/taskNNN_runNNN/bold.nii.gz           or files chosen by ``bold_pattern``

What the dataset's documentation says, and what this reader assumes:

- EEG at 1000 Hz (option ``sfreq``); acquisition "triggered by fMRI scan start", so the
  first EEG sample is the first volume's onset (option ``first_volume``, default 0 s)
  and volume ``i`` starts at ``first_volume + i * t_r``; there are no scanner markers.
- ``data_reref`` rows (re-referenced electrode space): 0–33 EEG, 34 ECG, 35 stimulus
  codes, 36 responses. ``data_noGA`` rows: 0–42 EEG, 43–44 EOG, 45–46 ECG, 47 stimulus
  codes, 48 responses. ``eeg="auto"`` prefers the re-referenced file.
- Stimulus codes 125/150 (task001, auditory standard/target) and 225/250 (task002,
  visual standard/target) become events ``standard``/``target`` at their rising edges,
  with the documented 200 ms stimulus duration; rising edges of the response row
  become ``response`` events.
- Channel labels of the custom bipolar cap are not distributed with the ``.mat`` files:
  ``channels.txt`` beside the file is used when present (34/43 labels, or one per row),
  else ``EEG01`` … ``EEG34`` (``EEG43`` for ``data_noGA``).
- Amplitude unit: the files carry none; values are taken as microvolts (option
  ``unit``: ``"uV"``, ``"mV"`` or ``"V"``) and converted to volts.
- MATLAB v5 files are read with ``scipy.io``, v7.3 (HDF5) with ``h5py``, which sees
  MATLAB's column-major arrays transposed.
- TR: option ``t_r``, else the NIfTI header's pixdim[4], else 2.0 s (the dataset's TR).
- Subjects ``sub001`` → ``"01"``, tasks ``task001`` → ``"auditory"``, ``task002`` →
  ``"visual"``, runs ``run001`` → ``"1"``, as in the dataset's BIDS release.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_ch_names, check_option, check_positive
from .._logging import logger
from ._nifti import read_bold_data, read_bold_header
from .dataset import RunInfo, RunRef
from .eeg_io import align_volumes
from .session import Session, empty_events

DEFAULTS = {
    "eeg": "auto",
    "bold_pattern": None,
    "sfreq": 1000.0,
    "t_r": None,
    "first_volume": 0.0,
    "dummy_scans": 0,
    "unit": "uV",
}
# kind → (file, variable, n_eeg rows, stimulus row, response row)
EEG_FILES = {
    "rereferenced": ("EEG_rereferenced.mat", "data_reref", 34, 35, 36),
    "noGA": ("EEG_noGA.mat", "data_noGA", 43, 47, 48),
}
TASKS = {"001": "auditory", "002": "visual"}
STIM_CODES = {
    "auditory": {125: "standard", 150: "target"},
    "visual": {225: "standard", 250: "target"},
}
STIM_DURATION = 0.2
DEFAULT_T_R = 2.0
UNITS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6}

_RUN_DIR = re.compile(r"task(\d+)_run(\d+)$")


def _options(options: dict) -> dict:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(
            f"unknown ds000116 reader option(s) {unknown}; valid options: {sorted(DEFAULTS)}."
        )
    opts = {**DEFAULTS, **options}
    check_option(opts["eeg"], "eeg", ("auto", *EEG_FILES))
    check_option(opts["unit"], "unit", tuple(UNITS))
    opts["sfreq"] = check_positive(opts["sfreq"], "sfreq")
    if opts["t_r"] is not None:
        opts["t_r"] = check_positive(opts["t_r"], "t_r")
    return opts


def default_ch_names(n: int) -> list[str]:
    """The documented default labels ``EEG01`` … ``EEGnn``."""
    return [f"EEG{i:02d}" for i in range(1, n + 1)]


def find_runs(root: str | Path, **options) -> list[RunRef]:
    """List the runs of a ds000116 legacy-layout folder.

    Parameters
    ----------
    root : path-like
        Dataset folder holding ``subNNN/``.
    **options
        ``eeg`` (``"auto"``, ``"rereferenced"``, ``"noGA"``), ``bold_pattern`` (glob in the
        run's BOLD folder, e.g. ``"swa*.nii"``; several matches are stacked as 3-D
        volumes in name order; default ``bold.nii.gz``/``bold.nii``), ``sfreq`` (1000 Hz),
        ``t_r`` (default from the NIfTI header, else 2.0 s), ``first_volume`` (0 s),
        ``dummy_scans`` (0), ``unit`` (``"uV"``).

    Returns
    -------
    runs : list of RunRef
        One per ``taskNNN_runNNN`` folder under ``EEG/`` or ``BOLD/``; a run missing a
        file is listed and its ``load`` raises ``FileNotFoundError`` naming it.
    """
    root = Path(root)
    opts = _options(options)
    runs = []
    for sub in sorted(p for p in root.glob("sub*") if p.is_dir() and p.name[3:].isdigit()):
        names = set()
        for kind in ("EEG", "BOLD"):
            names |= {p.name for p in (sub / kind).glob("task*_run*") if _RUN_DIR.match(p.name)}
        for name in sorted(names):
            runs.append(_make_ref(sub, name, opts))
    return runs


def _make_ref(sub: Path, name: str, opts: dict) -> RunRef:
    task_num, run_num = _RUN_DIR.match(name).groups()
    files, problems = {}, []
    eeg_dir, bold_dir = sub / "EEG" / name, sub / "BOLD" / name
    kinds = list(EEG_FILES) if opts["eeg"] == "auto" else [opts["eeg"]]
    found = [k for k in kinds if (eeg_dir / EEG_FILES[k][0]).is_file()]
    options = dict(opts)
    if found:
        files["eeg"] = eeg_dir / EEG_FILES[found[0]][0]
        options["_kind"] = found[0]
        if (eeg_dir / "channels.txt").is_file():
            files["channels"] = eeg_dir / "channels.txt"
    else:
        wanted = " or ".join(EEG_FILES[k][0] for k in kinds)
        problems.append(f"no EEG file ({wanted}) in '{eeg_dir}'")
    if opts["bold_pattern"]:
        bolds = sorted(bold_dir.glob(opts["bold_pattern"])) if bold_dir.is_dir() else []
        wanted = f"files matching {opts['bold_pattern']!r}"
    else:
        bolds = [p for p in (bold_dir / "bold.nii.gz", bold_dir / "bold.nii") if p.is_file()][:1]
        wanted = "bold.nii.gz or bold.nii"
    if bolds:
        files["bold"] = bolds[0]
        for i, path in enumerate(bolds[1:], start=2):
            files[f"bold_{i}"] = path
    else:
        problems.append(f"no BOLD ({wanted}) in '{bold_dir}'")
    if problems:
        options["_problem"] = "; ".join(problems) + "."
    task = TASKS.get(task_num, f"task{task_num}")
    return RunRef(
        layout="ds000116",
        subject=f"{int(sub.name[3:]):02d}",
        task=task,
        run=str(int(run_num)),
        files=files,
        options=options,
    )


# -- .mat files -------------------------------------------------------------------------
def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def mat_variables(path: str | Path) -> dict[str, tuple]:
    """Variables of a MATLAB file and their shapes (MATLAB orientation), without reading data."""
    path = Path(path)
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                return {
                    k: tuple(reversed(v.shape))
                    for k, v in f.items()
                    if isinstance(v, h5py.Dataset) and not k.startswith("#")
                }
        from scipy.io import whosmat

        return {name: tuple(shape) for name, shape, _ in whosmat(path)}
    except (OSError, ValueError, TypeError, NotImplementedError) as err:
        raise ValueError(f"cannot read the MATLAB file '{path}': {err}") from err


def _mat_shape(path: Path, var: str) -> tuple:
    found = mat_variables(path)
    if var not in found:
        raise ValueError(
            f"'{path}': no variable {var!r} in the MATLAB file; variables found: "
            f"{sorted(found) or 'none'}."
        )
    return found[var]


def _mat_rows(path: Path, var: str, rows: slice | list) -> np.ndarray:
    """Rows of a 2-D MATLAB variable as float64, shape (n_rows, n_times)."""
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                # v7.3 stores MATLAB's (rows, n_times) column-major: h5py sees (n_times, rows)
                return np.asarray(f[var][:, rows], dtype=np.float64).T
        from scipy.io import loadmat

        return np.asarray(loadmat(path, variable_names=[var])[var][rows], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"cannot read {var!r} from '{path}': {err}") from err


def _ch_names(ref: RunRef, n_eeg: int, n_rows: int) -> list[str]:
    path = ref.files.get("channels")
    if path is None:
        return default_ch_names(n_eeg)
    names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(names) == n_rows and n_rows != n_eeg:
        names = names[:n_eeg]
    if len(names) != n_eeg:
        raise ValueError(
            f"'{path}': {len(names)} channel labels for {n_eeg} EEG rows of "
            f"'{ref.files['eeg']}' (expected {n_eeg}, or {n_rows} with the non-EEG rows)."
        )
    return check_ch_names(names, source=f"'{path}'")


def _bold_paths(ref: RunRef) -> list[Path]:
    extra = sorted((k for k in ref.files if k.startswith("bold_")), key=lambda k: int(k[5:]))
    return [ref.files["bold"]] + [ref.files[k] for k in extra]


def _prepare(ref: RunRef) -> dict:
    opts = ref.options
    if "_problem" in opts:
        raise FileNotFoundError(f"{ref.name}: {opts['_problem']}")
    eeg_path = ref.files["eeg"]
    _, var, n_eeg, stim_row, resp_row = EEG_FILES[opts["_kind"]]
    shape = _mat_shape(eeg_path, var)
    if len(shape) != 2 or shape[0] < n_eeg:
        raise ValueError(
            f"'{eeg_path}': {var!r} must be 2-D with at least {n_eeg} rows (EEG channels × "
            f"samples), got shape {shape}."
        )
    n_rows, n_times = shape
    header = read_bold_header(_bold_paths(ref))
    t_r = opts["t_r"]
    if t_r is None and header.t_r is not None and header.t_r_units == "unknown":
        if abs(header.t_r - DEFAULT_T_R) > 0.01 * DEFAULT_T_R:
            logger.warning(
                "%s: the header of '%s' says pixdim[4] = %g with unknown time units; using "
                "the dataset's documented TR of %g s (pass t_r=... for another).",
                ref.name,
                header.paths[0],
                header.t_r,
                DEFAULT_T_R,
            )
        t_r = DEFAULT_T_R
    if t_r is None:
        t_r = header.t_r if header.t_r is not None else DEFAULT_T_R
    elif header.t_r is not None and abs(header.t_r - t_r) > 0.01 * t_r:
        logger.warning(
            "%s: using t_r=%g s although the header of '%s' says %g s.",
            ref.name,
            t_r,
            header.paths[0],
            header.t_r,
        )
    where = f"{ref.name} ('{eeg_path}')"
    onsets, _ = align_volumes(
        np.zeros(0),
        header.n_volumes,
        t_r=t_r,
        dummy_scans=opts["dummy_scans"],
        first_volume=opts["first_volume"],
        where=where,
    )
    sfreq = opts["sfreq"]
    duration = n_times / sfreq
    if onsets[0] < 0 or onsets[-1] + t_r > duration + 0.5 / sfreq:
        raise ValueError(
            f"{where}: the EEG covers 0–{duration:.3f} s at {sfreq:g} Hz but the BOLD volumes "
            f"of {header.where} span {onsets[0]:.3f}–{onsets[-1] + t_r:.3f} s (EEG shorter "
            "than the BOLD run)."
        )
    return dict(
        var=var,
        n_eeg=n_eeg,
        n_rows=n_rows,
        n_times=n_times,
        stim_row=stim_row,
        resp_row=resp_row,
        header=header,
        t_r=t_r,
        sfreq=sfreq,
        onsets=onsets,
        ch_names=_ch_names(ref, n_eeg, n_rows),
    )


def read_header(ref: RunRef) -> RunInfo:
    """Header-level facts of a ds000116 run (see ``RunRef.header``)."""
    p = _prepare(ref)
    return RunInfo(
        ch_names=p["ch_names"],
        sfreq=p["sfreq"],
        n_times=p["n_times"],
        t_r=p["t_r"],
        n_volumes=int(p["onsets"].size),
        grid_shape=p["header"].shape,
        affine=p["header"].affine,
        volume_onsets=p["onsets"],
        n_markers=0,
        files=dict(ref.files),
    )


def _rising(row: np.ndarray, codes) -> np.ndarray:
    """Samples where ``row`` steps onto one of ``codes``."""
    values = np.rint(row).astype(np.int64)
    prev = np.concatenate([[values[0] + 1 if values[0] in codes else values[0]], values[:-1]])
    return np.flatnonzero(np.isin(values, list(codes)) & (values != prev))


def stimulus_events(
    stim: np.ndarray | None, resp: np.ndarray | None, *, task: str, sfreq: float
) -> pd.DataFrame:
    """Events from the stimulus-code and response rows.

    Parameters
    ----------
    stim, resp : array of shape (n_times,) | None
        Stimulus-code row and response row of the ``.mat`` matrix.
    task : str
        ``"auditory"`` or ``"visual"`` select their codes; other tasks use all four.
    sfreq : float

    Returns
    -------
    events : DataFrame with columns onset, duration, trial_type
    """
    codes = STIM_CODES.get(task) or {**STIM_CODES["auditory"], **STIM_CODES["visual"]}
    rows = []
    if stim is not None:
        values = np.rint(stim).astype(np.int64)
        for i in _rising(stim, codes):
            rows.append((i / sfreq, STIM_DURATION, codes[int(values[i])]))
    if resp is not None and np.ptp(resp) > 0:
        thr = (float(resp.min()) + float(resp.max())) / 2
        above = resp > thr
        for i in np.flatnonzero(above & ~np.concatenate([[above[0]], above[:-1]])):
            rows.append((i / sfreq, 0.0, "response"))
    if not rows:
        return empty_events()
    return pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])


def load_run(ref: RunRef) -> Session:
    """Load a ds000116 legacy run (see ``RunRef.load``)."""
    p = _prepare(ref)
    eeg_path = ref.files["eeg"]
    wanted = list(range(p["n_eeg"]))
    extra = [r for r in (p["stim_row"], p["resp_row"]) if r < p["n_rows"]]
    rows = _mat_rows(eeg_path, p["var"], wanted + extra)
    scale = UNITS[ref.options["unit"]]
    eeg = (rows[: p["n_eeg"]] * scale).astype(np.float32)
    stim = rows[p["n_eeg"]] if p["stim_row"] < p["n_rows"] else None
    resp = rows[p["n_eeg"] + 1] if p["resp_row"] < p["n_rows"] else None
    events = stimulus_events(stim, resp, task=ref.task, sfreq=p["sfreq"])
    del rows
    bold = read_bold_data(p["header"], start=int(ref.options["dummy_scans"]))
    return Session(
        eeg=eeg,
        sfreq=p["sfreq"],
        ch_names=p["ch_names"],
        bold=bold,
        affine=p["header"].affine,
        t_r=p["t_r"],
        volume_onsets=p["onsets"],
        events=events,
        subject=ref.subject,
        task=ref.task,
        run=ref.run,
        session=ref.session,
        source={k: str(v) for k, v in ref.files.items()},
    )
