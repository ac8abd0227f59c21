"""Peak memory of the pooled exports (GeoParquet + NetCDF) against the number of ROIs.

    python benchmarks/export_memory.py [--sizes 10000,100000] [--chunk 100] [--dims 128] [--grid 8]

For each size it writes synthetic embed-stage chunk files (``--chunk`` ROIs each, a pooled
vector of ``--dims`` and a ``dims x grid x grid`` grid per ROI, as the embed stage stores them)
and runs :func:`eoembed.export.export_pooled` in a fresh process, reporting its wall time and
peak RSS. Streaming keeps the peak near one chunk's arrays plus the per-ROI strings, so it
should grow far slower than the total array size (printed as ``arrays_mb``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEASURE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from eoembed.export import export_pooled
paths = sorted(__import__("pathlib").Path(sys.argv[2]).glob("c*.npz"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
n = export_pooled(paths, sys.argv[2] + "/e.parquet", sys.argv[2] + "/e.nc")
print(json.dumps({"n": n, "seconds": time.perf_counter() - t, "import_kb": before,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_chunks(folder: Path, n: int, chunk: int, dims: int, grid: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from eoembed.chunkio import write_chunk

    rng = np.random.default_rng(0)
    meta = {"stage": "embed", "model": "bench", "card": {"id": "bench", "dims": dims}, "options": {},
            "weights_sha256": {}, "sensor": None, "versions": {"eoembed": "bench"}, "code": "0" * 16}
    for c, start in enumerate(range(0, n, chunk)):
        items, records = {}, {}
        for i in range(start, min(n, start + chunk)):
            rid = f"r{i:07d}"
            lon, lat = float(rng.uniform(-10, 30)), float(rng.uniform(35, 60))
            items[rid] = {"pooled": rng.normal(size=dims).astype(np.float32),
                          "grid": rng.normal(size=(dims, grid, grid)).astype(np.float32)}
            records[rid] = {"roi_id": rid, "model": "bench", "status": "ok", "centroid": [lon, lat],
                            "request": {"roi_id": rid, "spatial": {"kind": "point_buffer", "lon": lon, "lat": lat,
                                                                   "buffer_m": 100.0},
                                        "temporal": {"start": "2023-01-01", "end": "2024-01-01"}},
                            "request_key": f"k{i}", "valid_fraction": [1.0],
                            "geometry_wkt": f"POINT ({lon} {lat})", "output_shape": {"pooled": [dims]}}
        write_chunk(folder / f"c{c:05d}.npz", items, records, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--src", default=str(ROOT / "src"), help="eoembed source tree to measure (e.g. another checkout)")
    args = ap.parse_args(argv)
    print("n_rois\tarrays_mb\tseconds\tpeak_mb\tpeak_minus_import_mb")
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="eoembed-export-") as tmp:
            write_chunks(Path(tmp), n, args.chunk, args.dims, args.grid)
            res = json.loads(subprocess.run([sys.executable, "-c", MEASURE, args.src, tmp],
                                            capture_output=True, text=True, check=True).stdout)
            arrays_mb = n * args.dims * (1 + args.grid ** 2) * 4 / 2 ** 20
            print(f"{res['n']}\t{arrays_mb:.0f}\t{res['seconds']:.1f}\t{res['peak_kb'] / 1024:.0f}\t"
                  f"{(res['peak_kb'] - res['import_kb']) / 1024:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
