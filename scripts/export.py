"""Snakemake script: one model's pooled embeddings to GeoParquet and CF NetCDF."""
from eoembed.export import export_pooled
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
export_pooled(snakemake.input, snakemake.output.parquet, snakemake.output.netcdf)
