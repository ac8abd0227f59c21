"""AlphaEarth (gse) read through the mirror's GeoParquet tile index, over HTTP and locally.

Two tiny int8 COG tiles side by side (one bottom-up with a nodata block) plus a 2022 tile, in the
mirror layout, served by a Range-capable HTTP server on 127.0.0.1 with an index in the real
``aef_index.parquet`` columns (fid, path, year, utm_zone, crs, wgs84_* bounds, geom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eoembed.errors import ConfigError
from eoembed.grid import GridSpec
from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.products.gse import resolve_href
from eoembed.specs import PointBuffer, TemporalSpec

from products_fixtures import UTM31, X0, Y0, aef_codes, utm_to_lonlat, write_aef_tile
from standins.cog_server import CogServer

N = 48  # tile size in pixels (10 m)
MIRROR = "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual"


def _cog(root: Path, year: int, codes: np.ndarray, x0: float, name: str, bottom_up: bool) -> str:
    """Write a mirror tile as a real COG; returns its layout path."""
    from rasterio.shutil import copy

    plain = write_aef_tile(root / "_plain", year, codes, x0=x0, name=name, bottom_up=bottom_up)
    rel = f"{year}/31N/{name}.tiff"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    copy(plain, root / rel, driver="COG", overviews="NONE")
    return rel


def _index(path: Path, rows: list[tuple[str, int, float]], geometry_crs: str = "EPSG:4326",
           bounds: bool = True) -> Path:
    """Index parquet: one row per (path, year, x0) tile of N x N pixels at Y0."""
    import geopandas as gpd
    from pyproj import Transformer
    from shapely.geometry import box

    to_ll = Transformer.from_crs(UTM31, "EPSG:4326", always_xy=True)
    data = {"fid": [], "path": [], "year": [], "utm_zone": [], "crs": [],
            "wgs84_west": [], "wgs84_south": [], "wgs84_east": [], "wgs84_north": []}
    geoms = []
    for i, (p, year, x0) in enumerate(rows):
        w, s, e, n = to_ll.transform_bounds(x0, Y0 - 10 * N, x0 + 10 * N, Y0)
        for k, v in zip(data, (i, p, year, "31N", "EPSG:32631", w, s, e, n)):
            data[k].append(v)
        utm = box(x0, Y0 - 10 * N, x0 + 10 * N, Y0)
        geoms.append(box(w, s, e, n) if geometry_crs == "EPSG:4326" else utm)
    if not bounds:
        data = {k: v for k, v in data.items() if not k.startswith("wgs84_")}
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=geometry_crs)).rename_geometry("geom")
    gdf.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The layout under ``www/`` (2023: tiles a|b, 2022: tile c over a) and its HTTP server."""
    root = tmp_path_factory.mktemp("aef") / "www"
    a, b, c = aef_codes(N, N, seed=1), aef_codes(N, N, seed=2), aef_codes(N, N, seed=3)
    a[:, 20:24, 40:44] = -128  # nodata block inside the ROI
    paths = {"a": _cog(root, 2023, a, X0, "a", bottom_up=True),
             "b": _cog(root, 2023, b, X0 + 10 * N, "b", bottom_up=False),
             "c": _cog(root, 2022, c, X0, "c", bottom_up=True)}
    rows = [(paths["a"], 2023, X0), (paths["b"], 2023, X0 + 10 * N), (paths["c"], 2022, X0)]
    _index(root / "aef_index.parquet", rows)
    _index(root / "aef_index_s3.parquet", [(f"{MIRROR}/{p}", y, x) for p, y, x in rows])
    _index(root / "aef_index_utm.parquet", rows, geometry_crs=UTM31, bounds=False)
    server = CogServer(root)
    yield {"root": root, "server": server, "codes": {"a": a, "b": b, "c": c}}
    server.stop()


def roi(x: float, y: float, buffer_m: float) -> PointBuffer:
    lon, lat = utm_to_lonlat(x, y)
    return PointBuffer(float(lon), float(lat), buffer_m)


#: straddles the a|b boundary and covers a's nodata block
STRADDLE = roi(X0 + 10 * N, Y0 - 220, 120)


def read(source, spatial, year=2023, **options):
    emb = create("gse", options or None, source=str(source))
    (arrays, rec), = emb.embed_requests([Request("r", spatial, TemporalSpec.year(year))], pooling="mean",
                                        grid=True, cell_m=None).values()
    return arrays, rec


def expected_grid(rec, logical: np.ndarray) -> np.ndarray:
    """Dequantized values of a north-up N-row mosaic starting at X0 at each grid pixel centre."""
    grid = GridSpec.from_dict(rec["grid"])
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())  # the grid is UTM 31N like the tiles
    raw = logical[:, np.floor((Y0 - yy) / 10).astype(int), np.floor((xx - X0) / 10).astype(int)]
    v = raw.astype(np.float64)
    return np.where(raw == -128, np.nan, np.sign(v) * (np.abs(v) / 127.5) ** 2)


def tiff_hits(server: CogServer) -> list[str]:
    return sorted({h.path for h in server.hits if h.path.endswith(".tiff")})


def test_url_index_reads_the_same_values_as_the_local_directory(mirror):
    server, root = mirror["server"], mirror["root"]
    local, rl = read(root, STRADDLE)
    server.clear()
    remote, rr = read(f"{server.url}/aef_index.parquet", STRADDLE)
    assert rl["status"] == rr["status"] == "partial" and rr["product_year"] == 2023
    np.testing.assert_array_equal(remote["pooled"], local["pooled"])
    np.testing.assert_array_equal(remote["grid"], local["grid"])
    assert rr["valid_fraction"] == rl["valid_fraction"] and rr["grid"] == rl["grid"]
    assert sorted(rr["product_files"]) == [f"{server.url}/2023/31N/a.tiff", f"{server.url}/2023/31N/b.tiff"]
    assert tiff_hits(server) == ["/2023/31N/a.tiff", "/2023/31N/b.tiff"]
    assert any(h.range and h.status == 206 for h in server.hits if h.path.endswith(".tiff"))
    # and both are right: computed by hand from the codes
    mosaic = np.concatenate([mirror["codes"]["a"], mirror["codes"]["b"]], axis=2)
    want = expected_grid(rr, mosaic)
    np.testing.assert_allclose(remote["grid"], want, rtol=1e-6, equal_nan=True)
    grid = GridSpec.from_dict(rr["grid"])
    ok = grid.inside_mask(STRADDLE.geometry()) & np.isfinite(want).all(axis=0)
    np.testing.assert_allclose(remote["pooled"], want[:, ok].mean(axis=1), rtol=1e-5, atol=1e-7)


def test_base_url_with_index_rebases_mirror_paths_and_bare_base_url_is_rejected(mirror):
    server, root = mirror["server"], mirror["root"]
    local, _ = read(root, STRADDLE)
    server.clear()
    remote, rec = read(server.url, STRADDLE, index=f"{server.url}/aef_index_s3.parquet")
    np.testing.assert_array_equal(remote["pooled"], local["pooled"])
    assert sorted(rec["product_files"]) == [f"{server.url}/2023/31N/a.tiff", f"{server.url}/2023/31N/b.tiff"]
    assert any(h.path == "/aef_index_s3.parquet" and h.status == 206 for h in server.hits)
    emb = create("gse", source=server.url + "/")
    with pytest.raises(ConfigError, match="cannot be listed over HTTP.*options.index"):
        emb.load()


def test_roi_outside_the_index_footprints_fails_naming_the_index(mirror):
    server = mirror["server"]
    index = f"{server.url}/aef_index.parquet"
    server.clear()
    _, rec = read(index, PointBuffer(20.0, 10.0, 100))
    assert rec["status"] == "failed" and rec["stage"] == "read"
    assert "NoDataError" in rec["error"] and index in rec["error"] and "intersects the ROI" in rec["error"]
    assert tiff_hits(server) == []  # chosen from the index: no COG was opened


def test_year_filter_picks_the_rows_of_the_request_year(mirror):
    server, codes = mirror["server"], mirror["codes"]
    index = f"{server.url}/aef_index.parquet"
    spatial = roi(X0 + 200, Y0 - 200, 100)  # inside tile a (2023) and tile c (2022)
    server.clear()
    arrays, rec = read(index, spatial, year=2022)
    assert rec["status"] == "ok" and rec["product_year"] == 2022
    assert rec["product_files"] == [f"{server.url}/2022/31N/c.tiff"]
    assert tiff_hits(server) == ["/2022/31N/c.tiff"]
    np.testing.assert_allclose(arrays["grid"], expected_grid(rec, codes["c"]), rtol=1e-6)
    a2023, _ = read(index, spatial, year=2023)
    assert not np.allclose(a2023["pooled"], arrays["pooled"])
    _, rec = read(index, spatial, year=2021)
    assert rec["status"] == "failed" and index in rec["error"]
    assert "2021" in rec["error"] and "[2022, 2023]" in rec["error"]


def test_local_index_with_geometry_footprints_in_utm(mirror):
    root = mirror["root"]
    local, _ = read(root, STRADDLE)
    via_index, rec = read(root / "aef_index_utm.parquet", STRADDLE)  # relative paths, no wgs84_* columns
    np.testing.assert_array_equal(via_index["pooled"], local["pooled"])
    assert sorted(rec["product_files"]) == [str(root / "2023/31N/a.tiff"), str(root / "2023/31N/b.tiff")]
    emb = create("gse", {"index_path_column": "href"}, source=str(root / "aef_index.parquet"))
    with pytest.raises(ConfigError, match=r"\['href'\] missing.*present: \[.*'path'"):
        emb.load()


def test_resolve_href_rules():
    index = "https://data.source.coop/tge-labs/aef/v1/annual/aef_index.parquet"
    tile = f"{MIRROR}/2024/33S/xyz.tiff"
    assert resolve_href(tile, index) == "https://data.source.coop/tge-labs/aef/v1/annual/2024/33S/xyz.tiff"
    assert resolve_href("gs://bucket/2024/33S/xyz.tiff", index) == "gs://bucket/2024/33S/xyz.tiff"
    assert resolve_href("2024/33S/xyz.tiff", index) == index.replace("aef_index.parquet", "2024/33S/xyz.tiff")
    assert resolve_href("2024/33S/xyz.tiff", "/data/aef/index.parquet") == "/data/aef/2024/33S/xyz.tiff"
    assert resolve_href(tile, index, root="http://host/copy/") == "http://host/copy/2024/33S/xyz.tiff"
    assert resolve_href(tile, index, root="/mnt/aef") == "/mnt/aef/2024/33S/xyz.tiff"
