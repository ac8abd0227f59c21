"""Rerun triggers and stable chunks, asserted from the jobs ``snakemake -n`` plans after a
finished run: operational settings plan nothing, edited stage code plans that stage and what
follows, appending a ROI plans only its chunk, re-sorting the table plans nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from eoembed.chunkio import read_chunk
from eoembed.chunks import bucket, chunk_name
from workflow_helpers import copy_checkout, make_imagery, make_rois, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow
PER_CHUNK = {"fetch", "composite", "embed", "export_grid"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (9 ROIs, chunk_size 3, spectral + mosaiks) on a copy of the checkout."""
    root = tmp_path_factory.mktemp("finished")
    index = make_imagery(root / "sample")
    rois = make_rois(index, root / "rois.tsv")
    repo = copy_checkout(root / "repo")
    work = root / "work"
    work.mkdir()
    # relative paths, so a copy of the whole tree is the same workflow
    write_config(work, Path("../sample/index.json"), Path("../rois.tsv"))
    assert index == root / "sample/index.json" and rois == root / "rois.tsv"
    snakemake(work, root=repo)
    return root


def _clone(finished, dest):
    """An independent copy of the finished checkout + run (mtimes kept), to change one thing."""
    shutil.copytree(finished, dest, symlinks=True)
    assert "Nothing to be done" in _dry(dest).stdout, "the clone must start up to date"
    return dest


def _dry(root, *args):
    return snakemake(root / "work", "-n", *args, root=root / "repo")


def _edit_config(root, edit):
    path = root / "work/config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_operational_settings_plan_nothing(finished, tmp_path):
    root = _clone(finished, tmp_path / "c")

    def edit(cfg):
        cfg["provider"].update(retries=7, backoff_s=3.5, cache_dir=str(tmp_path / "cache"))
        cfg["weights"] = {"allow_download": True, "dir": str(tmp_path / "weights")}
        cfg["models"]["mosaiks"]["batch_size"] = 2
        cfg["models"]["spectral"]["device"] = "auto"

    _edit_config(root, edit)
    # a catalogue that grows (here: rewritten, newer than every output) is an ancient() input
    index = root / "sample/index.json"
    index.write_text(index.read_text())
    dry = _dry(root)
    assert "Nothing to be done" in dry.stdout, planned_jobs(dry.stdout)
    # while an output-changing setting still plans work: the model's options
    _edit_config(root, lambda cfg: cfg["models"]["mosaiks"]["options"].update(num_filters=8))
    jobs = planned_jobs(_dry(root).stdout)
    assert {w["model"] for r, w in jobs if r == "embed"} == {"mosaiks"}
    assert not [r for r, _ in jobs if r in ("fetch", "composite")]


def test_editing_composite_code_plans_composite_and_downstream_only(finished, tmp_path):
    root = _clone(finished, tmp_path / "c")
    path = root / "repo/src/eoembed/composite.py"
    text = path.read_text()
    path.write_text(text + "\n# a comment is no code change\n")
    assert "Nothing to be done" in _dry(root).stdout
    marker = "def make_composite("
    assert marker in text
    path.write_text(text.replace(marker, "_EDITED = 1\n\n\n" + marker, 1))
    jobs = planned_jobs(_dry(root).stdout)
    rules = {r for r, _ in jobs}
    n_chunks = len({w["chunk"] for r, w in jobs if r == "composite"})
    assert "fetch" not in rules and "sample_imagery" not in rules
    assert n_chunks == len(list((root / "work/results/fetch").rglob("*.npz")))
    assert {"composite", "embed", "export", "aggregate", "benchmark", "report"} <= rules
    # mtime-only triggers skip code changes
    assert "Nothing to be done" in _dry(root, "--rerun-triggers", "mtime").stdout
    # and the chunk files record the code they were made with
    meta = read_chunk(next((root / "work/results/composite").rglob("*.npz")))[2]
    assert len(meta["code"]) == 16 and meta["versions"]["eoembed"]


def test_appending_a_row_plans_only_its_chunk(finished, tmp_path):
    root = _clone(finished, tmp_path / "c")
    table = pd.read_csv(root / "rois.tsv", sep="\t")
    n_chunks = json.loads((root / "work/results/chunks.json").read_text())["n_chunks"]
    new = table.iloc[[0]].assign(roi_id="zz_new_roi", lon=table.lon.iloc[0] + 0.0005)
    pd.concat([table, new]).to_csv(root / "rois.tsv", sep="\t", index=False)
    jobs = planned_jobs(_dry(root).stdout)
    chunks = {w["chunk"] for r, w in jobs if r in PER_CHUNK}
    assert chunks == {chunk_name(bucket("zz_new_roi", n_chunks), n_chunks)}
    assert {r for r, _ in jobs} >= {"fetch", "composite", "embed", "export"}


def test_sorting_the_table_plans_nothing(finished, tmp_path):
    root = _clone(finished, tmp_path / "c")
    table = pd.read_csv(root / "rois.tsv", sep="\t")
    table.iloc[::-1].to_csv(root / "rois.tsv", sep="\t", index=False)
    assert "Nothing to be done" in _dry(root).stdout
    # a changed label is different: only the benchmark and what reads it rerun
    table.assign(yield_t_ha=table.yield_t_ha + 1).to_csv(root / "rois.tsv", sep="\t", index=False)
    rules = {r for r, _ in planned_jobs(_dry(root).stdout)}
    assert "benchmark" in rules and not rules & PER_CHUNK
