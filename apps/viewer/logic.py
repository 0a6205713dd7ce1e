"""The viewer's maths, free of Qt: orientation, slicing, colour, crosshair, levels.

Everything the window draws is computed here, so it is unit-tested without a display:

- :class:`SliceGeometry` reorients a grid to RAS voxel order (a view, no copy) and gives
  the three orthogonal slices through a voxel in display order, their extent in mm, the
  L/R/A/P/S/I labels of their edges for the neurological (left on the left) or
  radiological (left on the right) convention, and maps clicks and arrow keys to voxels;
- :class:`OverlayStyle` and :func:`compose_slice` blend a thresholded colour overlay over
  a grey underlay into a preallocated ``uint8`` RGB image with a precomputed LUT.

Display arrays are indexed ``[u, v]``: ``u`` runs left → right across the screen, ``v``
bottom → top (pyqtgraph's column-major images in a y-up view box).

Time-series bookkeeping and status text live in :mod:`apps.viewer.series`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIEWS: tuple[str, ...] = ("sagittal", "coronal", "axial")
# (horizontal axis, vertical axis, slice axis) of each view, in RAS voxel axes
VIEW_AXES: dict[str, tuple[int, int, int]] = {
    "sagittal": (1, 2, 0),
    "coronal": (0, 2, 1),
    "axial": (0, 1, 2),
}
AXIS_NAMES = ("x", "y", "z")
# (label at the low end, label at the high end) of each RAS axis
_AXIS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
KEYS: tuple[str, ...] = ("left", "right", "up", "down", "pageup", "pagedown")

SIGNED_COLORMAPS: tuple[str, ...] = ("cold_hot", "RdBu_r", "coolwarm")
POSITIVE_COLORMAPS: tuple[str, ...] = ("hot", "inferno", "viridis")
COLORMAPS: tuple[str, ...] = SIGNED_COLORMAPS + POSITIVE_COLORMAPS
LUT_SIZE = 256


def _check_view(view: str) -> str:
    if view not in VIEW_AXES:
        raise ValueError(f"'view' must be one of {', '.join(VIEWS)}, got {view!r}.")
    return view


class SliceGeometry:
    """Orthogonal slicing of a grid in RAS order, in mm.

    Parameters
    ----------
    grid_shape : tuple of int
        ``(n_i, n_j, n_k)`` of the volumes as they arrive.
    affine : array of shape (4, 4)
        Their voxel → world (mm) transform. The grid is reoriented to the closest RAS
        axes (flips and transposes only); oblique rotations are not resampled.

    Attributes
    ----------
    shape : tuple of int
        Grid shape in RAS order ``(n_x, n_y, n_z)``.
    affine : array of shape (4, 4)
        Voxel → mm of the RAS-ordered grid.
    """

    def __init__(self, grid_shape, affine) -> None:
        from nibabel.orientations import inv_ornt_aff, io_orientation

        grid_shape = tuple(int(n) for n in grid_shape)
        if len(grid_shape) != 3 or min(grid_shape) < 1:
            raise ValueError(f"'grid_shape' must be 3 positive integers, got {grid_shape}.")
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ValueError(f"'affine' must be a finite 4 × 4 array, got shape {affine.shape}.")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("'affine' is singular: its 3 × 3 part has determinant 0.")
        self.source_shape = grid_shape
        self._ornt = io_orientation(affine)
        self._identity = bool(
            np.array_equal(self._ornt, np.column_stack([np.arange(3), np.ones(3)]))
        )
        self.affine = affine @ inv_ornt_aff(self._ornt, grid_shape)
        order = self._ornt[:, 0].astype(int)
        shape = [0, 0, 0]
        for src, dst in enumerate(order):
            shape[dst] = grid_shape[src]
        self.shape = tuple(shape)
        # voxel centre positions along each RAS axis (mm); spacing may be negative-free now
        self.zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        self.origin = self.affine[:3, 3].copy()

    # -- volumes -------------------------------------------------------------------
    def to_ras(self, volume) -> np.ndarray:
        """Reorient a volume of ``grid_shape`` to RAS order (a view, no copy).

        Parameters
        ----------
        volume : array of shape grid_shape

        Returns
        -------
        volume : array of shape :attr:`shape`
        """
        volume = np.asarray(volume)
        if volume.shape[:3] != self.source_shape:
            raise ValueError(
                f"Expected a volume of shape {self.source_shape}, got shape {volume.shape}."
            )
        if self._identity:
            return volume
        from nibabel.orientations import apply_orientation

        return apply_orientation(volume, self._ornt)

    def slice(self, volume_ras, view: str, ijk) -> np.ndarray:
        """The slice of ``view`` through voxel ``ijk``, indexed ``[u, v]`` (a view).

        Parameters
        ----------
        volume_ras : array of shape :attr:`shape`
        view : ``"sagittal"`` | ``"coronal"`` | ``"axial"``
        ijk : sequence of 3 int
            RAS voxel indices of the crosshair.

        Returns
        -------
        plane : array of shape (n_u, n_v)
        """
        u, v, s = VIEW_AXES[_check_view(view)]
        index = [slice(None)] * 3
        index[s] = int(ijk[s])
        plane = volume_ras[tuple(index)]
        return plane if u < v else plane.T

    def plane_shape(self, view: str) -> tuple[int, int]:
        """``(n_u, n_v)`` of a view's slices."""
        u, v, _ = VIEW_AXES[_check_view(view)]
        return self.shape[u], self.shape[v]

    # -- mm ---------------------------------------------------------------------
    def voxel_to_mm(self, ijk) -> np.ndarray:
        """RAS voxel indices → world mm, shape (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def mm_to_voxel(self, xyz) -> np.ndarray:
        """World mm → the nearest RAS voxel inside the grid, shape (..., 3), int."""
        inv = np.linalg.inv(self.affine)
        ijk = np.rint(np.asarray(xyz, dtype=float) @ inv[:3, :3].T + inv[:3, 3])
        return np.clip(ijk, 0, np.asarray(self.shape) - 1).astype(int)

    def rect(self, view: str) -> tuple[float, float, float, float]:
        """``(u0, v0, width, height)`` of a view's image in mm (voxel edges, not centres)."""
        u, v, _ = VIEW_AXES[_check_view(view)]
        z = self.zooms
        return (
            float(self.origin[u] - z[u] / 2),
            float(self.origin[v] - z[v] / 2),
            float(self.shape[u] * z[u]),
            float(self.shape[v] * z[v]),
        )

    def axis_mm(self, axis: int, index) -> float:
        """Position in mm of voxel ``index`` along RAS ``axis`` (voxel centre)."""
        return float(self.origin[axis] + float(index) * self.zooms[axis])

    def crosshair(self, view: str, ijk) -> tuple[float, float]:
        """``(u, v)`` in mm where a view draws the crosshair through voxel ``ijk``."""
        u, v, _ = VIEW_AXES[_check_view(view)]
        return self.axis_mm(u, ijk[u]), self.axis_mm(v, ijk[v])

    def point_to_voxel(self, view: str, u_mm: float, v_mm: float, ijk) -> tuple[int, int, int]:
        """Move the crosshair to a clicked point of a view.

        Parameters
        ----------
        view : str
        u_mm, v_mm : float
            The point in the view's mm coordinates (as the view box maps it).
        ijk : sequence of 3 int
            Current crosshair; its coordinate along the view's slice axis is kept.

        Returns
        -------
        ijk : tuple of 3 int
            Clipped to the grid.
        """
        u, v, _ = VIEW_AXES[_check_view(view)]
        out = [int(i) for i in ijk]
        for axis, mm in ((u, u_mm), (v, v_mm)):
            index = round((float(mm) - self.origin[axis]) / self.zooms[axis])
            out[axis] = int(np.clip(index, 0, self.shape[axis] - 1))
        return tuple(out)

    def step(self, ijk, view: str, key: str, *, radiological: bool = False, n: int = 1):
        """Move the crosshair with an arrow key pressed over ``view``.

        Left/right move along the view's horizontal axis *as seen on screen* (so in
        radiological display "left" moves towards the subject's right), up/down along its
        vertical axis, page up/down through its slices.

        Returns
        -------
        ijk : tuple of 3 int
            Clipped to the grid.
        """
        u, v, s = VIEW_AXES[_check_view(view)]
        if key not in KEYS:
            raise ValueError(f"'key' must be one of {', '.join(KEYS)}, got {key!r}.")
        flip = -1 if (radiological and u == 0) else 1
        axis, delta = {
            "left": (u, -flip),
            "right": (u, flip),
            "up": (v, 1),
            "down": (v, -1),
            "pageup": (s, 1),
            "pagedown": (s, -1),
        }[key]
        out = [int(i) for i in ijk]
        out[axis] = int(np.clip(out[axis] + delta * int(n), 0, self.shape[axis] - 1))
        return tuple(out)

    def clip(self, ijk) -> tuple[int, int, int]:
        """Voxel indices clipped to the grid."""
        return tuple(int(np.clip(int(i), 0, n - 1)) for i, n in zip(ijk, self.shape, strict=True))

    def center(self) -> tuple[int, int, int]:
        """The voxel nearest to (0, 0, 0) mm when inside the grid, else the middle voxel."""
        ijk = self.mm_to_voxel([0.0, 0.0, 0.0])
        if np.allclose(self.voxel_to_mm(ijk), 0.0, atol=self.zooms.max()):
            return tuple(int(i) for i in ijk)
        return tuple(n // 2 for n in self.shape)

    def edge_labels(self, view: str, *, radiological: bool = False) -> dict[str, str]:
        """Anatomical labels of a view's screen edges.

        Returns
        -------
        labels : dict
            ``{"left": ..., "right": ..., "bottom": ..., "top": ...}``, e.g. an axial view
            in neurological display gives ``L``, ``R``, ``P``, ``A``.
        """
        u, v, _ = VIEW_AXES[_check_view(view)]
        lo, hi = _AXIS_LABELS[u]
        if radiological and u == 0:
            lo, hi = hi, lo
        return {"left": lo, "right": hi, "bottom": _AXIS_LABELS[v][0], "top": _AXIS_LABELS[v][1]}

    def slice_label(self, view: str, ijk) -> str:
        """``"z = 12 mm"``-style label of the slice a view shows."""
        s = VIEW_AXES[_check_view(view)][2]
        return f"{AXIS_NAMES[s]} = {self.axis_mm(s, ijk[s]):.0f} mm"

    def position_label(self, ijk) -> str:
        """``"(x, y, z) = (0, -18, 12) mm  voxel [26, 31, 27]"`` of the crosshair."""
        xyz = self.voxel_to_mm(ijk)
        mm = ", ".join(f"{c:.0f}" for c in xyz)
        return f"(x, y, z) = ({mm}) mm   voxel [{', '.join(str(int(i)) for i in ijk)}]"


# -- colour -------------------------------------------------------------------------
def colormap_lut(name: str, n: int = LUT_SIZE) -> np.ndarray:
    """A colour lookup table.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAPS`. ``cold_hot`` is the fMRI convention: blue → cyan for
        negative values, red → yellow for positive ones (dark near zero, where the
        threshold hides it anyway).
    n : int
        Number of entries.

    Returns
    -------
    lut : array of shape (n, 3), uint8
    """
    if name not in COLORMAPS:
        raise ValueError(f"'cmap' must be one of {', '.join(COLORMAPS)}, got {name!r}.")
    x = np.linspace(0.0, 1.0, n)
    if name == "cold_hot":
        t = np.abs(2 * x - 1)  # 0 at the centre, 1 at both ends
        hot = np.column_stack([np.clip(2 * t, 0, 1), np.clip(2 * t - 1, 0, 1), 0 * t])
        cold = hot[:, ::-1]
        rgb = np.where((x >= 0.5)[:, None], hot, cold)
        return np.rint(rgb * 255).astype(np.uint8)
    import matplotlib

    rgba = matplotlib.colormaps[name](x)
    return np.rint(rgba[:, :3] * 255).astype(np.uint8)


def underlay_u8(anatomy, mask=None, *, white: int = 210) -> np.ndarray:
    """Scale an anatomical volume to grey levels 0–``white`` (robust 1–99.5 % range).

    ``white`` below 255 keeps the brightest overlay colours distinguishable from the
    anatomy.

    Parameters
    ----------
    anatomy : array of shape (n_x, n_y, n_z)
    mask : array of bool of the same shape | None
        Voxels the percentiles are taken over (default: the non-zero ones).

    Returns
    -------
    grey : array of the same shape, uint8
    """
    anatomy = np.nan_to_num(np.asarray(anatomy, dtype=np.float32))
    sel = anatomy[mask] if mask is not None else anatomy[anatomy != 0]
    if sel.size == 0:
        return np.zeros(anatomy.shape, np.uint8)
    lo, hi = np.percentile(sel, [1.0, 99.5])
    lo = min(lo, 0.0) if anatomy.min() >= 0 else lo
    if hi <= lo:
        hi = lo + 1.0
    grey = np.clip((anatomy - lo) / (hi - lo), 0, 1) * int(white)
    return np.rint(grey).astype(np.uint8)


def robust_vmax(values, *, percentile: float = 99.5, scratch=None) -> float:
    """The ``percentile`` of ``|values|`` (non-finite values count as 0), for automatic levels.

    Parameters
    ----------
    values : array, any shape
    scratch : array of float32 of the same size | None
        Reused buffer (no allocation when given).

    Returns
    -------
    vmax : float
        ``> 0``; 1.0 when every value is 0 or not finite.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    buf = np.empty_like(values) if scratch is None else scratch.reshape(-1)[: values.size]
    np.abs(values, out=buf)
    np.nan_to_num(buf, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if buf.size == 0:
        return 1.0
    k = min(buf.size - 1, round(percentile / 100 * (buf.size - 1)))
    buf.partition(k)
    vmax = float(buf[k])
    return vmax if vmax > 0 else 1.0


_NICE = np.array([1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0])


def nice_level(vmax: float) -> float:
    """Round a level up to 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k.

    Automatic levels change little from volume to volume; rounded, the colour bar (and
    its tick labels, costly to lay out) stays put.
    """
    vmax = float(vmax)
    if not (np.isfinite(vmax) and vmax > 0):
        return 1.0
    scale = 10.0 ** np.floor(np.log10(vmax))
    mant = vmax / scale
    return float(f"{_NICE[np.searchsorted(_NICE, mant - 1e-9)] * scale:.3g}")


@dataclass
class OverlayStyle:
    """How an overlay is drawn.

    Attributes
    ----------
    cmap : str
        One of :data:`COLORMAPS`. Signed maps span ``[-vmax, vmax]`` and threshold
        ``|value|``; positive maps span ``[0, vmax]`` and hide negative values.
    threshold : float
        Fraction of ``vmax`` (0 ≤ threshold < 1) below which voxels show the underlay only.
    opacity : float
        0 (underlay only) … 1 (overlay colour only) where the overlay shows.
    auto_levels : bool
        ``vmax`` from each volume (:func:`robust_vmax`), else :attr:`vmax`.
    vmax : float
        Fixed level (> 0), in the stream's units (percent signal change).
    """

    cmap: str = "cold_hot"
    threshold: float = 0.3
    opacity: float = 0.85
    auto_levels: bool = True
    vmax: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> OverlayStyle:
        """Check every field; raise ``ValueError`` naming the bad one."""
        if self.cmap not in COLORMAPS:
            raise ValueError(f"'cmap' must be one of {', '.join(COLORMAPS)}, got {self.cmap!r}.")
        if not 0.0 <= float(self.threshold) < 1.0:
            raise ValueError(f"'threshold' must be in [0, 1), got threshold={self.threshold!r}.")
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"'opacity' must be in [0, 1], got opacity={self.opacity!r}.")
        if not (np.isfinite(self.vmax) and float(self.vmax) > 0):
            raise ValueError(f"'vmax' must be positive and finite, got vmax={self.vmax!r}.")
        return self

    @property
    def signed(self) -> bool:
        """Whether the colour map spans negative values."""
        return self.cmap in SIGNED_COLORMAPS

    def levels(self, vmax: float) -> tuple[float, float]:
        """``(lo, hi)`` the LUT spans for a given ``vmax``."""
        return (-vmax, vmax) if self.signed else (0.0, vmax)


class SliceComposer:
    """Blend a thresholded colour overlay over a grey underlay, into reused buffers.

    One composer per drawn image: it owns the output ``uint8`` RGB buffer and float
    scratch of its plane shape, so composing a frame allocates nothing.

    Parameters
    ----------
    plane_shape : tuple of int
        ``(n_u, n_v)``.
    """

    def __init__(self, plane_shape) -> None:
        shape = tuple(int(n) for n in plane_shape)
        self.out = np.zeros((*shape, 3), np.uint8)
        self._f = np.empty(shape, np.float32)
        self._w = np.empty(shape, np.float32)
        self._i = np.empty(shape, np.intp)
        self._b = np.empty(shape, bool)
        self._c = np.empty((*shape, 3), np.float32)
        self._g = np.empty((*shape, 3), np.float32)
        self._lut_src = self._lut_f = None

    def compose(self, underlay, values, *, lut, levels, threshold, opacity, mask=None):
        """Compose one frame into :attr:`out`.

        Parameters
        ----------
        underlay : array of shape (n_u, n_v), uint8
        values : array of shape (n_u, n_v) | None
            Overlay values; ``None`` draws the underlay only.
        lut : array of shape (n_lut, 3), uint8
        levels : (float, float)
            Values mapped to the first and last LUT entries.
        threshold : float
            Absolute value below which nothing is drawn (``|value|`` for signed levels,
            i.e. ``lo < 0``, else ``value``).
        opacity : float
            Weight of the overlay colour where drawn.
        mask : array of shape (n_u, n_v), bool | None
            Voxels that may be drawn.

        Returns
        -------
        rgb : array of shape (n_u, n_v, 3), uint8
            :attr:`out` (reused by the next call).
        """
        out = self.out
        g = self._g
        g[...] = underlay[..., None]
        if values is None or opacity <= 0:
            np.copyto(out, underlay[..., None], casting="unsafe")
            return out
        lo, hi = float(levels[0]), float(levels[1])
        n = len(lut)
        f, w, b = self._f, self._w, self._b
        # LUT index
        np.subtract(values, lo, out=f)
        np.multiply(f, (n - 1) / (hi - lo) if hi > lo else 0.0, out=f)
        np.clip(f, 0, n - 1, out=f)
        np.nan_to_num(f, copy=False, nan=0.0)
        np.copyto(self._i, f, casting="unsafe")
        if lut is not self._lut_src:  # float copy of the LUT, made once per LUT
            self._lut_src, self._lut_f = lut, np.asarray(lut, np.float32)
        np.take(self._lut_f, self._i, axis=0, out=self._c, mode="clip")
        # where to draw: above threshold, finite, inside the mask
        if lo < 0:
            np.abs(values, out=f)
            np.greater_equal(f, threshold, out=b)
        else:
            np.greater_equal(values, max(threshold, np.finfo(np.float32).tiny), out=b)
        if mask is not None:
            b &= mask
        np.multiply(b, np.float32(opacity), out=w)
        # g + w * (c - g)
        np.subtract(self._c, g, out=self._c)
        np.multiply(self._c, w[..., None], out=self._c)
        np.add(g, self._c, out=g)
        np.rint(g, out=g)
        np.copyto(out, g, casting="unsafe")
        return out


def colorbar_image(lut, *, threshold: float, signed: bool, n: int = LUT_SIZE) -> np.ndarray:
    """A vertical colour bar image showing the LUT and the thresholded band in grey.

    Returns
    -------
    rgb : array of shape (1, n, 3), uint8
        Indexed ``[u, v]``: one column, bottom (low values) to top.
    """
    lut = np.asarray(lut, np.uint8)
    idx = np.rint(np.linspace(0, len(lut) - 1, n)).astype(int)
    bar = lut[idx].copy()
    x = np.linspace(-1.0, 1.0, n) if signed else np.linspace(0.0, 1.0, n)
    hidden = np.abs(x) < threshold if signed else x < threshold
    bar[hidden] = 64
    return bar[None]


__all__ = [
    "COLORMAPS",
    "KEYS",
    "VIEWS",
    "OverlayStyle",
    "SliceComposer",
    "SliceGeometry",
    "colorbar_image",
    "colormap_lut",
    "nice_level",
    "robust_vmax",
    "underlay_u8",
]
