"""Tiny files in the real layouts of the precomputed embedding products (for tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

UTM31 = "EPSG:32631"
X0, Y0 = 500_000.0, 5_800_000.0  # upper-left corner of the test tiles (UTM 31N, ~3.0E 52.3N)


def utm_to_lonlat(x, y, crs: str = UTM31):
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


def write_geotiff(path: Path, data: np.ndarray, crs: str, transform: tuple, nodata=None,
                  bottom_up: bool = False, scales=None, offsets=None) -> Path:
    """Write ``data`` (bands, rows, cols), given **north-up**, as a GeoTIFF.

    With ``bottom_up`` the file stores the rows south to north with a positive y resolution (as the
    AlphaEarth mirror does); ``transform`` is the north-up ``(a, b, c, d, e, f)`` with ``e < 0``.
    """
    import rasterio
    from affine import Affine

    a, b, c, d, e, f = transform
    rows = data.shape[1]
    if bottom_up:
        data = data[:, ::-1, :]
        t = Affine(a, b, c, d, -e, f + e * rows)
    else:
        t = Affine(a, b, c, d, e, f)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=rows, count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=t, nodata=nodata) as ds:
        ds.write(data)
        if scales is not None:
            ds.scales = tuple(scales)
        if offsets is not None:
            ds.offsets = tuple(offsets)
    return path


def aef_codes(rows: int = 64, cols: int = 64, seed: int = 0) -> np.ndarray:
    """Random int8 AlphaEarth codes (64, rows, cols) in [-127, 127] (no nodata)."""
    return np.random.default_rng(seed).integers(-127, 128, (64, rows, cols)).astype(np.int8)


def write_aef_tile(root: Path, year: int, codes: np.ndarray, x0: float = X0, y0: float = Y0,
                   zone: str = "31N", name: str = "tile", crs: str = UTM31, bottom_up: bool = True) -> Path:
    """An AEF mirror tile ``<root>/<year>/<zone>/<name>.tiff`` (int8, nodata -128, 10 m)."""
    path = root / str(year) / zone / f"{name}.tiff"
    return write_geotiff(path, codes, crs, (10.0, 0.0, x0, 0.0, -10.0, y0), nodata=-128, bottom_up=bottom_up)


def write_tessera_npy(root: Path, lon: float, lat: float, year: int, q: np.ndarray, scales: np.ndarray,
                      x0: float, y0: float, crs: str = UTM31, subdir: bool = True) -> None:
    """geotessera tile: int8 ``(H, W, 128)`` .npy + scales .npy + landmask GeoTIFF giving the grid."""
    name = f"grid_{lon:.2f}_{lat:.2f}"
    d = root / "global_0.1_degree_representation" / str(year)
    d = d / name if subdir else d
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / f"{name}.npy", q)
    np.save(d / f"{name}_scales.npy", scales)
    mask = np.ones((1, q.shape[0], q.shape[1]), np.uint8)
    write_geotiff(root / "global_0.1_degree_tiff_all" / f"{name}.tiff", mask, crs,
                  (10.0, 0.0, x0, 0.0, -10.0, y0))


def write_tessera_tiff(root: Path, lon: float, lat: float, year: int, data: np.ndarray, x0: float, y0: float,
                       crs: str = UTM31) -> Path:
    """geotessera GeoTIFF export ``grid_<lon>_<lat>_<year>.tiff`` (float32, 128 bands)."""
    return write_geotiff(root / f"grid_{lon:.2f}_{lat:.2f}_{year}.tiff", data.astype(np.float32), crs,
                         (10.0, 0.0, x0, 0.0, -10.0, y0))


def write_esd_tile(root: Path, year: int, codes: np.ndarray, x0: float = X0, y0: float = Y0,
                   crs: str = UTM31, nodata: int | None = 65535) -> Path:
    """ESD tile ``<root>/<year>/esd_<year>.tif``: uint16 FSQ codes at 30 m."""
    return write_geotiff(root / str(year) / f"esd_{year}.tif", codes.astype(np.uint16), crs,
                         (30.0, 0.0, x0, 0.0, -30.0, y0), nodata=nodata)


def write_copernicus(path: Path, data: np.ndarray, lon0: float, lat0: float) -> Path:
    """Copernicus-Embed GeoTIFF in EPSG:4326 at 0.25° (float32; ocean = 0)."""
    return write_geotiff(path, data.astype(np.float32), "EPSG:4326", (0.25, 0.0, lon0, 0.0, -0.25, lat0))


def square(lon: float, lat: float, half_deg: float):
    from shapely.geometry import box

    return box(lon - half_deg, lat - half_deg, lon + half_deg, lat + half_deg)


def write_clay_v0(path: Path, geoms, embeddings: np.ndarray, dates) -> Path:
    """Clay v0 ``.gpq``: ``embeddings`` (list<float>), ``date``, polygon ``geometry`` (EPSG:4326)."""
    import geopandas as gpd
    import pandas as pd

    df = gpd.GeoDataFrame({"source_url": [f"s3://chip/{i}.tif" for i in range(len(geoms))],
                           "date": pd.to_datetime(dates).date,
                           "embeddings": [list(map(float, e)) for e in embeddings]},
                          geometry=list(geoms), crs="EPSG:4326")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
    return path


def write_clay_v15(path: Path, geoms, embeddings: np.ndarray, datetimes) -> Path:
    """Clay v1.5 parquet: ``embedding`` (fixed-size float array), ``datetime``, polygon ``geometry``."""
    import geopandas as gpd
    import pandas as pd

    df = gpd.GeoDataFrame({"datetime": pd.to_datetime(datetimes, utc=True),
                           "embedding": [np.asarray(e, np.float32) for e in embeddings]},
                          geometry=list(geoms), crs="EPSG:4326")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
    return path


def write_major_tom(path: Path, lons, lats, embeddings: np.ndarray, timestamps, geoms=None) -> Path:
    """Major TOM embeddings parquet (plain parquet; ``geometry`` as WKB in the geometry variant)."""
    import pandas as pd
    import shapely

    df = pd.DataFrame({"unique_id": [f"id{i}" for i in range(len(lons))], "grid_cell": ["1U_1R"] * len(lons),
                       "centre_lon": list(lons), "centre_lat": list(lats),
                       "timestamp": pd.to_datetime(timestamps),
                       "embedding": [np.asarray(e, np.float32) for e in embeddings]})
    if geoms is not None:
        df["geometry"] = shapely.to_wkb(np.asarray(geoms, dtype=object))
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
    return path


def write_earth_index(path: Path, lons, lats, embeddings: np.ndarray) -> Path:
    """Earth Index GeoParquet: ``embedding`` + point ``geometry`` (no time)."""
    import geopandas as gpd

    df = gpd.GeoDataFrame({"id": np.arange(len(lons)),
                           "embedding": [np.asarray(e, np.float32) for e in embeddings]},
                          geometry=gpd.points_from_xy(lons, lats), crs="EPSG:4326")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
    return path
