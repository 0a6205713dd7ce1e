"""BOLD NIfTI files: header-only grid and TR, data reoriented to the closest canonical (RAS+).

SPM writes its 3 mm normalised files with a flipped x axis (negative x voxel size);
reorienting to RAS+ makes them match ``rt_eeg2fmri.grid.GRID_AFFINE`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_file


@dataclass(frozen=True)
class BoldHeader:
    """What the NIfTI header(s) of one BOLD run say, in RAS+ orientation.

    Attributes
    ----------
    paths : tuple of Path
        One 4-D file, or several 3-D files (one volume each, in time order).
    shape : tuple of int
        Spatial shape after reorientation.
    n_volumes : int
    affine : array of shape (4, 4)
        Voxel → mm after reorientation.
    t_r : float | None
        pixdim[4] in seconds (``None`` when the header leaves it unset, i.e. 0).
    t_r_units : str
        The header's time unit (``"sec"``, ``"msec"``, ``"usec"``, ``"unknown"``): an
        unknown unit makes ``t_r`` a guess in seconds that readers do not trust silently.
    """

    paths: tuple
    shape: tuple
    n_volumes: int
    affine: np.ndarray
    t_r: float | None
    ornt: np.ndarray
    t_r_units: str = "sec"

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def where(self) -> str:
        """The file(s), for messages."""
        first = f"'{self.paths[0]}'"
        return first if len(self.paths) == 1 else f"{first} (+{len(self.paths) - 1} files)"


def _open(path: Path):
    import nibabel as nib

    path = check_file(path, "BOLD file")
    try:
        return nib.load(path)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise ValueError(f"cannot read the BOLD file '{path}': {err}") from err


def _header_t_r(img) -> float | None:
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] or zooms[3] <= 0:
        return None
    unit = img.header.get_xyzt_units()[1]
    scale = {"msec": 1e-3, "usec": 1e-6}.get(unit, 1.0)
    return float(zooms[3]) * scale


def read_bold_header(paths) -> BoldHeader:
    """Read the header(s) of a BOLD run without its data.

    Parameters
    ----------
    paths : path-like | list of path-like
        One 4-D NIfTI file, or several 3-D files stacked in the given order.

    Returns
    -------
    header : BoldHeader
    """
    import nibabel as nib

    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    img = _open(paths[0])
    shape = tuple(int(n) for n in img.shape)
    if len(paths) == 1:
        if len(shape) != 4:
            raise ValueError(
                f"'{paths[0]}': BOLD must be 4-D (x, y, z, volumes), got shape {shape}."
            )
        n_volumes = shape[3]
    else:
        for p in paths[1:]:
            other = _open(p)
            if tuple(other.shape) != shape or not np.allclose(other.affine, img.affine, atol=1e-3):
                raise ValueError(
                    f"'{p}': shape {tuple(other.shape)} / affine differ from '{paths[0]}' "
                    f"(shape {shape}); a BOLD series must share one grid."
                )
        if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
            raise ValueError(
                f"'{paths[0]}': a BOLD series of several files needs one 3-D volume per file, "
                f"got shape {shape}."
            )
        n_volumes = len(paths)
    ornt = nib.io_orientation(img.affine)
    affine = img.affine @ nib.orientations.inv_ornt_aff(ornt, shape[:3])
    new_shape = tuple(shape[int(ax)] for ax in np.argsort(ornt[:, 0]))
    return BoldHeader(
        paths=tuple(paths),
        shape=new_shape,
        n_volumes=n_volumes,
        affine=affine,
        t_r=_header_t_r(img) if len(paths) == 1 else None,
        ornt=ornt,
        t_r_units=str(img.header.get_xyzt_units()[1]),
    )


def read_bold_data(header: BoldHeader, *, start: int = 0, stop: int | None = None) -> np.ndarray:
    """BOLD samples in RAS+ orientation.

    Parameters
    ----------
    header : BoldHeader
    start : int
        First volume to keep (dummy scans before it are dropped).
    stop : int | None
        One past the last volume kept (default: all).

    Returns
    -------
    bold : array of shape (n_x, n_y, n_z, stop - start), float32
    """
    import nibabel as nib

    if len(header.paths) == 1:
        img = _open(header.paths[0])
        data = np.asarray(img.dataobj[..., start:stop], dtype=np.float32)
    else:
        first = header.paths[start:stop]
        data = np.empty((*_open(header.paths[0]).shape[:3], len(first)), dtype=np.float32)
        for i, path in enumerate(first):
            img = _open(path)
            data[..., i] = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    if not np.array_equal(header.ornt, [[0, 1], [1, 1], [2, 1]]):
        data = np.ascontiguousarray(nib.orientations.apply_orientation(data, header.ornt))
    return data
