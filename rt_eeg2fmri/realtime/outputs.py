"""File outputs of the stream: a NIfTI series valid after every volume, and the per-TR timing log.

The NIfTI writer appends one volume at a time. For ``.nii`` it appends the voxels and
rewrites the header's volume count; for ``.nii.gz`` the file is a multi-member gzip: a
first member holding the 1024-byte header block *stored* (compression level 0, so its length
never changes and it can be rewritten in place) followed by one compressed member per
volume. Every gzip reader (nibabel, FSL, AFNI, Python's ``gzip``) reads it as one stream.
The header is updated only after a volume's bytes are flushed, so a crash or Ctrl-C loses
at most the volume in flight.

Every file is appended through :class:`_AppendOnly`: unbuffered writes whose failure (a
full disk, a file-size limit) cuts the file back to the end of the last whole volume or
row, so what is on disk stays readable, and raises an ``OSError`` naming the file. The
:class:`Outputs` then drop that output, log and count it, and go on with the others.
:func:`lock_outputs` keeps a second process from writing the same files.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import queue
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from .._io import write_text_atomic
from .._logging import logger

# 348-byte NIfTI-1 header + 4-byte extension flag (0: none), padded to 1024 bytes, so the
# stored gzip member that holds it is longer than 1 KiB: tools that decompress a .nii.gz
# header from the file's first 1024 bytes with a single-member decoder (the BIDS
# validator) then never meet the start of the next member, which they reject as junk.
_VOX_OFFSET = 1024


class _AppendOnly:
    """A file written by whole records: a failed record is cut off again, never left half.

    Unbuffered (nothing waits in a buffer to be written half at close); ``end`` is the
    size up to the last whole record.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as err:
            raise OSError(err.errno, f"cannot write the {what} '{path}': {err.strerror}") from None
        self.end = 0

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end, all of it or none of it."""
        try:
            view, pos = memoryview(data), self.end
            while view:
                n = os.pwrite(self.fd, view, pos)
                view, pos = view[n:], pos + n
        except OSError as err:
            self.cut()
            raise OSError(err.errno, f"writing the {self.what} '{self.path}' failed: "
                          f"{err.strerror}; it keeps what was written before") from None  # fmt: skip
        self.end = pos

    def sync(self) -> None:
        """Flush the file to the disk (``fsync``)."""
        try:
            os.fsync(self.fd)
        except OSError as err:
            raise OSError(err.errno, f"syncing the {self.what} '{self.path}' failed: "
                          f"{err.strerror}") from None  # fmt: skip

    def overwrite(self, data: bytes, offset: int) -> None:
        """Rewrite bytes already in the file (the same length: the file does not grow)."""
        try:
            os.pwrite(self.fd, data, offset)
        except OSError as err:
            raise OSError(err.errno, f"updating the {self.what} '{self.path}' failed: "
                          f"{err.strerror}") from None  # fmt: skip

    def cut(self) -> None:
        """Cut the file back to its last whole record (frees what a failed one took)."""
        try:
            os.ftruncate(self.fd, self.end)
        except OSError:
            pass

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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
    ``PlaceholderVolumes`` lists the 4-D indices of volumes that were due but not
    computed (zeros), so that a skipped volume never shifts the later ones.

    The header counts every appended volume at once. The data are flushed to the disk
    (``fsync``) and the sidecar rewritten together, at most every ``sync_every`` seconds —
    after every volume when the TR is longer — and on closing: a replay at 100× does not
    pay fifty syncs and sidecar rewrites a second (the sidecar grows with the run), and a
    power cut loses at most that last second.
    """

    sync_every = 1.0
    clock = staticmethod(time.monotonic)

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
        self.times: list[float] = []  # one per volume in the file
        self.placeholders: list[int] = []
        self._synced = (-np.inf, 0)  # (monotonic time, n_volumes) of the last sync
        self._fh = _AppendOnly(self.path, "NIfTI output")
        try:
            self._fh.append(self._header_member(0))
            self._write_sidecar()
        except OSError:
            self._fh.close()
            raise

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

    def append(
        self, volume: np.ndarray, *, time: float | None = None, placeholder: bool = False
    ) -> None:
        """Append one volume of shape ``grid_shape`` (written as float32, C → Fortran order).

        ``placeholder``: a volume that was due but not computed (listed in the sidecar).
        """
        self.append_many([(volume, time, placeholder)])

    def append_many(self, items) -> None:
        """Append ``(volume, time, placeholder)`` items as one record: one write, one sync.

        The header and the sidecar are updated once, after the data: the file is whole,
        and agrees with its sidecar, after the batch, or (on an error) as it was before it.
        """
        chunks = []
        for volume, _, _ in items:
            vol = np.asarray(volume, dtype=np.float32)
            if vol.shape != self.grid_shape:
                raise ValueError(
                    f"volume shape {vol.shape} differs from the series grid {self.grid_shape}."
                )
            data = np.asfortranarray(vol).tobytes(order="F")
            chunks.append(gzip.compress(data, compresslevel=1, mtime=0) if self.gz else data)
        if self._fh.closed:
            raise OSError(f"the NIfTI output '{self.path}' is closed.")
        before = (self._fh.end, self.n_volumes, len(self.placeholders))
        try:
            self._fh.append(b"".join(chunks))
            for _, when, placeholder in items:
                if when is None or not np.isfinite(when):  # unknown: one TR after the last
                    when = (self.times[-1] if self.times else 0.0) + self.t_r
                self.times.append(float(when))
                if placeholder:
                    self.placeholders.append(len(self.times) - 1)
            self._fh.overwrite(self._header_member(self.n_volumes), 0)
            if self.clock() - self._synced[0] >= self.sync_every:
                self._sync()
        except OSError:  # back to the last whole volume: header, data and sidecar agree
            end, n_volumes, n_placeholders = before
            del self.times[n_volumes:], self.placeholders[n_placeholders:]
            self._rollback(end)
            raise

    @property
    def n_volumes(self) -> int:
        """Volumes in the file."""
        return len(self.times)

    def _sync(self) -> None:
        """Flush the data, then describe them in the sidecar."""
        self._fh.sync()
        self._write_sidecar()
        self._synced = (self.clock(), self.n_volumes)

    def _rollback(self, end: int) -> None:
        """Cut the data back to byte ``end``, the header and sidecar back to ``n_volumes``."""
        self._fh.end = end
        self._fh.cut()
        try:
            self._fh.overwrite(self._header_member(self.n_volumes), 0)
            if self._synced[1] != self.n_volumes:
                self._sync()
        except OSError:
            pass

    def _write_sidecar(self) -> None:
        origin = self.times[0] - self.t_r if self.times else None
        doc = {
            **self.sidecar,
            "NumberOfVolumes": self.n_volumes,
            "VolumeTiming": [round(t - self.t_r - origin, 6) for t in self.times],
            "VolumeTimingOriginLSL": origin,
        }
        if self.placeholders:
            doc["PlaceholderVolumes"] = list(self.placeholders)
        try:
            write_text_atomic(self.sidecar_path, json.dumps(doc, indent=2))
        except OSError as err:
            raise OSError(err.errno, f"writing the sidecar '{self.sidecar_path}' failed: "
                          f"{err.strerror}; it keeps the last whole volume's") from None  # fmt: skip

    def close(self) -> None:
        """Close the file; everything appended is already on disk.

        A series that never got a volume (stopped during warm-up or calibration) is removed
        with its sidecar: NIfTI has no valid empty 4-D file.
        """
        if self._fh.closed:
            return
        try:
            if self._synced[1] != self.n_volumes:
                self._sync()
        finally:
            self._fh.close()
        if self.n_volumes == 0:
            self.path.unlink(missing_ok=True)
            self.sidecar_path.unlink(missing_ok=True)
            logger.warning("No volume was written: '%s' is not kept.", self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


TIMING_COLUMNS = (
    "volume",
    "window_end",
    "window_arrived",
    "data_ready",
    "inference_start",
    "inference_end",
    "publish",
    "latency_ms",
    "late",
    "skipped",
    "gap",
    "clock_jump",
    "adapt",
    "uncorrected",
    "no_pulse",
)


class _TsvFile:
    """A TSV file written row by row; a row is on disk whole or not at all."""

    what = "table"

    def __init__(self, path, columns) -> None:
        self.path = Path(path)
        self._fh = _AppendOnly(self.path, self.what)
        self._line(columns)

    def _line(self, values) -> None:
        try:
            self._fh.append(("\t".join(values) + "\n").encode("utf-8"))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class TimingLog(_TsvFile):
    """Per-TR timing log as a TSV, one row per scheduled volume, on disk after every row.

    Times are LSL clock seconds; ``window_arrived`` is when the window's last sample was
    pulled; ``latency_ms`` is publish − window end, or publish − window arrived when the
    stream's clock runs ahead of the LSL clock (a replay faster than real time).
    """

    what = "timing log"

    def __init__(self, path) -> None:
        super().__init__(path, TIMING_COLUMNS)

    def write(self, **row) -> None:
        """Write one row; missing columns are left empty, times with µs precision."""
        unknown = set(row) - set(TIMING_COLUMNS)
        if unknown:
            raise ValueError(f"unknown timing column(s) {sorted(unknown)}.")
        self._line([_fmt(row.get(c)) for c in TIMING_COLUMNS])


def _fmt_value(v) -> str:
    return "n/a" if not np.isfinite(v) else f"{float(v):.6g}"


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
    On a write error the file keeps its whole volumes and is closed, ``on_error(err)`` is
    called, and the other outputs go on.
    """

    def __init__(
        self, writer: NiftiSeriesWriter, stats, *, maxsize: int = 32, on_error=None
    ) -> None:
        self.writer, self.stats, self.on_error = writer, stats, on_error
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="NiftiWriter", daemon=True)
        self._thread.start()

    def put(
        self, volume: np.ndarray, t_end: float, index: int, *, placeholder: bool = False
    ) -> None:
        """Queue ``volume`` (not modified afterwards by the caller) for appending."""
        if self._failed:
            return
        try:
            self._queue.put_nowait((volume, t_end, placeholder))
        except queue.Full:
            self.stats.output_errors += 1
            logger.error(
                "NIfTI output is %d volumes behind: volume %d is not written to '%s'.",
                self._queue.maxsize,
                index,
                self.writer.path,
            )

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < self._queue.maxsize:  # a backlog goes in one write and sync
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done, batch = True, batch[: batch.index(None)]
            if self._failed or not batch:
                continue
            t = time.perf_counter()
            try:
                self.writer.append_many(batch)
            except OSError as err:
                self._failed = True
                with contextlib.suppress(OSError):  # the error below says what failed
                    self.writer.close()
                if self.on_error is not None:
                    self.on_error(err)
            ms = (time.perf_counter() - t) * 1e3
            self.stats.write.extend([ms / len(batch)] * len(batch))

    @property
    def failed(self) -> bool:
        """Whether writing failed (the file holds the volumes before the failure)."""
        return self._failed

    def close(self) -> None:
        """Write what is queued, then close the file."""
        self._queue.put(None)
        self._thread.join()
        try:
            self.writer.close()  # the last sync: data to the disk, the sidecar
        except OSError as err:
            if not self._failed:
                self._failed = True
                if self.on_error is not None:
                    self.on_error(err)


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
    clean_flag : bool
        The EEG is corrected live: the volume stream and the ROI stream gain a last channel
        ``Clean`` (1 when every sample of the volume's window was flagged clean, else 0;
        a flag in the volume stream's description) and the ROI table a ``clean`` column,
        so neurofeedback can leave out volumes of uncorrected EEG.
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
        clean_flag: bool = False,
    ) -> None:
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.clean_flag = bool(clean_flag)
        self.bids_root = None if bids_root is None else Path(bids_root)
        self.sources = list(sources or [])
        self.roi = roi
        self.roi_name = roi_name or f"{outlet_name or 'rt-eeg2fmri'}-ROI"
        self.roi_outlet = self.roi_log = None
        self.affine, self.mask = np.asarray(affine), np.asarray(mask)
        self.t_r, self.model, self.checkpoint, self.units = float(t_r), model, checkpoint, units
        self.outlet_name, self.nifti_path, self.timing_path = outlet_name, nifti, timing
        self.outlet = self.writer = self.timing = None
        self.stats = None
        self._stored = False  # a volume went to the files (placeholders follow it)
        self._placeholder = None
        #: One line per output that failed (its error, naming the file).
        self.failed: list[str] = []

    def open(self, stats, *, sidecar: dict | None = None) -> None:
        """Create the outlet and files; ``stats`` (``EngineStats``) counts output errors.

        ``sidecar`` adds fields to the NIfTI's JSON sidecar (e.g. the stream's montage). A
        NIfTI file that cannot be created is an error unless an outlet publishes the
        volumes, in which case it is logged and counted.
        """
        from ..volume_stream import CLEAN, volume_stream_info

        self.stats = stats
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
                flags=[CLEAN] if self.clean_flag else [],
            )
            self.outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)
            if self.clean_flag:  # the volume, then its flag: one sample, filled in place
                self._sample = np.zeros((1, int(np.prod(self.grid_shape)) + 1), np.float32)
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
                clean=self.clean_flag,
            )
            self.roi_outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=60)
            logger.info("%s: publishing on '%s'.", self.roi.describe(), self.roi_name)
            if self.nifti_path:
                self.roi_log = RoiLog(
                    roi_path(self.nifti_path), self.roi.names, clean=self.clean_flag
                )
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
                self._fail(err)
            else:
                self.writer = BackgroundWriter(writer, stats, on_error=self._fail)

    def _fail(self, err: OSError) -> None:
        """An output failed: log and count it; the others go on."""
        self.failed.append(str(err))
        if self.stats is not None:
            self.stats.output_errors += 1
        logger.error("%s. The other outputs go on.", str(err).rstrip("."))

    def stranded(self) -> bool:
        """Whether volumes were to go somewhere and every such output has failed."""
        wanted = bool(self.outlet_name or self.nifti_path or self.roi is not None)
        writing = self.writer is not None and not self.writer.failed
        left = self.outlet is not None or self.roi_outlet is not None or writing
        return wanted and not left and bool(self.failed)

    def publish(self, volume: np.ndarray, t_end: float, *, clean: bool | None = None) -> None:
        """Push ``volume`` on the outlet, stamped with its window end.

        ``clean``: whether its window was flagged clean (with ``clean_flag``).
        """
        if self.outlet is not None:
            # push_chunk hands liblsl the array's buffer; push_sample would box every voxel
            # into a Python float (~25 ms for the MNI grid)
            if self.clean_flag:
                self._sample[0, :-1] = volume.reshape(-1)
                self._sample[0, -1] = float(bool(clean))
                self.outlet.push_chunk(self._sample, t_end)
            else:
                self.outlet.push_chunk(volume.reshape(1, -1), t_end)
        if self.roi is not None:
            self._roi_means = self.roi.means(volume)
            if self.clean_flag:
                self._roi_means = np.append(self._roi_means, float(bool(clean)))
            self.roi_outlet.push_sample(self._roi_means, t_end)

    def store(self, volume: np.ndarray, t_end: float, index: int) -> None:
        """Queue ``volume`` for the NIfTI series."""
        self._stored = True
        if self.writer is not None:
            self.writer.put(volume, t_end, index)
        self._write("roi_log", lambda log: log.write(index, t_end, self._roi_means))

    def skip(self, index: int, t_end: float | None) -> None:
        """A volume due but not computed.

        Once the series has begun, it is a placeholder in the NIfTI series (zeros, listed in
        its sidecar's ``PlaceholderVolumes``) and a row of ``n/a`` in the ROI table, so the
        4-D index stays the TR index.
        """
        if not self._stored:  # before the series begins there is no place to keep
            return
        if self.writer is not None:
            if self._placeholder is None:
                self._placeholder = np.zeros(self.grid_shape, np.float32)
            self.writer.put(self._placeholder, t_end, index, placeholder=True)
        n_cols = len(self.roi.names) + self.clean_flag if self.roi is not None else 0
        self._write("roi_log", lambda log: log.write(index, t_end, np.full(n_cols, np.nan)))

    def log(self, **row) -> None:
        """One row of the timing log."""
        self._write("timing", lambda log: log.write(**row))

    def _write(self, name: str, write) -> None:
        """``write(output)`` on the file output ``name`` (if it is open).

        An output that fails is dropped (logged and counted); the others go on.
        """
        output = getattr(self, name)
        if output is None:
            return
        try:
            write(output)
        except OSError as err:
            setattr(self, name, None)
            self._fail(err)

    def close(self) -> None:
        """Close every output (everything written stays valid)."""
        for res in (self.writer, self.timing, self.roi_log):
            if res is not None:
                res.close()
        self.outlet = self.writer = self.timing = self.roi_outlet = self.roi_log = None


class RoiLog(_TsvFile):
    """The ROI time series as a TSV: ``volume``, ``window_end``, one column per region.

    With ``clean=True`` a last column ``clean`` (1 or 0, as the ROI stream's ``Clean``
    channel). A row is on disk after every volume, so the file is complete up to the last
    volume.
    """

    what = "ROI time series"

    def __init__(self, path, names: list[str], *, clean: bool = False) -> None:
        super().__init__(path, ["volume", "window_end", *names, *(["clean"] if clean else [])])

    def write(self, index: int, t_end: float, means: np.ndarray) -> None:
        """One row."""
        self._line([str(index), _fmt(t_end), *(_fmt_value(v) for v in means)])


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
        write_text_atomic(desc, json.dumps(doc, indent=2) + "\n")
    ignore = root / ".bidsignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    ours = [f"*_desc-{DERIVATIVE_DESC}_{kind}.tsv" for kind in ("timing", "roi")]
    if any(line not in lines for line in ours):
        write_text_atomic(ignore, "\n".join([*lines, *(x for x in ours if x not in lines)]) + "\n")


class OutputLock:
    """An exclusive hold on an output file for this process, so no second writer joins it.

    A lock file ``.NAME.lock`` beside the output, held with ``flock`` (released by the
    system when the process ends, however it ends) and holding the holder's pid, host,
    start time and command line, which a refused writer's error names.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.fd = -1

    def acquire(self) -> OutputLock:
        """Take the lock, or raise ``FileExistsError`` naming the process that holds it."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): nothing to hold
            return self
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # the output cannot be written there either: it says so
            logger.debug("No lock on '%s': %s.", self.path, err)
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise FileExistsError(
                f"output '{self.path}' is being written by another process ({holder}); "
                "nothing was written. Wait for it to finish or choose another name."
            ) from None
        import socket
        import sys

        os.ftruncate(fd, 0)
        command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:300]
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}: {command}"
                  .encode(), 0)  # fmt: skip
        self.fd = fd
        return self

    def release(self) -> None:
        """Let go (the lock file is removed)."""
        if self.fd >= 0:
            self.lock_path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = -1


def lock_outputs(paths) -> list[OutputLock]:
    """Hold every one of ``paths`` for this process (all or none; see :class:`OutputLock`)."""
    held: list[OutputLock] = []
    try:
        for path in paths:
            held.append(OutputLock(path).acquire())
    except BaseException:
        for lock in held:
            lock.release()
        raise
    return held
