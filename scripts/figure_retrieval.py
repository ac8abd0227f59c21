"""Snakemake script: one model's retrieval figure (query quick-look + top-k quick-looks)."""
from eoembed.figures.retrieval import retrieval_figure
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
retrieval_figure(snakemake.input.parquet, list(snakemake.input.composites), snakemake.params.roi,
                 snakemake.output.png, k=snakemake.params.k, block_km=snakemake.params.block_km,
                 model=snakemake.wildcards.model)
