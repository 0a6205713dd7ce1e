"""The self-describing LSL volume stream: one fMRI volume per sample.

Used for measured volumes (``content="truth"``, from ``rt-eeg2fmri replay``) and
predicted ones (``content="prediction"``, from the real-time engine). Any LSL client can
rebuild the volumes from the stream alone:

- type ``"fMRI"``, ``cf_float32``, nominal rate ``1 / t_r``;
- one sample per volume, ``channel_count = prod(grid_shape)``: the full grid flattened in
  C order (x slowest, z fastest), percent signal change, 0 outside the mask;
- the sample's timestamp is the **end of the volume's acquisition** (volume onset +
  ``t_r``) on the sender's LSL clock: the moment the EEG window paired with it ends;
- ``desc``::

      <grid><shape>53 63 52</shape><affine>16 numbers, row-major</affine>
            <order>C</order><units>percent signal change</units></grid>
      <t_r>2.0</t_r> <content>truth</content> <model>conv</model>
      <mask><encoding>rle</encoding><order>C</order><n_voxels>69637</n_voxels>
            <runs>start length start length ...</runs></mask>

  The mask is run-length encoded over the flattened grid (start index and length of each
  run of in-mask voxels); ``<encoding>none</encoding>`` means every voxel is in the mask.
- optionally, channels after the voxels that each carry one number per volume, named in
  ``desc``: ``<flags><flag>Clean</flag></flags>`` (a prediction stream of EEG recorded in
  the scanner: 1 when every sample of the volume's window was flagged clean by the live
  artifact corrections, else 0); ``channel_count`` is then ``prod(grid_shape)`` plus
  their number.

A reader::

    inlet = pylsl.StreamInlet(info)               # resolve_* infos lack desc:
    meta = parse_volume_stream_info(inlet.info()) # read it from the inlet
    buf = np.empty((1, meta.n_channels), np.float32)
    inlet.pull_chunk(timeout=5.0, max_samples=1, dest_obj=buf, min_samples=1)
    volume = meta.to_volume(buf[0])               # (53, 63, 52)
    meta.flag(buf[0], "Clean")                    # 1.0 / 0.0, None without that flag
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_option, check_positive

STREAM_TYPE = "fMRI"
CONTENTS = ("truth", "prediction")
UNITS = "percent signal change"
#: The channel of a prediction of EEG corrected in the scanner (the volume stream's flag, the
#: ROI stream's and the published EEG's last channel): 1 where the corrections flagged the
#: window (or the samples) clean, else 0.
CLEAN = "Clean"


@dataclass(frozen=True, eq=False)
class VolumeStreamMeta:
    """What a reader needs to rebuild volumes from a volume stream's samples.

    Attributes
    ----------
    grid_shape : tuple of int
        ``(n_x, n_y, n_z)``.
    affine : array of shape (4, 4)
        Voxel → world (mm) transform.
    t_r : float
        Repetition time in seconds.
    content : str
        ``"truth"`` (measured) or ``"prediction"``.
    model : str | None
        Name of the model that predicted the volumes (``None`` for truth).
    order : str
        Flattening order of the grid (``"C"``).
    units : str
        ``"percent signal change"``.
    mask : array of shape grid_shape, dtype bool | None
        Voxels that carry data; ``None`` when the stream declares no mask.
    flags : tuple of str
        Names of the channels after the voxels (e.g. ``("Clean",)``), one number each.
    """

    grid_shape: tuple[int, int, int]
    affine: np.ndarray = field(repr=False)
    t_r: float
    content: str
    model: str | None = None
    order: str = "C"
    units: str = UNITS
    mask: np.ndarray | None = field(default=None, repr=False)
    flags: tuple[str, ...] = ()

    @property
    def n_voxels(self) -> int:
        """Number of voxel values per sample, ``prod(grid_shape)``."""
        return int(np.prod(self.grid_shape))

    @property
    def n_channels(self) -> int:
        """Number of values per sample: the voxels, then the flags."""
        return self.n_voxels + len(self.flags)

    def voxels(self, sample) -> np.ndarray:
        """The voxel values of a sample (its flags left off), flat, float32."""
        sample = np.asarray(sample, dtype=np.float32).reshape(-1)
        if sample.size not in (self.n_voxels, self.n_channels):
            what = f" + {len(self.flags)} flags" if self.flags else ""
            raise ValueError(
                f"A sample of a {self.grid_shape} volume stream has {self.n_voxels}{what} "
                f"values, got {sample.size}."
            )
        return sample[: self.n_voxels]

    def flag(self, sample, name: str) -> float | None:
        """The value of flag ``name`` in a whole sample; ``None`` if the stream has none."""
        if name not in self.flags:
            return None
        sample = np.asarray(sample).reshape(-1)
        if sample.size != self.n_channels:
            raise ValueError(
                f"A sample of this volume stream has {self.n_channels} values (with its "
                f"flags), got {sample.size}."
            )
        return float(sample[self.n_voxels + self.flags.index(name)])

    def to_volume(self, sample) -> np.ndarray:
        """Reshape one sample to a volume.

        Parameters
        ----------
        sample : array of shape (n_voxels,) or (n_channels,)
            With or without the flags after the voxels.

        Returns
        -------
        volume : array of shape grid_shape, float32 (a view when possible)
        """
        return self.voxels(sample).reshape(self.grid_shape, order=self.order)

    def to_sample(self, volume) -> np.ndarray:
        """Flatten a volume to one sample, the inverse of :meth:`to_volume`.

        Parameters
        ----------
        volume : array of shape grid_shape

        Returns
        -------
        sample : array of shape (n_voxels,), float32, C-contiguous
        """
        volume = np.asarray(volume, dtype=np.float32)
        if volume.shape != tuple(self.grid_shape):
            raise ValueError(
                f"Expected a volume of shape {self.grid_shape}, got shape {volume.shape}."
            )
        return np.ascontiguousarray(volume.ravel(order=self.order))


def volume_stream_info(
    name: str,
    *,
    content: str,
    grid_shape,
    affine,
    t_r: float,
    source_id: str,
    model: str | None = None,
    mask=None,
    flags=(),
):
    """Describe a volume stream.

    Parameters
    ----------
    name : str
        Stream name.
    content : ``"truth"`` | ``"prediction"``
    grid_shape : tuple of int
        ``(n_x, n_y, n_z)``.
    affine : array of shape (4, 4)
        Voxel → world (mm) transform.
    t_r : float
        Repetition time in seconds (the nominal rate is ``1 / t_r``).
    source_id : str
        Stable source id, so that inlets recover after the sender restarts.
    model : str | None
        Model name (predictions).
    mask : array of shape grid_shape | None
        Voxels that carry data (run-length encoded into the description).
    flags : sequence of str
        Channels after the voxels, one number per volume each (e.g. ``["Clean"]``).

    Returns
    -------
    info : pylsl.StreamInfo
    """
    import pylsl

    check_option(content, "content", CONTENTS)
    t_r = check_positive(t_r, "t_r")
    grid_shape = tuple(int(n) for n in grid_shape)
    if len(grid_shape) != 3 or min(grid_shape) < 1:
        raise ValueError(f"'grid_shape' must be 3 positive integers, got {grid_shape}.")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"'affine' must be 4 × 4, got shape {affine.shape}.")
    flags = [str(f) for f in flags]
    if len(set(flags)) != len(flags) or not all(f.strip() for f in flags):
        raise ValueError(f"'flags' must be distinct, non-empty names, got {flags}.")
    n = int(np.prod(grid_shape)) + len(flags)
    info = pylsl.StreamInfo(name, STREAM_TYPE, n, 1.0 / t_r, pylsl.cf_float32, source_id)
    desc = info.desc()
    grid = desc.append_child("grid")
    grid.append_child_value("shape", " ".join(map(str, grid_shape)))
    grid.append_child_value("affine", " ".join(repr(float(v)) for v in affine.ravel()))
    grid.append_child_value("order", "C")
    grid.append_child_value("units", UNITS)
    desc.append_child_value("t_r", repr(t_r))
    desc.append_child_value("content", content)
    if model:
        desc.append_child_value("model", str(model))
    node = desc.append_child("mask")
    if mask is None:
        node.append_child_value("encoding", "none")
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != grid_shape:
            raise ValueError(f"'mask' shape {mask.shape} differs from 'grid_shape' {grid_shape}.")
        node.append_child_value("encoding", "rle")
        node.append_child_value("order", "C")
        node.append_child_value("n_voxels", str(int(mask.sum())))
        node.append_child_value("runs", " ".join(map(str, encode_mask(mask))))
    if flags:
        node = desc.append_child("flags")
        for f in flags:
            node.append_child_value("flag", f)
    return info


def parse_volume_stream_info(info) -> VolumeStreamMeta:
    """Read a volume stream's description.

    Parameters
    ----------
    info : pylsl.StreamInfo | mne_lsl.lsl.StreamInfo | str
        The stream's full info (from ``StreamInlet.info()``: infos returned by
        ``resolve_*`` carry no description) or its XML.

    Returns
    -------
    meta : VolumeStreamMeta
    """
    xml = info if isinstance(info, str) else _as_xml(info)
    root = ET.fromstring(xml)
    name = root.findtext("name", default="?")
    where = f"LSL stream '{name}'"
    stype = root.findtext("type", default="")
    if stype != STREAM_TYPE:
        raise ValueError(f"{where}: expected type {STREAM_TYPE!r}, got {stype!r}.")
    desc = root.find("desc")
    grid = None if desc is None else desc.find("grid")
    if grid is None:
        raise ValueError(
            f"{where}: no desc/grid in the stream info (infos from resolve_streams carry no "
            "description: pass StreamInlet(info).info())."
        )
    try:
        grid_shape = tuple(int(v) for v in grid.findtext("shape", "").split())
        affine = np.array([float(v) for v in grid.findtext("affine", "").split()])
        t_r = float(desc.findtext("t_r", ""))
    except ValueError as err:
        raise ValueError(f"{where}: malformed desc/grid or desc/t_r ({err}).") from None
    if len(grid_shape) != 3 or affine.size != 16:
        raise ValueError(
            f"{where}: desc/grid/shape must hold 3 integers and desc/grid/affine 16 numbers, "
            f"got {len(grid_shape)} and {affine.size}."
        )
    flags = () if desc.find("flags") is None else tuple(
        (f.text or "").strip() for f in desc.find("flags").findall("flag")
    )  # fmt: skip
    n_chans = int(root.findtext("channel_count", default="0"))
    if n_chans != int(np.prod(grid_shape)) + len(flags):
        what = f" and {len(flags)} flags ({', '.join(flags)})" if flags else ""
        raise ValueError(
            f"{where}: {n_chans} channels for a {grid_shape} grid "
            f"({int(np.prod(grid_shape))} voxels{what})."
        )
    order = grid.findtext("order", default="C")
    check_option(order, "desc/grid/order", ("C", "F"))
    return VolumeStreamMeta(
        grid_shape=grid_shape,
        affine=affine.reshape(4, 4),
        t_r=t_r,
        content=desc.findtext("content", default="prediction"),
        model=desc.findtext("model") or None,
        order=order,
        units=grid.findtext("units", default=UNITS),
        mask=_parse_mask(desc.find("mask"), grid_shape, where=where),
        flags=flags,
    )


def encode_mask(mask) -> np.ndarray:
    """Run-length encode a mask over its C-order flattening.

    Parameters
    ----------
    mask : array of bool, any shape

    Returns
    -------
    runs : array of shape (2 * n_runs,), int64
        ``start, length`` of each run of ``True``.
    """
    flat = np.asarray(mask, dtype=bool).ravel()
    edges = np.flatnonzero(np.diff(np.r_[0, flat.view(np.int8), 0]))
    starts, stops = edges[::2], edges[1::2]
    return np.column_stack([starts, stops - starts]).ravel().astype(np.int64)


def decode_mask(runs, grid_shape) -> np.ndarray:
    """Inverse of :func:`encode_mask`: runs → bool array of shape ``grid_shape``."""
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    n = int(np.prod(grid_shape))
    if runs.size and (runs.min() < 0 or (runs[:, 0] + runs[:, 1]).max() > n):
        raise ValueError(f"mask runs exceed the {n} voxels of a {tuple(grid_shape)} grid.")
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, runs[:, 0], 1)
    np.add.at(edges, runs[:, 0] + runs[:, 1], -1)
    return (np.cumsum(edges[:-1]) > 0).reshape(grid_shape)


def _parse_mask(node, grid_shape, *, where: str) -> np.ndarray | None:
    if node is None:
        return None
    encoding = node.findtext("encoding", default="none")
    if encoding == "none":
        return None
    if encoding != "rle":
        raise ValueError(f"{where}: desc/mask/encoding must be 'rle' or 'none', got {encoding!r}.")
    try:
        runs = [int(v) for v in node.findtext("runs", default="").split()]
    except ValueError as err:
        raise ValueError(f"{where}: malformed desc/mask/runs ({err}).") from None
    if len(runs) % 2:
        raise ValueError(f"{where}: desc/mask/runs must hold start/length pairs, got {len(runs)}.")
    mask = decode_mask(runs, grid_shape)
    n_voxels = node.findtext("n_voxels")
    if n_voxels is not None and int(n_voxels) != int(mask.sum()):
        raise ValueError(
            f"{where}: desc/mask declares {n_voxels} voxels but its runs cover {int(mask.sum())}."
        )
    return mask


def _as_xml(info) -> str:
    xml = getattr(info, "as_xml", None)
    if xml is None:
        raise TypeError(
            f"'info' must be a pylsl or mne_lsl StreamInfo or an XML string, got {type(info)}."
        )
    return xml() if callable(xml) else xml
