"""Small datasets in the layouts of public simultaneous EEG-fMRI releases, written by the tests.

Each mirrors what its release does that a reader must cope with (rates and channel counts are
scaled down so the tests stay fast):

- ``ds002336`` (XP1): raw EEG with an ECG channel (typed in ``channels.tsv``) and
  scanner markers, plus preprocessed EEG in ``derivatives/sub-*/eeg_pp/*_eeg_pp.vhdr`` at
  200 Hz, cropped to start at the first ``S 99`` marker, without volume markers; TR 2 s.
- ``ds002338`` (XP2): the same with a ``d_`` file-name prefix and the volume markers kept,
  TR 1 s, BOLD on the MNI grid covering only the upper slices (a slab).
- ``ds002158``: TR 1.28 s written as ``RepetitionTime: 1280.0`` (ms) with a nested DICOM
  dump of its own ``RepetitionTime``.
- ``ds003768``: a 32-channel cap, TR 2.1 s.
- ``noddi``: EDF exports at 250 Hz, TR 2.16 s.
- ``ds000116``: the founding dataset's legacy release (``subNNN/EEG/taskNNN_runNNN/*.mat``
  in µV with its stimulus channels, ``subNNN/BOLD/taskNNN_runNNN/bold.nii.gz``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .builders import write_bids_run, write_bold, write_ds000116_run, write_eeg

SUBJECTS = ["01", "02", "03"]  # leave-one-subject-out: train, validation, test
CAP8 = ["Fp1", "Fz", "C3", "Cz", "C4", "Pz", "O1", "O2"]
CAP32 = [
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz",
    "C4", "T8", "TP9", "CP5", "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8",
    "PO9", "O1", "Oz", "O2", "PO10",
]  # fmt: skip


#: BIDS releases without derivatives: TR (s), EEG rate (Hz), volumes, cap, EEG format
PLAIN = {
    "ds002158": (1.28, 100.0, 20, CAP8, "vhdr"),
    "ds003768": (2.1, 100.0, 12, CAP32, "vhdr"),
    "noddi": (2.16, 250.0, 12, CAP8, "edf"),
}


@dataclass
class Layout:
    """What a layout's fixture is and how to read it."""

    name: str
    t_r: float
    sfreq: float  # the rate the model sees (the derivative's for derivative layouts)
    subjects: list
    task: str
    reader: dict = field(default_factory=dict)

    def flags(self) -> list[str]:
        """The reader options as command-line flags."""
        out = []
        for key, value in self.reader.items():
            out += [f"--{key.replace('_', '-')}", str(value)]
        return out


def _signal_bold(grid, n_volumes: int, seed: int, *, covered=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (1000 + 10 * rng.standard_normal((*grid, n_volumes))).astype(np.float32)
    if covered is not None:
        data[~covered] = 0.0
    return data


def _xp_run(root: Path, layout: str, sub: str, *, seed: int) -> None:
    """A raw XP run (1000 Hz, EEG + ECG) and its preprocessed derivative (200 Hz, cropped)."""
    from scipy.signal import resample_poly

    t_r, n_volumes, lead = (2.0, 14, 1.0) if layout == "ds002336" else (1.0, 24, 1.0)
    grid, affine = (5, 6, 4), None
    names = [*CAP8, "ECG"]
    task = "eegfmriNF"
    paths = write_bids_run(
        root, sub=sub, task=task, ch_names=names, sfreq=1000.0, n_volumes=n_volumes,
        t_r=t_r, lead=lead, tail=2.0, grid=grid, eeg_events=False, seed=seed,
    )  # fmt: skip
    (paths["eeg"].parent / f"sub-{sub}_task-{task}_channels.tsv").write_text(
        "name\ttype\tunits\n" + "".join(f"{n}\tEEG\tµV\n" for n in CAP8) + "ECG\tECG\tµV\n"
    )
    if layout == "ds002338":  # the MNI grid, upper slices only (a slab)
        from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE

        grid, affine = GRID_SHAPE, GRID_AFFINE
        covered = np.zeros(grid, bool)
        covered[:, :, grid[2] // 2 :] = True
        write_bold(
            paths["bold"], n_volumes, grid=grid, affine=affine, t_r=t_r,
            data=_signal_bold(grid, n_volumes, seed, covered=covered),
        )  # fmt: skip
    else:
        write_bold(
            paths["bold"], n_volumes, grid=grid, t_r=t_r, data=_signal_bold(grid, n_volumes, seed)
        )
    # the raw EEG again, now with the S 99 that starts the task (the derivative's crop)
    data, markers, stimuli = paths["data"], paths["markers"], paths["stimuli"]
    crop = lead + 2.5 * t_r
    write_eeg(
        paths["eeg"], data, 1000.0, names, markers=markers, stimuli=stimuli, codes=[(crop, 99)]
    )
    # the derivative: cropped at S 99, 200 Hz, markers shifted (R128 dropped in XP1)
    kept = data[:, round(crop * 1000) :]
    pp = resample_poly(kept, 1, 5, axis=1)
    keep_r128 = layout == "ds002338"
    prefix = "d_" if layout == "ds002338" else ""
    folder = root / "derivatives" / f"sub-{sub}" / "eeg_pp"
    write_eeg(
        folder / f"{prefix}sub-{sub}_task-{task}_eeg_pp.vhdr",
        pp,
        200.0,
        names,
        markers=[t - crop for t in markers if t >= crop] if keep_r128 else (),
        stimuli=[t - crop for t in stimuli if t >= crop],
        codes=[(0.0, 99)],
    )


def write_layout(root: Path, name: str) -> Layout:
    """Write three subjects of layout ``name`` under ``root``; return how to read them."""
    root = Path(root)
    if name in ("ds002336", "ds002338"):
        subs = ["xp101", "xp102", "xp103"] if name == "ds002336" else ["xp201", "xp202", "xp203"]
        for i, sub in enumerate(subs):
            _xp_run(root, name, sub, seed=i)
        t_r = 2.0 if name == "ds002336" else 1.0
        return Layout(name, t_r, 200.0, subs, "eegfmriNF", {"eeg_derivatives": "eeg_pp"})
    if name in PLAIN:
        t_r, sfreq, n_volumes, cap, fmt = PLAIN[name]
        for i, sub in enumerate(SUBJECTS):
            paths = write_bids_run(
                root, sub=sub, task="rest", fmt=fmt, ch_names=cap, sfreq=sfreq,
                n_volumes=n_volumes, t_r=t_r, lead=1.0, seed=i,
            )  # fmt: skip
            write_bold(
                paths["bold"], n_volumes, t_r=t_r, data=_signal_bold((5, 6, 4), n_volumes, i)
            )
            if name == "ds002158":  # the TR in ms, and a DICOM dump with its own
                paths["sidecar"].write_text(
                    json.dumps({"RepetitionTime": 1280.0, "DICOM": {"RepetitionTime": 1280.0}})
                )
        return Layout(name, t_r, sfreq, SUBJECTS, "rest")
    if name == "ds000116":
        for i in range(3):
            paths = write_ds000116_run(root, sub=i + 1, n_volumes=16, seed=i)
            write_bold(paths["bold"], 16, t_r=2.0, data=_signal_bold((5, 6, 4), 16, i))
        return Layout(name, 2.0, 1000.0, SUBJECTS, "auditory")
    raise ValueError(f"unknown layout {name!r}")
