"""BIDS simultaneous EEG-fMRI datasets.

Layout read::

    sub-<label>/[ses-<label>/]eeg/*_eeg.{vhdr,edf,bdf,set,fif}   (+ *_channels.tsv, *_events.tsv)
    sub-<label>/[ses-<label>/]func/*_bold.nii[.gz]               (+ *_bold.json, *_events.tsv)
    derivatives/<pipeline>/sub-<label>/[ses-<label>/]func/*_space-<space>_desc-preproc_bold.nii.gz

EEG and BOLD files pair up by their ``sub``, ``ses``, ``task``, ``acq`` and ``run``
entities (run numbers compare as integers; when no BOLD has the EEG's ``acq``, a single
BOLD that differs only by ``acq`` is used).

- ``RepetitionTime`` comes from the ``_bold.json`` sidecars, merged along the BIDS
  inheritance principle (``task-X_bold.json`` at the top level, then subject, session
  and the file's own folder; the closest wins). A NIfTI header that disagrees gets one
  warning; without a sidecar value the header's pixdim[4] is used with a warning (its
  time units unknown: read as seconds, and said so). Option ``t_r`` overrides both.
- Preprocessed EEG (option ``eeg_derivatives``: a pipeline name) is read from
  ``derivatives/<name>/sub-*/[ses-*/][eeg/]`` or ``derivatives/sub-*/[ses-*/]<name>/``,
  file names with or without a prefix before ``sub-`` (``d_sub-01_task-x_eeg_pp.vhdr``).
  Its volumes are timed by the raw EEG's scanner markers, shifted by the offset of its
  first marker that the raw EEG also has (annotations, and the edges of the trigger
  channel a ``marker`` spec names where the derivative kept it); offsets that markers
  repeating every volume cannot tell apart are told apart by the EEG itself. The volumes
  it does not cover are left out.
- Volume onsets come from the scanner markers in the EEG (``marker``, default
  ``R128``; or the rising edges of a trigger channel, ``eeg:CHANNEL[:LEVEL|:mask=BITS]``,
  a channel never read as EEG), matched to volumes by :func:`rt_eeg2fmri.data.eeg_io.align_volumes`
  (``dummy_scans``, ``skip_markers``); without markers volume ``i`` starts at
  ``first_volume + i * t_r``.
- Events: ``eeg/*_events.tsv`` (EEG clock) when present; else ``func/*_events.tsv``
  shifted by the onset of the NIfTI's first volume; else the EEG file's stimulus
  annotations.
- EEG channels: those of type ``EEG`` in ``*_channels.tsv`` when present (every name
  must exist in the EEG file), else those MNE types as EEG; option ``channels`` picks
  names explicitly.
- Spans annotated bad (``BAD_*``, MNE's convention; ``correct --live`` annotates the
  samples its templates had not cleaned ``BAD_uncorrected``) become the session's
  ``bad_spans``: the windows that overlap them are left out of training and scoring.
  Option ``keep_bad`` keeps them.
- Option ``ecg``: the ECG channels (typed ECG, or labelled ECG*/EKG*) are kept too, after
  the EEG ones (``replay`` of a dataset folder sets it, for the live pulse correction).
- BOLD is reoriented to RAS+ so SPM's flipped-x 3 mm files land on ``GRID_AFFINE``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_positive
from .._logging import log_once, logger
from ._nifti import read_bold_data, read_bold_header
from .channels import named_column
from .dataset import RunInfo, RunRef
from .eeg_io import (
    EEG_EXTENSIONS,
    align_volumes,
    annotation_events,
    bad_spans,
    ecg_picks,
    eeg_picks,
    marker_hint,
    open_raw,
    read_data,
    scanner_onsets,
    stim_channels,
    stim_picks,
    truncation,
)
from .session import Session
from .triggers import TriggerChannel

DEFAULTS = {
    "marker": "R128",
    "dummy_scans": 0,
    "skip_markers": 0,
    "first_volume": 0.0,
    "derivatives": None,
    "space": "MNI152NLin2009cAsym",
    "channels": None,
    "t_r": None,
    "eeg_derivatives": None,
    "correct": None,
    "keep_bad": False,
    "ecg": False,
}
MATCH_KEYS = ("sub", "ses", "task", "acq", "run")
BOLD_EXTENSIONS = (".nii", ".nii.gz")


def _options(options: dict) -> dict:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(
            f"unknown BIDS reader option(s) {unknown}; valid options: {sorted(DEFAULTS)}."
        )
    opts = {**DEFAULTS, **options}
    if opts["correct"] is not None:  # in-scanner EEG read corrected (data.correct)
        from .correct import parse_corrections

        opts["correct"] = ",".join(parse_corrections(opts["correct"]))
    return opts


def parse_name(path: Path) -> tuple[dict, str]:
    """BIDS entities and suffix of a file name (``sub-01_task-x_bold.nii.gz`` → entities, ``bold``)."""
    stem = path.name.split(".", 1)[0]
    ents, suffix = {}, ""
    for part in stem.split("_"):
        if "-" in part:
            key, value = part.split("-", 1)
            ents[key] = value
        else:
            suffix = part
    return ents, suffix


def _norm(value: str | None) -> str | None:
    return str(int(value)) if value is not None and value.isdigit() else value


def _key(ents: dict, keys=MATCH_KEYS) -> tuple:
    return tuple(_norm(ents.get(k)) for k in keys)


def _containers(base: Path) -> list[Path]:
    out = []
    for sub in sorted(p for p in base.glob("sub-*") if p.is_dir()):
        out.append(sub)
        out.extend(sorted(p for p in sub.glob("ses-*") if p.is_dir()))
    return out


def _derivatives_root(root: Path, derivatives) -> Path | None:
    if derivatives is None:
        return None
    inside = root / "derivatives" / str(derivatives)
    if inside.is_dir():
        return inside
    if Path(derivatives).is_dir():
        return Path(derivatives)
    found = sorted(p.name for p in (root / "derivatives").glob("*") if p.is_dir())
    raise FileNotFoundError(
        f"derivatives folder not found: '{inside}' (nor '{derivatives}'); "
        f"'{root / 'derivatives'}' holds {found or 'nothing'}."
    )


def _files(folder: Path, suffix: str, extensions) -> list[tuple[dict, Path]]:
    out = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if not path.name.lower().endswith(tuple(extensions)):
            continue
        ents, suf = parse_name(path)
        if suf == suffix and "sub" in ents:
            out.append((ents, path))
    return out


def _sidecars(bold: Path, bold_ents: dict, bases: list[Path]) -> list[Path]:
    """Applicable ``*_bold.json`` files, least specific first (BIDS inheritance)."""
    levels = []
    for base in bases:
        sub = base / f"sub-{bold_ents['sub']}"
        levels += [base, sub]
        if "ses" in bold_ents:
            levels.append(sub / f"ses-{bold_ents['ses']}")
        levels.append(levels[-1] / "func")
    levels.append(bold.parent)
    seen, out = set(), []
    want = {k: _norm(v) for k, v in bold_ents.items()}
    for level in levels:
        level_hits = []
        for ents, path in _files(level, "bold", (".json",)) + _top_level(level, "bold"):
            if path in seen or any(want.get(k) != _norm(v) for k, v in ents.items()):
                continue
            seen.add(path)
            level_hits.append((len(ents), path))
        out += [p for _, p in sorted(level_hits)]
    return out


def _top_level(folder: Path, suffix: str) -> list[tuple[dict, Path]]:
    """Top-level sidecars have no ``sub`` entity (``task-X_bold.json``)."""
    out = []
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{suffix}.json")):
            ents, suf = parse_name(path)
            if suf == suffix and "sub" not in ents:
                out.append((ents, path))
    return out


def find_runs(root: str | Path, **options) -> list[RunRef]:
    """List the EEG-fMRI runs of a BIDS dataset.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    **options
        ``marker`` (``"R128"``), ``dummy_scans`` (0), ``skip_markers`` (0),
        ``first_volume`` (0.0 s), ``derivatives`` (``None``: raw ``func/`` BOLD; a
        pipeline name under ``derivatives/`` such as ``"fmriprep"``, or a path),
        ``space`` (``"MNI152NLin2009cAsym"``), ``channels`` (explicit EEG channel list).

    Returns
    -------
    runs : list of RunRef
        One per EEG recording. A run whose BOLD is missing or ambiguous is still listed;
        its ``load`` raises ``FileNotFoundError`` / ``ValueError`` naming the files.
    """
    root = Path(root)
    opts = _options(options)
    deriv = _derivatives_root(root, opts["derivatives"])
    eegs: dict[tuple, tuple[dict, Path]] = {}
    bolds: dict[tuple, list[Path]] = {}
    for folder in _containers(root):
        for ents, path in _files(folder / "eeg", "eeg", EEG_EXTENSIONS):
            key = _key(ents)
            if key in eegs:
                logger.debug("Two EEG files for %s; using '%s'.", key, eegs[key][1])
                continue
            eegs[key] = (ents, path)
        if deriv is None:
            for ents, path in _files(folder / "func", "bold", BOLD_EXTENSIONS):
                bolds.setdefault(_key(ents), []).append(path)
    if deriv is not None:
        for folder in _containers(deriv):
            for ents, path in _files(folder / "func", "bold", BOLD_EXTENSIONS):
                if ents.get("space") == opts["space"] and ents.get("desc") == "preproc":
                    bolds.setdefault(_key(ents), []).append(path)
    if opts["eeg_derivatives"] is not None:
        return _derivative_refs(root, deriv, eegs, bolds, opts)
    return [
        _make_ref(root, deriv, key, ents, eeg, bolds, opts) for key, (ents, eeg) in eegs.items()
    ]


def _loose_name(path: Path) -> tuple[dict, list[str]]:
    """Entities and other parts of a derivative's file name, from its ``sub-`` on.

    ``d_sub-01_task-x_eeg_pp.vhdr`` → ``({"sub": "01", "task": "x"}, ["eeg", "pp"])``.
    """
    stem = path.name.split(".", 1)[0]
    start = stem.find("sub-")
    if start < 0:
        return {}, []
    ents, tags = {}, []
    for part in stem[start:].split("_"):
        if "-" in part:
            key, value = part.split("-", 1)
            ents[key] = value
        elif part:
            tags.append(part)
    return ents, tags


def _eeg_derivative_files(root: Path, name: str) -> dict:
    """Preprocessed EEG files of pipeline ``name``, by run key, in both placements."""
    deriv = root / "derivatives"
    folders = []
    if (deriv / name).is_dir():
        folders += [f for c in _containers(deriv / name) for f in (c, c / "eeg")]
    if deriv.is_dir():
        folders += [f for c in _containers(deriv) for f in (c / name, c / name / "eeg")]
    folders = [f for f in folders if f.is_dir()]
    if not folders:
        found = sorted(p.name for p in deriv.glob("*") if p.is_dir()) if deriv.is_dir() else []
        raise FileNotFoundError(
            f"EEG derivatives '{name}' not found: looked for '{deriv / name}/sub-*/' and "
            f"'{deriv}/sub-*/{name}/'; '{deriv}' holds {found or 'nothing'}."
        )
    out: dict = {}
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if not path.is_file() or not path.name.lower().endswith(EEG_EXTENSIONS):
                continue
            ents, tags = _loose_name(path)
            if "sub" in ents and "eeg" in tags:
                out.setdefault(_key(ents), (ents, path))
    return out


def _derivative_refs(root, deriv, eegs, bolds, opts) -> list[RunRef]:
    """Runs whose EEG is a derivative; the raw EEG (when present) only times the volumes."""
    name = str(opts["eeg_derivatives"])
    found = _eeg_derivative_files(root, name)
    runs = []
    for key in sorted(set(eegs) | set(found), key=lambda k: tuple(v or "" for v in k)):
        raw = eegs.get(key)
        if key not in found:
            ref = _make_ref(root, deriv, key, raw[0], raw[1], bolds, opts)
            ref.options["_problem"] = (
                f"no preprocessed EEG for the run of '{raw[1]}' in the derivatives '{name}' "
                f"(looked for *{_describe(raw[0])}*_eeg*.{{vhdr,edf,bdf,set,fif}})."
            )
            runs.append(ref)
            continue
        ents, path = found[key]
        runs.append(
            _make_ref(root, deriv, key, ents, path, bolds, opts, raw_eeg=raw[1] if raw else None)
        )
    return runs


def unmatched_bold(root: str | Path, **options) -> list[Path]:
    """BOLD files that no EEG recording pairs with (reported by ``rt-eeg2fmri info``)."""
    root = Path(root)
    opts = _options(options)
    used = {r.files.get("bold") for r in find_runs(root, **options)}
    deriv = _derivatives_root(root, opts["derivatives"])
    out = []
    for folder in _containers(deriv or root):
        for ents, path in _files(folder / "func", "bold", BOLD_EXTENSIONS):
            if deriv is not None and (
                ents.get("space") != opts["space"] or ents.get("desc") != "preproc"
            ):
                continue
            if path not in used:
                out.append(path)
    return out


def _companions(eeg: Path, prefix: str = "eeg") -> dict:
    """The files an EEG header needs (BrainVision markers and data, EEGLAB data)."""
    out = {prefix: eeg}
    stem = eeg.name[: -len(eeg.suffix)]
    if eeg.suffix.lower() == ".vhdr":
        for ext, name in ((".vmrk", "markers"), (".eeg", "data")):
            if (eeg.parent / f"{stem}{ext}").is_file():
                out[f"{prefix}_{name}"] = eeg.parent / f"{stem}{ext}"
    elif eeg.suffix.lower() == ".set" and (eeg.parent / f"{stem}.fdt").is_file():
        out[f"{prefix}_data"] = eeg.parent / f"{stem}.fdt"
    return out


def _beside(folder: Path, suffix: str, key: tuple) -> Path | None:
    """The ``*_<suffix>.tsv`` of run ``key`` in ``folder`` (derivative names allowed)."""
    for path in sorted(folder.glob(f"*{suffix}.tsv")):
        ents, tags = _loose_name(path)
        if tags[-1:] == [suffix] and _key(ents) == key:
            return path
    return None


def _make_ref(root, deriv, key, ents, eeg, bolds, opts, *, raw_eeg=None) -> RunRef:
    files: dict = _companions(eeg)
    if raw_eeg is not None:  # a derivative: the raw recording times its volumes
        files.update(_companions(raw_eeg, "eeg_raw"))
    for name, suffix in (("channels", "channels"), ("eeg_events", "events")):
        hit = _beside(eeg.parent, suffix, key)
        if hit is None and name == "channels" and raw_eeg is not None:
            hit = _beside(raw_eeg.parent, suffix, key)  # types of the names it shares
        if hit is not None:
            files[name] = hit
    # electrodes.tsv belongs to the subject (and session), not to a task or run
    hits = [
        p
        for folder in dict.fromkeys(f.parent for f in (eeg, raw_eeg) if f is not None)
        for e, p in _files(folder, "electrodes", (".tsv",))
        if e.get("sub") == ents.get("sub") and e.get("ses") == ents.get("ses")
    ]
    if hits:
        files["electrodes"] = hits[0]
    options = dict(opts)
    candidates = bolds.get(key, [])
    if not candidates:  # the same run without the acq entity
        relaxed = [p for k, ps in bolds.items() if k[:3] + k[4:] == key[:3] + key[4:] for p in ps]
        candidates = relaxed if len(relaxed) == 1 else []
    func = root / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func"
    if len(candidates) == 1:
        bold = candidates[0]
        files["bold"] = bold
        bold_ents, _ = parse_name(bold)
        bases = [root] + ([deriv] if deriv is not None else [])
        for i, path in enumerate(_sidecars(bold, bold_ents, bases), start=1):
            files[f"sidecar_{i}"] = path
        raw_key = _key(bold_ents)
        hits = [p for e, p in _files(func, "events", (".tsv",)) if _key(e) == raw_key]
        if hits:
            files["func_events"] = hits[0]
    elif not candidates:
        where = f"'{func}'" if deriv is None else f"'{deriv}' (space-{opts['space']}, desc-preproc)"
        options["_problem"] = (
            f"no BOLD file for the EEG '{eeg}': looked for *_bold.nii[.gz] with "
            f"{_describe(ents)} in {where}."
        )
    else:
        options["_problem"] = (
            f"several BOLD files match the EEG '{eeg}': {[str(p) for p in candidates]}."
        )
    return RunRef(
        layout="bids",
        subject=ents["sub"],
        task=ents.get("task", "task"),
        run=ents.get("run"),
        session=ents.get("ses"),
        files=files,
        options=options,
    )


def _describe(ents: dict) -> str:
    return "_".join(f"{k}-{ents[k]}" for k in MATCH_KEYS if k in ents)


# -- reading -----------------------------------------------------------------------------
def _sidecar_t_r(ref: RunRef) -> tuple[float, Path]:
    """The top-level ``RepetitionTime`` of the run's sidecars (the last one wins) and its file.

    Only the top level counts: a DICOM dump nested in a sidecar is not read. A value above
    100 is a TR in milliseconds (ds002158 writes 1280.0 for 1.28 s): read as such, with a
    warning.
    """
    sidecars = [ref.files[k] for k in sorted(_sidecar_keys(ref), key=lambda k: int(k[8:]))]
    t_r, source = None, None
    for path in sidecars:
        try:
            meta = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read the sidecar '{path}': {err}") from err
        if isinstance(meta, dict) and "RepetitionTime" in meta:
            t_r, source = meta["RepetitionTime"], path
    if t_r is None:
        raise FileNotFoundError(
            f"{ref.name}: no 'RepetitionTime' for the BOLD '{ref.files['bold']}' in its JSON "
            f"sidecars ({[str(p) for p in sidecars] or 'none found'})."
        )
    try:
        value = float(t_r)
    except (TypeError, ValueError):
        raise ValueError(f"'{source}': 'RepetitionTime' must be a number, got {t_r!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"'{source}': 'RepetitionTime' must be positive, got {t_r!r}.")
    if value > 100:
        log_once(
            (str(ref.files.get("bold")), "ms"),
            f"{ref.name}: 'RepetitionTime' {t_r} in '{source}' is read as milliseconds "
            f"({value / 1000:g} s); BIDS asks for seconds.",
        )
        value /= 1000
    return value, Path(source)


def _sidecar_keys(ref: RunRef) -> list[str]:
    return [k for k in ref.files if k.startswith("sidecar_")]


def _channel_types(path: Path) -> dict:
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read '{path}': {err}") from err
    missing = [c for c in ("name", "type") if c not in table.columns]
    if missing:
        raise ValueError(f"'{path}': lacks column(s) {missing}; has {list(table.columns)}.")
    lower = table["name"].str.lower()
    dupes = sorted(set(table["name"][lower.duplicated(keep=False)]))
    if dupes:
        rows = [int(i) + 2 for i in table.index[lower.duplicated(keep=False)]]
        raise ValueError(
            f"'{path}': channel name(s) {dupes} appear more than once (lines {rows}); each "
            "channel must be listed once."
        )
    return dict(zip(table["name"], table["type"], strict=True))


def read_electrodes(path: Path) -> dict:
    """Positions of a BIDS ``*_electrodes.tsv``: name → (x, y, z), in its own units.

    Rows whose coordinates are ``n/a`` are left out.
    """
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the electrodes file '{path}': {err}") from err
    missing = [c for c in ("name", "x", "y", "z") if c not in table.columns]
    if missing:
        raise ValueError(f"'{path}': lacks column(s) {missing}; has {list(table.columns)}.")
    xyz = table[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    return {str(name): xyz[i] for i, name in enumerate(table["name"]) if np.isfinite(xyz[i]).all()}


def _read_events(path: Path, *, shift: float = 0.0, marker: str | None = None) -> pd.DataFrame:
    """The task events of an ``events.tsv`` (rows of the scanner ``marker`` left out)."""
    from .eeg_io import marker_name

    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the events file '{path}': {err}") from err
    if "onset" not in table.columns:
        raise ValueError(f"'{path}': events lack the 'onset' column; has {list(table.columns)}.")
    if marker is not None:  # volume markers kept for other tools (mne_bids) are not events
        key = marker_name(marker)
        scanner = np.zeros(len(table), bool)
        for col in ("trial_type", "value"):
            if col in table.columns:
                scanner |= np.array([marker_name(v) == key for v in table[col].astype(str)], bool)
        table = table[~scanner].reset_index(drop=True)
    onset = pd.to_numeric(table["onset"], errors="coerce")
    if not np.isfinite(onset.to_numpy(float)).all():
        raise ValueError(f"'{path}': 'onset' must be finite numbers.")
    if "duration" in table.columns:
        duration = pd.to_numeric(table["duration"], errors="coerce").fillna(0.0)
    else:
        duration = pd.Series(np.zeros(len(table)))
    label = next((c for c in ("trial_type", "value", "event_type") if c in table.columns), None)
    trial_type = table[label].fillna("n/a").astype(str) if label else "event"
    out = pd.DataFrame(
        {
            "onset": onset.to_numpy(float) + shift,
            "duration": duration.to_numpy(float),
            "trial_type": trial_type,
        }
    )
    if label == "trial_type" and "value" in table.columns:  # the marker code ("S  1")
        out["value"] = table["value"].fillna("n/a").astype(str).to_numpy()
    return out


def _run_t_r(ref: RunRef, header) -> float:
    """The run's TR: option ``t_r``, else the sidecars', else the header's (with a warning)."""
    if ref.options.get("t_r") is not None:
        return check_positive(float(ref.options["t_r"]), "t_r")
    try:
        t_r, sidecar = _sidecar_t_r(ref)
    except FileNotFoundError as err:
        if header.t_r is None:
            raise FileNotFoundError(
                f"{err} The NIfTI header has no TR either; set it with --t-r (option t_r)."
            ) from None
        units = header.t_r_units
        how = (
            f"pixdim[4] = {header.t_r:g} s"
            if units in ("sec", "msec", "usec")
            else f"pixdim[4] = {header.t_r:g} with unknown time units, read as seconds"
        )
        log_once(
            (str(ref.files.get("bold")), "header-tr"),
            f"{ref.name}: no 'RepetitionTime' in the sidecars of '{ref.files['bold']}'; using "
            f"its NIfTI header's {how}. Set it with --t-r (option t_r) if that is wrong.",
        )
        return float(header.t_r)
    if header.t_r is not None and abs(header.t_r - t_r) > 0.01 * t_r:
        log_once(  # the sidecar is the BIDS authority; headers in the wild disagree
            (str(ref.files.get("bold")), "tr"),
            f"{ref.name}: the NIfTI header of '{ref.files['bold']}' says pixdim[4] = "
            f"{header.t_r} s, but 'RepetitionTime' is {t_r} s in '{sidecar}'; using the "
            "sidecar's.",
        )
    return t_r


def _picks(ref: RunRef, raw, marker: str | None) -> tuple[list[int], int]:
    """The run's channels to read, and how many ECG leads come last among them.

    Its EEG channels (a trigger lead typed EEG left out: it is not EEG; ``marker`` is the
    run's own, :func:`_own_marker`), then, with option ``ecg`` (replay: the live pulse
    correction), its ECG leads.
    """
    trigger = stim_picks(raw, marker)
    picks = [i for i in _eeg_picks(ref, raw) if i not in trigger]
    if not ref.options["ecg"]:
        return picks, 0
    types = _channel_types(ref.files["channels"]) if "channels" in ref.files else {}
    leads = ecg_picks(raw, exclude={*picks, *trigger}, types=types)
    return picks + leads, len(leads)


def _eeg_picks(ref: RunRef, raw) -> list[int]:
    opts, eeg_path = ref.options, ref.files["eeg"]
    if opts["channels"] is not None or "channels" not in ref.files:
        return eeg_picks(raw, path=eeg_path, channels=opts["channels"])
    types = _channel_types(ref.files["channels"])
    if "eeg_raw" in ref.files and ref.files["channels"].parent == ref.files["eeg_raw"].parent:
        types = {n: t for n, t in types.items() if n in raw.ch_names}  # the raw's table
        if not types:
            return eeg_picks(raw, path=eeg_path)
    return eeg_picks(raw, path=eeg_path, types=types, types_source=ref.files["channels"])


def _derivative_offset(deriv, raw0, *, marker: str, where: str, raw_path) -> tuple[float, str]:
    """Seconds from the raw EEG's start to the derivative's, from the markers they share.

    The markers are the annotations, and the rising edges of the trigger channel that a
    ``marker`` spec (``eeg:CHANNEL...``) names where both recordings have it (a derivative
    that kept the raw's stim channel). The derivative's first marker is matched to each
    occurrence of the same marker in the raw EEG; the offset that lines up the most of the
    derivative's markers with the raw's (within two samples) wins.
    """
    from .eeg_io import _annotation_times, marker_name

    tol = 2.0 / float(raw0.info["sfreq"]) + 2.0 / float(deriv.info["sfreq"])
    d_keys = [marker_name(d) for d in deriv.annotations.description]
    r_keys = [marker_name(d) for d in raw0.annotations.description]
    d_t, r_t = list(_annotation_times(deriv)), list(_annotation_times(raw0))
    trigger = TriggerChannel.parse(marker, what="'marker'")
    if trigger is not None and _has_channel(deriv, trigger.channel):
        for keys, times, rec in ((d_keys, d_t, deriv), (r_keys, r_t, raw0)):
            onsets = scanner_onsets(rec, marker)
            keys += [marker] * onsets.size
            times += list(onsets)
    d_t, r_t = np.asarray(d_t, dtype=float), np.asarray(r_t, dtype=float)
    by_key: dict = {}
    for k, t in zip(r_keys, r_t, strict=True):
        by_key.setdefault(k, []).append(t)
    by_key = {k: np.sort(v) for k, v in by_key.items()}
    first = next(
        (i for i in np.argsort(d_t, kind="stable") if d_keys[i] and d_keys[i] in by_key), None
    )
    if first is None:
        channel = f" (nor its trigger channel {trigger.channel!r})" if trigger is not None else ""
        raise ValueError(
            f"{where}: the preprocessed EEG has no scanner markers and no marker in common with "
            f"the raw EEG '{raw_path}'{channel} to align it by."
        )
    scores = {}
    for candidate in by_key[d_keys[first]]:
        offset = float(candidate - d_t[first])
        hits = 0
        for k, t in zip(d_keys, d_t, strict=True):
            ts = by_key.get(k)
            if ts is not None and ts.size and np.min(np.abs(ts - (t + offset))) <= tol:
                hits += 1
        scores[offset] = hits
    most = max(scores.values())
    offsets = [o for o, hits in scores.items() if hits == most]
    if len(offsets) > 1:  # markers that repeat (a TR) line up at several offsets
        offsets = [_offset_by_samples(deriv, raw0, offsets, where=where, raw_path=raw_path)]
    return offsets[0], (d_keys[first] if first >= len(deriv.annotations) else
                        deriv.annotations.description[first])  # fmt: skip


#: Seconds of the derivative compared with the raw EEG to tell offsets apart
_COMPARED = 30.0


def _offset_by_samples(deriv, raw0, offsets: list, *, where: str, raw_path) -> float:
    """Which of ``offsets`` (s into the raw EEG) the derivative's samples start at.

    Markers that come every TR (the scanner's) line up as well at any whole number of TRs;
    the EEG itself does not. The channels both recordings have are band-passed (1–40 Hz,
    below the gradient artifact's power and within a resampled derivative's band), the
    raw's put on the derivative's sample times, and correlated over the derivative's first
    30 s at each offset; the best must stand out from the next by four standard errors.
    """
    import mne

    kinds = deriv.get_channel_types()
    names = [name for name, kind in zip(deriv.ch_names, kinds, strict=True)
             if kind == "eeg" and _has_channel(raw0, name)][:8]  # fmt: skip
    d_sf, r_sf = float(deriv.info["sfreq"]), float(raw0.info["sfreq"])
    n = min(deriv.n_times, round(_COMPARED * d_sf))
    high = min(40.0, 0.4 * d_sf, 0.4 * r_sf)
    ambiguous = (
        f"{where}: the markers it shares with the raw EEG '{raw_path}' line up equally at "
        f"{len(offsets)} offsets ({', '.join(f'{o:.3f}' for o in sorted(offsets)[:6])} s: "
        "they repeat every volume)"
    )
    if not names or n < 2 * d_sf:
        raise ValueError(
            f"{ambiguous}, and it has no EEG channel the raw EEG has (or under 2 s of samples) "
            "to tell them apart by; keep a stimulus marker of the raw EEG in it."
        )
    d = deriv.get_data(picks=names, stop=n)
    d = mne.filter.filter_data(d, d_sf, 1.0, high, verbose="error")
    cols = [named_column(raw0.ch_names, name, what="channel", stream="")[0] for name in names]
    times = np.arange(n) / d_sf
    scores = []
    for offset in offsets:
        a = max(0, int(np.floor((offset - 1.0) * r_sf)))
        b = min(raw0.n_times, int(np.ceil((offset + n / d_sf + 1.0) * r_sf)) + 1)
        inside = (times + offset >= a / r_sf) & (times + offset <= (b - 1) / r_sf)
        if b - a < 2 * r_sf or inside.sum() < 2 * d_sf:
            scores.append(-np.inf)
            continue
        r = mne.filter.filter_data(raw0.get_data(picks=cols, start=a, stop=b), r_sf, 1.0, high,
                                   verbose="error")  # fmt: skip
        at = (a + np.arange(b - a)) / r_sf
        corr = []
        for x, y in zip(d, r, strict=True):
            y = np.interp(times[inside] + offset, at, y)
            x = x[inside]
            if np.std(x) > 0 and np.std(y) > 0:
                corr.append(float(np.corrcoef(x, y)[0, 1]))
        scores.append(float(np.mean(corr)) if corr else -np.inf)
    order = np.argsort(scores)[::-1]
    best, second = scores[order[0]], scores[order[1]]
    margin = 4.0 / np.sqrt(n * len(names))
    if not np.isfinite(best) or best - second < margin:
        raise ValueError(
            f"{ambiguous}, and its EEG does not tell them apart (correlation with the raw "
            f"EEG {best:.3f} at the best, {second:.3f} at the next); keep a stimulus marker "
            "of the raw EEG in it."
        )
    logger.debug("%s: offsets %s, EEG correlations %s", where, offsets, scores)
    return float(offsets[order[0]])


def _own_marker(ref: RunRef, raw) -> str | None:
    """The ``marker`` option as the run's EEG file ``raw`` can take it.

    ``None`` for a derivative that lacks the trigger channel a spec names: the raw
    recording's channel times its volumes.
    """
    marker = ref.options["marker"]
    trigger = TriggerChannel.parse(marker, what="'marker'")
    if trigger is not None and "eeg_raw" in ref.files and not _has_channel(raw, trigger.channel):
        return None
    return marker


def _has_channel(raw, name: str) -> bool:
    try:
        named_column(raw.ch_names, name, what="trigger channel", stream="")
    except ValueError:
        return False
    return True


def _prepare(ref: RunRef) -> dict:
    """Everything but the samples: open the EEG header, BOLD header, sidecar; time the volumes."""
    opts = ref.options
    if "_problem" in opts:
        raise FileNotFoundError(opts["_problem"])
    eeg_path = ref.files["eeg"]
    raw = open_raw(eeg_path, preload=False)
    own = _own_marker(ref, raw)
    picks, n_ecg = _picks(ref, raw, own)
    header = read_bold_header(ref.files["bold"])
    t_r = _run_t_r(ref, header)
    sfreq = float(raw.info["sfreq"])
    duration = raw.n_times / sfreq
    markers = scanner_onsets(raw, own) if own is not None else np.zeros(0)
    where = f"{ref.name} ('{eeg_path}')"
    offset, derivative = 0.0, "eeg_raw" in ref.files  # a derivative: the raw EEG times it
    hint = "" if markers.size or own is None or derivative else marker_hint(raw, own)
    if hint:
        log_once((str(eeg_path), "marker hint"), f"{where}: {hint}", level=logging.WARNING)
    if derivative:  # preprocessed EEG, maybe cropped: the raw recording's markers time it
        raw0 = open_raw(ref.files["eeg_raw"], preload=False)
        offset, by = _derivative_offset(raw, raw0, marker=opts["marker"], where=where,
                                        raw_path=ref.files["eeg_raw"])  # fmt: skip
        markers = scanner_onsets(raw0, opts["marker"])
    onsets, onset0 = align_volumes(
        markers,
        header.n_volumes,
        t_r=t_r,
        dummy_scans=opts["dummy_scans"],
        skip_markers=opts["skip_markers"],
        first_volume=opts["first_volume"],
        where=f"{ref.name} ('{ref.files['eeg_raw' if derivative else 'eeg']}')",
        marker=opts["marker"],
        eeg_end=(raw0.n_times / raw0.info["sfreq"]) if derivative else duration,
        truncated=truncation(raw0 if derivative else raw),
    )
    start = int(opts["dummy_scans"])
    stop = start + onsets.size
    if derivative:
        onsets, onset0 = onsets - offset, onset0 - offset
        inside = np.flatnonzero((onsets >= 0) & (onsets + t_r <= duration + 0.5 / sfreq))
        if inside.size == 0:
            raise ValueError(
                f"{where}: the preprocessed EEG (0–{duration:.3f} s, {offset:+.3f} s from the "
                f"raw EEG's start) covers none of the BOLD volumes of '{ref.files['bold']}'."
            )
        stop, start = start + int(inside[-1]) + 1, start + int(inside[0])
        message = (
            f"{where}: aligned to the raw EEG's volume markers by its first marker {by!r} "
            f"({offset:.3f} s into the raw EEG); it covers BOLD volumes {start}–{stop - 1} "
            f"of {header.n_volumes}."
        )
        if inside.size < onsets.size:  # volumes before the crop (or after its end) left out
            log_once((str(ref.files.get("bold")), "offset"), message, level=logging.INFO)
        else:
            logger.debug(message)
        onsets = onsets[inside]
    if onsets[0] < 0 or onsets[-1] + t_r > duration + 0.5 / sfreq:
        raise ValueError(
            f"{where}: the EEG covers 0–{duration:.3f} s but the BOLD volumes of "
            f"'{ref.files['bold']}' span {onsets[0]:.3f}–{onsets[-1] + t_r:.3f} s "
            "(EEG shorter than the BOLD run)."
        )
    return dict(
        raw=raw,
        picks=picks,
        n_ecg=n_ecg,
        header=header,
        t_r=t_r,
        sfreq=sfreq,
        onsets=onsets,
        onset0=onset0,
        n_markers=int(markers.size),
        own_marker=own,
        marker_hint=hint,
        bold_range=(start, stop),
    )


def read_header(ref: RunRef) -> RunInfo:
    """Header-level facts of a BIDS run (see ``RunRef.header``)."""
    p = _prepare(ref)
    return RunInfo(
        ch_names=[p["raw"].ch_names[i] for i in p["picks"]],
        sfreq=p["sfreq"],
        n_times=int(p["raw"].n_times),
        t_r=p["t_r"],
        n_volumes=int(p["onsets"].size),
        grid_shape=p["header"].shape,
        affine=p["header"].affine,
        volume_onsets=p["onsets"],
        n_markers=p["n_markers"],
        files=dict(ref.files),
        marker_hint=p["marker_hint"],
    )


def load_run(ref: RunRef) -> Session:
    """Load a BIDS run (see ``RunRef.load``)."""
    p = _prepare(ref)
    raw, picks = p["raw"], p["picks"]
    if ref.options.get("correct"):
        from .correct import correct_raw

        todo = ref.options["correct"].split(",")
        raw, _ = correct_raw(
            raw, gradient="gradient" in todo, bcg="bcg" in todo, marker=ref.options["marker"],
            live="live" in todo,
        )  # fmt: skip
    eeg = read_data(raw, picks, path=ref.files["eeg"])
    bold = read_bold_data(p["header"], start=p["bold_range"][0], stop=p["bold_range"][1])
    if "eeg_events" in ref.files:
        events = _read_events(ref.files["eeg_events"], marker=ref.options["marker"])
    elif "func_events" in ref.files:
        events = _read_events(
            ref.files["func_events"], shift=p["onset0"], marker=ref.options["marker"]
        )
    else:
        events = annotation_events(raw, marker=ref.options["marker"])
    # the trigger channel the marker names, where the run's file has it (a replay publishes it)
    trigger = TriggerChannel.parse(p["own_marker"], what="'marker'")
    stim = stim_units = None
    if trigger is not None:
        col, _ = named_column(raw.ch_names, trigger.channel, what="trigger channel",
                              stream=f"'{ref.files['eeg']}'")  # fmt: skip
        stim, stim_units = stim_channels(raw, [col])
    n_ecg = p["n_ecg"]
    return Session(
        eeg=eeg,
        stim=stim,
        stim_units=stim_units,
        ch_types=["EEG"] * (len(picks) - n_ecg) + ["ECG"] * n_ecg if n_ecg else None,
        sfreq=p["sfreq"],
        ch_names=[raw.ch_names[i] for i in picks],
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
        positions=read_electrodes(ref.files["electrodes"]) if "electrodes" in ref.files else None,
        bad_spans=None if ref.options.get("keep_bad") else bad_spans(raw),
    )
