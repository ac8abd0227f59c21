"""Snakemake script: the embedding gallery (PCA top-3 pseudo-RGB per model, titled with (C, H, W))."""
import pandas as pd

from eoembed.figures.gallery import gallery
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
roi = snakemake.params.roi
items = pd.read_csv(snakemake.input.manifest, sep="\t", dtype=str, keep_default_na=False)
failed = items[(items["roi_id"] == roi) & (items["status"] == "failed")]
gallery(snakemake.params.grids, roi, snakemake.output.png,
        errors=dict(zip(failed["model"], failed["stage"] + ": " + failed["error"])),
        title=snakemake.params.title)
