"""The command line: model listing, cards, validation errors and weights status."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EOEMBED = [sys.executable, "-m", "eoembed.cli"]


def run(*args, cwd=ROOT):
    return subprocess.run([*EOEMBED, *args], cwd=cwd, capture_output=True, text=True)


def test_models_lists_every_registered_model():
    from eoembed.models.registry import model_ids

    out = run("models")
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert listed == model_ids()


def test_models_table_shows_inputs_licence_and_weights_source_per_card():
    import re

    from eoembed.models.registry import get_card

    lines = run("models").stdout.splitlines()
    header = re.split(r" {2,}", lines[0].strip())
    assert header == ["id", "family", "kind", "dims", "inputs", "outputs", "verified", "weights", "licence"]
    starts = [lines[0].index(h) for h in header if h != "dims"]
    for line in lines[1:]:
        # every column starts where its header does, even for the longest id
        assert all(line[s - 2:s] == "  " and line[s] != " " for s in starts[1:]), line
        row = dict(zip(header, re.split(r" {2,}", line.strip())))
        card = get_card(row["id"])
        assert int(row["dims"]) == card.dims and row["licence"] == card.licence
        hosts = row["weights"].split(",")
        assert (hosts == ["none"]) == (not card.weights)
        assert all(any(h in w.url for w in card.weights) for h in hosts if h != "none")
        if card.kind == "on_the_fly":
            spec = card.inputs[0]
            assert row["inputs"].startswith(f"{spec.modality}:{len(spec.bands)}b@{spec.gsd_m:g}m")
    by_id = {ln.split()[0]: ln for ln in lines[1:]}
    presto = get_card("presto").primary.time
    assert f"x{presto.min_frames}-{presto.max_frames}t" in by_id["presto"] and "lat/lon" in by_id["geoclip"]
    assert "non-commercial" in by_id["scalemae_large"]


def test_docs_models_table_is_the_cards():
    doc = (ROOT / "docs/models.md").read_text()
    table = doc.split("<!-- models-table:start -->\n")[1].split("<!-- models-table:end -->")[0]
    out = run("models", "--markdown")
    assert out.returncode == 0
    assert table == out.stdout, "docs/models.md is stale: paste `eoembed models --markdown` between its markers"
    from eoembed.models.registry import model_ids

    assert [ln.split("`")[1] for ln in table.splitlines()[2:]] == model_ids()


def test_card_is_json_with_weights_and_citation():
    card = json.loads(run("card", "presto").stdout)
    assert card["dims"] == 128 and card["weights"][0]["sha256"] and "Tseng" in card["citation"]
    bad = run("card", "nope")
    assert bad.returncode == 2 and "available" in bad.stderr


def test_validate_reports_config_and_table_problems(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    rois = tmp_path / "rois.tsv"
    rois.write_text("roi_id\tlon\tlat\tbuffer_m\tyear\na b\t5\t52\t100\t2022\n")
    cfg["rois"] = str(rois)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = run("validate", "--config", str(tmp_path / "c.yaml"))
    assert out.returncode == 2 and "row 1" in out.stderr and "'a b'" in out.stderr
    cfg["models"]["spectral"]["sensor"] = "nope"
    cfg["chunk_size"] = 0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = run("validate", "--config", str(tmp_path / "c.yaml"))
    assert out.returncode == 2 and "chunk_size" in out.stderr


def test_validate_demo_config_is_ok():
    out = run("validate")
    assert out.returncode == 0, out.stderr
    assert "96 ROIs" in out.stdout


def test_weights_status_names_missing_files_and_where_they_go(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["rois"] = str(ROOT / "config/rois.tsv")
    cfg["sensors"]["s2_monthly"] = dict(cfg["sensors"]["s2"], frames=12)
    cfg["models"] = {"presto": {"sensor": "s2_monthly"}, "spectral": {"sensor": "s2"}}
    cfg["weights"] = {"dir": str(tmp_path / "cache"), "allow_download": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = run("weights", "status", "--config", str(tmp_path / "c.yaml"))
    assert out.returncode == 1  # something is missing
    assert "presto" in out.stdout and "default_model.pt" in out.stdout
    assert str(tmp_path / "cache") in out.stdout
