"""Helpers for tests that run the real Snakemake workflow on small generated imagery."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from eoembed.providers.sample import demo_labels, demo_rois, generate

ROOT = Path(__file__).resolve().parents[1]
SITES = [("nl_a", 5.62, 52.55), ("ke_b", 36.02, -0.35), ("es_c", -4.72, 41.65)]
YEAR = 2023


def make_imagery(out: Path, sites=SITES, tile_px: int = 96, dates: int = 3) -> Path:
    """Generate a tiny sample catalogue (3 sites, 3 dates, 960 m tiles)."""
    return generate(out, sites, year=YEAR, dates_per_year=dates, tile_px=tile_px)


def make_rois(index: Path, path: Path, n_per_site: int = 3, sites=SITES, tile_px: int = 96) -> Path:
    rois = demo_rois(n_per_site=n_per_site, buffer_m=160, year=YEAR, sites=sites, tile_px=tile_px,
                     margin_m=20)
    labels = demo_labels(index, rois)[["roi_id", "yield_t_ha", "landcover"]]
    table = rois.merge(labels, on="roi_id")[["roi_id", "lon", "lat", "buffer_m", "year", "yield_t_ha",
                                            "landcover"]]
    table.to_csv(path, sep="\t", index=False)
    return path


def add_s1(sample: Path, index: Path, out: Path, collection: str = "sentinel-1-grd") -> Path:
    """One S1 scene (VV, VH linear power, float32 COG on the same grid) per S2 scene of ``index``,
    derived from the S2 NIR so that sites differ; returns a catalogue of both (S2 features labelled
    ``sentinel-2-l2a``) written next to ``index``."""
    import json

    import numpy as np
    import rasterio

    from eoembed.catalog import build_catalog

    doc = json.loads(index.read_text())
    files, dates = [], []
    out.mkdir(parents=True, exist_ok=True)
    for f in doc["features"]:
        f["collection"] = "sentinel-2-l2a"
        with rasterio.open(sample / f["assets"]["B08"]["href"]) as src:
            nir, profile = src.read(1).astype(np.float32), src.profile
        vv = 0.02 + nir / 1e5
        path = out / f"{f['id']}_S1.tif"
        profile.update(count=2, dtype="float32", nodata=-32768)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.stack([vv, vv / 5]))
        files.append(path)
        dates.append(f["properties"]["datetime"])
    s1 = json.loads(build_catalog(files, sample / "s1.json", bands=["VV", "VH"], datetime=dates,
                                  collection=collection).read_text())
    both = sample / "s1_s2.json"
    both.write_text(json.dumps({"type": "FeatureCollection", "features": doc["features"] + s1["features"]}))
    return both


def write_config(workdir: Path, catalog: Path, rois: Path, models=("spectral", "mosaiks"),
                 chunk_size: int = 3, benchmark: bool = True, **extra) -> Path:
    config = {
        "rois": str(rois),
        "chunk_size": chunk_size,
        "provider": {"name": "local", "catalog": str(catalog), "retries": 1, "backoff_s": 0.01},
        "sample": {"enabled": False},
        "sensors": {"s2": {"bands": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                                     "B09", "B11", "B12"], "scale_m": 10, "cloudy_pct": 100}},
        "models": models if isinstance(models, dict) else {
            m: {"sensor": "s2", "options": {"num_filters": 16}} if m == "mosaiks" else {"sensor": "s2"}
            for m in models},
        "output": {"grid": True, "grid_cell_m": 80},
        "benchmark": {"targets": [{"column": "yield_t_ha", "task": "regression"}] if benchmark else [],
                      "block_km": 50, "n_splits": 3},
    }
    config.update(extra)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, root: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the real snakemake CLI of this environment on the Snakefile of ``root`` (this checkout)."""
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [exe, "--snakefile", str(root / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table Snakemake prints (rule -> number of jobs)."""
    counts: dict[str, int] = {}
    block = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """The jobs a dry run lists: ``(rule, wildcards)`` per job, from its ``rule X:`` blocks."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            jobs.append((m.group(1), {}))
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and jobs:
            jobs[-1][1].update(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    return jobs


def copy_checkout(dest: Path) -> Path:
    """A copy of this checkout's workflow (Snakefile, rules, scripts, envs, config, src) to edit
    library code in a test without touching the real one."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "scripts", "envs", "config", "src", "profiles"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest
