# benchmark: spatially blocked cross-validated regression/classification per model.
rule benchmark:
    input:
        parquets=lambda w: [f"results/export/{m}/embeddings.parquet" for m in MODELS],
        rois=ancient(config["rois"]),
    output:
        metrics="results/benchmark/metrics.tsv",
        predictions="results/benchmark/predictions.tsv",
    params:
        models=list(MODELS),
        benchmark=config["benchmark"],
        labels=lambda w: labels_key(),
        code=code("benchmark"),
    log:
        "results/logs/benchmark.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/benchmark.py"
