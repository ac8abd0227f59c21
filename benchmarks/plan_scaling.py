"""Planning cost of large ROI tables: `snakemake -n` time and peak memory for 1k/10k/100k ROIs.

    python benchmarks/plan_scaling.py [--sizes 1000,10000,100000] [--models spectral,mosaiks]
                                      [--chunk-size auto]

For each size it writes a random ROI table (points over Europe, one year), a config with the
given models on one sensor, and times a dry run of the real workflow in a fresh process
(peak RSS of that process). It also reports how long reading + validating the table takes
on its own and how many jobs the plan has. Nothing is fetched.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
MEASURE = """
import resource, subprocess, sys, time, json
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
dt = time.perf_counter() - t
print(json.dumps({"rc": p.returncode, "seconds": dt, "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": p.stdout[-20000:], "err": p.stderr[-3000:]}))
"""


def write_inputs(work: Path, n: int, models: list[str], chunk_size: str) -> Path:
    rng = np.random.default_rng(0)
    rois = pd.DataFrame({"roi_id": [f"r{i:06d}" for i in range(n)],
                         "lon": np.round(rng.uniform(-10, 30, n), 5), "lat": np.round(rng.uniform(36, 60, n), 5),
                         "buffer_m": 320, "year": 2023})
    rois.to_csv(work / "rois.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg.update(rois=str(work / "rois.tsv"), chunk_size=chunk_size if chunk_size == "auto" else int(chunk_size))
    cfg["sample"]["enabled"] = False
    cfg["provider"]["catalog"] = str(work / "catalog.json")
    (work / "catalog.json").write_text('{"type": "FeatureCollection", "features": []}')
    cfg["models"] = {m: {"sensor": "s2"} for m in models}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--models", default="spectral,mosaiks")
    ap.add_argument("--chunk-size", default="auto")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    snakemake = str(Path(sys.executable).parent / "snakemake")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="eoembed-plan-") as tmp:
            work = Path(tmp)
            cfg = write_inputs(work, n, models, args.chunk_size)
            t = time.perf_counter()
            from eoembed.chunks import resolve_chunk_size
            from eoembed.table import load_table

            table = load_table(work / "rois.tsv")
            validate_s = time.perf_counter() - t
            chunk = resolve_chunk_size(args.chunk_size if args.chunk_size == "auto" else int(args.chunk_size), n)
            cmd = [snakemake, "-n", "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(cfg),
                   "--directory", str(work), "--cores", "2", "--quiet", "rules"]
            res = json.loads(subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True,
                                            text=True, check=True).stdout)
            if res["rc"] != 0:
                print(res["err"], file=sys.stderr)
                return 1
            total = re.search(r"^total\s+(\d+)$", res["out"], re.M)  # first Job stats table
            jobs = int(total.group(1)) if total else -1
            rows.append({"rois": n, "models": len(models), "chunk_size": chunk, "chunks": -(-len(table) // chunk),
                         "jobs": jobs, "validate_s": round(validate_s, 2), "plan_s": round(res["seconds"], 1),
                         "peak_rss_mb": round(res["peak_kb"] / 1024)})
            print(f"{n:>7} ROIs: chunk_size {chunk}, {rows[-1]['chunks']} chunks, {jobs} jobs, validate "
                  f"{validate_s:.2f} s, plan {res['seconds']:.1f} s, peak RSS {res['peak_kb'] / 1024:.0f} MB",
                  flush=True)
    print("\n" + pd.DataFrame(rows).to_string(index=False))
    print("\ntargets: plan <= 60 s and <= 2048 MB at 100,000 ROIs x 2 models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
