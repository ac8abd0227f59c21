"""Snakemake script: PCA pseudo-RGB of one ROI's grid embedding for every model."""
from eoembed.logutil import setup_logging
from eoembed.plots import pca_rgb

setup_logging(snakemake.log[0])
pca_rgb({m: (path, snakemake.params.roi) for m, path in snakemake.input.items()}, snakemake.output[0])
