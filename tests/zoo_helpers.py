"""Shared helpers of the model-zoo tests (tests/test_zoo1_*.py): seeded random weights written in a
published container, a real Sentinel-2 patch as a composite, and the framework's prep of it."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest

from eoembed.grid import grid_for
from eoembed.items import Composite
from eoembed.models.registry import create, get_card
from eoembed.prep import InputPrep, ReadyBatch, batches, pieces_for
from eoembed.specs import PointBuffer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PATCHES = SHARED / "imagery" / "s2_l2a_patches" / "images"


def random_state(net: "torch.nn.Module", seed: int, drop: tuple[str, ...] = (), he: bool = False) -> dict:
    """A seeded random state dict for ``net`` (positive BN variances), without the ``drop`` keys.

    ``he``: matrices drawn with std sqrt(2 / fan_in) instead of 0.02, so a deep CNN's output still
    depends on its input (with 0.02 the biases dominate after ~50 layers), norm scales near 1."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in net.state_dict().items():
        if k in drop:
            continue
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            if he and v.ndim == 1:  # norm scales near 1, small biases
                base = 1.0 if k.endswith("weight") else 0.0
                out[k] = base + torch.randn(v.shape, generator=g) * 0.05
                continue
            scale = (2.0 / max(1, v[0].numel())) ** 0.5 if he and v.ndim > 1 else 0.02 if v.ndim > 1 else 0.1
            out[k] = torch.randn(v.shape, generator=g) * scale
    return out


def write(state, path: Path) -> tuple[str, str]:
    """Write ``state`` in the container its file name says (safetensors or torch.save); path, sha256."""
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        import torch

        torch.save(state, path)
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def model_with(model_id: str, state, tmp_path: Path):
    name = get_card(model_id).weights[0].name
    path, sha = write(state, tmp_path / name)
    return create(model_id, weights_paths={name: path}, weights_pins={name: sha})


def ready(x: np.ndarray, channels) -> ReadyBatch:
    b = x.shape[0]
    return ReadyBatch(x={"s2": x[:, None]}, mask={"s2": np.zeros((b, 1, *x.shape[2:]), bool)},
                      channels={"s2": tuple(channels)}, months=np.zeros((b, 1), np.int64),
                      doy=np.zeros((b, 1), np.int64), latlon=np.zeros((b, 2)), pixel_latlon=None, gsd_m=10.0)


def patch_dn() -> tuple[np.ndarray, float, float]:
    """A real 256 px patch: ``(12, 256, 256)`` DN (B01..B12 without B10) and its centre lon/lat."""
    rasterio = pytest.importorskip("rasterio")
    from pyproj import Transformer

    if not PATCHES.is_dir():
        pytest.skip(f"shared data not available: {PATCHES}")
    path = sorted(PATCHES.glob("*.tif"))[0]
    with rasterio.open(path) as src:
        dn = src.read().astype(np.float32)
        b = src.bounds
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(
            (b.left + b.right) / 2, (b.bottom + b.top) / 2)
    assert dn.shape == (12, 256, 256)
    return dn, lon, lat


def composite(dn: np.ndarray, bands, lon: float, lat: float, collection: str) -> Composite:
    c, h, w = dn.shape
    grid = grid_for(PointBuffer(lon, lat, h * 5.0), 10.0)
    assert (grid.height, grid.width) == (h, w)
    return Composite(dn[None], np.ones((1, h, w), bool), [(dt.date(2022, 6, 1), dt.date(2022, 7, 1))],
                     tuple(bands), grid, np.ones((h, w), bool), 0.0, "median", collection=collection)


def framework_input(model, comp: Composite, mode: str = "resize") -> np.ndarray:
    """What the network is handed for ``comp``: the framework's prep (the model's default input prep,
    which must be ``mode``), then the model's own channel layout (``network_input``)."""
    specs = {s.modality: s for s in model.inputs()}
    pieces, _, used = pieces_for(0, {"s2": comp}, model.inputs()[0], InputPrep())
    assert used == mode and len(pieces) == 1
    (_, batch), = list(batches(pieces, specs, 4))
    return model.network_input(batch)




def roi_grid_path(work: Path, model: str, roi_id: str) -> Path:
    """The grid export holding ``roi_id`` (chunks are hash buckets of the ids: look it up in the manifest)."""
    import pandas as pd

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    chunk = manifest[(manifest["roi_id"] == roi_id) & (manifest["model"] == model)]["chunk"].iloc[0]
    return work / f"results/export/{model}/grid/{chunk}.nc"
