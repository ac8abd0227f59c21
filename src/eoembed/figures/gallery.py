"""Embedding gallery (the paper's Fig. 6; a tile-mode config gives Fig. 9 with the same code).

One panel per model: the first three principal components of one ROI's grid embedding as RGB,
titled with the embedding's (C, H, W). A model that did not produce a grid for the ROI still gets
its panel, saying why: the item's error (weights or product files absent, fetch failed) or that
the model has no grid output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from eoembed.figures.base import save_with_data
from eoembed.figures.quicklook import show_missing
from eoembed.plots import NODATA_GREY, _figure, pca_rgba

__all__ = ["gallery"]


def gallery(grids: Mapping[str, str | os.PathLike | None], roi_id: str, out_png: str | os.PathLike,
            errors: Mapping[str, str] | None = None, title: str = "Embedding gallery", dpi: int = 100):
    """Draw the gallery.

    Args:
        grids: Per model, its grid NetCDF holding ``roi_id`` (None: the model has no grid output).
        roi_id: The ROI shown.
        out_png: Destination PNG (sidecar lists each panel's (C, H, W) or why it is empty).
        errors: Per model, the item's error from the manifest (shown in empty panels).
        title: Figure title.
    """
    from eoembed.errors import EoembedError
    from eoembed.export_grid import open_grid

    errors = errors or {}
    fig, axes = _figure(max(1, len(grids)), (2.8, 3.0), dpi, ncols=min(5, max(1, len(grids))))
    shapes: dict[str, list[int] | str] = {}
    for ax, (model, path) in zip(axes, grids.items()):
        if path is None:
            show_missing(ax, model, "no grid output (pooled/patch product)")
            shapes[model] = "no grid output"
            continue
        try:
            ds = open_grid(path, roi_id)
            emb = ds["embedding"].transpose("dim", "y", "x").values
        except (EoembedError, KeyError, OSError) as exc:
            why = errors.get(model) or str(exc)
            show_missing(ax, model, f"not run: {why[:160]}")
            shapes[model] = f"not run: {why}"
            continue
        rgba, explained = pca_rgba(emb)
        ax.set_facecolor(NODATA_GREY)
        ax.imshow(rgba, interpolation="nearest")
        c, h, w = emb.shape
        ax.set_title(f"{model}\n(C, H, W) = ({c}, {h}, {w})", fontsize="small")
        ax.set_xlabel(f"PCA top-3 ({explained:.0%} var.)", fontsize="x-small")
        ax.set_xticks([])
        ax.set_yticks([])
        shapes[model] = [c, h, w]
    fig.suptitle(f"{title}: {roi_id}")
    return save_with_data(fig, out_png, dpi, {"roi": roi_id, "shapes": shapes})
