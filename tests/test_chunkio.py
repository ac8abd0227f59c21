"""Chunk files round-trip every array bit for bit, compressed, and are written atomically."""

from __future__ import annotations

import zipfile

import numpy as np

from eoembed.chunkio import read_chunk, read_chunk_records, write_chunk


def _items() -> dict:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 10000, (6, 12, 64, 64)).astype("uint16")
    stack[:, :, :32] = 0  # compressible
    comp = rng.normal(size=(12, 64, 64)).astype("float32")
    comp[0, 0, :5] = np.nan
    return {
        "a_1": {"stack": stack, "valid": stack[:, 0] > 0, "times": np.array(["2023-01-01"], dtype="U10")},
        "b-2": {"composite": comp, "empty": np.zeros((0, 3), "float64")},
        "failed": {},
    }


def test_write_then_read_gives_the_same_arrays_records_and_meta(tmp_path):
    items = _items()
    records = {k: {"status": "failed" if k == "failed" else "ok", "error": None, "n": i}
               for i, k in enumerate(items)}
    meta = {"stage": "fetch", "sensor": {"bands": ["B02"]}}
    path = tmp_path / "c00000.npz"
    write_chunk(path, items, records, meta)

    got, got_records, got_meta = read_chunk(path)
    assert got_records == records and got_meta == meta
    assert set(got) == {k for k, v in items.items() if v}
    for roi, named in items.items():
        for name, arr in named.items():
            back = got[roi][name]
            assert back.dtype == arr.dtype and back.shape == arr.shape, (roi, name)
            np.testing.assert_array_equal(back, arr)
    assert read_chunk_records(path) == (records, meta)
    assert [p.name for p in tmp_path.iterdir()] == ["c00000.npz"]  # no temporary left


def test_chunk_members_are_deflated(tmp_path):
    items = _items()
    path = tmp_path / "c.npz"
    write_chunk(path, items, {k: {} for k in items})
    raw = sum(a.nbytes for named in items.values() for a in named.values())
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    assert path.stat().st_size < 0.8 * raw
