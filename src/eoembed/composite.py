"""Per-pixel cloud masking and temporal compositing, plus resizing helpers for models.

A provider's :class:`~eoembed.items.Stack` holds every scene of the window; this module turns it
into a :class:`~eoembed.items.Composite`: one or more equal time frames, each the per-pixel
composite of the observations that the collection's quality band marks as clear.

* ``median``: per pixel and band, the median over the frame's valid observations (the mean of the
  two middle values for an even count, as :func:`numpy.nanmedian`).
* ``mosaic``: per pixel, all bands of the most recent valid observation of the frame.

Pixels without any valid observation in a frame get ``sensor.fill_value`` and ``valid=False``.
Everything is vectorised over pixels (a sort along time for the median, an arg-max for the mosaic).
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import replace

import numpy as np

from eoembed.collections import Collection, get_collection
from eoembed.errors import ProviderError, SpecError
from eoembed.grid import GridSpec
from eoembed.items import Composite, Stack
from eoembed.specs import SensorSpec, TemporalSpec

__all__ = ["make_composite", "nan_quantiles", "pad_to_multiple", "quality_mask", "resize_to"]


def _valid_mask(data: np.ndarray, qa: np.ndarray | None, collection: Collection) -> np.ndarray:
    """``(time, y, x)``: QA class not invalid (and finite) and every band of ``data`` finite."""
    valid = np.isfinite(data).all(axis=1)
    if qa is not None and collection.qa_band is not None:
        if qa.shape != valid.shape:
            raise ProviderError(f"stack qa has shape {qa.shape}, expected (time, y, x) = {valid.shape}")
        if np.issubdtype(qa.dtype, np.floating):
            valid &= np.isfinite(qa)
        valid &= ~np.isin(qa, np.asarray(collection.invalid_qa))
    return valid


def quality_mask(stack: Stack, collection: Collection | str) -> np.ndarray:
    """Per-observation validity of a stack.

    Args:
        stack: The imagery stack.
        collection: The :class:`~eoembed.collections.Collection` (or its id) whose
            ``invalid_qa`` classes (no data, saturated, cloud shadow, cloud, cirrus) are masked.

    Returns:
        ``(time, y, x)`` bool, True where the QA class is not invalid (a non-finite QA value
        counts as no data) and every band is finite. Without a QA band only finiteness counts.
    """
    coll = get_collection(collection) if isinstance(collection, str) else collection
    return _valid_mask(stack.data, stack.qa, coll)


def nan_quantiles(sorted_values: np.ndarray, counts: np.ndarray, qs: list[float]) -> np.ndarray:
    """Linear-interpolation quantiles of values sorted along axis 0 with NaN last.

    This is :func:`numpy.nanquantile` (method ``"linear"``) without its per-row Python loop:
    sort once (``np.sort`` puts NaN last), count the finite values, then interpolate.

    Args:
        sorted_values: ``(n, ...)`` values sorted along axis 0, NaN (missing) at the end.
        counts: ``(...)`` number of finite values per position (broadcastable to ``sorted[0]``).
        qs: Quantiles in ``[0, 1]``.

    Returns:
        ``(len(qs), ...)`` float64; NaN where the count is 0.
    """
    rest = sorted_values.shape[1:]
    counts = np.broadcast_to(counts, rest)
    out = np.empty((len(qs), *rest), dtype=np.float64)
    for i, q in enumerate(qs):
        pos = q * (np.maximum(counts, 1) - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(counts - 1, 0))
        a = np.take_along_axis(sorted_values, lo[None], axis=0)[0].astype(np.float64)
        b = np.take_along_axis(sorted_values, hi[None], axis=0)[0].astype(np.float64)
        frac = pos - lo
        out[i] = np.where(counts > 0, a + (b - a) * frac, np.nan)
    return out


def _frame_of(times: list[dt.datetime], bounds: list[tuple[dt.date, dt.date]]) -> np.ndarray:
    """Frame index of each acquisition (UTC date in a half-open bin), -1 outside the window."""
    starts = [b[0] for b in bounds]
    end = bounds[-1][1]
    out = np.full(len(times), -1, dtype=np.intp)
    for i, t in enumerate(times):
        if t.tzinfo is not None:
            t = t.astimezone(dt.timezone.utc)
        day = t.date()
        if starts[0] <= day < end:
            out[i] = bisect.bisect_right(starts, day) - 1
    return out


def _median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(band, y, x)`` per-pixel median over valid observations; ``values`` is overwritten."""
    if values.shape[0] == 1:  # one scene in the frame (single-date chips): its values, same result
        return np.where(valid[0][None], values[0].astype(np.float64), np.nan)
    np.copyto(values, np.nan, where=~valid[:, None])
    values.sort(axis=0)
    return nan_quantiles(values, valid.sum(axis=0)[None], [0.5])[0]


def _mosaic(data: np.ndarray, valid: np.ndarray, times: list[dt.datetime]) -> np.ndarray:
    """``(band, y, x)`` all bands of each pixel's most recent valid observation."""
    order = np.array(sorted(range(len(times)), key=lambda i: _utc(times[i])), dtype=np.intp)
    ordered = valid[order]
    last = len(order) - 1 - np.argmax(ordered[::-1], axis=0)  # latest valid (or 0 if none)
    src = order[last]
    picked = np.take_along_axis(data, np.broadcast_to(src[None, None], (1, *data.shape[1:])), axis=0)[0]
    return picked.astype(np.float64)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def make_composite(stack: Stack, sensor: SensorSpec, temporal: TemporalSpec,
                   roi_mask: np.ndarray) -> Composite:
    """Cloud-mask a stack and composite it into ``sensor.frames`` equal time frames.

    Args:
        stack: Imagery of one ROI on its grid (bands in any order; extra bands are dropped).
        sensor: Bands (output order), compositing method, number of frames and fill value.
        temporal: The window ``[start, end)``; acquisitions outside it are ignored. An
            acquisition exactly on a frame edge belongs to the later frame (half-open bins).
        roi_mask: ``(y, x)`` bool, True for pixels inside the ROI geometry (carried along).

    Returns:
        A float32 :class:`~eoembed.items.Composite` with bands in ``sensor.bands`` order.

    Raises:
        ProviderError: the stack lacks a requested band, or is from another collection.
        SpecError: ``roi_mask`` does not match the grid, or ``frames`` exceeds the window days.
    """
    if stack.collection != sensor.collection:
        raise ProviderError(f"stack collection {stack.collection!r} does not match the sensor's "
                            f"collection {sensor.collection!r}")
    missing = [b for b in sensor.bands if b not in stack.bands]
    if missing:
        raise ProviderError(f"stack lacks band(s) {missing} requested by the sensor; "
                            f"stack bands: {list(stack.bands)}")
    n_time, _, height, width = stack.data.shape
    roi_mask = np.asarray(roi_mask)
    if roi_mask.shape != (height, width):
        raise SpecError("roi_mask", roi_mask.shape, f"a (y, x) bool array of shape {(height, width)}",
                        "make_composite")
    if len(stack.times) != n_time:
        raise ProviderError(f"stack has {n_time} time steps but {len(stack.times)} times")
    data = np.asarray(stack.data, dtype=np.float32)
    if tuple(stack.bands) != sensor.bands:
        data = data[:, [stack.bands.index(b) for b in sensor.bands]]
    valid_obs = _valid_mask(data, stack.qa, get_collection(sensor.collection))

    bounds = temporal.frame_bounds(sensor.frames)
    frame_of = _frame_of(stack.times, bounds)
    out = np.full((sensor.frames, len(sensor.bands), height, width), sensor.fill_value, np.float32)
    valid = np.zeros((sensor.frames, height, width), dtype=bool)
    for f in range(sensor.frames):
        sel = np.flatnonzero(frame_of == f)
        if sel.size == 0:
            continue
        ok = valid_obs[sel]
        if sensor.composite == "median":
            values = _median(data[sel], ok)  # data[sel] is a fresh copy
        else:
            values = _mosaic(data[sel], ok, [stack.times[i] for i in sel])
        valid[f] = ok.any(axis=0)
        out[f] = np.where(valid[f][None], values, sensor.fill_value)

    used = [i for i in np.flatnonzero(frame_of >= 0) if valid_obs[i].any()]
    scenes: list[str] = []
    for i in used:
        for s in (stack.scenes[i] if i < len(stack.scenes) else []):
            if s not in scenes:
                scenes.append(s)
    return Composite(out, valid, bounds, tuple(sensor.bands), stack.grid, roi_mask.astype(bool),
                     float(sensor.fill_value), sensor.composite, scenes, stack.collection)


def resize_to(comp: Composite, size: int) -> Composite:
    """Resample a composite to ``size x size`` pixels (for models with a fixed input size).

    Data are resampled bilinearly (anti-aliased when shrinking) as a mask-weighted average, so
    gap pixels (``fill_value``) never bleed into valid ones; ``valid`` and ``roi_mask`` use
    nearest neighbour. The grid keeps its extent; its pixel size changes accordingly.
    """
    import torch
    from torch.nn import functional as F

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise SpecError("size", size, "a positive integer number of pixels", "resize_to")
    _, _, h, w = comp.data.shape
    if (h, w) == (size, size):
        return comp
    shrink = size < h or size < w
    weight = torch.from_numpy(comp.valid.astype(np.float32))[:, None]  # (frame, 1, y, x)
    data = torch.from_numpy(np.where(comp.valid[:, None], comp.data, 0).astype(np.float32))
    num = F.interpolate(data * weight, size=(size, size), mode="bilinear", antialias=shrink)
    den = F.interpolate(weight, size=(size, size), mode="bilinear", antialias=shrink)
    near = F.interpolate(torch.stack([torch.from_numpy(comp.valid.astype(np.float32)),
                                      torch.from_numpy(comp.roi_mask.astype(np.float32))[None]
                                      .expand(comp.valid.shape[0], h, w)], 1),
                         size=(size, size), mode="nearest-exact")
    valid = (near[:, 0] > 0.5) & (den[:, 0] > 1e-6)
    values = (num / den.clamp_min(1e-6)).where(valid[:, None], torch.tensor(comp.fill_value))
    a, b, c, d, e, f = comp.grid.transform
    grid = GridSpec(comp.grid.crs, (a * w / size, b, c, d, e * h / size, f), size, size)
    return replace(comp, data=values.numpy().astype(np.float32), valid=valid.numpy(), grid=grid,
                   roi_mask=near[0, 1].numpy() > 0.5)


def pad_to_multiple(comp: Composite, k: int) -> Composite:
    """Pad a composite at the bottom and right so height and width are multiples of ``k``.

    Padding pixels hold ``fill_value`` and are neither valid nor inside the ROI; the grid's
    origin is unchanged and its size grows.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError("k", k, "a positive integer number of pixels", "pad_to_multiple")
    _, _, h, w = comp.data.shape
    ph, pw = -h % k, -w % k
    if ph == 0 and pw == 0:
        return comp
    data = np.pad(comp.data, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=comp.fill_value)
    valid = np.pad(comp.valid, ((0, 0), (0, ph), (0, pw)), constant_values=False)
    roi = np.pad(comp.roi_mask, ((0, ph), (0, pw)), constant_values=False)
    grid = replace(comp.grid, width=w + pw, height=h + ph)
    return replace(comp, data=data, valid=valid, roi_mask=roi, grid=grid)
