"""The declared true-colour stretch that general-purpose (ImageNet / web-image) backbones get.

Those networks were trained on 8-bit photographs scaled to [0, 1]. eoembed feeds them Sentinel-2
B04, B03, B02 (red, green, blue) as ``v = DN / 3000`` (surface reflectance 0.3 = full scale; the
usual linear true-colour stretch, ~2.5x the [0, 1] reflectance range), **without clipping and
without 8-bit quantisation**, then the library's own per-channel ``(v - mean) / std``. Both steps
fold into one :class:`BandNorm` per band: ``shift = 3000 mean``, ``div = 3000 std`` (stack units).

Where this differs from feeding the library an RGB photograph of the ROI: values brighter than
reflectance 0.3 (clouds, snow, bright soil) stay above 1 instead of saturating, and there is no
rounding to 1/255 steps. Resampling is the framework's (bilinear, anti-aliased), not PIL bicubic.
"""

from __future__ import annotations

from eoembed.models.inputs import BandNorm

RGB_BANDS = ("B04", "B03", "B02")
#: DN (reflectance x 10000) mapped to 1.0.
FULL_SCALE_DN = 3000.0


def rgb_norm(mean: tuple[float, float, float], std: tuple[float, float, float]) -> tuple[BandNorm, ...]:
    """Per-band norms for ``((DN / FULL_SCALE_DN) - mean) / std`` in R, G, B order."""
    return tuple(BandNorm(shift=FULL_SCALE_DN * m, div=FULL_SCALE_DN * s) for m, s in zip(mean, std))


STRETCH_NOTE = (f"RGB = B04, B03, B02 as DN / {FULL_SCALE_DN:g} (reflectance 0.3 = 1.0), unclipped and not "
                "quantised to 8 bits, then the library's mean/std (see eoembed.models.rgb).")
