"""Print one line per (ROI, model, output) with the embedding's sha256, for the eoembed on PYTHONPATH.

Run it with two checkouts and diff the outputs (issue 13: speed must not change answers)::

    PYTHONPATH=/path/to/main/src python benchmarks/answers_unchanged.py > before.txt
    PYTHONPATH=src python benchmarks/answers_unchanged.py > after.txt && diff before.txt after.txt

16 demo ROIs (2 generated sites, 6 dates, 13 assets) x spectral, mosaiks (gaussian) x pooled, grid.
"""

import hashlib
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")
logging.disable(logging.WARNING)

import eoembed  # noqa: E402
from eoembed.items import Request  # noqa: E402
from eoembed.providers.sample import demo_rois, generate  # noqa: E402
from eoembed.specs import OutputSpec, PointBuffer, TemporalSpec  # noqa: E402

print("eoembed from", eoembed.__file__, file=sys.stderr)
sites = [("s_nl", 5.62, 52.55), ("s_fr", 2.35, 48.85)]
with tempfile.TemporaryDirectory() as tmp:
    index = generate(Path(tmp), sites=sites, year=2023, dates_per_year=6, tile_px=384)
    rois = demo_rois(n_per_site=8, buffer_m=320, year=2023, sites=sites, tile_px=384)
    reqs = [Request(r.roi_id, PointBuffer(r.lon, r.lat, 320), TemporalSpec.year(2023)) for r in rois.itertuples()]
    for model, kw in (("spectral", {}), ("mosaiks", {"options": {"filters": "gaussian"}})):
        for out in (OutputSpec.pooled(), OutputSpec.grid(80)):
            for e in eoembed.get_embeddings_batch(model, reqs, provider={"name": "local", "catalog": str(index)},
                                                  output=out, **kw):
                digest = hashlib.sha256(np.ascontiguousarray(e.data, "<f4").tobytes()).hexdigest()
                print(e.meta["roi_id"], model, out.mode, e.meta["status"], digest)
