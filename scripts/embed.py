"""Snakemake script: embed one chunk with one model, loaded once and run batched.

The model's device and batch size, the weights directory and allow_download come from
``snakemake.config`` (they are no rerun trigger); the params hold what changes the output."""
from eoembed.logutil import setup_logging
from eoembed.workflow import run_embed_job

setup_logging(snakemake.log[0])
model = snakemake.wildcards.model
run_embed_job(
    model_id=model,
    chunk=snakemake.wildcards.chunk,
    composite_path=(list(snakemake.input) if len(snakemake.input) > 1 else snakemake.input[0]) if len(snakemake.input) else None,
    out_path=snakemake.output[0],
    requests=snakemake.params.requests,
    model_cfg=snakemake.config["models"][model],
    sensor=snakemake.params.sensor,
    output_cfg=snakemake.params.output,
    weights_cfg=snakemake.config.get("weights") or {},
    code=snakemake.params.code,
)
