# Shared state and input functions: the validated ROI table, its chunks, sensors, models
# and the path of every stage's output. Nothing here runs a job.
import sys
from functools import lru_cache
from pathlib import Path

import pandas as pd

# This workflow runs the library of its own checkout (src/), here and in every job.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from eoembed.workflow import use_library_in_jobs

use_library_in_jobs(Path(workflow.basedir) / "src")

from eoembed.config import sensor_specs, validate_config
from eoembed.labels import labels_pending
from eoembed.models.registry import get_card
from eoembed.providers import PIPELINE_KEYS
from eoembed.table import chunk_members, load_table, resolve_chunk_size, to_requests
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
CHUNK_SIZE = resolve_chunk_size(config["chunk_size"], len(ROI_IDS))
CHUNKS = chunk_members(ROI_IDS, CHUNK_SIZE)
SENSORS = sensor_specs(config)
MODELS = config["models"]
CARDS = {mid: get_card(mid) for mid in MODELS}
OUT = config["output"]

# fetch keyed by what is downloaded; composite keyed by the full sensor spec
FETCH_SPECS = {spec.fetch_key(): spec for spec in SENSORS.values()}
COMPOSITE_SPECS = {spec.key(): spec for spec in SENSORS.values()}

wildcard_constraints:
    chunk=r"c\d+",
    fkey=r"[0-9a-f]{16}",
    skey=r"[0-9a-f]{16}",
    model=r"[A-Za-z0-9_]+",


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
