"""Failure isolation: one item's fetch fails, the run completes, the manifest says so, and the
documented rerun command recomputes that item alone once the cause is fixed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflow_helpers import ROOT, job_counts, make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow


def test_failed_fetch_is_isolated_recorded_and_rerun_alone(tmp_path):
    index = make_imagery(tmp_path / "sample")
    rois_all = pd.read_csv(make_rois(index, tmp_path / "all.tsv", n_per_site=2), sep="\t")
    # keep a single ROI at the es_c site, so breaking that site's imagery breaks one item only
    lone = rois_all[rois_all.roi_id.str.startswith("es_c")].roi_id.iloc[0]
    rois = rois_all[~rois_all.roi_id.str.startswith("es_c") | (rois_all.roi_id == lone)]
    rois.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, index, tmp_path / "rois.tsv", chunk_size=1, benchmark=False)

    broken = next((tmp_path / "sample").glob("es_c/*/B04.tif"))
    backup = tmp_path / "B04.backup"
    shutil.move(broken, backup)

    first = snakemake(work)  # completes although one item cannot be fetched
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    bad = manifest[manifest.status == "failed"]
    assert sorted(bad.model) == ["mosaiks", "spectral"]
    assert set(bad.roi_id) == {lone} and set(bad.stage) == {"fetch"}
    assert all(broken.name in e and "es_c" in e for e in bad.error), list(bad.error)
    good = manifest[manifest.roi_id != lone]
    assert set(good.status) <= {"ok", "partial"} and len(good) == 2 * (len(rois) - 1)
    assert "Job stats" in first.stderr

    # the cause is fixed; the documented command reruns only what failed
    shutil.move(backup, broken)
    embed_files = sorted((work / "results/embed").rglob("*.npz"))
    before = {p: p.stat().st_mtime_ns for p in embed_files}
    # the CLI of this checkout (the venv's console script would import the installed eoembed)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    listed = subprocess.run([str(Path(sys.executable).parent / "eoembed"), "failed", "--config", "config.yaml"],
                            cwd=work, capture_output=True, text=True, env=env, check=True).stdout.split()
    assert len(listed) == 1 and listed[0].startswith("results/fetch/")
    rerun = subprocess.run([str(Path(sys.executable).parent / "eoembed"), "rerun-failed", "--config", "config.yaml",
                            "--", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2"],
                           cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    counts = job_counts(rerun.stdout + rerun.stderr)
    assert counts["fetch"] == 1 and counts["composite"] == 1 and counts["embed"] == 2, counts
    assert counts.get("export_grid") == 2  # that chunk's grid file for each model
    lone_chunk = listed[0].rsplit("/", 1)[-1].removesuffix(".npz")
    after = {p: p.stat().st_mtime_ns for p in embed_files}
    changed = sorted(p.stem for p in embed_files if after[p] != before[p])
    assert changed == [lone_chunk, lone_chunk], changed  # only that chunk, for both models
    manifest = pd.read_csv(work / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    assert set(manifest.status) <= {"ok", "partial"}, manifest[manifest.status == "failed"]

    nothing = subprocess.run([str(Path(sys.executable).parent / "eoembed"), "rerun-failed", "--config",
                              "config.yaml"], cwd=work, capture_output=True, text=True, env=env)
    assert nothing.returncode == 0 and "nothing to rerun" in nothing.stdout
    assert "Nothing to be done" in (snakemake(work, "-n").stdout + snakemake(work, "-n").stderr)


def test_input_cache_lets_a_rerun_skip_the_download(tmp_path):
    """With provider.cache_dir, a forced refetch reads every stack from the cache, not the provider."""
    index = make_imagery(tmp_path / "sample", sites=[("nl_a", 5.62, 52.55), ("ke_b", 36.02, -0.35)], dates=2)
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2,
                     sites=[("nl_a", 5.62, 52.55), ("ke_b", 36.02, -0.35)])
    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"
    write_config(work, index, rois, models=("spectral",), benchmark=False,
                 provider={"name": "local", "catalog": str(index), "cache_dir": str(cache)})
    snakemake(work)
    from eoembed.chunkio import read_chunk

    fetched = sorted((work / "results/fetch").rglob("*.npz"))
    assert all(not r["cached"] for f in fetched for r in read_chunk(f)[1].values())
    assert len(list(cache.rglob("*.npz"))) == 4
    before = {f: read_chunk(f)[0] for f in fetched}
    # the catalogue's imagery disappears: only the cache can answer now
    shutil.rmtree(tmp_path / "sample" / "nl_a")
    snakemake(work, "--forcerun", "fetch")
    for f in fetched:
        items, records, _ = read_chunk(f)
        assert all(r["status"] == "ok" and r["cached"] for r in records.values())
        for roi, arrays in items.items():
            np.testing.assert_array_equal(arrays["data"], before[f][roi]["data"])
