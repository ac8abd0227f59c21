"""Throughput of the pretrained models on CPU: bare batched forward vs the whole workflow.

For ``presto`` and ``galileo_nano`` this prints

* **bare**: batched forward passes on already packed tensors (``torch.no_grad``, eval mode, after
  one warm-up batch), in items/s. An *item* is one ROI of 64 x 64 pixels (10 m) x 12 monthly
  frames, every pixel valid; for Presto that is 4096 pixel time series (73 tokens each), for
  Galileo one 64 x 64 x 12 cube (patch size 8).
* **end to end**: ``snakemake --cores 2`` on a fresh directory with the same number of items
  of the same shape (ROIs with a 320 m buffer, 12 monthly frames of 2023, one chunk), from
  fetch to exports and report; items/s = items / wall time of the snakemake command. The
  imagery is the shared cloud-free Sentinel-2 patches (``--patches``; each patch catalogued
  once per month, so every frame is valid, like the bare run), or GENERATED imagery when they
  are absent (it has clouds, so Presto gets fewer tokens per pixel than in the bare run).
* the ratio bare / end-to-end (how much the workflow adds around the model).

Usage::

    .venv/bin/python benchmarks/pretrained_throughput.py [--items 8] [--models presto galileo_nano]

Weights come from ``../shared/data/weights`` (``--weights`` to change it); a model whose
files are missing is skipped with a message. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from eoembed.collections import S2_BANDS  # noqa: E402

SIDE_PX = 64
FRAMES = 12
BUFFER_M = SIDE_PX * 10 / 2
YEAR = 2023
SITE = ("bench_nl", 5.62, 52.55)
S2_10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
FILES = {"presto": {"default_model.pt": "presto/default_model.pt"},
         "galileo_nano": {"encoder.pt": "galileo_nano/encoder.pt"}}
OPTIONS = {"presto": {"pixel_sample": None, "pixel_batch": 4096},
           "galileo_nano": {"patch_size": 8, "batch_size": 8}}


def _random_s2(n_items: int, seed: int = 0) -> np.ndarray:
    """Reflectance-like values ``[items, y, x, frame, band]`` (x 10000), all valid."""
    rng = np.random.default_rng(seed)
    return rng.uniform(200, 4500, (n_items, SIDE_PX, SIDE_PX, FRAMES, len(S2_10))).astype(np.float32)


def bare_presto(paths: dict[str, str], n_items: int) -> float:
    """Seconds for the forward passes over ``n_items`` x 4096 pixel time series."""
    from eoembed.models.presto_net import encoder_from_state_dict, layout_inputs
    from eoembed.weights import load_state_dict
    from eoembed.models.presto import WEIGHTS

    net = encoder_from_state_dict(load_state_dict(paths["default_model.pt"], WEIGHTS.sha256)).eval()
    s2 = _random_s2(n_items).reshape(-1, FRAMES, len(S2_10)) / 10000.0  # Presto's declared x / 10000
    n = s2.shape[0]
    latlons = np.tile([[SITE[2], SITE[1]]], (n, 1))
    ndvi = np.zeros((n, FRAMES), np.float32)
    packed = layout_inputs(s2, ndvi, np.zeros((n, FRAMES), bool), np.arange(FRAMES), latlons)
    x, mask = torch.from_numpy(packed["x"]), torch.from_numpy(packed["mask"])
    dw, ll = torch.from_numpy(packed["dynamic_world"]), torch.from_numpy(packed["latlons"])
    month = torch.from_numpy(packed["month"])
    bs = int(OPTIONS["presto"]["pixel_batch"])
    with torch.no_grad():
        net(x[:bs], dw[:bs], ll[:bs], mask[:bs], month[:bs])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, n, bs):
            net(x[s:s + bs], dw[s:s + bs], ll[s:s + bs], mask[s:s + bs], month[s:s + bs])
        return time.perf_counter() - t0


def bare_galileo(paths: dict[str, str], n_items: int) -> float:
    """Seconds for the forward passes over ``n_items`` 64 x 64 x 12 cubes."""
    from eoembed.models import galileo_net as gn
    from eoembed.models.galileo import Galileo
    from eoembed.models.galileo_net import INPUT_KEYS, encoder_from_state_dict
    from eoembed.models.galileo_patch import coarsen_masks
    from eoembed.weights import load_state_dict

    card = Galileo.cards["nano"]
    sha = next(w.sha256 for w in card.weights if w.name == "encoder.pt")
    net = encoder_from_state_dict(load_state_dict(paths["encoder.pt"], sha), size="nano").eval()
    spec = card.inputs[0]  # the declared normalisation, applied here as the framework would
    shift, div = (np.array([getattr(n, k) for n in spec.norm]) for k in ("shift", "div"))
    s2 = _random_s2(n_items)
    b, h, w, t, _ = s2.shape
    s_t_x = np.zeros((b, h, w, t, 13), np.float32)
    s_t_x[..., 2:12] = (s2 - shift) / div
    s_t_m = np.zeros((b, h, w, t, len(gn.SPACE_TIME_GROUPS)), np.float32)
    s_t_m[..., 0] = 1.0  # S1 not given
    inputs = {"s_t_x": s_t_x, "s_t_m": s_t_m,
              "sp_x": np.zeros((b, h, w, len(gn.SPACE_BANDS)), np.float32),
              "sp_m": np.ones((b, h, w, len(gn.SPACE_GROUPS)), np.float32),
              "t_x": np.zeros((b, t, len(gn.TIME_BANDS)), np.float32),
              "t_m": np.ones((b, t, len(gn.TIME_GROUPS)), np.float32),
              "st_x": np.zeros((b, len(gn.STATIC_BANDS)), np.float32),
              "st_m": np.ones((b, len(gn.STATIC_GROUPS)), np.float32),
              "months": np.broadcast_to(np.arange(t), (b, t)).copy()}
    p, bs = OPTIONS["galileo_nano"]["patch_size"], OPTIONS["galileo_nano"]["batch_size"]
    batches = []
    for s in range(0, n_items, bs):
        batch = {k: torch.as_tensor(inputs[k][s:s + bs]) for k in INPUT_KEYS}
        batch = {k: (v.long() if k == "months" else v.float()) for k, v in batch.items()}
        batch["s_t_m"], batch["sp_m"] = (coarsen_masks(batch[k], p) for k in ("s_t_m", "sp_m"))
        batches.append(batch)
    with torch.no_grad():
        net.pooled(**{k: v[:1] for k, v in batches[0].items()}, patch_size=p)  # warm-up
        t0 = time.perf_counter()
        for batch in batches:
            net.pooled(**batch, patch_size=p)
        return time.perf_counter() - t0


def _generated_inputs(root: Path, n_items: int) -> tuple[Path, Path]:
    """GENERATED imagery (one site, one date per month; it has clouds) and ``n_items`` ROIs."""
    from eoembed.providers.sample import demo_rois, generate

    k = math.ceil(math.sqrt(n_items))
    tile_px = max(48, math.ceil((k * 2 * BUFFER_M + 120) / 10 / 12) * 12)  # ROIs in separate cells
    index = generate(root / "imagery", sites=[SITE], year=YEAR, dates_per_year=FRAMES, tile_px=tile_px)
    rois = demo_rois(n_per_site=n_items, buffer_m=BUFFER_M, year=YEAR, sites=[SITE], tile_px=tile_px)
    table = root / "rois.tsv"
    rois[["roi_id", "lon", "lat", "buffer_m", "year"]].to_csv(table, sep="\t", index=False)
    return index, table


def _patch_inputs(root: Path, n_items: int, patches: list[Path]) -> tuple[Path, Path]:
    """The shared cloud-free patches, each seen on the 15th of every month of :data:`YEAR` (the
    same pixels twelve times), and ``n_items`` ROIs inside them (up to 9 per patch)."""
    import json

    import rasterio
    from pyproj import Transformer

    from eoembed.catalog import build_catalog
    from eoembed.chunkio import write_text_atomic

    catalog = build_catalog(patches, root / "catalog" / "catalog.json", bands=list(S2_BANDS),
                            datetime=f"{YEAR}-01-15", qa_value=4, cloud_cover=0)
    doc = json.loads(catalog.read_text())
    doc["features"] = [{**f, "id": f"{f['id']}_{m:02d}",
                        "properties": {**f["properties"], "datetime": f"{YEAR}-{m:02d}-15T12:00:00Z"}}
                       for f in doc["features"] for m in range(1, FRAMES + 1)]
    write_text_atomic(catalog, json.dumps(doc), ".json")
    offsets = [(0, 0), (-800, -800), (800, 800), (-800, 800), (800, -800), (0, 800), (0, -800),
               (800, 0), (-800, 0)]
    rows = []
    for i in range(n_items):
        path, (dx, dy) = patches[i % len(patches)], offsets[i // len(patches)]
        with rasterio.open(path) as src:
            b = src.bounds
            lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(
                (b.left + b.right) / 2 + dx, (b.bottom + b.top) / 2 + dy)
        rows.append({"roi_id": f"{path.stem}_{i:03d}", "lon": lon, "lat": lat, "buffer_m": BUFFER_M,
                     "year": YEAR})
    table = root / "rois.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    return catalog, table


def make_inputs(root: Path, n_items: int, patches_dir: Path) -> tuple[Path, Path, str]:
    """Catalogue and ROI table for the end-to-end runs: the shared patches when present."""
    patches = sorted(patches_dir.glob("*.tif")) if patches_dir.is_dir() else []
    if patches and n_items <= 9 * len(patches):
        catalog, rois = _patch_inputs(root, n_items, patches)
        return catalog, rois, f"{min(n_items, len(patches))} shared cloud-free patch(es) x 12 dates"
    catalog, rois = _generated_inputs(root, n_items)
    return catalog, rois, ("GENERATED imagery with clouds (fewer valid tokens than the bare run; "
                           f"{patches_dir} has too few patches)")


def end_to_end(model: str, paths: dict[str, str], catalog: Path, rois: Path, n_items: int,
               work: Path) -> tuple[float | None, int, str]:
    """Run the workflow for one model; returns (wall seconds or None, items ok/partial, note)."""
    work.mkdir(parents=True)
    config = {
        "rois": str(rois), "chunk_size": n_items,
        "provider": {"name": "local", "catalog": str(catalog), "retries": 1, "backoff_s": 0.01},
        "sample": {"enabled": False},
        "sensors": {"s2": {"bands": list(S2_BANDS), "scale_m": 10, "cloudy_pct": 100, "frames": FRAMES}},
        "models": {model: {"sensor": "s2", "options": OPTIONS[model], "batch_size": 8, "weights": paths}},
        "output": {"grid": False},
        "weights": {"dir": str(work / "weights_cache"), "allow_download": False},
        "benchmark": {"targets": []},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    bindir = Path(sys.executable).parent
    exe = shutil.which("snakemake", path=str(bindir)) or shutil.which("snakemake")
    if exe is None:
        return None, 0, "snakemake not found"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return None, 0, f"snakemake failed ({proc.returncode}): {proc.stderr[-1500:]}"
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    done = int(manifest["status"].isin(["ok", "partial"]).sum())
    return wall, done, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=8, help="ROIs (items) per measurement (default 8)")
    parser.add_argument("--models", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "data" / "weights",
                        help="folder holding presto/ and galileo_nano/ checkpoints")
    parser.add_argument("--patches", type=Path,
                        default=ROOT.parent / "shared" / "data" / "imagery" / "s2_l2a_patches" / "images",
                        help="cloud-free 12-band GeoTIFFs for the end-to-end runs (else generated imagery)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folders here")
    args = parser.parse_args(argv)
    if args.items < 1:
        parser.error("--items must be >= 1")

    print(f"eoembed pretrained throughput | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__}, {torch.get_num_threads()} threads | "
          f"item = {SIDE_PX}x{SIDE_PX} px x {FRAMES} monthly frames | items = {args.items}")
    root = Path(tempfile.mkdtemp(prefix="eoembed-bench-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        catalog = rois = None
        for model in args.models:
            paths = {name: str(args.weights / rel) for name, rel in FILES[model].items()}
            missing = [p for p in paths.values() if not Path(p).is_file()]
            if missing:
                print(f"skip {model}: weights missing: {missing}")
                continue
            if catalog is None:
                catalog, rois, source = make_inputs(root, args.items, args.patches)
                print(f"end-to-end imagery: {source}")
            bare_s = (bare_presto if model == "presto" else bare_galileo)(paths, args.items)
            wall, done, note = end_to_end(model, paths, catalog, rois, args.items, root / f"run_{model}")
            if note:
                print(f"{model}: end-to-end run: {note}")
            rows.append({"model": model, "items": args.items, "bare_s": bare_s,
                         "bare_items_s": args.items / bare_s, "e2e_wall_s": wall, "e2e_ok": done,
                         "e2e_items_s": args.items / wall if wall else float("nan"),
                         "bare/e2e": (args.items / bare_s) / (args.items / wall) if wall else float("nan")})
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    if rows:
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
