# composite: cloud/shadow masking and median/mosaic/time-frame compositing of one chunk.
rule composite:
    input:
        lambda w: fetch_path(fetch_key(COMPOSITE_SPECS[w.skey]), w.chunk),
    output:
        composite_path("{skey}", "{chunk}"),
    params:
        requests=chunk_requests,
        sensor=lambda w: COMPOSITE_SPECS[w.skey].to_dict(),
        partial_below=OUT["partial_below"],
        code=code("composite"),
    log:
        "results/logs/composite/{skey}/{chunk}.log",
    retries: JOB_RETRIES
    resources:
        mem_mb=job_mem_mb("composite"),
        runtime=job_runtime("composite"),
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/composite.py"
