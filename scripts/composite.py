"""Snakemake script: cloud-mask and composite one fetched chunk."""
from eoembed.chunkio import read_chunk, write_chunk
from eoembed.items import Request
from eoembed.logutil import setup_logging
from eoembed.pipeline import composite_items
from eoembed.specs import SensorSpec
from eoembed.versions import versions

setup_logging(snakemake.log[0])
requests = [Request.from_dict(r) for r in snakemake.params.requests]
sensor = SensorSpec.from_dict(snakemake.params.sensor)
items, records, _ = read_chunk(snakemake.input[0])
fetched = {r.roi_id: (items.get(r.roi_id, {}), records[r.roi_id]) for r in requests}
results = composite_items(fetched, requests, sensor, partial_below=snakemake.params.partial_below)
write_chunk(snakemake.output[0], {k: a for k, (a, _) in results.items()},
            {k: r for k, (_, r) in results.items()},
            {"stage": "composite", "sensor": sensor.to_dict(), "chunk": snakemake.wildcards.chunk,
             "versions": versions(), "code": snakemake.params.code})
