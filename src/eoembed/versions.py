"""Versions of eoembed and its key dependencies, recorded in every output."""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python, eoembed and the libraries that shape the numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("eoembed", "numpy", "torch", "rasterio", "odc-stac", "scikit-learn", "snakemake"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if "eoembed" not in out:
        import eoembed

        out["eoembed"] = eoembed.__version__
    return out
