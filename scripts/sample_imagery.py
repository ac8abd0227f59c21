"""Snakemake script: generate the synthetic demo imagery and its STAC catalogue."""
from pathlib import Path

from eoembed.logutil import setup_logging
from eoembed.providers.sample import demo_sites, generate

setup_logging(snakemake.log[0])
catalog = Path(snakemake.output.catalog)
written = generate(catalog.parent, demo_sites(), year=snakemake.params.year,
                   dates_per_year=snakemake.params.dates_per_year)
assert Path(written).resolve() == catalog.resolve(), f"generator wrote {written}, expected {catalog}"
