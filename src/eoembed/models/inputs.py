"""What a model eats, declared as data: one :class:`InputSpec` per modality.

The framework (:mod:`eoembed.prep`) turns composites into model-ready batches from these
declarations, and :func:`check_sensor` validates a configured sensor against them before any job
runs. A model's own code never selects bands, scales, normalises, derives bands, resizes, tiles,
pads or fills pixels: it only maps a ready batch to a token grid.

Units: composites hold *stack units* (surface reflectance x 10000 for optical collections, see
:data:`eoembed.collections.STACK_SCALE`; linear power or dB for SAR as the collection declares).
Every normalisation here is ``(transform(x) - shift) / div`` in those units.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from eoembed.errors import ConfigError

__all__ = ["BandNorm", "Derived", "InputSpec", "SpacePolicy", "TimePolicy", "check_sensor", "mean_std"]

SPACE_KINDS = ("any", "fixed", "multiple")
INPUT_PREPS = ("resize", "tile", "pad")
MISSING = ("mask", "fill_mean", "fill_zero", "drop")
METADATA = ("wavelengths", "bandwidths", "gsd", "latlon", "pixel_latlon", "time")
TOKENS = (None, "month", "doy")


@dataclass(frozen=True)
class BandNorm:
    """Per-band normalisation ``(x - shift) / div`` in stack units (after ``transform``)."""

    shift: float = 0.0
    div: float = 1.0

    def __post_init__(self) -> None:
        if not self.div:
            raise ConfigError(f"BandNorm.div={self.div!r} is invalid: allowed a non-zero number")


def mean_std(mean: float, std: float, k: float = 1.0) -> BandNorm:
    """z-score with published statistics (``k`` = 1), or Galileo's ``(x - (m - k s)) / (2 k s)``."""
    if k == 1.0:
        return BandNorm(shift=mean, div=std)
    return BandNorm(shift=mean - k * std, div=2 * k * std)


@dataclass(frozen=True)
class Derived:
    """A band computed from others, e.g. NDVI = ``(a - b) / (a + b)``.

    Attributes:
        name: Channel name (appended after the model's bands, in declaration order).
        bands: ``(a, b)`` of the normalised difference.
        stage: ``"raw"`` = from stack units before normalisation (Galileo, Presto);
            ``"normalised"`` = from the normalised bands.
        norm: Normalisation applied to the derived channel itself.
        zero_den: Value where the denominator is not usable (NaN = leave the pixel out).
        den: ``"positive"`` (usable where ``a + b > 0``, as Presto/Galileo) or ``"nonzero"``.
    """

    name: str
    bands: tuple[str, str]
    stage: str = "raw"
    norm: BandNorm = BandNorm()
    zero_den: float = 0.0
    den: str = "positive"

    def __post_init__(self) -> None:
        if self.stage not in ("raw", "normalised"):
            raise ConfigError(f"Derived {self.name}: stage={self.stage!r}, allowed 'raw'/'normalised'")


@dataclass(frozen=True)
class TimePolicy:
    """How many time frames a model takes and which time tokens it is given.

    Attributes:
        min_frames, max_frames: Allowed number of frames (inclusive).
        monthly: Frames must be calendar-month bins (27-32 days, consecutive months).
        tokens: ``"month"`` (0 = January, of each frame's middle day), ``"doy"`` (0-based day of
            year of the middle day) or None.
        default: Frames of the API's default sensor: ``"months"`` (one per calendar month of the
            window, capped at ``max_frames``) or a number (None = ``min_frames``).
    """

    min_frames: int = 1
    max_frames: int = 1
    monthly: bool = False
    tokens: str | None = None
    default: int | str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_frames <= self.max_frames:
            raise ConfigError(f"TimePolicy: frames range [{self.min_frames}, {self.max_frames}] is invalid")
        if self.tokens not in TOKENS:
            raise ConfigError(f"TimePolicy.tokens={self.tokens!r}, allowed {TOKENS}")

    def default_frames(self, window: Any = None) -> int:
        """Frames for a default sensor over ``window`` (a TemporalSpec)."""
        if self.default == "months" or (self.default is None and self.monthly):
            if window is None:
                return min(12, self.max_frames)
            months = (window.end.year - window.start.year) * 12 + window.end.month - window.start.month
            months += window.end.day > 1
            return max(self.min_frames, min(self.max_frames, months, window.days))
        return int(self.default or self.min_frames)

    def describe(self) -> str:
        n = (f"{self.min_frames}" if self.min_frames == self.max_frames
             else f"{self.min_frames}..{self.max_frames}")
        return f"{n} frame(s)" + (" of calendar months" if self.monthly else "")


@dataclass(frozen=True)
class SpacePolicy:
    """Spatial input policy.

    Attributes:
        kind: ``"any"`` (any size), ``"fixed"`` (exactly ``size`` x ``size`` pixels, reached by the
            configured input prep: resize, tile or pad) or ``"multiple"`` (height and width padded
            to a multiple of ``size``).
        size: Pixels (fixed size, or the multiple).
        token_px: Input pixels per output token side (the patch size); 1 for per-pixel models.
        default_prep: Input prep used when the config says nothing.
    """

    kind: str = "any"
    size: int | None = None
    token_px: int = 1
    default_prep: str = "resize"

    def __post_init__(self) -> None:
        if self.kind not in SPACE_KINDS:
            raise ConfigError(f"SpacePolicy.kind={self.kind!r}, allowed {SPACE_KINDS}")
        if self.kind != "any" and (not isinstance(self.size, int) or self.size < 1):
            raise ConfigError(f"SpacePolicy.size={self.size!r}: a positive integer is required for {self.kind!r}")
        if self.kind == "fixed" and self.size % self.token_px:
            raise ConfigError(f"SpacePolicy: size {self.size} is not a multiple of token_px {self.token_px}")
        if self.default_prep not in INPUT_PREPS:
            raise ConfigError(f"SpacePolicy.default_prep={self.default_prep!r}, allowed {INPUT_PREPS}")


@dataclass(frozen=True)
class InputSpec:
    """One modality of a model's input, as data.

    Attributes:
        modality: Name the model's code reads the batch by (``"s2"``, ``"s1"``).
        collections: Collections whose composites are accepted.
        bands: Ordered bands the model consumes.
        norm: Per-band normalisation, in ``bands`` order (stack units).
        transform: ``"none"``, or ``"db"`` (``10 log10(x)`` before normalisation, for linear SAR).
        derived: Bands computed from the others (appended after ``bands``).
        gsd_m: Native ground sampling distance; ``gsd_tolerance`` is the allowed relative deviation.
        time: :class:`TimePolicy`.
        space: :class:`SpacePolicy`.
        missing: What happens to invalid pixels: ``"mask"`` (values set to 0 after normalisation and
            flagged in the batch mask for the model to drop), ``"fill_mean"`` (per sample and band,
            the time-mean of per-frame spatial means, an empty frame counting 0: the Galileo data
            path's imputation), ``"fill_zero"`` (0 after normalisation) or ``"drop"`` (as mask; the
            model drops those tokens).
        metadata: What else the model consumes (``"latlon"`` = ROI centre, ``"pixel_latlon"``,
            ``"time"``, ``"gsd"``, ``"wavelengths"``, ``"bandwidths"``).
        norm_source: Where the normalisation statistics come from (for the card).
        per_image: After ``norm``: ``"minmax"`` rescales each input image (every frame of a piece,
            after resize/tile) by ``(x - min) / max(max - min, 1)`` over its valid pixels and all
            bands (WildSAT's quick-start), or None.
        clip: After everything else: clip the bands to ``[lo, hi]`` (e.g. ``(0, 1)``), or None.
    """

    modality: str
    collections: tuple[str, ...]
    bands: tuple[str, ...]
    norm: tuple[BandNorm, ...]
    transform: str = "none"
    derived: tuple[Derived, ...] = ()
    gsd_m: float = 10.0
    gsd_tolerance: float = 0.05
    time: TimePolicy = field(default_factory=TimePolicy)
    space: SpacePolicy = field(default_factory=SpacePolicy)
    missing: str = "mask"
    metadata: tuple[str, ...] = ()
    norm_source: str = ""
    per_image: str | None = None
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        where = f"InputSpec {self.modality}"
        if len(self.norm) != len(self.bands):
            raise ConfigError(f"{where}: {len(self.norm)} norms for {len(self.bands)} bands")
        if self.transform not in ("none", "db"):
            raise ConfigError(f"{where}: transform={self.transform!r}, allowed 'none'/'db'")
        if self.missing not in MISSING:
            raise ConfigError(f"{where}: missing={self.missing!r}, allowed {MISSING}")
        if self.per_image not in (None, "minmax"):
            raise ConfigError(f"{where}: per_image={self.per_image!r}, allowed None/'minmax'")
        if self.clip is not None and not (len(self.clip) == 2 and self.clip[0] < self.clip[1]):
            raise ConfigError(f"{where}: clip={self.clip!r}, allowed (lo, hi) with lo < hi")
        bad = [m for m in self.metadata if m not in METADATA]
        if bad:
            raise ConfigError(f"{where}: metadata {bad} unknown, allowed {METADATA}")
        for d in self.derived:
            if any(b not in self.bands for b in d.bands):
                raise ConfigError(f"{where}: derived {d.name} uses bands {d.bands} not in {self.bands}")

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of the ready batch: the bands, then the derived bands."""
        return self.bands + tuple(d.name for d in self.derived)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frames_are_months(bounds: list[tuple[dt.date, dt.date]]) -> bool:
    lengths = [(b - a).days for a, b in bounds]
    mids = [a + (b - a) / 2 for a, b in bounds]
    steps = [((m2.year * 12 + m2.month) - (m1.year * 12 + m1.month)) for m1, m2 in zip(mids, mids[1:])]
    return all(27 <= n <= 32 for n in lengths) and all(s == 1 for s in steps)


def check_sensor(model_id: str, spec: InputSpec, sensor_name: str, sensor: Any,
                 windows: list[Any] | None = None, gsd_override: bool = False) -> list[str]:
    """Every problem of ``sensor`` (a :class:`~eoembed.specs.SensorSpec`) against ``spec``.

    Args:
        model_id, sensor_name: For the messages.
        windows: Distinct :class:`~eoembed.specs.TemporalSpec` windows of the ROI table (for the
            frames-versus-window checks).
        gsd_override: Accept a scale outside the tolerance (``models.<id>.allow_gsd``).

    Returns:
        Messages naming model, sensor, field, value and what is allowed (empty = fine).
    """
    where = f"model {model_id!r}, sensor {sensor_name!r}"
    out = []
    if sensor.collection not in spec.collections:
        out.append(f"{where}: collection={sensor.collection!r} is not accepted; allowed {list(spec.collections)}")
        return out
    missing = [b for b in spec.bands if b not in sensor.bands]
    if missing:
        out.append(f"{where}: bands={list(sensor.bands)} lacks {missing}; the model needs {list(spec.bands)}")
    rel = abs(sensor.scale_m - spec.gsd_m) / spec.gsd_m
    if rel > spec.gsd_tolerance and not gsd_override:
        out.append(f"{where}: scale_m={sensor.scale_m:g} is outside the model's native GSD {spec.gsd_m:g} m "
                   f"+/- {spec.gsd_tolerance:.0%}; allowed [{spec.gsd_m * (1 - spec.gsd_tolerance):g}, "
                   f"{spec.gsd_m * (1 + spec.gsd_tolerance):g}] (or set models.{model_id}.allow_gsd: true)")
    t = spec.time
    if not t.min_frames <= sensor.frames <= t.max_frames:
        out.append(f"{where}: frames={sensor.frames} is invalid; the model takes {t.describe()} "
                   f"(allowed {t.min_frames}..{t.max_frames})")
    elif t.monthly and windows:
        for w in windows:
            if sensor.frames > w.days or not _frames_are_months(w.frame_bounds(sensor.frames)):
                out.append(f"{where}: frames={sensor.frames} over the window {w.start}..{w.end} "
                           f"({w.days} days) are not calendar-month bins; allowed: frames = the number of "
                           f"months in the window (e.g. 12 for a year)")
                break
    return out
