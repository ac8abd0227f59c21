"""GENERATED Sentinel-2 L2A-like demo imagery: real COG files plus a STAC ItemCollection index.

Nothing here is real satellite data. :func:`generate` simulates, for each demo site, one UTM
tile observed on a few dates of one year and writes what a Sentinel-2 L2A archive on a cloud
store looks like: one single-band cloud-optimised GeoTIFF per band at its native resolution
(10/20/60 m, uint16 reflectance x 10000, nodata 0), a 20 m Scene Classification Layer (SCL)
per scene, and an ``index.json`` STAC ItemCollection (relative hrefs) that
:class:`eoembed.providers.local.LocalProvider` reads. Every item carries
``"eoembed:generated": true``.

The simulation (land cover from smooth seeded noise, crop fields with their own phenology
and productivity, clouds and shadows) lives in :mod:`eoembed.providers.sample_scene`;
:func:`demo_labels` derives yield-like and land-cover labels from the TRUE generated fields,
so a benchmark on the demo imagery has something learnable to find.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from eoembed.chunkio import write_text_atomic
from eoembed.collections import SENTINEL2_L2A
from eoembed.errors import ConfigError
from eoembed.grid import to_crs, utm_epsg
from eoembed.providers import sample_scene as sim

__all__ = ["DEMO_SITES", "DEMO_YEAR", "demo_labels", "demo_rois", "demo_sites", "generate",
           "site_grid", "site_scenes"]

GENERATOR_VERSION = 1
DEMO_YEAR = 2023
#: Demo sites (name, centre lon, centre lat): six UTM zones, both hemispheres.
DEMO_SITES: tuple[tuple[str, float, float], ...] = (
    ("nl_flevoland", 5.62, 52.55),      # UTM 31N
    ("ke_nakuru", 36.02, -0.35),        # UTM 37S
    ("us_iowa", -93.62, 42.03),         # UTM 15N
    ("in_punjab", 75.85, 30.90),        # UTM 43N
    ("br_mato_grosso", -55.90, -12.60),  # UTM 21S
    ("es_valladolid", -4.72, 41.65),    # UTM 30N
)
BASE_RES = 10.0
COG_BLOCK = 128
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_YIELD_MAX = 12.0  # t/ha of a field fully covered by the most productive crop


def demo_sites() -> list[tuple[str, float, float]]:
    """The demo sites as ``(name, lon, lat)`` tuples."""
    return list(DEMO_SITES)


def site_grid(lon: float, lat: float, tile_px: int) -> tuple[str, float, float]:
    """UTM CRS and upper-left corner ``(x0, y1)`` of a site's tile, snapped to 60 m so the
    10, 20 and 60 m grids share their corners."""
    crs = f"EPSG:{utm_epsg(lon, lat)}"
    cx, cy = to_crs(lon, lat, "EPSG:4326", crs)
    half = tile_px * BASE_RES / 2
    return crs, float(np.floor((cx - half) / 60) * 60), float(np.ceil((cy + half) / 60) * 60)


def _dates(year: int, n: int, lon: float) -> list[dt.datetime]:
    """``n`` acquisition times spread over ``year``, at 10:30 local solar time (UTC)."""
    days = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
    out = []
    for i in range(n):
        day = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            days=int((i + 0.5) * days / n))
        out.append(day + dt.timedelta(seconds=round((10.5 - lon / 15.0) * 3600)))
    return out


def _validate(sites: Sequence[tuple[str, float, float]], year: int, dates_per_year: int,
              tile_px: int) -> None:
    names = [s[0] for s in sites]
    if not sites:
        raise ConfigError("sites=[] is invalid: allowed a non-empty list of (name, lon, lat)")
    for name, lon, lat in sites:
        if not _NAME.match(name):
            raise ConfigError(f"site name={name!r} is invalid: allowed letters, digits, '_' and '-'")
        if not (-180 <= lon <= 180 and -80 <= lat <= 84):
            raise ConfigError(f"site {name!r} lon/lat=({lon}, {lat}) is invalid: allowed "
                              "lon in [-180, 180], lat in [-80, 84]")
    if len(set(names)) != len(names):
        raise ConfigError(f"site names={names} are invalid: allowed distinct names")
    if not 1 <= dates_per_year <= 73:
        raise ConfigError(f"dates_per_year={dates_per_year} is invalid: allowed 1..73")
    if tile_px % 12 or not 48 <= tile_px <= 2400:
        raise ConfigError(f"tile_px={tile_px} is invalid: allowed a multiple of 12 in [48, 2400]")
    if not 1972 <= year <= 2099:
        raise ConfigError(f"year={year} is invalid: allowed 1972..2099")


def _write_cog(path: Path, array: np.ndarray, crs: str, res: float, x0: float, y1: float,
               band: str, resampling: str) -> None:
    """Atomically write one single-band uint16/uint8 COG (deflate, 128 px tiles, overviews)."""
    from affine import Affine

    from eoembed.catalog import write_band_cog

    write_band_cog(path, array, crs, Affine(res, 0, x0, 0, -res, y1), 0, band, resampling,
                   blocksize=COG_BLOCK,
                   tags={"eoembed_generated": "true", "note": "GENERATED demo imagery, not real Sentinel-2 data"})


def _footprint(crs: str, x0: float, y1: float, size_m: float) -> dict:
    """Lon/lat GeoJSON polygon of a UTM square (edges densified)."""
    t = np.linspace(0, 1, 9)[:-1]
    xs = np.concatenate([x0 + size_m * t, np.full(8, x0 + size_m), x0 + size_m * (1 - t), np.full(8, x0)])
    ys = np.concatenate([np.full(8, y1), y1 - size_m * t, np.full(8, y1 - size_m), y1 - size_m * (1 - t)])
    lon, lat = to_crs(xs, ys, crs, "EPSG:4326")
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def _asset(href: str, res: float, shape: tuple[int, int], x0: float, y1: float, dtype: str,
           title: str, roles: list[str]) -> dict:
    band = {"nodata": 0, "data_type": dtype, "spatial_resolution": res}
    if dtype == "uint16":
        band.update(scale=SENTINEL2_L2A.scale, offset=0.0)
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": title, "roles": roles, "proj:shape": [shape[0], shape[1]],
            "proj:transform": [res, 0.0, x0, 0.0, -res, y1], "raster:bands": [band]}


def site_scenes(name: str, lon: float, lat: float, year: int = DEMO_YEAR, n_dates: int = 6,
                tile_px: int = 384, seed: int = 0) -> Iterator[tuple[dt.datetime, np.ndarray, np.ndarray]]:
    """The GENERATED scenes of one site in memory, as :func:`generate` writes them:
    ``(time, (12, H, W) float32 reflectance x 10000 at 10 m, (H, W) uint8 SCL at 10 m)`` per date."""
    site = sim.make_site(name, lat, tile_px, seed)
    for i, when in enumerate(_dates(year, n_dates, lon)):
        bands10, scl10 = sim.render_scene(site, when.timetuple().tm_yday, i, n_dates)
        yield when, bands10, scl10


def _render_site(out: Path, name: str, lon: float, lat: float, year: int, n_dates: int,
                 tile_px: int, seed: int) -> list[dict]:
    """Write every scene of one site and return its STAC items (as dicts)."""
    crs, x0, y1 = site_grid(lon, lat, tile_px)
    size_m = tile_px * BASE_RES
    geometry = _footprint(crs, x0, y1, size_m)
    coords = np.asarray(geometry["coordinates"][0])
    bbox = [float(coords[:, 0].min()), float(coords[:, 1].min()),
            float(coords[:, 0].max()), float(coords[:, 1].max())]
    items = []
    for when, bands10, scl10 in site_scenes(name, lon, lat, year, n_dates, tile_px, seed):
        scl20 = sim.scl_to_20m(scl10)
        item_id = f"DEMO_S2L2A_{name}_{when:%Y%m%d}"
        rel = f"{name}/{when:%Y%m%d}"
        assets = {}
        for b, band in enumerate(SENTINEL2_L2A.bands):
            res = float(SENTINEL2_L2A.native_gsd_m[band])
            factor = int(res / BASE_RES)
            arr = sim.block_mean(bands10[b], factor) if factor > 1 else bands10[b]
            arr = np.clip(np.rint(arr), 1, 65535).astype(np.uint16)
            _write_cog(out / rel / f"{band}.tif", arr, crs, res, x0, y1, band, "average")
            assets[band] = _asset(f"{rel}/{band}.tif", res, arr.shape, x0, y1, "uint16",
                                  f"{band} reflectance x 10000 (GENERATED)", ["data", "reflectance"])
        _write_cog(out / rel / "SCL.tif", scl20, crs, 20.0, x0, y1, "SCL", "nearest")
        assets["SCL"] = _asset(f"{rel}/SCL.tif", 20.0, scl20.shape, x0, y1, "uint8",
                               "Scene classification map (GENERATED)", ["data"])
        cloudy = float(np.isin(scl20, (8, 9, 10)).mean() * 100)
        props = {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": "sentinel-2-demo", "constellation": "sentinel-2",
            "eo:cloud_cover": round(cloudy, 4),
            "s2:cloud_shadow_percentage": round(float((scl20 == 3).mean() * 100), 4),
            "proj:code": crs, "eoembed:generated": True, "eoembed:site": name,
            "eoembed:note": "GENERATED demo imagery (simulated), not real Sentinel-2 data",
        }
        items.append({
            "type": "Feature", "stac_version": "1.1.0", "id": item_id,
            "stac_extensions": [
                "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "collection": SENTINEL2_L2A.id, "geometry": geometry, "bbox": bbox,
            "properties": props, "assets": assets, "links": []})
    return items


def _params(sites, year, dates_per_year, tile_px, seed) -> dict:
    return {"version": GENERATOR_VERSION, "sites": [[n, float(a), float(b)] for n, a, b in sites],
            "year": year, "dates_per_year": dates_per_year, "tile_px": tile_px, "seed": seed}


def _is_complete(index: Path, params: dict) -> bool:
    """True when ``index`` was written with ``params`` and every asset file exists."""
    try:
        doc = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    if doc.get("eoembed:generator") != params:
        return False
    return all((index.parent / a["href"]).is_file()
               for item in doc.get("features", []) for a in item["assets"].values())


def generate(out_dir: str | Path, sites: Sequence[tuple[str, float, float]] | None = None,
             year: int = DEMO_YEAR, dates_per_year: int = 6, tile_px: int = 384,
             seed: int = 0) -> Path:
    """Write GENERATED demo imagery (COGs) and its STAC ItemCollection ``index.json``.

    Deterministic in its arguments; when ``out_dir/index.json`` already records the same
    arguments and all its files exist, nothing is rewritten.

    Args:
        out_dir: Output folder (created).
        sites: ``(name, lon, lat)`` per site; defaults to :data:`DEMO_SITES`.
        year: Year of the acquisitions.
        dates_per_year: Acquisition dates per site, spread over the year.
        tile_px: Tile side in 10 m pixels (multiple of 12, so 20 m and 60 m grids fit).
        seed: Random seed.

    Returns:
        Path of ``index.json``.

    Raises:
        ConfigError: if an argument is out of range.
    """
    sites = [(str(n), float(a), float(b)) for n, a, b in (DEMO_SITES if sites is None else sites)]
    _validate(sites, year, dates_per_year, tile_px)
    out = Path(out_dir)
    index = out / "index.json"
    params = _params(sites, year, dates_per_year, tile_px, seed)
    if _is_complete(index, params):
        return index
    features: list[dict] = []
    for name, lon, lat in sites:
        features += _render_site(out, name, lon, lat, year, dates_per_year, tile_px, seed)
    doc = {"type": "FeatureCollection", "features": features, "eoembed:generator": params,
           "description": "GENERATED Sentinel-2 L2A-like demo imagery (simulated, not real data)"}
    write_text_atomic(index, json.dumps(doc, indent=1), ".json")
    return index


def demo_rois(n_per_site: int = 8, buffer_m: float = 320.0, year: int = DEMO_YEAR,
              sites: Sequence[tuple[str, float, float]] | None = None, tile_px: int = 384,
              margin_m: float = 60.0, seed: int = 0) -> pd.DataFrame:
    """ROI table of the demo: ``n_per_site`` square ROIs inside every site's tile.

    The tile (less ``margin_m`` at its edges) is cut into k x k cells; each ROI sits at a
    seeded position inside its own cell, so ROIs never overlap when a cell is wider than a
    ROI (otherwise they are only kept inside the tile).

    Returns:
        DataFrame with columns ``roi_id, lon, lat, buffer_m, year, site``.
    """
    sites = list(DEMO_SITES if sites is None else sites)
    span = tile_px * BASE_RES - 2 * margin_m
    if n_per_site < 1 or span < 2 * buffer_m:
        raise ConfigError(f"n_per_site={n_per_site}, buffer_m={buffer_m} is invalid: allowed "
                          f"n_per_site >= 1 and buffer_m <= {span / 2} for tile_px={tile_px}")
    k = int(np.ceil(np.sqrt(n_per_site)))
    cell = span / k
    rows = []
    for name, lon, lat in sites:
        crs, x0, y1 = site_grid(lon, lat, tile_px)
        rng = np.random.default_rng([seed, zlib.crc32(f"rois-{name}".encode())])
        cells = sorted(int(c) for c in rng.permutation(k * k)[:n_per_site])
        for j, c in enumerate(cells):
            cy, cx = divmod(c, k)
            ux, uy = rng.uniform(0, 1, 2)
            if cell >= 2 * buffer_m:  # centre inside the cell, the whole square too
                off_x = cx * cell + buffer_m + ux * (cell - 2 * buffer_m)
                off_y = cy * cell + buffer_m + uy * (cell - 2 * buffer_m)
            else:  # cells too small: spread the centres over the tile
                off_x = buffer_m + (cx + ux) / k * (span - 2 * buffer_m)
                off_y = buffer_m + (cy + uy) / k * (span - 2 * buffer_m)
            rlon, rlat = to_crs(x0 + margin_m + off_x, y1 - margin_m - off_y, crs, "EPSG:4326")
            rows.append({"roi_id": f"{name}_{j:02d}", "lon": round(float(rlon), 6),
                         "lat": round(float(rlat), 6), "buffer_m": float(buffer_m),
                         "year": int(year), "site": name})
    return pd.DataFrame(rows, columns=["roi_id", "lon", "lat", "buffer_m", "year", "site"])


def demo_labels(index: str | Path, rois: pd.DataFrame | Iterable[dict]) -> pd.DataFrame:
    """Labels of ROIs from the TRUE generated scene state (regenerated from the index's seed).

    ``yield_t_ha`` = 12 x crop fraction x mean crop productivity x mean peak-season crop NDVI,
    plus seeded noise (sd 0.15), clipped at 0; ``landcover`` = the majority class of the ROI.

    Args:
        index: ``index.json`` written by :func:`generate`, or its folder.
        rois: Table with ``roi_id, lon, lat, buffer_m``.

    Returns:
        DataFrame ``roi_id, site, yield_t_ha, landcover, crop_fraction, mean_productivity,
        peak_ndvi``.

    Raises:
        ConfigError: if the index was not written by :func:`generate` or a ROI lies outside
            every generated tile.
    """
    path = Path(index)
    path = path / "index.json" if path.is_dir() else path
    params = json.loads(path.read_text()).get("eoembed:generator")
    if not params:
        raise ConfigError(f"index={str(path)!r} is invalid: allowed an index.json written by "
                          "eoembed.providers.sample.generate")
    tile_px, seed = int(params["tile_px"]), int(params["seed"])
    cache: dict[str, sim.SiteScene] = {}
    out = []
    table = rois if isinstance(rois, pd.DataFrame) else pd.DataFrame(list(rois))
    for roi in table.to_dict("records"):
        hit = None
        for name, lon, lat in params["sites"]:
            crs, x0, y1 = site_grid(lon, lat, tile_px)
            x, y = to_crs(float(roi["lon"]), float(roi["lat"]), "EPSG:4326", crs)
            col, row = (x - x0) / BASE_RES, (y1 - y) / BASE_RES
            if 0 <= col < tile_px and 0 <= row < tile_px:
                hit = (name, lat, col, row)
                break
        if hit is None:
            raise ConfigError(f"roi {roi['roi_id']!r} at lon/lat=({roi['lon']}, {roi['lat']}) is "
                              f"invalid: allowed a point inside one of the generated tiles "
                              f"{[s[0] for s in params['sites']]}")
        name, lat, col, row = hit
        if name not in cache:
            cache[name] = sim.make_site(name, lat, tile_px, seed)
        half = float(roi["buffer_m"]) / BASE_RES
        rows_ = slice(max(0, int(round(row - half))), min(tile_px, int(round(row + half))))
        cols_ = slice(max(0, int(round(col - half))), min(tile_px, int(round(col + half))))
        truth = sim.roi_truth(cache[name], rows_, cols_)
        rng = np.random.default_rng([seed, zlib.crc32(f"label-{roi['roi_id']}".encode())])
        value = _YIELD_MAX * truth["crop_fraction"] * truth["mean_productivity"] * truth["peak_ndvi"]
        out.append({"roi_id": roi["roi_id"], "site": name,
                    "yield_t_ha": round(max(0.0, value + rng.normal(0, 0.15)), 4),
                    "landcover": truth["majority_class"],
                    "crop_fraction": round(truth["crop_fraction"], 4),
                    "mean_productivity": round(truth["mean_productivity"], 4),
                    "peak_ndvi": round(truth["peak_ndvi"], 4)})
    return pd.DataFrame(out)
