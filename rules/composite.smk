# composite: cloud/shadow masking and median/mosaic/time-frame compositing of one chunk.
rule composite:
    input:
        lambda w: fetch_path(COMPOSITE_SPECS[w.skey].fetch_key(), w.chunk),
    output:
        composite_path("{skey}", "{chunk}"),
    params:
        requests=chunk_requests,
        sensor=lambda w: COMPOSITE_SPECS[w.skey].to_dict(),
        partial_below=OUT["partial_below"],
    log:
        "results/logs/composite/{skey}/{chunk}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/composite.py"
