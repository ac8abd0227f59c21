"""The shared part of every precomputed embedding product: its card and its base class.

A product is **not** a model: it is never run on composites. It is described by a
:class:`ProductCard` (id, source layout, temporal coverage, dims, dequantisation, licence) and
:meth:`Product.embed_requests` reads the product's own files for each request and returns per ROI
``(arrays, record)`` exactly like :func:`eoembed.pipeline.embed_items`.

* :class:`~eoembed.products.pixel.PixelProduct` — rasters (AlphaEarth/GSE, Tessera,
  Copernicus-Embed, ESD, Presto Togo).
* :class:`PatchProduct` — vectors per patch or location (Clay, Major TOM, Earth Index): patches
  that intersect the ROI, pooled = area-weighted mean (weights in the ROI's UTM zone).

**Time.** A card's ``temporal`` is ``"annual"`` (one layer per calendar year, ``coverage`` spans
the years), ``"static"`` (one layer for the period ``coverage``) or ``"dated"`` (each patch has
its own date; the request window selects patches). Annual products pick **one year per
request**: the calendar year holding most days of the request window (ties: the earlier year),
or option ``year``. A request outside the coverage fails that item (stage ``read``) with a
message naming the window and the coverage, unless option ``outside_coverage: nearest`` maps it
(nearest covered year, or the static layer); the mapping is then recorded in the item
(``temporal_mapping``). Every item records ``product_coverage``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ConfigError, NoDataError
from eoembed.items import Request
from eoembed.pipeline import failed, sha256_array

log = logging.getLogger(__name__)

__all__ = ["FULL_COVERAGE", "PRODUCT_FAMILY", "PatchProduct", "Product", "ProductCard", "Read",
           "request_year"]

#: Conda env family of every product (``envs/<family>.yaml``): products only need the core stack.
PRODUCT_FAMILY = "core"

FULL_COVERAGE = 0.999
"""An item whose valid fraction (pixels with data, or ROI area covered by patches) is below this is
``partial``."""

TEMPORAL_KINDS = ("annual", "static", "dated")
OUTSIDE_COVERAGE = ("fail", "nearest")

Result = tuple[dict[str, np.ndarray], dict[str, Any]]


@dataclass(frozen=True)
class ProductCard:
    """Everything a user or the workflow needs to know about a precomputed product, as data.

    Attributes:
        id: Registry id (``"gse"``).
        description: One sentence.
        dims: Embedding dimension as published (files may say otherwise: see ``describe()``).
        outputs: Output modes (``"pooled"`` plus ``"grid"`` for rasters or ``"patches"``).
        layout: The source layouts read, one line each (see docs/products.md).
        temporal: ``"annual"``, ``"static"`` or ``"dated"`` (see the module docstring).
        coverage: ``(start, end)`` ISO dates, end exclusive, of the data; None for ``"dated"``.
        dequantisation: How stored values become floats (and what marks no data).
        native_gsd_m: Pixel size (rasters) or patch size (patch products) in metres.
        licence, citation, url: Of the published product.
        family: Conda env family (always ``"core"``).
        kind: Always ``"precomputed"``.
        mem_mb, runtime_min: Resource hints for schedulers (per embed job of one chunk).
        weights: Always empty: products have no weights (kept so weight listings can iterate cards).
    """

    id: str
    description: str
    dims: int
    outputs: tuple[str, ...]
    layout: tuple[str, ...]
    temporal: str
    coverage: tuple[str, str] | None
    dequantisation: str
    native_gsd_m: float
    licence: str
    citation: str
    url: str
    family: str = PRODUCT_FAMILY
    kind: str = "precomputed"
    mem_mb: int = 2000
    runtime_min: int = 30
    weights: tuple = ()

    def __post_init__(self) -> None:
        if self.kind != "precomputed":
            raise ConfigError(f"ProductCard {self.id}: kind={self.kind!r}; allowed: 'precomputed'")
        if self.temporal not in TEMPORAL_KINDS:
            raise ConfigError(f"ProductCard {self.id}: temporal={self.temporal!r}; allowed: {TEMPORAL_KINDS}")
        if (self.coverage is None) != (self.temporal == "dated"):
            raise ConfigError(f"ProductCard {self.id}: coverage={self.coverage!r}; allowed: (start, end) "
                              f"ISO dates for annual/static products, None for dated ones")
        if self.coverage is not None and not self.start < self.end:
            raise ConfigError(f"ProductCard {self.id}: coverage={self.coverage!r}; allowed: start < end")

    @property
    def start(self) -> dt.date | None:
        return dt.date.fromisoformat(self.coverage[0]) if self.coverage else None

    @property
    def end(self) -> dt.date | None:
        """Exclusive end of the coverage."""
        return dt.date.fromisoformat(self.coverage[1]) if self.coverage else None

    @property
    def years(self) -> tuple[int, int] | None:
        """First and last calendar year with data (inclusive)."""
        if self.coverage is None:
            return None
        return self.start.year, (self.end - dt.timedelta(days=1)).year

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "years": list(self.years) if self.years else None}


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
    grid: Any = None
    cell_px: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Product(ABC):
    """Base class of precomputed products (not an :class:`~eoembed.models.base.Embedder`).

    Args:
        options: Product options; unknown keys are rejected.
        source: Where the product's files are (``models.<id>.source``): a local file or directory.
        **_unused: Settings of on-the-fly models (device, weights_dir, allow_download,
            weights_paths, weights_pins): accepted so every registry entry is built the same way,
            and ignored (products read files on the CPU and have no weights).
    """

    card: ClassVar[ProductCard]
    default_options: ClassVar[dict[str, Any]] = {"outside_coverage": "fail"}
    #: One line telling users what ``source`` must point at.
    source_help: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None, source: str | None = None,
                 **_unused: Any) -> None:
        opts = dict(self.default_options)
        unknown = sorted(set(options or {}) - set(opts))
        if unknown:
            raise ConfigError(f"model {self.card.id!r}: unknown option(s) {unknown}; allowed: {sorted(opts)}")
        opts.update(options or {})
        if "outside_coverage" in opts and opts["outside_coverage"] not in OUTSIDE_COVERAGE:
            raise ConfigError(f"model {self.card.id!r}: option "
                              f"outside_coverage={opts['outside_coverage']!r}; "
                              f"allowed: {list(OUTSIDE_COVERAGE)}")
        self.options = opts
        self.source = source
        self.device = "cpu"
        self.weights_sha256: dict[str, str] = {}
        self._loaded = False

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Check the source and index/open the product's files (idempotent)."""
        if self._loaded:
            return
        if not self.source:
            raise ConfigError(f"model {self.card.id!r}: models.{self.card.id}.source is not set; "
                              f"allowed: {self.source_help}")
        if "://" not in str(self.source) and not Path(self.source).exists():
            raise ConfigError(f"model {self.card.id!r}: models.{self.card.id}.source={self.source!r} "
                              f"does not exist; allowed: {self.source_help}")
        self._open()
        self._loaded = True

    def _open(self) -> None:
        """Subclass hook: index or load the product's files (once per job)."""

    def describe(self) -> dict[str, Any]:
        """Self-description stored with every embedding (card facts, options, source)."""
        c = self.card
        return {"model": c.id, "family": c.family, "kind": c.kind, "dims": c.dims, "options": self.options,
                "weights_sha256": {}, "licence": c.licence, "citation": c.citation,
                "source": str(self.source) if self.source else None, "temporal": c.temporal,
                "coverage": list(c.coverage) if c.coverage else None,
                "years": list(c.years) if c.temporal == "annual" else None}

    # ------------------------------------------------------------------ time

    def temporal_for(self, request: Request) -> tuple[int | None, dict[str, Any]]:
        """The product year for ``request`` (None unless annual) and the record fields saying so.

        Raises:
            NoDataError: The request is outside the coverage and option ``outside_coverage`` is
                ``fail``.
        """
        c = self.card
        if c.temporal == "dated":
            return None, {}
        start, end = request.temporal.start, request.temporal.end
        window = f"[{start}, {end})"
        cover = f"[{c.coverage[0]}, {c.coverage[1]})"
        extra: dict[str, Any] = {"product_coverage": list(c.coverage)}
        nearest = self.options.get("outside_coverage") == "nearest"
        if c.temporal == "static":
            if start < c.end and c.start < end:
                return None, extra
            if not nearest:
                raise NoDataError(f"{c.id}: the request window {window} is outside the product's coverage "
                                  f"{cover}; allowed: a window overlapping it (or set option "
                                  f"outside_coverage: nearest to use the product anyway)")
            extra["temporal_mapping"] = (f"request window {window} is outside the coverage {cover}; "
                                         f"the product's layer was used (option outside_coverage: nearest)")
            return None, extra
        first, last = c.years
        forced = self.options.get("year")
        year = request_year(start, end) if forced is None else int(forced)
        why = "option year" if forced is not None else f"most days of the window {window}"
        if not first <= year <= last:
            if not nearest or forced is not None:
                raise NoDataError(f"{c.id}: year {year} ({why}) is outside the product's coverage; "
                                  f"allowed: {first}..{last} (or set option year, or option "
                                  f"outside_coverage: nearest)")
            mapped = min(max(year, first), last)
            extra["temporal_mapping"] = (f"year {year} ({why}) is outside the coverage {first}..{last}; "
                                         f"year {mapped} was used (option outside_coverage: nearest)")
            year = mapped
        extra["product_year"] = year
        return year, extra

    # ------------------------------------------------------------------ reading

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


class PatchProduct(Product):
    """A vector product: one embedding per patch (or per location, as a square patch)."""

    @abstractmethod
    def patch_table(self):
        """The loaded :class:`~eoembed.products.patches.PatchTable`."""

    def describe(self) -> dict[str, Any]:
        table = getattr(self, "_table", None)
        desc = super().describe()
        if table is not None:
            desc["dims"] = int(table.embeddings.shape[1])
            desc["skipped_files"] = [list(s) for s in table.skipped]
        return desc

    def read(self, request: Request, *, pooling: str, grid: bool, cell_m: float | None) -> Read:
        from eoembed.products.patches import pool_patches

        _, extra = self.temporal_for(request)
        table = self.patch_table()
        window = (request.temporal.start, request.temporal.end) if table.times is not None else None
        sel = table.select(request.spatial.geometry(), window)
        if sel.index.size == 0:
            when = f" in [{request.temporal.start}, {request.temporal.end})" if window else ""
            raise NoDataError(f"{self.card.id}: no patch intersects the ROI{when} (source {self.source})")
        vec = pool_patches(table.embeddings[sel.index], sel.weights, pooling)
        extra.update({"patch_wkt": [g.wkt for g in table.geometries[sel.index]],
                      "patch_weights": [float(w) for w in sel.weights],
                      "patch_ids": [str(table.ids[i]) for i in sel.index]})
        if table.times is not None:
            extra["patch_times"] = [str(table.times[i]) for i in sel.index]
        return Read({"pooled": vec, "patches": table.embeddings[sel.index]}, sel.coverage, None, None, extra)
