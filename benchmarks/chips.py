"""Real-size benchmark inputs: 64 x 64 px, 12-band chips cropped from the shared S2 L2A patches.

Every 256 x 256 patch gives 7 x 7 = 49 overlapping crops (stride 32 px); each crop is its own
scene on its own day (so an ROI's search finds exactly one scene, as for EuroSAT-like chips).
Crop origins are snapped to multiples of 10 m (the patches are offset by 5 m; Sentinel-2 tiles
are not), so a chip lies on eoembed's UTM grid, as a user's S2 chip would. ROIs: the chip
centre with a 320 m buffer (a 64 x 64 grid), window = the chip's day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagery" / "s2_l2a_patches"
S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
DAY0 = dt.date(2019, 1, 1)
SIDE, STRIDE = 64, 32


def patches(shared: Path = SHARED) -> list[Path]:
    return sorted(shared.glob("images/*.tif")) + sorted(shared.glob("example_s2/*.tif"))


def make_chips(out: Path, n: int, shared: Path = SHARED) -> list[tuple[Path, dt.date]]:
    """Write ``n`` chips (GeoTIFF, 12 bands uint16) under ``out``; returns (path, day) each."""
    import rasterio
    from affine import Affine

    out.mkdir(parents=True, exist_ok=True)
    chips = []
    for src_path in patches(shared):
        with rasterio.open(src_path) as src:
            data, t, crs = src.read(), src.transform, src.crs
        x0, y1 = round(t.c / 10) * 10, round(t.f / 10) * 10
        for r in range(0, data.shape[1] - SIDE + 1, STRIDE):
            for c in range(0, data.shape[2] - SIDE + 1, STRIDE):
                if len(chips) == n:
                    return chips
                path = out / f"{src_path.stem}_{r:03d}_{c:03d}.tif"
                transform = Affine(10, 0, x0 + 10 * c, 0, -10, y1 - 10 * r)
                with rasterio.open(path, "w", driver="GTiff", width=SIDE, height=SIDE, count=12,
                                   dtype="uint16", crs=crs, transform=transform) as dst:
                    dst.write(data[:, r:r + SIDE, c:c + SIDE])
                chips.append((path, DAY0 + dt.timedelta(days=len(chips))))
    if len(chips) < n:
        raise SystemExit(f"only {len(chips)} chips can be cut from {shared}; asked for {n}")
    return chips


def requests_for(chips: list[tuple[Path, dt.date]]):
    """One Request per chip: its centre, 320 m buffer, the chip's day."""
    import rasterio

    from eoembed.grid import to_crs
    from eoembed.items import Request
    from eoembed.specs import PointBuffer, TemporalSpec

    reqs = []
    for path, day in chips:
        with rasterio.open(path) as src:
            b = src.bounds
            lon, lat = to_crs((b.left + b.right) / 2, (b.bottom + b.top) / 2, src.crs, "EPSG:4326")
        reqs.append(Request(path.stem, PointBuffer(float(lon), float(lat), SIDE * 5),
                            TemporalSpec(day, day + dt.timedelta(days=1))))
    return reqs


def catalogue(chips, out_json: Path, split: bool) -> Path:
    from eoembed.catalog import build_catalog

    return build_catalog([p for p, _ in chips], out_json, bands=S2_12,
                         datetime=[dt.datetime.combine(d, dt.time(12)) for _, d in chips],
                         qa_value=4, cloud_cover=0, split=split)
