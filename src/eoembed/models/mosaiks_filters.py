"""MOSAIKS filter banks as published: ZCA-whitened random patches of a declared image set.

Rolf et al. (2021) draw the ``K`` convolution filters of MOSAIKS from random ``k x k`` patches of
the imagery, ZCA-whitened. Here the image set is declared, not "whatever a job happens to see", so
that every chunk and every run convolves with the same filters:

* ``"demo"``: the GENERATED demo scenes of :mod:`eoembed.providers.sample` (every site and date of
  the default demo, rendered in memory, 10 m);
* a path to a STAC catalogue readable by :class:`~eoembed.providers.local.LocalProvider` (e.g.
  written by :func:`eoembed.catalog.build_catalog`): every Sentinel-2 L2A item, read on its own
  10 m grid through the local provider (same units, nodata and cloud masking as the workflow).

The bank is built by :func:`build_filter_bank`:

1. patches are standardised like the model input (per-band ``(reflectance - mean) / std``) and
   drawn with a seeded generator, only where every pixel of the patch is valid (quality band),
   about the same number from every image; as in the MOSAIKS code, each flattened patch is then
   made zero-mean and unit-norm (:func:`normalise_patches`);
2. ``M = max(10000, 20 d, K)`` patches (``d = C k^2``; fewer, but at least ``max(5 d, K)``, when
   a small image set has no more) estimate the mean ``mu`` and covariance ``S = U diag(s) U^T``;
   the ZCA whitening matrix is ``W = U diag(1 / sqrt(s + eps)) U^T`` with the MOSAIKS code's
   regulariser ``eps`` = :data:`ZCA_EPS` = 1e-3 (:func:`zca_whitening`);
3. the first ``K`` patches, whitened (``W (p - mu)``) and scaled to unit norm (as the Gaussian
   filters of :func:`eoembed.models.mosaiks.random_filters`, so ``bias`` means the same for both),
   are the filters.

Differences from the reference code (``normalize_patches`` of the MOSAIKS / random-features code
of Rolf et al.): it multiplies the patches by ``W W^T`` (whitening applied twice) and does not
rescale them; here the whitening is applied once, so the whitened patches have identity
covariance (up to ``eps``), and the filters are unit-norm.

:func:`load_filter_bank` keeps the bank like a weights file: ``<weights dir>/mosaiks/
filters-<key>.safetensors`` (``key`` = hash of everything that defines the bank) with a
``.sha256`` sidecar, built on first use. Concurrent jobs may build it at the same time: each writes
a private temporary file and publishes it with a hard link, which fails when the file exists, so
the first one wins and every job then loads the published file (sha256-checked) - never its own
copy. Its sha256 goes into the model's self-description.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eoembed.collections import get_collection
from eoembed.errors import ConfigError, WeightsError

__all__ = ["FilterBankSpec", "ZCA_EPS", "build_filter_bank", "demo_images", "catalog_images",
           "load_filter_bank", "normalise_patches", "sample_patches", "standardise", "zca_whitening"]

#: Version of the bank recipe; part of the key, bump it when the recipe changes.
RECIPE_VERSION = 1
#: ZCA regulariser added to the eigenvalues of the covariance of unit-norm patches (MOSAIKS: 1e-3).
ZCA_EPS = 1e-3
#: Most patch dimensions ``C k^2`` a whitening is estimated for (12 bands, k <= 9).
MAX_DIM = 12 * 9 * 9
_MIN_SAMPLE = 10_000
_MODEL_ID = "mosaiks"

#: An image: ``(C, H, W)`` float32 standardised values and ``(H, W)`` bool validity.
Image = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FilterBankSpec:
    """Everything that defines a filter bank (its key hashes all of it).

    Attributes:
        images: ``"demo"`` or the absolute path of a STAC catalogue.
        images_sha256: sha256 of the catalogue file (so an edited catalogue gives another bank;
            the image files it lists are not hashed); empty for ``"demo"``.
        bands: Band order of the filters' channels.
        band_mean, band_std: Per-band reflectance standardisation of the model input.
        num_filters: ``K``.
        kernel_size: ``k`` (odd).
        seed: Seed of the patch draw.
    """

    images: str
    bands: tuple[str, ...]
    band_mean: tuple[float, ...]
    band_std: tuple[float, ...]
    num_filters: int
    kernel_size: int
    seed: int
    images_sha256: str = ""

    def __post_init__(self) -> None:
        dim = len(self.bands) * self.kernel_size ** 2
        if dim > MAX_DIM:
            raise ConfigError(f"model 'mosaiks': option kernel_size={self.kernel_size} is invalid with "
                              f"filters='patches': the whitening of {len(self.bands)} x {self.kernel_size}"
                              f"^2 = {dim} dimensions is too large; allowed kernel_size <= 9 "
                              "(or filters='gaussian')")
        if self.images != "demo" and not Path(self.images).is_file():
            raise ConfigError(f"model 'mosaiks': option filter_images={self.images!r} is invalid: "
                              "allowed 'demo' or the path of an existing STAC catalogue file")

    @property
    def dim(self) -> int:
        return len(self.bands) * self.kernel_size ** 2

    @property
    def sample_size(self) -> int:
        """Number ``M`` of patches the whitening is estimated from."""
        return max(_MIN_SAMPLE, 20 * self.dim, self.num_filters)

    def key(self) -> str:
        doc = {**asdict(self), "recipe": RECIPE_VERSION, "zca_eps": ZCA_EPS}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]

    def file_name(self) -> str:
        return f"filters-{self.key()}.safetensors"


def standardise(stack_units: np.ndarray, band_mean, band_std) -> np.ndarray:
    """``(C, y, x)`` stack units (reflectance x 10000) -> float32 ``(reflectance - mean) / std``,
    through the framework's own normalisation (:func:`eoembed.prep.apply_norm`) so the filters see
    exactly what the model's input sees."""
    from eoembed.models.inputs import BandNorm, InputSpec
    from eoembed.prep import apply_norm

    bands = tuple(f"b{i}" for i in range(len(band_mean)))
    spec = InputSpec("s2", ("sentinel-2-l2a",), bands,
                     tuple(BandNorm(m / 1e-4, s / 1e-4) for m, s in zip(band_mean, band_std)))  # as mosaiks.S2_INPUT
    return apply_norm(stack_units, spec).astype(np.float32)


def _standardise(stack_units: np.ndarray, spec: FilterBankSpec) -> np.ndarray:
    return standardise(stack_units, spec.band_mean, spec.band_std)


def demo_images(spec: FilterBankSpec) -> list[Callable[[], Image]]:
    """Loaders of the default GENERATED demo scenes (every site and date, 10 m)."""
    from eoembed.collections import SENTINEL2_L2A
    from eoembed.providers.sample import DEMO_SITES, site_scenes

    missing = [b for b in spec.bands if b not in SENTINEL2_L2A.bands]
    if missing:
        raise ConfigError(f"model 'mosaiks': filter_images='demo' has no band(s) {missing}")
    idx = [SENTINEL2_L2A.bands.index(b) for b in spec.bands]
    invalid = np.asarray(SENTINEL2_L2A.invalid_qa)

    def site(name: str, lon: float, lat: float) -> Iterator[Image]:
        for _, bands10, scl10 in site_scenes(name, lon, lat):
            yield _standardise(bands10[idx], spec), ~np.isin(scl10, invalid)

    # one loader per site (a site renders all its dates in one go)
    return [lambda n=n, lo=lo, la=la: list(site(n, lo, la)) for n, lo, la in DEMO_SITES]


def _item_grid(item):
    from eoembed.grid import GridSpec

    asset = item.assets.get("B02") or next(iter(item.assets.values()))
    fields = {**item.properties, **asset.extra_fields}
    transform, shape = fields.get("proj:transform"), fields.get("proj:shape")
    crs = fields.get("proj:code") or (f"EPSG:{fields['proj:epsg']}" if fields.get("proj:epsg") else None)
    if not (transform and shape and crs):
        raise ConfigError(f"filter_images: item {item.id!r} lacks proj:code/proj:transform/proj:shape; "
                          "allowed catalogues written by eoembed.catalog.build_catalog or with the "
                          "projection extension")
    t = [float(v) for v in transform[:6]]
    scale = t[0] / 10.0, -t[4] / 10.0  # onto a 10 m grid with the item's origin
    return GridSpec(crs, (10.0, 0.0, t[2], 0.0, -10.0, t[5]),
                    max(1, math.floor(shape[1] * scale[0])), max(1, math.floor(shape[0] * scale[1])))


def catalog_images(spec: FilterBankSpec) -> list[Callable[[], Image]]:
    """Loaders of every Sentinel-2 L2A item of a catalogue, each read on its own 10 m grid by the
    local provider (units, nodata and quality classes as in the workflow)."""
    from eoembed.composite import quality_mask
    from eoembed.providers.local import LocalProvider, read_catalog
    from eoembed.specs import BBox, SensorSpec, TemporalSpec

    coll = "sentinel-2-l2a"
    items = sorted((it for it in read_catalog(spec.images) if it.collection_id in (None, coll)),
                   key=lambda it: it.id)
    if not items:
        raise ConfigError(f"model 'mosaiks': filter_images={spec.images!r} has no {coll} item")
    provider = LocalProvider(spec.images)
    sensor = SensorSpec(bands=spec.bands, cloudy_pct=100)

    def load(item) -> list[Image]:
        when = (item.datetime or item.common_metadata.start_datetime).date()
        b = item.bbox
        stack = provider.fetch(BBox(b[0], b[1], b[2], b[3]),
                               TemporalSpec.range(when, when + dt.timedelta(days=1)), sensor,
                               _item_grid(item))
        valid = quality_mask(stack, get_collection(coll))
        return [(_standardise(np.nan_to_num(stack.data[t]), spec), valid[t])
                for t in range(stack.data.shape[0])]

    return [lambda it=it: load(it) for it in items]


def sample_patches(loaders: list[Callable[[], Image | list[Image]]], n: int, k: int,
                   rng: np.random.Generator, min_n: int | None = None) -> np.ndarray:
    """Up to ``n`` (at least ``min_n``, default ``n``) ``(., C k^2)`` float64 patches, each fully
    valid, about the same number from every image, in a seeded random order."""
    min_n = n if min_n is None else min_n
    from numpy.lib.stride_tricks import sliding_window_view

    chunks = []
    per_loader = math.ceil(n / len(loaders))
    for load in loaders:
        images = load()
        images = images if isinstance(images, list) else [images]
        per_image = math.ceil(per_loader / max(1, len(images)))
        for x, valid in images:
            if valid.shape[0] < k or valid.shape[1] < k:
                continue
            ok = sliding_window_view(valid, (k, k)).all(axis=(2, 3))
            ys, xs = np.nonzero(ok)
            if ys.size == 0:
                continue
            pick = rng.choice(ys.size, size=min(per_image, ys.size), replace=False)
            win = sliding_window_view(x, (k, k), axis=(1, 2))  # (C, H-k+1, W-k+1, k, k)
            chunks.append(win[:, ys[pick], xs[pick]].transpose(1, 0, 2, 3).reshape(pick.size, -1))
    if not chunks:
        raise ConfigError(f"model 'mosaiks': the filter image set has no fully valid {k} x {k} patch")
    patches = np.concatenate(chunks).astype(np.float64)
    if patches.shape[0] < min_n:
        raise ConfigError(f"model 'mosaiks': the filter image set has {patches.shape[0]} fully valid "
                          f"{k} x {k} patches; allowed an image set with at least {min_n}")
    return patches[rng.permutation(patches.shape[0])[:n]]


def normalise_patches(patches: np.ndarray, min_norm: float = 1e-8) -> np.ndarray:
    """Each ``(n, d)`` row minus its own mean, divided by its L2 norm (rows with a norm below
    ``min_norm``, i.e. uniform patches, are only centred)."""
    centred = patches - patches.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms < min_norm, 1.0, norms)


def zca_whitening(patches: np.ndarray, eps: float = ZCA_EPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZCA whitening of ``(n, d)`` samples: ``(mean (d,), W (d, d) symmetric, eigenvalues (d,))``
    with ``W = U diag(1 / sqrt(s + eps)) U^T`` for the sample covariance ``U diag(s) U^T``."""
    mean = patches.mean(axis=0)
    centred = patches - mean
    cov = centred.T @ centred / (patches.shape[0] - 1)
    s, u = np.linalg.eigh(cov)
    s = np.clip(s, 0.0, None)
    return mean, (u / np.sqrt(s + eps)) @ u.T, s


def build_filter_bank(spec: FilterBankSpec) -> dict[str, np.ndarray]:
    """Build the bank (deterministic in ``spec``): filters ``(K, C, k, k)`` float32 plus the
    whitening it used (``zca_mean``, ``zca_matrix``, ``eigenvalues``)."""
    loaders = demo_images(spec) if spec.images == "demo" else catalog_images(spec)
    rng = np.random.default_rng(spec.seed)
    patches = normalise_patches(sample_patches(loaders, spec.sample_size, spec.kernel_size, rng,
                                               min_n=max(5 * spec.dim, spec.num_filters)))
    mean, w, s = zca_whitening(patches)
    white = (patches[:spec.num_filters] - mean) @ w
    norms = np.linalg.norm(white, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise ConfigError("model 'mosaiks': a drawn patch whitens to zero; allowed a less uniform "
                          "image set")
    filters = (white / norms).reshape(spec.num_filters, len(spec.bands), spec.kernel_size,
                                      spec.kernel_size)
    return {"filters": filters.astype(np.float32), "zca_mean": mean.astype(np.float32),
            "zca_matrix": w.astype(np.float32), "eigenvalues": s.astype(np.float32)}


def _publish(tensors: dict[str, np.ndarray], spec: FilterBankSpec, path: Path) -> bool:
    """Write the bank next to ``path`` and link it into place; False when another job won."""
    from safetensors.numpy import save_file

    from eoembed.checksums import file_sha256
    from eoembed.chunkio import publish_once, write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.build-", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        # one metadata entry: safetensors writes a map's entries in no fixed order
        meta = {"eoembed": json.dumps({"spec": asdict(spec), "key": spec.key(),
                                       "recipe": RECIPE_VERSION, "zca_eps": ZCA_EPS}, sort_keys=True)}
        save_file(tensors, tmp, metadata=meta)
        sha = file_sha256(tmp)
        if not publish_once(Path(tmp), path):  # another job was first: its bank is used
            return False
        write_text_atomic(_sidecar(path), f"{sha}  {path.name}\n", ".sha256")
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_key(path: Path, spec: FilterBankSpec) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        key = json.loads((fh.metadata() or {}).get("eoembed", "{}")).get("key")
    if key != spec.key():
        raise WeightsError(f"filter bank {path} was built for key {key!r}, expected {spec.key()!r}; "
                           "delete the file to rebuild it")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_filter_bank(spec: FilterBankSpec, cache_dir: str | os.PathLike | None = None,
                     expected_sha256: str | None = None) -> tuple[np.ndarray, Path, str]:
    """The bank's filters from the weights cache, built and published on first use.

    Args:
        spec: The bank.
        cache_dir: Weights cache (config ``weights_dir``); default the user's weights cache.
        expected_sha256: A pinned sha256 the file must have (config
            ``models.mosaiks.weights_sha256.filter_bank``), e.g. to insist on a bank built elsewhere.

    Returns:
        ``(filters (K, C, k, k) float32, path, sha256)``.

    Raises:
        WeightsError: The cached file does not match its sidecar or the pin, is corrupt, or was
            built for another spec.
    """
    from eoembed.checksums import file_sha256, verify_sha256
    from eoembed.models.base import WeightsFile
    from eoembed.weights import cache_path, load_state_dict

    path = cache_path(_MODEL_ID, WeightsFile(spec.file_name(), "", "", ""), cache_dir)
    if not path.is_file():
        _publish(build_filter_bank(spec), spec, path)
    sidecar = _sidecar(path)
    sha = sidecar.read_text().split()[0] if sidecar.is_file() else file_sha256(path)
    if expected_sha256:
        verify_sha256(path, expected_sha256)
    state = load_state_dict(path, sha)
    _check_key(path, spec)
    filters = state.get("filters")
    want = (spec.num_filters, len(spec.bands), spec.kernel_size, spec.kernel_size)
    if filters is None or tuple(filters.shape) != want:
        raise WeightsError(f"filter bank {path}: 'filters' has shape "
                           f"{None if filters is None else tuple(filters.shape)}, expected {want}; "
                           "delete the file to rebuild it")
    return filters.numpy().astype(np.float32), path, sha
