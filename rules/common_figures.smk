# Shared state and input functions of the figure, report and paper rules (rules/figures.smk,
# rules/paper.smk). Nothing here runs a job.
# the configured ROI, else the smallest id: independent of the table's row order
FIGURE_ROI = config["figures"]["pca_roi"] or (min(ROI_IDS) if ROI_IDS else None)
MODEL_CAT = "Models"  # report category of per-model figures (subcategory = model id)


def chunk_of(roi):
    return CHUNK_OF[roi]


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


MAIZE = config["paper"].get("maize")
GALLERY = config["paper"].get("gallery")
SPLITS = {"spatial_cv": "results/benchmark/{}.tsv", "random_80_20": "results/benchmark/holdout_{}.tsv"}
SPLIT_TEXT = {"spatial_cv": "spatial block CV", "random_80_20": "random 80/20 holdout"}
PAPER_CAT = "Paper"


def paper_targets():
    targets = []
    if MAIZE:
        targets += ["results/benchmark/holdout_metrics.tsv", "results/paper/maize/fig7_overview.png",
                    "results/paper/maize/fig8_imagery.png"]
        targets += [f"results/paper/maize/fig{n}_{s}.png" for n in ("4_scores", "5_maps") for s in SPLITS]
    if GALLERY and FIGURE_ROI is not None:
        targets.append(f"results/paper/{GALLERY['name']}.png")
    return targets


def gallery_roi():
    return (GALLERY or {}).get("roi") or FIGURE_ROI


def gallery_grids(wildcards=None):
    """Per model: its grid file of the gallery ROI's chunk, or None without grid output."""
    chunk = chunk_of(gallery_roi())
    return {m: f"results/export/{m}/grid/{chunk}.nc" if wants_grid(m) else None for m in MODELS}
