"""File outputs of the stream: a NIfTI series valid after every volume, and the per-TR timing log.

The NIfTI writer appends one volume at a time. For ``.nii`` it appends the voxels and
rewrites the header's volume count; for ``.nii.gz`` the file is a multi-member gzip: a
first member holding the 1024-byte header block *stored* (compression level 0, so its length
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
import queue
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from .._logging import logger

# 348-byte NIfTI-1 header + 4-byte extension flag (0: none), padded to 1024 bytes, so the
# stored gzip member that holds it is longer than 1 KiB: tools that decompress a .nii.gz
# header from the file's first 1024 bytes with a single-member decoder (the BIDS
# validator) then never meet the start of the next member, which they reject as junk.
_VOX_OFFSET = 1024


class NiftiSeriesWriter:
    """Append 3-D volumes to a 4-D NIfTI file that is valid after every volume.

    Parameters
    ----------
    path : path-like
        ``*.nii`` or ``*.nii.gz``.
    affine : array of shape (4, 4)
    grid_shape : tuple of 3 int
    t_r : float
        Repetition time in seconds (stored in ``pixdim[4]``; in the sidecar each volume
        lasts ``AcquisitionDuration`` = ``t_r``).
    sidecar : dict | None
        Extra BIDS fields for the JSON sidecar.

    The sidecar is a BIDS derivative's: ``VolumeTiming`` holds the volumes' onsets in
    seconds from the first one's (a stream may skip a volume, so there is no
    ``RepetitionTime``), ``AcquisitionDuration`` the TR, ``SkullStripped`` true (voxels
    outside the model's mask are zero), ``NumberOfVolumes``, and
    ``VolumeTimingOriginLSL`` the LSL-clock time of onset 0: volume ``k``'s window ended
    at ``VolumeTimingOriginLSL + VolumeTiming[k] + AcquisitionDuration``.
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
        self.sidecar = {"AcquisitionDuration": self.t_r, "SkullStripped": True, **(sidecar or {})}
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
        return hdr.binaryblock + b"\x00" * (_VOX_OFFSET - len(hdr.binaryblock))

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
        if time is None or not np.isfinite(time):  # unknown: one TR after the last
            time = (self.times[-1] if self.times else 0.0) + self.t_r
        self.times.append(float(time))
        self._fh.seek(0)
        self._fh.write(self._header_member(self.n_volumes))
        self._fh.flush()
        self._write_sidecar()

    def _write_sidecar(self) -> None:
        origin = self.times[0] - self.t_r if self.times else None
        doc = {
            **self.sidecar,
            "NumberOfVolumes": self.n_volumes,
            "VolumeTiming": [round(t - self.t_r - origin, 6) for t in self.times],
            "VolumeTimingOriginLSL": origin,
        }
        tmp = self.sidecar_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2))
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
    "adapt",
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


class BackgroundWriter:
    """Append volumes to a NIfTI series on a thread, so a slow disk never delays a volume.

    At most ``maxsize`` volumes wait; beyond that a volume is left out of the file (counted
    in ``stats.output_errors`` and logged; the sidecar's ``VolumeTiming`` shows which).
    On a write error the file is closed and LSL publishing goes on.
    """

    def __init__(self, writer: NiftiSeriesWriter, stats, *, maxsize: int = 8) -> None:
        self.writer, self.stats = writer, stats
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="NiftiWriter", daemon=True)
        self._thread.start()

    def put(self, volume: np.ndarray, t_end: float, index: int) -> None:
        """Queue ``volume`` (not modified afterwards by the caller) for appending."""
        if self._failed:
            return
        try:
            self._queue.put_nowait((volume, t_end))
        except queue.Full:
            self.stats.output_errors += 1
            logger.error(
                "NIfTI output is %d volumes behind: volume %d is not written to '%s'.",
                self._queue.maxsize,
                index,
                self.writer.path,
            )

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failed:
                continue
            t = time.perf_counter()
            try:
                self.writer.append(item[0], time=item[1])
            except OSError as err:
                self._failed = True
                self.stats.output_errors += 1
                logger.error("NIfTI output failed (%s); LSL publishing continues.", err)
                self.writer.close()
            self.stats.write.append((time.perf_counter() - t) * 1e3)

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._queue.put(None)
        self._thread.join()
        self.writer.close()


class Outputs:
    """Where the predicted volumes go: an LSL outlet, a NIfTI series, a timing log.

    Nothing is created before :meth:`open`, so a stream that turns out not to fit the
    model leaves no file behind.

    Parameters
    ----------
    grid_shape : tuple of int
    affine : array of shape (4, 4)
    t_r : float
    mask : array of shape grid_shape, bool
    model : str
        Model name (stream description and sidecar).
    checkpoint : str
        Checkpoint path (sidecar).
    units : str
        Units of the volumes (sidecar), e.g. ``"percent signal change"``.
    outlet_name : str | None
        Name of the predicted-volume LSL stream (``None``: no outlet).
    nifti : path-like | None
        NIfTI series written after every volume (``.nii`` or ``.nii.gz``).
    timing : path-like | None
        Per-TR timing log (TSV).
    bids_root : path-like | None
        The BIDS derivative folder ``nifti`` lies in (:func:`derivative_paths`): its
        ``dataset_description.json`` and ``.bidsignore`` are written on :meth:`open`.
    sources : list of str
        What the volumes were computed from (the sidecar's ``Sources``).
    roi : Regions | None
        Regions whose mean predicted signal is published every TR on the LSL stream
        ``roi_name`` and written to :func:`~rt_eeg2fmri.realtime.roi.roi_path` of ``nifti``.
    roi_name : str | None
        Name of the ROI stream (default ``<outlet_name>-ROI``, or ``rt-eeg2fmri-ROI``).
    """

    def __init__(
        self,
        *,
        grid_shape,
        affine,
        t_r: float,
        mask,
        model: str,
        checkpoint: str = "",
        units: str = "percent signal change",
        outlet_name: str | None = None,
        nifti=None,
        timing=None,
        bids_root=None,
        sources: list | None = None,
        roi=None,
        roi_name: str | None = None,
    ) -> None:
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.bids_root = None if bids_root is None else Path(bids_root)
        self.sources = list(sources or [])
        self.roi = roi
        self.roi_name = roi_name or f"{outlet_name or 'rt-eeg2fmri'}-ROI"
        self.roi_outlet = self.roi_log = None
        self.affine, self.mask = np.asarray(affine), np.asarray(mask)
        self.t_r, self.model, self.checkpoint, self.units = float(t_r), model, checkpoint, units
        self.outlet_name, self.nifti_path, self.timing_path = outlet_name, nifti, timing
        self.outlet = self.writer = self.timing = None

    def open(self, stats, *, sidecar: dict | None = None) -> None:
        """Create the outlet and files; ``stats`` (``EngineStats``) counts output errors.

        ``sidecar`` adds fields to the NIfTI's JSON sidecar (e.g. the stream's montage). A
        NIfTI file that cannot be created is an error unless an outlet publishes the
        volumes, in which case it is logged and counted.
        """
        from ..volume_stream import volume_stream_info

        if self.outlet_name:
            import pylsl

            info = volume_stream_info(
                self.outlet_name,
                content="prediction",
                grid_shape=self.grid_shape,
                affine=self.affine,
                t_r=self.t_r,
                source_id=f"rt-eeg2fmri-prediction-{self.outlet_name}",
                model=self.model,
                mask=self.mask,
            )
            self.outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)
        if self.timing_path:
            self.timing = TimingLog(self.timing_path)
        if self.roi is not None:
            import pylsl

            from .roi import roi_path, roi_stream_info

            info = roi_stream_info(
                self.roi_name,
                self.roi,
                t_r=self.t_r,
                source_id=f"rt-eeg2fmri-roi-{self.roi_name}",
                units=self.units,
            )
            self.roi_outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)
            logger.info("%s: publishing on '%s'.", self.roi.describe(), self.roi_name)
            if self.nifti_path:
                self.roi_log = RoiLog(roi_path(self.nifti_path), self.roi.names)
        if self.bids_root is not None:
            write_derivative_description(self.bids_root)
        if self.nifti_path:
            try:
                writer = NiftiSeriesWriter(
                    self.nifti_path,
                    affine=self.affine,
                    grid_shape=self.grid_shape,
                    t_r=self.t_r,
                    sidecar={
                        "Description": f"fMRI synthesized from EEG by {self.model}",
                        "Model": self.model,
                        "Checkpoint": self.checkpoint,
                        "Units": self.units,
                        "Sources": self.sources,
                        **(sidecar or {}),
                    },
                )
            except OSError as err:
                if self.outlet is None:
                    raise
                stats.output_errors += 1
                logger.error("%s — continuing with LSL publishing only.", err)
            else:
                self.writer = BackgroundWriter(writer, stats)

    def publish(self, volume: np.ndarray, t_end: float) -> None:
        """Push ``volume`` on the outlet, stamped with its window end."""
        if self.outlet is not None:
            # push_chunk hands liblsl the array's buffer; push_sample would box every voxel
            # into a Python float (~25 ms for the MNI grid)
            self.outlet.push_chunk(volume.reshape(1, -1), t_end)
        if self.roi is not None:
            self._roi_means = self.roi.means(volume)
            self.roi_outlet.push_sample(self._roi_means, t_end)

    def store(self, volume: np.ndarray, t_end: float, index: int) -> None:
        """Queue ``volume`` for the NIfTI series."""
        if self.writer is not None:
            self.writer.put(volume, t_end, index)
        if self.roi_log is not None:
            self.roi_log.write(index, t_end, self._roi_means)

    def log(self, **row) -> None:
        """One row of the timing log."""
        if self.timing is not None:
            self.timing.write(**row)

    def close(self) -> None:
        """Close every output (everything written stays valid)."""
        for res in (self.writer, self.timing, self.roi_log):
            if res is not None:
                res.close()
        self.outlet = self.writer = self.timing = self.roi_outlet = self.roi_log = None


class RoiLog:
    """The ROI time series as a TSV: ``volume``, ``window_end`` and one column per region.

    A row is flushed after every volume, so the file is complete up to the last volume.
    """

    def __init__(self, path, names: list[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", newline="", encoding="utf-8")
        except OSError as err:
            raise OSError(
                f"cannot write the ROI time series '{self.path}': {err.strerror}."
            ) from None
        self._fh.write("\t".join(["volume", "window_end", *names]) + "\n")
        self._fh.flush()

    def write(self, index: int, t_end: float, means: np.ndarray) -> None:
        """One row."""
        values = "\t".join(f"{float(v):.6g}" for v in means)
        self._fh.write(f"{index}\t{t_end:.6f}\t{values}\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()


def output_files(nifti=None, timing=None, *, roi: bool = False) -> list[Path]:
    """Every file a stream writes for ``nifti`` (its sidecar and ROI table) and ``timing``."""
    out = []
    if nifti is not None:
        nifti = Path(nifti)
        stem = nifti.name[: -len(".nii.gz")] if nifti.name.endswith(".nii.gz") else nifti.stem
        out += [nifti, nifti.with_name(stem + ".json")]
        if roi:
            from .roi import roi_path

            out.append(roi_path(nifti))
    if timing is not None:
        out.append(Path(timing))
    return out


def check_new_outputs(paths, *, overwrite: bool = False) -> None:
    """Refuse to replace earlier outputs: ``FileExistsError`` naming those that exist.

    Called before connecting, so a refused run touches nothing; ``overwrite`` allows it.
    """
    if overwrite:
        return
    taken = [str(p) for p in paths if Path(p).exists()]
    if taken:
        raise FileExistsError(
            f"output file(s) already exist: {taken}; nothing was written. Choose other names, "
            "or pass overwrite=True to replace them."
        )


#: The ``desc`` entity of the stream's BIDS outputs.
DERIVATIVE_DESC = "eeg2fmri"


def derivative_paths(
    root, *, subject: str, task: str, run: str | None = None, session: str | None = None
) -> tuple[Path, Path]:
    """The NIfTI series and timing log of a stream in the BIDS derivative folder ``root``.

    ``sub-S/[ses-X/]func/sub-S_[ses-X_]task-T[_run-R]_desc-eeg2fmri_bold.nii.gz`` and
    ``..._desc-eeg2fmri_timing.tsv`` (the timing log and the ROI time series,
    ``..._desc-eeg2fmri_roi.tsv``, are not BIDS files: ``.bidsignore`` lists them).
    """
    from .._checks import check_bids_label

    labels = {"subject": subject, "task": task, "run": run, "session": session}
    for name, value in labels.items():
        if value is not None:
            check_bids_label(value, name)
    folder = Path(root) / f"sub-{subject}"
    stem = f"sub-{subject}"
    if session:
        folder, stem = folder / f"ses-{session}", f"{stem}_ses-{session}"
    stem += f"_task-{task}" + (f"_run-{run}" if run else "") + f"_desc-{DERIVATIVE_DESC}"
    folder = folder / "func"
    return folder / f"{stem}_bold.nii.gz", folder / f"{stem}_timing.tsv"


def write_derivative_description(root) -> None:
    """``dataset_description.json`` and ``.bidsignore`` of a stream's BIDS derivative folder.

    An existing description is kept (several streams write into one folder).
    """
    import rt_eeg2fmri

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    desc = root / "dataset_description.json"
    if not desc.is_file():
        doc = {
            "Name": "rt-eeg2fmri: fMRI synthesized from EEG",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": "rt-eeg2fmri",
                    "Version": rt_eeg2fmri.__version__,
                    "Description": "rt-eeg2fmri stream: one volume per TR from live EEG",
                }
            ],
        }
        desc.write_text(json.dumps(doc, indent=2) + "\n")
    ignore = root / ".bidsignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    ours = [f"*_desc-{DERIVATIVE_DESC}_{kind}.tsv" for kind in ("timing", "roi")]
    if any(line not in lines for line in ours):
        ignore.write_text("\n".join([*lines, *(x for x in ours if x not in lines)]) + "\n")
