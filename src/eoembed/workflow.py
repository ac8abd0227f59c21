"""Glue between Snakemake jobs and the library: the embed job and failed-item reruns."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from eoembed.chunkio import read_chunk, write_chunk
from eoembed.items import Request
from eoembed.models.registry import create
from eoembed.pipeline import embed_items, failed
from eoembed.progress import Progress
from eoembed.versions import versions

log = logging.getLogger(__name__)

#: Environment variables that say where a job ran and which accelerator it was given.
JOB_ENV = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS",
           "CUDA_VISIBLE_DEVICES")


def job_environment() -> dict[str, str]:
    """The scheduler/accelerator facts of this job (no credentials: a fixed allow-list)."""
    import os

    return {k: os.environ[k] for k in JOB_ENV if k in os.environ}


def use_library_in_jobs(src: str | Path) -> None:
    """Put ``src`` first on ``PYTHONPATH`` so job scripts (local, conda env or cluster job, which
    inherit this environment) import the same eoembed as the workflow that planned them."""
    import os

    parts = [str(src)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)


def run_embed_job(model_id: str, chunk: str, composite_path: str | list[str] | None, out_path: str,
                  requests: list[dict[str, Any]], model_cfg: dict[str, Any], sensor: dict | None,
                  output_cfg: dict[str, Any], weights_cfg: dict[str, Any], code: str | None = None) -> None:
    """Load the model once, embed every item of the chunk in batches, write the chunk file.

    If the model cannot be built or its weights cannot be loaded, every item of the chunk is
    recorded as failed at stage ``embed`` with that error (other models are unaffected).
    ``composite_path`` is None for products and location encoders, or a list of composite chunks
    (one per declared input, in the card's order) for multi-modal models.
    ``code`` (the stage's code fingerprint, :mod:`eoembed.fingerprint`) is recorded in the
    chunk metadata.
    """
    reqs = [Request.from_dict(r) for r in requests]
    extra = None
    if composite_path is None:  # precomputed product: no fetch/composite, the product is read directly
        composites = {r.roi_id: ({}, {"roi_id": r.roi_id, "request": r.to_dict(), "request_key": r.key(),
                                      "status": "ok", "stage": "read", "error": None, "timings": {}})
                      for r in reqs}
    else:
        paths = [composite_path] if isinstance(composite_path, str) else list(composite_path)
        per_input = []
        for path in paths:  # one composite chunk per declared input, in the card's order
            items, records, _ = read_chunk(path)
            per_input.append({r.roi_id: (items.get(r.roi_id, {}), records[r.roi_id]) for r in reqs})
        composites = per_input[0]
        if len(per_input) > 1:
            from eoembed.models.registry import get_card

            modalities = [spec.modality for spec in get_card(model_id).inputs]
            extra = dict(zip(modalities[1:], per_input[1:]))
    meta: dict[str, Any] = {"stage": "embed", "model": model_id, "chunk": chunk, "sensor": sensor,
                            "versions": versions(), "code": code, "output": output_cfg, "job": job_environment()}
    log.info("embed job %s %s: requested device %s, job environment %s", model_id, chunk,
             model_cfg.get("device", "cpu"), meta["job"])
    t0 = time.perf_counter()
    try:
        embedder = create(model_id, model_cfg.get("options") or {}, device=model_cfg.get("device", "cpu"),
                          weights_dir=weights_cfg.get("dir"),
                          allow_download=bool(weights_cfg.get("allow_download")),
                          weights_paths=model_cfg.get("weights") or {},
                          weights_pins=model_cfg.get("weights_sha256") or {},
                          input_prep={"mode": output_cfg.get("input_prep"), "max_tiles": output_cfg.get("max_tiles", 64),
                                      "tile_overlap_px": output_cfg.get("tile_overlap_px", 0)},
                          **({"source": model_cfg["source"]} if model_cfg.get("source") else {}))
        embedder.load()
    except Exception as exc:  # noqa: BLE001 - record the failure on every item of the chunk
        log.error("model %s could not be loaded: %s", model_id, exc)
        results = {}
        for r in reqs:
            rec = {k: v for k, v in composites[r.roi_id][1].items() if k != "meta"}
            if rec["status"] != "failed":
                rec.update(failed("embed", exc))
            results[r.roi_id] = ({}, rec | {"model": model_id})
        from eoembed.models.registry import get_card

        meta.update(card=get_card(model_id).to_dict(), options=model_cfg.get("options") or {},
                    weights_sha256={})
    else:
        log.info("model %s loaded in %.2fs on %s", model_id, time.perf_counter() - t0, embedder.device)
        if composite_path is None:
            results = embedder.embed_requests(reqs, pooling=output_cfg["pooling"], grid=bool(output_cfg["grid"]),
                                              cell_m=output_cfg.get("grid_cell_m"))
        else:
            results = embed_items(embedder, composites, reqs, pooling=output_cfg["pooling"], extra=extra,
                                  grid=bool(output_cfg["grid"]), cell_m=output_cfg.get("grid_cell_m"),
                                  batch_size=int(model_cfg.get("batch_size", 16)),
                                  progress=Progress(f"embed {model_id} chunk {chunk}", len(reqs)),
                                  precision=model_cfg.get("precision", "fp32"))
        desc = embedder.describe()
        meta.update(card=embedder.card.to_dict(), options=desc["options"],
                    weights_sha256=desc["weights_sha256"], dims=desc["dims"])
    for _, rec in results.values():
        rec["chunk"] = chunk
    write_chunk(out_path, {k: a for k, (a, _) in results.items()}, {k: r for k, (_, r) in results.items()},
                meta)
    counts: dict[str, int] = {}
    for _, rec in results.values():
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    log.info("embed %s %s done: %s", model_id, chunk, counts)


def failed_stage_files(manifest_tsv: str | Path, config: dict[str, Any]) -> list[str]:
    """Output files to force-rerun so that every failed (or missing) item is recomputed.

    For each failed item x model, the earliest stage that failed decides the file: the fetch
    chunk (shared by the models of that download), the composite chunk or the embed chunk.
    Snakemake then reruns that file and everything downstream of it, nothing else.
    """
    import pandas as pd

    from eoembed.config import sensor_specs
    from eoembed.providers import fetch_fields
    from eoembed.specs import stable_key
    from eoembed.chunks import workflow_chunks
    from eoembed.table import load_table

    df = pd.read_csv(manifest_tsv, sep="\t", dtype=str, keep_default_na=False)
    bad = df[df["status"] == "failed"]
    table = load_table(config["rois"])
    chunks = workflow_chunks(table["roi_id"].tolist(), config["chunk_size"], write=False)
    chunk_of = {rid: c for c, members in chunks.items() for rid in members}
    sensors = sensor_specs(config)
    files: list[str] = []
    for row in bad.itertuples(index=False):
        if row.roi_id not in chunk_of or row.model not in config["models"]:
            continue  # the ROI or model was removed from the config since
        chunk = chunk_of[row.roi_id]
        sname = config["models"][row.model].get("sensor")
        sensor = sensors.get(sname) if sname else None
        if row.stage == "fetch" and sensor is not None:
            path = f"results/fetch/{stable_key(fetch_fields(sensor, config['provider']))}/{chunk}.npz"
        elif row.stage == "composite" and sensor is not None:
            path = f"results/composite/{sensor.key()}/{chunk}.npz"
        else:
            path = f"results/embed/{row.model}/{chunk}.npz"
        if path not in files:
            files.append(path)
    return files
