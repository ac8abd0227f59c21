"""Snakemake script: every item x model record into the manifest table and run summary."""
from eoembed.logutil import setup_logging
from eoembed.manifest import aggregate

setup_logging(snakemake.log[0])
aggregate({"embed": list(snakemake.input)}, snakemake.output.table, snakemake.output.summary)
