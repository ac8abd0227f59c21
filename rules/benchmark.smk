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


# retrieval: precision@k of same-label neighbours (cosine), each ROI's own spatial block excluded.
rule retrieval:
    input:
        parquets=lambda w: [f"results/export/{m}/embeddings.parquet" for m in MODELS],
        rois=config["rois"],
    output:
        report(
            "results/benchmark/retrieval.tsv",
            caption="../report/retrieval_table.rst",
            category="Benchmark",
            subcategory="Retrieval",
            labels={"table": "retrieval precision@k"},
        ),
    params:
        models=list(MODELS),
        benchmark=config["benchmark"],
    log:
        "results/logs/retrieval.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/retrieval.py"
