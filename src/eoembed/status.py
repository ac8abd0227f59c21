"""``eoembed status``: where a running or finished workflow stands, from its chunk files.

Reads only the JSON records of ``results/{fetch,composite,embed}/<key>/<chunk>.npz`` (no
arrays) and prints, per stage and key (download spec, sensor or model): chunks written, items
ok / partial / failed, the stage's own time summed over items and its items/s, and the items
per second of wall clock between the first and last chunk written. The slowest stage is the
one with the most item time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eoembed.chunkio import META_KEY

__all__ = ["StageStatus", "format_status", "workflow_status"]

STAGES = (("fetch", "fetch_s"), ("composite", "composite_s"), ("embed", "embed_s"))


@dataclass
class StageStatus:
    stage: str
    key: str
    chunks: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    item_s: float = 0.0
    first_mtime: float | None = None
    last_mtime: float | None = None

    @property
    def items(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float | None:
        """Items per second of the stage's own time (None before any timed item)."""
        return self.items / self.item_s if self.item_s > 0 else None


def _records(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:  # only the metadata member is read
        return json.loads(npz[META_KEY].tobytes().decode())["records"]


def workflow_status(results: str | Path = "results") -> list[StageStatus]:
    """Per stage and key, what the chunk files under ``results`` say."""
    out = []
    for stage, timing in STAGES:
        for folder in sorted(p for p in (Path(results) / stage).glob("*") if p.is_dir()):
            st = StageStatus(stage, folder.name)
            for path in sorted(folder.glob("*.npz")):
                try:
                    records = _records(path)
                except (OSError, ValueError, KeyError):
                    continue  # being written or damaged: not counted
                mtime = path.stat().st_mtime
                st.first_mtime = min(mtime, st.first_mtime or mtime)
                st.last_mtime = max(mtime, st.last_mtime or mtime)
                st.chunks += 1
                for rec in records.values():
                    st.counts[rec.get("status", "?")] = st.counts.get(rec.get("status", "?"), 0) + 1
                    st.item_s += float((rec.get("timings") or {}).get(timing) or 0.0)
            out.append(st)
    return out


def format_status(stats: list[StageStatus]) -> str:
    """A table, one row per stage and key, then the slowest stage."""
    if not stats:
        return "no chunk files yet (results/fetch, results/composite, results/embed are empty)"
    rows = [f"{'stage':10s} {'key':28s} {'chunks':>6s} {'items':>7s} {'ok':>7s} {'partial':>7s} "
            f"{'failed':>7s} {'item s':>9s} {'items/s':>8s} {'wall items/s':>12s}"]
    for st in stats:
        rate = st.rate()
        span = (st.last_mtime or 0) - (st.first_mtime or 0)
        wall = f"{st.items / span:.1f}" if st.chunks > 1 and span > 0 else "-"
        rows.append(f"{st.stage:10s} {st.key[:28]:28s} {st.chunks:6d} {st.items:7d} "
                    f"{st.counts.get('ok', 0):7d} {st.counts.get('partial', 0):7d} "
                    f"{st.counts.get('failed', 0):7d} {st.item_s:9.1f} "
                    f"{(f'{rate:.1f}' if rate else '-'):>8s} {wall:>12s}")
    slow = max(stats, key=lambda s: s.item_s)
    rows.append(f"slowest stage: {slow.stage} {slow.key} ({slow.item_s:.1f} s of item time)")
    return "\n".join(rows)
