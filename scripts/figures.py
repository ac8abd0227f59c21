"""Snakemake script: metric bars and predicted-vs-true figures."""
from eoembed.logutil import setup_logging
from eoembed.plots import metric_bars, pred_vs_true

setup_logging(snakemake.log[0])
metric_bars(snakemake.input.metrics, snakemake.output.bars)
pred_vs_true(snakemake.input.predictions, snakemake.output.scatter)
