# Figures and reports. Every figure is marked for Snakemake's report (`snakemake --report
# report.html`) with an RST caption from report/; the hand-written results/report.html is the run
# summary (items, failures, versions) and is itself part of that report.


rule figures:
    input:
        metrics="results/benchmark/metrics.tsv",
        predictions="results/benchmark/predictions.tsv",
    output:
        bars=report("results/figures/metrics.png", caption="../report/metrics.rst", category="Benchmark",
                    subcategory="Scores", labels={"figure": "metric bars"}),
        scatter=report("results/figures/pred_vs_true.png", caption="../report/pred_vs_true.rst",
                       category="Benchmark", subcategory="Scores", labels={"figure": "predicted vs observed"}),
    params:
        code=code("figures"),
    log:
        "results/logs/figures.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figures.py"


rule score_heatmap:
    input:
        metric_tables(),
    output:
        png=report("results/figures/score_heatmap.png", caption="../report/score_heatmap.rst",
                   category="Benchmark", subcategory="Comparison", labels={"figure": "model x task heatmap"}),
        data="results/figures/score_heatmap.data.json",
    log:
        "results/logs/score_heatmap.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figure_compare.py"


rule embedding_scatter:
    input:
        parquets=[f"results/export/{m}/embeddings.parquet" for m in MODELS],
        rois=config["rois"],
    output:
        png=report("results/figures/embedding_scatter.png", caption="../report/embedding_scatter.rst",
                   category="Benchmark", subcategory="Comparison", labels={"figure": "embedding PCA scatter"}),
        data="results/figures/embedding_scatter.data.json",
    params:
        models=list(MODELS),
        column=scatter_column(),
    log:
        "results/logs/embedding_scatter.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figure_compare.py"


rule what_model_saw:
    input:
        lambda w: [p for m in MODELS if (p := model_composite(m, chunk_of(FIGURE_ROI)))],
    output:
        png=report("results/figures/what_model_saw.png", caption="../report/what_model_saw.rst",
                   category="Benchmark", subcategory="Comparison", labels={"figure": "what each model saw"}),
        data="results/figures/what_model_saw.data.json",
    params:
        roi=FIGURE_ROI,
        composites=lambda w: {m: model_composite(m, chunk_of(FIGURE_ROI)) for m in MODELS},
    log:
        "results/logs/what_model_saw.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figure_compare.py"


rule retrieval_figure:
    input:
        parquet="results/export/{model}/embeddings.parquet",
        composites=lambda w: [composite_path(quicklook_sensor().key(), c) for c in CHUNKS],
    output:
        png=report("results/figures/retrieval/{model}.png", caption="../report/retrieval_figure.rst",
                   category=MODEL_CAT, subcategory="{model}", labels={"model": "{model}", "figure": "retrieval"}),
        data="results/figures/retrieval/{model}.data.json",
    params:
        roi=FIGURE_ROI,
        k=config["figures"]["retrieval_k"],
        block_km=config["benchmark"]["block_km"],
    log:
        "results/logs/retrieval_figure/{model}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figure_retrieval.py"


rule pca_figure:
    input:
        unpack(pca_inputs),
    output:
        report("results/figures/pca_rgb.png", caption="../report/pca_rgb.rst", category="Benchmark",
               subcategory="Comparison", labels={"figure": "grid embeddings, PCA RGB"}),
    params:
        roi=FIGURE_ROI,
        code=code("pca_figure"),
    log:
        "results/logs/pca_figure.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/pca_figure.py"


rule report:
    input:
        summary="results/manifest/summary.json",
        metrics=metric_tables() if benchmark_targets() else [],
        figures=report_figures,
    output:
        report("results/report.html", caption="../report/run_summary.rst", category="Run summary",
               labels={"page": "run summary"}),
    params:
        code=code("report"),
    log:
        "results/logs/report.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"
