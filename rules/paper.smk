# Paper figure reproductions (config/paper/*.yaml): label preparation from SPAM rasters, the
# maize-yield figures (Figs. 4, 5, 7, 8) under two splits, and the embedding gallery (Fig. 6;
# a tile-mode config gives Fig. 9 from the same rule).


wildcard_constraints:
    split="|".join(SPLITS),
    name=r"[A-Za-z0-9_]+",


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
        composites=lambda w: [composite_path(quicklook_sensor().key(), c) for c in CHUNKS]
        if quicklook_sensor()
        else [],
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
