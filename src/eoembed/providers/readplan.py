"""The read plan of :class:`~eoembed.providers.reader.SceneReader`: how a source lands on a grid.

Per source grid, odc-stac's decision between a window read (``paste``) and a warp, with the
windows it reads and writes. A source with the grid's CRS and pixel size, no rotation and a
whole-pixel offset gets odc's answer without ``compute_reproject_roi`` (about 1 ms per call,
once per scene of a chip catalogue); every other case asks odc.
"""

from __future__ import annotations

from typing import NamedTuple

from eoembed.grid import GridSpec

__all__ = ["GridPlan", "Src", "pick_overview"]


class Src:
    """An open dataset and what every read needs of it, read once at open (``ds.crs``,
    ``ds.transform`` and ``ds.nodatavals`` build new Python objects on each access)."""

    __slots__ = ("ds", "wkt", "transform", "shape", "nodatavals")

    def __init__(self, ds) -> None:
        self.ds = ds
        self.wkt = ds.crs.to_wkt() if ds.crs is not None else ""
        self.transform = tuple(ds.transform)[:6]
        self.shape = (ds.height, ds.width)
        self.nodatavals = ds.nodatavals


class _Reproject(NamedTuple):
    """The parts of odc's ``ReprojectInfo`` the reads use."""

    roi_src: tuple[slice, slice]
    roi_dst: tuple[slice, slice]
    paste_ok: bool
    read_shrink: int


_SAME_CRS: dict[tuple[str, str], bool] = {}  # (source CRS WKT, grid CRS) -> odc says equal


class GridPlan:
    """What the reads onto one grid share: the read/warp plan per source grid, computed once.

    odc's ``compute_reproject_roi`` decides per source grid (about 1 ms each, once per scene of
    a chip catalogue). :meth:`reproject` answers the common case without it: the source has the
    grid's CRS and pixel size, no rotation, and a whole-pixel offset; odc then pastes (window
    read, no overview) with the offset rounded, and ``box_overlap`` gives its two windows.
    Every other case goes to odc.
    """

    def __init__(self, grid: GridSpec) -> None:
        self.grid = grid
        self.transform = tuple(grid.affine())[:6]
        self.shape = (grid.height, grid.width)
        self._geobox = None
        self._plans: dict[tuple, _Reproject] = {}

    @property
    def geobox(self):
        if self._geobox is None:
            from odc.geo.geobox import GeoBox

            self._geobox = GeoBox(self.shape, self.grid.affine(), self.grid.crs)
        return self._geobox

    def _src_geobox(self, src: Src):
        from affine import Affine
        from odc.geo.geobox import GeoBox

        return GeoBox(src.shape, Affine(*src.transform), src.ds.crs)

    def reproject(self, src: Src, ttol: float) -> _Reproject:
        key = (src.wkt, src.transform, src.shape, ttol)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._paste(src) or self._odc(src, ttol)
        return plan

    def _odc(self, src: Src, ttol: float) -> _Reproject:
        from odc.geo.overlap import compute_reproject_roi

        rr = compute_reproject_roi(self._src_geobox(src), self.geobox, ttol=ttol)
        return _Reproject(rr.roi_src, rr.roi_dst, rr.paste_ok, rr.read_shrink)

    def _paste(self, src: Src) -> _Reproject | None:
        from affine import Affine
        from odc.geo.overlap import box_overlap

        a, b, c, d, e, f = src.transform
        ga, gb, gc, gd, ge, gf = self.transform
        if b or d or gb or gd or a != ga or e != ge or a == 0 or e == 0:
            return None
        tx, ty = (gc - c) / a, (gf - f) / e  # grid pixel (0, 0) in source pixels
        if abs(tx - round(tx)) > 1e-6 or abs(ty - round(ty)) > 1e-6:
            return None
        key = (src.wkt, str(self.grid.crs))
        same = _SAME_CRS.get(key)
        if same is None:  # odc's test (odc.geo CRS equality), once per process and CRS pair
            same = _SAME_CRS[key] = self._src_geobox(src).crs == self.geobox.crs
        if not same:
            return None
        roi_src, roi_dst = box_overlap(src.shape, self.shape, Affine(1, 0, round(tx), 0, 1, round(ty)))
        return _Reproject(roi_src, roi_dst, True, 1)


def pick_overview(read_shrink: int, overviews: list[int]) -> int | None:
    """odc-loader's choice of overview level: the coarsest whose factor is <= ``read_shrink``."""
    if not overviews or read_shrink < overviews[0]:
        return None
    level = 0
    for i, factor in enumerate(overviews):
        if factor > read_shrink:
            break
        level = i
    return level
