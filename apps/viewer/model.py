"""``ViewerModel``: everything the viewer shows, as numpy arrays, without Qt.

The window (:mod:`apps.viewer.window`) draws what this model computes; the headless demo
uses it alone to score the prediction against the truth. It holds the grid geometry and
underlay, the latest volume of each stream, their recent history, the timestamp pairing
and running voxelwise correlation, the crosshair and the overlay style.
"""

from __future__ import annotations

import numpy as np

from rt_eeg2fmri.volume_stream import VolumeStreamMeta

from .logic import (
    VIEWS,
    OverlayStyle,
    SliceComposer,
    SliceGeometry,
    colormap_lut,
    nice_level,
    robust_vmax,
    underlay_u8,
)
from .series import PairedCorrelation, VolumeHistory

KINDS = ("prediction", "truth")


class _Stream:
    """Per-stream state: latest volume (RAS view), its level, history, composers."""

    def __init__(self, meta: VolumeStreamMeta, geometry: SliceGeometry, columns, history: int):
        self.meta = meta
        self.history = VolumeHistory(history, columns)
        self.latest: np.ndarray | None = None  # RAS view of the latest sample
        self.latest_time = float("nan")
        self.vmax = 1.0
        self.mask_ras = None if meta.mask is None else geometry.to_ras(meta.mask)
        self.composers = {v: SliceComposer(geometry.plane_shape(v)) for v in VIEWS}
        self._scratch = np.empty(len(columns), np.float32)


class ViewerModel:
    """The viewer's state.

    Parameters
    ----------
    history : int
        Volumes kept per stream for the time course.
    radiological : bool
        Display the subject's left on the screen's right.
    style : OverlayStyle | None
        Overlay colour map, threshold, opacity and levels.

    Notes
    -----
    Call :meth:`set_stream` with each stream's description (the prediction first: it
    defines the grid), then :meth:`add_volume` as volumes arrive. A truth stream on a
    different grid is refused with a ``ValueError`` naming both grids.
    """

    def __init__(
        self, *, history: int = 100, radiological: bool = False, style: OverlayStyle | None = None
    ) -> None:
        if int(history) < 2:
            raise ValueError(f"'history' must be at least 2 volumes, got {history=}.")
        self.history_size = int(history)
        self.radiological = bool(radiological)
        self.style = style or OverlayStyle()
        self.geometry: SliceGeometry | None = None
        self.streams: dict[str, _Stream] = {}
        self.underlay: np.ndarray | None = None  # uint8, RAS
        self.underlay_kind = ""
        self.crosshair: tuple[int, int, int] = (0, 0, 0)
        self._pairs: PairedCorrelation | None = None
        self.t_first = float("nan")
        self._lut = colormap_lut(self.style.cmap)
        self._lut_name = self.style.cmap
        self._columns = None
        self._column_of = None  # RAS volume of history column per voxel (-1: not kept)
        #: time courses z-scored each on its own (shapes comparable whatever the amplitudes)
        self.zscore_course = False
        self._atlas = None  # (path, labels) until the grid is known
        self.regions = None  # rt_eeg2fmri.realtime.roi.Regions on the streams' grid
        self._region_columns: list[np.ndarray] = []
        #: index into ``region_names`` whose mean the time course shows (None: the voxel)
        self.region: int | None = None

    # -- streams ------------------------------------------------------------------
    def set_stream(self, kind: str, meta: VolumeStreamMeta) -> None:
        """Declare (or re-declare after a reconnection) a stream's description."""
        if kind not in KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}.")
        if self.geometry is None:
            self._set_grid(meta)
        elif not self._same_grid(meta):
            raise ValueError(
                f"the {kind} stream's grid {meta.grid_shape} (affine row 0 "
                f"{np.round(meta.affine[0], 2).tolist()}) differs from the viewer's "
                f"{self.geometry.source_shape} (affine row 0 "
                f"{np.round(self._affine[0], 2).tolist()})."
            )
        old = self.streams.get(kind)
        if old is not None and _same_mask(old.meta, meta):
            old.meta = meta
            return
        self.streams[kind] = _Stream(meta, self.geometry, self._columns, self.history_size)
        if self._pairs is None:  # pairs volumes from the start, whichever stream comes first
            self._pairs = PairedCorrelation(len(self._columns), tolerance=min(0.25, meta.t_r / 4))

    @property
    def pairs(self) -> PairedCorrelation | None:
        """Prediction/truth pairing and running r (``None`` until both streams are declared)."""
        return self._pairs if len(self.streams) == len(KINDS) else None

    def _same_grid(self, meta) -> bool:
        from rt_eeg2fmri.grid import same_grid

        return same_grid(meta.grid_shape, meta.affine, self.geometry.source_shape, self._affine)

    def _set_grid(self, meta: VolumeStreamMeta) -> None:
        from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE, mni_mask, mni_t1, same_grid

        geo = SliceGeometry(meta.grid_shape, meta.affine)
        self.geometry = geo
        self._affine = np.asarray(meta.affine, float)
        mask = meta.mask if meta.mask is not None else np.ones(meta.grid_shape, bool)
        self._columns = np.flatnonzero(mask.reshape(-1, order=meta.order))
        column_of = np.full(meta.n_voxels, -1, np.int64)
        column_of[self._columns] = np.arange(self._columns.size)
        self._column_of = geo.to_ras(column_of.reshape(meta.grid_shape, order=meta.order))
        if same_grid(meta.grid_shape, meta.affine, GRID_SHAPE, GRID_AFFINE):
            self.underlay = underlay_u8(geo.to_ras(mni_t1()), geo.to_ras(mni_mask()))
            self.underlay_kind = "MNI152 T1"
        else:  # no template on this grid: the stream's mask as a silhouette until data come
            self.underlay = geo.to_ras(np.where(mask, 96, 0).astype(np.uint8))
            self.underlay_kind = "mask"
        self.crosshair = geo.center()
        if self._atlas is not None:
            self._set_regions(meta, mask)

    # -- regions ------------------------------------------------------------------------
    def set_atlas(self, atlas, labels=None) -> None:
        """Regions whose mean the time course can show (a label image, or one mask).

        Read now when the streams' grid is known, else as soon as it is; an atlas on
        another grid is resampled to it (nearest neighbour).
        """
        self._atlas = (atlas, labels)
        if self.geometry is not None:
            meta = next(iter(self.streams.values())).meta if self.streams else None
            if meta is not None:
                mask = meta.mask if meta.mask is not None else np.ones(meta.grid_shape, bool)
                self._set_regions(meta, mask)

    def _set_regions(self, meta, mask) -> None:
        from rt_eeg2fmri.realtime.roi import Regions

        atlas, labels = self._atlas
        regions = Regions(atlas, grid_shape=meta.grid_shape, affine=meta.affine, mask=mask,
                          labels=labels)  # fmt: skip
        column_of = np.full(meta.n_voxels, -1, np.int64)
        column_of[self._columns] = np.arange(self._columns.size)
        self._region_columns = [
            column_of[regions.flat_indices(i)] for i in range(regions.n_regions)
        ]
        self.regions = regions

    @property
    def region_names(self) -> list[str]:
        """Names of the atlas's regions (empty without an atlas)."""
        return [] if self.regions is None else list(self.regions.names)

    def set_region(self, index: int | None) -> None:
        """Show the mean of region ``index`` in the time course (``None``: the crosshair voxel)."""
        if index is not None and not 0 <= int(index) < len(self.region_names):
            raise ValueError(f"region index {index} out of range for {len(self.region_names)}.")
        self.region = None if index is None else int(index)

    def add_volume(self, kind: str, sample, timestamp: float) -> bool:
        """Take one volume of a declared stream.

        Parameters
        ----------
        kind : ``"prediction"`` | ``"truth"``
        sample : array of shape (n_voxels,), (n_channels,) or grid_shape
            The flat C-order sample, with or without its flags (or the volume).
        timestamp : float
            LSL timestamp (end of the volume's acquisition).

        Returns
        -------
        paired : bool
            Whether it completed a prediction/truth pair (the correlation changed).
        """
        stream = self.streams.get(kind)
        if stream is None:
            raise RuntimeError(f"no {kind} stream declared: call set_stream({kind!r}, meta) first.")
        meta = stream.meta
        flat = meta.voxels(sample)  # its flags (e.g. Clean) left off
        volume = meta.to_volume(flat)
        if self.underlay_kind == "mask" and stream.latest is None:
            self.underlay = underlay_u8(self.geometry.to_ras(np.abs(volume)))
            self.underlay_kind = "first volume"
        stream.latest = self.geometry.to_ras(volume)
        stream.latest_time = float(timestamp)
        if not np.isfinite(self.t_first):
            self.t_first = float(timestamp)
        row = stream.history.push(flat if meta.order == "C" else volume.reshape(-1), timestamp)
        stream.vmax = nice_level(robust_vmax(row, scratch=stream._scratch))
        return self._pairs.add(kind, float(timestamp), row)

    def has(self, kind: str) -> bool:
        """Whether a stream is declared."""
        return kind in self.streams

    # -- display ------------------------------------------------------------------
    def set_style(self, **changes) -> None:
        """Change overlay fields (``cmap``, ``threshold``, ``opacity``, ``auto_levels``, ``vmax``)."""
        old = dict(self.style.__dict__)
        for key, value in changes.items():
            if key not in old:
                raise ValueError(f"unknown overlay setting {key!r}; known: {', '.join(old)}.")
            setattr(self.style, key, value)
        try:
            self.style.validate()
        except ValueError:
            self.style.__dict__.update(old)
            raise
        if self.style.cmap != self._lut_name:
            self._lut = colormap_lut(self.style.cmap)
            self._lut_name = self.style.cmap

    @property
    def lut(self) -> np.ndarray:
        """The overlay colour map, shape (256, 3), uint8."""
        return self._lut

    def vmax(self, kind: str) -> float:
        """The level used for a stream's overlay (auto from its latest volume, or fixed)."""
        stream = self.streams.get(kind)
        if not self.style.auto_levels or stream is None:
            return float(self.style.vmax)
        return float(stream.vmax)

    def levels(self, kind: str) -> tuple[float, float]:
        """``(lo, hi)`` of a stream's colour bar."""
        return self.style.levels(self.vmax(kind))

    def render(self, kind: str | None, view: str) -> np.ndarray:
        """The RGB image of ``view`` for a stream (``None``: underlay only).

        Returns
        -------
        rgb : array of shape (n_u, n_v, 3), uint8
            A buffer reused by the next call for the same stream and view.
        """
        geo = self.geometry
        if geo is None:
            raise RuntimeError("no stream declared yet: the grid is unknown.")
        stream = self.streams.get(kind) if kind else None
        if stream is None:
            stream = next(iter(self.streams.values()))
            values = None
        else:
            values = stream.latest
        under = geo.slice(self.underlay, view, self.crosshair)
        vmax = self.vmax(kind) if kind else 1.0
        return stream.composers[view].compose(
            under,
            None if values is None else geo.slice(values, view, self.crosshair),
            lut=self._lut,
            levels=self.style.levels(vmax),
            threshold=self.style.threshold * vmax,
            opacity=self.style.opacity,
            mask=None
            if stream.mask_ras is None
            else geo.slice(stream.mask_ras, view, self.crosshair),
        )

    # -- crosshair ----------------------------------------------------------------
    def set_crosshair(self, ijk) -> None:
        """Move the crosshair to RAS voxel ``ijk`` (clipped to the grid)."""
        self.crosshair = self.geometry.clip(ijk)

    def click(self, view: str, u_mm: float, v_mm: float) -> None:
        """Move the crosshair to a clicked point of ``view`` (mm)."""
        self.crosshair = self.geometry.point_to_voxel(view, u_mm, v_mm, self.crosshair)

    def key(self, view: str, key: str, n: int = 1) -> None:
        """Step the crosshair with an arrow/page key pressed over ``view``."""
        self.crosshair = self.geometry.step(
            self.crosshair, view, key, radiological=self.radiological, n=n
        )

    def crosshair_column(self) -> int:
        """History column of the crosshair voxel (-1 when outside the mask)."""
        return int(self._column_of[self.crosshair])

    # -- time course ----------------------------------------------------------------
    def time_course(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """``(t, values)`` at the crosshair (or the selected region's mean), ``t`` in s.

        ``t`` counts from the first volume.

        Empty arrays when the stream is absent or the voxel is outside the mask; z-scored
        when :attr:`zscore_course` is set.
        """
        stream = self.streams.get(kind)
        if stream is not None and self.region is not None and self.regions is not None:
            t, y = stream.history.region_series(self._region_columns[self.region])
        else:
            col = self.crosshair_column() if self.geometry is not None else -1
            if stream is None or col < 0:
                return np.zeros(0), np.zeros(0, np.float32)
            t, y = stream.history.series(col)
        if self.zscore_course and y.size > 1:
            sd = float(y.std())
            y = ((y - y.mean()) / sd if sd > 0 else y - y.mean()).astype(np.float32)
        return t - self.t_first, y

    def voxel_r(self) -> float:
        """Running correlation prediction vs truth at the crosshair (NaN if unknown)."""
        col = self.crosshair_column() if self.geometry is not None else -1
        if self.pairs is None or col < 0:
            return float("nan")
        return self.pairs.r(col)

    def r_volume(self) -> np.ndarray | None:
        """Voxelwise r over every pair so far, shape grid_shape (stream order), NaN outside."""
        if self.pairs is None:
            return None
        meta = self.streams["prediction"].meta
        out = np.full(meta.n_voxels, np.nan, np.float32)
        out[self._columns] = self.pairs.r()
        return out.reshape(meta.grid_shape, order=meta.order)


def _same_mask(a: VolumeStreamMeta, b: VolumeStreamMeta) -> bool:
    if a.mask is None or b.mask is None:
        return a.mask is None and b.mask is None
    return bool(np.array_equal(a.mask, b.mask))


__all__ = ["KINDS", "ViewerModel"]
