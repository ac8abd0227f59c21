"""The workflow on a real single-node SLURM cluster (slurmctld + slurmd + munge on this machine)
through snakemake-executor-plugin-slurm and profiles/slurm, with a GPU-tagged embed job.

Needs the Debian packages slurmd, slurmctld, slurm-client and munge, installed outside the tests by
``make slurm-deps`` (``.ci/run`` does it); skips with that instruction otherwise. The daemons are
stopped by PID at the end.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from eoembed.chunkio import read_chunk
from eoembed.chunks import chunk_members
from workflow_helpers import ROOT, make_imagery, make_rois, snakemake, write_config

pytestmark = pytest.mark.slow
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a test SLURM cluster needs root (to install and run slurmctld/slurmd/munged)")
    missing = [exe for exe in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(exe) is None]
    if missing:  # system packages are installed outside the tests: `make slurm-deps` (run by .ci/run)
        pytest.skip(f"SLURM is not installed ({missing} missing): run `make slurm-deps` (root, Debian mirror)")
    state = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=120)
    try:
        if start.returncode != 0:
            pytest.fail(f"SLURM daemons did not start:\n{start.stdout}\n{start.stderr}")
        yield state / "slurm.conf"
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, timeout=60)


def test_workflow_on_slurm_matches_local_run_and_gpu_job_gets_a_gpu(slurm, tmp_path, capsys):
    index = make_imagery(tmp_path / "sample")
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2)
    models = {"spectral": {"sensor": "s2"},
              "mosaiks": {"sensor": "s2", "device": "auto", "options": {"num_filters": 16}}}
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    for d in (local, cluster):
        d.mkdir()
        write_config(d, index, rois, models=models, chunk_size=3)
    snakemake(local)

    # as a user would: from a directory holding profiles/, with the SLURM profile
    (cluster / "profiles").symlink_to(ROOT / "profiles")
    env = {**os.environ, "SLURM_CONF": str(slurm),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"),
                           "--configfile", "config.yaml", "--profile", "profiles/slurm", "--workflow-profile", "none",
                           "--slurm-init-seconds-before-status-checks", "5", "--verbose"],
                          cwd=cluster, env=env, capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    sbatch = [line for line in log.splitlines() if line.startswith("sbatch call: sbatch")]
    submitted = [line for line in log.splitlines() if "submitted with SLURM jobid" in line]
    # 6 ROIs, chunk_size 3: 2 hash buckets; fetch + composite + 2 embeds per non-empty chunk go to
    # SLURM, and the benchmark (model fits)
    n_chunks = len(chunk_members(pd.read_csv(rois, sep="\t")["roi_id"].tolist(), 2))
    assert len(sbatch) == len(submitted) == 4 * n_chunks + 1, submitted
    assert sum("rule_benchmark" in line for line in sbatch) == 1
    assert sum("--gpus=1" in line for line in sbatch) == n_chunks  # the mosaiks (device auto) embeds
    assert all(" -p gpu " in line for line in sbatch if "--gpus=1" in line)
    # the light steps ran locally (localrules), not through sbatch
    assert not any("rule_aggregate" in line or "rule_export" in line for line in sbatch)

    # the GPU-tagged embed job ran in the gpu partition with a GPU; the CPU one did not get one
    for chunk in sorted((cluster / "results/embed/mosaiks").glob("*.npz")):
        job = read_chunk(chunk)[2]["job"]
        assert job.get("SLURM_JOB_ID") and job.get("SLURM_GPUS_ON_NODE") == "1", job
        assert job.get("SLURM_JOB_PARTITION") == "gpu", job
    for chunk in sorted((cluster / "results/embed/spectral").glob("*.npz")):
        job = read_chunk(chunk)[2]["job"]
        assert job.get("SLURM_JOB_ID") and "SLURM_GPUS_ON_NODE" not in job, job

    with capsys.disabled():  # evidence in the CI log: what was submitted and what the GPU job got
        print(f"\n[slurm] {len(sbatch)} jobs submitted with sbatch, e.g.:\n  {sbatch[0][:300]}")
        for line in sbatch:
            if "--gpus=1" in line:
                print(f"[slurm] GPU-tagged: {line[:220]}")
        for chunk in sorted((cluster / "results/embed/mosaiks").glob("*.npz")):
            print(f"[slurm] mosaiks {chunk.stem} ran with {read_chunk(chunk)[2]['job']}")

    # same results as the local run
    for model in models:
        a = gpd.read_parquet(local / f"results/export/{model}/embeddings.parquet").set_index("roi_id").sort_index()
        b = gpd.read_parquet(cluster / f"results/export/{model}/embeddings.parquet").set_index("roi_id").sort_index()
        assert list(a.index) == list(b.index)
        np.testing.assert_array_equal(np.stack(a["embedding"]), np.stack(b["embedding"]))
        assert (local / f"results/export/{model}/embeddings.nc").read_bytes() == \
            (cluster / f"results/export/{model}/embeddings.nc").read_bytes()
    ma = pd.read_csv(local / "results/manifest/items.tsv", sep="\t").sort_values(["model", "roi_id"])
    mb = pd.read_csv(cluster / "results/manifest/items.tsv", sep="\t").sort_values(["model", "roi_id"])
    assert list(ma["status"]) == list(mb["status"])
    assert list(ma["embedding_sha256"]) == list(mb["embedding_sha256"])
    assert json.loads((cluster / "results/manifest/summary.json").read_text())
