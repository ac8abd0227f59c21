"""Throughput of the fetch engine and the in-process pipeline (issue 13), ratios measured in one run.

Sections (``--only`` picks some):

* ``model``: ``galileo_nano`` (T = 1) end to end through ``get_embeddings_batch`` on ``--items``
  real-size chips (64 x 64 px, 12 bands, :mod:`chips`) vs eoembed's own bare batched forward
  (``embedder.forward`` on ReadyBatches built beforehand from the same composites, in memory),
  timed both one batch at a time and as streams (:mod:`eoembed.streams`); the faster of the two
  is the reference. Target ratio >= 0.9. Catalogue: multi-band assets (``build_catalog(split=False)``).
* ``snakemake``: the same model and chips through ``snakemake --cores 2`` (one wall clock,
  start-up and exports included) vs the same bare forward. Target >= 0.8.
* ``spectral``: ``spectral`` end to end on ``--io-items`` single-scene chips vs a plain rasterio
  read of the files the catalogue points at; for the split catalogue (13 COGs per chip) and the
  multi-band one (vs a plain read of the user's original files). Targets >= 0.5 and >= 0.25.
  Timed on the second call; the first call, which also builds the pystac Items of the catalogue
  entries it hits (once per process: :mod:`eoembed.providers.index`), is printed beside it.
* ``demo``: demo-like fetch, 6 dates x 13 assets, 64 x 64, generated imagery: ROIs/s (>= 20).

Run on a quiet machine (other processes skew every figure):
``nice python benchmarks/fetch_engine.py --items 1024 --io-items 288``. On a GPU (the model-bound
ratio with a model big enough to matter; Galileo-base with seeded random weights, speed only):
``python benchmarks/fetch_engine.py --only model --model galileo_base --device cuda`` (and
``--precision bf16``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]

import chips as C  # noqa: E402

WEIGHTS = ROOT.parent / "shared" / "data" / "weights" / "galileo_nano"
GALILEO = {"weights_paths": {n: str(WEIGHTS / n) for n in ("encoder.pt", "normalization.json")}}


def _sensor(model: str):
    import dataclasses

    from eoembed.api import default_sensor

    return dataclasses.replace(default_sensor(model, frames=1), cloudy_pct=100)


def bare_forward(embedder, comps: list, batch_size: int, streams: int = 1,
                 precision: str = "fp32") -> tuple[float, float, float]:
    """Seconds of ``embedder.forward`` over ReadyBatches prepared beforehand (inputs in memory):
    one batch at a time on torch's threads, or ``streams`` batches at once on a share of them
    each (as :func:`eoembed.pipeline.embed_items` runs a model with ``concurrent_forward``).
    Returns (wall s, CPU s of the process during those forwards, CPU s of packing the batches)."""
    from concurrent.futures import ThreadPoolExecutor

    from eoembed.models.base import _wavelengths
    from eoembed.pipeline import _autocast, _inference_mode
    from eoembed.prep import batches, pieces_for
    from eoembed.streams import torch_thread_count, torch_threads

    inputs = embedder.inputs()
    specs = {s.modality: s for s in inputs}
    ready = []
    c0 = time.process_time()
    for s in range(0, len(comps), batch_size):
        pieces = []
        for i, comp in enumerate(comps[s:s + batch_size]):
            pieces += pieces_for(i, {inputs[0].modality: comp}, inputs[0], embedder.input_prep)[0]
        ready += [b for _, b in batches(pieces, specs, embedder.forward_batch,
                                        _wavelengths(inputs, comps[s:s + batch_size]))]
    pack = time.process_time() - c0

    def forward(batch):  # as embed_items runs it (both contexts are per thread)
        with _inference_mode(), _autocast(precision, embedder):
            return embedder.forward(batch)

    if streams == 1:  # in this thread, as embed_items runs one stream
        forward(ready[0])  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for batch in ready:
            forward(batch)
        return time.perf_counter() - t0, time.process_time() - c0, pack
    with torch_threads(torch_thread_count() // streams), ThreadPoolExecutor(streams) as pool:
        list(pool.map(forward, ready[:streams]))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        list(pool.map(forward, ready))
        return time.perf_counter() - t0, time.process_time() - c0, pack


def composites_of(reqs, sensor, provider) -> list:
    from eoembed.items import Composite
    from eoembed.pipeline import composite_items, fetch_items

    res = composite_items(fetch_items(reqs, sensor, provider), reqs, sensor)
    return [Composite.from_arrays(a, r["meta"]) for a, r in res.values() if r["status"] != "failed"]


def build(model: str, device: str):
    """The embedder: ``galileo_nano`` with its real weights; a larger Galileo with seeded random
    weights in its architecture (a speed measurement only: the card pins the published file)."""
    from eoembed.models.registry import create

    if model == "galileo_nano":
        embedder = create(model, device=device, **GALILEO)
        embedder.load()
        return embedder, "real weights"
    import torch

    from eoembed.models.galileo_net import ARCH, GalileoEncoder

    embedder = create(model, device=device)
    torch.manual_seed(0)
    embedder.net = GalileoEncoder(**ARCH[embedder.card.variant]).to(embedder.device).eval()
    embedder._loaded = True
    return embedder, "seeded random weights (speed only)"


def model_section(tmp: Path, n: int, batch: int, snake: bool, model: str = "galileo_nano",
                  device: str = "cpu", precision: str = "fp32") -> None:
    import eoembed
    from eoembed.providers.local import LocalProvider

    chips = C.make_chips(tmp / "chips", n)
    cat = C.catalogue(chips, tmp / "multi" / "catalog.json", split=False)
    reqs = C.requests_for(chips)
    sensor = _sensor(model)
    embedder, weights = build(model, device)
    composites_of(reqs, sensor, LocalProvider(cat))  # warm-up: imports, GDAL, files read once
    c0 = time.process_time()
    comps = composites_of(reqs, sensor, LocalProvider(cat))  # one thread: CPU s = wall s
    data_cpu = time.process_time() - c0
    from eoembed.streams import cpu_streams

    streams = cpu_streams(embedder)
    one, one_cpu, pack = bare_forward(embedder, comps, batch, precision=precision)
    side, side_cpu, _ = bare_forward(embedder, comps, batch, streams, precision) if streams > 1 \
        else (one, one_cpu, pack)
    bare, fwd_cpu = min((one, one_cpu), (side, side_cpu))  # the reference: the faster way
    import logging

    class Said(logging.Handler):  # what overlap="auto" measured and chose
        last = ""

        def emit(self, record):
            Said.last = record.getMessage()

    logging.getLogger("eoembed.overlap").addHandler(Said())
    logging.getLogger("eoembed.overlap").setLevel(logging.INFO)
    provider = {"name": "local", "catalog": str(cat)}
    eoembed.get_embeddings_batch(embedder, reqs[:batch], provider=provider, sensor=sensor, progress=False,
                                 precision=precision)
    print(f"model  {model} T=1 ({weights}) on {embedder.device}, {precision}, {n} chips 64x64x12, "
          f"batch {batch}, torch threads {__import__('torch').get_num_threads()}")
    print(f"  bare forward (inputs in memory), one batch at a time: {n / one:7.1f} items/s ({one:.1f} s)")
    print(f"  bare forward, {streams} batches at once (streams):      {n / side:7.1f} items/s ({side:.1f} s)"
          f"  -> reference {n / bare:.1f} items/s")
    cores = len(os.sched_getaffinity(0)) if device == "cpu" else None
    if cores:  # the API does the forward's CPU work plus the data path's on the same cores
        ceiling = bare * cores / (fwd_cpu + data_cpu + pack)
        print(f"  CPU per item: forward {1e3 * fwd_cpu / n:.2f} ms (cores busy {fwd_cpu / bare:.2f} of "
              f"{cores}), fetch + composite {1e3 * data_cpu / n:.2f} ms, packing {1e3 * pack / n:.2f} ms"
              f"\n    -> ceiling of API / bare on this machine: {ceiling:.3f} (bare wall x cores / "
              f"CPU of forward + data path)")
    for kw, what in (({}, f"API, defaults ({streams} streams):"), ({"streams": 1}, "API, streams=1:")):
        Said.last = ""
        t0 = time.perf_counter()
        embs = eoembed.get_embeddings_batch(embedder, reqs, provider=provider, sensor=sensor,
                                            batch_size=batch, progress=False, precision=precision, **kw)
        api = time.perf_counter() - t0
        ok = sum(e.meta["status"] == "ok" for e in embs)
        print(f"  {what:33s}{n / api:7.1f} items/s ({api:.1f} s, {ok} ok)  "
              f"ratio {bare / api:.3f} (target >= 0.9)" + (f"\n    ({Said.last})" if Said.last else ""))
    if snake and model != "galileo_nano":
        print("  snakemake: run for galileo_nano only (the workflow loads published weights)")
    elif snake:
        wall, plan = snakemake_run(tmp / "snake", cat, reqs, sensor, batch)
        print(f"  snakemake --cores 2 end to end:  {n / wall:7.1f} items/s ({wall:.1f} s)  "
              f"ratio {bare / wall:.3f} (target >= 0.8)")
        if cores:
            print(f"    snakemake's planning alone (snakemake -n): {plan:.1f} s = {plan / bare:.2f} of the "
                  f"bare forward's {bare:.1f} s; ceiling with planning + the CPU above: "
                  f"{bare / (plan + (fwd_cpu + data_cpu + pack) / cores):.3f}")


def snakemake_run(work: Path, cat: Path, reqs, sensor, batch: int) -> float:
    import pandas as pd
    import yaml

    work.mkdir(parents=True)
    rows = [{"roi_id": r.roi_id, "lon": r.spatial.lon, "lat": r.spatial.lat, "buffer_m": r.spatial.buffer_m,
             "start": r.temporal.start.isoformat(), "end": r.temporal.end.isoformat()} for r in reqs]
    pd.DataFrame(rows).to_csv(work / "rois.tsv", sep="\t", index=False)
    config = {"rois": str(work / "rois.tsv"), "chunk_size": max(16, -(-len(reqs) // 2)),
              "provider": {"name": "local", "catalog": str(cat), "retries": 0, "backoff_s": 0.01},
              "sample": {"enabled": False},
              "sensors": {"s2": {"bands": list(sensor.bands), "scale_m": 10, "cloudy_pct": 100, "frames": 1}},
              "models": {"galileo_nano": {"sensor": "s2", "batch_size": batch,
                                          "weights": GALILEO["weights_paths"]}},
              "output": {"grid": False}, "weights": {"dir": str(work / "wcache"), "allow_download": False},
              "benchmark": {"targets": []}}
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    cmd = [exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile",
           str(work / "config.yaml"), "--cores", "2", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd + ["-n"], capture_output=True, text=True, check=True)
    plan = time.perf_counter() - t0
    shutil.rmtree(work / ".snakemake", ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit("snakemake failed")
    return wall, plan


def plain_read(paths: list[str]) -> float:
    import rasterio

    t0 = time.perf_counter()
    for p in paths:
        with rasterio.open(p) as src:
            src.read()
    return time.perf_counter() - t0


def spectral_section(tmp: Path, n: int) -> None:
    import json

    import eoembed

    chips = C.make_chips(tmp / "io_chips", n)
    reqs = C.requests_for(chips)
    sensor = _sensor("spectral")
    originals = [str(p) for p, _ in chips]
    print(f"spectral  {n} single-scene chips 64x64x12, sensor {len(sensor.bands)} bands")
    for split in (True, False):
        cat = C.catalogue(chips, tmp / f"io_{split}" / "catalog.json", split=split)
        hrefs = sorted({(cat.parent / a["href"]).as_posix() if not a["href"].startswith("/") else a["href"]
                        for f in json.loads(cat.read_text())["features"] for a in f["assets"].values()})
        provider = {"name": "local", "catalog": str(cat)}
        eoembed.get_embeddings_batch("spectral", reqs[:4], provider=provider, sensor=sensor, progress=False)
        t0 = time.perf_counter()  # the first call builds the catalogue items it hits (once per process)
        eoembed.get_embeddings_batch("spectral", reqs, provider=provider, sensor=sensor, progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        embs = eoembed.get_embeddings_batch("spectral", reqs, provider=provider, sensor=sensor, progress=False)
        e2e = time.perf_counter() - t0
        assert all(e.meta["status"] == "ok" for e in embs), [e.meta["error"] for e in embs][:3]
        read = plain_read(hrefs)
        orig = plain_read(originals)
        what = "split (13 COGs/chip)" if split else "multi-band assets"
        print(f"  {what:22s} e2e {n / e2e:7.1f} chips/s; plain read of its {len(hrefs)} files "
              f"{n / read:7.1f} chips/s -> ratio {read / e2e:.3f} (target >= 0.5); originals "
              f"{n / orig:7.1f} chips/s -> ratio {orig / e2e:.3f} (target >= 0.25)\n"
              f"    (first call, building the catalogue items: e2e {n / first:7.1f} chips/s, ratios "
              f"{read / first:.3f} / {orig / first:.3f})")


def demo_section(tmp: Path, n: int) -> None:
    from eoembed.items import Request
    from eoembed.pipeline import fetch_items
    from eoembed.providers.local import LocalProvider
    from eoembed.providers.sample import demo_rois, generate
    from eoembed.specs import PointBuffer, SensorSpec, TemporalSpec

    sites = [("b_nl", 5.62, 52.55), ("b_fr", 2.35, 48.85)]
    index = generate(tmp / "demo", sites=sites, year=2023, dates_per_year=6, tile_px=384)
    rois = demo_rois(n_per_site=n // 2, buffer_m=320, year=2023, sites=sites, tile_px=384)
    reqs = [Request(r.roi_id, PointBuffer(r.lon, r.lat, 320), TemporalSpec.year(2023)) for r in rois.itertuples()]
    from eoembed.collections import get_collection

    bands = tuple(b for b in get_collection("sentinel-2-l2a").bands if b != "SCL")[:12]
    sensor = SensorSpec(bands=bands, scale_m=10, cloudy_pct=100, frames=6)
    for workers in (1, 4):
        provider = LocalProvider(index)
        fetch_items(reqs[:2], sensor, provider, workers=workers)
        t0 = time.perf_counter()
        res = fetch_items(reqs, sensor, provider, workers=workers)
        wall = time.perf_counter() - t0
        ok = sum(r["status"] == "ok" for _, r in res.values())
        shape = next(a for a, r in res.values() if r["status"] == "ok")["data"].shape
        print(f"demo fetch  {len(reqs)} ROIs ({ok} ok), stack {shape} (+ SCL), io_workers {workers}: "
              f"{len(reqs) / wall:6.1f} ROIs/s (target >= 20)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1024)
    ap.add_argument("--io-items", type=int, default=288)
    ap.add_argument("--demo-rois", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--only", nargs="*", default=["model", "snakemake", "spectral", "demo"])
    ap.add_argument("--model", default="galileo_nano", choices=["galileo_nano", "galileo_tiny", "galileo_base"],
                    help="model of the model-bound section (tiny/base: seeded random weights, speed only)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (model section)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()
    print(f"host: {os.cpu_count()} cpu(s); load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="eoembed-bench-") as tmp:
        tmp = Path(tmp)
        if "model" in args.only or "snakemake" in args.only:
            if not WEIGHTS.exists():
                print(f"model: skipped, {WEIGHTS} missing")
            else:
                model_section(tmp, args.items, args.batch, "snakemake" in args.only, args.model, args.device,
                              args.precision)
        if "spectral" in args.only:
            spectral_section(tmp, args.io_items)
        if "demo" in args.only:
            demo_section(tmp, args.demo_rois)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
