"""Versions of eoembed and its key dependencies, recorded in every output."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path


@lru_cache(maxsize=1)
def git_describe() -> str | None:
    """``git describe --always --dirty`` of the checkout this eoembed runs from, or None
    (not a git checkout, or git missing)."""
    src = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python, eoembed (+ its git describe) and the libraries that shape the numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("eoembed", "numpy", "torch", "rasterio", "odc-stac", "scikit-learn", "snakemake"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if "eoembed" not in out:
        import eoembed

        out["eoembed"] = eoembed.__version__
    described = git_describe()
    if described:
        out["eoembed_git"] = described
    return out
