"""OlmoEarth v1 (olmoearth-pretrain-minimal 0.1.5): parity, key layout, preprocessing, workflow.

1. parity: eoembed's embedder and the library's own loader (``load_model_from_path(<dir>)``, which
   reads ``config.json`` + ``weights.pth`` as published on Hugging Face), given the same seeded
   random weights, give the same per-patch tokens (the library's ``pool_unmasked_tokens`` spatial
   mean; with gaps, the masked mean of rslearn's wrapper) and pooled vector (the library's
   instance-wise mean); the month of each frame is shown to matter, day and year not (v1);
2. key layout: the published LatentMIM file loads; an encoder-only file and another size's file are
   refused with the keys named; base / large are checked on meta tensors;
3. preprocessing: a real Sentinel-2 patch as a 2-frame composite through the framework equals the
   library's ``Normalizer(std_multiplier=2.0)`` in the library's band order, with timestamps
   ``[day, month - 1, year]`` of each frame's middle day;
4. workflow: olmoearth_nano runs through snakemake on generated S2 imagery (random weights).
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
loader = pytest.importorskip("olmoearth_pretrain_minimal.model_loader")

from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.nn.flexi_vit import PoolingType  # noqa: E402
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.olmoearth_pretrain_v1 import (  # noqa: E402
    OlmoEarthPretrain_v1,
)
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.constants import Modality  # noqa: E402

from eoembed.collections import S2_BANDS  # noqa: E402
from eoembed.errors import WeightsError  # noqa: E402
from eoembed.grid import grid_for  # noqa: E402
from eoembed.items import Composite  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.prep import InputPrep, ReadyBatch, batches, pieces_for  # noqa: E402
from eoembed.specs import PointBuffer  # noqa: E402
from zoo_helpers import model_with, patch_dn, random_state, write  # noqa: E402

#: the published config.json's model section as the library reads it (sizes from the OlmoEarth
#: v1 model table: nano 128-d 4 blocks 8 heads, tiny 192-d 12 blocks 3 heads; 4-block decoders)
SIZES = {"nano": (128, 4, 8), "tiny": (192, 12, 3)}
MODALITIES = ["sentinel2_l2a", "sentinel1", "landsat", "worldcover", "srtm", "openstreetmap_raster",
              "wri_canopy_height_map", "cdl", "worldcereal"]


def published_dir(variant: str, tmp_path, seed: int):
    """A Hugging Face layout directory: config.json + weights.pth (seeded random LatentMIM)."""
    d, depth, heads = SIZES[variant]
    enc = {"_CLASS_": "olmoearth_pretrain.nn.flexi_vit.EncoderConfig", "supported_modality_names": MODALITIES,
           "embedding_size": d, "num_heads": heads, "depth": depth, "mlp_ratio": 4.0, "max_patch_size": 8,
           "drop_path": 0.1, "max_sequence_length": 12}
    dec = {"_CLASS_": "olmoearth_pretrain.nn.flexi_vit.PredictorConfig",
           "supported_modality_names": MODALITIES,
           "encoder_embedding_size": d, "decoder_embedding_size": d, "depth": 4, "mlp_ratio": 4.0,
           "num_heads": heads, "max_sequence_length": 12}
    cfg = {"model": {"_CLASS_": "olmoearth_pretrain.nn.latent_mim.LatentMIMConfig", "encoder_config": enc,
                     "decoder_config": dec},
           "train_module": {"masking_config": {
               "strategy_config": {"only_decode_modalities": MODALITIES[3:]}}}}
    out = tmp_path / f"OlmoEarth-v1-{variant}"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(cfg))
    state = random_state(loader.load_model_from_path(out, load_weights=False), seed=seed)
    path, sha = write(state, out / "weights.pth")
    return out, path, sha, state


def s2_batch(x, months, mask=None, day=15, year=2022) -> ReadyBatch:
    """``x (B, T, 12, H, W)`` in the declared band order; frames' middle days on ``day`` of ``months``."""
    b, t, _, h, w = x.shape
    months = np.asarray(months, np.int64)
    doy = np.array([[dt.date(year, m + 1, day).timetuple().tm_yday - 1 for m in row] for row in months])
    return ReadyBatch(x={"s2": x}, mask={"s2": np.zeros((b, t, h, w), bool) if mask is None else mask},
                      channels={"s2": get_card("olmoearth_nano").bands}, months=months, doy=doy,
                      latlon=np.zeros((b, 2)), pixel_latlon=None, gsd_m=10.0, years=np.full((b, t), year))


def library_out(lib, sample):
    with torch.inference_mode():
        return lib.encoder(sample, patch_size=8, input_res=10, fast_pass=False)["tokens_and_masks"]


@pytest.mark.parametrize("variant,frames,px", [("nano", 3, 32), ("tiny", 2, 16)])
def test_parity_with_the_library_loading_the_published_files(variant, frames, px, tmp_path):
    folder, path, sha, _ = published_dir(variant, tmp_path, seed=5)
    lib = loader.load_model_from_path(folder).eval()  # the library's own loader reads both files
    model = create(f"olmoearth_{variant}", weights_paths={"weights.pth": path},
                   weights_pins={"weights.pth": sha})
    model.load()
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.3, (2, frames, 12, px, px)).astype(np.float32)
    months = [[2 + 3 * i for i in range(frames)], [i for i in range(frames)]]
    batch = s2_batch(x, months)
    got = model.forward(batch)
    out = library_out(lib, model.sample(batch))
    want = out.pool_unmasked_tokens(PoolingType.MEAN, spatial_pooling=True).permute(0, 3, 1, 2).numpy()
    dims = get_card(f"olmoearth_{variant}").dims
    assert got.features.shape == want.shape == (2, dims, px // 8, px // 8)
    assert np.abs(want).max() > 1e-2 and np.abs(want[0] - want[1]).max() > 1e-3
    assert np.abs(got.features - want).max() <= 1e-5
    np.testing.assert_array_equal(got.weight, 1.0)
    # the months reach the network; v1 reads nothing else of the timestamps
    later = model.forward(s2_batch(x, [[m + 1 for m in row] for row in months])).features
    assert np.abs(later - got.features).max() > 1e-3
    other_day = model.forward(s2_batch(x, months, day=3, year=2019)).features
    assert np.abs(other_day - got.features).max() <= 1e-6
    # gaps: tokens of all-gap patches are MISSING; the patch keeps the mean of its valid tokens
    mask = np.zeros((2, frames, px, px), bool)
    mask[0, 0, :8, :8] = True  # one patch of frame 0 has no valid pixel
    mask[0, :, 8:16, :8] = True  # a patch with no valid pixel in any frame
    mask[1, 0, 0, 0] = True  # one gap pixel: the patch stays
    gapped = s2_batch(np.where(mask[:, :, None], 0.0, x).astype(np.float32), months, mask)
    got = model.forward(gapped)
    sample = model.sample(gapped)
    out = library_out(lib, sample)
    valid = (out.sentinel2_l2a_mask == 0).float()
    want = ((out.sentinel2_l2a * valid[..., None]).sum((3, 4)) / valid.sum((3, 4)).clamp(min=1)[..., None])
    want = want.permute(0, 3, 1, 2).numpy()
    assert got.weight[0, 0, 0] == pytest.approx((frames - 1) / frames) and got.weight[0, 1, 0] == 0
    assert (got.weight[1] == 1).all()
    ok = got.weight > 0
    assert np.abs((got.features - want).transpose(0, 2, 3, 1)[ok]).max() <= 1e-5
    # pooled = the library's instance-wise mean over every valid token
    pooled = (got.features * got.weight[:, None]).sum((2, 3)) / got.weight.sum((1, 2))[:, None]
    lib_pooled = out.pool_unmasked_tokens(PoolingType.MEAN, spatial_pooling=False).numpy()
    assert np.abs(pooled - lib_pooled).max() <= 1e-5
    # a piece without any valid pixel (the library refuses it) gets weight 0, the others are unchanged
    blank = s2_batch(np.concatenate([np.zeros_like(x[:1]), gapped.x["s2"][1:]]), months,
                     np.concatenate([np.ones_like(mask[:1]), mask[1:]]))
    both = model.forward(blank)
    assert (both.weight[0] == 0).all() and (both.features[0] == 0).all()
    assert np.abs(both.features[1] - got.features[1]).max() <= 1e-5


def test_key_layout_published_latent_mim_file_only(tmp_path):
    _, _, _, state = published_dir("nano", tmp_path, seed=2)
    assert {k.split(".")[0] for k in state} == {"encoder", "target_encoder", "decoder"}
    model_with("olmoearth_nano", state, tmp_path).load()
    encoder_only = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    with pytest.raises(WeightsError, match=r"published key layout.*missing e\.g\. \['encoder\.blocks\..*"
                       r"unexpected e\.g\. \['blocks\."):
        model_with("olmoearth_nano", encoder_only, tmp_path).load()
    tiny = OlmoEarthPretrain_v1("tiny", "v1").model.state_dict()
    with pytest.raises(WeightsError, match=r"128 unexpected e\.g\. \['encoder\.blocks\.10\..*"
                       r"of another shape e\.g\. \['encoder\.blocks\.0\.norm1\.weight: \(192,\) != \(128,\)"):
        model_with("olmoearth_nano", tiny, tmp_path).load()
    # the big sizes: the published LatentMIM layouts on meta tensors pass, another size's does not
    for variant in ("base", "large"):
        with torch.device("meta"):
            published = OlmoEarthPretrain_v1(variant, "v1").model.state_dict()
            model = create(f"olmoearth_{variant}")
            net = model.build()
            enc = model.encoder_state(published, net, variant)
        assert set(enc) == set(net.state_dict()) and len(enc) > 100
    with torch.device("meta"), pytest.raises(
            WeightsError, match=r"192 missing e\.g\. \['encoder\.blocks\.12\..*"
                                r"of another shape e\.g\. \['encoder\..*\(768.*!= \(1024"):
        base = OlmoEarthPretrain_v1("base", "v1").model.state_dict()
        model.encoder_state(base, net, "large")


def s2_composite(dn_frames: np.ndarray, lon: float, lat: float) -> Composite:
    t, _, h, w = dn_frames.shape
    grid = grid_for(PointBuffer(lon, lat, h * 5.0), 10.0)
    assert (grid.height, grid.width) == (h, w)
    windows = [(dt.date(2022, 5 + i, 1), dt.date(2022, 6 + i, 1)) for i in range(t)]
    return Composite(dn_frames, np.ones((t, h, w), bool), windows, S2_BANDS, grid, np.ones((h, w), bool), 0.0,
                     "median", collection="sentinel-2-l2a")


@pytest.mark.shared
def test_preprocessing_equals_the_library_normalizer_on_a_real_patch():
    from olmoearth_pretrain_minimal import Normalizer

    dn12, lon, lat = patch_dn()
    frames = np.stack([dn12, dn12 * 0.8])[:, :, :128, :128]  # two dates, 128 px
    model = create("olmoearth_base")
    spec = model.inputs()[0]
    pieces, _, used = pieces_for(0, {"s2": s2_composite(frames, lon, lat)}, spec, InputPrep())
    assert used == "tile" and len(pieces) == 1
    (_, batch), = list(batches(pieces, {"s2": spec}, 4))
    sample = model.sample(batch)
    got = sample.sentinel2_l2a.numpy()  # (B, H, W, T, C) as the library takes it
    order = [S2_BANDS.index(b) for b in Modality.SENTINEL2_L2A.band_order]
    published = Normalizer(std_multiplier=2.0).normalize(Modality.SENTINEL2_L2A,
                                                         frames[:, order].transpose(2, 3, 0, 1))
    assert got.shape == (1, 128, 128, 2, 12) and frames.max() > 2000
    assert np.abs(got[0] - published).max() <= 1e-6
    assert (sample.sentinel2_l2a_mask.numpy() == 0).all()
    # timestamps: [day, month - 1, year] of the middle days of the May and June windows
    mid = [dt.date(2022, 5, 16), dt.date(2022, 6, 16)]
    np.testing.assert_array_equal(sample.timestamps.numpy()[0], [[d.day, d.month - 1, d.year] for d in mid])


@pytest.mark.slow
def test_workflow_runs_olmoearth_on_generated_s2_imagery(tmp_path):
    import geopandas as gpd
    import pandas as pd
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    from eoembed.catalog import build_catalog
    from eoembed.export_grid import open_grid
    from workflow_helpers import snakemake
    from zoo_helpers import roi_grid_path

    rng = np.random.default_rng(0)
    files, dates = [], []
    sites = {"nl": ("EPSG:32631", 680000.0, 5826000.0), "es": ("EPSG:32630", 357000.0, 4613000.0)}
    for site, (crs, x0, y0) in sites.items():
        for month in (5, 7):
            data = (rng.uniform(300, 4000, (12, 48, 48)) + month * 50).astype(np.uint16)
            path = tmp_path / f"s2_{site}_{month}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=48, height=48, count=12, dtype="uint16",
                               crs=crs, transform=from_origin(x0, y0, 10, 10), nodata=0) as dst:
                dst.write(data)
            files.append(path)
            dates.append(f"2023-{month:02d}-15")
    index = build_catalog(files, tmp_path / "s2" / "catalog.json", bands=S2_BANDS, datetime=dates,
                          collection="sentinel-2-l2a", qa_value=4)
    rows = []
    for site, (crs, x0, y0) in sites.items():
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x0 + 240, y0 - 240)
        rows.append(f"{site}\t{lon}\t{lat}\t160\t2023")
    rois = tmp_path / "rois.tsv"
    rois.write_text("roi_id\tlon\tlat\tbuffer_m\tyear\n" + "\n".join(rows) + "\n")
    model_id = "olmoearth_nano"
    folder, path, sha, _ = published_dir("nano", tmp_path, seed=9)
    work = tmp_path / "run"
    work.mkdir()
    cfg = {"rois": str(rois), "chunk_size": 2,
           "provider": {"name": "local", "catalog": str(index), "retries": 1, "backoff_s": 0.01},
           "sample": {"enabled": False},
           "sensors": {"s2": {"collection": "sentinel-2-l2a", "bands": list(S2_BANDS), "scale_m": 10,
                              "frames": 2, "cloudy_pct": 100}},
           "models": {model_id: {"sensor": "s2", "weights": {"weights.pth": path},
                                 "weights_sha256": {"weights.pth": sha}}},
           "weights": {"dir": str(tmp_path / "empty_cache"), "allow_download": False},
           "output": {"grid": True, "grid_cell_m": 160}, "benchmark": {"targets": []}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert list(manifest["status"]) == ["ok", "ok"], manifest[["roi_id", "status", "error"]]
    gdf = gpd.read_parquet(work / f"results/export/{model_id}/embeddings.parquet")
    emb = np.stack(gdf["embedding"].to_numpy())
    assert emb.shape == (2, 128) and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1])
    grid = open_grid(roi_grid_path(work, model_id, "nl"), "nl")
    values = grid["embedding"].values
    assert values.shape[0] == 128 and values.shape[1] * values.shape[2] > 1 and np.isfinite(values).all()
