# Shared state and input functions: the validated ROI table, its chunks, sensors, models
# and the path of every stage's output. Nothing here runs a job.
import sys
from functools import lru_cache
from types import SimpleNamespace
from pathlib import Path

import pandas as pd

# This workflow runs the library of its own checkout (src/), here and in every job.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from eoembed.workflow import use_library_in_jobs

use_library_in_jobs(Path(workflow.basedir) / "src")

from eoembed.config import sensor_specs, validate_config
from eoembed.labels import labels_pending
from eoembed.fingerprint import fingerprint, registry_module
from eoembed.models.registry import MODELS as MODEL_REGISTRY, get_card
from eoembed import jobsize
from eoembed.providers import fetch_fields, output_fields, provider_modules, server_side_composite
from eoembed.specs import stable_key
from eoembed.chunks import workflow_chunks
from eoembed.table import load_table, to_requests
from eoembed.validate import validate_run

validate_config(config, check=False)  # schema + defaults; cross-key checks below, with the table

# Validates the WHOLE table before any job: every problem is reported at once. A config with a
# `labels` block builds the table first (rules/paper.smk); until it exists only that is planned.
LABELS_PENDING = labels_pending(config)
TABLE = pd.DataFrame({"roi_id": []}) if LABELS_PENDING else load_table(config["rois"])
# Every model against its sensor(s), frames against the table's windows, before any job.
if not LABELS_PENDING:
    validate_run(config, TABLE)
ROI_IDS = TABLE["roi_id"].tolist()
ROW_OF = {rid: i for i, rid in enumerate(ROI_IDS)}
# A ROI's chunk is a hash of its id with a chunk count frozen in results/chunks.json at the first
# real run (eoembed.chunks): appending, sorting or growing the table never moves a ROI.
CHUNKS = workflow_chunks(ROI_IDS, config["chunk_size"],
                         write=workflow.is_main_process and not workflow.dryrun and not LABELS_PENDING)
CHUNK_OF = {rid: c for c, members in CHUNKS.items() for rid in members}
SENSORS = sensor_specs(config)
MODELS = config["models"]
CARDS = {mid: get_card(mid) for mid in MODELS}
OUT = config["output"]
PROVIDER = config["provider"]


def fetch_key(spec):
    """Key of a fetch: the download fields (the whole sensor for a provider that composites)."""
    return stable_key(fetch_fields(spec, PROVIDER))


# fetch keyed by what is downloaded; composite keyed by the full sensor spec
FETCH_SPECS = {fetch_key(spec): spec for spec in SENSORS.values()}
COMPOSITE_SPECS = {spec.key(): spec for spec in SENSORS.values()}

wildcard_constraints:
    chunk=r"c\d+",
    fkey=r"[0-9a-f]{16}",
    skey=r"[0-9a-f]{16}",
    model=r"[A-Za-z0-9_]+",


# ---- rerun triggers: params hold exactly what changes a stage's output (eoembed.fingerprint for
# the code); operational settings (retries, timeouts, cache dirs, device, batch size, weights dir,
# allow_download) are read by the scripts from snakemake.config and trigger nothing.
MODEL_OPERATIONAL = ("device", "batch_size")


@lru_cache(maxsize=None)
def code(script, *modules):
    """Fingerprint of the eoembed code a rule script runs (plus registry-named modules)."""
    return fingerprint([str(Path(workflow.basedir) / "scripts" / f"{script}.py"), *modules])


def fetch_code():
    return code("fetch", *provider_modules(PROVIDER))


def embed_code(model):
    return code("embed", registry_module(MODEL_REGISTRY[model]))


def model_fields(model):
    """A model's config without its operational keys (device, batch size)."""
    return {k: v for k, v in MODELS[model].items() if k not in MODEL_OPERATIONAL}


def embed_output_fields():
    """Output settings that change an embedding (input prep included); partial_below is not one."""
    return {k: OUT.get(k) for k in ("pooling", "grid", "grid_cell_m", "input_prep", "max_tiles", "tile_overlap_px")}


def catalog_input():
    """The local catalogue as an ancient() input: it must exist (the sample rule may make it)
    but its modification time triggers nothing (see README, 'What triggers reruns')."""
    catalog = PROVIDER.get("catalog") or (PROVIDER.get("inner") or {}).get("catalog")
    return ancient(catalog) if catalog else []


# ---- resources: memory and runtime of a chunk job from its pixels x bands x time steps
# (eoembed.jobsize); every retry of a job gets attempt x the memory.
JOB_RETRIES = 2


def _stage_sensor(wildcards, stage):
    if stage == "fetch":
        return fetch_fields(FETCH_SPECS[wildcards.fkey], PROVIDER)
    if stage == "composite":
        return COMPOSITE_SPECS[wildcards.skey].to_dict()
    return sensor_of(wildcards.model).to_dict() if on_the_fly(wildcards.model) else None


@lru_cache(maxsize=None)
def _chunk_bytes(chunk, stage, key):
    """Array bytes a ``stage`` job of ``chunk`` holds (``key``: its fkey, skey or model), computed
    once per plan: Snakemake evaluates every job's resources several times while planning."""
    wc = SimpleNamespace(fkey=key, skey=key, model=key)
    sensor = _stage_sensor(wc, stage)
    if not sensor:
        return 0
    return jobsize.chunk_bytes(_chunk_requests(chunk), sensor, stage=stage,
                               server_side=server_side_composite(PROVIDER))


def _stage_key(wildcards, stage):
    return {"fetch": "fkey", "composite": "skey"}.get(stage, "model")


def job_mem_mb(stage):
    def mem(wildcards, attempt):
        model_mb = CARDS[wildcards.model].mem_mb if stage == "embed" else 0
        data = _chunk_bytes(wildcards.chunk, stage, getattr(wildcards, _stage_key(wildcards, stage)))
        return jobsize.mem_mb_of(data, attempt, model_mb=model_mb)
    return mem


def job_runtime(stage):
    def runtime(wildcards, attempt):
        if stage == "embed":
            return CARDS[wildcards.model].runtime_min * 2 ** (attempt - 1)
        data = _chunk_bytes(wildcards.chunk, stage, getattr(wildcards, _stage_key(wildcards, stage)))
        return jobsize.runtime_min_of(data, attempt, base_min=30 if stage == "fetch" else 10)
    return runtime


def sensor_of(model):
    return SENSORS[MODELS[model]["sensor"]]


def on_the_fly(model):
    """Models run on fetched imagery (products and location encoders fetch nothing)."""
    return CARDS[model].kind == "on_the_fly"


@lru_cache(maxsize=None)
def _chunk_requests(chunk):
    return [r.to_dict() for r in to_requests(TABLE, [ROW_OF[r] for r in CHUNKS[chunk]])]


def chunk_requests(wildcards):
    """The chunk's requests as JSON-ready dicts: a changed ROI reruns only its chunk."""
    return _chunk_requests(wildcards.chunk)


def fetch_path(fkey, chunk):
    return f"results/fetch/{fkey}/{chunk}.npz"


def composite_path(skey, chunk):
    return f"results/composite/{skey}/{chunk}.npz"


def embed_path(model, chunk):
    return f"results/embed/{model}/{chunk}.npz"


def embed_paths(model):
    return [embed_path(model, c) for c in CHUNKS]


def wants_grid(model):
    return bool(OUT["grid"]) and "grid" in CARDS[model].outputs


def grid_paths(model):
    return [f"results/export/{model}/grid/{c}.nc" for c in CHUNKS] if wants_grid(model) else []


def benchmark_targets():
    return config["benchmark"]["targets"]


def labels_key():
    """Stable key of the benchmark's label columns by ROI id: the table itself is an ancient()
    input, so re-sorting it or editing other columns reruns no benchmark, a changed label does."""
    cols = [t["column"] for t in benchmark_targets() if t["column"] in TABLE]
    rows = TABLE[["roi_id", *cols]].sort_values("roi_id").astype(str).to_numpy().tolist()
    return stable_key({"columns": cols, "rows": rows})


def all_targets():
    if LABELS_PENDING:
        return [config["rois"]]
    targets = []
    for model in MODELS:
        targets += [f"results/export/{model}/embeddings.parquet", f"results/export/{model}/embeddings.nc"]
        targets += grid_paths(model)
    targets += ["results/manifest/items.tsv", "results/manifest/summary.json", "results/report.html"]
    return targets + figure_targets() + paper_targets()  # rules/figures.smk, rules/paper.smk


def sensors_of(model):
    """The model's sensors in the order of its declared inputs (the first is ``sensor``; the others
    come from ``sensors: {modality: sensor name}`` for multi-modal models, e.g. S1 + S2)."""
    extra = MODELS[model].get("sensors") or {}
    return [sensor_of(model)] + [SENSORS[extra[spec.modality]] for spec in CARDS[model].inputs[1:]]


def embed_input(wildcards):
    if on_the_fly(wildcards.model):
        return [composite_path(s.key(), wildcards.chunk) for s in sensors_of(wildcards.model)]
    return []
