"""Run manifests: one row per item x model from the chunk files of every stage, plus a summary.

:func:`aggregate` reads only the JSON records of the chunk files (never their arrays) and writes

* a TSV manifest (:data:`COLUMNS`): one row per ``(roi_id, model)`` with its final status, the
  stage it stopped at (``"done"`` when it finished), a one-line error, per-stage timings, mean
  valid fraction, output shapes, embedding sha256, cache flag and request key;
* a summary JSON: counts per model and status, totals, timing sums, the failed items, wall time
  and the software versions recorded by the embed stage.

Records that name a model (embed stage) make the rows. Records without a model (shared fetch /
composite stages, keyed by sensor rather than model) only fill timings that the model rows lack,
and an item that failed upstream but has no model row at all still gets a row (empty ``model``),
so no failure goes unreported. Later stages override earlier ones for the same row.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from eoembed.chunkio import META_KEY, atomic_output

__all__ = ["COLUMNS", "STAGE_ORDER", "aggregate", "read_manifest", "summarize"]

STAGE_ORDER = ("fetch", "composite", "embed")
TIMINGS = ("fetch_s", "composite_s", "embed_s")
COLUMNS = ("roi_id", "model", "status", "stage", "error", *TIMINGS, "valid_fraction", "output_shape",
           "embedding_sha256", "cached", "request_key", "chunk", "attempts")
MAX_ERROR_CHARS = 1000
STATUSES = ("ok", "partial", "failed")


def _read_records(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The records and chunk metadata of a chunk file, without decompressing its arrays."""
    with np.load(path, allow_pickle=False) as npz:
        payload = json.loads(npz[META_KEY].tobytes().decode())
    return payload.get("records", {}), payload.get("chunk", {})


def one_line(error: Any) -> str:
    """An error message collapsed to one line (whitespace runs -> one space), truncated."""
    if error is None:
        return ""
    text = " ".join(str(error).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "\u2026"


def _mean_fraction(values: Any) -> float:
    vals = [float(v) for v in (values or []) if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _row(record: dict[str, Any], model: str, stage: str) -> dict[str, Any]:
    status = record.get("status") or "failed"
    timings = record.get("timings") or {}
    return {"roi_id": str(record.get("roi_id")), "model": model, "status": status,
            "stage": record.get("stage") or ("done" if status == "ok" else stage),
            "error": one_line(record.get("error")),
            **{t: timings.get(t) for t in TIMINGS},
            "valid_fraction": _mean_fraction(record.get("valid_fraction")),
            "output_shape": json.dumps(record.get("output_shape") or {}, separators=(",", ":"),
                                       sort_keys=True),
            "embedding_sha256": record.get("embedding_sha256") or "",
            "cached": bool(record.get("cached", False)),
            "request_key": record.get("request_key") or "",
            "chunk": record.get("chunk") or "",
            "attempts": int(record.get("attempts") or 0)}


def _stages(chunk_paths_by_stage: Mapping[str, Iterable[str | os.PathLike]]) -> list[str]:
    known = [s for s in STAGE_ORDER if s in chunk_paths_by_stage]
    return known + [s for s in chunk_paths_by_stage if s not in STAGE_ORDER]


def _merge_versions(all_versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Union of version dicts; a key with differing values maps to the sorted distinct values."""
    merged: dict[str, set[str]] = {}
    for versions in all_versions:
        for key, value in (versions or {}).items():
            merged.setdefault(key, set()).add(str(value))
    return {k: (next(iter(v)) if len(v) == 1 else sorted(v)) for k, v in sorted(merged.items())}


def aggregate(chunk_paths_by_stage: Mapping[str, Iterable[str | os.PathLike]],
              out_tsv: str | os.PathLike, out_summary_json: str | os.PathLike,
              wall_time_s: float | None = None) -> pd.DataFrame:
    """Aggregate chunk-file records into a TSV manifest and a summary JSON (both atomic).

    Args:
        chunk_paths_by_stage: Chunk files per stage name (``"fetch"``, ``"composite"``,
            ``"embed"``, ...). Known stages are read in pipeline order, others after them.
        out_tsv: Destination of the manifest TSV.
        out_summary_json: Destination of the summary JSON.
        wall_time_s: Wall time of the run, recorded in the summary if given.

    Returns:
        The manifest as a DataFrame (columns :data:`COLUMNS`), sorted by model then roi_id.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    upstream: dict[str, list[dict[str, Any]]] = {}
    versions: list[dict[str, Any]] = []
    n_files: dict[str, int] = {}
    for stage in _stages(chunk_paths_by_stage):
        paths = list(chunk_paths_by_stage[stage])
        n_files[stage] = len(paths)
        for path in paths:
            records, meta = _read_records(path)
            if meta.get("model"):
                versions.append(meta.get("versions") or {})
            for roi_id, record in records.items():
                record = {"roi_id": roi_id, **record}
                model = record.get("model") or meta.get("model")
                if model:
                    new = _row(record, str(model), stage)
                    old = rows.get((str(roi_id), str(model)), {})
                    # later stages win, but keep earlier timings the later record does not carry
                    rows[(str(roi_id), str(model))] = {
                        **new, **{t: old.get(t) if new[t] is None else new[t] for t in TIMINGS}}
                else:
                    upstream.setdefault(str(roi_id), []).append(_row(record, "", stage))
    for (roi_id, _), row in rows.items():
        for up in upstream.get(roi_id, []):
            for t in TIMINGS:
                if row[t] is None and up[t] is not None:
                    row[t] = up[t]
    modelled = {roi for roi, _ in rows}
    for roi_id, ups in upstream.items():
        if roi_id not in modelled:
            last = ups[-1]
            rows[(roi_id, "")] = last
    df = pd.DataFrame(list(rows.values()), columns=list(COLUMNS))
    for t in (*TIMINGS, "valid_fraction"):
        df[t] = pd.to_numeric(df[t], errors="coerce").astype("float64")
    df = df.sort_values(["model", "roi_id"], kind="stable").reset_index(drop=True)

    with atomic_output(out_tsv, ".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep="", lineterminator="\n")
    summary = summarize(df, wall_time_s=wall_time_s, versions=_merge_versions(versions))
    summary["chunk_files"] = n_files
    with atomic_output(out_summary_json, ".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return df


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def summarize(df: pd.DataFrame, wall_time_s: float | None = None,
              versions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run summary of a manifest DataFrame (JSON-ready, no NaN).

    Keys: ``created``, ``n_rows``, ``models``, ``counts`` (model -> status -> n), ``totals``
    (status -> n, plus ``all``), ``cached``, ``timings_s`` (sum of each timing column over rows),
    ``timings_s_by_model``, ``failed`` (roi_id, model, stage, error of each failed row),
    ``wall_time_s`` and ``versions``. Timing sums are over rows: a fetch shared by two models is
    counted once per model.
    """
    counts = {str(m): {s: int((g.status == s).sum()) for s in STATUSES} for m, g in df.groupby("model")}
    totals = {s: int((df.status == s).sum()) for s in STATUSES}
    totals["all"] = int(len(df))
    failed = df[df.status == "failed"]
    return {
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "n_rows": int(len(df)), "models": sorted(str(m) for m in df.model.unique()),
        "counts": counts, "totals": totals, "cached": int(df.cached.astype(bool).sum()),
        "timings_s": {t: float(df[t].sum(skipna=True)) for t in TIMINGS},
        "timings_s_by_model": {str(m): {t: float(g[t].sum(skipna=True)) for t in TIMINGS}
                               for m, g in df.groupby("model")},
        "failed": [{"roi_id": r.roi_id, "model": r.model, "stage": r.stage, "error": r.error}
                   for r in failed.itertuples()],
        "wall_time_s": _num(wall_time_s), "versions": versions or {}}


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest TSV written by :func:`aggregate` with proper types.

    Strings stay strings (an ROI called ``"NA"`` is not a missing value), timings and
    ``valid_fraction`` are float (NaN when unknown) and ``cached`` is bool.
    """
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    for t in (*TIMINGS, "valid_fraction"):
        df[t] = pd.to_numeric(df[t].replace("", np.nan), errors="coerce").astype("float64")
    df["cached"] = df["cached"].map({"True": True, "False": False, "true": True, "false": False,
                                     "1": True, "0": False, "": False}).astype(bool)
    return df
