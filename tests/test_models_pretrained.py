"""Presto and Galileo-nano with their real published checkpoints (issue 3 acceptance, library part).

Needs the shared checkpoints (../shared/data/weights); every test skips with the missing path
named when they are absent. Composites are built by hand: 20 x 20 pixels at 10 m, 12 monthly
frames of 2022, a few invalid pixels and one column outside the ROI.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pyproj import Transformer

from eoembed.errors import ModelError, WeightsError
from eoembed.grid import GridSpec
from eoembed.items import Composite
from eoembed.models.registry import create
from eoembed.specs import OutputSpec

pytestmark = pytest.mark.shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PRESTO_DIR = SHARED / "weights" / "presto"
GALILEO_DIR = SHARED / "weights" / "galileo_nano"
PRESTO_URL = "https://raw.githubusercontent.com/nasaharvest/presto/main/data/default_model.pt"
GALILEO_NANO_URL = "https://huggingface.co/nasaharvest/galileo/resolve/main/models/nano/encoder.pt"
BANDS12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
PRESTO_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
CRS = "EPSG:32631"
X0, Y1, SIZE = 640_000.0, 5_825_000.0, 20  # a 200 m square in the Netherlands (UTM 31N)
FULLY_INVALID = (10, 10)  # a pixel with no valid observation in any frame
OUTSIDE_COL = 19  # the last column lies outside the ROI


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is missing")
    return path


def presto_paths() -> dict[str, str]:
    return {"default_model.pt": str(_require(PRESTO_DIR / "default_model.pt"))}


def galileo_paths() -> dict[str, str]:
    return {name: str(_require(GALILEO_DIR / name)) for name in ("encoder.pt",)}


def published_sha256(model_dir: Path) -> str:
    """sha256 recorded next to the shared checkpoint (independent of the model cards)."""
    return json.loads(_require(model_dir / "state_dict_keys.json").read_text())["sha256"]


def monthly_bounds(year: int = 2022) -> list[tuple[dt.date, dt.date]]:
    return [(dt.date(year, m, 1), dt.date(year + (m == 12), m % 12 + 1, 1)) for m in range(1, 13)]


def make_composite(bounds: list[tuple[dt.date, dt.date]], seed: int = 0) -> Composite:
    """Reflectance-like data with spatial structure and a seasonal cycle; some gaps."""
    rng = np.random.default_rng(seed)
    t = len(bounds)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    veg = 0.5 + 0.5 * np.sin(3 * xx + 2 * yy + seed)  # (y, x) vegetation share
    season = 0.5 + 0.5 * np.sin(np.linspace(0, np.pi, t))  # (t,)
    base = np.linspace(800, 3000, len(BANDS12))[None, :, None, None]
    nir = np.array([b in ("B06", "B07", "B08", "B8A") for b in BANDS12])[None, :, None, None]
    data = base + 1500 * nir * (veg * season[:, None, None])[:, None] \
        - 400 * (~nir) * veg[None, None] + rng.normal(0, 60, (t, len(BANDS12), SIZE, SIZE))
    data = np.clip(data, 1, 10000).astype(np.float32)
    valid = np.ones((t, SIZE, SIZE), bool)
    valid[min(3, t - 1), 0:5, 0:5] = False  # a cloud in one frame
    valid[:, FULLY_INVALID[0], FULLY_INVALID[1]] = False
    data = np.where(valid[:, None], data, 0.0).astype(np.float32)
    roi = np.ones((SIZE, SIZE), bool)
    roi[:, OUTSIDE_COL] = False
    grid = GridSpec(CRS, (10.0, 0.0, X0, 0.0, -10.0, Y1), SIZE, SIZE)
    return Composite(data, valid, bounds, BANDS12, grid, roi, 0.0, "median", ["synthetic"])


def pixel_lonlat() -> tuple[np.ndarray, np.ndarray]:
    xs = X0 + 10.0 * (np.arange(SIZE) + 0.5)
    ys = Y1 - 10.0 * (np.arange(SIZE) + 0.5)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(xx, yy)
    return np.asarray(lon), np.asarray(lat)


@pytest.fixture(scope="module")
def presto():
    emb = create("presto", {}, weights_paths=presto_paths())
    emb.load()
    return emb


@pytest.fixture(scope="module")
def galileo():
    emb = create("galileo_nano", {"patch_size": 4}, weights_paths=galileo_paths())
    emb.load()
    return emb


@pytest.fixture(scope="module")
def composite() -> Composite:
    return make_composite(monthly_bounds())


# ---------------------------------------------------------------- loading


def test_presto_loads_every_encoder_tensor_strictly(presto):
    ckpt = torch.load(PRESTO_DIR / "default_model.pt", map_location="cpu", weights_only=True)
    encoder = {k[len("encoder."):]: v for k, v in ckpt.items() if k.startswith("encoder.")}
    own = presto.net.state_dict()
    assert set(own) == set(encoder)
    assert all(torch.equal(own[k], encoder[k]) for k in own)
    assert presto.describe()["weights_sha256"] == {"default_model.pt": published_sha256(PRESTO_DIR)}


def test_galileo_nano_loads_every_tensor_strictly(galileo):
    ckpt = torch.load(GALILEO_DIR / "encoder.pt", map_location="cpu", weights_only=True)
    own = galileo.net.state_dict()
    assert set(own) == set(ckpt)
    assert all(torch.equal(own[k], ckpt[k]) for k in own)
    assert galileo.describe()["weights_sha256"]["encoder.pt"] == published_sha256(GALILEO_DIR)


# ---------------------------------------------------------------- embedding


def test_presto_pooled_is_mean_of_per_pixel_encodings(presto, composite):
    from eoembed.models.presto_net import encode, encoder_from_state_dict, layout_inputs

    (pooled_mean,), (pooled_max,), (grid,) = presto.embed_outputs(
        [composite], [OutputSpec.pooled("mean"), OutputSpec.pooled("max"), OutputSpec.grid()])

    # independent path: pick the pixels, mask gaps, pack, encode with a separately loaded net
    use = composite.roi_mask & composite.valid.any(axis=0)
    rows, cols = np.nonzero(use)
    idx = [BANDS12.index(b) for b in PRESTO_BANDS]
    s2 = composite.data[:, idx][:, :, rows, cols].transpose(2, 0, 1).astype(np.float64)  # (N, T, C)
    missing = ~composite.valid[:, rows, cols].T
    s2 = np.where(missing[..., None], 0.0, s2 / 10000.0)  # Presto's published S2 scaling
    b4, b8 = s2[..., PRESTO_BANDS.index("B04")], s2[..., PRESTO_BANDS.index("B08")]
    ndvi = np.where(b8 + b4 > 0, (b8 - b4) / np.where(b8 + b4 > 0, b8 + b4, 1), 0.0)
    lon, lat = pixel_lonlat()
    packed = layout_inputs(s2, ndvi, missing, np.arange(12), np.stack([lat[use], lon[use]], 1))
    net = encoder_from_state_dict(torch.load(PRESTO_DIR / "default_model.pt", map_location="cpu",
                                                     weights_only=True))
    per_pixel = encode(net, packed["x"], packed["dynamic_world"], packed["latlons"], packed["mask"],
                       packed["month"])

    assert use.sum() == SIZE * SIZE - SIZE - 1
    assert pooled_mean.shape == (128,) and pooled_mean.dtype == np.float32
    assert np.isfinite(pooled_mean).all()
    np.testing.assert_allclose(pooled_mean, per_pixel.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled_max, per_pixel.max(axis=0), rtol=1e-4, atol=1e-5)
    # native grid: one cell per 10 m pixel holding that pixel's embedding, NaN where no pixel is used
    assert grid.shape == (128, SIZE, SIZE)
    np.testing.assert_allclose(grid[:, rows, cols].T, per_pixel, rtol=1e-4, atol=1e-5)
    assert np.array_equal(np.isfinite(grid).all(axis=0), use)
    assert len({v.tobytes() for v in per_pixel.round(4)}) > 0.9 * len(per_pixel)  # pixels differ


def test_presto_grid_cells_of_40m(presto, composite):
    (grid,), (native,) = presto.embed_outputs([composite], [OutputSpec.grid(40), OutputSpec.grid()])
    assert grid.shape == (128, 5, 5)  # 20 px / 4 px per cell
    assert np.isfinite(grid).all()
    use = composite.roi_mask & composite.valid.any(axis=0)
    cell = native[:, 8:12, 8:12].reshape(128, -1)[:, use[8:12, 8:12].ravel()]
    np.testing.assert_allclose(grid[:, 2, 2], cell.mean(axis=1), rtol=1e-4, atol=1e-5)


def test_galileo_pooled_and_grid(galileo, composite):
    pooled = galileo.embed_batch([composite], OutputSpec.pooled())[0]
    native = galileo.embed_batch([composite], OutputSpec.grid())[0]
    coarse = galileo.embed_batch([composite], OutputSpec.grid(80))[0]
    assert pooled.shape == (128,) and np.isfinite(pooled).all()
    assert native.shape == (128, 5, 5)  # one cell per 4 px patch (40 m)
    # a patch is masked when any of its pixels is: the column outside the ROI and the patch of
    # the fully invalid pixel have no token left; every other cell is finite
    empty = np.zeros((5, 5), bool)
    empty[:, OUTSIDE_COL // 4] = True
    empty[FULLY_INVALID[0] // 4, FULLY_INVALID[1] // 4] = True
    assert np.array_equal(~np.isfinite(native).all(axis=0), empty)
    assert coarse.shape == (128, 3, 3)  # 80 m cells = 2 x 2 patches, padded at the edge
    np.testing.assert_allclose(coarse[:, 0, 0], native[:, :2, :2].reshape(128, -1).mean(axis=1),
                               rtol=1e-4, atol=1e-5)
    # another place gives another embedding
    other = galileo.embed_batch([make_composite(monthly_bounds(), seed=5)], OutputSpec.pooled())[0]
    assert np.linalg.norm(other - pooled) > 1e-3


def test_presto_rejects_non_monthly_frames(presto):
    edges = [dt.date(2022, 1, 1), dt.date(2022, 4, 1), dt.date(2022, 7, 1), dt.date(2022, 10, 1),
             dt.date(2023, 1, 1)]
    quarters = list(zip(edges[:-1], edges[1:]))
    with pytest.raises(ModelError, match="frame") as err:
        presto.embed_batch([make_composite(quarters)], OutputSpec.pooled())
    assert "monthly" in str(err.value) and "4 frame" in str(err.value)


def test_presto_accepts_a_single_month(presto):
    june = make_composite([(dt.date(2022, 6, 1), dt.date(2022, 7, 1))])
    vec = presto.embed_batch([june], OutputSpec.pooled())[0]
    assert vec.shape == (128,) and np.isfinite(vec).all()


# ---------------------------------------------------------------- weights errors


@pytest.mark.parametrize("model_id, url, file_name", [
    ("presto", PRESTO_URL, "default_model.pt"), ("galileo_nano", GALILEO_NANO_URL, "encoder.pt")])
def test_missing_weights_offline_say_where_to_put_them(tmp_path, model_id, url, file_name):
    cache = tmp_path / "cache"
    cache.mkdir()
    emb = create(model_id, {}, weights_dir=str(cache), allow_download=False)
    with pytest.raises(WeightsError) as err:
        emb.load()
    msg = str(err.value)
    expected = os.path.abspath(os.path.join(str(cache), model_id, file_name))
    assert f"'{model_id}'" in msg and url in msg and expected in msg
    assert list(cache.iterdir()) == []  # nothing was written


def test_galileo_tiny_needs_a_pinned_sha256(tmp_path):
    emb = create("galileo_tiny", {}, weights_dir=str(tmp_path))
    with pytest.raises(WeightsError) as err:
        emb.load()
    msg = str(err.value)
    assert "galileo_tiny" in msg and "models.galileo_tiny.weights_sha256.encoder.pt" in msg
    assert "sha256sum" in msg
    # once pinned, the next problem is the missing file (told where it goes)
    pinned = create("galileo_tiny", {}, weights_dir=str(tmp_path), weights_pins={"encoder.pt": "ab" * 32})
    with pytest.raises(WeightsError, match="place the file at") as err:
        pinned.load()
    assert str(tmp_path / "galileo_tiny" / "encoder.pt") in str(err.value)


def test_sha256_mismatch_is_refused_before_loading(tmp_path):
    original = Path(presto_paths()["default_model.pt"])
    ckpt = torch.load(original, map_location="cpu", weights_only=True)
    key = "encoder.blocks.0.mlp.fc1.weight"
    raw = bytearray(original.read_bytes())
    offset = bytes(raw).find(ckpt[key].numpy().tobytes()[:256])
    assert offset > 0
    raw[offset] ^= 0x01  # lowest mantissa bit of one float
    copy = tmp_path / "default_model.pt"
    copy.write_bytes(bytes(raw))
    # the copy is still a loadable checkpoint, differing in one value: only the hash can tell
    changed = torch.load(copy, map_location="cpu", weights_only=True)
    assert [k for k in ckpt if not torch.equal(ckpt[k], changed[k])] == [key]

    emb = create("presto", {}, weights_paths={"default_model.pt": str(copy)})
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        emb.load()
    assert published_sha256(PRESTO_DIR) in str(err.value) and str(copy) in str(err.value)
    assert not hasattr(emb, "net")


# ---------------------------------------------------------------- CLI


def _cli(config: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "eoembed"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "eoembed.cli"]
    return subprocess.run([*cmd, "weights", "status", "--config", str(config)], capture_output=True,
                          text=True, timeout=120)


def _config(tmp_path: Path, models: dict) -> Path:
    config = {"rois": str(tmp_path / "rois.tsv"),
              "provider": {"name": "local", "catalog": str(tmp_path / "catalog.json")},
              "sensors": {"s2": {"bands": list(BANDS12), "frames": 12}},
              "models": models, "weights": {"dir": str(tmp_path / "cache"), "allow_download": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _row(out: str, model: str, file_name: str) -> str:
    rows = [line for line in out.splitlines() if line.split()[:2] == [model, file_name]]
    assert len(rows) == 1, out
    return rows[0]


def test_weights_status_cli(tmp_path):
    presto_file = presto_paths()["default_model.pt"]
    config = _config(tmp_path, {"presto": {"sensor": "s2", "weights": {"default_model.pt": presto_file}},
                                "galileo_nano": {"sensor": "s2"}})
    proc = _cli(config)
    assert proc.returncode == 1, proc.stderr  # something is missing
    presto_row = _row(proc.stdout, "presto", "default_model.pt")
    assert " ok " in presto_row and presto_file in presto_row
    for name in ("encoder.pt",):
        row = _row(proc.stdout, "galileo_nano", name)
        assert " missing " in row and str(tmp_path / "cache" / "galileo_nano" / name) in row

    # with every file placed in the cache, all rows are ok and the exit code is 0
    for name, src in galileo_paths().items():
        (tmp_path / "cache" / "galileo_nano").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, tmp_path / "cache" / "galileo_nano" / name)
    proc = _cli(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for model, name in (("presto", "default_model.pt"), ("galileo_nano", "encoder.pt")):
        assert " ok " in _row(proc.stdout, model, name)
