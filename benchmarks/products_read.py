"""Read throughput of the ``gse`` product: pooled embeddings for many ROIs from local AEF tiles.

Generates ``--tiles`` int8 AlphaEarth tiles (64 bands, ``--tile-px`` square, 10 m, nodata -128,
stored **bottom-up** like the Source Cooperative mirror, tiled GeoTIFF) in a 2x2 mosaic in UTM 31N,
then reads pooled (mean) embeddings for ``--rois`` random point-buffer ROIs inside the mosaic with
one :class:`~eoembed.products.gse.GoogleSatelliteEmbedding` (the tile index is built once, as in a
workflow job) and prints items/s. Tiles are written once into ``--workdir`` and reused.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/products_read.py [--rois 1000] [--tiles 4]
        [--tile-px 2048] [--buffer-m 160] [--workdir /tmp/eoembed_gse_bench]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

X0, Y0, CRS, YEAR = 500_000.0, 5_800_000.0, "EPSG:32631", 2023


def write_tiles(root: Path, n: int, px: int) -> list[Path]:
    """``n`` bottom-up int8 tiles (2 per row) of ``px`` x ``px`` x 64 under ``root/<year>/31N``."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        x0, y0 = X0 + (i % 2) * px * 10.0, Y0 - (i // 2) * px * 10.0
        path = root / str(YEAR) / "31N" / f"tile_{i}.tiff"
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        t = Affine(10.0, 0.0, x0, 0.0, 10.0, y0 - px * 10.0)  # bottom-up: positive y resolution
        with rasterio.open(path, "w", driver="GTiff", width=px, height=px, count=64, dtype="int8", crs=CRS,
                           transform=t, nodata=-128, tiled=True, blockxsize=256, blockysize=256,
                           interleave="pixel") as ds:
            for r in range(0, px, 512):
                h = min(512, px - r)
                block = rng.integers(-127, 128, (64, h, px), dtype=np.int8)
                ds.write(block, window=rasterio.windows.Window(0, r, px, h))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rois", type=int, default=1000)
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--tile-px", type=int, default=2048)
    ap.add_argument("--buffer-m", type=float, default=160.0)
    ap.add_argument("--workdir", default="/tmp/eoembed_gse_bench")
    args = ap.parse_args()

    from pyproj import Transformer

    from eoembed.items import Request
    from eoembed.models.registry import create
    from eoembed.specs import PointBuffer, TemporalSpec

    root = Path(args.workdir)
    t0 = time.perf_counter()
    write_tiles(root, args.tiles, args.tile_px)
    print(f"tiles: {args.tiles} x {args.tile_px}x{args.tile_px}x64 int8 (bottom-up) in {root} "
          f"({time.perf_counter() - t0:.1f}s to write/check)")

    rows = (args.tiles + 1) // 2
    width_m, height_m = 2 * args.tile_px * 10.0, rows * args.tile_px * 10.0
    margin = args.buffer_m + 20
    rng = np.random.default_rng(1)
    xs = rng.uniform(X0 + margin, X0 + min(width_m, args.tiles * args.tile_px * 10.0) - margin, args.rois)
    ys = rng.uniform(Y0 - height_m + margin, Y0 - margin, args.rois)
    lons, lats = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(xs, ys)
    reqs = [Request(f"r{i:05d}", PointBuffer(float(lo), float(la), args.buffer_m), TemporalSpec.year(YEAR))
            for i, (lo, la) in enumerate(zip(lons, lats))]

    product = create("gse", source=str(root))
    t0 = time.perf_counter()
    product.load()
    product.embed_requests(reqs[:1], pooling="mean")  # builds the tile index once
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = product.embed_requests(reqs, pooling="mean", grid=False)
    dt = time.perf_counter() - t0
    statuses = {}
    for _, rec in out.values():
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
    print(f"index + first read: {t_index:.2f}s")
    print(f"gse pooled read: {args.rois} ROIs (buffer {args.buffer_m:.0f} m) in {dt:.2f}s "
          f"-> {args.rois / dt:.1f} items/s; statuses {statuses}")


if __name__ == "__main__":
    main()
