"""Models with two inputs (e.g. S1 + S2): both composites reach the model on one grid, a failed
input fails the item with its own error, and validation names the sensor each input needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import yaml

from eoembed.cli import main
from eoembed.grid import grid_for
from eoembed.items import Composite, Request
from eoembed.models import registry
from eoembed.models.base import Embedder, ModelCard
from eoembed.models.inputs import BandNorm, InputSpec
from eoembed.pipeline import embed_items
from eoembed.prep import TokenGrid
from eoembed.specs import PointBuffer, TemporalSpec

S2 = ("sentinel-2-l2a",)


class TwoInputs(Embedder):
    """Token = (mean of input "a" band, mean of input "b" band) per pixel."""

    card = ModelCard(id="two_inputs", family="test", kind="on_the_fly", description="two modalities",
                     inputs=(InputSpec("a", S2, ("B02",), (BandNorm(),)),
                             InputSpec("b", S2, ("B11",), (BandNorm(0.0, 10.0),))),
                     dims=2, outputs=("pooled", "grid"))

    def forward(self, batch):
        a, b = batch.x["a"][:, 0], batch.x["b"][:, 0]  # (B, 1, H, W)
        weight = (~batch.mask["a"][:, 0] & ~batch.mask["b"][:, 0]).astype(np.float32)
        return TokenGrid(np.concatenate([a, b], axis=1), weight)


def _result(value: float, bands: tuple[str, ...], status: str = "ok"):
    grid = grid_for(PointBuffer(5.6, 52.5, 20), 10)
    comp = Composite(np.full((1, len(bands), 4, 4), value, np.float32), np.ones((1, 4, 4), bool),
                     [(dt.date(2023, 1, 1), dt.date(2024, 1, 1))], bands, grid, np.ones((4, 4), bool), 0.0, "median")
    arrays, meta = comp.to_arrays()
    rec = {"roi_id": "r", "status": status, "stage": "composite", "error": None if status == "ok" else "no scene",
           "meta": meta}
    return (arrays if status == "ok" else {}), rec


def test_both_inputs_reach_the_model_and_a_failed_input_fails_the_item() -> None:
    reqs = [Request("r", PointBuffer(5.6, 52.5, 20), TemporalSpec.year(2023))]
    model = TwoInputs()
    out = embed_items(model, {"r": _result(300.0, ("B02", "B04"))}, reqs,
                      extra={"b": {"r": _result(50.0, ("B11",))}})
    arrays, rec = out["r"]
    assert rec["status"] == "ok"
    np.testing.assert_allclose(arrays["pooled"], [300.0, 5.0])  # b normalised by its own declaration
    out = embed_items(model, {"r": _result(300.0, ("B02",))}, reqs,
                      extra={"b": {"r": _result(50.0, ("B11",), status="failed")}})
    assert out["r"][1]["status"] == "failed" and out["r"][1]["failed_input"] == "b"
    assert out["r"][1]["error"] == "no scene"


@pytest.fixture()
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setitem(registry.MODELS, "two_inputs", f"{__name__}:TwoInputs")
    rois = tmp_path / "rois.tsv"
    rois.write_text("roi_id\tlon\tlat\tbuffer_m\tyear\na\t5.6\t52.5\t100\t2023\n")
    cfg = {"rois": str(rois), "provider": {"name": "local", "catalog": str(tmp_path / "index.json")},
           "sensors": {"blue": {"bands": ["B02"], "scale_m": 10}, "swir": {"bands": ["B11"], "scale_m": 20}},
           "models": {"two_inputs": {"sensor": "blue"}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validation_names_the_sensor_each_input_needs(config: Path, capsys) -> None:
    assert main(["validate", "--config", str(config)]) != 0
    assert "models.two_inputs.sensors.b=None" in capsys.readouterr().err
    cfg = yaml.safe_load(config.read_text())
    cfg["models"]["two_inputs"]["sensors"] = {"b": "swir"}
    config.write_text(yaml.safe_dump(cfg))
    assert main(["validate", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "sensor 'swir': scale_m=20" in err and "one grid" in err  # 20 m vs 10 m: not one grid
    cfg["sensors"]["swir"]["scale_m"] = 10
    config.write_text(yaml.safe_dump(cfg))
    assert main(["validate", "--config", str(config)]) == 0
