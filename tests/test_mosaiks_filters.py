"""MOSAIKS filter bank as published: ZCA-whitened random patches of a declared image set."""

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
from eoembed.errors import ConfigError, WeightsError
from eoembed.grid import GridSpec
from eoembed.items import Composite
from eoembed.models.mosaiks import BAND_MEAN, BAND_STD, MosaiksEmbedder
from eoembed.models.mosaiks_filters import (ZCA_EPS, FilterBankSpec, build_filter_bank, catalog_images,
                                            demo_images,
                                            load_filter_bank, normalise_patches, sample_patches,
                                            zca_whitening)
from eoembed.providers.sample import DEMO_SITES, generate
from eoembed.specs import OutputSpec

SRC = Path(__file__).resolve().parents[1] / "src"


def _comp(seed: int = 0, size: int = 24) -> Composite:
    rng = np.random.default_rng(seed)
    data = rng.uniform(200, 4000, (1, 12, size, size)).astype(np.float32)
    grid = GridSpec("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), size, size)
    return Composite(data, np.ones((1, size, size), bool), [(dt.date(2020, 1, 1), dt.date(2021, 1, 1))],
                     S2_BANDS, grid, np.ones((size, size), bool), 0.0, "median")


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory) -> Path:
    """Two dates of one generated demo site, 96 x 96 pixels."""
    return generate(tmp_path_factory.mktemp("tiny"), sites=DEMO_SITES[:1], dates_per_year=2, tile_px=96)


def _spec(images: str, k: int = 16, kernel: int = 3, seed: int = 0) -> FilterBankSpec:
    return FilterBankSpec(images=images, bands=S2_BANDS, band_mean=BAND_MEAN, band_std=BAND_STD,
                          num_filters=k, kernel_size=kernel, seed=seed)


def test_zca_whitening_is_the_symmetric_inverse_square_root():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))  # correlated, variances 2 ... 50
    x = (rng.normal(size=(40_000, 20)) * np.sqrt(np.linspace(2, 50, 20))) @ q.T + 3.0
    mean, w, s = zca_whitening(x)
    np.testing.assert_allclose(mean, x.mean(0))
    np.testing.assert_allclose(w, w.T, atol=1e-12)  # ZCA (not PCA): symmetric ...
    assert np.linalg.eigvalsh(w).min() > 0  # ... positive definite
    white = (x - mean) @ w
    cov = np.cov(white, rowvar=False)
    assert s.min() > 100 * ZCA_EPS  # so the regulariser shrinks no direction by more than 1 %
    np.testing.assert_allclose(cov, np.eye(20), atol=0.01)


def test_demo_patches_whiten_to_the_regularised_identity():
    """On the (normalised) patches of the demo scenes, the whitened covariance is
    ``U diag(s / (s + eps)) U^T``: identity along every direction with variance >> eps, never above."""
    spec = _spec("demo", k=32)
    patches = normalise_patches(sample_patches(demo_images(spec), 6000, 3, np.random.default_rng(1)))
    assert patches.shape == (6000, 12 * 9) and np.isfinite(patches).all()
    np.testing.assert_allclose(np.linalg.norm(patches, axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(patches.mean(axis=1), 0.0, atol=1e-12)
    mean, w, s = zca_whitening(patches)
    cov = np.cov((patches - mean) @ w, rowvar=False)
    s_ref, u = np.linalg.eigh(np.cov(patches, rowvar=False))
    s_ref = np.clip(s_ref, 0, None)
    np.testing.assert_allclose(cov, (u * (s_ref / (s_ref + ZCA_EPS))) @ u.T, atol=1e-6)
    assert np.linalg.eigvalsh(cov).max() < 1 + 1e-9
    strong = s_ref > 10 * ZCA_EPS
    assert strong.sum() >= 3
    along = np.einsum("di,de,ei->i", u, cov, u)  # whitened variance along each patch eigenvector
    assert (along[strong] > 0.9).all()


def test_filters_are_whitened_unit_norm_patches_of_the_image_set(tiny_catalog):
    spec = _spec(str(tiny_catalog), k=8)
    bank = build_filter_bank(spec)
    f = bank["filters"]
    assert f.shape == (8, 12, 3, 3) and f.dtype == np.float32
    flat = f.reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(f, build_filter_bank(spec)["filters"])  # deterministic
    other = build_filter_bank(_spec(str(tiny_catalog), k=8, seed=1))["filters"].reshape(8, -1)
    assert np.abs(flat - other).max() > 0.1  # another seed draws other patches
    # de-whitened, every filter points along (normalised patch - mean) of a real catalogue patch
    candidates = normalise_patches(sample_patches(catalog_images(spec), 100_000, 3,
                                                  np.random.default_rng(5), min_n=1))
    centred = candidates - bank["zca_mean"].astype(np.float64)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    dewhite = flat @ np.linalg.inv(bank["zca_matrix"].astype(np.float64))
    dewhite /= np.linalg.norm(dewhite, axis=1, keepdims=True)
    best = (dewhite @ centred.T).max(axis=1)
    np.testing.assert_allclose(best, 1.0, atol=1e-4)


def _bank_in_subprocess(cache: Path, options: str) -> tuple[str, str]:
    code = (
        "import hashlib, sys\n"
        "sys.path.insert(0, %r)\n"
        "from test_mosaiks_filters import _comp\n"
        "from eoembed.models.mosaiks import MosaiksEmbedder\n"
        "from eoembed.specs import OutputSpec\n"
        f"m = MosaiksEmbedder({options}, weights_dir={str(cache)!r})\n"
        "emb = m.embed_batch([_comp()], OutputSpec.pooled())[0]\n"
        "print(m.describe()['weights_sha256']['filter_bank'], hashlib.sha256(emb.tobytes()).hexdigest())\n"
    ) % str(Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=True)
    bank_sha, emb_sha = res.stdout.split()
    return bank_sha, emb_sha


def test_default_demo_bank_is_deterministic_across_processes(tmp_path):
    """Two processes, each with an empty cache, build the default bank (demo scenes) to the same
    bytes; a third load (this process) reuses the file and embeds identically."""
    opts = "{'num_filters': 32}"
    first = _bank_in_subprocess(tmp_path / "a", opts)
    second = _bank_in_subprocess(tmp_path / "b", opts)
    assert first == second
    (path,) = (tmp_path / "a" / "mosaiks").glob("filters-*.safetensors")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first[0]
    assert (path.parent / (path.name + ".sha256")).read_text().split()[0] == first[0]
    mtime = path.stat().st_mtime_ns
    here = MosaiksEmbedder({"num_filters": 32}, weights_dir=str(tmp_path / "a"))
    emb = here.embed_batch([_comp()], OutputSpec.pooled())[0]
    assert hashlib.sha256(emb.tobytes()).hexdigest() == first[1]
    assert path.stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert here.describe()["weights_sha256"] == {"filter_bank": first[0]}
    gauss = MosaiksEmbedder({"num_filters": 32, "filters": "gaussian"}, weights_dir=str(tmp_path / "a"))
    assert not np.allclose(gauss.embed_batch([_comp()], OutputSpec.pooled())[0], emb)
    assert gauss.describe()["weights_sha256"] == {}


def test_racing_builders_publish_one_bank(tmp_path, tiny_catalog):
    """Jobs that start building at the same time all end up with the first published file."""
    cache = tmp_path / "cache"
    opts = f"{{'num_filters': 8, 'filter_images': {str(tiny_catalog)!r}}}"
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from test_mosaiks_filters import _comp\n"
            "from eoembed.models.mosaiks import MosaiksEmbedder\n"
            f"m = MosaiksEmbedder({opts}, weights_dir={str(cache)!r}); m.load()\n"
            "print(m.weights_sha256['filter_bank'])\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    shas = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    files = sorted(p.name for p in (cache / "mosaiks").iterdir())
    assert len(files) == 2 and files[1] == files[0] + ".sha256"  # one bank + sidecar, no temporaries
    assert shas == {hashlib.sha256((cache / "mosaiks" / files[0]).read_bytes()).hexdigest()}


def test_an_edited_catalogue_gives_another_bank(tmp_path, tiny_catalog):
    import json
    import shutil

    cat = tmp_path / "index.json"
    for sub in tiny_catalog.parent.iterdir():  # the catalogue and its COG folders
        (shutil.copytree if sub.is_dir() else shutil.copy)(sub, tmp_path / sub.name)
    first = MosaiksEmbedder({"num_filters": 8, "filter_images": str(cat)}).filter_bank_spec()
    doc = json.loads(cat.read_text())
    doc["features"] = doc["features"][:1]
    cat.write_text(json.dumps(doc))
    second = MosaiksEmbedder({"num_filters": 8, "filter_images": str(cat)}).filter_bank_spec()
    assert first.images == second.images and first.key() != second.key()


def test_pins_corruption_and_bad_options_are_named(tmp_path, tiny_catalog):
    spec = _spec(str(tiny_catalog), k=8)
    filters, path, sha = load_filter_bank(spec, tmp_path)
    assert path.parent == tmp_path / "mosaiks" and filters.shape == (8, 12, 3, 3)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_filter_bank(spec, tmp_path, expected_sha256="0" * 64)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 mismatch"):  # checked against the sidecar
        load_filter_bank(spec, tmp_path)
    with pytest.raises(ConfigError, match="filters='cnn'"):
        MosaiksEmbedder({"filters": "cnn"})
    with pytest.raises(ConfigError, match="filter_images"):
        MosaiksEmbedder({"filter_images": str(tmp_path / "nope.json")}).load()
    with pytest.raises(ConfigError, match="kernel_size=11"):
        MosaiksEmbedder({"kernel_size": 11}).load()
