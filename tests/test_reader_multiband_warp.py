"""A user's multi-band GeoTIFF that must be warped (another UTM zone, a sub-pixel offset, a
coarser grid) gives the pixels of one GDAL warp per band, as odc-loader reads them.

The reader warps all bands of such a file at once when no source pixel it may use is nodata
(one warper set-up instead of twelve); GDAL's multi-band warp handles pixels next to nodata
differently, so a file with nodata there is warped band by band. The oracle here is the
per-band ``rasterio.warp.reproject`` itself.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine

from eoembed.catalog import build_catalog
from eoembed.collections import get_collection
from eoembed.grid import GridSpec, grid_for, to_crs
from eoembed.providers.local import LocalProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
DAY = dt.date(2019, 6, 1)  # before processing baseline 04.00: no DN offset
LON, LAT = 5.999, 52.55  # UTM zone 31; the file is in zone 32
SIDE = 96


def _write(path, nodata_case: str):
    x, y = to_crs(5.995, LAT, "EPSG:4326", "EPSG:32632")
    transform = Affine(10, 0, round(float(x) / 10) * 10 - 400, 0, -10, round(float(y) / 10) * 10 + 400)
    rng = np.random.default_rng(3)
    data = rng.integers(200, 9000, (12, SIDE, SIDE)).astype("uint16")
    if nodata_case == "nodata":  # holes in two bands, and a corner missing in all
        data[2, 30:50, 20:60] = 0
        data[7, 40:42, 35:80] = 0
        data[:, 70:, 70:] = 0
    with rasterio.open(path, "w", driver="GTiff", width=SIDE, height=SIDE, count=12, dtype="uint16",
                       crs="EPSG:32632", transform=transform, nodata=0) as dst:
        dst.write(data)
    return transform


def _grids(transform):
    roi = PointBuffer(LON, LAT, 250)
    yield "other-zone", grid_for(roi, 10.0), "bilinear"
    yield "other-zone-cubic", grid_for(roi, 10.0), "cubic"
    yield "other-zone-nearest", grid_for(roi, 10.0), "nearest"
    yield "subpixel", GridSpec("EPSG:32632", (10.0, 0.0, transform.c + 103.7, 0.0, -10.0,
                                              transform.f - 201.2), 40, 40), "bilinear"
    yield "coarser", GridSpec("EPSG:32632", (30.0, 0.0, transform.c + 60, 0.0, -30.0,
                                             transform.f - 90), 20, 20), "average"


def _per_band(path, grid: GridSpec, resampling: str) -> np.ndarray:
    """One GDAL warp per band onto the whole grid (what odc-loader does)."""
    out = np.zeros((12, grid.height, grid.width), "uint16")
    with rasterio.open(path) as ds:
        for k in range(12):
            rasterio.warp.reproject(rasterio.band(ds, k + 1), out[k], src_nodata=0, dst_crs=str(grid.crs),
                                    dst_transform=grid.affine(), dst_nodata=0,
                                    resampling=getattr(rasterio.enums.Resampling, resampling))
    return out


@pytest.mark.parametrize("nodata_case", ["clean", "nodata"])
@pytest.mark.parametrize("case", range(5))
def test_multiband_file_warps_like_one_warp_per_band(tmp_path, monkeypatch, nodata_case, case):
    path = tmp_path / "chip.tif"
    transform = _write(path, nodata_case)
    name, grid, resampling = list(_grids(transform))[case]
    cat = build_catalog([path], tmp_path / "cat" / "catalog.json", bands=BANDS, datetime=DAY,
                        qa_value=4, split=False)
    provider = LocalProvider(cat, resampling=resampling)
    sensor = SensorSpec(bands=tuple(BANDS), cloudy_pct=100)
    items = provider.search(PointBuffer(LON, LAT, 250), TemporalSpec(DAY, DAY + dt.timedelta(days=1)), sensor)
    assert len(items) == 1

    warps = []
    real = rasterio.warp.reproject
    monkeypatch.setattr(rasterio.warp, "reproject", lambda *a, **k: warps.append(a[0].bidx) or real(*a, **k))
    got = provider._load(items, BANDS, grid, get_collection("sentinel-2-l2a"), LON)
    monkeypatch.undo()

    stack = np.stack([got[b].values[0] for b in BANDS])
    want = _per_band(path, grid, resampling)
    assert (want > 0).sum() > 0.3 * want.size, "the file must cover much of the grid"
    np.testing.assert_array_equal(stack, want, err_msg=f"{name} {nodata_case}")
    # the shortcut is taken exactly where it is exact: one warp of all bands for a clean file,
    # one per band where nodata pixels are in reach
    assert warps == ([list(range(1, 13))] if nodata_case == "clean" else list(range(1, 13))), name
