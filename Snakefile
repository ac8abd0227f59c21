# eoembed: ROIs x time windows x models -> standardized Earth-observation embeddings.
#
#   snakemake --cores 2                      # run (profiles/default is picked up automatically)
#   snakemake -n                             # dry run: what would run
#   eoembed rerun-failed --cores 2           # recompute only failed items (see README)
from snakemake.utils import min_version, validate

min_version("9.0")


# The demo config is the default only: a --configfile replaces it (it is not merged into it, so the
# demo's models, sample imagery and catalogue never leak into a paper or user config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/common_figures.smk"
include: "rules/sample.smk"
include: "rules/fetch.smk"
include: "rules/composite.smk"
include: "rules/embed.smk"
include: "rules/export.smk"
include: "rules/aggregate.smk"
include: "rules/benchmark.smk"
include: "rules/figures.smk"
include: "rules/paper.smk"


# Light steps run where Snakemake runs: exports stream one chunk at a time (100,000 ROIs in
# ~280 MB, benchmarks/export_memory.py), aggregate reads records only. The benchmark (model
# fits) is a cluster job.
localrules:
    all,
    export,
    export_grid,
    aggregate,
    figures,
    pca_figure,
    score_heatmap,
    embedding_scatter,
    what_model_saw,
    retrieval_figure,
    retrieval,
    holdout_benchmark,
    maize_scores,
    maize_overview,
    gallery,
    report,


rule all:
    input:
        all_targets(),
    default_target: True
