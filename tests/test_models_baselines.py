"""Tests of the weight-free baselines: spectral statistics and MOSAIKS random features."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eoembed.collections import S2_BANDS
from eoembed.errors import ConfigError, ModelError
from eoembed.grid import GridSpec
from eoembed.items import Composite
from eoembed.models.mosaiks import BAND_MEAN, BAND_STD, MosaiksEmbedder, random_filters
from eoembed.models.registry import create, get_card
from eoembed.models.spectral import SpectralEmbedder, feature_names
from eoembed.specs import OutputSpec

SRC = Path(__file__).resolve().parents[1] / "src"


def make_comp(h: int = 16, w: int = 16, seed: int = 0, frames: int = 1,
              bands: tuple[str, ...] = S2_BANDS) -> Composite:
    """Random-reflectance composite, all pixels valid and inside the ROI."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(200, 4000, (frames, len(bands), h, w)).astype(np.float32)
    year = [(dt.date(2020, 1, 1), dt.date(2021, 1, 1))] * frames
    grid = GridSpec("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), w, h)
    return Composite(data, np.ones((frames, h, w), bool), year, tuple(bands), grid,
                     np.ones((h, w), bool), 0.0, "median")


def set_band(comp: Composite, band: str, values) -> None:
    comp.data[0, comp.bands.index(band)] = values


# ------------------------------------------------------------------ spectral


def test_spectral_card_and_names():
    card = get_card("spectral")
    names = feature_names()
    assert card.dims == len(names) == 12 * 5 + 5 * 2 == len(set(names))
    assert card.bands == S2_BANDS and card.primary.gsd_m == 10
    assert card.weights == () and card.licence == "Apache-2.0"
    assert "McFeeters" in card.citation and "Rouse" in card.citation and "Benson" in card.citation
    assert names[:5] == ["B01_mean", "B01_std", "B01_p10", "B01_p50", "B01_p90"]
    assert names[-2:] == ["NDMI_mean", "NDMI_std"]


def test_spectral_ndvi_and_band_statistics():
    comp = make_comp(4, 5)
    # row 0 has NIR 0.5 / red 0.1 (NDVI 2/3); rows 1-3 NIR 0.3 / red 0.1 (NDVI 0.5) but only
    # row 1 is valid, rows 2-3 are cloudy or outside the ROI -> mean (2/3+1/2)/2, std 1/12
    red = np.full((4, 5), 1000.0)
    nir = np.full((4, 5), 3000.0)
    nir[0] = 5000.0
    set_band(comp, "B04", red)
    set_band(comp, "B08", nir)
    set_band(comp, "B02", np.array([1000.0, 2000, 3000, 4000, 5000])[None].repeat(4, 0))
    comp.valid[0, 2] = False
    comp.roi_mask[3] = False
    emb = SpectralEmbedder().embed_batch([comp], OutputSpec.pooled())[0]
    f = dict(zip(feature_names(), emb.tolist()))
    assert emb.dtype == np.float32 and emb.shape == (70,)
    assert f["NDVI_mean"] == pytest.approx((2 / 3 + 0.5) / 2, abs=1e-6)
    assert f["NDVI_std"] == pytest.approx(1 / 12, abs=1e-6)
    # B02 over 0.1..0.5 (each column twice): linear percentiles of 10 values
    assert f["B02_mean"] == pytest.approx(0.3, abs=1e-6)
    assert f["B02_std"] == pytest.approx(np.sqrt(0.02), abs=1e-6)
    assert f["B02_p50"] == pytest.approx(0.3, abs=1e-6)
    vals = np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 2)  # independent: numpy percentile
    assert f["B02_p10"] == pytest.approx(np.percentile(vals, 10), abs=1e-6)
    assert f["B02_p90"] == pytest.approx(np.percentile(vals, 90), abs=1e-6)
    assert f["B04_std"] == pytest.approx(0.0, abs=1e-7)


def test_spectral_zero_denominator_index_is_skipped():
    comp = make_comp(2, 2)
    set_band(comp, "B08", np.array([[0.0, 4000.0], [4000.0, 4000.0]]))
    set_band(comp, "B04", np.array([[0.0, 2000.0], [2000.0, 2000.0]]))
    f = dict(zip(feature_names(), SpectralEmbedder().embed_batch([comp], OutputSpec.pooled())[0]))
    assert f["NDVI_mean"] == pytest.approx(1 / 3, abs=1e-6)


def test_spectral_pooled_max_is_max_over_native_cells():
    comp = make_comp(8, 16)
    red = np.full((8, 16), 1000.0)
    red[:, 8:] = 3000.0
    set_band(comp, "B04", red)
    model = SpectralEmbedder()
    i = feature_names().index("B04_mean")
    assert model.embed_batch([comp], OutputSpec.pooled("max"))[0][i] == pytest.approx(0.3)
    assert model.embed_batch([comp], OutputSpec.pooled("mean"))[0][i] == pytest.approx(0.2)


def test_spectral_grid_shapes_and_empty_cells():
    comp = make_comp(20, 12)
    comp.valid[0, :8, :8] = False  # first native cell has no valid pixel
    model = SpectralEmbedder()
    grid = model.embed_batch([comp], OutputSpec.grid())[0]
    assert grid.shape == (70, 3, 2) and grid.dtype == np.float32
    assert np.isnan(grid[:, 0, 0]).all()
    assert np.isfinite(grid[:, 1:, :]).all() and np.isfinite(grid[:, 0, 1]).all()
    # cell (2, 1) covers rows 16-19 and cols 8-11: its B03 mean is the mean of those pixels
    i = feature_names().index("B03_mean")
    expected = comp.data[0, S2_BANDS.index("B03"), 16:20, 8:12].astype(np.float64).mean() * 1e-4
    assert grid[i, 2, 1] == pytest.approx(expected, rel=1e-5)
    assert model.embed_batch([comp], OutputSpec.grid(cell_m=20))[0].shape == (70, 10, 6)


def test_spectral_errors():
    model = SpectralEmbedder()
    with pytest.raises(ModelError, match="frames"):
        model.embed_batch([make_comp(frames=2)], OutputSpec.pooled())
    with pytest.raises(ModelError, match="B8A"):
        model.embed_batch([make_comp(bands=tuple(b for b in S2_BANDS if b != "B8A"))],
                          OutputSpec.pooled())


# ------------------------------------------------------------------ both


@pytest.mark.parametrize("model_id", ["spectral", "mosaiks"])
def test_pooled_ignores_invalid_and_outside_pixels(model_id, tmp_path):
    options = {"num_filters": 16} if model_id == "mosaiks" else {}
    model = create(model_id, options, weights_dir=str(tmp_path))  # mosaiks builds its filter bank there
    base = make_comp(12, 12, seed=3)
    base.valid[0, 0, :] = False
    base.roi_mask[:, -3:] = False
    changed = make_comp(12, 12, seed=3)
    changed.valid[:] = base.valid
    changed.roi_mask[:] = base.roi_mask
    changed.data[0, :, 0, :] = 9999.0   # cloudy row
    changed.data[0, :, :, -3:] = 7.0    # outside the ROI
    for output in (OutputSpec.pooled("mean"), OutputSpec.pooled("max")):
        a, b = model.embed_batch([base, changed], output)
        np.testing.assert_array_equal(a, b)
    other = make_comp(12, 12, seed=3)
    other.data[0, :, 5, 5] = 9999.0  # a valid inside pixel: must change the embedding
    mean_base, mean_other = model.embed_batch([base, other], OutputSpec.pooled())
    assert not np.array_equal(mean_base, mean_other)


# ------------------------------------------------------------------ mosaiks


def test_random_filters_are_seeded_zero_mean_unit_norm():
    a, b = random_filters(8, 12, 3, seed=0), random_filters(8, 12, 3, seed=0)
    assert a.shape == (8, 12, 3, 3) and bool((a == b).all())
    flat = a.double().reshape(8, -1)
    np.testing.assert_allclose(flat.mean(1).numpy(), 0.0, atol=1e-7)
    np.testing.assert_allclose(flat.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    assert not bool((random_filters(8, 12, 3, seed=1) == a).all())


def test_mosaiks_features_match_independent_computation():
    model = MosaiksEmbedder({"num_filters": 4, "kernel_size": 1, "bias": 0.5, "filters": "gaussian"})
    comp = make_comp(6, 7, seed=5)
    comp.valid[0, 0, :3] = False
    emb = model.embed_batch([comp], OutputSpec.pooled())[0]
    assert emb.shape == (8,) and model.describe()["dims"] == 8
    w = random_filters(4, 12, 1, seed=0).double().numpy()[:, :, 0, 0]
    x = (comp.data[0].astype(np.float64) * 1e-4 - np.array(BAND_MEAN)[:, None, None]) \
        / np.array(BAND_STD)[:, None, None]
    resp = np.einsum("kc,cyx->kyx", w, x)[:, comp.valid[0]]
    expected = np.concatenate([np.maximum(resp - 0.5, 0).mean(1), np.maximum(-resp - 0.5, 0).mean(1)])
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-6)


def test_mosaiks_grid_and_options(tmp_path):
    model = MosaiksEmbedder({"num_filters": 8}, weights_dir=str(tmp_path))
    comp = make_comp(20, 12)
    comp.roi_mask[:8, 8:] = False
    grid = model.embed_batch([comp], OutputSpec.grid())[0]
    assert grid.shape == (16, 3, 2) and grid.dtype == np.float32
    assert np.isnan(grid[:, 0, 1]).all() and np.isfinite(grid[:, 1:]).all()
    assert MosaiksEmbedder().describe()["dims"] == get_card("mosaiks").dims == 512
    with pytest.raises(ConfigError, match="kernel_size"):
        MosaiksEmbedder({"kernel_size": 4})
    with pytest.raises(ConfigError, match="num_filters"):
        MosaiksEmbedder({"num_filters": 0})
    with pytest.raises(ModelError, match="B01"):
        model.embed_batch([make_comp(bands=S2_BANDS[1:])], OutputSpec.pooled())


def _embed_in_subprocess(seed: int) -> str:
    code = (
        "import datetime as dt, hashlib, numpy as np\n"
        "from eoembed.collections import S2_BANDS\n"
        "from eoembed.grid import GridSpec\n"
        "from eoembed.items import Composite\n"
        "from eoembed.models.registry import create\n"
        "from eoembed.specs import OutputSpec\n"
        f"rng = np.random.default_rng({seed})\n"
        "data = rng.uniform(200, 4000, (1, 12, 24, 24)).astype(np.float32)\n"
        "grid = GridSpec('EPSG:32633', (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), 24, 24)\n"
        "comp = Composite(data, np.ones((1, 24, 24), bool), [(dt.date(2020, 1, 1), dt.date(2021, 1, 1))],"
        " S2_BANDS, grid, np.ones((24, 24), bool), 0.0, 'median')\n"
        "emb = create('mosaiks', {'filters': 'gaussian'}).embed_batch([comp], OutputSpec.pooled())[0]\n"
        "print(hashlib.sha256(emb.tobytes()).hexdigest())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    return res.stdout.strip()


def test_mosaiks_is_deterministic_across_processes():
    first, second = _embed_in_subprocess(0), _embed_in_subprocess(0)
    assert len(first) == 64 and first == second
    # same input in this process (default options) gives the same bytes
    rng = np.random.default_rng(0)
    comp = make_comp(24, 24)
    comp.data[:] = rng.uniform(200, 4000, (1, 12, 24, 24)).astype(np.float32)
    gaussian = {"filters": "gaussian"}  # the default patch bank: tests/test_mosaiks_filters.py
    here = create("mosaiks", gaussian).embed_batch([comp], OutputSpec.pooled())[0]
    assert hashlib.sha256(here.tobytes()).hexdigest() == first
    other = create("mosaiks", gaussian).embed_batch([make_comp(24, 24, seed=9)], OutputSpec.pooled())[0]
    assert hashlib.sha256(other.tobytes()).hexdigest() != first
    assert not np.allclose(other, here)
