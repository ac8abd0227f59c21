"""The modis-toa collection (MODIS L1B 1 km, TOA reflectance x 10000 and brightness temperature K)
and SatVision-TOA's published scaling of it:

* a local 14-band MODIS GeoTIFF catalogued with ``build_catalog(collection="modis-toa")`` is read
  by the local provider with its values unchanged (reflectance x 10000 and kelvin are the stack
  units; no reflectance conversion is applied to the thermal bands);
* the batch the framework hands SatVision-TOA equals pytorch-caney's
  ``MinMaxEmissiveScaleReflectance`` (reflectance percent * 0.01; emissive (K - min) / (max - min))
  applied to the same pixels in the model's band order, computed here from the upstream constants;
* validation accepts a modis-toa sensor for satvision_toa and refuses it for a Sentinel-2 model.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import rasterio
from rasterio.transform import from_origin

from eoembed.catalog import build_catalog
from eoembed.collections import COLLECTIONS
from eoembed.grid import GridSpec, grid_for, to_crs
from eoembed.items import Composite
from eoembed.models.inputs import check_sensor
from eoembed.models.registry import create, get_card
from eoembed.prep import InputPrep, batches, pieces_for
from eoembed.providers.local import LocalProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

#: upstream pytorch_caney/transforms/modis_toa_scale.py (commit c037d17), model channel order
#: (1, 2, 3, 26, 6, 20, 7, 27, 28, 29, 31, 32, 33, 34)
REFLECTANCE_INDICES = [0, 1, 2, 3, 4, 6]
EMISSIVE_INDICES = [5, 7, 8, 9, 10, 11, 12, 13]
EMISSIVE_MINS = np.array([223.1222, 178.9174, 204.3739, 204.7677, 194.8686, 202.1759, 201.3823, 203.3537])
EMISSIVE_MAXS = np.array([352.7182, 261.2920, 282.5529, 319.0373, 295.0209, 324.0677, 321.5254, 285.9848])
MODEL_ORDER = (1, 2, 3, 26, 6, 20, 7, 27, 28, 29, 31, 32, 33, 34)


def caney_scale(img_hwc_percent_kelvin: np.ndarray) -> np.ndarray:
    """The published transform on an (H, W, 14) image of reflectance percent and kelvin."""
    img = img_hwc_percent_kelvin.astype(np.float64).copy()
    img[:, :, REFLECTANCE_INDICES] *= 0.01
    img[:, :, EMISSIVE_INDICES] = (img[:, :, EMISSIVE_INDICES] - EMISSIVE_MINS) / (EMISSIVE_MAXS - EMISSIVE_MINS)
    return img


def modis_scene(rng) -> np.ndarray:
    """(14, H, W) in the collection's band order: reflectance x 10000 or kelvin per band."""
    coll = COLLECTIONS["modis-toa"]
    out = []
    for b in coll.bands:
        thermal = int(b[1:]) >= 20 and b != "B26"
        out.append(rng.uniform(200, 320, (32, 32)) if thermal else rng.uniform(0, 9000, (32, 32)))
    return np.stack(out).astype(np.float32)


def test_local_modis_catalogue_reads_stack_units_unchanged(tmp_path):
    data = modis_scene(np.random.default_rng(1))
    path = tmp_path / "MOD021KM.A2023182.tif"
    x0, y0 = 400_000.0, 5_600_000.0
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=14, dtype="float32",
                       crs="EPSG:32631", transform=from_origin(x0, y0, 1000, 1000), nodata=-9999) as dst:
        dst.write(data)
    bands = COLLECTIONS["modis-toa"].bands
    index = build_catalog([path], tmp_path / "modis" / "catalog.json", bands=bands, datetime="2023-07-01",
                          collection="modis-toa")
    grid = GridSpec("EPSG:32631", (1000.0, 0, x0 + 4000, 0, -1000.0, y0 - 4000), 16, 16)
    roi = PointBuffer(*map(float, to_crs(x0 + 12_000, y0 - 12_000, "EPSG:32631", "EPSG:4326")), 8000)
    sensor = SensorSpec(collection="modis-toa", bands=bands, scale_m=1000, cloudy_pct=100)
    stack = LocalProvider(index).fetch(roi, TemporalSpec(dt.date(2023, 6, 1), dt.date(2023, 8, 1)), sensor, grid)
    assert stack.data.shape == (1, 14, 16, 16)
    np.testing.assert_allclose(stack.data[0], data[:, 4:20, 4:20], rtol=0, atol=1e-3)


def test_satvision_batch_equals_published_minmax_scaling():
    rng = np.random.default_rng(7)
    scene = modis_scene(rng)  # collection order
    coll_bands = COLLECTIONS["modis-toa"].bands
    model = create("satvision_toa")
    spec = model.inputs()[0]
    assert spec.bands == tuple(f"B{b:02d}" for b in MODEL_ORDER)
    h = 128
    big = np.stack([np.kron(band, np.ones((4, 4), np.float32)) for band in scene])  # 128 x 128
    grid = grid_for(PointBuffer(10.0, 50.0, h * 500.0), 1000.0)
    assert (grid.height, grid.width) == (h, h)
    comp = Composite(big[None], np.ones((1, h, h), bool), [(dt.date(2023, 7, 1), dt.date(2023, 8, 1))],
                     coll_bands, grid, np.ones((h, h), bool), 0.0, "median", collection="modis-toa")
    pieces, _, used = pieces_for(0, {"modis": comp}, spec, InputPrep())
    assert used == "resize" and len(pieces) == 1
    (_, batch), = list(batches(pieces, {"modis": spec}, 1))
    got = batch.x["modis"][0, 0]  # (14, 128, 128), model order
    model_order = np.stack([big[coll_bands.index(f"B{b:02d}")] for b in MODEL_ORDER])
    percent_kelvin = model_order.copy()
    thermal = [i for i, b in enumerate(MODEL_ORDER) if b >= 20 and b != 26]
    assert thermal == EMISSIVE_INDICES
    reflective = [i for i in range(14) if i not in thermal]
    percent_kelvin[reflective] = model_order[reflective] / 100.0  # reflectance x 10000 -> percent
    want = caney_scale(percent_kelvin.transpose(1, 2, 0)).transpose(2, 0, 1)
    assert 0.2 < want[EMISSIVE_INDICES].mean() < 1.0 and want[REFLECTANCE_INDICES].max() > 0.5
    assert np.abs(got - want).max() <= 1e-6


def test_validation_accepts_modis_for_satvision_only():
    coll = COLLECTIONS["modis-toa"]
    sensor = SensorSpec(collection="modis-toa", bands=coll.bands, scale_m=1000, cloudy_pct=100)
    assert check_sensor("satvision_toa", get_card("satvision_toa").inputs[0], "modis", sensor) == []
    refused = check_sensor("dofa_base", get_card("dofa_base").inputs[0], "modis", sensor)
    assert refused and "collection='modis-toa' is not accepted" in refused[0]
