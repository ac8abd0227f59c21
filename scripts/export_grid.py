"""Snakemake script: one chunk's grid embeddings to NetCDF (one CF group per ROI)."""
from eoembed.export_grid import export_grid_netcdf
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
export_grid_netcdf(snakemake.input[0], snakemake.output[0])
