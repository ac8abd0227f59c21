"""Demo throughput: the library API vs the Snakemake workflow on the same demo items.

For the models of ``config/config.yaml`` (the weight-free demo models) on the first N ROIs of
``config/rois.tsv`` over the generated sample imagery, this prints

(a) items/s through :func:`eoembed.get_embeddings_batch` per model, end to end
    (fetch + composite + embed, model built and loaded once, same sensor and output as config);
(b) ROI x model items / wall time of whole ``snakemake --cores N`` runs (all targets, benchmark
    and figures included) in fresh temporary working directories;
(c) the share of the ``--cores 1`` wall time spent outside fetch + composite + embed, with the
    stage time taken from the run's manifest (a fetch/composite shared by models counted once),
    plus a breakdown of the rest: per-rule job time and Snakemake's own time around the jobs
    (from ``.snakemake/metadata``: each job's start marker and output times), ``snakemake -n``
    planning time and per-job start-up probes (fresh interpreters).

Run from the repository root (snakemake must be on PATH, e.g. ``.venv/bin``)::

    PATH=.venv/bin:$PATH python benchmarks/demo_throughput.py [--items N] [--cores-list 1,2]
        [--api-threads 1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))

from eoembed.chunkio import atomic_output, write_text_atomic  # noqa: E402
from eoembed.config import sensor_specs, validate_config  # noqa: E402
from eoembed.manifest import read_manifest  # noqa: E402
from eoembed.table import load_table, read_table, to_requests  # noqa: E402

PREAMBLE = ("from snakemake.logging import logger; from snakemake.iocontainers import Snakemake; "
            "from snakemake.shell import shell")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=48, help="first N ROIs of config/rois.tsv (default 48; 0 = all)")
    p.add_argument("--cores-list", default="1,2", help="snakemake --cores values to run, comma-separated")
    p.add_argument("--api-threads", type=int, default=1,
                   help="torch threads for the API runs (Snakemake gives each job 1 thread)")
    p.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = p.parse_args(argv)
    try:
        args.cores = [int(c) for c in args.cores_list.split(",") if c.strip()]
    except ValueError:
        p.error(f"--cores-list={args.cores_list!r}: expected integers such as 1,2")
    if not args.cores or min(args.cores) < 1:
        p.error(f"--cores-list={args.cores_list!r}: give at least one value >= 1")
    return args


def prepare_inputs(work: Path, n_items: int | None) -> tuple[Path, Path, int]:
    """The ROI table (first N rows of config/rois.tsv) and the sample catalogue to use.

    Reuses ``resources/sample/index.json`` when present, else generates the demo imagery into
    ``work/sample`` with :func:`eoembed.demo.write_demo_table`.
    """
    catalog = ROOT / "resources" / "sample" / "index.json"
    if not catalog.is_file():
        from eoembed.demo import write_demo_table

        print(f"generating the demo imagery into {work / 'sample'} ...", flush=True)
        write_demo_table(work / "demo_rois.tsv", work / "sample")
        catalog = work / "sample" / "index.json"
    table = read_table(ROOT / "config" / "rois.tsv")
    n = len(table) if not n_items else n_items
    if not 1 <= n <= len(table):
        raise SystemExit(f"--items={n_items}: allowed 1..{len(table)} (rows of config/rois.tsv)")
    rois = work / "rois.tsv"
    with atomic_output(rois, ".tsv") as tmp:
        table.iloc[:n].to_csv(tmp, sep="\t", index=False)
    return rois, catalog.resolve(), n


def bench_config(rois: Path, catalog: Path, work: Path) -> tuple[dict[str, Any], Path]:
    """config/config.yaml with absolute ROI/catalogue paths and sample generation off."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["rois"] = str(rois)
    config["provider"]["catalog"] = str(catalog)
    config.setdefault("sample", {})["enabled"] = False
    sites = read_table(rois).get("site")
    if config.get("benchmark", {}).get("targets") and sites is not None and sites.nunique() < 2:
        # spatially blocked CV needs >= 2 groups: too few ROIs for the benchmark rule
        print(f"note: the {len(sites)} ROIs lie at one site: benchmark targets dropped", flush=True)
        config["benchmark"]["targets"] = []
    path = write_text_atomic(work / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    return validate_config(yaml.safe_load(path.read_text())), path


def time_api(config: dict[str, Any], rois: Path, threads: int) -> pd.DataFrame:
    """(a) End-to-end API time per model (after one untimed warm-up item per model)."""
    import torch

    import eoembed
    from eoembed.models.registry import get_card
    from eoembed.specs import OutputSpec

    torch.set_num_threads(threads)
    requests = to_requests(load_table(rois))
    sensors = sensor_specs(config)
    out_cfg = config["output"]
    provider = {k: v for k, v in config["provider"].items() if k not in ("retries", "backoff_s")}
    rows = []
    for mid, mcfg in config["models"].items():
        grid = bool(out_cfg["grid"]) and "grid" in get_card(mid).outputs
        output = OutputSpec.grid(out_cfg["grid_cell_m"]) if grid else OutputSpec.pooled(out_cfg["pooling"])
        kwargs = dict(output=output, provider=provider, sensor=sensors[mcfg["sensor"]],
                      options=mcfg.get("options") or {}, device=mcfg.get("device", "cpu"),
                      batch_size=int(mcfg.get("batch_size", 16)), retries=config["provider"]["retries"],
                      backoff_s=config["provider"]["backoff_s"], partial_below=out_cfg["partial_below"])
        eoembed.get_embeddings_batch(mid, requests[:1], **kwargs)  # warm-up: imports, file cache
        t0 = time.perf_counter()
        embs = eoembed.get_embeddings_batch(mid, requests, **kwargs)
        wall = time.perf_counter() - t0
        stage = sum(v for e in embs for v in (e.meta.get("timings") or {}).values())
        rows.append({"model": mid, "output": output.mode, "items": len(embs),
                     "ok": sum(e.meta["status"] != "failed" for e in embs), "wall_s": wall,
                     "items_per_s": len(embs) / wall, "stage_s": stage, "outside_s": wall - stage})
    return pd.DataFrame(rows)


def _env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    pythonpath = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": pythonpath}


def snakemake(run_dir: Path, config_path: Path, cores: int, *extra: str) -> tuple[float, float, float, str, int]:
    """Run the real snakemake CLI; returns (start epoch, end epoch, wall s, output, return code)."""
    exe = shutil.which("snakemake", path=_env()["PATH"])
    if exe is None:
        raise SystemExit("snakemake not found on PATH (e.g. PATH=.venv/bin:$PATH)")
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(run_dir),
           "--configfile", str(config_path), "--cores", str(cores), *extra]
    start, t0 = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    wall = time.perf_counter() - t0
    return start, time.time(), wall, proc.stdout + "\n" + proc.stderr, proc.returncode


def job_times(run_dir: Path) -> pd.DataFrame:
    """Start and end epoch of every job, from Snakemake's own metadata records.

    Snakemake records per output file the mtime of the job's incomplete marker (written when
    the job starts) and the output's mtime (when it was written); outputs of one job share a
    job hash. Columns: ``rule``, ``start``, ``end``, sorted by start.
    """
    rows = []
    for path in (run_dir / ".snakemake" / "metadata").iterdir():
        rec = json.loads(path.read_text())
        if rec.get("starttime") is not None and rec.get("endtime") is not None:
            rows.append({"rule": rec["rule"], "job": rec.get("job_hash"), "start": rec["starttime"],
                         "end": rec["endtime"]})
    df = pd.DataFrame(rows, columns=["rule", "job", "start", "end"])
    df = df.groupby(["rule", "job"], as_index=False).agg(start=("start", "min"), end=("end", "max"))
    return df.sort_values("start", kind="stable").reset_index(drop=True)


def serial_breakdown(jobs: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """Where a --cores 1 run's wall time goes: per-rule job time and Snakemake's time around jobs.

    Jobs run one after another, so the run's wall time splits into the time before the first
    job (CLI start-up, validation, DAG), each job's own time (start marker to last output),
    the gaps between jobs (Snakemake's bookkeeping and scheduling) and the time after the last.
    """
    rows = [{"rule": "(before the first job: start-up, validation, DAG)", "jobs": 0,
             "wall_s": max(jobs.start.min() - start, 0.0)}]
    for rule, g in jobs.groupby("rule", sort=False):
        rows.append({"rule": rule, "jobs": len(g), "wall_s": float((g.end - g.start).sum())})
    gaps = (jobs.start.iloc[1:].to_numpy() - jobs.end.iloc[:-1].to_numpy()).clip(min=0)
    rows.append({"rule": "(between jobs: job exit, Snakemake bookkeeping)", "jobs": 0, "wall_s": float(gaps.sum())})
    rows.append({"rule": "(after the last output: job exit, final bookkeeping)", "jobs": 0,
                 "wall_s": max(end - jobs.end.max(), 0.0)})
    return pd.DataFrame(rows)


def stage_times(manifest: Path, config: dict[str, Any]) -> dict[str, float]:
    """Stage seconds from the manifest: fetch once per (ROI, download), composite once per
    (ROI, sensor spec), embed once per (ROI, model)."""
    df = read_manifest(manifest)
    sensors = sensor_specs(config)
    spec = {m: sensors[c["sensor"]] for m, c in config["models"].items() if c.get("sensor")}
    df = df[df.model.isin(list(spec))].copy()
    df["fkey"] = df.model.map(lambda m: spec[m].fetch_key())
    df["skey"] = df.model.map(lambda m: spec[m].key())
    return {"fetch": float(df.groupby(["roi_id", "fkey"]).fetch_s.first().sum()),
            "composite": float(df.groupby(["roi_id", "skey"]).composite_s.first().sum()),
            "embed": float(df.embed_s.sum()),
            "ok_items": int((df.status != "failed").sum())}


def probe(code: str, repeats: int = 3) -> float:
    """Median wall time of ``python -c code`` in a fresh interpreter."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_env(), capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def startup_probes(config: dict[str, Any]) -> dict[str, float]:
    """Start-up costs paid by every job (and by Snakemake's planning), each in a fresh process."""
    models = list(config["models"])
    out = {"python (empty)": probe("pass"),
           "snakemake script preamble imports": probe(PREAMBLE),
           "import eoembed.pipeline": probe("import eoembed.pipeline"),
           "per-job floor: preamble + eoembed.pipeline": probe(f"{PREAMBLE}; import eoembed.pipeline"),
           f"get_card({', '.join(models)}) (done while planning)":
               probe(f"from eoembed.models.registry import get_card; [get_card(m) for m in {models!r}]")}
    for m in models:
        opts = config["models"][m].get("options") or {}
        out[f"import eoembed.pipeline + build and load {m}"] = probe(
            f"import eoembed.pipeline; from eoembed.models.registry import create; "
            f"create({m!r}, {opts!r}).load()")
    sm = shutil.which("snakemake", path=_env()["PATH"])
    if sm:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sm, "--version"], check=True, env=_env(), capture_output=True)
            times.append(time.perf_counter() - t0)
        out["snakemake --version (CLI start-up)"] = statistics.median(times)
    return out


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables; returns the exit status."""
    args = parse_args(argv)
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="eoembed-bench-"))
    try:
        rois, catalog, n = prepare_inputs(work, args.items)
        config, config_path = bench_config(rois, catalog, work)
        models = list(config["models"])
        n_items = n * len(models)
        print(f"eoembed demo throughput: {n} ROIs x {len(models)} models ({', '.join(models)}) = {n_items} "
              f"items; catalogue {catalog}; chunk_size {config['chunk_size']}; "
              f"load avg {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)

        print("\n(a) library API, eoembed.get_embeddings_batch, warm, end to end "
              f"(torch threads {args.api_threads}):", flush=True)
        api = time_api(config, rois, args.api_threads)
        print(_fmt(api))
        api_rate = api["items"].sum() / api.wall_s.sum()
        print(f"    all models in sequence: {api['items'].sum()} items in {api.wall_s.sum():.2f} s "
              f"= {api_rate:.2f} items/s (the API fetches and composites once per model)")

        _, _, plan_s, dry_out, rc = snakemake(work / "dry", config_path, 1, "-n")
        if rc != 0:
            print(dry_out[-3000:])
            raise SystemExit("snakemake -n failed")
        runs, serial = [], None
        print("\n(b) snakemake, fresh working directory per run, all targets:", flush=True)
        for cores in args.cores:
            run_dir = work / f"run_c{cores}"
            start, end, wall, out, rc = snakemake(run_dir, config_path, cores)
            manifest = run_dir / "results" / "manifest" / "items.tsv"
            ok = rc == 0 and manifest.is_file()
            stages = stage_times(manifest, config) if ok else {}
            jobs = job_times(run_dir) if ok else pd.DataFrame(columns=["rule", "job", "start", "end"])
            runs.append({"cores": cores, "jobs": len(jobs), "items": n_items, "ok": stages.get("ok_items", 0),
                         "wall_s": wall, "items_per_s": n_items / wall, "rc": rc})
            print(f"    --cores {cores}: {wall:.2f} s (rc {rc})", flush=True)
            if not ok:
                print(out[-3000:])
            elif serial is None or cores == 1:
                serial = (cores, start, end, wall, jobs, stages)
        print(_fmt(pd.DataFrame(runs)))
        if serial is None:
            print("\nno successful snakemake run: no breakdown")
            return 1

        cores, start, end, wall, jobs, stages = serial
        stage_s = stages["fetch"] + stages["composite"] + stages["embed"]
        outside = wall - stage_s
        print(f"\n(c) where the --cores {cores} wall time goes ({wall:.2f} s):")
        print(f"    fetch {stages['fetch']:.2f} s + composite {stages['composite']:.2f} s + embed "
              f"{stages['embed']:.2f} s = {stage_s:.2f} s in stages (manifest timings; a fetch/composite "
              f"shared by models counted once)")
        print(f"    outside fetch+composite+embed: {outside:.2f} s = {100 * outside / wall:.1f} % of the wall time")
        if cores == 1:
            table = serial_breakdown(jobs, start, end)
            table["in_stage_s"] = table.rule.map({k: stages[k] for k in ("fetch", "composite", "embed")})
            table["in_stage_s"] = table.in_stage_s.fillna(0.0)
            table["outside_s"] = table.wall_s - table.in_stage_s
            table["share_%"] = 100 * table.wall_s / wall
            print("    per rule (job = its start marker to its last output, from .snakemake/metadata):")
            print("    " + _fmt(table).replace("\n", "\n    "))
        probes = startup_probes(config)
        print(f"    snakemake -n in a fresh directory (CLI start-up, validation, DAG): {plan_s:.2f} s")
        print("    start-up probes (median of 3 fresh processes):")
        for label, secs in probes.items():
            print(f"      {secs:6.2f} s  {label}")
        floor = probes["per-job floor: preamble + eoembed.pipeline"]
        chunks = int((jobs.rule == "embed").sum()) // max(len(models), 1)
        builds = chunks * sum(probes[f"import eoembed.pipeline + build and load {m}"]
                              - probes["import eoembed.pipeline"] for m in models)
        est = len(jobs) * floor + builds
        print(f"    estimated job start-up: {len(jobs)} jobs x {floor:.2f} s + model builds in "
              f"{chunks * len(models)} embed jobs {builds:.2f} s = {est:.2f} s ({100 * est / wall:.1f} % of the wall time)")

        best = max(runs, key=lambda r: r["items_per_s"])
        print(f"\nsummary: {n_items} items; API {api_rate:.2f} items/s vs snakemake {best['items_per_s']:.2f} "
              f"items/s (best, --cores {best['cores']}); {100 * outside / wall:.0f} % of the --cores {cores} "
              f"wall time is outside fetch+composite+embed; benchmark took {time.perf_counter() - t_all:.0f} s")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
