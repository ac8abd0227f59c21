"""Cost of a fetch job's first search on a large ``local`` catalogue (read + index + the items it hits).

    python benchmarks/catalog_index.py [--sizes 1024,20000] [--formats json,parquet] [--src DIR]

For each size it writes a STAC ItemCollection of that many entries (copies of the generated
demo scenes' entries, ids made unique, footprints shifted 0.01 degrees apart so the index has
real work) and the same entries as stac-geoparquet (WKB geometry, bbox struct, properties as
columns), and times, in a fresh process, ``LocalProvider(catalog).search(...)`` for one ROI:
what every fetch job pays before its first read. Then the same for building every entry's
Item (``provider.items``). ``--src`` measures another checkout's ``src`` (e.g. a worktree of an
older commit) for a before/after comparison on the same files.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURE = """
import datetime as dt, json, sys, time
sys.path.insert(0, sys.argv[1])
from eoembed.providers.local import LocalProvider
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec
lon, lat = float(sys.argv[3]), float(sys.argv[4])
t = time.perf_counter()
provider = LocalProvider(sys.argv[2])
found = provider.search(PointBuffer(lon, lat, 100), TemporalSpec(dt.date(2000, 1, 1), dt.date(2100, 1, 1)),
                        SensorSpec(bands=("B04",), cloudy_pct=100))
first = time.perf_counter() - t
t = time.perf_counter()
n = len(provider.items)
every = time.perf_counter() - t
print(json.dumps({"first_search_s": first, "found": len(found), "all_items_s": every, "n": n}))
"""


def write_catalog(folder: Path, n: int) -> tuple[Path, float, float]:
    """A catalogue of ``n`` entries with absolute hrefs; returns it and a point inside entry 0."""
    sys.path.insert(0, str(ROOT / "src"))
    from eoembed.providers.sample import generate

    index = generate(folder / "demo", sites=[("c_nl", 5.62, 52.55)], year=2023, dates_per_year=4, tile_px=96)
    base = json.loads(index.read_text())["features"]
    for f in base:
        for a in f["assets"].values():
            a["href"] = str((index.parent / a["href"]).resolve())
    feats = []
    for k in range(-(-n // len(base))):
        for f in base:
            g = copy.deepcopy(f)
            g["id"] = f"{f['id']}_{k:06d}"
            shift = 0.01 * k
            rings = g["geometry"]["coordinates"]
            g["geometry"]["coordinates"] = [[[x + shift, y] for x, y in ring] for ring in rings]
            if g.get("bbox"):
                g["bbox"] = [g["bbox"][0] + shift, g["bbox"][1], g["bbox"][2] + shift, g["bbox"][3]]
            feats.append(g)
    path = folder / f"catalog_{n}.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats[:n]}))
    ring = base[0]["geometry"]["coordinates"][0]
    return path, sum(x for x, _ in ring) / len(ring), sum(y for _, y in ring) / len(ring)


def to_parquet(path: Path) -> Path:
    """The same entries as a stac-geoparquet file (the layout ``tests/test_provider_local.py`` uses)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from shapely.geometry import shape

    rows = []
    for f in json.loads(path.read_text())["features"]:
        props = dict(f["properties"])
        props["datetime"] = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
        rows.append({"type": "Feature", "stac_version": f["stac_version"], "id": f["id"],
                     "geometry": shapely.to_wkb(shape(f["geometry"])),
                     "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), f["bbox"])),
                     "collection": f["collection"], "assets": f["assets"], **props})
    out = path.with_suffix(".parquet")
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1024,20000", help="comma-separated catalogue sizes")
    ap.add_argument("--formats", default="json,parquet", help="json and/or parquet")
    ap.add_argument("--src", default=str(ROOT / "src"), help="the eoembed source folder to measure")
    args = ap.parse_args(argv)
    print(f"src: {args.src}")
    print(f"{'format':>8} {'entries':>8} {'MB':>6} {'first search s':>15} {'found':>6} {'every Item s':>13}")
    with tempfile.TemporaryDirectory(prefix="eoembed_catidx_") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            path, lon, lat = write_catalog(Path(tmp), n)
            for fmt in args.formats.split(","):
                cat = to_parquet(path) if fmt == "parquet" else path
                out = subprocess.run([sys.executable, "-c", MEASURE, args.src, str(cat), str(lon), str(lat)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{fmt:>8} {n:>8} {cat.stat().st_size / 2**20:>6.1f} {r['first_search_s']:>15.2f} "
                      f"{r['found']:>6} {r['all_items_s']:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
