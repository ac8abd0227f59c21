"""Command line: ``eoembed <command>``.

Commands:
    models                 list registered models with their cards' key facts
    card ID                print one model card as JSON
    validate               check the config and the whole ROI table (every problem at once)
    weights status         what each configured model needs and whether it is present
    sample                 write the demo ROI table (labels from generated imagery)
    failed                 list the stage files a rerun of failed items would recompute
    rerun-failed [ARGS]    run snakemake recomputing only failed items (ARGS go to snakemake)
    inspect                what a provider returns for one ROI (scenes, cloud, valid fraction, quick-look)
    similar                the ROIs whose embeddings are most similar to one ROI's (cosine)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from eoembed.errors import EoembedError


def _inputs_summary(card) -> str:
    """What a model eats, one short phrase: ``s2:12b@10m`` per input (``x1-24t``: 1 to 24 frames;
    ``+`` between inputs),
    ``lat/lon`` for a location encoder, ``precomputed`` for a product."""
    if card.kind == "location":
        return "lat/lon"
    if card.kind == "precomputed":
        return "precomputed"
    parts = []
    for spec in card.inputs:
        lo, hi = spec.time.min_frames, spec.time.max_frames
        frames = "" if hi == 1 else f"x{hi}t" if lo == hi else f"x{lo}-{hi}t"
        parts.append(f"{spec.modality}:{len(spec.bands)}b@{spec.gsd_m:g}m{frames}")
    return "+".join(parts) or "-"


def _weights_source(card) -> str:
    """The host(s) the published weights come from (``none``: weight-free model or a product)."""
    from urllib.parse import urlparse

    hosts = sorted({urlparse(w.url).netloc or w.url for w in card.weights})
    return ",".join(hosts) if hosts else "none"


def _cmd_models(args: argparse.Namespace) -> int:
    from eoembed.models.registry import get_card, model_ids

    header = ("id", "family", "kind", "dims", "inputs", "outputs", "verified", "weights", "licence")
    rows = []
    for mid in model_ids():
        c = get_card(mid)
        rows.append((c.id, c.family, c.kind, str(c.dims), _inputs_summary(c), ",".join(c.outputs),
                     getattr(c, "verified", "-"), _weights_source(c), c.licence or "-"))
    if args.markdown:  # the table docs/models.md embeds (tests/test_cli.py keeps the two equal)
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(f"`{v}`" if i == 0 else v.replace("|", "/") for i, v in enumerate(r)) + " |")
        return 0
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for r in (header, *rows):
        print("  ".join(f"{v:>{w}}" if i == 3 else f"{v:<{w}}" for i, (v, w) in enumerate(zip(r, widths)))
              + "  " + r[-1])
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from eoembed.models.registry import get_card

    print(json.dumps(get_card(args.model).to_dict(), indent=2))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from eoembed.config import load_config
    from eoembed.table import load_table

    from eoembed.validate import validate_run

    config = load_config(args.config, check=False)  # cross-key checks run below, with the table's windows
    table = load_table(config["rois"])
    rows = validate_run(config, table)
    print(f"{'model':<16} {'kind':<11} {'sensor':<10} {'fetch key':<17} composite key")
    for r in rows:
        print(f"{r['model']:<16} {r['kind']:<11} {r['sensor'] or '-':<10} {r['fetch_key'] or '-':<17} "
              f"{r['composite_key'] or '-'}")
    fetches = {r["fetch_key"] for r in rows if r["fetch_key"]}
    print(f"ok: {args.config} and {config['rois']} ({len(table)} ROIs, {len(rows)} model(s), "
          f"{len(fetches)} distinct download(s))")
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from eoembed.config import load_config
    from eoembed.models.registry import get_card
    from eoembed.weights import format_status, status

    config = load_config(args.config)
    entries = []
    for mid, m in config["models"].items():
        for wf in get_card(mid).weights:
            entries.append((mid, wf, (m.get("weights") or {}).get(wf.name)))
    if not entries:
        print("no configured model needs weights")
        return 0
    rows = status(entries, cache_dir=config["weights"]["dir"])
    print(format_status(rows))
    return 0 if all(r["present"] and r["sha_ok"] is not False for r in rows) else 1


def _cmd_sample(args: argparse.Namespace) -> int:
    from eoembed.demo import write_demo_table

    path = write_demo_table(args.rois, args.out, year=args.year, dates_per_year=args.dates_per_year)
    print(f"wrote {path}")
    return 0


def _failed_files(config_path: str, manifest: str) -> list[str]:
    from eoembed.config import load_config
    from eoembed.workflow import failed_stage_files

    if not Path(manifest).exists():
        raise EoembedError(f"no manifest at {manifest}: run the workflow first (snakemake --cores N)")
    return failed_stage_files(manifest, load_config(config_path))


def _cmd_failed(args: argparse.Namespace) -> int:
    for path in _failed_files(args.config, args.manifest):
        print(path)
    return 0


def _cmd_rerun_failed(args: argparse.Namespace) -> int:
    files = _failed_files(args.config, args.manifest)
    if not files:
        print("no failed items in", args.manifest, "- nothing to rerun")
        return 0
    snakemake = shutil.which("snakemake") or "snakemake"
    extra = args.snakemake_args[1:] if args.snakemake_args[:1] == ["--"] else args.snakemake_args
    cmd = [snakemake, "--configfile", args.config, *extra, "--forcerun", *files]
    print("rerunning", len(files), "stage file(s) with failed items:\n  " + "\n  ".join(files), flush=True)
    return subprocess.call(cmd)


def _cmd_status(args: argparse.Namespace) -> int:
    from eoembed.status import format_status, workflow_status

    print(format_status(workflow_status(args.results)))
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from eoembed.retrieval import similar

    parquet = args.parquet or str(Path(args.results) / "export" / args.model / "embeddings.parquet")
    if not Path(parquet).exists():
        raise EoembedError(f"no export of model {args.model!r} at {parquet}: run the workflow first "
                           "(snakemake --cores N) or pass --parquet")
    hits = similar(parquet, args.roi, k=args.k, block_km=args.block_km, method=args.method)
    print(hits.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eoembed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list registered models")
    m.add_argument("--markdown", action="store_true", help="a Markdown table (as in docs/models.md)")
    m.set_defaults(fn=_cmd_models)
    c = sub.add_parser("card", help="print a model card")
    c.add_argument("model")
    c.set_defaults(fn=_cmd_card)
    for name, fn, hlp in (("validate", _cmd_validate, "validate config + ROI table"),):
        s = sub.add_parser(name, help=hlp)
        s.add_argument("--config", default="config/config.yaml")
        s.set_defaults(fn=fn)
    w = sub.add_parser("weights", help="weights of the configured models")
    w.add_argument("action", choices=["status"])
    w.add_argument("--config", default="config/config.yaml")
    w.set_defaults(fn=_cmd_weights)
    s = sub.add_parser("sample", help="write the demo ROI table with labels from generated imagery")
    s.add_argument("--rois", default="config/rois.tsv")
    s.add_argument("--out", default="resources/sample")
    s.add_argument("--year", type=int, default=2023)
    s.add_argument("--dates-per-year", type=int, default=6)
    s.set_defaults(fn=_cmd_sample)
    st = sub.add_parser("status", help="items done / failed per stage, throughput, slowest stage")
    st.add_argument("--results", default="results", help="the workflow's results folder")
    st.set_defaults(fn=_cmd_status)
    from eoembed.inspect import add_cli as add_inspect

    add_inspect(sub)
    s = sub.add_parser("similar", help="ROIs most similar to one ROI (cosine of pooled embeddings)")
    s.add_argument("--model", required=True, help="model id (its export under RESULTS/export/MODEL)")
    s.add_argument("--roi", required=True, help="roi_id of the query")
    s.add_argument("-k", type=int, default=10, help="neighbours to list (default 10)")
    s.add_argument("--results", default="results", help="the workflow's results directory")
    s.add_argument("--parquet", default=None, help="an embeddings.parquet export (overrides --results)")
    s.add_argument("--block-km", type=float, default=None,
                   help="exclude ROIs in the query's spatial block of this size (km)")
    s.add_argument("--method", choices=["auto", "exact", "ann"], default="auto",
                   help="exact cosine, faiss HNSW (ann) or auto (ann for large tables)")
    s.set_defaults(fn=_cmd_similar)
    for name, fn in (("failed", _cmd_failed), ("rerun-failed", _cmd_rerun_failed)):
        s = sub.add_parser(name, help="failed items: list / recompute them")
        s.add_argument("--config", default="config/config.yaml")
        s.add_argument("--manifest", default="results/manifest/items.tsv")
        if name == "rerun-failed":
            s.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                           help="arguments passed to snakemake, e.g. --cores 2")
        s.set_defaults(fn=fn)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except EoembedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
