"""The research-zoo cards and glue, without shared data: every variant registered with an oracle-backed
card, weights entry and licence; sensors validated against the declarations; option errors that name
field and value; token weights; the checkpoint-container loader and its refusals."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from eoembed.errors import ConfigError, ModelError, WeightsError
from eoembed.models.inputs import check_sensor
from eoembed.models.registry import MODELS, create, get_card
from eoembed.models.zoo import load_checkpoint, token_weight
from eoembed.specs import SensorSpec

ZOO_IDS = sorted(m for m, target in MODELS.items()
                 if target.split(":")[0].rsplit(".", 1)[1] in ("satmae", "satmaepp", "wildsat", "terrafm", "thor",
                                                               "fomo", "satvision_toa", "agrifm", "anysat"))
S2_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def test_every_zoo_model_is_registered_with_a_complete_card() -> None:
    assert ZOO_IDS == ["agrifm", "anysat", "fomo", "satmae_group", "satmae_rgb", "satmaepp_rgb",
                       "satmaepp_s2", "satvision_toa", "terrafm_base", "terrafm_base_s1", "terrafm_large",
                       "terrafm_large_s1", "thor_base", "thor_base_s1", "thor_large", "thor_large_s1",
                       "thor_small", "thor_small_s1", "thor_tiny", "thor_tiny_s1", "wildsat", "wildsat_rn50",
                       "wildsat_swint"]
    for mid in ZOO_IDS:
        card = get_card(mid)
        # WildSAT's ResNet-50 / Swin-T paths have no oracle: torchvision + the heads (library)
        want = "library" if mid in ("wildsat_rn50", "wildsat_swint") else "oracle"
        assert card.id == mid and card.family == "zoo" and card.verified == want, mid
        assert card.variant and card.citation and card.licence and card.notes, mid
        (wf,) = card.weights
        assert wf.url.startswith("https://") and wf.licence, mid
        spec = card.inputs[0]
        assert len(spec.norm) == len(spec.bands) and spec.norm_source, mid
        if "NC" in card.licence:  # non-commercial licences say so in words
            assert "non-commercial" in card.licence, mid
    assert "non-commercial" in get_card("satmae_rgb").licence


def test_sentinel2_sensor_checks_against_the_declarations() -> None:
    ok = SensorSpec(bands=S2_12)
    for mid in ZOO_IDS:
        spec = create(mid).inputs()[0]
        problems = check_sensor(mid, spec, "s2", ok if spec.time.max_frames == 1 else
                                SensorSpec(bands=S2_12, frames=spec.time.min_frames))
        if mid == "satvision_toa":  # MODIS only: a Sentinel-2 sensor is refused, by name
            assert problems == ["model 'satvision_toa', sensor 's2': collection='sentinel-2-l2a' is not "
                                "accepted; allowed ['modis-toa']"]
        elif mid.endswith("_s1"):  # S1 variants: a Sentinel-2 sensor is refused, an S1 sensor accepted
            assert len(problems) == 1 and "collection='sentinel-2-l2a' is not accepted; allowed" in problems[0]
            assert "'sentinel-1-grd'" in problems[0] and "'sentinel-1-rtc'" in problems[0], problems
            for coll in ("sentinel-1-grd", "sentinel-1-rtc"):
                s1 = SensorSpec(collection=coll, bands=("VV", "VH"))
                assert check_sensor(mid, spec, "s1", s1) == [], mid
            assert check_sensor(mid, spec, "s1", SensorSpec(collection="sentinel-1-rtc", bands=("VV",))) == [
                f"model '{mid}', sensor 's1': bands=['VV'] lacks ['VH']; the model needs ['VV', 'VH']"]
            # the same published weights file as the S2 variant of that size
            assert get_card(mid).weights == get_card(mid[:-3]).weights, mid
        else:
            assert problems == [], (mid, problems)
    rgb_only = SensorSpec(bands=("B02", "B03", "B04"))
    msg = check_sensor("terrafm_base", get_card("terrafm_base").inputs[0], "rgb", rgb_only)
    assert len(msg) == 1 and "lacks ['B01', 'B05', 'B06'" in msg[0]
    msg = check_sensor("agrifm", get_card("agrifm").inputs[0], "s2", SensorSpec(bands=S2_12, frames=4))
    assert msg == ["model 'agrifm', sensor 's2': frames=4 is invalid; the model takes 8 frame(s) "
                   "(allowed 8..8)"]


def test_option_errors_name_field_value_and_what_is_allowed() -> None:
    with pytest.raises(ModelError, match=r"options\.patch_size=15 is invalid: allowed a multiple of 10"):
        create("anysat", {"patch_size": 15})
    with pytest.raises(ModelError, match=r"options\.tile_px=64 is invalid: allowed a positive multiple of "
                                         r"patch_size / 10 = 3 px"):
        create("anysat", {"patch_size": 30, "tile_px": 64})
    with pytest.raises(ModelError, match=r"options\.stem='s1' is invalid: allowed null"):
        create("terrafm_large", {"stem": "s1"})
    with pytest.raises(ModelError, match=r"terrafm_large_s1: options\.stem='l1c' is invalid: allowed null "
                                         r"\(an S1 variant has one stem, 's1'; the S2 stems belong to "
                                         r"terrafm_large\)"):
        create("terrafm_large_s1", {"stem": "l1c"})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['patch'\]"):
        create("thor_tiny", {"patch": 4})
    spec = create("anysat", {"patch_size": 40, "tile_px": 48}).inputs()[0]
    assert (spec.space.size, spec.space.token_px, spec.space.default_prep) == (48, 4, "tile")


def test_token_weight_is_the_valid_fraction_per_token_cell() -> None:
    mask = np.zeros((1, 2, 4, 4), bool)
    mask[0, 0, :2, :2] = True  # top-left cell missing in frame 0 only
    mask[0, :, 2:, 2:] = True  # bottom-right cell missing in both frames
    mask[0, 1, 0, 2] = True  # one of four pixels of the top-right cell, frame 1
    w = token_weight(mask, 2, 2)
    np.testing.assert_allclose(w[0], [[0.5, 0.875], [1.0, 0.0]])
    with pytest.raises(ValueError, match="4 x 4 px does not split into 3 x 3"):
        token_weight(mask, 3, 3)


def _save(path: Path, obj) -> str:
    torch.save(obj, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_checkpoint_members_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    sha = _save(path, {"model": {"w": torch.ones(2)}, "epoch": 3})
    assert load_checkpoint(path, sha, "model")["w"].tolist() == [1.0, 1.0]
    with pytest.raises(WeightsError, match=r"no member 'state_dict'; it holds \['epoch', 'model'\]"):
        load_checkpoint(path, sha, "state_dict")
    with pytest.raises(WeightsError, match="not a plain state dict"):  # the container itself is not one
        load_checkpoint(path, sha)
    with pytest.raises(WeightsError, match="sha256"):
        load_checkpoint(path, "0" * 64, "model")
    # a training checkpoint that pickles Python objects is refused before running any of its code
    unsafe = tmp_path / "unsafe.pth"
    sha = _save(unsafe, {"model": {"w": torch.ones(1)}, "args": argparse.Namespace(lr=1.0)})
    with pytest.raises(WeightsError, match=r"refuses it \(Unsupported global: GLOBAL argparse\.Namespace;.*"
                                           r"torch\.load\(f, weights_only=False\)\['model'\]"):
        load_checkpoint(unsafe, sha, "model")
    # ... and the state dict extracted as the message says is accepted in place of the container
    plain = tmp_path / "state_dict.pt"
    sha = _save(plain, {"w": torch.full((1,), 2.0)})
    assert load_checkpoint(plain, sha, "model")["w"].tolist() == [2.0]
