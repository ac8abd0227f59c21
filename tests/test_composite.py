"""Tests of eoembed.composite: cloud masks, median / mosaic, frames, resize and pad."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest

from eoembed.composite import make_composite, pad_to_multiple, quality_mask, resize_to
from eoembed.errors import ProviderError
from eoembed.grid import GridSpec
from eoembed.items import Stack
from eoembed.specs import SensorSpec, TemporalSpec

NAN = np.nan
CLEAR, SHADOW, CLOUD_MED, CLOUD_HIGH, CIRRUS, NODATA = 4, 3, 8, 9, 10, 0


def _grid(h: int, w: int) -> GridSpec:
    return GridSpec("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), w, h)


def _t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


@pytest.fixture
def cloudy_stack() -> Stack:
    """2x2 pixels, 4 scenes stored out of time order, bands (B08, B04, B02).

    Per pixel, B04 by acquisition date (Jan, Feb, Mar, Apr) and its SCL class:
      (0,0): 10 20 30 40, all clear                  -> median 25, mosaic 40
      (0,1): 10 30 999(shadow) 999(cloud)            -> median 20, mosaic 30
      (1,0): cloud/cirrus/no-data/medium cloud always -> fill, invalid
      (1,1): 5 100 7, April clear but B08 is NaN     -> median 7, mosaic 7
    B08 = B04 + 1000 everywhere (NaN at (1,1) in April); B02 = 1.
    """
    b04 = {  # date index -> 2x2
        0: [[10, 10], [500, 5]],
        1: [[20, 30], [500, 100]],
        2: [[30, 999], [500, 7]],
        3: [[40, 999], [500, 60]],
    }
    scl = {
        0: [[CLEAR, CLEAR], [CLOUD_HIGH, CLEAR]],
        1: [[CLEAR, CLEAR], [CIRRUS, CLEAR]],
        2: [[CLEAR, SHADOW], [NODATA, CLEAR]],
        3: [[CLEAR, CLOUD_HIGH], [CLOUD_MED, CLEAR]],
    }
    dates = [_t(2020, 1, 10), _t(2020, 2, 10), _t(2020, 3, 10), _t(2020, 4, 10)]
    order = [2, 3, 0, 1]  # storage order differs from time order
    data = np.empty((4, 3, 2, 2), np.float32)
    qa = np.empty((4, 2, 2), np.uint8)
    for k, d in enumerate(order):
        red = np.array(b04[d], np.float32)
        nir = red + 1000
        if d == 3:
            nir[1, 1] = NAN
        data[k] = [nir, red, np.ones((2, 2))]
        qa[k] = scl[d]
    return Stack(data, qa, [dates[d] for d in order], ("B08", "B04", "B02"), _grid(2, 2),
                 "sentinel-2-l2a", [[f"scene{d}"] for d in order])


def _sensor(method: str, frames: int = 1, fill: float = -9.0) -> SensorSpec:
    return SensorSpec(bands=("B04", "B08"), composite=method, frames=frames, fill_value=fill)


def test_quality_mask_marks_clouds_shadows_and_nan(cloudy_stack):
    mask = quality_mask(cloudy_stack, "sentinel-2-l2a")
    # scene stored first is March: (0,1) shadow, (1,0) no data, others clear
    assert mask[0].tolist() == [[True, False], [False, True]]
    # scene stored second is April: (0,1) cloud, (1,0) medium cloud, (1,1) NaN band
    assert mask[1].tolist() == [[True, False], [False, False]]
    without_qa = Stack(cloudy_stack.data, None, cloudy_stack.times, cloudy_stack.bands,
                       cloudy_stack.grid, cloudy_stack.collection)
    assert quality_mask(without_qa, "sentinel-2-l2a")[1].tolist() == [[True, True], [True, False]]


def test_median_over_clear_observations(cloudy_stack):
    roi = np.ones((2, 2), bool)
    comp = make_composite(cloudy_stack, _sensor("median"), TemporalSpec.year(2020), roi)
    assert comp.bands == ("B04", "B08")
    assert comp.data.dtype == np.float32 and comp.data.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(comp.data[0, 0], [[25, 20], [-9, 7]])
    np.testing.assert_array_equal(comp.data[0, 1], [[1025, 1020], [-9, 1007]])
    assert comp.valid[0].tolist() == [[True, True], [False, True]]
    assert comp.valid_fraction == [0.75]
    assert comp.method == "median" and comp.fill_value == -9.0


def test_mosaic_takes_most_recent_clear_observation(cloudy_stack):
    roi = np.ones((2, 2), bool)
    comp = make_composite(cloudy_stack, _sensor("mosaic"), TemporalSpec.year(2020), roi)
    np.testing.assert_array_equal(comp.data[0, 0], [[40, 30], [-9, 7]])
    np.testing.assert_array_equal(comp.data[0, 1], [[1040, 1030], [-9, 1007]])
    assert comp.valid[0].tolist() == [[True, True], [False, True]]
    assert set(comp.scenes) == {"scene0", "scene1", "scene2", "scene3"}


def test_frames_are_half_open_bins():
    """Window [Jan 1, Jan 5) in 2 frames: [Jan 1, Jan 3) and [Jan 3, Jan 5)."""
    times = [
        _t(2019, 12, 31, 12),                                         # before the window
        _t(2020, 1, 2, 23, 59),                                       # frame 0
        dt.datetime(2020, 1, 3, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # Jan 2 UTC
        _t(2020, 1, 3),                                               # exactly on the edge: frame 1
        _t(2020, 1, 5),                                               # == end: excluded
    ]
    values = [111.0, 1.0, 3.0, 20.0, 555.0]
    data = np.array(values, np.float32)[:, None, None, None] * np.ones((1, 1, 1, 3), np.float32)
    qa = np.full((5, 1, 3), CLEAR, np.uint8)
    qa[3, 0, 2] = CLOUD_HIGH  # the frame-1 observation is cloudy at pixel 2
    stack = Stack(data, qa, times, ("B04",), _grid(1, 3), "sentinel-2-l2a")
    roi = np.array([[True, True, True]])
    sensor = SensorSpec(bands=("B04",), composite="mosaic", frames=2, fill_value=0.0)
    comp = make_composite(stack, sensor, TemporalSpec.range("2020-01-01", "2020-01-05"), roi)
    assert comp.frame_bounds == [(dt.date(2020, 1, 1), dt.date(2020, 1, 3)),
                                 (dt.date(2020, 1, 3), dt.date(2020, 1, 5))]
    np.testing.assert_array_equal(comp.data[0, 0, 0], [1.0, 1.0, 1.0])   # latest in frame 0
    np.testing.assert_array_equal(comp.data[1, 0, 0], [20.0, 20.0, 0.0])
    assert comp.valid[1, 0].tolist() == [True, True, False]
    median = make_composite(stack, SensorSpec(bands=("B04",), frames=2),
                            TemporalSpec.range("2020-01-01", "2020-01-05"), roi)
    np.testing.assert_array_equal(median.data[0, 0, 0], [2.0, 2.0, 2.0])  # median of 1 and 3
    # valid fraction counts inside-ROI pixels only
    comp2 = make_composite(stack, sensor, TemporalSpec.range("2020-01-01", "2020-01-05"),
                           np.array([[False, True, True]]))
    assert comp2.valid_fraction == [1.0, 0.5]


def test_missing_band_is_a_provider_error(cloudy_stack):
    with pytest.raises(ProviderError, match="B11"):
        make_composite(cloudy_stack, SensorSpec(bands=("B04", "B11")), TemporalSpec.year(2020),
                       np.ones((2, 2), bool))


def test_median_matches_numpy_on_a_large_stack():
    rng = np.random.default_rng(1)
    n, h = 24, 256
    data = rng.integers(0, 10000, (n, 12, h, h)).astype(np.float32)
    qa = rng.choice(np.array([CLEAR, CLOUD_HIGH], np.uint8), size=(n, h, h), p=[0.6, 0.4])
    qa[:, 0, 0] = CLOUD_HIGH
    times = [_t(2021, 1, 1) + dt.timedelta(days=14 * i) for i in range(n)]
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    stack = Stack(data, qa, times, bands, _grid(h, h), "sentinel-2-l2a")
    sensor = SensorSpec(bands=bands)
    comp = make_composite(stack, sensor, TemporalSpec.year(2021), np.ones((h, h), bool))  # speed: benchmarks/
    masked = np.where((qa == CLEAR)[:, None], data, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-cloudy pixel (0, 0)
        expected = np.nanmedian(masked[:, :, :8, :8], axis=0)
    expected[:, 0, 0] = 0.0
    np.testing.assert_allclose(comp.data[0][:, :8, :8], expected)
    assert not comp.valid[0, 0, 0]


def _comp_from(values: np.ndarray, valid: np.ndarray, fill: float = -1.0):
    stack = Stack(values[None, None].astype(np.float32), np.where(valid, CLEAR, CLOUD_HIGH)[None]
                  .astype(np.uint8), [_t(2020, 6, 1)], ("B04",), _grid(*values.shape),
                  "sentinel-2-l2a")
    return make_composite(stack, SensorSpec(bands=("B04",), fill_value=fill),
                          TemporalSpec.year(2020), np.ones(values.shape, bool))


def test_pad_to_multiple():
    comp = _comp_from(np.full((5, 7), 3.0), np.ones((5, 7), bool))
    padded = pad_to_multiple(comp, 4)
    assert padded.data.shape == (1, 1, 8, 8)
    assert (padded.grid.height, padded.grid.width) == (8, 8)
    assert padded.grid.transform == comp.grid.transform
    assert np.all(padded.data[0, 0, 5:] == -1.0) and np.all(padded.data[0, 0, :, 7:] == -1.0)
    assert padded.valid[0].sum() == 35 and padded.roi_mask.sum() == 35
    assert pad_to_multiple(padded, 4).data.shape == (1, 1, 8, 8)


def test_resize_keeps_gaps_out_of_valid_pixels():
    values = np.full((8, 8), 100.0)
    valid = np.ones((8, 8), bool)
    valid[:, :4] = False  # left half cloudy: holds the fill value -1
    comp = _comp_from(values, valid)
    for size in (4, 16):
        out = resize_to(comp, size)
        assert out.data.shape == (1, 1, size, size)
        assert out.grid.width == size and out.grid.res == pytest.approx(10.0 * 8 / size)
        left, right = out.valid[0, :, : size // 2], out.valid[0, :, size // 2:]
        assert not left.any() and right.all()
        np.testing.assert_allclose(out.data[0, 0][out.valid[0]], 100.0, rtol=1e-6)
        assert np.all(out.data[0, 0][~out.valid[0]] == -1.0)


def test_single_scene_median_equals_numpy_nanmedian():
    """The one-scene fast path of the median gives numpy's nanmedian of the valid values."""
    import warnings

    from eoembed.composite import _median

    rng = np.random.default_rng(4)
    values = rng.uniform(0, 1e4, (1, 4, 12, 12)).astype(np.float32)
    values[0, :, :2] = np.nan
    valid = rng.random((1, 12, 12)) > 0.3
    masked = np.where(valid[:, None], values, np.nan).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        expected = np.nanmedian(masked, axis=0)
    got = _median(values.copy(), valid)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[:, ~valid[0]]).all() and np.isfinite(got[:, 2:][:, valid[0, 2:]]).all()
