"""A single self-contained HTML report of a run: summary, failures, metrics, figures, versions.

Figures are embedded as base64 PNG data URIs and every piece of text from the run (ids,
error messages, model names) is HTML-escaped, so the page can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from eoembed.chunkio import atomic_output

__all__ = ["write_report"]

STATUS_ORDER = ("ok", "partial", "failed", "all")
TIMING_ORDER = ("fetch_s", "composite_s", "embed_s")

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}
.failed{color:#a00}.ok{color:#070}.partial{color:#a60}figure{margin:1em 0}img{max-width:100%}
code{font-size:90%}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "" if f != f else f"{f:.{digits}g}"


def _summary_section(summary: dict[str, Any]) -> str:
    totals = summary.get("totals", {})
    order = [k for k in STATUS_ORDER if k in totals] + [k for k in totals if k not in STATUS_ORDER]
    parts = ["<h2>Run summary</h2>",
             _table(["status", "items"], [(k, totals[k]) for k in order], numeric=(1,))]
    counts = summary.get("counts", {})
    if counts:
        statuses = list(STATUS_ORDER[:3])
        parts += ["<h3>Items per model and status</h3>",
                  _table(["model", *statuses],
                         [(m or "(no model)", *(c.get(s, 0) for s in statuses)) for m, c in counts.items()],
                         numeric=(1, 2, 3))]
    timings = summary.get("timings_s", {})
    timed = [k for k in TIMING_ORDER if k in timings] + sorted(k for k in timings if k not in TIMING_ORDER)
    facts = [("wall time (s)", _fmt(summary.get("wall_time_s"), 4)),
             ("cached items", summary.get("cached", "")),
             *((f"sum of {k.removesuffix('_s')} time (s)", _fmt(timings[k], 4)) for k in timed)]
    parts.append(_table(["quantity", "value"], facts, numeric=(1,)))
    failed = summary.get("failed", [])
    parts.append(f"<h3>Failed items ({len(failed)})</h3>")
    if failed:
        parts.append(_table(["roi_id", "model", "stage", "error"],
                            [(f.get("roi_id"), f.get("model"), f.get("stage"), f.get("error"))
                             for f in failed]))
    else:
        parts.append("<p>None.</p>")
    return "\n".join(parts)


def _metrics_section(metrics_tsv: str | os.PathLike | Sequence[str | os.PathLike] | None) -> str:
    parts = ["<h2>Benchmark metrics</h2>"]
    paths = [metrics_tsv] if isinstance(metrics_tsv, (str, os.PathLike)) else list(metrics_tsv or [])
    paths = [p for p in paths if Path(p).exists()]
    if not paths:
        return parts[0] + "<p>No metrics file.</p>"
    df = pd.concat([pd.read_csv(p, sep="\t", dtype={"model": str, "target": str, "estimator": str})
                    for p in paths], ignore_index=True)
    if df.empty:
        return parts[0] + "<p>No metrics (no labelled targets).</p>"
    parts.append("<p>Spatial block cross-validation: mean \u00b1 standard deviation across folds. "
                 "Retrieval rows (task <code>retrieval</code>): precision@k of same-label neighbours, "
                 "each ROI's own spatial block excluded, mean \u00b1 SD across query ROIs.</p>")
    rows = [(r.model, r.target, r.task, r.estimator, r.metric, f"{r.mean:.3f} \u00b1 {r.std:.3f}",
             r.n_folds, r.n_items) for r in df.itertuples()]
    parts.append(_table(["model", "target", "task", "estimator", "metric", "mean \u00b1 SD", "folds",
                         "items"], rows, numeric=(5, 6, 7)))
    return "\n".join(parts)


def _figures_section(figure_paths: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> str:
    items = (list(figure_paths.items()) if isinstance(figure_paths, Mapping)
             else [(Path(p).stem.replace("_", " "), p) for p in figure_paths])
    parts = ["<h2>Figures</h2>"]
    for caption, path in items:
        p = Path(path)
        if not p.is_file():
            parts.append(f'<p class="failed">Figure missing: <code>{_e(p)}</code></p>')
            continue
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    if len(parts) == 1:
        parts.append("<p>No figures.</p>")
    return "\n".join(parts)


def _versions_section(versions: dict[str, Any]) -> str:
    if not versions:
        return "<h2>Versions</h2><p>Not recorded.</p>"
    rows = [(k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in versions.items()]
    return "<h2>Versions</h2>" + _table(["package", "version"], rows)


def write_report(summary_json: str | os.PathLike,
                 metrics_tsv: str | os.PathLike | Sequence[str | os.PathLike] | None,
                 figure_paths: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
                 out_html: str | os.PathLike, title: str = "eoembed run report") -> None:
    """Write a self-contained HTML report (atomically).

    Args:
        summary_json: Summary written by :func:`eoembed.manifest.aggregate`.
        metrics_tsv: Metrics written by :func:`eoembed.evaluate.run_benchmarks`, or several
            tables in that layout (e.g. plus :func:`eoembed.retrieval.run_retrieval`'s), shown as
            one table (``None`` or missing files give a note instead of a table).
        figure_paths: PNG files to embed, as ``{caption: path}`` or a list of paths (caption =
            file name). Missing files are listed, not fatal.
        out_html: Destination ``.html``.
        title: Page title.
    """
    summary = json.loads(Path(summary_json).read_text())
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    models = ", ".join(summary.get("models", [])) or "none"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>Models: {_e(models)}. Report written {_e(created)}; run summary from {_e(summary.get("created", "?"))}.</p>
{_summary_section(summary)}
{_metrics_section(metrics_tsv)}
{_figures_section(figure_paths)}
{_versions_section(summary.get("versions", {}))}
</body></html>
"""
    with atomic_output(out_html, ".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
