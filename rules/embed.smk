# embed: one model over one chunk; the model is loaded once per job and run batched.
# The job is tagged with a GPU when the model's device is cuda, and runs in its family's env.
rule embed:
    input:
        embed_input,
    output:
        embed_path("{model}", "{chunk}"),
    params:
        requests=chunk_requests,
        model=lambda w: model_fields(w.model),
        sensor=lambda w: sensor_of(w.model).to_dict() if on_the_fly(w.model) else None,
        output=embed_output_fields(),
        code=lambda w: embed_code(w.model),
    log:
        "results/logs/embed/{model}/{chunk}.log",
    # torch uses the job's threads (Snakemake caps this at --cores; on SLURM it is cpus-per-task)
    threads: 4
    retries: JOB_RETRIES
    resources:
        gpu=lambda w: 1 if MODELS[w.model]["device"] != "cpu" else 0,
        mem_mb=job_mem_mb("embed"),
        runtime=job_runtime("embed"),
    conda:
        lambda w: f"../envs/{CARDS[w.model].family}.yaml"
    script:
        "../scripts/embed.py"
