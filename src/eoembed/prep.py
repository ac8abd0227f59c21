"""The framework side of the model contract: composites -> ready batches -> token grids -> outputs.

From a model's declared :class:`~eoembed.models.inputs.InputSpec` this module selects and orders
bands, applies the declared transform and normalisation, derives bands (before or after
normalisation), applies the missing-data policy, builds masks and time tokens, brings each ROI to
the model's spatial policy (``resize`` / ``tile`` / ``pad``, or padding to a multiple of the patch)
and batches pieces of equal shape. A model maps a :class:`ReadyBatch` to a :class:`TokenGrid`;
:func:`place_tokens` stitches token grids back onto each ROI's georeferenced *token canvas*, whose
cells have their true footprint on the ground (after resize, a token covers ``extent / tokens``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

import numpy as np

from eoembed.composite import pad_to_multiple, resize_to
from eoembed.errors import ModelError
from eoembed.grid import GridSpec
from eoembed.items import Composite
from eoembed.models.inputs import InputSpec

EPOCH = dt.date(1970, 1, 1)

__all__ = ["Canvas", "InputPrep", "Piece", "ReadyBatch", "TokenGrid", "batches", "normalise", "pieces_for"]


@dataclass(frozen=True)
class InputPrep:
    """How a ROI is brought to a fixed-size model input (config ``output.input_prep``)."""

    mode: str | None = None  # None = the model's default
    max_tiles: int = 64
    tile_overlap_px: int = 0

    def __post_init__(self) -> None:
        if self.mode not in (None, "resize", "tile", "pad"):
            raise ModelError(f"output.input_prep={self.mode!r} is invalid: allowed resize, tile or pad")
        if self.max_tiles < 1 or self.tile_overlap_px < 0:
            raise ModelError(f"output.max_tiles={self.max_tiles} / tile_overlap_px={self.tile_overlap_px} invalid: "
                             "allowed max_tiles >= 1, overlap >= 0")

    def to_dict(self) -> dict:
        return {"input_prep": self.mode, "max_tiles": self.max_tiles, "tile_overlap_px": self.tile_overlap_px}


@dataclass
class ReadyBatch:
    """A model-ready batch: everything already selected, normalised, filled and shaped.

    Attributes:
        x: modality -> ``(B, T, C, H, W)`` float32 in the model's normalised units.
        mask: modality -> ``(B, T, H, W)`` bool, True where the pixel is missing (or outside the ROI)
            and the model should not see it; all False under a fill policy.
        channels: modality -> channel names of axis 2.
        months: ``(B, T)`` int64 month (0 = January) of each frame's middle day.
        doy: ``(B, T)`` int64 0-based day of year of each frame's middle day.
        latlon: ``(B, 2)`` ``[lat, lon]`` of the piece centre, degrees.
        pixel_latlon: ``(B, H, W, 2)`` ``[lat, lon]`` of every pixel centre (when declared).
        gsd_m: Pixel size of the batch in metres (after resize).
        wavelengths_nm: modality -> central wavelength of each band channel (NaN if unknown).
        years: ``(B, T)`` int64 calendar year of each frame's middle day (None when not built by
            :func:`batches`).
        bandwidths_nm: modality -> spectral bandwidth of each band channel (NaN if unknown).
        epoch_days: ``(B, T)`` int64 days since 1970-01-01 of each frame's middle day.
    """

    x: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]
    channels: dict[str, tuple[str, ...]]
    months: np.ndarray
    doy: np.ndarray
    latlon: np.ndarray
    pixel_latlon: np.ndarray | None
    gsd_m: float
    wavelengths_nm: dict[str, tuple[float, ...]] = field(default_factory=dict)
    years: np.ndarray | None = None
    bandwidths_nm: dict[str, tuple[float, ...]] = field(default_factory=dict)
    epoch_days: np.ndarray | None = None

    @property
    def size(self) -> int:
        return next(iter(self.x.values())).shape[0]


@dataclass
class TokenGrid:
    """A model's output for a batch: ``features (B, D, h, w)`` and ``weight (B, h, w)``.

    ``weight`` is what a token counts for when the framework pools (e.g. the number of unmasked
    tokens averaged into a patch); 0 = no token there.
    """

    features: np.ndarray
    weight: np.ndarray

    @classmethod
    def from_vit(cls, pooled, patch_tokens, tokens: str) -> "TokenGrid":
        """A ViT's output, every token counting once: ``pooled (B, D)`` as one token when
        ``tokens == "pooled"``, else ``patch_tokens (B, N, D)`` (prefix tokens already dropped)
        on their square ``sqrt(N) x sqrt(N)`` patch grid. Torch tensors in, float32 arrays out."""
        if tokens == "pooled":
            f = pooled.float().cpu().numpy()[:, :, None, None]
        else:
            side = int(round(patch_tokens.shape[1] ** 0.5))
            f = patch_tokens.transpose(1, 2).reshape(patch_tokens.shape[0], -1, side, side).float().cpu().numpy()
        return cls(f, np.ones((f.shape[0], f.shape[2], f.shape[3]), np.float32))


@dataclass
class Canvas:
    """The token canvas of one ROI: where its tokens lie on the ground."""

    grid: GridSpec  # pixel grid of the tokens (one pixel = one token)
    sum_f: np.ndarray | None = None
    sum_w: np.ndarray | None = None
    cover: np.ndarray | None = None
    nan: np.ndarray | None = None

    single: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, feats: np.ndarray, weight: np.ndarray, row: int, col: int) -> None:
        d, h, w = feats.shape
        h, w = min(h, self.grid.height - row), min(w, self.grid.width - col)
        full = (row, col, h, w) == (0, 0, self.grid.height, self.grid.width)
        if full and self.single is None and self.sum_f is None:  # the usual case: one piece, no stitching
            self.single = (feats[:, :h, :w], weight[:h, :w])
            return
        if self.single is not None:  # a second piece: fall back to accumulation
            first, self.single = self.single, None
            self.add(first[0], first[1], 0, 0)
        if self.sum_f is None:
            shape = (self.grid.height, self.grid.width)
            self.sum_f = np.zeros((d, *shape), np.float64)
            self.sum_w, self.cover = np.zeros(shape), np.zeros(shape)
            self.nan = np.zeros((d, *shape), bool)
        f, wt = feats[:, :h, :w].astype(np.float64), weight[:h, :w].astype(np.float64)
        sl = (slice(row, row + h), slice(col, col + w))
        self.nan[(slice(None), *sl)] |= np.isnan(f) & (wt > 0)
        self.sum_f[(slice(None), *sl)] += np.nan_to_num(f) * wt
        self.sum_w[sl] += wt
        self.cover[sl] += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(features (D, h, w) float32 with NaN where no token, weight (h, w))``."""
        if self.single is not None:
            f, wt = self.single
            return np.where(wt[None] > 0, f, np.nan).astype(np.float32), np.asarray(wt, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(self.sum_w > 0, self.sum_f / np.where(self.sum_w > 0, self.sum_w, 1), np.nan)
        f[self.nan] = np.nan
        return f.astype(np.float32), self.sum_w / np.maximum(self.cover, 1)


@dataclass
class Piece:
    """One model input: a composite (or a tile of it) per modality, and where its tokens go."""

    item: int
    comps: dict[str, Composite]
    row: int  # token offset in the item's canvas
    col: int

    def shape_key(self) -> tuple:
        return tuple((m, c.data.shape) for m, c in sorted(self.comps.items()))


def _token_canvas(comp: Composite, p: int, tokens_h: int | None = None, tokens_w: int | None = None) -> Canvas:
    """A canvas of ``ceil(H/p) x ceil(W/p)`` tokens (or the given counts spread over the extent)."""
    h, w = comp.grid_shape()
    a, b, c, d, e, f = comp.grid.transform
    if tokens_h is None:
        th, tw = math.ceil(h / p), math.ceil(w / p)
        transform = (a * p, b, c, d, e * p, f)
    else:
        th, tw = tokens_h, tokens_w
        transform = (a * w / tw, b, c, d, e * h / th, f)
    return Canvas(GridSpec(comp.grid.crs, transform, tw, th))


def _tile_starts(n: int, size: int, stride: int) -> list[int]:
    if n <= size:
        return [0]
    starts = list(range(0, n - size, stride)) + [n - size]
    return sorted(set(starts))


def _crop(comp: Composite, r: int, c: int, size: int) -> Composite:
    a, b, x0, d, e, y0 = comp.grid.transform
    grid = GridSpec(comp.grid.crs, (a, b, x0 + c * a, d, e, y0 + r * e), size, size)
    sl = (slice(r, r + size), slice(c, c + size))
    return replace(comp, data=comp.data[(slice(None), slice(None), *sl)], valid=comp.valid[(slice(None), *sl)],
                   roi_mask=comp.roi_mask[sl], grid=grid)


def pieces_for(item: int, comps: dict[str, Composite], spec: InputSpec,
               prep: InputPrep) -> tuple[list[Piece], Canvas, str]:
    """Bring one ROI to the model's spatial policy.

    Returns:
        ``(pieces, canvas, mode)``: the model inputs, the ROI's token canvas and the input prep used.
    """
    sp = spec.space
    p = sp.token_px
    first = next(iter(comps.values()))
    h, w = first.grid_shape()
    if sp.kind == "any":
        return [Piece(item, comps, 0, 0)], _token_canvas(first, p), "none"
    if sp.kind == "multiple":
        return ([Piece(item, {m: pad_to_multiple(c, sp.size) for m, c in comps.items()}, 0, 0)],
                _token_canvas(first, p), "pad")
    size, mode = sp.size, prep.mode or sp.default_prep
    if mode == "resize":
        n = size // p
        return ([Piece(item, {m: resize_to(c, size) for m, c in comps.items()}, 0, 0)],
                _token_canvas(first, p, n, n), mode)
    if mode == "pad":
        if h > size or w > size:
            raise ModelError(f"input_prep 'pad': the ROI grid is {h} x {w} px, larger than the model input "
                             f"{size} x {size}; allowed: ROIs up to {size} px, or input_prep resize / tile")
        return ([Piece(item, {m: _pad_to(c, size) for m, c in comps.items()}, 0, 0)], _token_canvas(first, p), mode)
    # tile: cut into size x size tiles on the token lattice, the last tiles flush with the edge
    padded = {m: _pad_to(pad_to_multiple(c, p), size) for m, c in comps.items()}
    ph, pw = next(iter(padded.values())).grid_shape()
    stride = max(p, (size - prep.tile_overlap_px) // p * p)
    rows, cols = _tile_starts(ph, size, stride), _tile_starts(pw, size, stride)
    if len(rows) * len(cols) > prep.max_tiles:
        raise ModelError(f"input_prep 'tile': the ROI needs {len(rows) * len(cols)} tiles of {size} px; "
                         f"output.max_tiles={prep.max_tiles} allows fewer (raise it, or use resize)")
    pieces = [Piece(item, {m: _crop(c, r, q, size) for m, c in padded.items()}, r // p, q // p)
              for r in rows for q in cols]
    return pieces, _token_canvas(first, p), mode


def _pad_to(comp: Composite, size: int) -> Composite:
    """Pad bottom/right to at least ``size`` px per side (padding is invalid and outside the ROI)."""
    h, w = comp.grid_shape()
    if h >= size and w >= size:
        return comp
    ph, pw = max(0, size - h), max(0, size - w)
    data = np.pad(comp.data, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=comp.fill_value)
    valid = np.pad(comp.valid, ((0, 0), (0, ph), (0, pw)), constant_values=False)
    roi = np.pad(comp.roi_mask, ((0, ph), (0, pw)), constant_values=False)
    return replace(comp, data=data, valid=valid, roi_mask=roi, grid=replace(comp.grid, width=w + pw, height=h + ph))


def _normalised_difference(a: np.ndarray, b: np.ndarray, zero_den: float, den: str) -> np.ndarray:
    s = a + b
    ok = s > 0 if den == "positive" else s != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (a - b) / np.where(ok, s, 1), zero_den)


def apply_norm(values: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(..., C, y, x)`` stack units of ``spec.bands`` -> the declared transform and normalisation
    (float64). Also used to build weights from imagery (e.g. the MOSAIKS filter bank) so they see
    exactly what the model sees."""
    raw = np.asarray(values, dtype=np.float64)
    if spec.transform == "db":
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 10.0 * np.log10(raw)
    shift = np.array([n.shift for n in spec.norm])[:, None, None]
    div = np.array([n.div for n in spec.norm])[:, None, None]
    out = np.subtract(raw, shift)  # (raw - shift) / div, with one temporary
    out /= div
    return out


def normalise(comp: Composite, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """One composite -> ``(x (T, C, H, W) float32 normalised, missing (T, H, W) bool)`` per ``spec``."""
    missing_bands = [b for b in spec.bands if b not in comp.bands]
    if missing_bands:
        raise ModelError(f"input {spec.modality!r} needs bands {missing_bands}, absent from the composite "
                         f"(bands {list(comp.bands)})")
    raw = comp.band_data(spec.bands).astype(np.float64)  # (T, C, H, W), a fresh array
    missing = ~(comp.valid & comp.roi_mask[None]) | ~np.isfinite(raw).all(axis=1)
    raw[np.broadcast_to(missing[:, None], raw.shape)] = np.nan
    if spec.missing == "fill_mean":  # per band: mean over frames of per-frame spatial means, empty frame = 0
        counts = np.isfinite(raw).sum(axis=(2, 3))
        sums = np.nansum(raw, axis=(2, 3))
        frame_means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)  # (T, C)
        fill = frame_means.mean(axis=0)
        raw = np.where(missing[:, None], fill[None, :, None, None], raw)
    normed = apply_norm(raw, spec)
    if spec.transform == "db":
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 10.0 * np.log10(raw)  # derived bands of the "raw" stage see the transformed values
    x = normed  # NaN and +-inf -> 0 (np.nan_to_num's result, in place: normed is a fresh array)
    x[~np.isfinite(x)] = 0.0
    if spec.per_image == "minmax":  # per frame, over the valid pixels of every band
        for t in range(x.shape[0]):
            ok = ~missing[t]
            if ok.any():
                lo = x[t][:, ok].min()
                x[t] = (x[t] - lo) / max(float(x[t][:, ok].max() - lo), 1.0)
    if spec.clip is not None:
        x = np.clip(x, *spec.clip)
    derived = []
    for d in spec.derived:
        src = raw if d.stage == "raw" else x
        a, b = (src[:, spec.bands.index(n)] for n in d.bands)
        derived.append((_normalised_difference(a, b, d.zero_den, d.den) - d.norm.shift) / d.norm.div)
    if derived:
        x = np.concatenate([x, np.stack(derived, axis=1)], axis=1)
    if spec.missing in ("fill_mean", "fill_zero"):
        return x.astype(np.float32), np.zeros_like(missing)
    x[np.broadcast_to(missing[:, None], x.shape)] = 0.0  # masked pixels hold 0 (the model drops them)
    return x.astype(np.float32), missing


def _mid_dates(comp: Composite):
    return [a + (b - a) / 2 for a, b in comp.frame_bounds]


def _per_band(table: dict[str, dict[str, float | None]] | None, specs: dict[str, InputSpec]):
    """modality -> one float per declared band from ``table`` (modality -> band -> value), NaN if unknown."""
    return {m: tuple(float(v) if v is not None else float("nan")
                     for v in ((table or {}).get(m, {}).get(b) for b in specs[m].bands)) for m in specs}


def batches(pieces: list[Piece], specs: dict[str, InputSpec], batch_size: int,
            wavelengths: dict[str, dict[str, float | None]] | None = None,
            bandwidths: dict[str, dict[str, float | None]] | None = None):
    """Group pieces of equal shape and yield ``(pieces, ReadyBatch)`` of at most ``batch_size``.

    ``wavelengths`` / ``bandwidths``: modality -> band -> nm (from the collection), handed on per channel."""
    groups: dict[tuple, list[Piece]] = {}
    for pc in pieces:
        groups.setdefault(pc.shape_key(), []).append(pc)
    need_pix = any("pixel_latlon" in s.metadata for s in specs.values())
    for group in groups.values():
        for s in range(0, len(group), batch_size):
            chunk = group[s:s + batch_size]
            xs: dict[str, list] = {m: [] for m in specs}
            ms: dict[str, list] = {m: [] for m in specs}
            for pc in chunk:
                for m, spec in specs.items():
                    x, miss = normalise(pc.comps[m], spec)
                    xs[m].append(x)
                    ms[m].append(miss)
            ref = [next(iter(pc.comps.values())) for pc in chunk]
            mids = [_mid_dates(c) for c in ref]
            lonlat = [c.grid.center_lonlat() for c in ref]
            pix = None
            if need_pix:
                pix = np.stack([np.stack(c.grid.lonlat()[::-1], axis=-1) for c in ref])
            yield chunk, ReadyBatch(
                x={m: np.stack(v) for m, v in xs.items()}, mask={m: np.stack(v) for m, v in ms.items()},
                channels={m: specs[m].channels for m in specs},
                months=np.array([[d.month - 1 for d in row] for row in mids], dtype=np.int64),
                doy=np.array([[d.timetuple().tm_yday - 1 for d in row] for row in mids], dtype=np.int64),
                latlon=np.array([[lat, lon] for lon, lat in lonlat], dtype=np.float64),
                pixel_latlon=pix, gsd_m=float(abs(ref[0].grid.transform[0])),
                wavelengths_nm=_per_band(wavelengths, specs), bandwidths_nm=_per_band(bandwidths, specs),
                epoch_days=np.array([[(d - EPOCH).days for d in row] for row in mids], dtype=np.int64),
                years=np.array([[d.year for d in row] for row in mids], dtype=np.int64))
