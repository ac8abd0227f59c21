"""Chunk job resources scale with pixels x bands x time steps, and grow with each retry."""

from eoembed import jobsize
from eoembed.specs import PointBuffer, TemporalSpec

S2 = {"bands": ["B02", "B03", "B04", "B08"], "scale_m": 10, "frames": 1}


def _req(buffer_m, days_end="2024-01-01"):
    return {"spatial": PointBuffer(5.0, 52.0, buffer_m).to_dict(),
            "temporal": TemporalSpec.range("2023-01-01", days_end).to_dict()}


def test_pixels_follow_the_roi_size():
    assert 30 <= jobsize.roi_pixels(_req(160), 10) ** 0.5 <= 34  # a 320 m square at 10 m
    assert 19_000 <= jobsize.roi_pixels(_req(100_000), 10) ** 0.5 <= 21_000


def test_a_100km_roi_asks_for_far_more_than_the_default_and_small_chunks_stay_small():
    small = jobsize.mem_mb([_req(160)] * 16, S2, "fetch")
    big = jobsize.mem_mb([_req(100_000)], S2, "fetch")
    assert small < 1000 < 100_000 < big  # 16 x 32 x 32 px vs 20,000 x 20,000 px over ~73 scenes
    assert jobsize.mem_mb([_req(100_000)], S2, "fetch", attempt=2) == min(jobsize.MAX_MB, 2 * big)


def test_time_steps_frames_and_stages():
    year = jobsize.chunk_bytes([_req(1000)], S2, stage="fetch")
    month = jobsize.chunk_bytes([_req(1000, "2023-02-01")], S2, stage="fetch")
    assert year == month * 73 // 7  # ceil(365 / 5) vs ceil(31 / 5) scenes
    frames12 = {**S2, "frames": 12}
    assert jobsize.chunk_bytes([_req(1000)], frames12, stage="fetch", server_side=True) == year * 12 // 73
    assert jobsize.chunk_bytes([_req(1000)], frames12, stage="embed") == 12 * jobsize.chunk_bytes(
        [_req(1000)], S2, stage="embed")
    assert jobsize.runtime_min([_req(1000)], S2, "fetch", attempt=3, base_min=30) == 4 * jobsize.runtime_min(
        [_req(1000)], S2, "fetch", base_min=30)
