"""Snakemake script: the model-comparison figures (heatmap, embedding scatter, what each model saw)."""
from eoembed.figures.compare import embedding_scatter, score_heatmap, what_model_saw
from eoembed.logutil import setup_logging
from eoembed.table import load_table

setup_logging(snakemake.log[0])
out = snakemake.output.png
if snakemake.rule == "score_heatmap":
    score_heatmap(list(snakemake.input), out)
elif snakemake.rule == "embedding_scatter":
    embedding_scatter(dict(zip(snakemake.params.models, snakemake.input.parquets)),
                      load_table(snakemake.input.rois), snakemake.params.column, out)
else:
    what_model_saw(snakemake.params.composites, snakemake.params.roi, out)
