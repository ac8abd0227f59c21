# aggregate: every item x model record into one manifest table plus a run summary.
rule aggregate:
    input:
        lambda w: [p for m in MODELS for p in embed_paths(m)],
    output:
        table="results/manifest/items.tsv",
        summary="results/manifest/summary.json",
    params:
        code=code("aggregate"),
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/aggregate.py"
