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

from eoembed.collections import S2_BANDS, STACK_SCALE
from eoembed.errors import ConfigError
from eoembed.models.base import Embedder, ModelCard
from eoembed.models.inputs import BandNorm, InputSpec, TimePolicy
from eoembed.models.transfer import to_device

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


S2_INPUT = InputSpec(
    modality="s2", collections=("sentinel-2-l2a",), bands=S2_BANDS,
    # standardised reflectance: (DN x 1e-4 - mean) / std == (DN - 1e4 mean) / (1e4 std)
    norm=tuple(BandNorm(m / STACK_SCALE, s / STACK_SCALE) for m, s in zip(BAND_MEAN, BAND_STD)),
    gsd_m=10.0, time=TimePolicy(1, 1), missing="mask",
    norm_source="SSL4EO-S12 L2A band statistics (Wang et al. 2023), rounded to 1e-4 reflectance")


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
        id="mosaiks", family="baselines", kind="on_the_fly",
        description="MOSAIKS: masked average of ReLU responses to seeded random convolutional "
                    "filters (weight-free).",
        inputs=(S2_INPUT,), dims=512, outputs=("pooled", "grid"), verified="definition",
        grid_cell_tokens=NATIVE_CELL_PX, licence="Apache-2.0", citation=_CITATION,
        url="https://www.mosaiks.org", mem_mb=4000, runtime_min=30)
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

    def _responses(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2K, y, x)`` ReLU maps of a ``(B, C, y, x)`` batch."""
        import torch
        from torch.nn import functional as F

        conv = F.conv2d(x, self._filters, padding=self.options["kernel_size"] // 2)
        bias = self.options["bias"]
        return torch.cat([F.relu(conv - bias), F.relu(-conv - bias)], dim=1)

    def forward(self, batch):
        """Per-pixel tokens: the ``2K`` ReLU maps of the standardised input (masked pixels hold 0,
        the band mean, and get weight 0). Sub-batched to bound memory."""
        import torch

        from eoembed.prep import TokenGrid

        x, missing = batch.x["s2"][:, 0], batch.mask["s2"][:, 0]  # (B, C, H, W), (B, H, W)
        b, _, h, w = x.shape
        per = max(1, _MAX_ELEMENTS // (2 * self.dims * h * w))
        out = []
        with torch.inference_mode():
            for s in range(0, b, per):
                out.append(self._responses(to_device(x[s:s + per], self.device)).cpu().numpy())
        return TokenGrid(np.concatenate(out), (~missing).astype(np.float32))
