"""Specs: validation of every field, immutability, half-open windows and stable keys."""

import dataclasses
import datetime as dt
import json
import subprocess
import sys

import pytest

from eoembed import BBox, EoembedError, OutputSpec, PointBuffer, Polygon, SensorSpec, SpecError, TemporalSpec
from eoembed.grid import grid_for, utm_epsg

S2 = ("B02", "B03", "B04", "B08")


@pytest.mark.parametrize("make, field", [
    (lambda: PointBuffer(181, 0, 10), "lon"),
    (lambda: PointBuffer(0, -85, 10), "lat"),
    (lambda: PointBuffer(0, 0, 0), "buffer_m"),
    (lambda: PointBuffer(0, 0, float("nan")), "buffer_m"),
    (lambda: PointBuffer("5", 0, 10), "lon"),
    (lambda: BBox(5, 52, 4, 53), "maxlon"),
    (lambda: BBox(5, 52, 6, 52), "maxlat"),
    (lambda: BBox(-190, 52, 6, 53), "minlon"),
    (lambda: Polygon(((0, 0), (1, 1))), "exterior"),
    (lambda: Polygon(((0, 0), (1, 1), (1, 0), (0, 1))), "exterior"),  # self-intersecting
    (lambda: TemporalSpec.year(1900), "year"),
    (lambda: TemporalSpec.range("2022-05-01", "2022-01-01"), "end"),
    (lambda: TemporalSpec.range("2022-05-01", "2022-05-01"), "end"),
    (lambda: TemporalSpec.range("2022-13-01", "2023-01-01"), "start"),
    (lambda: OutputSpec.pooled("median"), "pooling"),
    (lambda: OutputSpec("tiles"), "mode"),
    (lambda: OutputSpec.grid(cell_m=-1), "cell_m"),
    (lambda: SensorSpec(collection="landsat-9", bands=S2), "collection"),
    (lambda: SensorSpec(bands=()), "bands"),
    (lambda: SensorSpec(bands=("B02", "B99")), "bands"),
    (lambda: SensorSpec(bands=("B02", "B02")), "bands"),
    (lambda: SensorSpec(bands=S2, scale_m=0), "scale_m"),
    (lambda: SensorSpec(bands=S2, cloudy_pct=101), "cloudy_pct"),
    (lambda: SensorSpec(bands=S2, fill_value=float("inf")), "fill_value"),
    (lambda: SensorSpec(bands=S2, composite="mean"), "composite"),
    (lambda: SensorSpec(bands=S2, frames=0), "frames"),
    (lambda: SensorSpec(bands=S2, frames=2.5), "frames"),
])
def test_every_field_is_validated_with_a_message_naming_it(make, field):
    with pytest.raises(SpecError) as info:
        make()
    err = info.value
    assert isinstance(err, EoembedError)
    assert err.field == field
    assert field in str(err) and "allowed" in str(err)


def test_specs_are_frozen():
    p = PointBuffer(5, 52, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lon = 6  # type: ignore[misc]


def test_year_is_half_open_and_frames_partition_the_window():
    t = TemporalSpec.year(2022)
    assert (t.start, t.end) == (dt.date(2022, 1, 1), dt.date(2023, 1, 1))
    bounds = t.frame_bounds(4)
    assert bounds[0][0] == t.start and bounds[-1][1] == t.end
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no overlap
    assert sum((b - a).days for a, b in bounds) == 365


def test_keys_differ_when_any_field_differs_and_fetch_key_ignores_compositing():
    a = SensorSpec(bands=S2)
    assert a.key() != SensorSpec(bands=S2, frames=2).key()
    assert a.fetch_key() == SensorSpec(bands=S2, frames=2, composite="mosaic").fetch_key()
    assert a.fetch_key() != SensorSpec(bands=S2, scale_m=20).fetch_key()
    assert PointBuffer(5, 52, 100).key() != PointBuffer(5, 52, 101).key()
    assert PointBuffer(5, 52, 100).key() == PointBuffer(5.0, 52.0, 100.0).key()


def test_stable_key_identical_in_two_separate_processes():
    code = ("import json; from eoembed import *; print(json.dumps([PointBuffer(5.1, 52.2, 320).key(), "
            "BBox(1, 2, 3, 4).key(), TemporalSpec.year(2022).key(), OutputSpec.grid(80).key(), "
            "SensorSpec(bands=('B02','B03'), frames=3).key()]))")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")]
    first, second = (json.loads(r) for r in runs)
    assert first == second
    assert len(set(first)) == 5 and all(len(k) == 16 for k in first)


def test_utm_grid_of_point_buffer_is_square_and_pixel_aligned():
    g = grid_for(PointBuffer(5.1, 52.1, 320), 10)
    assert g.crs == f"EPSG:{utm_epsg(5.1, 52.1)}" == "EPSG:32631"
    assert (g.width, g.height) == (64, 64)
    assert g.transform[2] % 10 == 0 and g.transform[5] % 10 == 0
    south = grid_for(PointBuffer(-55.9, -12.6, 100), 20)
    assert south.crs == "EPSG:32721" and (south.width, south.height) == (10, 10)


def test_bbox_grid_covers_the_box():
    box = BBox(5.10, 52.10, 5.12, 52.11)
    g = grid_for(box, 10)
    lon, lat = g.lonlat()
    assert lon.min() < 5.10 + 0.0002 and lon.max() > 5.12 - 0.0002
    inside = g.inside_mask(box.geometry())
    assert 0.7 < inside.mean() <= 1.0


def test_inside_mask_all_inside_shortcut_matches_point_tests():
    """inside_mask answers "every centre inside" without testing each pixel only when the box of
    the centres lies in the ROI's interior: the same mask as testing every centre, for buffered
    points (all inside), boxes (edges cut) and a triangle (a corner of the grid outside)."""
    import numpy as np
    import shapely
    from shapely.geometry import Polygon as ShapelyPolygon

    from eoembed.grid import to_crs

    def every_centre(g, geom):
        utm = shapely.transform(geom, lambda xy: np.asarray(to_crs(xy[:, 0], xy[:, 1], "EPSG:4326", g.crs)).T)
        xx, yy = np.meshgrid(g.x_coords(), g.y_coords())
        return shapely.contains_xy(utm, xx, yy)

    rng = np.random.default_rng(3)
    seen_all, seen_partial = 0, 0
    for _ in range(40):
        lon, lat = float(rng.uniform(-170, 170)), float(rng.uniform(-70, 70))
        point = PointBuffer(lon, lat, float(10 * rng.integers(3, 70)))  # whole pixels: all inside
        box = BBox(lon, lat, lon + float(rng.uniform(0.001, 0.01)), lat + float(rng.uniform(0.001, 0.01)))
        for spatial in (point, box):
            g = grid_for(spatial, 10)
            for geom in (spatial.geometry(), ShapelyPolygon([(lon - 0.01, lat - 0.01), (lon + 0.01, lat - 0.01),
                                                      (lon - 0.01, lat + 0.01)])):
                mask = g.inside_mask(geom)
                np.testing.assert_array_equal(mask, every_centre(g, geom))
                seen_all += bool(mask.all())
                seen_partial += bool(mask.any() and not mask.all())
    assert seen_all >= 40 and seen_partial >= 20  # both branches exercised
