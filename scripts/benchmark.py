"""Snakemake script: spatially blocked cross-validated benchmarks of every model."""
from eoembed.evaluate import run_benchmarks
from eoembed.logutil import setup_logging
from eoembed.table import load_table

setup_logging(snakemake.log[0])
cfg = snakemake.params.benchmark
run_benchmarks(dict(zip(snakemake.params.models, snakemake.input.parquets)), load_table(snakemake.input.rois),
               cfg["targets"], cfg["block_km"], snakemake.output.metrics, snakemake.output.predictions,
               n_splits=cfg["n_splits"], seed=cfg["seed"], buffer_km=cfg["buffer_km"])
