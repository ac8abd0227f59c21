"""`eoembed validate` and the workflow's start reject model/sensor mismatches before any job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from eoembed.cli import main
from eoembed.models import registry
from eoembed.models.galileo import Galileo
from eoembed.models.inputs import InputSpec, TimePolicy, check_sensor
from eoembed.specs import SensorSpec, TemporalSpec

S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


class L1COnly(Galileo):
    """A stand-in for an L1C-only model (e.g. SSL4EO-S12): Galileo's card restricted to L1C."""

    cards = {"l1c": replace(Galileo.cards["nano"], id="l1c_only",
                            inputs=(replace(Galileo.cards["nano"].inputs[0], collections=("sentinel-2-l1c",)),))}


@pytest.fixture()
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setitem(registry.MODELS, "l1c_only", f"{__name__}:L1COnly@l1c")
    rois = tmp_path / "rois.tsv"
    rois.write_text("roi_id\tlon\tlat\tbuffer_m\tyear\na\t5.6\t52.5\t100\t2023\nb\t5.7\t52.5\t100\t2023\n")
    cfg = {"rois": str(rois), "provider": {"name": "local", "catalog": str(tmp_path / "index.json")},
           "sensors": {"annual": {"bands": S2, "scale_m": 10, "frames": 1},
                       "coarse": {"bands": S2, "scale_m": 30, "frames": 3},
                       "monthly": {"bands": S2, "scale_m": 10, "frames": 12}},
           "models": {"presto": {"sensor": "annual"}, "galileo_nano": {"sensor": "coarse"},
                      "l1c_only": {"sensor": "monthly"}, "spectral": {"sensor": "annual"}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validate_reports_every_problem_at_once(config: Path, capsys) -> None:
    assert main(["validate", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    # Presto at one frame over a year
    assert "model 'presto', sensor 'annual': frames=1" in err and "calendar" in err
    # Galileo at 30 m
    assert "model 'galileo_nano', sensor 'coarse': scale_m=30" in err and "[9.5, 10.5]" in err
    # an L1C-only model on an L2A sensor
    assert "model 'l1c_only', sensor 'monthly': collection='sentinel-2-l2a'" in err
    assert "sentinel-2-l1c" in err
    assert "spectral" not in err  # the valid model is not reported


def test_validate_prints_the_plan_when_valid(config: Path, capsys) -> None:
    cfg = yaml.safe_load(config.read_text())
    cfg["models"] = {"presto": {"sensor": "monthly"}, "spectral": {"sensor": "annual"},
                     "galileo_nano": {"sensor": "coarse", "allow_gsd": True}, "geoclip": {}}
    config.write_text(yaml.safe_dump(cfg))
    assert main(["validate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    monthly, annual = (SensorSpec.from_dict({"bands": S2, "scale_m": 10, "frames": f}) for f in (12, 1))
    presto_row = next(line for line in out.splitlines() if line.startswith("presto"))
    assert monthly.fetch_key() in presto_row and monthly.key() in presto_row
    assert annual.fetch_key() == monthly.fetch_key()  # one shared download for both
    assert next(line for line in out.splitlines() if line.startswith("geoclip")).split()[1] == "location"
    assert "2 distinct download(s)" in out  # 10 m (presto + spectral) and 30 m (galileo)


def test_check_sensor_frames_versus_window() -> None:
    spec = InputSpec("s2", ("sentinel-2-l2a",), ("B02",), (Galileo.cards["nano"].inputs[0].norm[0],),
                     time=TimePolicy(1, 24, monthly=True))
    sensor = SensorSpec(bands=("B02",), frames=6)
    half_year = TemporalSpec.range("2023-01-01", "2023-07-01")
    assert check_sensor("m", spec, "s", sensor, [half_year]) == []
    problems = check_sensor("m", spec, "s", sensor, [TemporalSpec.year(2023)])
    assert len(problems) == 1 and "frames=6" in problems[0] and "2023-01-01" in problems[0]
