"""Snakemake script: the maize-yield paper figures (Figs. 4 + 5 per split, or Figs. 7 + 8)."""
from eoembed.figures.maize import fig4_scores, fig5_maps, fig7_overview, fig8_imagery
from eoembed.logutil import setup_logging
from eoembed.table import load_table

setup_logging(snakemake.log[0])
cfg = snakemake.params.maize
rois = load_table(snakemake.input.rois)
if snakemake.rule == "maize_scores":
    split = snakemake.params.split
    fig4_scores(snakemake.input.metrics, snakemake.input.predictions, cfg["target"], cfg["estimator"],
                snakemake.output.fig4, split, top_n=cfg["top_n"])
    fig5_maps(snakemake.input.predictions, rois, cfg["target"], cfg["estimator"], snakemake.output.fig5, split)
else:
    fig7_overview(rois, cfg["target"], cfg["area_column"], snakemake.output.fig7)
    fig8_imagery(list(snakemake.input.composites), rois, cfg["target"], snakemake.output.fig8, n=cfg["n_imagery"])
