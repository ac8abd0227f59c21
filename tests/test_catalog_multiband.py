"""build_catalog(split=False): multi-band assets read in place, same pixels as the split COGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoembed.catalog import build_catalog
from eoembed.errors import ConfigError
from eoembed.grid import GridSpec, grid_for, to_crs
from eoembed.providers.local import LocalProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATCHES = SHARED / "imagery" / "s2_l2a_patches" / "images"
S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _june() -> TemporalSpec:
    import datetime as dt

    return TemporalSpec(dt.date(2022, 6, 1), dt.date(2022, 7, 1))


def _tiff(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs="EPSG:32631",
                       transform=Affine(10, 0, 640_000.0, 0, -10, 5_825_000.0)) as dst:
        dst.write(data)
    return path


def _both(tmp_path: Path, files: list[Path], bands: list[str]) -> tuple[Path, Path]:
    kw = dict(bands=bands, datetime="2022-06-15", qa_value=4)
    return (build_catalog(files, tmp_path / "split" / "catalog.json", **kw),
            build_catalog(files, tmp_path / "multi" / "catalog.json", split=False, **kw))


def test_multiband_catalogue_writes_no_pixels_and_reads_like_split(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(100, 5000, (3, 40, 40)).astype(np.uint16)
    data[:, :4, :4] = 0  # a no-data corner (the collection's nodata)
    src = _tiff(tmp_path / "scene.tif", data)
    split, multi = _both(tmp_path, [src], ["B02", "B03", "B04"])
    assert sorted(p.name for p in multi.parent.iterdir()) == ["catalog.json"]  # no COG, no SCL file
    assets = json.loads(multi.read_text())["features"][0]["assets"]
    assert {a["href"] for a in assets.values()} == {str(src)}
    assert [assets[b]["eoembed:band_index"] for b in ("B02", "B03", "B04")] == [1, 2, 3]
    # a grid on the file's own pixels, offset by (2, 3) px, larger than the file on two sides
    grid = GridSpec("EPSG:32631", (10.0, 0, 640_020.0, 0, -10.0, 5_824_970.0), 45, 45)
    roi = PointBuffer(*map(float, to_crs(640_200, 5_824_800, "EPSG:32631", "EPSG:4326")), 50)
    sensor = SensorSpec(bands=("B02", "B03", "B04"), cloudy_pct=100)
    a = LocalProvider(split).fetch(roi, _june(), sensor, grid)
    b = LocalProvider(multi).fetch(roi, _june(), sensor, grid)
    np.testing.assert_array_equal(a.data, b.data)
    expected = np.full((3, 45, 45), np.nan, np.float32)
    expected[:, :37, :38] = data[:, 3:, 2:]
    expected[:, :1, :2] = np.nan  # the corner that is no data in the file
    np.testing.assert_array_equal(b.data[0], expected)
    # quality: class 4 exactly where a band has data, 0 (no data) elsewhere
    np.testing.assert_array_equal(b.qa[0], np.where(np.isfinite(expected[0]), 4, 0).astype(np.uint8))


def test_real_patches_multiband_matches_split(tmp_path):
    if not PATCHES.exists():
        pytest.skip(f"shared data not available: {PATCHES} is missing")
    files = sorted(PATCHES.glob("*.tif"))[:3]
    split, multi = _both(tmp_path, files, S2_12)
    sensor = SensorSpec(bands=tuple(S2_12), cloudy_pct=10)
    ps, pm = LocalProvider(split), LocalProvider(multi)
    worst = 0.0
    for f in files:
        with rasterio.open(f) as src:
            lon, lat = to_crs(*src.xy(src.height // 2, src.width // 2), src.crs, "EPSG:4326")
        roi = PointBuffer(float(lon), float(lat), 320)
        grid = grid_for(roi, 10.0)
        a, b = ps.fetch(roi, _june(), sensor, grid), pm.fetch(roi, _june(), sensor, grid)
        np.testing.assert_array_equal(a.data, b.data)
        assert np.isfinite(b.data).all()
        worst = max(worst, float(np.nanmax(np.abs(a.data - b.data))))
        np.testing.assert_array_equal(a.qa, b.qa)  # the ROI lies inside the patch: class 4 everywhere
        assert set(np.unique(b.qa)) == {4}
    print(f"max abs reflectance difference multi-band vs split COGs: {worst}")


def test_split_must_be_boolean(tmp_path):
    src = _tiff(tmp_path / "s.tif", np.ones((1, 4, 4), np.uint16))
    with pytest.raises(ConfigError, match=r"split='no' is invalid: allowed true"):
        build_catalog([src], tmp_path / "c.json", bands=["B02"], datetime="2022-06-15", qa_value=4, split="no")
