"""Writers of the simulated dataset: BIDS (raw + ``derivatives/simulation``) and ds000116.

BIDS run files::

    sub-XX/eeg/sub-XX_task-T_run-R_eeg.{vhdr,vmrk,eeg,json}   BrainVision (float32, µV)
    sub-XX/eeg/sub-XX_task-T_run-R_{channels,events}.tsv      events on the EEG clock
    sub-XX/eeg/sub-XX_space-CapTrak_{electrodes.tsv,coordsystem.json}
    sub-XX/func/sub-XX_task-T_run-R_bold.{nii.gz,json}         int16, grid affine
    sub-XX/func/sub-XX_task-T_run-R_events.tsv                 onsets from the first volume

Markers in the ``.vmrk``: ``Stimulus/S  1`` (standard), ``Stimulus/S  2`` (target),
``Response/R  1`` (button press) and one ``Response/R128`` per volume at its onset.

ds000116 legacy run files (``task001`` = auditory, ``task002`` = visual)::

    subNNN/EEG/taskNNN_runNNN/EEG_rereferenced.mat   ``data_reref`` (n_eeg + 3) × n_times, µV
    subNNN/EEG/taskNNN_runNNN/channels.txt           one EEG label per line
    subNNN/BOLD/taskNNN_runNNN/bold.nii.gz

``data_reref`` rows: EEG (average reference) first, then ECG, stimulus codes (125/150
auditory standard/target, 225/250 visual, as pulses of 10 ms at the onsets) and
responses (pulses of 1). Samples are single precision. MATLAB v5 files come from
``scipy.io.savemat``; v7.3 files are HDF5 written with h5py the way MATLAB does it (a
512-byte userblock with the ``MATLAB 7.3 MAT-file`` header, datasets transposed, a
``MATLAB_class`` attribute).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..grid import GRID_AFFINE
from .design import LEGACY_CODES, MARKERS

BIDS_VERSION = "1.9.0"
SCANNER_MARKER = 128
_FIXED_DATE = "Created on: Sat Jan  1 00:00:00 2000"
TASK_DESCRIPTIONS = {
    "auditory": "Auditory oddball: frequent standard tones and rare target tones (20 %); "
    "press a button with the right index finger to targets.",
    "visual": "Visual oddball: frequent standard and rare target (20 %) visual stimuli; "
    "press a button with the right index finger to targets.",
}
LEGACY_TASKS = {"auditory": "001", "visual": "002"}


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON (sorted keys stay in the given order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_tsv(path: Path, table: pd.DataFrame) -> Path:
    """Write a BIDS TSV (``n/a`` for missing values, 6 decimals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(
        path, sep="\t", index=False, na_rep="n/a", float_format="%.6f", lineterminator="\n"
    )
    return path


def run_stem(subject: str, task: str, run: int) -> str:
    """``sub-01_task-auditory_run-1``."""
    return f"sub-{subject}_task-{task}_run-{run}"


def events_table(events: pd.DataFrame, *, shift: float, sfreq: float | None) -> pd.DataFrame:
    """Events as written: onsets shifted by ``shift`` s; a ``sample`` column when ``sfreq``."""
    onset = events["onset"].to_numpy(float) + shift
    value = [
        f"{MARKERS[t][0][0]}{MARKERS[t][1]:>3}" for t in events["trial_type"]
    ]  # "S  1", "R  1"
    table = pd.DataFrame(
        {
            "onset": onset,
            "duration": events["duration"].to_numpy(float),
            "trial_type": events["trial_type"].to_numpy(),
            "response_time": events["response_time"].to_numpy(float),
            "value": value,
        }
    )
    if sfreq is not None:
        table["sample"] = np.round(onset * sfreq).astype(int)
    return table


def with_volume_markers(
    table: pd.DataFrame, volume_onsets: np.ndarray, *, sfreq: float, marker: str = "R128"
) -> pd.DataFrame:
    """``table`` with one row per scanner volume marker (``Response/R128``), sorted by onset.

    So tools that read events from ``events.tsv`` (``mne_bids.read_raw_bids`` replaces the
    file's annotations with its rows) keep the volume markers the ``.vmrk`` holds.
    """
    onset = np.asarray(volume_onsets, float)
    volumes = pd.DataFrame(
        {
            "onset": onset,
            "duration": np.zeros(onset.size),
            "trial_type": [f"Response/{marker}"] * onset.size,
            "response_time": np.full(onset.size, np.nan),
            "value": [marker] * onset.size,
            "sample": np.round(onset * sfreq).astype(int),
        }
    )
    out = pd.concat([table, volumes[list(table.columns)]], ignore_index=True)
    return out.sort_values("onset", kind="stable").reset_index(drop=True)


def write_brainvision(
    folder: Path,
    stem: str,
    eeg: np.ndarray,
    *,
    sfreq: float,
    ch_names,
    events: pd.DataFrame,
    volume_onsets: np.ndarray,
    reference: str,
) -> Path:
    """Write BrainVision files with stimulus and scanner markers.

    Parameters
    ----------
    eeg : array of shape (n_chans, n_times)
        Volts.
    events : DataFrame
        Onsets in s from the first EEG sample.
    volume_onsets : array of shape (n_volumes,)
        Seconds from the first EEG sample.
    reference : str
        Reference electrode name, or ``"average"``.

    Returns
    -------
    vhdr : Path
    """
    import pybv

    n_times = eeg.shape[1]
    markers = []
    for onset, kind in zip(events["onset"], events["trial_type"], strict=True):
        sample = round(onset * sfreq)
        if 0 <= sample < n_times:
            markers.append(
                {
                    "onset": sample,
                    "duration": 1,
                    "description": MARKERS[kind][1],
                    "type": MARKERS[kind][0],
                }
            )
    for onset in volume_onsets:
        markers.append(
            {
                "onset": round(onset * sfreq),
                "duration": 1,
                "description": SCANNER_MARKER,
                "type": "Response",
            }
        )
    markers.sort(key=lambda m: m["onset"])
    folder.mkdir(parents=True, exist_ok=True)
    pybv.write_brainvision(
        data=eeg,
        sfreq=sfreq,
        ch_names=list(ch_names),
        ref_ch_names=None if reference == "average" else reference,
        fname_base=stem,
        folder_out=str(folder),
        events=markers,
        unit="µV",
        fmt="binary_float32",
        meas_date="20000101000000000000",
        overwrite=True,
    )
    return folder / f"{stem}.vhdr"


def write_nifti(path: Path, data: np.ndarray, *, t_r: float, slice_timing=None) -> Path:
    """Write a 4-D series on the grid (MNI sform/qform, TR in pixdim[4], slice info).

    Float data are stored as int16 with a scale factor (``scl_slope`` = max |value| /
    32000, a few hundredths of an intensity unit), which halves the files and lets gzip
    work; readers that apply the scaling (nibabel, SPM, FSL) see floats.
    """
    import nibabel as nib

    slope = None
    if np.issubdtype(data.dtype, np.floating):
        slope = float(np.float32(max(float(np.abs(data).max()), 1e-6) / 32000.0))
        data = np.rint(data / np.float32(slope)).astype(np.int16)
    img = _grid_image(data)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_zooms((*np.abs(np.diag(GRID_AFFINE)[:3]), float(t_r)))
    if slice_timing is not None:
        hdr.set_dim_info(slice=2)
        hdr["slice_code"] = 1  # sequential increasing
        hdr["slice_start"], hdr["slice_end"] = 0, data.shape[2] - 1
        hdr["slice_duration"] = float(t_r) / data.shape[2]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


def eeg_sidecar(
    task: str,
    *,
    sfreq: float,
    n_chans: int,
    duration: float,
    reference: str,
    line_freq: float,
    n_ecg: int = 0,
) -> dict:
    """Contents of ``*_eeg.json``."""
    return {
        "TaskName": task,
        "TaskDescription": TASK_DESCRIPTIONS[task],
        "SamplingFrequency": sfreq,
        "PowerLineFrequency": line_freq,
        "EEGReference": reference,
        "EEGGround": "AFz",
        "EEGPlacementScheme": "10-20/10-10 subset",
        "CapManufacturer": "n/a (simulated MR-compatible cap)",
        "Manufacturer": "rt-eeg2fmri simulator",
        "SoftwareFilters": "n/a",
        "HardwareFilters": "n/a",
        "EEGChannelCount": n_chans,
        "ECGChannelCount": n_ecg,
        "EOGChannelCount": 0,
        "EMGChannelCount": 0,
        "MiscChannelCount": 0,
        "TriggerChannelCount": 0,
        "RecordingType": "continuous",
        "RecordingDuration": round(duration, 6),
        "Description": "Simulated; MR gradient and pulse artifacts already corrected "
        "(a small pulse residue remains).",
    }


def bold_sidecar(task: str, *, t_r: float, slice_timing: np.ndarray) -> dict:
    """Contents of ``*_bold.json``."""
    return {
        "TaskName": task,
        "TaskDescription": TASK_DESCRIPTIONS[task],
        "RepetitionTime": t_r,
        "SliceTiming": [round(float(s), 6) for s in slice_timing],
        "SliceEncodingDirection": "k",
        "EchoTime": 0.025,
        "FlipAngle": 90,
        "MagneticFieldStrength": 3,
        "Manufacturer": "rt-eeg2fmri simulator",
        "SpatialReference": "MNI152 (SPM 3 mm bounding box); simulated in template space",
    }


def channels_table(ch_names, reference: str, *, ecg: str | None = None) -> pd.DataFrame:
    """Contents of ``*_channels.tsv`` (``ecg``: the name of an ECG channel written last)."""
    n = len(ch_names)
    table = pd.DataFrame(
        {
            "name": list(ch_names),
            "type": ["EEG"] * n,
            "units": ["µV"] * n,
            "reference": [reference] * n,
            "status": ["good"] * n,
        }
    )
    if ecg is not None:
        row = {"name": ecg, "type": "ECG", "units": "µV", "reference": "n/a", "status": "good"}
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    return table


def write_electrodes(folder: Path, subject: str, ch_names, positions: np.ndarray) -> None:
    """``sub-XX_space-CapTrak_electrodes.tsv`` and its ``coordsystem.json`` (MNE head frame)."""
    table = pd.DataFrame(
        {
            "name": list(ch_names),
            "x": positions[:, 0],
            "y": positions[:, 1],
            "z": positions[:, 2],
        }
    )
    write_tsv(folder / f"sub-{subject}_space-CapTrak_electrodes.tsv", table)
    write_json(
        folder / f"sub-{subject}_space-CapTrak_coordsystem.json",
        {
            "EEGCoordinateSystem": "CapTrak",
            "EEGCoordinateUnits": "m",
            "EEGCoordinateSystemDescription": "RAS head frame: origin between the preauricular "
            "points, x towards RPA, y towards the nasion (template 10-20/10-10 positions).",
        },
    )


def write_drive(path: Path, times: np.ndarray, drive: np.ndarray, names, *, step: int) -> Path:
    """The neural drive, block-averaged by ``step`` samples, with a JSON sidecar."""
    n = (drive.shape[1] // step) * step
    avg = drive[:, :n].reshape(drive.shape[0], -1, step).mean(axis=2)
    t = times[:n].reshape(-1, step).mean(axis=1)
    table = pd.DataFrame(avg.T, columns=list(names))
    table.insert(0, "time", t)
    write_tsv(path, table)
    write_json(
        path.with_suffix(".json"),
        {
            "Description": "Neural drive of each simulated region (unitless; BOLD percent signal "
            "change = amplitude × HRF ∗ drive).",
            "SamplingFrequency": round(1.0 / float(t[1] - t[0]), 6),
            "time": {"Description": "Seconds from the first volume's onset.", "Units": "s"},
        },
    )
    return path


# -- ds000116 legacy -------------------------------------------------------------------
def legacy_run_dir(subject_index: int, task: str, run: int) -> str:
    """``sub001``, ``task001_run001`` parts of a legacy run path."""
    return f"sub{subject_index:03d}", f"task{LEGACY_TASKS[task]}_run{run:03d}"


def legacy_matrix(
    eeg: np.ndarray,
    ecg: np.ndarray,
    events: pd.DataFrame,
    *,
    sfreq: float,
) -> np.ndarray:
    """The ``data_reref`` matrix.

    Parameters
    ----------
    eeg : array of shape (n_eeg, n_times)
        Volts (re-referenced to the average here).
    ecg : array of shape (n_times,)
        Volts.
    events : DataFrame
        Onsets in s from the first sample.

    Returns
    -------
    data : array of shape (n_eeg + 3, n_times), float32
        µV for EEG and ECG; stimulus codes; response pulses.
    """
    n_eeg, n_times = eeg.shape
    out = np.zeros((n_eeg + 3, n_times), dtype=np.float32)
    out[:n_eeg] = (eeg - eeg.mean(axis=0, keepdims=True)) * 1e6
    out[n_eeg] = ecg * 1e6
    width = max(1, round(0.01 * sfreq))
    for onset, kind in zip(events["onset"], events["trial_type"], strict=True):
        i = round(onset * sfreq)
        if not 0 <= i < n_times:
            continue
        if kind in LEGACY_CODES:
            out[n_eeg + 1, i : i + width] = LEGACY_CODES[kind]
        elif kind == "button_press":
            out[n_eeg + 2, i : i + width] = 1.0
    return out


def write_mat(path: Path, name: str, data: np.ndarray, *, version: str = "5") -> Path:
    """Write one 2-D variable as a MATLAB v5 or v7.3 file with a fixed (reproducible) header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if version == "5":
        from scipy.io import savemat

        savemat(path, {name: data}, format="5", do_compression=False, oned_as="row")
        text = f"MATLAB 5.0 MAT-file, Platform: GLNXA64, {_FIXED_DATE}".ljust(116).encode()
        with open(path, "r+b") as f:
            f.seek(0)
            f.write(text)
        return path
    import h5py

    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        ds = f.create_dataset(name, data=np.ascontiguousarray(data.T), track_times=False)
        ds.attrs["MATLAB_class"] = np.bytes_("single" if data.dtype == np.float32 else "double")
    head = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, {_FIXED_DATE} HDF5 schema 1.00 .".ljust(116)
    block = head.encode() + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(block.ljust(512, b"\x00"))
    return path


def write_labels(path: Path, labels: np.ndarray) -> Path:
    """Write a 3-D integer label image on the grid (MNI sform/qform)."""
    img = _grid_image(np.asarray(labels, np.int16))
    img.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.to_filename(path)
    return path


def _grid_image(data: np.ndarray):
    """A NIfTI image of ``data`` on the grid, its sform and qform MNI152 (code 4)."""
    import nibabel as nib

    img = nib.Nifti1Image(data, np.asarray(GRID_AFFINE))
    img.set_sform(np.asarray(GRID_AFFINE), code=4)
    img.set_qform(np.asarray(GRID_AFFINE), code=4)
    return img
