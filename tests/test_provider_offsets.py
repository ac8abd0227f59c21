"""Sentinel-2 processing-baseline offsets: a baseline-04.00 scene (DN = reflectance x 10000 + 1000)
read through ``local`` and through ``stac`` gives identical values, without the offset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoembed.catalog import build_catalog
from eoembed.errors import ConfigError
from eoembed.grid import grid_for
from eoembed.providers.local import LocalProvider, read_catalog
from eoembed.providers.stac import StacProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from standins import CogServer, RustacServer, rewrite_hrefs, rustac_executable

BANDS = ["B04", "B03", "B02"]
ROI = PointBuffer(5.06802, 52.55519, 60)  # inside the 400 m scene below, away from its edges
SENSOR = SensorSpec(bands=tuple(BANDS), scale_m=10)
WINDOW = TemporalSpec.year(2023)


@pytest.fixture
def baseline4_catalog(tmp_path) -> tuple[Path, np.ndarray]:
    """One baseline-04.00 scene: stored DN = reflectance x 10000 + 1000."""
    rng = np.random.default_rng(4)
    refl = rng.integers(100, 5000, (3, 40, 40)).astype(np.uint16)
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=3, dtype="uint16",
                       crs="EPSG:32631", transform=Affine(10, 0, 640_000, 0, -10, 5_825_000)) as dst:
        dst.write(refl + 1000)
    cat = build_catalog([path], tmp_path / "cat" / "catalog.json", bands=BANDS, datetime="2023-06-15",
                        qa_value=4, item_ids=["s2_pb0400"], processing_baseline="04.00")
    return cat, refl


def _expected(refl: np.ndarray, grid) -> np.ndarray:
    # the ROI grid is a window of the scene's 10 m grid: reflectance x 10000 at those pixels
    col0 = int(round((grid.transform[2] - 640_000) / 10))
    row0 = int(round((5_825_000 - grid.transform[5]) / 10))
    return refl[:, row0:row0 + grid.height, col0:col0 + grid.width].astype(np.float32)


def test_build_catalog_records_the_baseline_and_its_offset(baseline4_catalog):
    (item,) = read_catalog(baseline4_catalog[0])
    assert item.properties["s2:processing_baseline"] == "04.00"
    assert item.assets["B04"].to_dict()["raster:bands"][0]["offset"] == pytest.approx(-0.1)
    assert "offset" not in item.assets["SCL"].to_dict()["raster:bands"][0]


def test_build_catalog_rejects_a_baseline_for_another_collection(tmp_path, baseline4_catalog):
    with pytest.raises(ConfigError, match="processing_baseline='x'"):
        build_catalog([tmp_path / "scene.tif"], tmp_path / "c2.json", bands=BANDS, datetime="2023-06-15",
                      qa_value=4, processing_baseline="x")


@pytest.mark.parametrize("evidence", ["raster_offset", "baseline_property"])
def test_local_and_stac_remove_the_offset_identically(baseline4_catalog, tmp_path, evidence):
    if rustac_executable() is None:
        pytest.skip("rustac CLI not installed")
    cat, refl = baseline4_catalog
    if evidence == "baseline_property":  # no raster:bands offset: the s2:processing_baseline decides
        doc = json.loads(cat.read_text())
        for asset in doc["features"][0]["assets"].values():
            asset["raster:bands"][0].pop("offset", None)
            asset["raster:bands"][0].pop("scale", None)
        cat.write_text(json.dumps(doc))
    grid = grid_for(ROI, 10)
    local = LocalProvider(cat).fetch(ROI, WINDOW, SENSOR, grid)
    with CogServer(cat.parent) as cog, RustacServer(rewrite_hrefs(cat, cog.url), tmp_path / "api") as api:
        remote = StacProvider(url=api.url).fetch(ROI, WINDOW, SENSOR, grid)
    np.testing.assert_array_equal(local.data[0], _expected(refl, grid))
    np.testing.assert_array_equal(local.data, remote.data)
    np.testing.assert_array_equal(local.qa, remote.qa)
