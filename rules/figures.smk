# Figures and reports. Every figure is marked for Snakemake's report (`snakemake --report
# report.html`) with an RST caption from report/; the hand-written results/report.html is the run
# summary (items, failures, versions) and is itself part of that report.
FIGURE_ROI = config["figures"]["pca_roi"] or (ROI_IDS[0] if ROI_IDS else None)
MODEL_CAT = "Models"  # report category of per-model figures (subcategory = model id)


def chunk_of(roi):
    return next(c for c, members in CHUNKS.items() if roi in members)


def model_composite(model, chunk):
    """The composite chunk a model reads ('' for precomputed products)."""
    return composite_path(sensor_of(model).key(), chunk) if on_the_fly(model) else ""


def quicklook_sensor():
    """The sensor whose composites give quick-looks in retrieval figures (first on-the-fly model's)."""
    return next((sensor_of(m) for m in MODELS if on_the_fly(m)), None)


def classification_targets():
    return [t for t in benchmark_targets() if t["task"] == "classification"]


def scatter_column():
    """Label colouring the embedding scatter: the first classification target, else the first target."""
    targets = classification_targets() or benchmark_targets()
    return targets[0]["column"] if targets else None


def metric_tables():
    return ["results/benchmark/metrics.tsv"] + (
        ["results/benchmark/retrieval.tsv"] if classification_targets() else [])


def pca_inputs(wildcards):
    """For each grid-capable model, the grid file of the chosen ROI's chunk."""
    return {m: f"results/export/{m}/grid/{chunk_of(FIGURE_ROI)}.nc" for m in MODELS if wants_grid(m)}


def report_figures(wildcards=None):
    """Figures of the run, in report order (also embedded in results/report.html)."""
    figs = []
    if benchmark_targets():
        figs += ["results/figures/metrics.png", "results/figures/pred_vs_true.png",
                 "results/figures/score_heatmap.png", "results/figures/embedding_scatter.png"]
    if any(wants_grid(m) for m in MODELS):
        figs.append("results/figures/pca_rgb.png")
    if FIGURE_ROI is not None:
        figs.append("results/figures/what_model_saw.png")
        if quicklook_sensor() is not None and len(ROI_IDS) > 1:  # retrieval needs neighbours
            figs += [f"results/figures/retrieval/{m}.png" for m in MODELS]
    return figs


def figure_targets():
    return (metric_tables() if benchmark_targets() else []) + report_figures()


rule figures:
    input:
        metrics="results/benchmark/metrics.tsv",
        predictions="results/benchmark/predictions.tsv",
    output:
        bars=report("results/figures/metrics.png", caption="../report/metrics.rst", category="Benchmark",
                    subcategory="Scores", labels={"figure": "metric bars"}),
        scatter=report("results/figures/pred_vs_true.png", caption="../report/pred_vs_true.rst",
                       category="Benchmark", subcategory="Scores", labels={"figure": "predicted vs observed"}),
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
    log:
        "results/logs/pca_figure.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/pca_figure.py"


rule report:
    input:
        summary="results/manifest/summary.json",
        metrics="results/benchmark/metrics.tsv" if benchmark_targets() else [],
        figures=report_figures,
    output:
        report("results/report.html", caption="../report/run_summary.rst", category="Run summary",
               labels={"page": "run summary"}),
    log:
        "results/logs/report.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"
