"""The simulation behind the GENERATED Sentinel-2 L2A-like demo imagery (no real data).

Pure numpy/scipy, no file I/O: :func:`make_site` draws a site's land-cover map and crop
fields from seeded smooth noise, :func:`render_scene` renders one acquisition date at 10 m
(12 bands of reflectance x 10000 plus a Scene Classification Layer) including crop
phenology, pixel noise, clouds and their shadows, and :func:`roi_truth` summarises the TRUE
generated land cover and crop state inside a window (the source of the demo labels).

Spectral signatures are typical published surface-reflectance values of each cover type
(e.g. the USGS spectral library and Sentinel-2 L2A statistics): water is dark in NIR/SWIR,
green vegetation has the red-edge rise and NIR plateau with SWIR water absorption, bare soil
rises steadily to the SWIR, urban surfaces are bright and flat.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from eoembed.collections import S2_BANDS

__all__ = ["CLASSES", "SIGNATURES", "SiteScene", "make_site", "render_scene", "roi_truth",
           "scl_to_20m", "crop_peak_doy"]

#: Land-cover classes of the generated maps (value = index).
CLASSES = ("water", "forest", "cropland", "urban", "bare")
WATER, FOREST, CROP, URBAN, BARE = range(len(CLASSES))

#: Typical surface reflectance x 10000 per cover type, in :data:`S2_BANDS` order
#: (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12).
SIGNATURES: dict[str, tuple[int, ...]] = {
    "water": (450, 520, 430, 270, 210, 130, 110, 90, 80, 50, 35, 25),
    "forest": (240, 260, 480, 260, 760, 2050, 2600, 2800, 2950, 2250, 1450, 650),
    "green_crop": (280, 310, 640, 290, 920, 2700, 3400, 3800, 3950, 3000, 2050, 980),
    "soil": (900, 1000, 1350, 1700, 1900, 2050, 2200, 2350, 2500, 1900, 3200, 2750),
    "urban": (1100, 1150, 1250, 1350, 1450, 1550, 1650, 1750, 1800, 1350, 2050, 1850),
    "cloud": (6500, 6800, 6900, 7000, 7100, 7100, 7100, 7000, 7000, 4500, 4200, 3000),
}
_SIG = {k: np.asarray(v, dtype=np.float32)[:, None, None] for k, v in SIGNATURES.items()}
_B04, _B08 = S2_BANDS.index("B04"), S2_BANDS.index("B08")

# Scene Classification Layer classes used here (ESA L2A definition).
SCL_SHADOW, SCL_VEG, SCL_NOT_VEG, SCL_WATER, SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS = 3, 4, 5, 6, 8, 9, 10


def _rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and stable hashes of ``parts`` (order-independent of calls)."""
    return np.random.default_rng([seed] + [zlib.crc32(str(p).encode()) for p in parts])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, standardised to zero mean and unit variance."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _ranks(field: np.ndarray) -> np.ndarray:
    """Empirical quantile (0..1) of every pixel, so thresholds give exact area shares."""
    order = np.argsort(field, axis=None, kind="stable")
    ranks = np.empty(field.size, dtype=np.float32)
    ranks[order] = (np.arange(field.size) + 0.5) / field.size
    return ranks.reshape(field.shape)


def crop_peak_doy(lat: float) -> float:
    """Typical day of year of peak crop greenness: boreal summer, monsoon or austral summer."""
    if lat >= 23.5:
        return 195.0
    if lat >= 0:
        return 250.0
    return 45.0


def _season(doy: float, peak: float, width: float) -> np.ndarray | float:
    """Gaussian seasonal curve in (0, 1] with circular day distance."""
    d = np.abs(doy - peak) % 365.0
    d = np.minimum(d, 365.0 - d)
    return np.exp(-0.5 * (d / width) ** 2)


@dataclass
class SiteScene:
    """The TRUE generated state of one demo site (static over the year).

    Attributes:
        name: Site name.
        landcover: ``(H, W)`` uint8 class index into :data:`CLASSES`.
        field_id: ``(H, W)`` int32 field index of every pixel (fields tile the whole site).
        productivity: Per field, crop vigour in [0.45, 1.1] (scales peak green cover).
        peak_doy: Per field, day of year of peak greenness.
        width_days: Per field, season half-width (days).
        soil_brightness: Per field, soil reflectance factor.
        texture: ``(H, W)`` multiplicative static pixel texture around 1.
        site_peak: The site's typical crop peak day.
        seed: Seed the site was generated with.
    """

    name: str
    landcover: np.ndarray
    field_id: np.ndarray
    productivity: np.ndarray
    peak_doy: np.ndarray
    width_days: np.ndarray
    soil_brightness: np.ndarray
    texture: np.ndarray
    site_peak: float
    seed: int

    def green_cover(self, doy: float) -> np.ndarray:
        """``(H, W)`` fraction of green vegetation cover of crop fields on day ``doy``."""
        g_field = 0.05 + 0.9 * np.minimum(self.productivity, 1.05) * _season(
            doy, self.peak_doy, self.width_days)
        return np.minimum(g_field, 0.97).astype(np.float32)[self.field_id]

    def peak_cover(self) -> np.ndarray:
        """``(H, W)`` green cover of crop fields at their own peak day."""
        return np.minimum(0.05 + 0.9 * np.minimum(self.productivity, 1.05), 0.97).astype(
            np.float32)[self.field_id]


def _partition_fields(rng: np.random.Generator, size: int) -> np.ndarray:
    """Tile a ``size`` x ``size`` square with rectangular fields (columns split into rows)."""
    field_id = np.zeros((size, size), dtype=np.int32)
    next_id, x = 0, 0
    while x < size:
        w = int(rng.integers(15, 46))
        x1 = size if size - (x + w) < 10 else x + w
        y = 0
        while y < size:
            h = int(rng.integers(12, 41))
            y1 = size if size - (y + h) < 8 else y + h
            field_id[y:y1, x:x1] = next_id
            next_id, y = next_id + 1, y1
        x = x1
    return field_id


def make_site(name: str, lat: float, size: int, seed: int) -> SiteScene:
    """Draw the land cover, fields and crop traits of one site (deterministic in its inputs).

    Args:
        name: Site name (part of the seed).
        lat: Site latitude (sets the crop season).
        size: Tile size in 10 m pixels.
        seed: Global seed.
    """
    rng = _rng(seed, "site", name, size)
    shape = (size, size)
    shares = {"water": rng.uniform(0.03, 0.09), "forest": rng.uniform(0.12, 0.35),
              "urban": rng.uniform(0.03, 0.09), "fallow": rng.uniform(0.08, 0.2)}
    scale = size / 384.0
    water_r = _ranks(_smooth(rng, shape, 22 * scale) + 0.4 * _smooth(rng, shape, 4 * scale))
    forest_r = _ranks(_smooth(rng, shape, 28 * scale) + 0.3 * _smooth(rng, shape, 5 * scale))
    urban_r = _ranks(_smooth(rng, shape, 10 * scale))
    field_id = _partition_fields(rng, size)
    n_fields = int(field_id.max()) + 1

    fallow = rng.random(n_fields) < shares["fallow"]
    landcover = np.where(fallow[field_id], BARE, CROP).astype(np.uint8)
    water = water_r >= 1 - shares["water"]
    forest = (forest_r >= 1 - shares["forest"]) & ~water
    urban = (urban_r >= 1 - shares["urban"]) & ~water & ~forest
    landcover[forest] = FOREST
    landcover[urban] = URBAN
    landcover[water] = WATER

    site_peak = crop_peak_doy(lat)
    texture = 1 + 0.04 * _smooth(rng, shape, 1.2) + 0.02 * rng.standard_normal(shape).astype(np.float32)
    return SiteScene(
        name=name, landcover=landcover, field_id=field_id,
        productivity=rng.uniform(0.45, 1.1, n_fields),
        peak_doy=site_peak + rng.normal(0, 12, n_fields),
        width_days=rng.uniform(28, 45, n_fields),
        soil_brightness=rng.uniform(0.8, 1.2, n_fields),
        texture=texture.astype(np.float32), site_peak=site_peak, seed=seed)


def surface_reflectance(site: SiteScene, doy: float, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free ``(12, H, W)`` float32 reflectance x 10000 of ``site`` on day ``doy``."""
    lc = site.landcover
    soil = _SIG["soil"] * site.soil_brightness.astype(np.float32)[site.field_id]
    g = site.green_cover(doy)
    crop = g * _SIG["green_crop"] + (1 - g) * soil
    forest_g = 0.8 + 0.2 * float(_season(doy, site.site_peak, 80.0))
    forest = forest_g * _SIG["forest"] + (1 - forest_g) * 0.6 * _SIG["soil"]
    bare = 0.03 * _SIG["green_crop"] + 0.97 * soil
    out = np.where(lc == CROP, crop, bare)
    out = np.where(lc == FOREST, forest, out)
    out = np.where(lc == URBAN, _SIG["urban"] * (1 + 0.1 * (site.texture - 1) / 0.04), out)
    out = np.where(lc == WATER, _SIG["water"], out)
    noise = 1 + 0.02 * rng.standard_normal(lc.shape).astype(np.float32)
    return (out * site.texture * noise).astype(np.float32)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift a 2-D array by whole pixels, filling with zeros (no wrap-around)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def cloud_fraction(seed: int, site_name: str, date_index: int, n_dates: int) -> float:
    """Target cloud fraction of one date: one cloudy date per site, the others mostly clear."""
    cloudy_index = int(_rng(seed, "cloudy-date", site_name).integers(n_dates))
    rng = _rng(seed, "cloud-frac", site_name, date_index)
    if date_index == cloudy_index:
        return float(rng.uniform(0.55, 0.85))
    if rng.random() < 0.5:
        return float(rng.uniform(0.0, 0.03))
    return float(rng.uniform(0.05, 0.3))


def render_scene(site: SiteScene, doy: float, date_index: int, n_dates: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render one acquisition: surface, shadows, clouds and the 10 m scene classification.

    Returns:
        ``(bands, scl)``: ``(12, H, W)`` float32 reflectance x 10000 at 10 m and
        ``(H, W)`` uint8 SCL at 10 m.
    """
    rng = _rng(site.seed, "scene", site.name, date_index)
    shape = site.landcover.shape
    size = shape[0]
    surface = surface_reflectance(site, doy, rng)
    ndvi = (surface[_B08] - surface[_B04]) / (surface[_B08] + surface[_B04] + 1e-6)
    scl = np.where(ndvi > 0.4, SCL_VEG, SCL_NOT_VEG).astype(np.uint8)
    scl[site.landcover == WATER] = SCL_WATER

    frac = cloud_fraction(site.seed, site.name, date_index, n_dates)
    cloud_r = _ranks(_smooth(rng, shape, 10 * size / 384) + 0.35 * _smooth(rng, shape, 3 * size / 384))
    threshold = 1 - frac
    cloud = cloud_r >= threshold
    depth = np.where(cloud, (cloud_r - threshold) / max(frac, 1e-6), 0).astype(np.float32)
    alpha = np.where(cloud, 0.5 + 0.5 * np.sqrt(depth), 0).astype(np.float32)

    cirrus = np.zeros(shape, dtype=bool)
    if rng.random() < 0.35:
        cirrus_r = _ranks(_smooth(rng, shape, 16 * size / 384))
        cirrus = (cirrus_r >= 1 - rng.uniform(0.02, 0.1)) & ~cloud
        alpha = np.where(cirrus, 0.2, alpha).astype(np.float32)

    angle = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(0.04, 0.08) * size
    dy, dx = int(round(dist * np.sin(angle))), int(round(dist * np.cos(angle)))
    shade = _shift(np.where(cloud, alpha, 0).astype(np.float32), dy, dx)
    shadow = (shade > 0) & ~cloud & ~cirrus
    surface = surface * (1 - 0.65 * np.where(shadow, shade, 0))[None]
    bands = (1 - alpha)[None] * surface + alpha[None] * _SIG["cloud"] * (
        1 + 0.03 * rng.standard_normal(shape).astype(np.float32))[None]

    scl[shadow] = SCL_SHADOW
    scl[cirrus] = SCL_CIRRUS
    scl[cloud] = np.where(depth[cloud] > 0.35, SCL_CLOUD_HIGH, SCL_CLOUD_MED)
    return bands.astype(np.float32), scl


def scl_to_20m(scl10: np.ndarray) -> np.ndarray:
    """Aggregate a 10 m SCL to 20 m: any cloud/cirrus/shadow in a 2x2 block wins (in that
    order of priority: high, medium cloud, cirrus, shadow), otherwise the majority of
    vegetation / not-vegetated / water (ties: lowest class)."""
    h, w = scl10.shape
    blocks = scl10.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
    clear = (SCL_VEG, SCL_NOT_VEG, SCL_WATER)
    counts = np.stack([(blocks == c).sum(-1) for c in clear])
    out = np.asarray(clear, dtype=np.uint8)[np.argmax(counts, axis=0)]
    for cls in (SCL_SHADOW, SCL_CIRRUS, SCL_CLOUD_MED, SCL_CLOUD_HIGH):  # last wins
        out[(blocks == cls).any(-1)] = cls
    return out


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Average ``(..., H, W)`` over ``factor`` x ``factor`` blocks."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def roi_truth(site: SiteScene, rows: slice, cols: slice) -> dict[str, float | str]:
    """Summarise the TRUE generated state in a pixel window of the site.

    Returns:
        ``crop_fraction``, ``mean_productivity`` and ``peak_ndvi`` (mean over crop pixels of
        the noise-free peak-season NDVI), the ``majority_class`` name and ``n_pixels``.
    """
    lc = site.landcover[rows, cols]
    fid = site.field_id[rows, cols]
    crop = lc == CROP
    counts = np.bincount(lc.ravel(), minlength=len(CLASSES))
    out: dict[str, float | str] = {"n_pixels": float(lc.size),
                                   "crop_fraction": float(crop.mean()) if lc.size else 0.0,
                                   "majority_class": CLASSES[int(np.argmax(counts))]}
    if crop.any():
        g = site.peak_cover()[rows, cols][crop]
        soil = site.soil_brightness[fid[crop]]
        red = g * SIGNATURES["green_crop"][_B04] + (1 - g) * soil * SIGNATURES["soil"][_B04]
        nir = g * SIGNATURES["green_crop"][_B08] + (1 - g) * soil * SIGNATURES["soil"][_B08]
        out["mean_productivity"] = float(site.productivity[fid[crop]].mean())
        out["peak_ndvi"] = float(((nir - red) / (nir + red)).mean())
    else:
        out["mean_productivity"] = 0.0
        out["peak_ndvi"] = 0.0
    return out
