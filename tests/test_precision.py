"""Optional bf16 autocast of the forward pass: its deviation from fp32, measured on real chips."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eoembed.api import default_sensor, get_embeddings_batch
from eoembed.catalog import build_catalog
from eoembed.errors import ConfigError
from eoembed.grid import to_crs
from eoembed.items import Request
from eoembed.specs import PointBuffer, TemporalSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATCHES = SHARED / "imagery" / "s2_l2a_patches" / "images"
S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


WEIGHT_FILES = {"galileo_nano": ("encoder.pt", "normalization.json"), "presto": ("default_model.pt",)}


def _setup(tmp_path: Path, n: int = 6, model: str = "galileo_nano"):
    if not PATCHES.exists() or not (SHARED / "weights" / model).exists():
        pytest.skip("shared data not available")
    files = sorted(PATCHES.glob("*.tif"))[:n]
    cat = build_catalog(files, tmp_path / "c.json", bands=S2_12, datetime="2022-06-15", qa_value=4,
                        split=False)
    reqs = []
    for f in files:
        with rasterio.open(f) as src:
            lon, lat = to_crs(*src.xy(src.height // 2, src.width // 2), src.crs, "EPSG:4326")
        reqs.append(Request(f.stem, PointBuffer(float(lon), float(lat), 320),
                            TemporalSpec(dt.date(2022, 6, 1), dt.date(2022, 7, 1))))
    kw = dict(provider={"name": "local", "catalog": str(cat)}, progress=False,
              sensor=dataclasses.replace(default_sensor(model, frames=1), cloudy_pct=100),
              weights_paths={n: str(SHARED / "weights" / model / n) for n in WEIGHT_FILES[model]})
    return reqs, kw


@pytest.mark.parametrize("model", ["galileo_nano", "presto"])
def test_bf16_autocast_deviation(tmp_path, model):
    """The two models with real weights here (T = 1 on real S2 patches)."""
    reqs, kw = _setup(tmp_path, model=model)
    fp32 = np.stack([e.data for e in get_embeddings_batch(model, reqs, **kw)])
    bf16 = np.stack([e.data for e in get_embeddings_batch(model, reqs, precision="bf16", **kw)])
    assert fp32.shape == bf16.shape == (len(reqs), 128)
    diff = np.abs(fp32 - bf16)
    cos = np.sum(fp32 * bf16, 1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    print(f"{model} bf16 (CPU autocast) vs fp32: max abs {diff.max():.4g}, mean abs {diff.mean():.4g}, "
          f"rel {np.linalg.norm(fp32 - bf16) / np.linalg.norm(fp32):.4g}, min cosine {cos.min():.6f}")
    assert diff.max() > 0  # autocast did act
    assert cos.min() > 0.99
    # the items stay distinguishable: each bf16 vector is nearest to its own fp32 vector
    dist = np.linalg.norm(bf16[:, None] - fp32[None], axis=-1)
    assert list(dist.argmin(axis=1)) == list(range(len(reqs)))


def test_precision_must_be_known(tmp_path):
    reqs, kw = _setup(tmp_path, n=1)
    with pytest.raises(ConfigError, match=r"precision='fp8' is invalid: allowed 'fp32', 'bf16' or 'fp16'"):
        get_embeddings_batch("galileo_nano", reqs, precision="fp8", **kw)
