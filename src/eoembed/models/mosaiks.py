"""MOSAIKS random convolutional features (Rolf et al., 2021), weight-free.

Rolf et al. featurise an image by convolving it with K random ``k x k x C`` filters, applying
``ReLU(conv - bias)`` and ``ReLU(-conv - bias)`` and average-pooling each map, giving 2K features.
The filters must be identical for every ROI chunk and every run, so they come from a declared
source (option ``filters``):

* ``"patches"`` (default, as published): ZCA-whitened random patches of a declared image set
  (option ``filter_images``: ``"demo"``, the generated demo scenes, or the path of a STAC
  catalogue), built once and kept in the weights cache with its sha256, which is recorded in the
  model's description (``weights_sha256.filter_bank``); see :mod:`eoembed.models.mosaiks_filters`.
* ``"gaussian"``: a seeded standard-normal draw (``torch.Generator``, CPU, float64), each filter
  made zero-mean and unit-norm - needs no imagery.

Inputs are the 12 Sentinel-2 L2A bands as reflectance (DN x 1e-4), standardised per band with the
fixed constants :data:`BAND_MEAN` / :data:`BAND_STD` (the SSL4EO-S12 L2A band statistics of
Wang et al. 2023, rounded to 1e-4). Pixels that are invalid or outside the ROI are set to 0 (the
band mean) before the convolution, which zero-pads the image borders too, and they are left out of
the pooling: the features depend only on valid, inside-ROI pixels.

Outputs: pooled ``mean`` (masked average, as in the paper) or ``max`` (masked maximum) of the
``2K`` maps ``[ReLU(conv - bias) for K filters, ReLU(-conv - bias) for K filters]``; grid = the
masked average over cells (``cell_m`` or the native 8 pixels), NaN where a cell has no valid pixel.
Same input, options and software give bit-identical output in every process.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from eoembed.collections import S2_BANDS, SENTINEL2_L2A
from eoembed.errors import ConfigError, ModelError
from eoembed.items import Composite
from eoembed.models.base import Embedder, ModelCard, pool_cells
from eoembed.models.mosaiks_filters import standardise
from eoembed.specs import OutputSpec

__all__ = ["BAND_MEAN", "BAND_STD", "MosaiksEmbedder", "random_filters"]

#: Per-band reflectance mean and std used for standardisation (SSL4EO-S12 L2A statistics,
#: Wang et al. 2023, arXiv:2211.07044), in :data:`S2_BANDS` order.
BAND_MEAN: tuple[float, ...] = (0.0752, 0.0884, 0.1144, 0.1297, 0.1625, 0.2195,
                                0.2422, 0.2518, 0.2582, 0.2646, 0.2369, 0.1805)
BAND_STD: tuple[float, ...] = (0.1108, 0.1155, 0.1184, 0.1368, 0.1370, 0.1356,
                               0.1417, 0.1475, 0.1439, 0.1582, 0.1456, 0.1343)
NATIVE_CELL_PX = 8
#: Upper bound on conv-output elements held at once (sub-batches are sized to stay below it).
_MAX_ELEMENTS = 2**25

_CITATION = (
    "Rolf, E., Proctor, J., Carleton, T., Bolliger, I., Shankar, V., Ishihara, M., Recht, B. & "
    "Hsiang, S. (2021) A generalizable and accessible approach to machine learning with global "
    "satellite imagery. Nature Communications 12, 4392. doi:10.1038/s41467-021-24638-z. "
    "Standardisation constants: Wang, Y. et al. (2023) SSL4EO-S12, IEEE GRSM, arXiv:2211.07044."
)


def random_filters(num_filters: int, channels: int, kernel_size: int, seed: int) -> torch.Tensor:
    """Seeded zero-mean, unit-norm Gaussian filters ``(num_filters, channels, k, k)`` float32.

    Drawn on the CPU with a local :class:`torch.Generator`, so the result does not depend on
    global RNG state or on the device that later runs the convolution.
    """
    import torch  # imported here so reading the model card does not load torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    w = torch.randn(num_filters, channels * kernel_size * kernel_size, generator=gen,
                    dtype=torch.float64)
    w = w - w.mean(dim=1, keepdim=True)
    w = w / w.norm(dim=1, keepdim=True)
    return w.reshape(num_filters, channels, kernel_size, kernel_size).to(torch.float32)


def _int_option(name: str, value: Any, lo: int, hi: int, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi \
            or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        raise ConfigError(f"model 'mosaiks': option {name}={value!r} is invalid: "
                          f"allowed {kind} in [{lo}, {hi}]")
    return value


class MosaiksEmbedder(Embedder):
    """MOSAIKS random convolutional features (see the module docstring).

    Options:
        num_filters: K, number of random filters; ``dims = 2 K`` (default 256 -> 512).
        kernel_size: Odd filter size in pixels (default 3).
        bias: ReLU threshold (default 1.0).
        seed: Seed of the filter generator / patch draw (default 0).
        filters: ``"patches"`` (ZCA-whitened image patches, default) or ``"gaussian"``.
        filter_images: Image set of the patches: ``"demo"`` (default) or a STAC catalogue path.
    """

    card: ClassVar[ModelCard] = ModelCard(
        id="mosaiks",
        family="baselines",
        kind="on_the_fly",
        description="MOSAIKS: masked average of ReLU responses to seeded random convolutional "
                    "filters (weight-free).",
        collection="sentinel-2-l2a",
        bands=S2_BANDS,
        wavelengths_nm=tuple(float(SENTINEL2_L2A.wavelengths_nm[b]) for b in S2_BANDS),
        native_gsd_m=10.0,
        input_size=None,
        temporal="single",
        frames=1,
        dims=512,
        outputs=("pooled", "grid"),
        weights=(),
        licence="Apache-2.0",
        citation=_CITATION,
        url="https://www.mosaiks.org",
        mem_mb=4000,
        runtime_min=30,
    )
    default_options: ClassVar[dict[str, Any]] = {"num_filters": 256, "kernel_size": 3,
                                                 "bias": 1.0, "seed": 0, "filters": "patches",
                                                 "filter_images": "demo"}

    def __init__(self, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        o = self.options
        o["num_filters"] = _int_option("num_filters", o["num_filters"], 1, 8192)
        o["kernel_size"] = _int_option("kernel_size", o["kernel_size"], 1, 31, odd=True)
        o["seed"] = _int_option("seed", o["seed"], 0, 2**63 - 1)
        bias = o["bias"]
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise ConfigError(f"model 'mosaiks': option bias={bias!r} is invalid: "
                              "allowed a finite number")
        o["bias"] = float(bias)
        if o["filters"] not in ("patches", "gaussian"):
            raise ConfigError(f"model 'mosaiks': option filters={o['filters']!r} is invalid: "
                              "allowed 'patches' or 'gaussian'")
        images = o["filter_images"]
        if not isinstance(images, str) or not images:
            raise ConfigError(f"model 'mosaiks': option filter_images={images!r} is invalid: "
                              "allowed 'demo' or the path of a STAC catalogue file")
        self._filters: torch.Tensor | None = None

    def filter_bank_spec(self):
        """The :class:`~eoembed.models.mosaiks_filters.FilterBankSpec` of ``filters='patches'``."""
        from pathlib import Path

        from eoembed.checksums import file_sha256
        from eoembed.models.mosaiks_filters import FilterBankSpec

        o = self.options
        images, digest = o["filter_images"], ""
        if images != "demo":
            path = Path(images).expanduser().absolute()
            images, digest = str(path), file_sha256(path) if path.is_file() else ""
        return FilterBankSpec(images=images, bands=tuple(self.card.bands), band_mean=BAND_MEAN,
                              band_std=BAND_STD, num_filters=o["num_filters"],
                              kernel_size=o["kernel_size"], seed=o["seed"], images_sha256=digest)

    @property
    def dims(self) -> int:
        """Embedding dimension for the current options: ``2 * num_filters``."""
        return 2 * self.options["num_filters"]

    def native_cell_px(self) -> int:
        """Native grid cell: 8 x 8 pixels."""
        return NATIVE_CELL_PX

    def _load(self) -> None:
        import torch

        o = self.options
        if o["filters"] == "gaussian":
            filters = random_filters(o["num_filters"], len(self.card.bands), o["kernel_size"], o["seed"])
        else:
            from eoembed.models.mosaiks_filters import load_filter_bank

            bank, _, sha = load_filter_bank(self.filter_bank_spec(), self.weights_dir,
                                            self.weights_pins.get("filter_bank"))
            self.weights_sha256["filter_bank"] = sha
            filters = torch.from_numpy(bank)
        self._filters = filters.to(self.device)

    def describe(self) -> dict[str, Any]:
        """Card facts with the real ``dims`` for these options."""
        d = super().describe()
        d["dims"] = self.dims
        return d

    def _inputs(self, comp: Composite) -> tuple[np.ndarray, np.ndarray]:
        """Standardised ``(C, y, x)`` input (0 where unused) and the ``(y, x)`` use mask."""
        if comp.data.shape[0] != 1:
            raise ModelError(f"model 'mosaiks' needs a single composite (sensor option frames=1); "
                             f"got a composite with frames={comp.data.shape[0]}")
        missing = [b for b in self.card.bands if b not in comp.bands]
        if missing:
            raise ModelError(f"model 'mosaiks' needs band(s) {missing}, missing from the composite "
                             f"(bands: {list(comp.bands)})")
        use = comp.valid[0] & comp.roi_mask
        z = standardise(comp.band_data(self.card.bands)[0], BAND_MEAN, BAND_STD)
        x = np.where(use[None], z, np.float32(0)).astype(np.float32)
        return x, use

    def _responses(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2K, y, x)`` ReLU maps of a ``(B, C, y, x)`` batch."""
        import torch
        from torch.nn import functional as F

        conv = F.conv2d(x, self._filters, padding=self.options["kernel_size"] // 2)
        bias = self.options["bias"]
        return torch.cat([F.relu(conv - bias), F.relu(-conv - bias)], dim=1)

    def embed_batch(self, composites: list[Composite], output: OutputSpec) -> list[np.ndarray]:
        """Embed composites: ``(2K,)`` pooled or ``(2K, rows, cols)`` grid float32 arrays.

        Composites of equal size run together as one batch (split to bound memory).
        """
        import torch

        with torch.no_grad():
            return self._embed(composites, output, torch)

    def _embed(self, composites: list[Composite], output: OutputSpec, torch) -> list[np.ndarray]:
        self.load()
        prepared = [self._inputs(c) for c in composites]
        results: list[np.ndarray | None] = [None] * len(composites)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            groups.setdefault(x.shape[1:], []).append(i)
        for (h, w), members in groups.items():
            per_batch = max(1, _MAX_ELEMENTS // (2 * self.dims * h * w))
            for s in range(0, len(members), per_batch):
                idx = members[s:s + per_batch]
                x = torch.from_numpy(np.stack([prepared[i][0] for i in idx])).to(self.device)
                use = torch.from_numpy(np.stack([prepared[i][1] for i in idx])).to(self.device)
                maps = self._responses(x)
                for j, i in enumerate(idx):
                    results[i] = self._reduce(maps[j], use[j], output, composites[i])
        return results  # type: ignore[return-value]

    def _reduce(self, maps: torch.Tensor, use: torch.Tensor, output: OutputSpec,
                comp: Composite) -> np.ndarray:
        """Pool one ``(2K, y, x)`` response stack over the used pixels."""
        if output.mode == "grid":
            return pool_cells(maps.cpu().numpy(), use.cpu().numpy(), self.cell_px(output, comp))
        if not bool(use.any()):
            return np.full(self.dims, np.nan, dtype=np.float32)
        flat = maps.flatten(1)[:, use.flatten()]
        pooled = flat.amax(dim=1) if output.pooling == "max" else flat.mean(dim=1)
        return pooled.cpu().numpy().astype(np.float32)
