"""Write small, real simultaneous EEG-fMRI datasets (BIDS and ds000116 legacy) for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPM_FLIPPED = np.array(
    [[-3.0, 0.0, 0.0, 78.0], [0.0, 3.0, 0.0, -112.0], [0.0, 0.0, 3.0, -70.0], [0, 0, 0, 1.0]]
)


def eeg_signal(n_chans: int, n_times: int, *, seed: int = 0) -> np.ndarray:
    """Random EEG in volts, shape (n_chans, n_times)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_chans, n_times)) * 2e-5


def write_eeg(
    path: Path,
    data: np.ndarray,
    sfreq: float,
    ch_names: list[str],
    *,
    markers=(),
    stimuli=(),
    marker: str = "R128",
    codes=(),
) -> Path:
    """Write EEG (volts) with scanner markers and stimuli (onsets in s) in the format of ``path``.

    BrainVision through pybv (markers as ``Response/R128``, stimuli as ``Stimulus/S  1``,
    ``codes`` as ``(onset, code)`` stimuli ``Stimulus/S 99``);
    EDF/BDF/EEGLAB through ``mne.export.export_raw``; FIF through ``Raw.save``.
    """
    import mne

    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if name.endswith(".vhdr"):
        import pybv

        events = (
            [
                {
                    "onset": round(t * sfreq),
                    "duration": 1,
                    "description": int(marker[1:]),
                    "type": "Response",
                }
                for t in markers
            ]
            + [
                {"onset": round(t * sfreq), "duration": 1, "description": 1, "type": "Stimulus"}
                for t in stimuli
            ]
            + [
                {"onset": round(t * sfreq), "duration": 1, "description": c, "type": "Stimulus"}
                for t, c in codes
            ]
        )
        pybv.write_brainvision(
            data=data,
            sfreq=sfreq,
            ch_names=ch_names,
            fname_base=name[: -len(".vhdr")],
            folder_out=str(path.parent),
            events=events or None,
            unit="µV",
            fmt="binary_float32",
            overwrite=True,
        )
        return path
    info = mne.create_info(ch_names, sfreq, "eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    onsets = [*markers, *stimuli, *(t for t, _ in codes)]
    labels = [f"Response/{marker}"] * len(markers) + ["Stimulus/S  1"] * len(stimuli)
    labels += [f"Stimulus/S{c:3d}" for _, c in codes]
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), labels))
    if name.endswith(".fif"):
        raw.save(path, overwrite=True, verbose="error")
    else:
        mne.export.export_raw(path, raw, overwrite=True, verbose="error")
    return path


def write_bold(
    path: Path,
    n_volumes: int,
    *,
    grid=(5, 6, 4),
    affine=None,
    t_r: float | None = 2.0,
    seed: int = 0,
    data: np.ndarray | None = None,
) -> Path:
    """Write a 4-D NIfTI (pixdim[4] = ``t_r``, or 0 when ``None``)."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        rng = np.random.default_rng(seed)
        data = (1000 + rng.standard_normal((*grid, n_volumes))).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(data, affine)
    if data.ndim == 4:
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        img.header.set_zooms((*zooms, t_r or 0.0))
        img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    return path


def write_bids_run(
    root: Path,
    *,
    sub: str = "01",
    task: str = "oddball",
    run: str | None = None,
    ses: str | None = None,
    acq: str | None = None,
    fmt: str = "vhdr",
    n_chans: int = 4,
    sfreq: float = 250.0,
    n_volumes: int = 12,
    t_r: float = 2.0,
    lead: float = 1.0,
    tail: float = 1.0,
    markers: bool | int = True,
    grid=(5, 6, 4),
    affine=None,
    sidecar: str | None = "run",
    header_tr: float | str | None = "same",
    eeg_events: bool = True,
    ch_names: list[str] | None = None,
    bold: bool = True,
    seed: int = 0,
) -> dict:
    """One BIDS run: EEG with scanner markers, BOLD, sidecar and events; returns the paths.

    ``markers``: ``True`` one per volume, ``False`` none, an int that many (from ``lead``).
    """
    root.mkdir(parents=True, exist_ok=True)
    desc = root / "dataset_description.json"
    if not desc.is_file():
        desc.write_text(json.dumps({"Name": "test", "BIDSVersion": "1.8.0"}))
    ents = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task}"
    ents += (f"_acq-{acq}" if acq else "") + (f"_run-{run}" if run else "")
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")
    n_marks = n_volumes if markers is True else int(markers)
    onsets = lead + np.arange(n_marks) * t_r
    n_times = round((lead + n_volumes * t_r + tail) * sfreq)
    names = ch_names or [f"EEG{i:02d}" for i in range(n_chans)]
    data = eeg_signal(len(names), n_times, seed=seed)
    stimuli = list(lead + 0.5 + np.arange(n_volumes // 2) * 2 * t_r)
    eeg = write_eeg(
        folder / "eeg" / f"{ents}_eeg.{fmt}", data, sfreq, names, markers=onsets, stimuli=stimuli
    )
    out = {"eeg": eeg, "data": data, "stimuli": stimuli, "markers": onsets}
    if eeg_events:
        path = folder / "eeg" / f"{ents}_events.tsv"
        rows = "".join(f"{t:.4f}\t0.2\ttarget\n" for t in stimuli)
        path.write_text("onset\tduration\ttrial_type\n" + rows)
        out["eeg_events"] = path
    if bold:
        htr = t_r if header_tr == "same" else header_tr
        out["bold"] = write_bold(
            folder / "func" / f"{ents}_bold.nii.gz",
            n_volumes,
            grid=grid,
            affine=affine,
            t_r=htr,
            seed=seed,
        )
        if sidecar == "run":
            path = folder / "func" / f"{ents}_bold.json"
            path.write_text(json.dumps({"RepetitionTime": t_r, "TaskName": task}))
            out["sidecar"] = path
        elif sidecar == "top":
            path = root / f"task-{task}_bold.json"
            path.write_text(json.dumps({"RepetitionTime": t_r}))
            out["sidecar"] = path
    return out


def write_ds000116_run(
    root: Path,
    *,
    sub: int = 1,
    task: int = 1,
    run: int = 1,
    kind: str = "rereferenced",
    v73: bool = False,
    n_volumes: int = 12,
    t_r: float | None = 2.0,
    sfreq: float = 1000.0,
    extra: float = 0.5,
    grid=(5, 6, 4),
    affine=None,
    channels: list[str] | None = None,
    variable: str | None = None,
    stim_at=(3.0, 7.0, 11.0),
    bold: bool = True,
    seed: int = 0,
) -> dict:
    """One run of the ds000116 legacy layout: ``.mat`` EEG in µV and ``bold.nii.gz``."""
    name = f"task{task:03d}_run{run:03d}"
    sub_dir = root / f"sub{sub:03d}"
    eeg_dir = sub_dir / "EEG" / name
    eeg_dir.mkdir(parents=True, exist_ok=True)
    n_eeg, n_rows, stim_row, resp_row = (
        (34, 37, 35, 36) if kind == "rereferenced" else (43, 49, 47, 48)
    )
    n_times = round((n_volumes * (t_r or 2.0) + extra) * sfreq)
    mat = np.zeros((n_rows, n_times))
    eeg_uv = eeg_signal(n_eeg, n_times, seed=seed) * 1e6
    mat[:n_eeg] = eeg_uv
    codes = (125, 150) if task == 1 else (225, 250)
    mat[stim_row] = 25.0  # task baseline
    for i, t in enumerate(stim_at):
        s = round(t * sfreq)
        mat[stim_row, s : s + 10] = codes[i % 2]
        if i % 2:
            mat[resp_row, s + 400 : s + 420] = 1.0
    fname = "EEG_rereferenced.mat" if kind == "rereferenced" else "EEG_noGA.mat"
    var = variable or ("data_reref" if kind == "rereferenced" else "data_noGA")
    path = eeg_dir / fname
    if v73:
        import h5py

        with h5py.File(path, "w", userblock_size=512) as f:
            f.create_dataset(var, data=mat.T)  # MATLAB column-major → transposed in HDF5
            f[var].attrs["MATLAB_class"] = np.bytes_("double")
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    else:
        from scipy.io import savemat

        savemat(path, {var: mat})
    out = {"eeg": path, "eeg_uv": eeg_uv, "stim_at": stim_at, "n_times": n_times}
    if channels is not None:
        (eeg_dir / "channels.txt").write_text("\n".join(channels) + "\n")
    if bold:
        out["bold"] = write_bold(
            sub_dir / "BOLD" / name / "bold.nii.gz",
            n_volumes,
            grid=grid,
            affine=affine,
            t_r=t_r,
            seed=seed,
        )
    return out
