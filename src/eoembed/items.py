"""In-memory data passed between stages: imagery stacks, composites and embeddings.

Each container converts to and from a flat dict of numpy arrays plus a JSON-ready
metadata dict, which is how :mod:`eoembed.chunkio` stores it between workflow jobs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eoembed.grid import GridSpec

__all__ = ["Composite", "Embedding", "Request", "Stack"]


@dataclass(frozen=True)
class Request:
    """One ROI of the sample table: id, place and time window (plus labels, unused here)."""

    roi_id: str
    spatial: Any  # SpatialSpec
    temporal: Any  # TemporalSpec

    def to_dict(self) -> dict[str, Any]:
        return {"roi_id": self.roi_id, "spatial": self.spatial.to_dict(),
                "temporal": self.temporal.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Request":
        from eoembed.specs import TemporalSpec, spatial_from_dict

        t = d["temporal"]
        return cls(d["roi_id"], spatial_from_dict(d["spatial"]), TemporalSpec.range(t["start"], t["end"]))

    def key(self) -> str:
        from eoembed.specs import stable_key

        return stable_key({"spatial": self.spatial.to_dict(), "temporal": self.temporal.to_dict()})


@dataclass
class Stack:
    """Imagery for one ROI as returned by a provider, on the ROI's grid.

    Attributes:
        data: ``(time, band, y, x)`` float32 digital numbers; NaN where the scene has no data.
        qa: ``(time, y, x)`` quality-band classes (e.g. Sentinel-2 SCL), or ``None``.
        times: Acquisition time of each time step (UTC).
        bands: Band names, in the order of axis 1.
        grid: The ROI grid the arrays are on.
        collection: Collection id.
        scenes: Provenance: the scene/item ids used for each time step.
    """

    data: np.ndarray
    qa: np.ndarray | None
    times: list[dt.datetime]
    bands: tuple[str, ...]
    grid: GridSpec
    collection: str
    scenes: list[list[str]] = field(default_factory=list)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"data": self.data}
        if self.qa is not None:
            arrays["qa"] = self.qa
        meta = {"times": [t.isoformat() for t in self.times], "bands": list(self.bands),
                "grid": self.grid.to_dict(), "collection": self.collection, "scenes": self.scenes}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "Stack":
        return cls(arrays["data"], arrays.get("qa"), [dt.datetime.fromisoformat(t) for t in meta["times"]],
                   tuple(meta["bands"]), GridSpec.from_dict(meta["grid"]), meta["collection"],
                   meta.get("scenes", []))


@dataclass
class Composite:
    """Cloud-masked composite of one ROI: one or more time frames.

    Attributes:
        data: ``(frame, band, y, x)`` float32 digital numbers; ``fill_value`` where no valid pixel.
        valid: ``(frame, y, x)`` bool, True where at least one valid observation went in.
        frame_bounds: Half-open ``[start, end)`` dates of each frame.
        bands: Band names of axis 1.
        grid: The ROI grid.
        roi_mask: ``(y, x)`` bool, True for pixels whose centre lies inside the ROI geometry.
        fill_value: The value used for gaps.
        method: ``"median"`` or ``"mosaic"``.
        scenes: Scene ids that contributed.
        collection: Collection id.
    """

    data: np.ndarray
    valid: np.ndarray
    frame_bounds: list[tuple[dt.date, dt.date]]
    bands: tuple[str, ...]
    grid: GridSpec
    roi_mask: np.ndarray
    fill_value: float
    method: str
    scenes: list[str] = field(default_factory=list)
    collection: str = "sentinel-2-l2a"

    @property
    def valid_fraction(self) -> list[float]:
        """Per frame: share of ROI pixels with at least one valid observation."""
        inside = self.roi_mask.sum()
        if inside == 0:
            return [0.0] * self.data.shape[0]
        return [float((v & self.roi_mask).sum() / inside) for v in self.valid]

    def grid_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the pixel grid."""
        return self.data.shape[2], self.data.shape[3]

    def mid_months(self) -> np.ndarray:
        """Calendar month (0 = January) of each frame's middle day."""
        mids = [a + (b - a) / 2 for a, b in self.frame_bounds]
        return np.array([m.month - 1 for m in mids], dtype=np.int64)

    def band_data(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """``(frame, len(names), y, x)`` view of the requested bands, in the requested order."""
        idx = [self.bands.index(n) for n in names]
        return self.data[:, idx]

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"data": self.data, "valid": self.valid, "roi_mask": self.roi_mask}
        meta = {"frame_bounds": [[a.isoformat(), b.isoformat()] for a, b in self.frame_bounds],
                "bands": list(self.bands), "grid": self.grid.to_dict(), "fill_value": self.fill_value,
                "method": self.method, "scenes": self.scenes, "collection": self.collection,
                "valid_fraction": self.valid_fraction}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "Composite":
        bounds = [(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in meta["frame_bounds"]]
        return cls(arrays["data"], arrays["valid"].astype(bool), bounds, tuple(meta["bands"]),
                   GridSpec.from_dict(meta["grid"]), arrays["roi_mask"].astype(bool),
                   float(meta["fill_value"]), meta["method"], list(meta.get("scenes", [])),
                   meta.get("collection", "sentinel-2-l2a"))


@dataclass
class Embedding:
    """An embedding and everything needed to interpret it.

    Attributes:
        data: ``(dim,)`` for pooled output or ``(dim, y, x)`` for grid output, float32.
        meta: Self-description: model id and card facts, request, output spec, grid of the cells
            (for grid output), status, valid fraction, versions, weights sha256, timings.
    """

    data: np.ndarray
    meta: dict[str, Any]

    @property
    def status(self) -> str:
        return self.meta.get("status", "ok")
