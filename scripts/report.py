"""Snakemake script: the self-contained HTML report (run summary)."""
from eoembed.logutil import setup_logging
from eoembed.report import write_report

setup_logging(snakemake.log[0])
metrics = snakemake.input.metrics
metrics = [metrics] if isinstance(metrics, str) else list(metrics)
write_report(snakemake.input.summary, metrics or None, list(snakemake.input.figures), snakemake.output[0])
