"""STAC fetch throughput against the local stand-ins, and the shared-fetch speed-up.

Generates Sentinel-2-like COGs (GENERATED, 3 sites), serves them with the Range-capable COG
server and a ``rustac serve`` STAC API on loopback, then

(a) fetches N ROIs (default 100) through the ``stac`` provider and prints items/s (scenes
    read per second) and bytes/s (bytes the COG server sent per second);
(c) with ``--latency-ms`` (default 50) added to every COG request: ROIs/s of
    :func:`eoembed.pipeline.fetch_items` for each ``io_workers`` in ``--workers`` (a table);
(b) the shared fetch: 3 models on one sensor make one fetch per ROI chunk instead of 3. Prints
    the fetch jobs of a ``snakemake -n`` plan of 3 models sharing the sensor vs 3 sensors
    (one per model, differing in a fetch field: cloudy_pct 100/99.9/99.8), and the timed fetch of the N ROIs once (shared)
    vs three times (one per model, GDAL's HTTP cache cleared in between).

Run from the repository root::

    PATH=.venv/bin:$PATH PYTHONPATH=src:tests .venv/bin/python benchmarks/stac_fetch.py [--rois 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from eoembed.grid import grid_for  # noqa: E402
from eoembed.providers.stac import StacProvider, _clear_gdal_http_cache  # noqa: E402
from eoembed.specs import SensorSpec  # noqa: E402
from eoembed.table import load_table, to_requests  # noqa: E402
from standins import CogServer, RustacServer, rewrite_hrefs  # noqa: E402
from workflow_helpers import SITES, job_counts, make_imagery, make_rois, snakemake, write_config  # noqa: E402

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


def fetch_all(provider, requests, sensor) -> float:
    t0 = time.perf_counter()
    for req in requests:
        provider.fetch(req.spatial, req.temporal, sensor, grid_for(req.spatial, sensor.scale_m))
    return time.perf_counter() - t0


def plan_fetch_jobs(work: Path, index: Path, rois: Path, api_url: str, shared: bool) -> dict[str, int]:
    bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    models = ("spectral", "mosaiks", "presto")
    sensors = {"s2": {"bands": bands, "scale_m": 10}} if shared else {
        f"s2_{m}": {"bands": bands, "scale_m": 10, "cloudy_pct": 100 - i * 0.1} for i, m in enumerate(models)}
    model_cfg = {m: {"sensor": "s2" if shared else f"s2_{m}"} for m in models}
    work.mkdir(parents=True, exist_ok=True)
    write_config(work, index, rois, models=model_cfg, benchmark=False, sensors=sensors,
                 provider={"name": "stac", "url": api_url, "retries": 1, "backoff_s": 0.01})
    proc = snakemake(work, "-n", check=False)
    counts = job_counts(proc.stdout + "\n" + proc.stderr)
    if not counts:
        print(f"    snakemake -n failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-1500:]}")
    return counts


def latency_table(index: Path, tmp: Path, requests, sensor, latency_s: float, workers: list[int]) -> None:
    """(c) ROIs/s against a COG server answering every request ``latency_s`` late."""
    from eoembed.pipeline import fetch_items

    with CogServer(index.parent, latency_s=latency_s) as cog, \
            RustacServer(rewrite_hrefs(index, cog.url), tmp / "api_latency") as api:
        print(f"(c) {len(requests)} ROIs, {latency_s * 1000:.0f} ms per COG request: io_workers -> ROIs/s")
        fetch_items(requests[:2], sensor, StacProvider(url=api.url), workers=1, retries=0)  # imports
        base = None
        for n in workers:
            _clear_gdal_http_cache()
            cog.clear()
            provider = StacProvider(url=api.url)
            t0 = time.perf_counter()
            res = fetch_items(requests, sensor, provider, workers=n, retries=0)
            wall = time.perf_counter() - t0
            ok = sum(r["status"] == "ok" for _, r in res.values())
            base = base or len(requests) / wall
            print(f"    io_workers {n:3d}: {len(requests) / wall:7.2f} ROIs/s ({ok} ok, "
                  f"x{len(requests) / wall / base:.2f} of 1 worker, {len(cog.hits)} COG requests)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rois", type=int, default=100)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--workers", default="1,2,4,8,16")
    ap.add_argument("--only-latency", action="store_true", help="run (c) only")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = make_imagery(tmp / "sample", tile_px=96, dates=3)
        per_site = -(-args.rois // len(SITES))
        rois = make_rois(index, tmp / "rois.tsv", n_per_site=per_site)
        requests = to_requests(load_table(rois))[: args.rois]
        sensor = SensorSpec(bands=BANDS, scale_m=10)
        latency_table(index, tmp, requests[: min(len(requests), 48)], sensor, args.latency_ms / 1000,
                      [int(w) for w in args.workers.split(",")])
        if args.only_latency:
            return
        with CogServer(index.parent) as cog, RustacServer(rewrite_hrefs(index, cog.url), tmp / "api") as api:
            provider = StacProvider(url=api.url)
            _clear_gdal_http_cache()
            cog.clear()
            elapsed = fetch_all(provider, requests, sensor)
            stats, sent = provider.stats(), cog.bytes_served
            print(f"(a) {len(requests)} ROIs x {len(BANDS)} bands + SCL through the stac provider: "
                  f"{elapsed:.2f} s, {stats['items_read'] / elapsed:.1f} items/s, "
                  f"{sent / elapsed / 1e6:.2f} MB/s ({sent / 1e6:.1f} MB over HTTP, "
                  f"{len(cog.hits)} requests, {stats['searches']} searches)")
            times = []
            for _ in range(3):
                _clear_gdal_http_cache()
                times.append(fetch_all(provider, requests, sensor))
            shared, unshared = times[0], sum(times)
            print(f"(b) timed: fetch once for 3 models {shared:.2f} s vs once per model {unshared:.2f} s "
                  f"-> fetch-stage speed-up x{unshared / shared:.2f}")
            for flag in (True, False):
                counts = plan_fetch_jobs(tmp / f"plan_{flag}", index, rois, api.url, flag)
                print(f"    snakemake -n, 3 models {'sharing one sensor' if flag else 'on 3 sensors'}: "
                      f"fetch jobs {counts.get('fetch', 0)}, embed jobs {counts.get('embed', 0)}, "
                      f"all jobs {sum(counts.values())}")


if __name__ == "__main__":
    main()
