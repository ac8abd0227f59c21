"""Snakemake script: the self-contained HTML report."""
from eoembed.logutil import setup_logging
from eoembed.report import write_report

setup_logging(snakemake.log[0])
write_report(snakemake.input.summary, snakemake.input.metrics or None, list(snakemake.input.figures),
             snakemake.output[0])
