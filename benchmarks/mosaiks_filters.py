"""MOSAIKS filter banks compared by a linear probe: Gaussian vs ZCA-whitened image patches.

On the GENERATED demo imagery (labels from the true simulated scene: majority land cover and a
yield-like target), this embeds the same ROIs with ``mosaiks`` under each filter bank and
cross-validates a linear probe with sites as groups (a site is never split between train and
test), printing the figures:

* ``gaussian``: seeded Gaussian filters (``filters: gaussian``);
* ``patches/demo``: whitened patches of the demo scenes (the default);
* ``patches/real``: whitened patches of the real Sentinel-2 L2A chips in
  ``../shared/data/imagery/s2_l2a_patches`` (only when that folder exists), turned into a
  catalogue with :func:`eoembed.catalog.build_catalog` - the "user's catalogue" route.

Run from the repository root::

    PATH=.venv/bin:$PATH python benchmarks/mosaiks_filters.py [--rois-per-site 24] [--filters 256]

Takes about 3 minutes on 2 cores (the imagery is generated and fetched once, in a temporary folder;
the first bank's ``seconds`` include that fetch, the others' the bank build and the embedding).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))

from eoembed.api import get_embeddings_batch  # noqa: E402
from eoembed.catalog import build_catalog  # noqa: E402
from eoembed.evaluate import benchmark  # noqa: E402
from eoembed.providers.sample import DEMO_YEAR, demo_labels, demo_rois, generate  # noqa: E402
from eoembed.specs import PointBuffer, TemporalSpec  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "imagery" / "s2_l2a_patches" / "images"
S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rois-per-site", type=int, default=24, help="ROIs per demo site (6 sites)")
    p.add_argument("--filters", type=int, default=256, help="num_filters K (features = 2K)")
    p.add_argument("--folds", type=int, default=6, help="cross-validation folds (sites as groups)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mosaiks-filters-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        index = generate(work / "demo")
        rois = demo_rois(n_per_site=args.rois_per_site, buffer_m=320.0)
        labels = demo_labels(index, rois).set_index("roi_id").loc[rois["roi_id"]]
        window = TemporalSpec.range(f"{DEMO_YEAR}-01-01", f"{DEMO_YEAR + 1}-01-01")
        requests = [(r.roi_id, PointBuffer(r.lon, r.lat, r.buffer_m), window) for r in rois.itertuples()]
        print(f"demo imagery + {len(rois)} ROIs in {time.perf_counter() - t0:.1f}s; land cover classes: "
              f"{labels['landcover'].value_counts().to_dict()}")

        banks = {"gaussian": {"filters": "gaussian"}, "patches/demo": {"filters": "patches"}}
        if REAL.is_dir():
            chips = sorted(REAL.glob("*.tif"))
            catalog = build_catalog(chips, work / "real" / "catalog.json", bands=S2_12,
                                    datetime="2022-06-15", qa_value=4)
            banks["patches/real"] = {"filters": "patches", "filter_images": str(catalog)}
            print(f"real chips: {len(chips)} files from {REAL}")
        else:
            print(f"real chips: {REAL} not found, skipping the 'patches/real' bank")

        provider = {"name": "local", "catalog": str(index)}
        print(f"\n{'bank':<14} {'seconds':>13} {'landcover acc':>14} {'macro F1':>9} "
              f"{'yield R2':>9}  filter-bank sha256")
        for name, opts in banks.items():
            t1 = time.perf_counter()
            embs = get_embeddings_batch("mosaiks", requests, provider=provider,
                                        options={"num_filters": args.filters, "seed": 0, **opts},
                                        weights_dir=str(work / "weights"), cache_dir=str(work / "cache"))
            secs = time.perf_counter() - t1
            failed = [e.meta["roi_id"] for e in embs if e.meta["status"] == "failed"]
            if failed:
                raise SystemExit(f"{name}: {len(failed)} items failed, e.g. {embs[0].meta.get('error')}")
            X = np.stack([e.data for e in embs]).astype(np.float64)
            groups = labels["site"].to_numpy()
            cls, _ = benchmark(X, labels["landcover"].to_numpy(), groups, task="classification",
                               models=("logistic",), n_splits=args.folds)
            reg, _ = benchmark(X, labels["yield_t_ha"].to_numpy(), groups, task="regression",
                               models=("ridge",), n_splits=args.folds)
            m = {r["metric"]: r["mean"] for r in cls + reg}
            sha = embs[0].meta["weights_sha256"].get("filter_bank", "-")
            print(f"{name:<14} {secs:>13.1f} {m.get('accuracy', float('nan')):>14.3f} "
                  f"{m.get('macro_f1', float('nan')):>9.3f} {m.get('r2', float('nan')):>9.3f}  {sha[:16]}")


if __name__ == "__main__":
    main()
