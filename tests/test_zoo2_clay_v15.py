"""Clay v1.5 on the fly (TerraTorch 1.2.1's vendored Clay encoder): parity, key layout, preprocessing,
workflow.

1. parity: eoembed's embedder and TerraTorch's Clay ``Encoder`` loaded as Clay's own
   ``finetune/embedder/factory.py`` loads the published checkpoint (``model.encoder.*`` of its
   ``state_dict``, prefix stripped), given the same seeded file in the published container and a
   datacube built here from the dates and coordinates with Clay's ``normalize_timestamp`` /
   ``normalize_latlon`` formulas, give the same tokens (a shrunk encoder configuration: the ViT-L is
   checked on meta tensors in 2.); location, date and GSD are shown to change the tokens;
2. key layout: the Lightning container loads; a flat encoder-only file (no ``model.encoder.``) and an
   encoder of another size are refused with the keys named; the published ViT-L layout passes;
3. preprocessing: a real Sentinel-2 L2A patch through the framework equals Clay's published
   ``metadata.yaml`` transform (10 bands, ``(DN - mean) / std``), and the time / location / GSD / wavelengths
   handed to the encoder are Clay's encodings of the composite's middle day and centre;
4. workflow: clay_v15 (the real ViT-L, random fp16 weights) runs through snakemake on generated S2 imagery.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("terratorch.models.backbones.clay_v15.model")

from eoembed.collections import S2_BANDS  # noqa: E402
from eoembed.errors import WeightsError  # noqa: E402
from eoembed.models import clay_v15  # noqa: E402
from eoembed.models.registry import create  # noqa: E402
from eoembed.prep import ReadyBatch  # noqa: E402
from zoo_helpers import model_with, write  # noqa: E402

NAME = "clay-v1.5.ckpt"
#: Clay v1.5 = clay_mae_large's encoder (TerraTorch's / Clay's model.py)
LARGE = {"dim": 1024, "depth": 24, "heads": 16, "dim_head": 64, "mlp_ratio": 4.0, "patch_size": 8}
SHRUNK = {"dim": 72, "depth": 2, "heads": 3, "dim_head": 16, "mlp_ratio": 2.0, "patch_size": 8}
#: Clay-foundation/model configs/metadata.yaml, the sentinel-2-l2a entry as published (band_order, gsd, bands)
METADATA_YAML = """
sentinel-2-l2a:
  band_order: [blue, green, red, rededge1, rededge2, rededge3, nir, nir08, swir16, swir22]
  gsd: 10
  bands:
    mean: {blue: 1105., green: 1355., red: 1552., rededge1: 1887., rededge2: 2422., rededge3: 2630.,
           nir: 2743., nir08: 2785., swir16: 2388., swir22: 1835.}
    std: {blue: 1809., green: 1757., red: 1888., rededge1: 1870., rededge2: 1732., rededge3: 1697.,
          nir: 1742., nir08: 1648., swir16: 1470., swir22: 1379.}
    wavelength: {blue: 0.493, green: 0.56, red: 0.665, rededge1: 0.704, rededge2: 0.74, rededge3: 0.783,
                 nir: 0.842, nir08: 0.865, swir16: 1.61, swir22: 2.19}
"""
#: STAC common names of Clay's S2 bands -> ESA band designations
COMMON = {"blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
          "rededge3": "B07", "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}


def normalize_timestamp(date: dt.datetime):  # Clay's formula (its tutorials / stacchip)
    week = date.isocalendar().week * 2 * np.pi / 52
    hour = date.hour * 2 * np.pi / 24
    return (math.sin(week), math.cos(week)), (math.sin(hour), math.cos(hour))


def normalize_latlon(lat: float, lon: float):  # Clay's formula
    lat, lon = lat * np.pi / 180, lon * np.pi / 180
    return (math.sin(lat), math.cos(lat)), (math.sin(lon), math.cos(lon))


def encoder(arch: dict):
    return clay_v15.encoder_class()(mask_ratio=0.0, shuffle=False, patch_size=arch["patch_size"],
                                    dim=arch["dim"], depth=arch["depth"], heads=arch["heads"],
                                    dim_head=arch["dim_head"], mlp_ratio=arch["mlp_ratio"])


def published_checkpoint(arch: dict, seed: int, dtype=torch.float32) -> dict:
    """Seeded random weights in the published container: a Lightning checkpoint whose state_dict holds
    the ClayMAE's encoder and decoder (the frozen SAM teacher is left out of this stand-in)."""
    from terratorch.models.backbones.clay_v15.model import Decoder

    g = torch.Generator().manual_seed(seed)
    dec = Decoder(mask_ratio=0.0, patch_size=arch["patch_size"], encoder_dim=arch["dim"], dim=48, depth=1,
                  heads=2, dim_head=16, mlp_ratio=2.0)
    state = {}
    for prefix, net in (("model.encoder.", encoder(arch)), ("model.decoder.", dec)):
        for k, v in net.state_dict().items():
            scale = 0.05 if v.ndim > 1 else 0.1
            base = 1.0 if k.endswith("norm.weight") or ".norm" in k and k.endswith("weight") else 0.0
            state[prefix + k] = (base + torch.randn(v.shape, generator=g) * scale).to(dtype)
    state["model.proj.weight"] = torch.randn(768, arch["dim"], generator=g).to(dtype)
    return {"state_dict": state, "epoch": 76, "global_step": 1000}


def s2_batch(x: np.ndarray, date: dt.date, latlon, gsd: float = 10.0) -> ReadyBatch:
    b = x.shape[0]
    doy = date.timetuple().tm_yday - 1
    return ReadyBatch(x={"s2": x[:, None]}, mask={"s2": np.zeros((b, 1, *x.shape[2:]), bool)},
                      channels={"s2": clay_v15.BANDS}, months=np.full((b, 1), date.month - 1),
                      doy=np.full((b, 1), doy), latlon=np.asarray(latlon, np.float64), pixel_latlon=None,
                      gsd_m=gsd, years=np.full((b, 1), date.year))


def library_tokens(path: str, x: np.ndarray, date: dt.date, latlon, gsd: float) -> np.ndarray:
    """Clay's recipe: model.encoder.* of the checkpoint's state_dict into the encoder, then its
    datacube (normalised time and lat/lon, gsd, waves from metadata.yaml)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    net = encoder(SHRUNK).eval()
    enc = {k[len("model.encoder."):]: v for k, v in state.items() if k.startswith("model.encoder.")}
    with torch.no_grad():
        for name, param in net.named_parameters():
            param.data.copy_(enc[name])
    meta = yaml.safe_load(METADATA_YAML)["sentinel-2-l2a"]
    week, hour = normalize_timestamp(dt.datetime(date.year, date.month, date.day))
    lat_n, lon_n = zip(*[normalize_latlon(la, lo) for la, lo in latlon])
    cube = {"pixels": torch.from_numpy(x),
            "time": torch.tensor([[*week, *hour]] * len(x), dtype=torch.float32),
            "latlon": torch.tensor([[*a, *b] for a, b in zip(lat_n, lon_n)], dtype=torch.float32),
            "gsd": torch.tensor(gsd),
            "waves": torch.tensor([meta["bands"]["wavelength"][b] for b in meta["band_order"]])}
    with torch.no_grad():
        out = net(cube)[0][:, 1:]
    b, _, h, w = x.shape
    p = SHRUNK["patch_size"]
    return out.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2).numpy()


def test_parity_with_clays_recipe_on_the_terratorch_encoder(tmp_path, monkeypatch):
    for k, v in SHRUNK.items():
        monkeypatch.setitem(clay_v15.ARCH, k, v)
    path, sha = write(published_checkpoint(SHRUNK, seed=4), tmp_path / NAME)
    x = np.random.default_rng(1).normal(0, 1, (2, 10, 32, 32)).astype(np.float32)
    date, latlon = dt.date(2022, 6, 16), [[52.5, 5.6], [-0.35, 36.0]]
    model = create("clay_v15", weights_paths={NAME: path}, weights_pins={NAME: sha})
    model.load()
    got = model.forward(s2_batch(x, date, latlon)).features
    want = library_tokens(path, x, date, latlon, 10.0)
    assert got.shape == want.shape == (2, SHRUNK["dim"], 4, 4)
    assert np.abs(want).max() > 1e-3 and np.abs(want[0] - want[1]).max() > 1e-3
    assert np.abs(got - want).max() <= 1e-5
    # location, date and GSD reach the network
    moved = model.forward(s2_batch(x, date, [[10.0, 100.0], [-40.0, -60.0]])).features
    winter = model.forward(s2_batch(x, dt.date(2022, 1, 10), latlon)).features
    coarse = model.forward(s2_batch(x, date, latlon, gsd=30.0)).features
    for other in (moved, winter, coarse):
        assert np.abs(other - got).max() > 1e-4


def test_key_layout_lightning_container_only(tmp_path, monkeypatch):
    for k, v in SHRUNK.items():
        monkeypatch.setitem(clay_v15.ARCH, k, v)
    ckpt = published_checkpoint(SHRUNK, seed=2)
    model_with("clay_v15", ckpt, tmp_path).load()
    flat = {k[len("model.encoder."):]: v for k, v in ckpt["state_dict"].items()
            if k.startswith("model.encoder.")}
    with pytest.raises(WeightsError, match=r"published key layout.*missing e\.g\. \['model\.encoder\..*"
                       r"top-level names outside 'model\.encoder\.': \['cls_token'"):
        model_with("clay_v15", flat, tmp_path).load()
    bigger = published_checkpoint({**SHRUNK, "dim": 136}, seed=3)
    with pytest.raises(WeightsError, match=r"of another shape e\.g\. \['model\.encoder\.cls_token: "
                       r"\(1, 1, 136\) != \(1, 1, 72\)"):
        model_with("clay_v15", bigger, tmp_path).load()
    monkeypatch.undo()
    # the published ViT-L (clay_mae_large: 1024-d, 24 blocks, patch 8) on meta tensors
    with torch.device("meta"):
        large = {f"model.encoder.{k}": v for k, v in encoder(LARGE).state_dict().items()}
        model = create("clay_v15")
        net = model.build()
        assert set(model.encoder_state(large, net, "large")) == set(net.state_dict())
        short = {k: v for k, v in large.items() if ".layers.23." not in k}
        with pytest.raises(WeightsError,
                           match=r"missing e\.g\. \['model\.encoder\.transformer\.layers\.23\."):
            model.encoder_state(short, net, "large")


@pytest.mark.shared
def test_preprocessing_equals_clays_metadata_transform_on_a_real_patch():
    from zoo_helpers import composite, framework_input, patch_dn

    dn12, lon, lat = patch_dn()  # B01..B12 without B10, 256 px at 10 m = Clay's chip
    meta = yaml.safe_load(METADATA_YAML)["sentinel-2-l2a"]
    model = create("clay_v15")
    assert model.inputs()[0].bands == tuple(COMMON[b] for b in meta["band_order"])
    comp = composite(dn12, S2_BANDS, lon, lat, "sentinel-2-l2a")  # window 2022-06-01 .. 2022-07-01
    got = framework_input(model, comp)
    order = [S2_BANDS.index(COMMON[b]) for b in meta["band_order"]]
    mean = np.asarray([meta["bands"]["mean"][b] for b in meta["band_order"]], np.float32)[:, None, None]
    std = np.asarray([meta["bands"]["std"][b] for b in meta["band_order"]], np.float32)[:, None, None]
    published = (dn12[order] - mean) / std
    assert got.shape == (1, 10, 256, 256) and dn12.max() > 2000
    assert np.abs(got[0] - published).max() <= 1e-6
    # the metadata the encoder gets: Clay's encodings of the middle day (2022-06-16, hour 0), centre, GSD
    from eoembed.prep import InputPrep, batches, pieces_for

    spec = model.inputs()[0]
    pieces, _, _ = pieces_for(0, {"s2": comp}, spec, InputPrep())
    (_, batch), = list(batches(pieces, {"s2": spec}, 4))
    cube = model.datacube(batch)
    week, hour = normalize_timestamp(dt.datetime(2022, 6, 16))
    np.testing.assert_allclose(cube["time"][0].numpy(), [*week, *hour], atol=1e-6)
    (sla, cla), (slo, clo) = normalize_latlon(lat, lon)
    np.testing.assert_allclose(cube["latlon"][0].numpy(), [sla, cla, slo, clo], atol=1e-4)
    assert float(cube["gsd"]) == pytest.approx(meta["gsd"])
    np.testing.assert_allclose(cube["waves"].numpy(),
                               [meta["bands"]["wavelength"][b] for b in meta["band_order"]])


@pytest.mark.slow
def test_workflow_runs_clay_v15_on_generated_s2_imagery(tmp_path):
    import geopandas as gpd
    import pandas as pd

    from eoembed.export_grid import open_grid
    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config
    from zoo_helpers import roi_grid_path

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, tile_px=48, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=1, sites=sites, tile_px=48)
    path, sha = write(published_checkpoint(LARGE, seed=9, dtype=torch.float16), tmp_path / NAME)
    work = tmp_path / "run"
    work.mkdir()
    write_config(work, index, rois, models={"clay_v15": {"sensor": "s2", "weights": {NAME: path},
                                                         "weights_sha256": {NAME: sha}}},
                 benchmark=False, chunk_size=2,
                 weights={"dir": str(tmp_path / "empty_cache"), "allow_download": False},
                 output={"grid": True, "grid_cell_m": 80})

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert list(manifest["status"]) == ["ok", "ok"], manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / "results/export/clay_v15/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    assert emb.shape == (2, 1024) and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1])
    roi = manifest["roi_id"].iloc[0]
    values = open_grid(roi_grid_path(work, "clay_v15", roi), roi)["embedding"].values
    assert values.shape[0] == 1024 and values.shape[1] * values.shape[2] > 1 and np.isfinite(values).all()
