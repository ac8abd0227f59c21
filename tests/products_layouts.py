"""Generators of every published product layout TorchGeo's test fixtures cover (our own code).

Each writer puts tiny files with the real names, directory structure, dtypes, CRSs and
transforms of one layout under ``root`` and returns a :class:`Layout` saying where they are
and which eoembed model (and options) reads them. The rasters keep the odd transforms of the
published files (not aligned to any UTM 10 m grid, bottom-up AlphaEarth COGs, a 0.125-degree
offset Copernicus lattice, a non-WGS84 Presto CRS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SIZE = 24  # raster side in pixels


@dataclass
class Layout:
    """One written layout: model id + options, the files, and where the data is."""

    name: str
    model: str
    source: Path
    files: list[Path]
    options: dict = field(default_factory=dict)
    year: int = 2024


def _tif(path: Path, data: np.ndarray, crs: str, transform: tuple, nodata=None) -> Path:
    """Write ``data`` exactly as stored (row 0 first), with the given transform."""
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=Affine(*transform),
                       nodata=nodata, tiled=True, blockxsize=16, blockysize=16, compress="deflate") as ds:
        ds.write(data)
    return path


def gse_official(root: Path, seed: int = 0) -> Layout:
    """GCS / Source Cooperative COG: int8, nodata -128, stored bottom-up (positive y res), UTM 10N."""
    rng = np.random.default_rng(seed)
    z = rng.integers(-128, 128, (64, SIZE, SIZE)).astype(np.int8)
    z[:, 3, 4:9] = -128
    p = _tif(root / "2024" / "10N" / "x086q72fv2f9q1x4a-0000000000-0000000000.tiff", z, "EPSG:32610",
             (10.0, 0.0, 500000.0, 0.0, 10.0, 6062080.0), nodata=-128)
    return Layout("gse_official", "gse", root, [p])


def gse_major_tom(root: Path, seed: int = 1) -> Layout:
    """Hugging Face Major-TOM AlphaEarth: float64 in [-1, 1], no nodata, UTM 19N, unaligned."""
    z = np.random.default_rng(seed).random((64, SIZE, SIZE)) * 2 - 1
    p = _tif(root / "2024" / "U" / "1" / "L" / "7" / "471U_587L.tif", z, "EPSG:32619",
             (10.0, 0.0, 310455.1604040997, 0.0, -10.0, 4696576.002073958))
    return Layout("gse_major_tom", "gse", root, [p])


def tessera_tiff(root: Path, seed: int = 2) -> Layout:
    """geotessera GeoTIFF export as TorchGeo lays it out: the raster lies mostly outside its named cell."""
    z = (np.random.default_rng(seed).random((128, SIZE, SIZE)) * 2 - 1).astype(np.float32)
    d = root / "global_0.1_degree_representation" / "2024" / "grid_0.05_51.35"
    p = _tif(d / "grid_0.05_51.35_2024.tiff", z, "EPSG:32631",
             (10.0, 0.0, 290872.40803907975, 0.0, -10.0, 5698579.144861946))
    return Layout("tessera_tiff", "tessera", root, [p])


def tessera_npy(root: Path, seed: int = 3) -> Layout:
    """geotessera .npy tiles: int8 (H, W, 128) + float32 scales (H, W) + landmask GeoTIFF, unaligned."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-127, 128, (SIZE, SIZE, 128)).astype(np.int8)
    s = rng.uniform(0.01, 0.05, (SIZE, SIZE)).astype(np.float32)
    s[5, 5:8] = 0.0
    d = root / "global_0.1_degree_representation" / "2024" / "grid_3.05_52.35"
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "grid_3.05_52.35.npy", q)
    np.save(d / "grid_3.05_52.35_scales.npy", s)
    mask = _tif(root / "global_0.1_degree_tiff_all" / "grid_3.05_52.35.tiff",
                np.ones((1, SIZE, SIZE), np.uint8), "EPSG:32631",
                (10.0, 0.0, 500003.7, 0.0, -10.0, 5800006.2))
    files = [d / "grid_3.05_52.35.npy", d / "grid_3.05_52.35_scales.npy", mask]
    return Layout("tessera_npy", "tessera", root, files)


def esd(root: Path, seed: int = 4) -> Layout:
    """ESD: 13 uint16 bands (12 FSQ codes + a quality band), 30 m, UTM 2N, no nodata; a no-data block."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 64000, (13, SIZE, SIZE)).astype(np.uint16)
    z[12] = rng.integers(0, 10, (SIZE, SIZE))
    z[:12, 6:9, 6:9] = 0  # all 12 codes 0: no data (the quality band is not)
    p = _tif(root / "SDC30_EBD_V001" / "2024" / "SDC30_EBD_V001_02VMN_2024_mock.tif", z, "EPSG:32602",
             (30.0, 0.0, 399945.0, 0.0, -30.0, 6800055.0))
    return Layout("esd", "esd", root, [p])


def copernicus_embed(root: Path, seed: int = 5) -> Layout:
    """Copernicus-Embed: float32, EPSG:4326, 0.25 deg lattice offset by 0.125 (as the 721 x 1440 map)."""
    rng = np.random.default_rng(seed)
    n = 12
    z = (rng.random((768, n, n)) * 2 - 1).astype(np.float32)
    z[:, 0, :3] = 0.0  # ocean
    p = _tif(root / "embed_map_310k.tif", z, "EPSG:4326", (0.25, 0.0, 2.875, 0.0, -0.25, 53.625))
    return Layout("copernicus_embed", "copernicus_embed", p, [p], year=2021)


def presto_togo(root: Path, seed: int = 6) -> Layout:
    """Togo Presto tile: uint16, no nodata, no scale tags, EPSG:25231 (Lome / UTM 31N)."""
    z = np.random.default_rng(seed).integers(1, 65535, (128, SIZE, SIZE)).astype(np.uint16)
    p = _tif(root / "Togo_Presto_embeddings_v2025_06_190000000000-0000000000.tif", z, "EPSG:25231",
             (10.0, 0.0, 156130.0, 0.0, -10.0, 1233190.0))
    return Layout("presto_togo", "presto_togo", root, [p], year=2019)


# ------------------------------------------------------------------ patch layouts

LON0, LAT0 = 5.0, 52.0


def _grid_points(n: int = 2, step: float = 0.02):
    xs, ys = np.meshgrid(LON0 + step * np.arange(n), LAT0 + step * np.arange(n))
    return xs.ravel(), ys.ravel()


def _boxes(xs, ys, half: float):
    import shapely

    return shapely.box(xs - half, ys - half, xs + half, ys + half)


def clay_v0(root: Path, seed: int = 7) -> Layout:
    import geopandas as gpd
    import pandas as pd

    xs, ys = _grid_points()
    gdf = gpd.GeoDataFrame({"id": np.arange(4), "date": pd.date_range("2024-01-01", "2024-01-04"),
                            "embeddings": list(np.random.default_rng(seed).random((4, 768)))},
                           geometry=_boxes(xs, ys, 0.011))
    p = root / "v0_sentinel" / "01WCN_20190518_20231021_v001.gpq"
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_parquet(p, compression="zstd")
    return Layout("clay_v0", "clay", p.parent, [p])


def clay_v15_sentinel(root: Path, seed: int = 8) -> Layout:
    import geopandas as gpd
    import pandas as pd

    xs, ys = _grid_points()
    gdf = gpd.GeoDataFrame({"chips_id": np.arange(4), "datetime": pd.date_range("2024-01-01", "2024-01-04"),
                            "embedding": list(np.random.default_rng(seed).random((4, 1024)))},
                           geometry=_boxes(xs, ys, 0.012))
    p = root / "v1.5_sentinel" / "data_01c1fab1-0004-5b1c-0009-b72e01d3104e_222_0_0.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_parquet(p, compression="zstd")
    return Layout("clay_v15_sentinel", "clay", p.parent, [p])


def clay_v15_naip(root: Path, seed: int = 9) -> Layout:
    """NAIP chips: ``embeddings`` + geometry, **no time column**; the date is in the file name."""
    import geopandas as gpd

    xs, ys = _grid_points(step=0.002)
    gdf = gpd.GeoDataFrame({"embeddings": list(np.random.default_rng(seed).random((4, 1024)))},
                           geometry=_boxes(xs, ys, 0.0012))
    p = root / "v1.5_naip" / "m_4007201_ne_18_060_20241105.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_parquet(p, compression="snappy")
    return Layout("clay_v15_naip", "clay", p.parent, [p])


def major_tom(root: Path, seed: int = 10) -> Layout:
    import geopandas as gpd
    import pandas as pd

    xs, ys = _grid_points()
    gdf = gpd.GeoDataFrame({"embedding": list(np.random.default_rng(seed).random((4, 2048))),
                            "centre_lon": xs, "centre_lat": ys,
                            "timestamp": pd.date_range("2024-01-01", "2024-01-04")},
                           geometry=_boxes(xs, ys, 0.012))
    p = root / "embeddings" / "part_00001-00050.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_parquet(p, compression="snappy")
    return Layout("major_tom", "major_tom", p.parent, [p])


def earth_index(root: Path, seed: int = 11) -> Layout:
    import geopandas as gpd

    xs, ys = _grid_points(step=0.003)
    emb = list(np.random.default_rng(seed).random((4, 384)))
    gdf = gpd.GeoDataFrame({"id": np.arange(4), "embedding": emb},
                           geometry=gpd.points_from_xy(xs, ys))
    p = root / "2024" / "01GDM_2024-01-01_2025-01-01.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    gdf.to_parquet(p, compression="zstd")
    return Layout("earth_index", "earth_index", root, [p], options={"patch_m": 320.0})


def earth_embeddings(root: Path, seed: int = 12) -> Layout:
    """EarthEmbeddings (ML4Sustain): plain parquet, centre_lon/lat + timestamp, read by major_tom."""
    import pandas as pd

    xs, ys = _grid_points(step=0.03)
    df = pd.DataFrame({"embedding": list(np.random.default_rng(seed).random((4, 1024))), "centre_lon": xs,
                       "centre_lat": ys, "timestamp": pd.date_range("2024-01-01", "2024-01-04")})
    p = root / "dinov2" / "DINOv2_grid_sample_center_384x384_244k.parquet"
    p.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(p, compression="snappy")
    return Layout("earth_embeddings", "major_tom", p.parent, [p], options={"patch_m": 3840.0})


PIXEL_LAYOUTS = {f.__name__: f for f in (gse_official, gse_major_tom, tessera_tiff, tessera_npy, esd,
                                         copernicus_embed, presto_togo)}
PATCH_LAYOUTS = {f.__name__: f for f in (clay_v0, clay_v15_sentinel, clay_v15_naip, major_tom, earth_index,
                                         earth_embeddings)}
