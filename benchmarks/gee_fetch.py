"""Earth Engine fetch throughput against the local REST stand-in, per ``io_workers``.

The real earthengine-api client talks to ``tests/standins/earthengine.py`` on loopback; every
``value:compute`` (scene listing) and ``computePixels`` answer waits ``--latency-ms`` (default
200, Earth Engine's computation and network time). N small ROIs (one tile each, so one
listing + one pixel request per ROI and frame) are fetched with
:func:`eoembed.pipeline.fetch_items` for each ``io_workers`` in ``--workers``, with
``max_concurrency`` (the provider's request limit) = ``--max-concurrency``. Prints ROIs/s and
the most requests the stand-in answered at once. No credentials leave the machine.

Run from the repository root::

    PYTHONPATH=src:tests .venv/bin/python benchmarks/gee_fetch.py [--rois 48] [--workers 1 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from eoembed.items import Request  # noqa: E402
from eoembed.pipeline import fetch_items  # noqa: E402
from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rois", type=int, default=48)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--max-concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()

    import google.oauth2.credentials

    from eoembed.providers.gee import GeeProvider
    from standins.earthengine import EarthEngineStandin

    standin = EarthEngineStandin()
    standin.latency_s = args.latency_ms / 1000
    sensor = SensorSpec(bands=("B02", "B03", "B04", "B08"), cloudy_pct=50, frames=args.frames)
    window = TemporalSpec.year(2023)
    reqs = [Request(f"r{i}", PointBuffer(5.0 + 0.01 * i, 52.0, 320), window) for i in range(args.rois)]
    creds = google.oauth2.credentials.Credentials(token="standin-token")
    print(f"gee stand-in: {args.rois} ROIs x {args.frames} frames (64 x 64 px, one tile), "
          f"{args.latency_ms:.0f} ms per answer, max_concurrency {args.max_concurrency}")
    try:
        for workers in args.workers:
            standin.values = [[["20230302T104021_T31UFU"]] * args.frames] * args.rois
            standin.max_in_flight = 0
            provider = GeeProvider(project="standin-project", url=standin.url, credentials=creds,
                                   max_concurrency=args.max_concurrency)
            t0 = time.perf_counter()
            res = fetch_items(reqs, sensor, provider, retries=0, workers=workers)
            wall = time.perf_counter() - t0
            ok = sum(r["status"] == "ok" for _, r in res.values())
            print(f"  io_workers {workers:2d}: {args.rois / wall:6.2f} ROIs/s ({wall:5.1f} s, {ok} ok), "
                  f"at most {standin.max_in_flight} requests in flight")
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
