"""File outputs of the stream: a NIfTI series valid after every volume, and the per-TR timing log.

The NIfTI writer appends one volume at a time. For ``.nii`` it appends the voxels and
rewrites the header's volume count; for ``.nii.gz`` the file is a multi-member gzip: a
first member holding the 352-byte header *stored* (compression level 0, so its length
never changes and it can be rewritten in place) followed by one compressed member per
volume. Every gzip reader (nibabel, FSL, AFNI, Python's ``gzip``) reads it as one stream.
The header is updated only after a volume's bytes are flushed, so a crash or Ctrl-C loses
at most the volume in flight.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

_VOX_OFFSET = 352  # 348-byte NIfTI-1 header + 4-byte extension flag


class NiftiSeriesWriter:
    """Append 3-D volumes to a 4-D NIfTI file that is valid after every volume.

    Parameters
    ----------
    path : path-like
        ``*.nii`` or ``*.nii.gz``.
    affine : array of shape (4, 4)
    grid_shape : tuple of 3 int
    t_r : float
        Repetition time in seconds (stored in ``pixdim[4]`` and the sidecar).
    sidecar : dict | None
        Extra BIDS-style fields for the JSON sidecar (``RepetitionTime``, ``VolumeTiming``
        and ``NumberOfVolumes`` are filled in).
    """

    def __init__(
        self, path, *, affine, grid_shape, t_r: float, sidecar: dict | None = None
    ) -> None:
        self.path = Path(path)
        name = self.path.name
        if not (name.endswith(".nii") or name.endswith(".nii.gz")):
            raise ValueError(f"output '{self.path}': expected a .nii or .nii.gz file name.")
        self.gz = name.endswith(".gz")
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.affine = np.asarray(affine, dtype=float)
        self.t_r = float(t_r)
        self.sidecar_path = self.path.with_name(
            name[: -len(".nii.gz" if self.gz else ".nii")] + ".json"
        )
        self.sidecar = {"RepetitionTime": self.t_r, **(sidecar or {})}
        self.n_volumes = 0
        self.times: list[float] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w+b")
        except OSError as err:
            raise OSError(f"cannot write the NIfTI output '{self.path}': {err.strerror}.") from None
        self._fh.write(self._header_member(0))
        self._fh.flush()
        self._write_sidecar()

    def _header_bytes(self, n: int) -> bytes:
        hdr = nib.Nifti1Header()
        hdr.set_data_dtype(np.float32)
        hdr.set_data_shape((*self.grid_shape, max(n, 1)))
        hdr.set_qform(self.affine, code=4)  # MNI152
        hdr.set_sform(self.affine, code=4)
        hdr.set_xyzt_units("mm", "sec")
        zooms = list(hdr.get_zooms())
        zooms[3] = self.t_r
        hdr.set_zooms(zooms)
        hdr["vox_offset"] = _VOX_OFFSET
        hdr["descrip"] = b"rt-eeg2fmri prediction"
        if n == 0:  # no volume yet: a valid header saying "0 volumes" is not allowed; keep 1
            hdr["dim"][4] = 1
        return hdr.binaryblock + b"\x00" * 4

    def _header_member(self, n: int) -> bytes:
        raw = self._header_bytes(n)
        return gzip.compress(raw, compresslevel=0, mtime=0) if self.gz else raw

    def append(self, volume: np.ndarray, *, time: float | None = None) -> None:
        """Append one volume of shape ``grid_shape`` (written as float32, C → Fortran order)."""
        vol = np.asarray(volume, dtype=np.float32)
        if vol.shape != self.grid_shape:
            raise ValueError(
                f"volume shape {vol.shape} differs from the series grid {self.grid_shape}."
            )
        data = np.asfortranarray(vol).tobytes(order="F")
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(gzip.compress(data, compresslevel=1, mtime=0) if self.gz else data)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.n_volumes += 1
        self.times.append(float("nan") if time is None else float(time))
        self._fh.seek(0)
        self._fh.write(self._header_member(self.n_volumes))
        self._fh.flush()
        self._write_sidecar()

    def _write_sidecar(self) -> None:
        doc = {**self.sidecar, "NumberOfVolumes": self.n_volumes, "VolumeTiming": self.times}
        tmp = self.sidecar_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=True))
        os.replace(tmp, self.sidecar_path)

    def close(self) -> None:
        """Close the file; everything appended is already on disk."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


TIMING_COLUMNS = (
    "volume",
    "window_end",
    "data_ready",
    "inference_start",
    "inference_end",
    "publish",
    "latency_ms",
    "late",
    "skipped",
    "gap",
)


class TimingLog:
    """Per-TR timing log as a TSV, one row per scheduled volume, flushed every row.

    Times are LSL clock seconds; ``latency_ms`` is publish − window end.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline="")
        except OSError as err:
            raise OSError(f"cannot write the timing log '{self.path}': {err.strerror}.") from None
        self._w = csv.writer(self._fh, delimiter="\t", lineterminator="\n")
        self._w.writerow(TIMING_COLUMNS)
        self._fh.flush()

    def write(self, **row) -> None:
        """Write one row; missing columns are left empty, times with µs precision."""
        unknown = set(row) - set(TIMING_COLUMNS)
        if unknown:
            raise ValueError(f"unknown timing column(s) {sorted(unknown)}.")
        self._w.writerow([_fmt(row.get(c)) for c in TIMING_COLUMNS])
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool | np.bool_):
        return "1" if v else "0"
    if isinstance(v, float | np.floating):
        return f"{v:.6f}"
    return str(v)
