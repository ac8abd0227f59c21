"""SceneReader keeps few datasets open for files read once, and more when a job returns to its files."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
from affine import Affine

from eoembed.providers.reader import FIRST_OPEN, SceneReader


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("tifs")
    paths = []
    for i in range(3 * FIRST_OPEN):
        path = out / f"f{i:02d}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint16",
                           crs="EPSG:32631",
                           transform=Affine(10, 0, 500000 + 80 * i, 0, -10, 5800000)) as dst:
            dst.write(np.full((1, 8, 8), i, np.uint16))
        paths.append(str(path))
    return paths


def _open_all(reader: SceneReader, paths: list[str]) -> list:
    return [reader._open(p) for p in paths]


def test_files_read_once_keep_few_datasets_open(files):
    reader = SceneReader(max_open=256)
    with reader.session():
        srcs = _open_all(reader, files)
        last = srcs[-FIRST_OPEN:]
        assert [int(s.ds.read(1)[0, 0]) for s in last] == list(range(2 * FIRST_OPEN, 3 * FIRST_OPEN))
        open_now = [s for s in srcs if not s.ds.closed]
        assert len(open_now) == FIRST_OPEN == len(reader._local.cache)
        assert open_now == srcs[-FIRST_OPEN:]  # the most recent ones
    reader.close()
    assert all(s.ds.closed for s in srcs)


def test_reopening_closed_files_keeps_more_open_up_to_max_open(files):
    reader = SceneReader(max_open=2 * FIRST_OPEN + 4)
    with reader.session():
        _open_all(reader, files)  # 48 files, 16 kept
        _open_all(reader, files)  # each reopen of a closed file doubles what is kept, capped
        assert reader._local.limit == reader.max_open
        second = _open_all(reader, files[:reader.max_open])
        third = _open_all(reader, files[:reader.max_open])  # all kept: no file opened again
        assert all(a is b and not a.ds.closed for a, b in zip(second, third))
        assert len(reader._local.cache) == reader.max_open
    reader.close()


def test_each_thread_has_its_own_datasets(files):
    reader = SceneReader()
    mine = reader._open(files[0])
    other = []
    t = threading.Thread(target=lambda: other.append(reader._open(files[0])))
    t.start()
    t.join()
    assert other[0] is not mine and other[0].ds is not mine.ds  # GDAL datasets are not thread-safe
    assert reader._open(files[0]) is mine
    reader.close()
    other[0].ds.close()
