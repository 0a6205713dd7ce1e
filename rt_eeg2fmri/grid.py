"""The output grid: SPM's default bounding box at 3 mm, with MNI152 mask and T1 underlay.

The bounding box is x −78…78, y −112…76, z −70…85 mm, which at 3 mm gives
53 × 63 × 52 voxels. Mask and underlay are resampled from the MNI152 templates that
nilearn ships inside its package (no download) and cached on disk.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ._io import atomic_path
from ._logging import logger

GRID_SHAPE: tuple[int, int, int] = (53, 63, 52)
GRID_AFFINE: np.ndarray = np.array(
    [[3.0, 0.0, 0.0, -78.0], [0.0, 3.0, 0.0, -112.0], [0.0, 0.0, 3.0, -70.0], [0.0, 0.0, 0.0, 1.0]]
)
GRID_AFFINE.setflags(write=False)


def cache_dir() -> Path:
    """Return the package's cache folder (``$RT_EEG2FMRI_CACHE`` or ``~/.cache/rt-eeg2fmri``)."""
    root = os.environ.get("RT_EEG2FMRI_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "rt-eeg2fmri"
    path.mkdir(parents=True, exist_ok=True)
    return path


def same_grid(shape_a, affine_a, shape_b, affine_b, *, atol: float = 1e-3) -> bool:
    """Return True when two grids have the same 3-D shape and (nearly) the same affine."""
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(
        np.asarray(affine_a), np.asarray(affine_b), atol=atol
    )


def _resample_template(kind: str) -> np.ndarray:
    from nilearn import datasets, image

    if kind == "mask":
        img = datasets.load_mni152_brain_mask(resolution=2)
        interp = "nearest"
    else:
        img = datasets.load_mni152_template(resolution=2)
        interp = "continuous"
    out = image.resample_img(
        img,
        target_affine=np.asarray(GRID_AFFINE),
        target_shape=GRID_SHAPE,
        interpolation=interp,
        force_resample=True,
        copy_header=True,
    )
    return np.asarray(out.get_fdata(), dtype=np.float32)


def _cached(kind: str) -> np.ndarray:
    path = cache_dir() / f"mni152_{kind}_spm3mm.npy"
    if path.is_file():
        try:
            data = np.load(path)
            if data.shape == GRID_SHAPE:
                return data
        except (OSError, ValueError):
            logger.warning("Ignoring unreadable cache file '%s'.", path)
    data = _resample_template(kind)
    with atomic_path(path) as tmp:
        np.save(tmp, data)
    return data


@functools.cache
def mni_mask() -> np.ndarray:
    """Brain mask on the grid.

    Returns
    -------
    mask : array of shape (53, 63, 52), dtype bool
    """
    mask = _cached("mask") > 0.5
    mask.setflags(write=False)
    return mask


@functools.cache
def mni_t1() -> np.ndarray:
    """MNI152 T1 underlay on the grid.

    Returns
    -------
    t1 : array of shape (53, 63, 52), dtype float32
    """
    t1 = _cached("t1")
    t1.setflags(write=False)
    return t1


def voxel_to_mm(ijk, affine=GRID_AFFINE) -> np.ndarray:
    """Voxel indices → world (mm) coordinates; ``ijk`` of shape (..., 3)."""
    ijk = np.asarray(ijk, dtype=float)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def mm_to_voxel(xyz, affine=GRID_AFFINE) -> np.ndarray:
    """World (mm) coordinates → fractional voxel indices; ``xyz`` of shape (..., 3)."""
    inv = np.linalg.inv(np.asarray(affine))
    xyz = np.asarray(xyz, dtype=float)
    return xyz @ inv[:3, :3].T + inv[:3, 3]
