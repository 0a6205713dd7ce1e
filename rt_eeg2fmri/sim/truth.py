"""Ground truth of a simulated dataset, and the noise ceiling it implies.

``derivatives/simulation/`` of a simulated dataset holds, per run::

    sub-XX/func/sub-XX_task-T_run-R_desc-noisefree_bold.nii.gz        BOLD without noise or drift
    sub-XX/func/sub-XX_task-T_run-R_desc-eegpredictable_bold.nii.gz   baseline + EEG-visible regions
    sub-XX/func/sub-XX_task-T_run-R_desc-neuraldrive_timeseries.tsv   drive of every region, 10 Hz

plus ``regions.tsv`` (name, x, y, z, eeg_visible, ...), ``sub-XX/sub-XX_simulation.json``
(the subject's parameters) and ``simulation.json`` (the configuration).

An external ground truth (``train --truth DIR``, ``evaluate --truth DIR``: another
generator's, or any dataset's best available estimate of the EEG-predictable BOLD) uses
the same layout in its own folder, with only the ``desc-eegpredictable`` series required::

    DIR/sub-XX/[ses-YY/]func/sub-XX_[ses-YY_]task-T[_run-R]_desc-eegpredictable_bold.nii.gz

on the runs' BOLD grid, one volume per BOLD volume.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.bids import parse_name

TRUTH_DIR = ("derivatives", "simulation")
#: Stem of the simulated regions' label image (``.nii.gz``) and its names (``.tsv``).
ATLAS = "atlas-regions_dseg"


def truth_atlas(root) -> tuple[Path, Path] | None:
    """``(label image, look-up table)`` of a simulated dataset's regions, else ``None``."""
    folder = Path(root).joinpath(*TRUTH_DIR)
    image, lut = folder / f"{ATLAS}.nii.gz", folder / f"{ATLAS}.tsv"
    return (image, lut) if image.is_file() and lut.is_file() else None


_DESCS = {"noisefree": "noisefree", "eegpredictable": "eeg_predictable"}


def _same(have: str | None, want) -> bool:
    if want is None:
        return have is None
    want = str(want)
    if have is None:
        return False
    return have == want or (have.isdigit() and want.isdigit() and int(have) == int(want))


def truth_files(root, *, subject, task, run, session=None, base=None) -> dict[str, Path]:
    """Paths of one run's ground-truth files (keys ``noisefree``, ``eeg_predictable``, ``drive``).

    ``base`` is an external truth folder (then only ``eeg_predictable`` is required);
    default: the simulated dataset's ``derivatives/simulation``.

    Raises
    ------
    FileNotFoundError
        When the dataset has no ground truth for the run (names what was looked for).
    """
    external = base is not None
    base = Path(base) if external else Path(root).joinpath(*TRUTH_DIR)
    if not base.is_dir():
        what = "ground-truth folder" if external else f"simulation ground truth in '{Path(root)}':"
        raise FileNotFoundError(f"no {what} '{base}' does not exist.")
    found: dict[str, Path] = {}
    for folder in sorted(base.glob("sub-*")):
        if not _same(folder.name[4:], subject):
            continue
        func = folder / f"ses-{session}" / "func" if session is not None else folder / "func"
        for path in sorted(func.glob("*")) if func.is_dir() else []:
            ents, suffix = parse_name(path)
            if not (
                _same(ents.get("task"), task)
                and _same(ents.get("run"), run)
                and _same(ents.get("ses"), session)
            ):
                continue
            desc = ents.get("desc")
            if suffix == "bold" and desc in _DESCS and path.name.endswith((".nii", ".nii.gz")):
                found[_DESCS[desc]] = path
            elif suffix == "timeseries" and desc == "neuraldrive" and path.suffix == ".tsv":
                found["drive"] = path
    needed = ["eeg_predictable"] if external else list(_DESCS.values())
    missing = [k for k in needed if k not in found]
    if missing:
        ses = f"_ses-{session}" if session is not None else ""
        raise FileNotFoundError(
            f"no ground truth {missing} for sub-{subject}{ses}_task-{task}_run-{run} under "
            f"'{base}' (expected *_desc-noisefree_bold.nii.gz and "
            "*_desc-eegpredictable_bold.nii.gz)."
        )
    return found


def load_truth(root, *, subject, task, run, session=None, base=None) -> dict[str, np.ndarray]:
    """Load one run's ground truth.

    Parameters
    ----------
    root : path-like
        The simulated dataset's folder.
    subject, task, run : str | int
        Identifiers without BIDS prefixes; numbers compare as integers (``1`` = ``"01"``).
    session : str | None
    base : path-like | None
        An external truth folder (see the module's docstring).

    Returns
    -------
    truth : dict of str to array
        ``noisefree`` (not required of an external truth) and ``eeg_predictable``: arrays of shape (53, 63, 52, n_volumes),
        float32, on the run's BOLD grid (``affine``: array of shape (4, 4)). When the
        drive file exists, ``drive``: array of shape (n_regions, n_steps) and
        ``drive_times``: array of shape (n_steps,) (s from the first volume), with
        ``regions``: array of shape (n_regions,) of region names.
    """
    import nibabel as nib

    files = truth_files(root, subject=subject, task=task, run=run, session=session, base=base)
    out: dict[str, np.ndarray] = {}
    for key in [k for k in _DESCS.values() if k in files]:
        img = nib.load(files[key])
        out[key] = np.asarray(img.dataobj, dtype=np.float32)
        out["affine"] = np.asarray(img.affine)
    if "drive" in files:
        import pandas as pd

        table = pd.read_csv(files["drive"], sep="\t")
        out["drive_times"] = table["time"].to_numpy(float)
        names = [c for c in table.columns if c != "time"]
        out["drive"] = table[names].to_numpy(float).T
        out["regions"] = np.array(names)
    return out


def read_in_scanner_run(root, *, subject="01", task="auditory", run=1):
    """A simulated in-scanner run and the clean EEG under its artifacts, as MNE reads them.

    ``simulate --artifacts ...`` writes the recorded run (``sub-XX/eeg/*_eeg.vhdr``, with
    its ECG channel and scanner markers) and the EEG without the artifacts
    (``derivatives/simulation/sub-XX/eeg/*_desc-clean_eeg.vhdr``), the truth of a
    correction.

    Returns
    -------
    raw, clean : mne.io.Raw
        Loaded in memory.
    """
    import warnings

    import mne

    label = f"{int(subject):02d}" if str(subject).isdigit() else str(subject)
    stem = f"sub-{label}_task-{task}_run-{run}"
    recorded = Path(root) / f"sub-{label}" / "eeg" / f"{stem}_eeg.vhdr"
    under = Path(root).joinpath(*TRUTH_DIR, f"sub-{label}", "eeg", f"{stem}_desc-clean_eeg.vhdr")
    with warnings.catch_warnings():  # BrainVision's marker types, not the data
        warnings.simplefilter("ignore")
        raw, clean = (mne.io.read_raw_brainvision(p, preload=True, verbose="error")
                      for p in (recorded, under))  # fmt: skip
    return raw, clean


def noise_ceiling(
    measured: np.ndarray, predictable: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Voxelwise temporal Pearson r between the EEG-predictable signal and measured BOLD.

    The best voxelwise correlation an EEG-to-fMRI model can expect: a model that
    recovered the EEG-predictable signal exactly would score this.

    Parameters
    ----------
    measured, predictable : array of shape (n_x, n_y, n_z, n_volumes) | (n_volumes, n_voxels)
        Same shape; 4-D arrays need ``mask``.
    mask : array of shape (n_x, n_y, n_z), bool | None
        Voxels to score (C order of ``mask.nonzero()``).

    Returns
    -------
    r : array of shape (n_voxels,), float64
        0 where either series is constant (e.g. no EEG-visible signal reaches the voxel).
    """
    measured, predictable = np.asarray(measured), np.asarray(predictable)
    if measured.shape != predictable.shape:
        raise ValueError(
            f"noise_ceiling: 'measured' and 'predictable' must have the same shape, got "
            f"{measured.shape} and {predictable.shape}."
        )
    if measured.ndim == 4:
        if mask is None:
            raise ValueError("noise_ceiling: 4-D inputs need a 'mask' of shape (n_x, n_y, n_z).")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != measured.shape[:3]:
            raise ValueError(
                f"noise_ceiling: 'mask' has shape {mask.shape}, expected {measured.shape[:3]}."
            )
        a, b = measured[mask].T, predictable[mask].T
    elif measured.ndim == 2:
        a, b = measured, predictable
        if mask is not None:
            keep = np.asarray(mask, dtype=bool).ravel()
            if keep.size != a.shape[1]:
                raise ValueError(
                    f"noise_ceiling: 'mask' selects among {keep.size} voxels, but the inputs "
                    f"have {a.shape[1]}."
                )
            a, b = a[:, keep], b[:, keep]
    else:
        raise ValueError(
            "noise_ceiling: expected (n_x, n_y, n_z, n_volumes) or (n_volumes, n_voxels) arrays, "
            f"got shape {measured.shape}."
        )
    a = a.astype(np.float64) - a.mean(axis=0)
    b = b.astype(np.float64) - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    tiny = den <= 1e-12 * max(float(den.max(initial=0.0)), 1e-300)
    return np.where(tiny, 0.0, num / np.where(tiny, 1.0, den))


def truth_targets(dataset, truth_dir=None):
    """``run_index → EEG-predictable targets`` of a simulated dataset, else ``None``.

    The ground truth of each run (``desc-eegpredictable``) is prepared by the dataset's
    own :class:`~rt_eeg2fmri.data.bold.BoldChain` (smoothing, target, drift removal,
    inside its mask), so the noise ceiling is that of the targets the models are scored
    against.

    Parameters
    ----------
    dataset : PairDataset
        With ``root`` set to the simulated dataset's folder.
    truth_dir : path-like | None
        An external ground-truth folder (the module's documented layout) instead.

    Returns
    -------
    truth : callable | None
        ``truth(run_index) -> array of shape (n_volumes, n_voxels)`` (``None`` for a run
        without ground truth), or ``None`` when the dataset has no simulation truth.
    """
    root = getattr(dataset, "root", None)
    runs, mask = dataset.runs, np.asarray(dataset.mask)
    files = getattr(dataset, "run_files", None) or [{}] * len(runs)
    if truth_dir is not None:
        if not Path(truth_dir).is_dir():
            raise FileNotFoundError(f"ground-truth folder not found: '{truth_dir}'.")
    elif root is None:  # pooled datasets: each run's own simulation, if it has one
        if not any(_run_root(f) for f in files):
            return None
    elif not Path(root).joinpath(*TRUTH_DIR).is_dir():
        return None
    chain = dataset.preprocessing.bold_chain()

    def truth(r: int):
        row = runs[r]
        here, subject = root, row["subject"]
        if root is None and truth_dir is None:
            here = _run_root(files[r])
            if here is None:
                return None
            subject = _bids_subject(files[r]) or subject  # without the pooled prefix
        try:
            t = load_truth(
                here,
                subject=subject,
                task=row["task"],
                run=row["run"],
                session=row.get("session"),
                base=truth_dir,
            )
        except FileNotFoundError:
            return None
        return chain.run(t["eeg_predictable"], mask, affine=t["affine"], t_r=dataset.run_t_r(r))

    return truth


def _run_root(files: dict) -> Path | None:
    """The simulated dataset a run's BOLD file lies in (the folder with its truth), or None."""
    bold = files.get("bold")
    if not bold:
        return None
    for folder in Path(bold).parents:
        if folder.joinpath(*TRUTH_DIR).is_dir():
            return folder
    return None


def _bids_subject(files: dict) -> str | None:
    """The ``sub-`` label of a run's BOLD file name (a pooled run's subject is prefixed)."""
    name = Path(files.get("bold", "")).name
    for part in name.split("_"):
        if part.startswith("sub-"):
            return part[4:]
    return None
