"""Snakemake script: seeded random train/test holdout of every model (beside spatial block CV)."""
from eoembed.holdout import run_holdout
from eoembed.logutil import setup_logging
from eoembed.table import load_table

setup_logging(snakemake.log[0])
run_holdout(dict(zip(snakemake.params.models, snakemake.input.parquets)), load_table(snakemake.input.rois),
            snakemake.params.targets, snakemake.params.estimators, snakemake.params.test_fraction,
            snakemake.params.seed, snakemake.output.metrics, snakemake.output.predictions)
