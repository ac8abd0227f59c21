"""Snakemake script: spatially blocked retrieval benchmark (precision@k) of every model."""
from eoembed.logutil import setup_logging
from eoembed.retrieval import run_retrieval
from eoembed.table import load_table

setup_logging(snakemake.log[0])
cfg = snakemake.params.benchmark
run_retrieval(dict(zip(snakemake.params.models, snakemake.input.parquets)), load_table(snakemake.input.rois),
              cfg["targets"], cfg["retrieval_k"], cfg["block_km"], snakemake.output[0])
