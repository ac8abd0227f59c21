"""Figures beyond the run's basics (:mod:`eoembed.plots`): model comparisons, retrieval,
the paper reproductions (maize yield, embedding gallery).

Every function draws on a bare :class:`matplotlib.figure.Figure`, writes the PNG atomically and,
beside it, ``<name>.data.json``: what each panel shows (title, axis labels, the points, bars and
images plotted, read back from the figure's artists). Tests and readers check that sidecar
instead of trusting that a PNG exists. Functions also return the figure.
"""

from eoembed.figures.base import describe, save_with_data, sidecar_path

__all__ = ["describe", "save_with_data", "sidecar_path"]
