# Paper figure reproductions (config/paper/*.yaml): label preparation from SPAM rasters, the
# maize-yield figures (Figs. 4, 5, 7, 8) under two splits, and the embedding gallery (Fig. 6;
# a tile-mode config gives Fig. 9 from the same rule).
MAIZE = config["paper"].get("maize")
GALLERY = config["paper"].get("gallery")
SPLITS = {"spatial_cv": "results/benchmark/{}.tsv", "random_80_20": "results/benchmark/holdout_{}.tsv"}
SPLIT_TEXT = {"spatial_cv": "spatial block CV", "random_80_20": "random 80/20 holdout"}
PAPER_CAT = "Paper"


wildcard_constraints:
    split="|".join(SPLITS),
    name=r"[A-Za-z0-9_]+",


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


if config.get("labels"):

    rule prepare_labels:
        input:
            yield_tif=config["labels"]["yield_tif"],
            area_tif=config["labels"]["harvested_area_tif"],
            boundary=config["labels"]["boundary"],
        output:
            config["rois"],
        params:
            labels=config["labels"],
        log:
            "results/logs/prepare_labels.log",
        conda:
            "../envs/core.yaml"
        script:
            "../scripts/prepare_labels.py"


rule holdout_benchmark:
    input:
        parquets=[f"results/export/{m}/embeddings.parquet" for m in MODELS],
        rois=config["rois"],
    output:
        metrics=report("results/benchmark/holdout_metrics.tsv", caption="../report/holdout_table.rst",
                       category="Benchmark", subcategory="Random holdout", labels={"table": "holdout metrics"}),
        predictions="results/benchmark/holdout_predictions.tsv",
    params:
        models=list(MODELS),
        targets=config["benchmark"]["targets"],
        estimators=[(MAIZE or {}).get("estimator", "random_forest")],
        test_fraction=(MAIZE or {}).get("test_fraction", 0.2),
        seed=(MAIZE or {}).get("seed", 0),
    log:
        "results/logs/holdout_benchmark.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/holdout.py"


rule maize_scores:
    input:
        metrics=lambda w: SPLITS[w.split].format("metrics"),
        predictions=lambda w: SPLITS[w.split].format("predictions"),
        rois=config["rois"],
    output:
        fig4=report("results/paper/maize/fig4_scores_{split}.png", caption="../report/maize_fig4.rst",
                    category=PAPER_CAT, subcategory="Maize yield", labels={"figure": "Fig. 4", "split": "{split}"}),
        fig5=report("results/paper/maize/fig5_maps_{split}.png", caption="../report/maize_fig5.rst",
                    category=PAPER_CAT, subcategory="Maize yield", labels={"figure": "Fig. 5", "split": "{split}"}),
        data4="results/paper/maize/fig4_scores_{split}.data.json",
        data5="results/paper/maize/fig5_maps_{split}.data.json",
    params:
        maize=MAIZE,
        split=lambda w: SPLIT_TEXT[w.split],
    log:
        "results/logs/maize_scores_{split}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/maize_figures.py"


rule maize_overview:
    input:
        rois=config["rois"],
        composites=lambda w: [composite_path(quicklook_sensor().key(), c) for c in CHUNKS],
    output:
        fig7=report("results/paper/maize/fig7_overview.png", caption="../report/maize_fig7.rst",
                    category=PAPER_CAT, subcategory="Maize yield", labels={"figure": "Fig. 7", "split": "-"}),
        fig8=report("results/paper/maize/fig8_imagery.png", caption="../report/maize_fig8.rst",
                    category=PAPER_CAT, subcategory="Maize yield", labels={"figure": "Fig. 8", "split": "-"}),
        data7="results/paper/maize/fig7_overview.data.json",
        data8="results/paper/maize/fig8_imagery.data.json",
    params:
        maize=MAIZE,
    log:
        "results/logs/maize_overview.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/maize_figures.py"


rule gallery:
    input:
        grids=lambda w: [p for p in gallery_grids().values() if p],
        manifest="results/manifest/items.tsv",
    output:
        png=report("results/paper/{name}.png", caption="../report/gallery.rst", category=PAPER_CAT,
                   subcategory="Gallery", labels={"figure": "{name}"}),
        data="results/paper/{name}.data.json",
    params:
        grids=gallery_grids,
        roi=gallery_roi(),
        title=(GALLERY or {}).get("title", "Embedding gallery"),
    log:
        "results/logs/gallery_{name}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/gallery.py"
