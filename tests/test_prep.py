"""The framework side of the model contract: input prep (resize / tile / pad), georeferenced token
grids, normalisation and derived bands from the declarations, and a contract check on model modules.

The synthetic "model" here returns, per 16 x 16 patch, the mean of its input pixels. Fed a
composite whose two bands hold each pixel's easting and northing, every output cell must then hold
the coordinates of its own centre: a direct check that token grids are georeferenced right.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from eoembed.errors import ModelError
from eoembed.grid import grid_for
from eoembed.items import Composite
from eoembed.models.base import Embedder, ModelCard
from eoembed.models.inputs import BandNorm, Derived, InputSpec, SpacePolicy, TimePolicy
from eoembed.prep import TokenGrid, normalise
from eoembed.specs import OutputSpec, PointBuffer

P = 16


class PatchMean(Embedder):
    card = ModelCard(
        id="patch_mean", family="test", kind="on_the_fly", description="mean of each patch",
        inputs=(InputSpec("s2", ("sentinel-2-l2a",), ("B02", "B03"), (BandNorm(), BandNorm()),
                          space=SpacePolicy("fixed", size=224, token_px=P)),),
        dims=2, outputs=("pooled", "grid"))

    def forward(self, batch):
        x, miss = batch.x["s2"][:, 0], batch.mask["s2"][:, 0]  # (B, 2, 224, 224)
        b, c, h, w = x.shape
        ok = (~miss).astype(np.float64)
        num = (x * ok[:, None]).reshape(b, c, h // P, P, w // P, P).sum(axis=(3, 5))
        den = ok.reshape(b, h // P, P, w // P, P).sum(axis=(2, 4))
        with np.errstate(invalid="ignore"):
            return TokenGrid(num / np.where(den > 0, den, np.nan)[:, None], den)


def coordinate_composite(buffer_m: float) -> Composite:
    """Bands B02/B03 hold each pixel centre's easting/northing (metres)."""
    grid = grid_for(PointBuffer(5.62, 52.55, buffer_m), 10.0)
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    data = np.stack([xx, yy])[None].astype(np.float64)
    h, w = grid.height, grid.width
    return Composite(data, np.ones((1, h, w), bool), [(dt.date(2023, 1, 1), dt.date(2024, 1, 1))],
                     ("B02", "B03"), grid, np.ones((h, w), bool), 0.0, "median")


def cell_centres(grid, cell: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    a, _, c, _, e, f = grid.transform
    return c + a * cell * (np.arange(cols) + 0.5), f + e * cell * (np.arange(rows) + 0.5)


def test_tile_mode_4km_roi_is_stitched_and_georeferenced() -> None:
    comp = coordinate_composite(2000.0)  # 4 km -> 400 x 400 px at 10 m: two 224-px tiles per side
    assert comp.grid_shape() == (400, 400)
    model = PatchMean(input_prep={"mode": "tile", "max_tiles": 4})
    (grid,) = model.embed_batch([comp], OutputSpec.grid())
    token_grid, cell = model.grid_info[0]
    assert model.prep_used == ["tile"] and cell == 1 and grid.shape == (2, 25, 25)
    assert token_grid.res == 160.0 and token_grid.transform[2] == comp.grid.transform[2]
    x, y = cell_centres(token_grid, cell, 25, 25)
    np.testing.assert_allclose(grid[0], np.broadcast_to(x, (25, 25)), atol=0.05)
    np.testing.assert_allclose(grid[1], np.broadcast_to(y[:, None], (25, 25)), atol=0.05)
    # cells of 320 m = 2 x 2 tokens, still centred right
    (coarse,) = model.embed_batch([comp], OutputSpec.grid(320.0))
    tg, cell = model.grid_info[0]
    x2, y2 = cell_centres(tg, cell, 13, 13)
    assert coarse.shape == (2, 13, 13)
    np.testing.assert_allclose(coarse[0, :12, :12], np.broadcast_to(x2[:12], (12, 12)), atol=0.05)
    np.testing.assert_allclose(coarse[1, :12, 0], y2[:12], atol=0.05)
    with pytest.raises(ModelError, match="max_tiles=3"):
        PatchMean(input_prep={"mode": "tile", "max_tiles": 3}).embed_batch([comp], OutputSpec.grid())


def test_resize_mode_spreads_tokens_over_the_roi_extent() -> None:
    comp = coordinate_composite(2000.0)
    model = PatchMean()  # default prep of a fixed-size model: resize
    (grid,) = model.embed_batch([comp], OutputSpec.grid())
    tg, cell = model.grid_info[0]
    assert model.prep_used == ["resize"] and grid.shape == (2, 14, 14)
    assert tg.res == pytest.approx(4000 / 14) and tg.bounds == pytest.approx(comp.grid.bounds)
    x, y = cell_centres(tg, cell, 14, 14)
    inner = slice(1, 13)  # the outermost tokens see the edge clamp of the resampling
    np.testing.assert_allclose(grid[0][inner, inner], np.broadcast_to(x[inner], (12, 12)), atol=1.0)
    np.testing.assert_allclose(grid[1][inner, inner], np.broadcast_to(y[inner, None], (12, 12)), atol=1.0)
    assert np.abs(grid[0] - x).max() < tg.res / 2  # even edge tokens lie in their own footprint


def test_pad_mode_keeps_native_tokens_and_masks_the_padding() -> None:
    comp = coordinate_composite(500.0)  # 100 x 100 px, padded to 224
    model = PatchMean(input_prep={"mode": "pad"})
    (grid,), (pooled,) = model.embed_outputs([comp], [OutputSpec.grid(), OutputSpec.pooled()])
    tg, cell = model.grid_info[0]
    assert grid.shape == (2, 7, 7)  # ceil(100 / 16) tokens, padding-only tokens cropped
    x, y = cell_centres(tg, cell, 7, 7)
    np.testing.assert_allclose(grid[0, :, :6], np.broadcast_to(x[:6], (7, 6)), atol=0.05)
    # the last column of tokens holds 4 real pixels (96..99) and 12 masked padding pixels
    np.testing.assert_allclose(grid[0, 0, 6], comp.grid.x_coords()[96:100].mean(), atol=0.05)
    # pooled mean = mean of every real pixel (token means weighted by their pixel counts)
    np.testing.assert_allclose(pooled, comp.data[0].reshape(2, -1).mean(axis=1), atol=0.05)
    with pytest.raises(ModelError, match="larger than the model input"):
        PatchMean(input_prep={"mode": "pad"}).embed_batch([coordinate_composite(2000.0)], OutputSpec.pooled())


def test_normalise_applies_declared_norm_derived_and_missing_policies() -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(100, 3000, (2, 3, 4, 4))
    valid = np.ones((2, 4, 4), bool)
    valid[1, 0, 0] = False
    roi = np.ones((4, 4), bool)
    roi[3, 3] = False
    comp = Composite(data.astype(np.float32), valid, [(dt.date(2023, 1, 1), dt.date(2023, 2, 1)),
                                                       (dt.date(2023, 2, 1), dt.date(2023, 3, 1))],
                     ("B04", "B08", "B11"), grid_for(PointBuffer(5, 52, 20), 10), roi, 0.0, "median")
    spec = InputSpec("s2", ("sentinel-2-l2a",), ("B08", "B04"), (BandNorm(1000, 500), BandNorm(0, 10000)),
                     derived=(Derived("NDVI", ("B08", "B04"), stage="raw", norm=BandNorm(0.5, 2.0)),),
                     time=TimePolicy(1, 2))
    x, miss = normalise(comp, spec)
    b08, b04 = data[:, 1].astype(np.float32).astype(np.float64), data[:, 0].astype(np.float32).astype(np.float64)
    assert x.shape == (2, 3, 4, 4) and miss[1, 0, 0] and miss[:, 3, 3].all() and miss.sum() == 3
    ok = ~miss
    np.testing.assert_allclose(x[:, 0][ok], ((b08 - 1000) / 500)[ok], rtol=1e-5)
    np.testing.assert_allclose(x[:, 1][ok], (b04 / 10000)[ok], rtol=1e-5)
    np.testing.assert_allclose(x[:, 2][ok], ((((b08 - b04) / (b08 + b04)) - 0.5) / 2.0)[ok], rtol=1e-5)
    assert (x[:, :, 3, 3] == 0).all() and (x[1, :, 0, 0] == 0).all()
    filled, miss0 = normalise(comp, InputSpec(**{**spec.__dict__, "missing": "fill_zero"}))
    assert not miss0.any() and filled[1, 0, 0, 0] == 0.0
    db = InputSpec("s1", ("sentinel-2-l2a",), ("B04",), (BandNorm(),), transform="db")
    xdb, _ = normalise(comp, db)
    np.testing.assert_allclose(xdb[0, 0][roi], (10 * np.log10(data[0, 0].astype(np.float32)))[roi], rtol=1e-5)


MODEL_DIR = Path(__file__).resolve().parents[1] / "src" / "eoembed" / "models"
#: What only the framework may do: prep functions, raw composite access, unit constants.
FORBIDDEN_NAMES = {"resize_to", "pad_to_multiple", "STACK_SCALE", "normalise"}  # (F.interpolate is not
#: listed: FlexiViT-style models legitimately resize their patch-embedding kernels with it)
#: Composite internals (as attributes: ``comp.valid``), reserved to the framework.
FORBIDDEN_ATTRS = {"band_data", "fill_value", "roi_mask", "valid", "frame_bounds"}


def test_contract_no_model_module_preps_pixels_itself() -> None:
    """Model modules (everything in models/ but the declarations and the base) use none of the
    framework's prep functions, composite internals or unit constants: the contract is enforced by
    reading their code. A module that, say, called ``comp.band_data`` or divided by STACK_SCALE fails."""
    offenders = []
    for path in sorted(MODEL_DIR.glob("*.py")):
        if path.name in ("__init__.py", "base.py", "inputs.py", "registry.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                    else node.name if isinstance(node, ast.alias) else None)
            if isinstance(node, ast.Attribute) and name in FORBIDDEN_ATTRS:
                offenders.append(f"{path.name}:{node.lineno} uses .{name}")
            elif name in FORBIDDEN_NAMES and not (path.name in ("mosaiks.py", "spectral.py") and name == "STACK_SCALE"
                                                 and (isinstance(node, ast.alias) or _only_in_declarations(tree, node))):
                offenders.append(f"{path.name}:{getattr(node, 'lineno', '?')} uses {name}")
    assert offenders == []


def _only_in_declarations(tree: ast.Module, target: ast.AST) -> bool:
    """True when ``target`` sits in a module-level assignment of an InputSpec (a declaration)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(n is target for n in ast.walk(stmt)):
            return "InputSpec" in ast.unparse(stmt.value)
    return False


def test_contract_check_catches_a_model_that_preps_itself(tmp_path: Path) -> None:
    """The check above can fail: the same walk flags a module that touches composite internals."""
    code = "def forward(comp):\n    return comp.band_data(['B04']) / 10000\n"
    tree = ast.parse(code)
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert names & FORBIDDEN_ATTRS == {"band_data"}


def test_per_image_minmax_and_clip_are_declared_and_applied() -> None:
    comp = coordinate_composite(50.0)  # 10 x 10 px of eastings / northings
    comp.valid[0, 0, 0] = False  # an invalid pixel takes no part in the min/max
    comp.data[0, :, 0, 0] = 1e9
    base = InputSpec("s2", ("sentinel-2-l2a",), ("B02", "B03"), (BandNorm(), BandNorm()))
    x, miss = normalise(comp, InputSpec(**{**base.__dict__, "per_image": "minmax"}))
    ok = ~miss[0]
    vals = comp.data[0][:, ok].astype(np.float64)
    lo, hi = vals.min(), vals.max()
    np.testing.assert_allclose(x[0][:, ok], (vals - lo) / (hi - lo), atol=1e-6)
    assert x[0][:, ok].min() == 0.0 and x[0][:, ok].max() == pytest.approx(1.0)
    clipped, _ = normalise(comp, InputSpec(**{**base.__dict__, "norm": (BandNorm(float(np.median(comp.data[0, 0])), 10.0),
                                                                      BandNorm()), "clip": (-1.0, 1.0)}))
    assert clipped[0, 0].min() == -1.0 and clipped[0, 0].max() == 1.0 and clipped[0, 1].max() == 1.0
    with pytest.raises(Exception, match="per_image"):
        InputSpec(**{**base.__dict__, "per_image": "zscore"})
