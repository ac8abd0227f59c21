"""The shared part of every precomputed embedding product.

A product is an :class:`~eoembed.models.base.Embedder` whose card has ``kind="precomputed"``: it is
never run on composites; :meth:`Product.embed_requests` reads the product's own files for each
request and returns per ROI ``(arrays, record)`` exactly like :func:`eoembed.pipeline.embed_items`.

* :class:`PixelProduct` — rasters (AlphaEarth/GSE, Tessera, Copernicus-Embed, ESD, Presto Togo):
  raw values resampled onto the ROI's UTM grid (or the product's own grid with option
  ``native_grid: true``) with nearest neighbour, then decoded; pooled = mean/max over ROI pixels.
* :class:`PatchProduct` — vectors per patch or location (Clay, Major TOM, Earth Index): patches that
  intersect the ROI, pooled = area-weighted mean (weights in the ROI's UTM zone).

Annual products pick **one year per request**: the calendar year holding most days of the request
window (ties: the earlier year). A year outside the product's coverage, or a ROI no file covers,
fails that item (stage ``read``), never the whole chunk.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ConfigError, ModelError, NoDataError
from eoembed.grid import GridSpec, grid_for
from eoembed.items import Request
from eoembed.models.base import Embedder, pool_cells
from eoembed.pipeline import failed, sha256_array

log = logging.getLogger(__name__)

__all__ = ["FULL_COVERAGE", "PRODUCT_FAMILY", "PatchProduct", "PixelProduct", "Product", "Read", "request_year"]

#: Conda env family of every product (``envs/<family>.yaml``): products only need the core stack.
PRODUCT_FAMILY = "core"

FULL_COVERAGE = 0.999
"""An item whose valid fraction (pixels with data, or ROI area covered by patches) is below this is
``partial``."""

Result = tuple[dict[str, np.ndarray], dict[str, Any]]


def request_year(start: dt.date, end: dt.date) -> int:
    """The calendar year holding most days of ``[start, end)`` (ties: the earlier year)."""
    best, best_days = start.year, -1
    for year in range(start.year, (end - dt.timedelta(days=1)).year + 1):
        lo, hi = max(start, dt.date(year, 1, 1)), min(end, dt.date(year + 1, 1, 1))
        if (hi - lo).days > best_days:
            best, best_days = year, (hi - lo).days
    return best


@dataclass
class Read:
    """What a product read for one request.

    Attributes:
        arrays: ``{"pooled": (dims,)}`` plus ``"grid"`` (dims, rows, cols) or ``"patches"`` (n, dims).
        valid_fraction: Share of the ROI with data (pixels, or area covered by patches).
        grid: The pixel grid of ``arrays["grid"]`` (None for patch products).
        cell_px: Grid cell size in pixels of ``grid``.
        extra: Extra record fields (product year, files, patch geometries, ...).
    """

    arrays: dict[str, np.ndarray]
    valid_fraction: float
    grid: GridSpec | None = None
    cell_px: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Product(Embedder):
    """Base class of precomputed products.

    Args:
        options: Product options (validated against :attr:`default_options`).
        source: Where the product's files are (``models.<id>.source``): a local file or directory.
        **kwargs: Passed to :class:`Embedder` (device, weights settings: unused by products).
    """

    default_options: ClassVar[dict[str, Any]] = {"year": None}
    #: First and last year covered (inclusive); None for static products.
    years: ClassVar[tuple[int, int] | None] = None
    #: One line telling users what ``source`` must point at.
    source_help: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None, source: str | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.source = source

    def _load(self) -> None:
        if not self.source:
            raise ConfigError(f"model {self.card.id!r}: models.{self.card.id}.source is not set; "
                              f"allowed: {self.source_help}")
        if "://" not in str(self.source) and not Path(self.source).exists():
            raise ConfigError(f"model {self.card.id!r}: models.{self.card.id}.source={self.source!r} "
                              f"does not exist; allowed: {self.source_help}")
        self._open()

    def _open(self) -> None:
        """Subclass hook: index or load the product's files (once per job)."""

    def embed_batch(self, composites, output):  # noqa: D102 - products are not run on imagery
        raise ModelError(f"model {self.card.id!r} is a precomputed product: it reads its own files "
                         f"(embed_requests), it is not run on composites")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": str(self.source) if self.source else None,
                "years": list(self.years) if self.years else None}

    def year_for(self, request: Request) -> int | None:
        """The product year used for ``request`` (None for static products).

        Raises:
            NoDataError: The year is outside the product's coverage.
        """
        if self.years is None:
            return None
        year = self.options.get("year")
        year = request_year(request.temporal.start, request.temporal.end) if year is None else int(year)
        first, last = self.years
        if not first <= year <= last:
            why = ("option year" if self.options.get("year") is not None else
                   f"most days of the window [{request.temporal.start}, {request.temporal.end})")
            raise NoDataError(f"{self.card.id}: year {year} ({why}) is outside the product's coverage; "
                              f"allowed: {first}..{last} (or set option year)")
        return year

    @abstractmethod
    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        """Read one request; raise an :class:`~eoembed.errors.EoembedError` when there is no data."""

    def embed_requests(self, requests: list[Request], *, pooling: str = "mean", grid: bool = False,
                       cell_m: float | None = None) -> dict[str, Result]:
        """Read every request; one bad ROI fails alone (status ``failed``, stage ``read``)."""
        self.load()
        out: dict[str, Result] = {}
        for req in requests:
            t0 = time.perf_counter()
            base = {"roi_id": req.roi_id, "request": req.to_dict(), "request_key": req.key(),
                    "model": self.card.id, "geometry_wkt": req.spatial.geometry().wkt,
                    "centroid": list(req.spatial.centroid())}
            try:
                got = self.read(req, pooling=pooling, grid=grid, cell_m=cell_m)
                vec = np.asarray(got.arrays["pooled"], dtype=np.float32)
                if got.valid_fraction <= 0 or not np.all(np.isfinite(vec)):
                    raise NoDataError(f"{self.card.id}: no valid pixel/patch inside the ROI "
                                      f"(the product has no data there)")
                arrays = {k: np.asarray(v, dtype=np.float32) for k, v in got.arrays.items()}
                partial = got.valid_fraction < FULL_COVERAGE
                rec = {**base, "status": "partial" if partial else "ok", "stage": "done",
                       "error": (f"product covers {got.valid_fraction:.3f} of the ROI" if partial else None),
                       "grid": got.grid.to_dict() if got.grid is not None and "grid" in arrays else None,
                       "cell_px": got.cell_px if "grid" in arrays else None,
                       "output_shape": {k: list(v.shape) for k, v in arrays.items()},
                       "embedding_sha256": sha256_array(arrays["pooled"]),
                       "valid_fraction": [float(got.valid_fraction)], **got.extra}
                out[req.roi_id] = (arrays, rec)
            except Exception as exc:  # noqa: BLE001 - one bad ROI must not sink the chunk
                log.warning("read %s %s failed: %s", self.card.id, req.roi_id, exc)
                out[req.roi_id] = ({}, {**base, **failed("read", exc)})
            out[req.roi_id][1]["timings"] = {"read_s": time.perf_counter() - t0}
        return out


class PixelProduct(Product):
    """A raster product: tiles of raw values decoded after nearest-neighbour resampling."""

    default_options: ClassVar[dict[str, Any]] = {"native_grid": False, "year": None}
    #: Pixel size (metres) of the ROI grid the product is resampled to.
    res_m: ClassVar[float] = 10.0

    @abstractmethod
    def tiles(self, request: Request, year: int | None) -> list:
        """The :class:`~eoembed.products.raster.Tile` objects that may cover the request."""

    @abstractmethod
    def raw_format(self, tiles: list) -> tuple[int, Any, float]:
        """``(band count, raw dtype, nodata value)`` of the tiles."""

    @abstractmethod
    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(count, h, w)`` values -> float32 ``(dims, h, w)`` features, NaN where no data."""

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        from eoembed.products.raster import native_grid, pool_pixels, read_to_grid, roi_weight

        year = self.year_for(request)
        tiles = self.tiles(request, year)
        when = f" for {year}" if year is not None else ""
        if not tiles:
            raise NoDataError(f"{self.card.id}: no product file{when} covers the ROI "
                              f"(source {self.source})")
        if self.options["native_grid"]:
            target = native_grid(tiles[0], request.spatial.geometry())
        else:
            target = grid_for(request.spatial, self.res_m)
        count, dtype, fill = self.raw_format(tiles)
        raw, used = read_to_grid(tiles, target, count=count, dtype=dtype, fill=fill)
        if not used:
            raise NoDataError(f"{self.card.id}: no product file{when} covers the ROI (source {self.source})")
        feats = self.decode(raw)
        valid = np.isfinite(feats).all(axis=0)
        weight = roi_weight(target, request.spatial)
        arrays = {"pooled": pool_pixels(feats, weight, pooling)}
        cell_px = None
        if grid:
            metric = abs(target.res) > 0.01  # degrees for geographic native grids: no metric cells
            cell_px = max(1, round(cell_m / abs(target.res))) if cell_m and metric else 1
            arrays["grid"] = feats if cell_px == 1 else pool_cells(feats, valid, cell_px)
        vf = float((valid & weight).sum() / weight.sum())
        extra = {"product_files": used}
        if year is not None:
            extra["product_year"] = year
        return Read(arrays, vf, target, cell_px, extra)


class PatchProduct(Product):
    """A vector product: one embedding per patch (or per location, as a square patch)."""

    @abstractmethod
    def patch_table(self):
        """The loaded :class:`~eoembed.products.patches.PatchTable`."""

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        from eoembed.products.patches import pool_patches

        year = self.year_for(request)
        table = self.patch_table()
        window = (request.temporal.start, request.temporal.end) if table.times is not None else None
        sel = table.select(request.spatial.geometry(), window)
        if sel.index.size == 0:
            when = f" in [{request.temporal.start}, {request.temporal.end})" if window else ""
            raise NoDataError(f"{self.card.id}: no patch intersects the ROI{when} (source {self.source})")
        vec = pool_patches(table.embeddings[sel.index], sel.weights, pooling)
        extra = {"patch_wkt": [g.wkt for g in table.geometries[sel.index]],
                 "patch_weights": [float(w) for w in sel.weights],
                 "patch_ids": [str(table.ids[i]) for i in sel.index]}
        if table.times is not None:
            extra["patch_times"] = [str(table.times[i]) for i in sel.index]
        if year is not None:
            extra["product_year"] = year
        return Read({"pooled": vec, "patches": table.embeddings[sel.index]}, sel.coverage, None, None, extra)
