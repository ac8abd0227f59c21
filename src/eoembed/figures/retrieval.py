"""Retrieval figure: a query ROI's quick-look beside its top-k neighbours' quick-looks."""

from __future__ import annotations

import os
from collections.abc import Sequence

from eoembed.figures.base import save_with_data
from eoembed.figures.quicklook import load_composites, show_missing, show_rgb
from eoembed.plots import _figure

__all__ = ["retrieval_figure"]


def retrieval_figure(parquet: str | os.PathLike, composite_chunks: Sequence[str | os.PathLike], roi_id: str,
                     out_png: str | os.PathLike, k: int = 5, block_km: float | None = None,
                     model: str = "", dpi: int = 100):
    """Query quick-look (first panel) and its ``k`` nearest ROIs by cosine, best first.

    Args:
        parquet: The model's pooled-embedding export.
        composite_chunks: Composite chunk files holding the ROIs' imagery (any sensor with RGB).
        roi_id: The query.
        out_png: Destination PNG (sidecar ``.data.json`` lists query and neighbours).
        k: Neighbours shown.
        block_km: Exclude neighbours in the query's spatial block (None = keep adjacent ROIs).
        model: Model id for the titles.
    """
    from eoembed.retrieval import similar

    hits = similar(parquet, roi_id, k=k, block_km=block_km)
    comps = load_composites(composite_chunks, [roi_id, *hits["roi_id"]])
    fig, axes = _figure(1 + len(hits), (2.4, 2.6), dpi, ncols=min(6, 1 + len(hits)))
    panels = [(roi_id, f"query: {roi_id}")] + [
        (r.roi_id, f"#{r.rank} {r.roi_id}\ncos {r.cosine:.3f}, {r.distance_km:.0f} km")
        for r in hits.itertuples()]
    for ax, (rid, title) in zip(axes, panels):
        if rid in comps:
            show_rgb(ax, comps[rid], title)
        else:
            show_missing(ax, title, "no imagery for this ROI")
    blocked = f", excluding its {block_km:g} km block" if block_km else ""
    fig.suptitle(f"{model}: the {len(hits)} ROIs most similar to {roi_id} (cosine{blocked})")
    return save_with_data(fig, out_png, dpi, {"query": roi_id, "neighbours": list(hits["roi_id"]),
                                             "cosine": list(hits["cosine"])})
