"""The :class:`Embedder` base class every model implements (its card: :mod:`eoembed.models.card`).

A model is described by data (:class:`ModelCard`, re-exported here), never by environment variables.
Options come from config and are validated against ``Embedder.default_options``.
"""

from __future__ import annotations

import math
import threading
from abc import ABC
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eoembed.errors import ConfigError, ModelError, WeightsError
from eoembed.items import Composite
from eoembed.models.card import ModelCard, WeightsFile
from eoembed.models.inputs import InputSpec
from eoembed.specs import OutputSpec

__all__ = ["Embedder", "ModelCard", "WeightsFile", "grid_cells", "pool_cells"]


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
    """Base class of on-the-fly models and location encoders.

    A subclass declares :attr:`card` (or :attr:`cards`, one per variant) and implements
    :meth:`forward` (a :class:`~eoembed.prep.ReadyBatch` -> :class:`~eoembed.prep.TokenGrid`) or, for
    location encoders, :meth:`forward_locations`. Everything between a composite and a ready batch,
    and between token grids and outputs, is the framework's (:mod:`eoembed.prep`); a model may
    override :meth:`reduce_cells` when its features are statistics of a region, not token averages.

    Args:
        options: Model options from config; unknown keys are rejected.
        device: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``), or ``"auto"``.
        weights_dir: Cache directory for weights (see :mod:`eoembed.weights`).
        allow_download: Whether missing weights may be downloaded.
        weights_paths: Explicit local paths per weights file name (from config).
        weights_pins: sha256 per weights file name, for files whose card pins none (from config).
        variant: Which of :attr:`cards` (for model families with several sizes).
        input_prep: How ROIs reach a fixed input size (:class:`~eoembed.prep.InputPrep`).
    """

    card: ClassVar[ModelCard]
    cards: ClassVar[dict[str, ModelCard]] = {}
    default_options: ClassVar[dict[str, Any]] = {}
    #: Pieces per forward pass (the config's batch size is in ROIs; tiles may make more pieces).
    forward_batch: ClassVar[int] = 16
    #: Allowed values of ``options.tokens`` for models offering a choice of output tokens
    #: (checked at construction; empty = the model has no such option).
    token_choices: ClassVar[tuple[str, ...]] = ()
    #: :meth:`forward` may run in several threads at once (it changes no state of the embedder):
    #: CPU batches then run side by side (:mod:`eoembed.streams`). Set by models whose test shows
    #: the embeddings bitwise equal to one batch at a time.
    concurrent_forward: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None, device: str = "cpu",
                 weights_dir: str | None = None, allow_download: bool = False,
                 weights_paths: dict[str, str] | None = None,
                 weights_pins: dict[str, str] | None = None, variant: str | None = None,
                 input_prep: Any = None) -> None:
        from eoembed.prep import InputPrep

        if variant is not None:
            if variant not in self.cards:
                raise ConfigError(f"{type(self).__name__}: variant={variant!r} unknown; allowed {sorted(self.cards)}")
            self.card = self.cards[variant]
        opts = dict(self.default_options)
        unknown = sorted(set(options or {}) - set(opts))
        if unknown:
            raise ConfigError(f"model {self.card.id!r}: unknown option(s) {unknown}; "
                              f"allowed: {sorted(opts)}")
        opts.update(options or {})
        self.options = opts
        if "batch_size" in opts:  # images per forward pass
            b = opts["batch_size"]
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise ConfigError(f"model {self.card.id!r}: options.batch_size={b!r} is invalid: allowed a "
                                  "positive integer")
            self.forward_batch = b
        if self.token_choices and opts.get("tokens") not in self.token_choices:
            raise ConfigError(f"model {self.card.id!r}: options.tokens={opts.get('tokens')!r} is invalid: "
                              f"allowed {list(self.token_choices)}")
        self.device = resolve_device(device)
        self.weights_dir = weights_dir
        self.allow_download = allow_download
        self.weights_paths = dict(weights_paths or {})
        self.weights_pins = dict(weights_pins or {})
        self.weights_sha256: dict[str, str] = {}
        self.input_prep = input_prep if isinstance(input_prep, InputPrep) else InputPrep(**(input_prep or {}))
        self._calls = threading.local()  # what the last embed_outputs of this thread left
        self._loaded = False

    @property
    def grid_info(self) -> list[tuple[Any, int] | None]:
        """After :meth:`embed_outputs` (in the calling thread): per item, the token grid (GridSpec)
        and cell size in tokens of its grid output, so exports georeference every cell."""
        return getattr(self._calls, "grid_info", [])

    @grid_info.setter
    def grid_info(self, value: list) -> None:
        self._calls.grid_info = value

    @property
    def prep_used(self) -> list[str]:
        """After :meth:`embed_outputs` (in the calling thread): per item, how it reached the input size."""
        return getattr(self._calls, "prep_used", [])

    @prep_used.setter
    def prep_used(self, value: list) -> None:
        self._calls.prep_used = value

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

    # ------------------------------------------------------------------ model side
    def inputs(self) -> tuple[InputSpec, ...]:
        """The declared inputs, as this instance's options shape them (default: the card's)."""
        return self.card.inputs

    def forward(self, batch: Any) -> Any:
        """Map a ready batch to a :class:`~eoembed.prep.TokenGrid` (on-the-fly models)."""
        raise NotImplementedError

    def forward_locations(self, latlon: np.ndarray) -> np.ndarray:
        """``(N, 2)`` ``[lat, lon]`` degrees -> ``(N, dims)`` (location encoders)."""
        raise NotImplementedError

    def embed_requests(self, requests: list[Any], pooling: str = "mean", grid: bool = False,
                       cell_m: float | None = None) -> dict[str, Any]:
        """Location encoders: embed each request's centre (nothing is fetched)."""
        from eoembed.pipeline import location_items

        if self.card.kind != "location":
            raise ModelError(f"model {self.card.id!r} runs on imagery; embed composites instead")
        self.load()
        return location_items(self, requests)

    def reduce_cells(self, features: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
        """Reduce ``(D, h, w)`` tokens over square cells of ``k`` tokens -> ``(dims, rows, cols)``.

        Default: the token-weighted mean (so pooling over the whole canvas is the mean of every
        unmasked token). Models whose features are statistics of a region override this.
        """
        return pool_cells(features, weight, k)

    def describe(self) -> dict[str, Any]:
        """Self-description stored with every embedding (card facts, options, weights sha256)."""
        return {"model": self.card.id, "family": self.card.family, "dims": self.card.dims,
                "variant": self.card.variant, "verified": self.card.verified,
                "options": self.options, "weights_sha256": dict(self.weights_sha256),
                "input_prep": self.input_prep.to_dict(),
                "licence": self.card.licence, "citation": self.card.citation}

    # ------------------------------------------------------------------ framework side
    def embed_batch(self, composites: list[Any], output: OutputSpec) -> list[np.ndarray]:
        """Embed composites for one output spec (see :meth:`embed_outputs`)."""
        return self.embed_outputs(composites, [output])[0]

    def embed_outputs(self, composites: list[Any], outputs: list[OutputSpec]) -> list[list[np.ndarray]]:
        """Embed a batch once and reduce it for every requested output.

        Args:
            composites: One :class:`~eoembed.items.Composite` per ROI (or a dict modality ->
                composite on one grid, for multi-modal models).
            outputs: Output specs.

        Returns:
            One list per output: ``(dims,)`` pooled vectors or ``(dims, rows, cols)`` grids (NaN
            where a cell has no token). :attr:`grid_info` holds each item's token grid.
        """
        from eoembed.prep import batches, pieces_for

        self.load()
        inputs = self.inputs()
        specs = {s.modality: s for s in inputs}
        primary = inputs[0]
        pieces, canvases, self.prep_used = [], [], []
        for i, comp in enumerate(composites):
            comps = comp if isinstance(comp, dict) else {primary.modality: comp}
            for spec in inputs:
                self._check_time(comps[spec.modality], spec)
            pcs, canvas, mode = pieces_for(i, comps, primary, self.input_prep)
            pieces += pcs
            canvases.append(canvas)
            self.prep_used.append(mode)
        wavelengths = _wavelengths(inputs, composites)
        bandwidths = _wavelengths(inputs, composites, "bandwidths_nm")
        for chunk, batch in batches(pieces, specs, self.forward_batch, wavelengths, bandwidths):
            tokens = self.forward(batch)
            for k, pc in enumerate(chunk):
                canvases[pc.item].add(tokens.features[k], tokens.weight[k], pc.row, pc.col)
        results: list[list[np.ndarray]] = [[] for _ in outputs]
        self.grid_info = []
        for i, canvas in enumerate(canvases):
            feats, weight = canvas.result()
            if not (weight > 0).any():
                raise ModelError(f"{self.card.id}: no valid token for item {i} (all pixels invalid?)")
            info = None
            for k, out in enumerate(outputs):
                if out.mode == "pooled" and out.pooling == "mean":
                    vec = self.reduce_cells(feats, weight, max(feats.shape[1:]))[:, 0, 0]
                elif out.mode == "pooled":
                    cells = self.reduce_cells(feats, weight, self.card.pool_cell_tokens)
                    flat = cells.reshape(cells.shape[0], -1)
                    finite = np.isfinite(flat)
                    vec = np.where(finite.any(axis=1), np.where(finite, flat, -np.inf).max(axis=1), np.nan)
                else:
                    token_m = abs(canvas.grid.res)
                    cell = (self.card.grid_cell_tokens if out.cell_m is None
                            else max(1, round(out.cell_m / token_m)))
                    vec = self.reduce_cells(feats, weight, cell)
                    info = (canvas.grid, cell)
                results[k].append(np.asarray(vec, dtype=np.float32))
            self.grid_info.append(info)
        return results

    def _check_time(self, comp: Composite, spec: InputSpec) -> None:
        t, n = spec.time, comp.data.shape[0]
        if not t.min_frames <= n <= t.max_frames:
            raise ModelError(f"{self.card.id}: input {spec.modality!r} got {n} frame(s); the model takes "
                             f"{t.describe()} (set the sensor's frames)")
        if t.monthly:
            from eoembed.models.inputs import _frames_are_months

            if not _frames_are_months(comp.frame_bounds):
                lengths = [(b - a).days for a, b in comp.frame_bounds]
                raise ModelError(f"{self.card.id}: needs monthly frames (calendar-month bins); got {n} frame(s) of {lengths} days "
                                 "(set frames to the number of months in the window)")


def _wavelengths(inputs: tuple[InputSpec, ...], composites: list[Any],
                 what: str = "wavelengths_nm") -> dict[str, dict[str, float | None]]:
    """Central wavelengths (or ``what="bandwidths_nm"``) of each modality's bands, from the composites'
    collections."""
    from eoembed.collections import COLLECTIONS

    out: dict[str, dict[str, float | None]] = {}
    if not composites:
        return out
    first = composites[0] if isinstance(composites[0], dict) else {inputs[0].modality: composites[0]}
    for spec in inputs:
        coll = COLLECTIONS.get(first[spec.modality].collection)
        out[spec.modality] = dict(getattr(coll, what)) if coll else {}
    return out
