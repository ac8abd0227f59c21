"""Retrieval over exported embeddings: "which places look like this one?".

Similarity is the cosine of pooled embeddings. Small tables are searched exactly (one matrix
product); tables of at least :data:`ANN_MIN_ROWS` rows use an approximate HNSW index from
faiss (``faiss-cpu``) over L2-normalised vectors with the inner-product metric, which ranks by
the same cosine.

Neighbours that are merely *adjacent* ROIs say little about the embedding (they share the same
field, weather and scene), so both the search and the benchmark can exclude candidates that lie
in the query's spatial block (:func:`eoembed.evaluate.spatial_blocks`, equal-area squares of
``block_km``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eoembed.chunkio import atomic_output
from eoembed.errors import ConfigError, SpecError

__all__ = ["ANN_MIN_ROWS", "EmbeddingTable", "load_embeddings", "neighbours", "precision_at_k",
           "run_retrieval", "similar"]

ANN_MIN_ROWS = 50_000
"""From this many rows on, ``method="auto"`` uses the faiss HNSW index instead of exact search."""
METHODS = ("auto", "exact", "ann")
HNSW_M = 32
QUERY_BLOCK = 1024


class EmbeddingTable:
    """Pooled embeddings of one model: ids, centroids and unit-norm vectors (ok/partial items).

    Attributes:
        roi_ids: ``(n,)`` ROI ids.
        lon, lat: ``(n,)`` ROI centroids in degrees.
        vectors: ``(n, dim)`` float32 rows of unit L2 norm (for cosine search).
        raw: ``(n, dim)`` float32 embeddings as exported (for estimators and projections).
    """

    def __init__(self, roi_ids: Sequence[str], lon: Sequence[float], lat: Sequence[float],
                 vectors: np.ndarray):
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or len(v) != len(roi_ids):
            raise SpecError("vectors", v.shape, f"a 2-D array with one row per ROI ({len(roi_ids)})",
                            "EmbeddingTable")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        self.roi_ids = np.asarray(roi_ids, dtype=object)
        self.lon, self.lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        self.raw = v
        self.vectors = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)

    def __len__(self) -> int:
        return len(self.roi_ids)

    def index_of(self, roi_id: str) -> int:
        hits = np.flatnonzero(self.roi_ids == str(roi_id))
        if not len(hits):
            raise SpecError("roi", roi_id, f"an ROI with an embedding (e.g. {list(self.roi_ids[:3])})",
                            "similar")
        return int(hits[0])


def load_embeddings(parquet: str | os.PathLike) -> EmbeddingTable:
    """Read a model's GeoParquet export; failed items, missing and non-finite embeddings are dropped."""
    import geopandas as gpd
    import shapely

    gdf = gpd.read_parquet(parquet)
    gdf = gdf[(gdf["status"] != "failed") & gdf["embedding"].notna()]
    vecs = [np.asarray(e, dtype=np.float32) for e in gdf["embedding"]]
    keep = np.array([np.isfinite(v).all() for v in vecs], dtype=bool)
    gdf = gdf[keep]
    vecs = [v for v, k in zip(vecs, keep) if k]
    xy = shapely.get_coordinates(shapely.centroid(gdf.geometry.to_numpy())) if len(gdf) else np.empty((0, 2))
    return EmbeddingTable(gdf["roi_id"].astype(str).to_numpy(), xy[:, 0], xy[:, 1],
                          np.stack(vecs) if vecs else np.empty((0, 1), np.float32))


def _search(table: EmbeddingTable, queries: np.ndarray, n: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` candidates per query row: ``(similarities, indices)`` sorted by similarity."""
    if method not in METHODS:
        raise SpecError("method", method, f"one of {METHODS}", "retrieval")
    n = min(n, len(table))
    if method == "ann" or (method == "auto" and len(table) >= ANN_MIN_ROWS):
        try:
            import faiss
        except ImportError as exc:
            raise ConfigError("approximate search needs faiss-cpu (pip install -r requirements/core.txt); "
                              "use method='exact'") from exc
        index = faiss.IndexHNSWFlat(table.vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * n)
        index.add(np.ascontiguousarray(table.vectors))
        sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), n)
        return sims, idx
    out_s = np.empty((len(queries), n), np.float32)
    out_i = np.empty((len(queries), n), np.int64)
    for a in range(0, len(queries), QUERY_BLOCK):  # bounded memory: QUERY_BLOCK x n_rows at a time
        sims = queries[a:a + QUERY_BLOCK] @ table.vectors.T
        idx = np.argsort(-sims, axis=1, kind="stable")[:, :n]
        out_s[a:a + QUERY_BLOCK], out_i[a:a + QUERY_BLOCK] = np.take_along_axis(sims, idx, axis=1), idx
    return out_s, out_i


def neighbours(table: EmbeddingTable, query_rows: Sequence[int], k: int, block_km: float | None = None,
               method: str = "auto") -> list[list[tuple[int, float]]]:
    """The ``k`` most similar ROIs of each query row, never the query itself.

    Args:
        table: Embeddings to search.
        query_rows: Row indices of the queries.
        k: Neighbours per query (>= 1).
        block_km: If given, candidates in the query's spatial block of this size are excluded.
        method: ``"exact"``, ``"ann"`` (faiss HNSW) or ``"auto"`` (ann from :data:`ANN_MIN_ROWS` rows).

    Returns:
        Per query, ``[(row, cosine), ...]`` best first (fewer than ``k`` if the table is short).
    """
    from eoembed.evaluate import spatial_blocks

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError("k", k, "an integer >= 1", "retrieval")
    rows = np.asarray(query_rows, dtype=int)
    blocks = spatial_blocks(table.lon, table.lat, block_km) if block_km is not None and len(table) else None
    out: list[list[tuple[int, float]]] = []
    want = k + 1
    while True:
        sims, idx = _search(table, table.vectors[rows], want, method)
        out = []
        for q, s_row, i_row in zip(rows, sims, idx):
            keep = [(int(i), float(s)) for i, s in zip(i_row, s_row)
                    if i >= 0 and i != q and (blocks is None or blocks[i] != blocks[q])]
            out.append(keep[:k])
        if all(len(o) == k for o in out) or want >= len(table):
            return out
        want = min(len(table), want * 4)  # blocks removed too many candidates: look further


def similar(parquet: str | os.PathLike, roi_id: str, k: int = 10, block_km: float | None = None,
            method: str = "auto") -> pd.DataFrame:
    """The ``k`` ROIs whose embeddings are most similar to ``roi_id``'s (cosine).

    Returns:
        A table ``rank, roi_id, cosine, lon, lat, distance_km`` (great-circle distance to the query).
    """
    table = load_embeddings(parquet)
    q = table.index_of(roi_id)
    hits = neighbours(table, [q], k, block_km, method)[0]
    rows = [i for i, _ in hits]
    lon0, lat0 = np.radians(table.lon[q]), np.radians(table.lat[q])
    lon1, lat1 = np.radians(table.lon[rows]), np.radians(table.lat[rows])
    hav = np.sin((lat1 - lat0) / 2) ** 2 + np.cos(lat0) * np.cos(lat1) * np.sin((lon1 - lon0) / 2) ** 2
    from eoembed.evaluate import EARTH_RADIUS_KM

    return pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "roi_id": table.roi_ids[rows],
                         "cosine": [s for _, s in hits], "lon": table.lon[rows], "lat": table.lat[rows],
                         "distance_km": 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(hav))})


def precision_at_k(table: EmbeddingTable, labels: Sequence[Any], k: int, block_km: float,
                   method: str = "auto") -> tuple[float, float, int]:
    """Mean share of same-label ROIs among each ROI's ``k`` neighbours outside its spatial block.

    Items without a label (NaN/None) are neither queries nor candidates. Queries with no
    candidate outside their block are skipped.

    Returns:
        ``(mean, std across queries, number of queries)``.
    """
    lab = pd.Series(list(labels), dtype=object)
    keep = lab.notna().to_numpy()
    sub = EmbeddingTable(table.roi_ids[keep], table.lon[keep], table.lat[keep], table.raw[keep])
    y = lab[keep].astype(str).to_numpy()
    if len(sub) < 2:
        return float("nan"), float("nan"), 0
    hits = neighbours(sub, np.arange(len(sub)), k, block_km, method)
    scores = np.array([np.mean([y[i] == y[q] for i, _ in h]) for q, h in enumerate(hits) if h])
    if not len(scores):
        return float("nan"), float("nan"), 0
    return float(scores.mean()), float(scores.std()), int(len(scores))


def run_retrieval(export_parquets: Mapping[str, str | os.PathLike], labels: pd.DataFrame,
                  targets: Sequence[Mapping[str, str]], k: int, block_km: float,
                  out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Retrieval benchmark of every model on every classification target, in the metrics layout.

    Rows use :data:`eoembed.evaluate.METRIC_COLUMNS` with ``task="retrieval"``,
    ``estimator="cosine_knn"``, ``metric="precision_at_<k>"``; ``std`` is across queries and
    ``n_folds`` is 0 (no folds: every labelled ROI is a query, its own block excluded).
    """
    from eoembed.evaluate import METRIC_COLUMNS

    if "roi_id" not in labels.columns:
        raise ConfigError(f"labels table has no 'roi_id' column; columns: {list(labels.columns)}")
    lab = labels.assign(roi_id=labels["roi_id"].astype(str)).drop_duplicates("roi_id").set_index("roi_id")
    rows = []
    for model, path in export_parquets.items():
        table = load_embeddings(path)
        for target in targets:
            if target.get("task") != "classification":
                continue
            column = target["column"]
            if column not in lab.columns:
                raise ConfigError(f"target column {column!r} not in labels; allowed: {list(lab.columns)}")
            y = lab[column].reindex(table.roi_ids).to_numpy(dtype=object)
            mean, std, n = precision_at_k(table, y, k, block_km)
            rows.append({"model": model, "target": column, "task": "retrieval", "estimator": "cosine_knn",
                         "metric": f"precision_at_{k}", "mean": mean, "std": std, "n_folds": 0, "n_items": n})
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    with atomic_output(out_tsv, ".tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False, lineterminator="\n")
    return df
