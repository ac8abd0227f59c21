"""Stable chunks: a ROI's chunk depends on its id and the frozen chunk count, nothing else."""

import json
import random

import pytest

from eoembed.chunks import (chunk_count, chunk_members, frozen_chunk_count, resolve_chunk_size,
                            workflow_chunks)
from eoembed.errors import ConfigError


def _chunk_of(chunks):
    return {rid: c for c, members in chunks.items() for rid in members}


def test_auto_size_steps_past_16000_rows():
    assert resolve_chunk_size("auto", 16_000) == 16
    assert resolve_chunk_size("auto", 16_001) == 17
    assert resolve_chunk_size(7, 10) == 7
    with pytest.raises(ConfigError, match="chunk_size=0"):
        resolve_chunk_size(0, 10)


def test_every_roi_in_exactly_one_chunk_and_members_sorted():
    ids = [f"roi{i}" for i in range(500)]
    chunks = chunk_members(ids, 10)
    flat = [r for m in chunks.values() for r in m]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    assert all(m == sorted(m) for m in chunks.values())
    assert len(chunks) == 10 and max(len(m) for m in chunks.values()) < 100  # 50 expected per chunk


def test_sorting_and_shuffling_the_table_changes_no_chunk():
    ids = [f"site{i % 7}_{i}" for i in range(300)]
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert chunk_members(ids, 12) == chunk_members(shuffled, 12) == chunk_members(sorted(ids), 12)


def test_appending_a_row_changes_only_its_chunk(tmp_path):
    path = tmp_path / "chunks.json"
    ids = [f"r{i}" for i in range(40)]
    before = workflow_chunks(ids, 4, path)
    after = workflow_chunks(ids + ["new_roi"], 4, path)
    changed = {c for c in set(before) | set(after) if before.get(c) != after.get(c)}
    assert changed == {_chunk_of(after)["new_roi"]}


def test_growing_past_an_auto_step_keeps_every_roi_in_its_chunk(tmp_path):
    path = tmp_path / "chunks.json"
    ids = [f"r{i}" for i in range(16_000)]
    first = _chunk_of(workflow_chunks(ids, "auto", path))
    assert json.loads(path.read_text())["n_chunks"] == 1000
    grown = ids + [f"extra{i}" for i in range(1_001)]  # auto would now pick 17 per chunk = 942 chunks
    assert chunk_count("auto", len(grown)) != 1000
    after = _chunk_of(workflow_chunks(grown, "auto", path))
    assert all(after[r] == first[r] for r in ids)


def test_changing_chunk_size_rechunks_and_dry_runs_do_not_write(tmp_path):
    path = tmp_path / "chunks.json"
    ids = [f"r{i}" for i in range(30)]
    assert frozen_chunk_count(3, len(ids), path, write=False) == 10
    assert not path.exists()
    assert frozen_chunk_count(3, len(ids), path) == 10
    assert frozen_chunk_count(3, 60, path) == 10  # frozen
    assert frozen_chunk_count(5, 60, path) == 12  # explicit new size: re-chunked and recorded
    assert json.loads(path.read_text())["chunk_size"] == 5


def test_unreadable_chunk_file_names_the_path(tmp_path):
    path = tmp_path / "chunks.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="chunks.json"):
        frozen_chunk_count(3, 10, path)
