"""Faults and kills: injected provider failures end as exact item statuses, and a run killed
with SIGKILL in the middle of an embed job resumes to byte-identical outputs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml

from eoembed.chunkio import read_chunk
from eoembed.specs import PointBuffer
from workflow_helpers import ROOT, make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


@pytest.fixture(scope="module")
def imagery(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagery")
    index = make_imagery(root / "sample")
    return index, make_rois(index, root / "rois.tsv", n_per_site=3)


def test_transient_failures_recover_and_permanent_ones_are_recorded(imagery, tmp_path):
    index, rois_path = imagery
    rois = pd.read_csv(rois_path, sep="\t")
    broken = list(rois.roi_id[[1, 5]])
    keys = [PointBuffer(r.lon, r.lat, r.buffer_m).key() for r in rois.itertuples() if r.roi_id in broken]
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    for d in (clean, faulty):
        d.mkdir()
    write_config(clean, index, rois_path, benchmark=False)
    write_config(faulty, index, rois_path, benchmark=False,
                 provider={"name": "faulty", "inner": {"name": "local", "catalog": str(index)},
                           "transient_fraction": 0.5, "transient_failures": 2, "permanent": keys, "seed": 3,
                           "retries": 3, "backoff_s": 0.01})
    snakemake(clean)
    snakemake(faulty)

    m = pd.read_csv(faulty / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    failed = m[m.status == "failed"]
    assert sorted(failed.roi_id.unique()) == sorted(broken)
    assert set(failed.stage) == {"fetch"} and len(failed) == 2 * len(broken)
    assert all("injected permanent failure" in e for e in failed.error)
    others = m[~m.roi_id.isin(broken)]
    assert set(others.status) <= {"ok", "partial"}
    # transient failures happened and were retried: 2 failed calls + 1 good one = 3 attempts
    attempts = others.drop_duplicates("roi_id").attempts
    assert set(attempts) <= {1, 3} and (attempts == 3).sum() >= 1 and (attempts == 1).sum() >= 1
    # nothing else is affected: every other item is exactly what a fault-free run gives
    c = pd.read_csv(clean / "results/manifest/items.tsv", sep="\t", keep_default_na=False)
    merged = others.merge(c, on=["roi_id", "model"], suffixes=("", "_clean"))
    assert len(merged) == len(others)
    assert (merged.status == merged.status_clean).all()
    assert (merged.embedding_sha256 == merged.embedding_sha256_clean).all()
    # the API with the same faulty provider gives the workflow's vectors and failures
    import eoembed
    from eoembed.table import load_table, to_requests

    reqs = to_requests(load_table(rois_path))
    embs = eoembed.get_embeddings_batch("spectral", reqs, output=eoembed.OutputSpec.pooled(),
                                        sensor=eoembed.SensorSpec(bands=S2_BANDS, scale_m=10, cloudy_pct=100),
                                        provider=yaml.safe_load((faulty / "config.yaml").read_text())["provider"])
    gdf = gpd.read_parquet(faulty / "results/export/spectral/embeddings.parquet").set_index("roi_id")
    for req, emb in zip(reqs, embs):
        if req.roi_id in broken:
            assert emb.meta["status"] == "failed" and "injected permanent failure" in emb.meta["error"]
        else:
            np.testing.assert_array_equal(emb.data, np.asarray(gdf.loc[req.roi_id, "embedding"], np.float32))


def _temporaries(results: Path) -> list[Path]:
    return [p for p in results.rglob(".*") if ".tmp" in p.name]


def test_sigkill_mid_embed_then_resume_gives_byte_identical_outputs(imagery, tmp_path):
    index, rois_path = imagery
    models = {"spectral": {"sensor": "s2"},
              "mosaiks": {"sensor": "s2", "batch_size": 1, "options": {"num_filters": 256}}}
    ref, run = tmp_path / "reference", tmp_path / "killed"
    for d in (ref, run):
        d.mkdir()
        write_config(d, index, rois_path, models=models, chunk_size=3)
    snakemake(ref)

    exe = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(exe), "--snakefile", str(ROOT / "Snakefile"), "--configfile", "config.yaml", "--cores", "2"]
    proc = subprocess.Popen(cmd, cwd=run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline, killed_during = time.time() + 300, None
    try:
        while time.time() < deadline and proc.poll() is None:
            for log in (run / "results/logs/embed/mosaiks").glob("*.log"):
                text = log.read_text(errors="replace")
                if "embed mosaiks: 1/3 items" in text and "done:" not in text:
                    killed_during = log.stem
                    break
            if killed_during:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
        proc.wait()
    assert killed_during, "never caught an embed job in the middle of its work"
    assert not (run / f"results/embed/mosaiks/{killed_during}.npz").exists()  # no output, not even partial

    # the documented resume: unlock (a killed snakemake leaves its lock) and run the same command
    subprocess.run([str(exe), "--snakefile", str(ROOT / "Snakefile"), "--configfile", "config.yaml", "--unlock"],
                   cwd=run, env=env, check=True, capture_output=True)
    resumed = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    exports = sorted(p.relative_to(ref) for p in (ref / "results/export").rglob("*") if p.is_file())
    assert len(exports) >= 4
    for rel in exports:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), f"{rel} differs after resume"
    for model in models:
        for chunk in sorted((ref / f"results/embed/{model}").glob("*.npz")):
            a, b = read_chunk(chunk)[0], read_chunk(run / chunk.relative_to(ref))[0]
            assert a.keys() == b.keys()
            for roi in a:
                for name in a[roi]:
                    assert a[roi][name].tobytes() == b[roi][name].tobytes()
    assert _temporaries(run / "results") == []
    ma = pd.read_csv(ref / "results/manifest/items.tsv", sep="\t")
    mb = pd.read_csv(run / "results/manifest/items.tsv", sep="\t")
    assert list(ma.embedding_sha256) == list(mb.embedding_sha256)
    again = snakemake(run, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
