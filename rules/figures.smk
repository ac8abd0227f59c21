# figures and report: metric bars, predicted-vs-true scatter, PCA pseudo-RGB, HTML report.
rule figures:
    input:
        metrics="results/benchmark/metrics.tsv",
        predictions="results/benchmark/predictions.tsv",
    output:
        bars="results/figures/metrics.png",
        scatter="results/figures/pred_vs_true.png",
    params:
        code=code("figures"),
    log:
        "results/logs/figures.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/figures.py"


rule pca_figure:
    input:
        unpack(pca_inputs),
    output:
        "results/figures/pca_rgb.png",
    params:
        roi=pca_roi(),
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
        metrics="results/benchmark/metrics.tsv" if benchmark_targets() else [],
        figures=report_figures,
    output:
        "results/report.html",
    params:
        code=code("report"),
    log:
        "results/logs/report.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"
