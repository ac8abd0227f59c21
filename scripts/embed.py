"""Snakemake script: embed one chunk with one model, loaded once and run batched."""
from eoembed.workflow import run_embed_job
from eoembed.logutil import setup_logging

setup_logging(snakemake.log[0])
run_embed_job(
    model_id=snakemake.wildcards.model,
    chunk=snakemake.wildcards.chunk,
    composite_path=(list(snakemake.input) if len(snakemake.input) > 1 else snakemake.input[0]) if len(snakemake.input) else None,
    out_path=snakemake.output[0],
    requests=snakemake.params.requests,
    model_cfg=snakemake.params.model,
    sensor=snakemake.params.sensor,
    output_cfg=snakemake.params.output,
    weights_cfg=snakemake.params.weights,
)
