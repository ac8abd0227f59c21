"""Model cards and the :class:`Embedder` base class every model implements.

A model is described by data (:class:`ModelCard`), never by environment variables.
Options come from config and are validated against ``Embedder.default_options``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ConfigError, WeightsError
from eoembed.items import Composite
from eoembed.specs import OutputSpec

__all__ = ["Embedder", "ModelCard", "WeightsFile", "grid_cells", "pool_cells"]


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file.

    Attributes:
        name: File name in the cache directory (``"<model id>/<name>"``).
        url: Published download URL.
        sha256: Expected sha256 of the file (lowercase hex).
        licence: Licence of the weights.
        size_bytes: Expected size, if known (for progress and truncation checks).
    """

    name: str
    url: str
    sha256: str
    licence: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """Everything a user or the workflow needs to know about a model, as data.

    Attributes:
        id: Registry id (``"spectral"``).
        family: Model family; selects the conda env ``envs/<family>.yaml``.
        kind: ``"on_the_fly"`` (runs on fetched imagery) or ``"precomputed"`` (reads a product).
        description: One sentence.
        collection: Imagery collection the model expects.
        bands: Input bands in the order the model consumes them.
        wavelengths_nm: Central wavelength of each input band.
        native_gsd_m: Ground sampling distance the model was trained at.
        input_size: Input tile size in pixels (``None`` = any size).
        temporal: ``"single"`` (one composite), ``"frames"`` (a time series) or ``"static"``.
        frames: Default number of time frames the model wants.
        dims: Embedding dimension.
        outputs: Supported output modes (``"pooled"``, ``"grid"``).
        weights: Weights files (empty for weight-free models).
        licence: Licence of the method/code.
        citation: How to cite it.
        url: Project page.
        mem_mb, runtime_min: Resource hints for schedulers (per embed job of one chunk).
    """

    id: str
    family: str
    kind: str
    description: str
    collection: str
    bands: tuple[str, ...]
    wavelengths_nm: tuple[float, ...]
    native_gsd_m: float
    input_size: int | None
    temporal: str
    frames: int
    dims: int
    outputs: tuple[str, ...]
    weights: tuple[WeightsFile, ...] = ()
    licence: str = ""
    citation: str = ""
    url: str = ""
    mem_mb: int = 2000
    runtime_min: int = 30

    def __post_init__(self) -> None:
        if self.kind not in ("on_the_fly", "precomputed"):
            raise ConfigError(f"ModelCard {self.id}: kind={self.kind!r}, allowed 'on_the_fly'/'precomputed'")
        if self.temporal not in ("single", "frames", "static"):
            raise ConfigError(f"ModelCard {self.id}: temporal={self.temporal!r}")
        if len(self.wavelengths_nm) not in (0, len(self.bands)):
            raise ConfigError(f"ModelCard {self.id}: wavelengths_nm must match bands")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grid_cells(height: int, width: int, cell_px: int) -> tuple[int, int]:
    """Number of grid cells (rows, cols) when a ``height x width`` image is cut into cells."""
    return max(1, math.ceil(height / cell_px)), max(1, math.ceil(width / cell_px))


def pool_cells(features: np.ndarray, weight: np.ndarray, cell_px: int) -> np.ndarray:
    """Weighted mean of ``(dim, y, x)`` features over square cells of ``cell_px`` pixels.

    ``weight`` is ``(y, x)`` (e.g. the valid & inside-ROI mask). Cells without weight are NaN.
    Returns ``(dim, rows, cols)`` float32.
    """
    dim, h, w = features.shape
    rows, cols = grid_cells(h, w, cell_px)
    ph, pw = rows * cell_px - h, cols * cell_px - w
    f = np.pad(np.nan_to_num(features, nan=0.0), ((0, 0), (0, ph), (0, pw)))
    wt = np.pad(weight.astype(np.float64), ((0, ph), (0, pw)))
    f = f.reshape(dim, rows, cell_px, cols, cell_px)
    wt = wt.reshape(rows, cell_px, cols, cell_px)
    num = np.einsum("drapb,rapb->drp", f, wt)
    den = wt.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out.astype(np.float32)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values unchanged."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder(ABC):
    """Base class: builds once (weights loaded once per job), then embeds batches.

    Subclasses set :attr:`card` and :attr:`default_options`, and implement :meth:`embed_batch`.

    Args:
        options: Model options from config; unknown keys are rejected.
        device: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
        weights_dir: Cache directory for weights (see :mod:`eoembed.weights`).
        allow_download: Whether missing weights may be downloaded.
        weights_paths: Explicit local paths per weights file name (from config).
        weights_pins: sha256 per weights file name, for files whose card pins none (from config).
    """

    card: ClassVar[ModelCard]
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu",
                 weights_dir: str | None = None, allow_download: bool = False,
                 weights_paths: dict[str, str] | None = None,
                 weights_pins: dict[str, str] | None = None) -> None:
        opts = dict(self.default_options)
        unknown = sorted(set(options or {}) - set(opts))
        if unknown:
            raise ConfigError(f"model {self.card.id!r}: unknown option(s) {unknown}; "
                              f"allowed: {sorted(opts)}")
        opts.update(options or {})
        self.options = opts
        self.device = resolve_device(device)
        self.weights_dir = weights_dir
        self.allow_download = allow_download
        self.weights_paths = dict(weights_paths or {})
        self.weights_pins = dict(weights_pins or {})
        self.weights_sha256: dict[str, str] = {}
        self._loaded = False

    def load(self) -> None:
        """Load weights (idempotent). Weight-free models do nothing."""
        if not self._loaded:
            self._load()
            self._loaded = True

    def _load(self) -> None:
        """Subclass hook: load weights into memory."""

    def weights_file(self, name: str) -> tuple[Path, str]:
        """Resolve the card's weights file ``name`` (config path, cache, download if allowed).

        Returns:
            ``(path, expected_sha256)``; the sha256 is checked by whoever loads the file.

        Raises:
            WeightsError: the file is missing (the message says where to put it) or its
                sha256 is pinned neither by the card nor by the config.
        """
        from eoembed.weights import resolve

        wf = next(w for w in self.card.weights if w.name == name)
        sha = wf.sha256 or self.weights_pins.get(name)
        if not sha:
            raise WeightsError(
                f"model '{self.card.id}': eoembed does not pin a sha256 for {name} ({wf.url}). "
                f"Download it, check it, and pin it in the config as "
                f"models.{self.card.id}.weights_sha256.{name}: <output of sha256sum>")
        wf = replace(wf, sha256=sha)
        path = resolve(self.card.id, wf, explicit_path=self.weights_paths.get(name),
                       cache_dir=self.weights_dir, allow_download=self.allow_download)
        self.weights_sha256[name] = sha
        return path, sha

    def cell_px(self, output: OutputSpec, composite: Composite) -> int:
        """Grid cell size in pixels for grid output (``cell_m`` or the model's native cell)."""
        if output.cell_m is not None:
            return max(1, round(output.cell_m / composite.grid.res))
        return self.native_cell_px()

    def native_cell_px(self) -> int:
        """The model's native grid cell, in pixels. Default: one pixel."""
        return 1

    @abstractmethod
    def embed_batch(self, composites: list[Composite], output: OutputSpec) -> list[np.ndarray]:
        """Embed a batch of composites.

        Returns one float32 array per composite: ``(dims,)`` for pooled output, or
        ``(dims, rows, cols)`` for grid output with cells of :meth:`cell_px` pixels
        (NaN for cells without valid pixels).
        """

    def embed_outputs(self, composites: list[Composite], outputs: list[OutputSpec]) -> list[list[np.ndarray]]:
        """Embed a batch once per requested output; models that can share work override this.

        Returns one list per output spec, each as :meth:`embed_batch` returns it.
        """
        return [self.embed_batch(composites, out) for out in outputs]

    def describe(self) -> dict[str, Any]:
        """Self-description stored with every embedding (card facts, options, weights sha256)."""
        return {"model": self.card.id, "family": self.card.family, "dims": self.card.dims,
                "options": self.options, "weights_sha256": dict(self.weights_sha256),
                "licence": self.card.licence, "citation": self.card.citation}
