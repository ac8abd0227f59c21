# export: pooled embeddings per model to GeoParquet and CF NetCDF; grid embeddings per chunk.
rule export:
    input:
        lambda w: embed_paths(w.model),
    output:
        parquet="results/export/{model}/embeddings.parquet",
        netcdf="results/export/{model}/embeddings.nc",
    params:
        code=code("export"),
    log:
        "results/logs/export/{model}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/export.py"


rule export_grid:
    input:
        lambda w: embed_path(w.model, w.chunk),
    output:
        "results/export/{model}/grid/{chunk}.nc",
    params:
        code=code("export_grid"),
    log:
        "results/logs/export_grid/{model}/{chunk}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/export_grid.py"
