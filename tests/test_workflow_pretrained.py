"""Presto and Galileo end to end through the real Snakemake workflow (issue 3 acceptance).

* offline with an empty weights cache: the run completes, presto items fail at ``embed`` with
  a message saying where to put the file, the weight-free model is unaffected;
* real Sentinel-2 L2A patches (../shared/data) turned into a catalogue with
  :func:`eoembed.catalog.build_catalog`: both models give distinct, finite 128-d embeddings.

The catalogue tests at the end are fast and need nothing shared (tiny generated GeoTIFFs).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine
from pyproj import Transformer

from eoembed.catalog import build_catalog
from eoembed.errors import ConfigError
from eoembed.export import read_geoparquet_metadata
from eoembed.grid import GridSpec
from eoembed.providers.local import LocalProvider, read_catalog
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATCHES = SHARED / "imagery" / "s2_l2a_patches" / "images"
WEIGHTS = SHARED / "weights"
S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is missing")
    return path


def _set(config_path: Path, **changes) -> None:
    config = yaml.safe_load(config_path.read_text())
    config.update(changes)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


# ---------------------------------------------------------------- a. offline, empty cache


@pytest.mark.slow
def test_offline_empty_cache_fails_presto_items_only(tmp_path):
    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    config = write_config(work, index, rois, models=("spectral", "presto"), benchmark=False)
    s2 = yaml.safe_load(config.read_text())["sensors"]["s2"]
    _set(config, sensors={"s2": s2, "s2_monthly": {**s2, "frames": 12}},
         models={"spectral": {"sensor": "s2"}, "presto": {"sensor": "s2_monthly"}},
         weights={"dir": str(cache), "allow_download": False},
         # grid exports off: the PCA figure cannot yet skip a grid model whose items all failed
         output={"grid": False})

    proc = snakemake(work)
    assert proc.returncode == 0

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    n_rois = len(pd.read_csv(rois, sep="\t"))
    presto = manifest[manifest["model"] == "presto"]
    spectral = manifest[manifest["model"] == "spectral"]
    assert len(presto) == len(spectral) == n_rois
    assert set(presto["status"]) == {"failed"} and set(presto["stage"]) == {"embed"}
    expected_path = str((cache / "presto" / "default_model.pt").absolute())
    for error in presto["error"]:
        assert "place the file at" in error and expected_path in error
    assert set(spectral["status"]) <= {"ok", "partial"}, spectral[["roi_id", "status", "error"]]
    assert list(cache.iterdir()) == []  # nothing downloaded, nothing half-written
    assert len(gpd.read_parquet(work / "results/export/spectral/embeddings.parquet")) == n_rois


@pytest.mark.slow
def test_location_encoder_runs_without_fetching(tmp_path):
    """geoclip (a location encoder) next to spectral: no fetch/composite job for it, its pooled export
    holds the real GeoCLIP embedding of each ROI centre, and no grid is planned for it."""
    from eoembed.models.registry import create

    weights = _require(WEIGHTS / "geoclip" / "location_encoder_weights.pth")
    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=("spectral",), benchmark=False, chunk_size=2)
    cfg = yaml.safe_load(config.read_text())
    _set(config, models={"spectral": {"sensor": "s2"},
                         "geoclip": {"weights": {"location_encoder_weights.pth": str(weights)}}},
         output={"grid": True, "grid_cell_m": 80})
    dry = snakemake(work, "-n")
    from workflow_helpers import job_counts

    counts = job_counts(dry.stdout)
    n_chunks = -(-len(pd.read_csv(rois, sep="\t")) // 2)
    assert counts["fetch"] == counts["composite"] == n_chunks  # spectral's only
    assert counts["embed"] == 2 * n_chunks and counts["export_grid"] == n_chunks  # no grid for geoclip
    snakemake(work)
    table = pd.read_csv(rois, sep="\t")
    exported = gpd.read_parquet(work / "results/export/geoclip/embeddings.parquet").set_index("roi_id")
    expected = create("geoclip", weights_paths={"location_encoder_weights.pth": str(weights)}).forward_locations(
        table[["lat", "lon"]].to_numpy())
    got = np.stack([np.asarray(exported.loc[r, "embedding"]) for r in table["roi_id"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # batch composition differs (chunks of 2)
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest[manifest.model == "geoclip"].status) == {"ok"}
    assert cfg["sensors"]  # the spectral sensor is untouched


# ---------------------------------------------------------------- b. real imagery


def patch_centres(files: list[Path]) -> list[tuple[float, float]]:
    """Centre (lon, lat) of each GeoTIFF, from its own bounds and CRS."""
    out = []
    for f in files:
        with rasterio.open(f) as src:
            b = src.bounds
            lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(
                (b.left + b.right) / 2, (b.bottom + b.top) / 2)
        out.append((float(lon), float(lat)))
    return out


@pytest.mark.slow
def test_real_patches_presto_and_galileo(tmp_path):
    files = sorted(_require(PATCHES).glob("*.tif"))[:6]
    assert len(files) == 6
    weights = {"presto": {"default_model.pt": str(_require(WEIGHTS / "presto" / "default_model.pt"))},
               "galileo_nano": {n: str(_require(WEIGHTS / "galileo_nano" / n))
                                for n in ("encoder.pt", "normalization.json")}}
    catalog = build_catalog(files, tmp_path / "catalog" / "catalog.json", bands=S2_12,
                            datetime="2022-06-15", qa_value=4, cloud_cover=0)
    rois = pd.DataFrame([{"roi_id": f.stem, "lon": lon, "lat": lat, "buffer_m": 320,
                          "start": "2022-06-01", "end": "2022-07-01"}
                         for f, (lon, lat) in zip(files, patch_centres(files))])
    rois.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, catalog, tmp_path / "rois.tsv", models=("presto",), chunk_size=6,
                          benchmark=False)
    _set(config,
         sensors={"june": {"bands": S2_12, "scale_m": 10, "cloudy_pct": 10, "frames": 1}},
         models={"presto": {"sensor": "june", "options": {"pixel_sample": 256},
                            "weights": weights["presto"]},
                 "galileo_nano": {"sensor": "june", "options": {"patch_size": 8},
                                  "weights": weights["galileo_nano"]}},
         output={"grid": False},
         weights={"dir": str(tmp_path / "empty_cache"), "allow_download": False})

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert len(manifest) == 12
    assert set(manifest["status"]) == {"ok"}, manifest[["roi_id", "model", "status", "error"]]
    for model in ("presto", "galileo_nano"):
        path = work / f"results/export/{model}/embeddings.parquet"
        gdf = gpd.read_parquet(path).set_index("roi_id").loc[rois["roi_id"]]
        emb = np.stack(gdf["embedding"].to_numpy()).astype(np.float64)
        assert emb.shape == (6, 128)
        assert np.isfinite(emb).all()
        assert set(gdf["status"]) == {"ok"}
        dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)[np.triu_indices(6, 1)]
        assert dist.min() > 1e-3, f"{model}: two patches embed (nearly) identically: {dist.min()}"
        assert emb.std(axis=0).max() > 1e-3  # not a constant vector
        for (_, row), (lon, lat) in zip(gdf.iterrows(), rois[["lon", "lat"]].to_numpy()):
            assert row.geometry.contains(gpd.points_from_xy([lon], [lat])[0])
        meta = read_geoparquet_metadata(path)
        assert meta["model"] == model and meta["weights_sha256"]
        option = {"presto": ("pixel_sample", 256), "galileo_nano": ("patch_size", 8)}[model]
        assert meta["options"][option[0]] == option[1]


# ---------------------------------------------------------------- build_catalog (fast, no shared data)


def write_tiff(path: Path, data: np.ndarray, crs: str = "EPSG:32631", x0: float = 640_000.0,
               y1: float = 5_825_000.0, res: float = 10.0, nodata=None, res_y: float | None = None) -> Path:
    res_y = res if res_y is None else res_y
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=crs,
                       transform=Affine(res, 0, x0, 0, -res_y, y1), nodata=nodata) as dst:
        dst.write(data)
    return path


@pytest.fixture
def three_band_tiff(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    data = rng.integers(100, 5000, (3, 40, 40)).astype(np.uint16)
    data[:, :4, :4] = 0  # a no-data corner
    return write_tiff(tmp_path / "scene one.tif", data), data


def test_catalog_splits_bands_and_provider_reads_each_band(tmp_path, three_band_tiff):
    src, data = three_band_tiff
    out = build_catalog([src], tmp_path / "cat" / "catalog.json", bands=["B04", "B03", "B02"],
                        datetime="2022-06-15", qa_value=4, item_ids=["scene1"])
    (item,) = read_catalog(out)
    assert item.id == "scene1" and item.properties["eo:cloud_cover"] == 0
    assert item.properties["proj:code"] == "EPSG:32631"
    assert item.datetime.isoformat().startswith("2022-06-15")
    assert sorted(item.assets) == ["B02", "B03", "B04", "SCL"]
    for i, band in enumerate(["B04", "B03", "B02"]):
        with rasterio.open(item.assets[band].href) as cog:
            assert cog.count == 1 and cog.profile["tiled"] and cog.compression.name.lower() == "deflate"
            np.testing.assert_array_equal(cog.read(1), data[i])
    with rasterio.open(item.assets["SCL"].href) as scl:
        assert scl.res == (20.0, 20.0) and scl.shape == (20, 20)
        qa = scl.read(1)
    assert qa[0:2, 0:2].tolist() == [[0, 0], [0, 0]] and (qa[2:, :] == 4).all() and (qa[:, 2:] == 4).all()

    # the local provider reads band B03 as the file's 2nd band, on a grid aligned with the file
    grid = GridSpec("EPSG:32631", (10.0, 0, 640_100.0, 0, -10.0, 5_824_900.0), 10, 10)
    spatial = PointBuffer(*Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
                          .transform(640_150.0, 5_824_850.0), 50)
    stack = LocalProvider(out).fetch(spatial, TemporalSpec.range("2022-06-01", "2022-07-01"),
                                     SensorSpec(bands=("B02", "B03"), cloudy_pct=0), grid)
    np.testing.assert_allclose(stack.data[0, 1], data[1, 10:20, 10:20])
    np.testing.assert_allclose(stack.data[0, 0], data[2, 10:20, 10:20])
    assert (stack.qa == 4).all()


def test_catalog_keeps_non_square_pixels_and_provider_reprojects(tmp_path):
    """EuroSAT-like chip (10.007 m x 10.020 m pixels): the COGs keep the true affine and the
    local provider reprojects onto a square 10 m grid (nearest: the exact source pixel under each
    cell centre; bilinear: as an independent rasterio reprojection)."""
    from rasterio.warp import Resampling, reproject

    rx, ry, x0, y1 = 10.007, 10.020, 640_003.0, 5_825_004.0
    rng = np.random.default_rng(7)
    data = rng.integers(100, 5000, (2, 64, 64)).astype(np.uint16)
    src = write_tiff(tmp_path / "eurosat.tif", data, x0=x0, y1=y1, res=rx, res_y=ry)
    out = build_catalog([src], tmp_path / "cat" / "catalog.json", bands=["B03", "B02"],
                        datetime="2022-06-15", qa_value=4, item_ids=["chip"])
    (item,) = read_catalog(out)
    with rasterio.open(item.assets["B02"].href) as cog:
        assert cog.transform.almost_equals(Affine(rx, 0, x0, 0, -ry, y1), precision=1e-9)
        np.testing.assert_array_equal(cog.read(1), data[1])
    assert item.assets["B02"].extra_fields["proj:transform"][:6] == [rx, 0.0, x0, 0.0, -ry, y1]
    with rasterio.open(item.assets["SCL"].href) as scl:  # covers the whole chip at 20 m
        assert scl.res == (20.0, 20.0) and scl.shape == (33, 33) and (scl.read(1) == 4).all()

    # a square 10 m grid inside the chip, its cell centres placed so that near the far edges they
    # fall in a different source pixel than they would if the chip's pixels were 10 m squares
    n, left, top = 63, x0 + 5.2035, y1 - 5.61  # no centre within 3 mm of a pixel edge
    grid = GridSpec("EPSG:32631", (10.0, 0, left, 0, -10.0, top), n, n)
    spatial = PointBuffer(*Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
                          .transform(left + 5 * n, top - 5 * n), 150)
    window = TemporalSpec.range("2022-06-01", "2022-07-01")
    sensor = SensorSpec(bands=("B02", "B03"), cloudy_pct=0)
    near = LocalProvider(out, resampling="nearest").fetch(spatial, window, sensor, grid)
    centre_x = left - x0 + 10.0 * (np.arange(n) + 0.5)  # metres from the chip's left / top edge
    centre_y = y1 - top + 10.0 * (np.arange(n) + 0.5)
    cols, rows = np.floor(centre_x / rx).astype(int), np.floor(centre_y / ry).astype(int)
    assert (cols != np.floor(centre_x / 10)).any() and (rows != np.floor(centre_y / 10)).any()
    np.testing.assert_array_equal(near.data[0, 0], data[1][np.ix_(rows, cols)])
    np.testing.assert_array_equal(near.data[0, 1], data[0][np.ix_(rows, cols)])

    bil = LocalProvider(out, resampling="bilinear").fetch(spatial, window, sensor, grid)
    expected = np.zeros((n, n), np.float32)
    reproject(data[1].astype(np.float32), expected, src_transform=Affine(rx, 0, x0, 0, -ry, y1),
              dst_transform=grid.affine(), src_crs="EPSG:32631", dst_crs="EPSG:32631",
              resampling=Resampling.bilinear)
    np.testing.assert_allclose(bil.data[0, 0], expected, rtol=0, atol=0.5)
    assert np.abs(bil.data[0, 0] - near.data[0, 0]).max() > 50  # bilinear really interpolated


def test_catalog_errors_name_the_problem(tmp_path, three_band_tiff):
    src, _ = three_band_tiff
    out = tmp_path / "catalog.json"
    with pytest.raises(ConfigError, match="not found") as err:
        build_catalog([src, tmp_path / "nope.tif"], out, bands=["B04", "B03", "B02"], datetime="2022-06-15",
                      qa_value=4)
    assert str(tmp_path / "nope.tif") in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_catalog([src], out, bands=S2_12, datetime="2022-06-15", qa_value=4)
    assert str(src) in str(err.value) and "3 band" in str(err.value) and "12" in str(err.value)
    with pytest.raises(ConfigError, match="qa_value"):
        build_catalog([src], out, bands=["B04", "B03", "B02"], datetime="2022-06-15")
    with pytest.raises(ConfigError, match="qa_value=9"):
        build_catalog([src], out, bands=["B04", "B03", "B02"], datetime="2022-06-15", qa_value=9)
    with pytest.raises(ConfigError, match="B13"):
        build_catalog([src], out, bands=["B04", "B03", "B13"], datetime="2022-06-15", qa_value=4)
    with pytest.raises(ConfigError, match="datetime"):
        build_catalog([src], out, bands=["B04", "B03", "B02"], datetime="15/06/2022", qa_value=4)
    assert not out.exists()
    # default item ids are the file names, made safe as folder names
    (item,) = read_catalog(build_catalog([src], out, bands=["B04", "B03", "B02"], datetime="2022-06-15",
                                         qa_value=4))
    assert item.id == "scene_one" and Path(item.assets["B03"].href) == tmp_path / "scene_one" / "B03.tif"
