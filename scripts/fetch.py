"""Snakemake script: fetch one ROI chunk for one download spec (failed items are recorded).

Retries, backoff, the input cache and the provider's operational options come from
``snakemake.config`` (they are no rerun trigger); the params hold what changes the output."""
from eoembed.chunkio import write_chunk
from eoembed.items import Request
from eoembed.logutil import setup_logging
from eoembed.pipeline import fetch_items
from eoembed.progress import Progress
from eoembed.providers import provider_from_config
from eoembed.specs import SensorSpec
from eoembed.versions import versions

setup_logging(snakemake.log[0])
section = snakemake.config["provider"]
requests = [Request.from_dict(r) for r in snakemake.params.requests]
sensor = SensorSpec.from_dict(snakemake.params.sensor)
provider = provider_from_config(section)
results = fetch_items(requests, sensor, provider, retries=section.get("retries", 3),
                      backoff_s=section.get("backoff_s", 1.0), cache_dir=section.get("cache_dir"),
                      workers=section.get("io_workers"),
                      progress=Progress(f"fetch {snakemake.wildcards.fkey}", len(requests)))
write_chunk(snakemake.output[0], {k: a for k, (a, _) in results.items()},
            {k: r for k, (_, r) in results.items()},
            {"stage": "fetch", "sensor": snakemake.params.sensor, "provider": provider.describe(),
             "provider_stats": provider.stats() if hasattr(provider, "stats") else None,
             "chunk": snakemake.wildcards.chunk, "versions": versions(), "code": snakemake.params.code})
