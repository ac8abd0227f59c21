"""End-to-end fidelity: raw Sentinel-2 DN placed as a composite -> eoembed's full path -> oracle.

The oracles in ../shared/data/reference were computed by the original repositories' own
preprocessing from the same raw digital numbers (their .json sidecars say how). Here the DN go
through everything eoembed does (declared band selection, normalisation, derived NDVI, masks, time
tokens, padding, token pooling) and must match within 1e-4, every case. Skipped without ../shared.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from eoembed.collections import S2_BANDS
from eoembed.grid import grid_for
from eoembed.items import Composite, Request
from eoembed.models.registry import create
from eoembed.specs import OutputSpec, PointBuffer, TemporalSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REF = SHARED / "reference"
W = SHARED / "weights"
pytestmark = [pytest.mark.shared, pytest.mark.skipif(not REF.is_dir(), reason="../shared/data absent")]


def _composite(dn_thwc: np.ndarray, window: TemporalSpec, lon: float, lat: float, missing=()) -> Composite:
    """A composite holding ``dn`` (T, H, W, 12 bands B01..B12) on a UTM grid centred on (lon, lat)."""
    t, h, w, _ = dn_thwc.shape
    grid = grid_for(PointBuffer(lon, lat, h * 5.0), 10.0)
    assert (grid.height, grid.width) == (h, w)
    data = dn_thwc.transpose(0, 3, 1, 2).astype(np.float32)
    valid = np.ones((t, h, w), bool)
    for m in missing:
        valid[m] = False
        data[m] = 0.0
    return Composite(data, valid, window.frame_bounds(t), S2_BANDS, grid, np.ones((h, w), bool), 0.0, "median")


@pytest.mark.parametrize("case,start", [("static12", "2021-01-01"), ("partial", "2021-03-01")])
def test_presto_end_to_end(case: str, start: str) -> None:
    ref = np.load(REF / "presto_e2e_vectors.npz")
    dn, latlons, emb = ref[f"{case}__dn"], ref["latlons"], ref[f"{case}__embedding"]
    assert [str(b) for b in ref["s2_band_names_in_dn"]][1] == "B2"  # B1..B12 without B10 == S2_BANDS order
    assert int(ref[f"{case}__month"]) == int(start[5:7]) - 1
    s = dt.date.fromisoformat(start)
    window = TemporalSpec.range(s, s.replace(year=s.year + 1))
    model = create("presto", weights_paths={"default_model.pt": str(W / "presto" / "default_model.pt")})
    diffs = []
    for p in range(3):  # each patch: a 4 x 4 block, pixels row-major
        rows = ref["pixel_patch_index"] == p
        block = dn[rows].reshape(4, 4, 12, 12).transpose(2, 0, 1, 3)  # (T, H, W, C)
        lat, lon = latlons[rows][0]
        comp = _composite(block, window, float(lon), float(lat), missing=ref[f"{case}__missing_timesteps"])
        grid = model.embed_batch([comp], OutputSpec.grid(10.0))[0]  # (128, 4, 4): one pixel per cell
        got = grid.reshape(128, 16).T
        diffs.append(np.abs(got - emb[rows]).max())
    print(f"presto {case}: max abs diff per patch {[f'{d:.2e}' for d in diffs]}")
    assert max(diffs) <= 1e-4


GALILEO_CASES = ["t1", "t3_repeat", "t3_stack", "t3_stack_mid_missing_fillna", "t3_stack_mid_masked"]


@pytest.mark.parametrize("case", GALILEO_CASES)
def test_galileo_nano_end_to_end(case: str) -> None:
    ref = np.load(REF / "galileo_nano_e2e_vectors.npz")
    dn = ref[f"{'t3_stack' if case.startswith('t3_stack') else case}__dn"]  # (B, H, W, T, 12)
    months = ref[f"{case}__months"][0]
    missing = list(ref[f"{case}__missing_timesteps"])
    t = dn.shape[3]
    window = (TemporalSpec.range("2022-07-01", "2022-08-01") if t == 1
              else TemporalSpec.range("2022-06-01", "2022-09-01"))
    lat, lon = ref["patch_centre_latlon"][0]
    comps = [_composite(sample.transpose(2, 0, 1, 3), window, float(lon), float(lat), missing) for sample in dn]
    assert [int(np.round(c.mid_months()[i])) for c in comps[:1] for i in range(t)] == list(months)
    fill = "fill_mean" if case.endswith("fillna") else "mask"
    for p in (4, 8):
        model = create("galileo_nano", {"patch_size": p, "missing": fill},
                       weights_paths={"encoder.pt": str(W / "galileo_nano" / "encoder.pt")})
        got = np.stack(model.embed_batch(comps, OutputSpec.pooled()))
        diff = np.abs(got - ref[f"{case}__pooled_patch{p}"]).max()
        print(f"galileo_nano {case} patch {p}: max abs diff {diff:.2e}")
        assert diff <= 1e-4


def test_galileo_fill_mean_matches_upstream_imputation() -> None:
    """The declared fill_mean policy imputes exactly the DN upstream's Dataset._fillna did."""
    from eoembed.models.galileo import S2_INPUT
    from eoembed.prep import normalise
    from dataclasses import replace

    ref = np.load(REF / "galileo_nano_e2e_vectors.npz")
    dn = ref["t3_stack__dn"]
    window = TemporalSpec.range("2022-06-01", "2022-09-01")
    spec = replace(S2_INPUT, missing="fill_mean")
    for b in range(2):
        comp = _composite(dn[b].transpose(2, 0, 1, 3), window, 0.0, 0.0, missing=[1])
        x, miss = normalise(comp, spec)
        assert not miss.any()
        fill_norm = x[1, :10, 0, 0]
        expected = (ref["t3_stack_mid_missing_fillna__fill_value_dn"][b] - np.array([n.shift for n in spec.norm])) \
            / np.array([n.div for n in spec.norm])
        np.testing.assert_allclose(fill_norm, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(x[1, 10, 0, 0], ref["t3_stack_mid_missing_fillna__fill_ndvi"][b], atol=1e-6)


def test_geoclip_location_oracle() -> None:
    ref = np.load(REF / "geoclip_location_vectors.npz")
    model = create("geoclip", weights_paths={"location_encoder_weights.pth":
                                             str(W / "geoclip" / "location_encoder_weights.pth")})
    got = model.forward_locations(ref["latlon"])
    diff = np.abs(got - ref["embedding"]).max()
    print(f"geoclip: max abs diff {diff:.2e} over {len(got)} points")
    assert diff <= 1e-4
    # through the request path: the ROI centre (lon, lat of a PointBuffer) is what gets embedded
    reqs = [Request(f"p{i}", PointBuffer(float(lon), float(lat), 50.0), TemporalSpec.year(2022))
            for i, (lat, lon) in enumerate(ref["latlon"][5:9])]
    out = model.embed_requests(reqs)
    vecs = np.stack([out[r.roi_id][0]["pooled"] for r in reqs])
    assert np.abs(vecs - ref["embedding"][5:9]).max() <= 1e-4
    assert all(out[r.roi_id][1]["status"] == "ok" for r in reqs)
