"""profiles/slurm-grouped: a chunk's fetch, composite and embed jobs planned as one cluster job,
with the fetch still shared by the models (a dry run of the real workflow, nothing submitted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eoembed.chunks import chunk_members
from workflow_helpers import ROOT, make_imagery, make_rois, write_config

pytest.importorskip("snakemake_executor_plugin_slurm")


def _groups(output: str) -> list[list[tuple[str, str]]]:
    """``[(rule, chunk), ...]`` per group job of a dry run's plan."""
    groups, current = [], None
    for line in output.splitlines():
        if re.search(r"Group job chunk \(", line):
            current = []
            groups.append(current)
        elif current is not None and line and not line.startswith(" "):
            current = None
        elif current is not None and (m := re.match(r"\s+rule (\w+):", line)):
            current.append([m.group(1), None])
        elif current is not None and current and (m := re.search(r"\bchunk=(\w+)", line)):
            current[-1][1] = m.group(1)
    return [[tuple(job) for job in g] for g in groups]


def _dry_run(workdir: Path, *profile: str) -> str:
    exe = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(exe), "--snakefile", str(ROOT / "Snakefile"), "--configfile", "config.yaml",
                           "-n", *profile], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def test_grouped_profile_plans_one_job_per_chunk_with_shared_fetch(tmp_path):
    index = make_imagery(tmp_path / "sample")
    rois = make_rois(index, tmp_path / "rois.tsv", n_per_site=2)
    models = {"spectral": {"sensor": "s2"}, "mosaiks": {"sensor": "s2", "options": {"num_filters": 16}}}
    work = tmp_path / "run"
    work.mkdir()
    write_config(work, index, rois, models=models, chunk_size=3)
    (work / "profiles").symlink_to(ROOT / "profiles")
    chunks = set(chunk_members(pd.read_csv(rois, sep="\t")["roi_id"].tolist(), 2))  # non-empty ones
    assert len(chunks) == 2

    grouped = _groups(_dry_run(work, "--profile", "profiles/slurm", "--workflow-profile", "profiles/slurm-grouped"))
    assert len(grouped) == len(chunks)  # one cluster job per chunk
    assert {g[0][1] for g in grouped} == chunks
    for group in grouped:
        assert len({chunk for _, chunk in group}) == 1  # jobs of one chunk only
        rules = sorted(rule for rule, _ in group)
        assert rules == ["composite", "embed", "embed", "fetch"]  # one fetch for both models

    assert _groups(_dry_run(work, "--profile", "profiles/slurm", "--workflow-profile", "none")) == []
