"""Snakemake script: fetch one ROI chunk for one download spec (failed items are recorded)."""
from eoembed.chunkio import write_chunk
from eoembed.items import Request
from eoembed.logutil import setup_logging
from eoembed.pipeline import fetch_items
from eoembed.progress import Progress
from eoembed.providers import provider_from_config
from eoembed.specs import SensorSpec
from eoembed.versions import versions

setup_logging(snakemake.log[0])
requests = [Request.from_dict(r) for r in snakemake.params.requests]
sensor = SensorSpec.from_dict(snakemake.params.sensor)
provider = provider_from_config(snakemake.params.provider)
results = fetch_items(requests, sensor, provider, retries=snakemake.params.retries,
                      backoff_s=snakemake.params.backoff_s, cache_dir=snakemake.params.cache_dir,
                      workers=snakemake.config["provider"].get("io_workers"),  # operational: no rerun
                      progress=Progress(f"fetch {snakemake.wildcards.fkey}", len(requests)))
write_chunk(snakemake.output[0], {k: a for k, (a, _) in results.items()},
            {k: r for k, (_, r) in results.items()},
            {"stage": "fetch", "sensor": snakemake.params.sensor, "provider": provider.describe(),
             "provider_stats": provider.stats() if hasattr(provider, "stats") else None,
             "chunk": snakemake.wildcards.chunk, "versions": versions()})
