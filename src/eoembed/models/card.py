"""Model cards: what a model is, as data (id, inputs, outputs, weights, licence, verification).

A model is described by a :class:`ModelCard`, never by environment variables; the card's
:class:`WeightsFile` entries say where each weights file comes from and its sha256.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eoembed.errors import ConfigError
from eoembed.models.inputs import InputSpec

__all__ = ["ModelCard", "WeightsFile"]


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file.

    Attributes:
        name: File name in the cache directory (``"<model id>/<name>"``).
        url: Published download URL.
        sha256: Expected sha256 of the file (lowercase hex).
        licence: Licence of the weights.
        size_bytes: Expected size, if known (for progress and truncation checks).
    """

    name: str
    url: str
    sha256: str
    licence: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """Everything a user or the workflow needs to know about a model, as data.

    Attributes:
        id: Registry id (``"galileo_nano"``).
        family: Model family; selects the conda env ``envs/<family>.yaml``.
        kind: ``"on_the_fly"`` (runs on fetched imagery) or ``"location"`` (a location encoder:
            embeds the ROI centre, nothing is fetched). Precomputed products have their own
            :class:`~eoembed.products.base.ProductCard`.
        description: One sentence.
        inputs: One :class:`~eoembed.models.inputs.InputSpec` per modality (empty for location
            encoders); the first is the primary one (its grid is the output grid).
        dims: Embedding dimension.
        outputs: Supported output modes (``"pooled"``, ``"grid"``).
        weights: Weights files (empty for weight-free models).
        verified: How the implementation was checked: ``"oracle"`` (matches the original code's
            output), ``"library"`` (matches a maintained library), ``"definition"`` (a weight-free
            method tested against its definition) or ``"unverified"``.
        variant: The size/variant of a model family that has several (``"nano"``).
        grid_cell_tokens: Default grid cell, in tokens (``output.grid_cell_m`` overrides).
        pool_cell_tokens: Cells (in tokens) whose reductions max pooling takes the maximum over.
        licence, citation, url: Licence of the weights/method, how to cite, project page.
        mem_mb, runtime_min: Resource hints for schedulers (per embed job of one chunk).
        notes: What is uncertain or differs from the original (shown by ``eoembed card``).
    """

    id: str
    family: str
    kind: str
    description: str
    inputs: tuple[InputSpec, ...]
    dims: int
    outputs: tuple[str, ...]
    weights: tuple[WeightsFile, ...] = ()
    verified: str = "unverified"
    variant: str = ""
    grid_cell_tokens: int = 1
    pool_cell_tokens: int = 1
    licence: str = ""
    citation: str = ""
    url: str = ""
    mem_mb: int = 2000
    runtime_min: int = 30
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("on_the_fly", "location"):
            raise ConfigError(f"ModelCard {self.id}: kind={self.kind!r}, allowed 'on_the_fly'/'location'")
        if self.verified not in ("oracle", "library", "definition", "unverified"):
            raise ConfigError(f"ModelCard {self.id}: verified={self.verified!r}")
        if self.kind == "on_the_fly" and not self.inputs:
            raise ConfigError(f"ModelCard {self.id}: an on-the-fly model declares at least one input")

    # -- views of the primary input, for listings and the API's default sensor
    @property
    def primary(self) -> InputSpec | None:
        return self.inputs[0] if self.inputs else None

    @property
    def collection(self) -> str | None:
        return self.primary.collections[0] if self.primary else None

    @property
    def bands(self) -> tuple[str, ...]:
        return self.primary.bands if self.primary else ()

    @property
    def native_gsd_m(self) -> float:
        return self.primary.gsd_m if self.primary else float("nan")

    @property
    def frames(self) -> int:
        return self.primary.time.max_frames if self.primary else 1

    @property
    def temporal(self) -> str:
        if not self.primary:
            return "static"
        return "frames" if self.primary.time.max_frames > 1 else "single"

    @property
    def input_size(self) -> int | None:
        sp = self.primary.space if self.primary else None
        return sp.size if sp is not None and sp.kind == "fixed" else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
