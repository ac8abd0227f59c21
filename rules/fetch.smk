# fetch: imagery of one ROI chunk for one download spec, shared by every model and
# sensor that needs the same bands at the same resolution and cloud limit.
rule fetch:
    input:
        catalog=catalog_input(),
    output:
        fetch_path("{fkey}", "{chunk}"),
    params:
        requests=chunk_requests,
        sensor=lambda w: fetch_fields(FETCH_SPECS[w.fkey], PROVIDER),
        provider=output_fields(PROVIDER),
        code=fetch_code(),
    log:
        "results/logs/fetch/{fkey}/{chunk}.log",
    retries: JOB_RETRIES
    resources:
        mem_mb=job_mem_mb("fetch"),
        runtime=job_runtime("fetch"),
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/fetch.py"
