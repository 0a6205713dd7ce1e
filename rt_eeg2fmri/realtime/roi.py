"""Regions of interest for neurofeedback: the mean predicted signal of each region, every TR.

:class:`Regions` reads an atlas (a label image, or one mask) and an optional look-up table
of names, puts it on the model's grid (nilearn's nearest-neighbour resampling when the
grids differ) and keeps each region's voxels inside the model's mask; :meth:`Regions.means`
then averages a predicted volume over them. The stream publishes the means on their own
LSL stream (one labelled channel per region, nominal rate 1/TR) and writes them as a TSV
beside the NIfTI series.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .._checks import check_file
from .._logging import logger
from ..volume_stream import CLEAN


def read_lut(path) -> dict[int, str]:
    """Region names of a look-up table, by label.

    A TSV with ``index`` and ``name`` columns (BIDS ``dseg.tsv``), or FreeSurfer-style
    lines ``index name ...`` (whitespace-separated, ``#`` comments).
    """
    path = check_file(path, "ROI look-up table")
    text = path.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"ROI look-up table '{path}' is empty.")
    out: dict[int, str] = {}
    head = lines[0].split("\t")
    if "index" in head and "name" in head:
        rows = csv.DictReader(lines, delimiter="\t")
        for i, row in enumerate(rows, start=2):
            out[_index(row["index"], path, i)] = row["name"].strip()
    else:
        for i, ln in enumerate(lines, start=1):
            parts = ln.split()
            if len(parts) < 2:
                raise ValueError(
                    f"ROI look-up table '{path}', line {i}: expected 'index name', got {ln!r}."
                )
            out[_index(parts[0], path, i)] = parts[1]
    return out


def _index(value: str, path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"ROI look-up table '{path}', line {line}: index {value!r} is not an integer."
        ) from None


class Regions:
    """The regions of an atlas on a model's grid.

    Parameters
    ----------
    atlas : path-like
        A 3-D NIfTI label image (integer labels, 0 = background) or one binary mask.
    grid_shape : tuple of int
    affine : array of shape (4, 4)
        The model's grid.
    mask : array of shape grid_shape, bool
        The model's voxels (predictions are 0 elsewhere).
    labels : path-like | None
        Look-up table of region names (:func:`read_lut`); default ``roi-<label>``, or the
        atlas file's name for a single mask.

    Attributes
    ----------
    names : list of str
    n_voxels : array of shape (n_regions,), int
        In-mask voxels of each region.
    """

    def __init__(self, atlas, *, grid_shape, affine, mask, labels=None) -> None:
        import nibabel as nib

        path = check_file(atlas, "ROI atlas")
        try:
            img = nib.load(path)
        except Exception as err:  # nibabel raises many types for unreadable files
            raise ValueError(f"cannot read the ROI atlas '{path}': {err}") from None
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine)
        if len(img.shape) != 3:
            raise ValueError(
                f"ROI atlas '{path}': expected a 3-D label image, got shape {img.shape}."
            )
        grid_shape = tuple(int(s) for s in grid_shape)
        affine = np.asarray(affine, float)
        from ..grid import same_grid

        if not same_grid(img.shape, img.affine, grid_shape, affine):
            from nilearn.image import resample_img

            logger.info("ROI atlas '%s' resampled to the model's grid (nearest neighbour).", path)
            img = resample_img(
                img,
                target_affine=affine,
                target_shape=grid_shape,
                interpolation="nearest",
                force_resample=True,
                copy_header=True,
            )
        data = np.asarray(img.dataobj)
        if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)):
            raise ValueError(f"ROI atlas '{path}': labels must be integers (a label image).")
        data = np.round(data).astype(np.int64)
        present = sorted(int(v) for v in np.unique(data) if v != 0)
        if not present:
            raise ValueError(f"ROI atlas '{path}' holds no region (every voxel is 0).")
        lut = read_lut(labels) if labels is not None else {}
        if lut:
            missing = [v for v in present if v not in lut]
            if missing:
                raise ValueError(
                    f"ROI look-up table '{labels}' has no name for label(s) {missing} of '{path}'."
                )
        if len(present) == 1 and not lut:
            names = [path.name.split(".")[0]]
        else:
            names = [lut.get(v, f"roi-{v}") for v in present]
        mask = np.asarray(mask, bool)
        inside = np.where(mask, data, 0).ravel()
        self.flat = np.flatnonzero(inside)  # grid voxels in a region and in the mask
        codes = {v: i for i, v in enumerate(present)}
        self._region = np.array([codes[v] for v in inside[self.flat]], dtype=np.int64)
        self.n_voxels = np.bincount(self._region, minlength=len(present))
        empty = [names[i] for i in np.flatnonzero(self.n_voxels == 0)]
        if empty:
            raise ValueError(
                f"ROI atlas '{path}': region(s) {empty} have no voxel inside the model's mask."
            )
        self.names = names
        self.labels = present
        self.path = path
        self.labels_path = None if labels is None else Path(labels)

    @property
    def n_regions(self) -> int:
        """Number of regions."""
        return len(self.names)

    def flat_indices(self, i: int) -> np.ndarray:
        """Flat (C-order) grid indices of region ``i``'s voxels inside the mask."""
        return self.flat[self._region == int(i)]

    def means(self, volume: np.ndarray) -> np.ndarray:
        """Mean of ``volume`` (shape grid_shape) over each region, shape (n_regions,), float32."""
        values = np.asarray(volume, np.float64).ravel()[self.flat]
        sums = np.bincount(self._region, weights=values, minlength=self.n_regions)
        return (sums / self.n_voxels).astype(np.float32)

    def describe(self) -> str:
        """One line: regions and their voxel counts."""
        parts = [f"{n} ({k} vox)" for n, k in zip(self.names, self.n_voxels, strict=True)]
        return f"{self.n_regions} ROI(s) from '{self.path}': " + ", ".join(parts)


def roi_stream_info(
    name: str, regions: Regions, *, t_r: float, source_id: str, units: str, clean: bool = False
):
    """``pylsl.StreamInfo`` of the ROI stream: one labelled channel per region, rate 1/TR.

    ``clean``: a last channel ``Clean`` (type MISC, unit boolean), 1 when the volume's EEG
    window was flagged clean by the live corrections, else 0.
    """
    import pylsl

    n_chans = regions.n_regions + bool(clean)
    info = pylsl.StreamInfo(name, "ROI", n_chans, 1.0 / t_r, pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for region, n in zip(regions.names, regions.n_voxels, strict=True):
        ch = chans.append_child("channel")
        ch.append_child_value("label", region)
        ch.append_child_value("unit", units)
        ch.append_child_value("type", "ROI")
        ch.append_child_value("voxels", str(int(n)))
    if clean:
        ch = chans.append_child("channel")
        for key, value in (("label", CLEAN), ("unit", "boolean"), ("type", "MISC")):
            ch.append_child_value(key, value)
    info.desc().append_child_value("atlas", str(regions.path))
    return info


def roi_path(nifti) -> Path:
    """The ROI time series written beside the NIfTI series ``nifti`` (``*_roi.tsv``)."""
    nifti = Path(nifti)
    stem = nifti.name[: -len(".nii.gz")] if nifti.name.endswith(".nii.gz") else nifti.stem
    if stem.endswith("_bold"):
        stem = stem[: -len("_bold")]
    return nifti.with_name(f"{stem}_roi.tsv")
