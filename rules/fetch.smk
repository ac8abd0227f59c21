# fetch: imagery of one ROI chunk for one download spec, shared by every model and
# sensor that needs the same bands at the same resolution and cloud limit.
rule fetch:
    input:
        catalog=config["provider"].get("catalog", []),
    output:
        fetch_path("{fkey}", "{chunk}"),
    params:
        requests=chunk_requests,
        sensor=lambda w: FETCH_SPECS[w.fkey].fetch_dict(),
        provider={k: v for k, v in config["provider"].items() if k not in PIPELINE_KEYS},
        cache_dir=config["provider"]["cache_dir"],
        retries=config["provider"]["retries"],
        backoff_s=config["provider"]["backoff_s"],
    log:
        "results/logs/fetch/{fkey}/{chunk}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/fetch.py"
