"""SatCLIP location encoders (satclip_l10 / satclip_l40): no library builds SatCLIP, so

1. parity: the spherical-harmonic features equal the real spherical harmonics built from
   ``scipy.special.sph_harm_y`` (the maintained library as the oracle) at many random points, for
   L = 10 and 40, and a known point gives the constants of the published generated code;
2. key layout: a Lightning .ckpt in the published layout (``state_dict`` with ``model.location.nnet.*``
   next to ``model.nnet.*``, ``model.visual.*``, ``hyper_parameters``) loads and its output equals an
   explicit ``sin(w0 (W x + b))`` re-computation on scipy's harmonics; wrong files are refused by name;
3. the request path: the ROI centre reaches the encoder as [lon, lat] (swapping changes the output);
4. workflow: satclip_l10 runs through snakemake with random weights and exports pooled vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import math

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
special = pytest.importorskip("scipy.special")

from eoembed.errors import ModelError, WeightsError  # noqa: E402
from eoembed.items import Request  # noqa: E402
from eoembed.models.registry import create, get_card  # noqa: E402
from eoembed.models.satclip import spherical_harmonics  # noqa: E402
from eoembed.specs import PointBuffer, TemporalSpec  # noqa: E402

# Real form of the complex Y_l^m (scipy includes the Condon-Shortley phase; the real form removes it),
# at SatCLIP's angles theta = radians(lat + 90), phi = radians(lon + 180); the published encoding
# multiplies its m = 0 terms by pi (its generated Yl0_m0 is 0.886226925452758 = pi / (2 sqrt(pi))).


def scipy_real_sh(lon: np.ndarray, lat: np.ndarray, legendre: int) -> np.ndarray:
    theta, phi = np.radians(lat + 90.0), np.radians(lon + 180.0)
    cols = []
    for ll in range(legendre):
        for m in range(-ll, ll + 1):
            y = special.sph_harm_y(ll, abs(m), theta, phi)
            if m == 0:
                cols.append(math.pi * y.real)
            elif m > 0:
                cols.append(math.sqrt(2) * (-1) ** m * y.real)
            else:
                cols.append(math.sqrt(2) * (-1) ** m * y.imag)
    return np.stack(cols, axis=-1)


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lon = np.concatenate([rng.uniform(-180, 180, n), [-180.0, 180.0, 0.0, 12.5]])
    lat = np.concatenate([rng.uniform(-90, 90, n), [0.0, 45.0, 90.0, -90.0]])  # incl. dateline and poles
    return lon, lat


# ---------------------------------------------------------------- 1. spherical harmonics (parity)


@pytest.mark.parametrize("legendre", [10, 40])
def test_spherical_harmonics_equal_scipy(legendre):
    lon, lat = random_points(400, seed=legendre)
    got = spherical_harmonics(torch.from_numpy(np.stack([lon, lat], axis=1)), legendre).numpy()
    ref = scipy_real_sh(lon, lat, legendre)
    assert got.shape == ref.shape == (len(lon), legendre ** 2)
    assert np.abs(ref[:, 1:]).max() > 0.3  # real, varying features (not only the constant Y_0^0)
    assert np.abs(got - ref).max() <= 1e-5


def test_known_point_gives_the_published_generated_constants():
    """lon 10, lat 30 -> theta 120 deg, phi 190 deg; the literals are the published sympy output
    (satclip/positional_encoding/spherical_harmonics_ylm.py, 2023-07-26)."""
    lon, lat = 10.0, 30.0
    t, p = math.radians(120.0), math.radians(190.0)
    c, s = math.cos(t), math.sin(t)
    published = {0: 0.886226925452758, 1: 0.48860251190292 * s * math.sin(p), 2: 1.53499006191973 * c,
                 3: 0.48860251190292 * s * math.cos(p), 6: 2.97249547320451 * c ** 2 - 0.990831824401503,
                 8: 0.18209140509868 * (3.0 - 3.0 * c ** 2) * math.cos(2 * p)}
    got = spherical_harmonics(torch.tensor([[lon, lat]], dtype=torch.float64), 10)[0].numpy()
    for k, v in published.items():
        assert abs(got[k] - v) <= 1e-9, (k, got[k], v)


# ---------------------------------------------------------------- 2. key layout + network


def siren_state(legendre: int, seed: int, hidden: int = 256, dims: int = 256) -> dict:
    """Seeded weights drawn like SatCLIP's SIREN init: first layer U(+-1/fan_in), then U(+-sqrt(6/fan_in))."""
    g = torch.Generator().manual_seed(seed)

    def u(shape, bound):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

    d_in = legendre ** 2
    return {"layers.0.weight": u((hidden, d_in), 1 / d_in), "layers.0.bias": u((hidden,), 1 / d_in),
            "layers.1.weight": u((hidden, hidden), math.sqrt(6 / hidden)),
            "layers.1.bias": u((hidden,), math.sqrt(6 / hidden)),
            "last_layer.weight": u((dims, hidden), math.sqrt(6 / hidden)),
            "last_layer.bias": u((dims,), math.sqrt(6 / hidden))}


def lightning_ckpt(net: dict, extra: dict | None = None) -> dict:
    """The published container: SatCLIPLightningModule's checkpoint (location network under both
    ``model.nnet`` and ``model.location.nnet``, a vision tower, the logit scale, hyper-parameters)."""
    g = torch.Generator().manual_seed(0)
    state = {"model.logit_scale": torch.tensor(2.6593),
             "model.visual.conv1.weight": torch.randn(64, 13, 7, 7, generator=g),
             "model.visual.fc.weight": torch.randn(256, 2048, generator=g)}
    state.update({f"model.nnet.{k}": v for k, v in net.items()})
    state.update({f"model.location.nnet.{k}": v for k, v in net.items()})
    hp = {"embed_dim": 256, "le_type": "sphericalharmonics", "pe_type": "siren", "legendre_polys": 10,
          "harmonics_calculation": "analytic", "num_hidden_layers": 2, "capacity": 256,
          "vision_layers": "moco_resnet50", "in_channels": 13, "eval_downstream": True}
    return {"epoch": 499, "global_step": 1000, "pytorch-lightning_version": "2.0.0", "state_dict": state,
            "hyper_parameters": hp, "optimizer_states": [], "lr_schedulers": [], "loops": {}, "callbacks": {},
            **(extra or {})}


def model_from(model_id: str, obj, tmp_path):
    name = get_card(model_id).weights[0].name
    path = tmp_path / name
    torch.save(obj, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return create(model_id, weights_paths={name: str(path)}, weights_pins={name: sha})


def explicit_forward(net: dict, lon: np.ndarray, lat: np.ndarray, legendre: int) -> np.ndarray:
    h = scipy_real_sh(lon, lat, legendre)
    for i, w0 in ((0, 30.0), (1, 1.0)):
        h = np.sin(w0 * (h @ net[f"layers.{i}.weight"].numpy().T + net[f"layers.{i}.bias"].numpy()))
    return h @ net["last_layer.weight"].numpy().T + net["last_layer.bias"].numpy()


@pytest.mark.parametrize("legendre", [10, 40])
def test_published_checkpoint_loads_and_equals_an_explicit_siren(legendre, tmp_path):
    net = siren_state(legendre, seed=legendre)
    model = model_from(f"satclip_l{legendre}", lightning_ckpt(net), tmp_path)
    lon, lat = random_points(64, seed=3)
    got = model.forward_locations(np.stack([lat, lon], axis=1))  # the framework's [lat, lon]
    ref = explicit_forward(net, lon, lat, legendre)
    assert got.shape == (len(lon), 256) and got.dtype == np.float32
    assert np.abs(ref).max() > 1e-3 and np.std(ref, axis=0).mean() > 1e-3  # depends on the location
    assert np.abs(got - ref).max() <= 1e-5


def test_wrong_checkpoints_are_refused_by_name(tmp_path):
    net = siren_state(10, seed=1)
    bare = {f"nnet.{k}": v for k, v in net.items()}  # the lightweight loader's keys, not the published file
    with pytest.raises(WeightsError, match=r"not a SatCLIP checkpoint: its state_dict has no "
                                           r"'model\.location\.nnet\.\*' keys.*nnet\.last_layer"):
        model_from("satclip_l10", bare, tmp_path).load()
    with pytest.raises(WeightsError, match=r"takes 1600 inputs, model 'satclip_l10' needs L\*\*2 = 100"):
        model_from("satclip_l10", lightning_ckpt(siren_state(40, seed=2)), tmp_path).load()
    no_head = {k: v for k, v in net.items() if not k.startswith("last_layer")}
    with pytest.raises(WeightsError,
                       match=r"mismatched keys/shapes \['last_layer\.bias', 'last_layer\.weight'\]"):
        model_from("satclip_l10", lightning_ckpt(no_head), tmp_path).load()
    wide = {**net, "last_layer.weight": torch.zeros(512, 256, dtype=torch.float64),
            "last_layer.bias": torch.zeros(512, dtype=torch.float64)}
    with pytest.raises(WeightsError, match=r"256-d output\): mismatched keys/shapes \['last_layer\.bias'"):
        model_from("satclip_l10", lightning_ckpt(wide), tmp_path).load()
    pickled = lightning_ckpt(net, {"hparams": argparse.Namespace(lr=1e-4)})  # a pickled object
    with pytest.raises(WeightsError, match=r"weights_only=True\) refuses it.*\['state_dict'\]"):
        model_from("satclip_l10", pickled, tmp_path).load()


# ---------------------------------------------------------------- 3. request path


def test_request_centre_reaches_the_encoder_as_lon_lat(tmp_path):
    net = siren_state(10, seed=5)
    model = model_from("satclip_l10", lightning_ckpt(net), tmp_path)
    model.load()
    seen = []
    model.net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    reqs = [Request("a", PointBuffer(10.0, 30.0, 50.0), TemporalSpec.year(2022)),
            Request("b", PointBuffer(30.0, 10.0, 50.0), TemporalSpec.year(2022))]  # lon and lat swapped
    out = model.embed_requests(reqs)
    assert [out[r][1]["status"] for r in ("a", "b")] == ["ok", "ok"]
    sh_in = seen[0][0].numpy()  # the SH features of request a (lon 10, lat 30): theta 120, phi 190 deg
    t, p = math.radians(120.0), math.radians(190.0)
    assert abs(sh_in[2] - 1.53499006191973 * math.cos(t)) <= 1e-9
    assert abs(sh_in[3] - 0.48860251190292 * math.sin(t) * math.cos(p)) <= 1e-9
    va, vb = out["a"][0]["pooled"], out["b"][0]["pooled"]
    ref = explicit_forward(net, np.array([10.0, 30.0]), np.array([30.0, 10.0]), 10)
    assert np.abs(va - ref[0]).max() <= 1e-4 and np.abs(vb - ref[1]).max() <= 1e-4
    assert np.abs(va - vb).max() > 1e-2  # the order matters
    with pytest.raises(ModelError,
                       match=r"\[lat, lon\]=\[95\.0, 10\.0\] is invalid; allowed lat in \[-90, 90\]"):
        model.forward_locations(np.array([[95.0, 10.0]]))


def test_cards():
    for legendre in (10, 40):
        card = get_card(f"satclip_l{legendre}")
        assert (card.kind, card.family, card.dims, card.outputs, card.licence) == (
            "location", "satclip", 256, ("pooled",), "MIT")
        (wf,) = card.weights
        assert wf.url == (f"https://huggingface.co/microsoft/SatCLIP-ResNet50-L{legendre}/resolve/main/"
                          f"satclip-resnet50-l{legendre}.ckpt")
        assert "pi" in card.notes and card.verified == "unverified"


# ---------------------------------------------------------------- 4. workflow


@pytest.mark.slow
def test_workflow_runs_satclip_with_random_weights(tmp_path):
    import geopandas as gpd
    import pandas as pd

    from workflow_helpers import SITES, make_imagery, make_rois, snakemake, write_config

    sites = SITES[:2]
    index = make_imagery(tmp_path / "sample", sites=sites, dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2, sites=sites)
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, index, rois, models=("spectral",), benchmark=False)
    doc = yaml.safe_load(config.read_text())
    net = siren_state(10, seed=11)
    name = get_card("satclip_l10").weights[0].name
    path = tmp_path / name
    torch.save(lightning_ckpt(net), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    doc["models"] = {"satclip_l10": {"weights": {name: str(path)}, "weights_sha256": {name: sha}}}
    doc["weights"] = {"dir": str(tmp_path / "empty_cache"), "allow_download": False}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    snakemake(work)

    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest["status"]) == {"ok"}, manifest[["roi_id", "model", "status", "error"]]
    table = pd.read_csv(rois, sep="\t").set_index("roi_id")
    gdf = gpd.read_parquet(work / "results/export/satclip_l10/embeddings.parquet").set_index("roi_id")
    assert sorted(gdf.index) == sorted(table.index)
    got = np.stack([np.asarray(gdf.loc[r, "embedding"]) for r in table.index])
    ref = explicit_forward(net, table["lon"].to_numpy(), table["lat"].to_numpy(), 10)
    assert got.shape == (len(table), 256)
    assert np.abs(got - ref).max() <= 1e-4  # the ROI centres (lon, lat) of the table, pooled
