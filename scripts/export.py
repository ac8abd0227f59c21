"""Snakemake script: one model's pooled embeddings to GeoParquet and CF NetCDF."""
from eoembed.export import export_geoparquet, export_netcdf
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
export_geoparquet(snakemake.input, snakemake.output.parquet)
export_netcdf(snakemake.input, snakemake.output.netcdf)
