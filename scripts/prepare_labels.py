"""Snakemake script: the ROI table from label rasters (SPAM2020 points inside a boundary)."""
from eoembed.labels import prepare_labels
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
prepare_labels(snakemake.params.labels, snakemake.output[0])
