"""One-line API: ``get_embedding`` and ``get_embeddings_batch``.

These run the same stage functions as the workflow (:mod:`eoembed.pipeline`), in memory.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from eoembed.errors import ConfigError, EoembedError
from eoembed.items import Embedding, Request
from eoembed.models.base import Embedder
from eoembed.models.registry import create, get_card
from eoembed.pipeline import composite_items, embed_items, fetch_items
from eoembed.progress import Progress
from eoembed.providers.base import Provider
from eoembed.specs import OutputSpec, SensorSpec, TemporalSpec
from eoembed.streams import cpu_streams
from eoembed.versions import versions


def default_sensor(model_id: str, frames: int | None = None, window: TemporalSpec | None = None) -> SensorSpec:
    """The sensor a model's card asks for: its bands at its native GSD, median composite, and the
    frames its time policy takes over ``window`` (e.g. one per calendar month for Presto)."""
    card = get_card(model_id)
    return SensorSpec(collection=card.collection, bands=card.bands, scale_m=card.native_gsd_m,
                      frames=frames or card.primary.time.default_frames(window), composite="median")


def _provider(provider: Provider | dict[str, Any] | None) -> Provider:
    from eoembed.providers import provider_from_config

    if isinstance(provider, Provider):
        return provider
    if provider is None:
        raise ConfigError("provider: give a Provider or a dict such as "
                          "{'name': 'local', 'catalog': 'resources/sample/index.json'}")
    return provider_from_config(provider)  # a provider section of config.yaml works as is


def get_embeddings_batch(model: str | Embedder, requests: Sequence[Request | tuple], *,
                         output: OutputSpec = OutputSpec.pooled(),
                         provider: Provider | dict[str, Any] | None = None,
                         sensor: SensorSpec | None = None, options: dict[str, Any] | None = None,
                         device: str = "cpu", batch_size: int = 16, retries: int = 3,
                         backoff_s: float = 1.0, partial_below: float = 0.5,
                         weights_dir: str | None = None, allow_download: bool = False,
                         weights_paths: dict[str, str] | None = None,
                         weights_pins: dict[str, str] | None = None,
                         source: str | None = None, cache_dir: str | None = None,
                         input_prep: dict[str, Any] | None = None, overlap: bool | str = "auto",
                         progress: bool | None = None, precision: str = "fp32",
                         streams: int | str = "auto") -> list[Embedding]:
    """Embed many ROIs with one model (loaded once), batched.

    Args:
        model: Registry id (``"spectral"``) or a built model (an :class:`Embedder` or a
            precomputed :class:`~eoembed.products.base.Product`).
        requests: :class:`Request` objects or ``(roi_id, spatial, temporal)`` tuples.
        output: Pooled or grid output.
        provider: A provider instance or its config dict (``{"name": "local", "catalog": ...}``).
        sensor: What to fetch; defaults to the model card's bands at its native GSD.
        source: For precomputed products, where the product's files are (see docs/products.md).
        cache_dir: Input cache directory (see ``provider.cache_dir`` in config/README.md); a
            ``provider`` dict taken from config.yaml may carry it, and its retries/backoff_s.
        input_prep: How ROIs reach a fixed-size model input: ``{"mode": "resize" | "tile" | "pad",
            "max_tiles": 64, "tile_overlap_px": 0}`` (default: the model's own default, resize).
        overlap: ``True``: fetch and composite the next block of ROIs in a background thread
            while the model embeds the current batch (:func:`eoembed.overlap.embed_overlapped`);
            ``"auto"`` (default): so where it helps (a GPU model, remote reads, spare cores, or a
            first batch that left cores idle: :mod:`eoembed.overlap`), else block after block in
            this thread between batches;
            ``False``: stage after stage over all requests. The embeddings are the same.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast of the forward pass (see
            README, Performance, for the measured deviation per model).
        streams: Batches embedded at once on CPU, each on a share of torch's threads
            (:mod:`eoembed.streams`); ``"auto"``: one per torch thread (at most 4) for models whose
            forward pass allows it (``Embedder.concurrent_forward``), else 1. Same embeddings.
        progress: Show a progress bar (default: when stderr is a terminal; otherwise log lines
            with items done, items/s and ETA).

    Raises:
        ConfigError: ``output`` asks for a grid from a model without grid output (patch products).

    Returns:
        One :class:`Embedding` per request, in order. Failed items have an empty ``data``
        array and ``meta["status"] == "failed"`` with ``stage`` and ``error``.
    """
    if overlap not in (True, False, "auto"):
        raise ConfigError(f"overlap={overlap!r} is invalid: allowed True, False or 'auto'")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"precision={precision!r} is invalid: allowed 'fp32', 'bf16' or 'fp16'")
    cpu_streams(None, streams)  # a bad value fails before any work
    embedder = model if not isinstance(model, str) else create(
        model, options, device=device, weights_dir=weights_dir, allow_download=allow_download,
        weights_paths=weights_paths, weights_pins=weights_pins, input_prep=input_prep,
        **({"source": source} if source else {}))
    reqs = [r if isinstance(r, Request) else Request(*r) for r in requests]
    if output.mode == "grid" and "grid" not in embedder.card.outputs:
        raise ConfigError(f"output mode 'grid' is not available for model {embedder.card.id!r} "
                          f"(outputs: {list(embedder.card.outputs)}); allowed: OutputSpec.pooled()")
    precomputed = embedder.card.kind in ("precomputed", "location")  # nothing to fetch
    if precomputed:  # products are read directly: no provider, no compositing
        sensor, prov = None, None
        comps = {r.roi_id: ({}, {"roi_id": r.roi_id, "request": r.to_dict(), "request_key": r.key(),
                                 "status": "ok", "stage": "read", "error": None}) for r in reqs}
    else:
        sensor = sensor or default_sensor(embedder.card.id, window=reqs[0].temporal if reqs else None)
        prov = _provider(provider)
        if isinstance(provider, dict):
            retries = provider.get("retries", retries)
            backoff_s = provider.get("backoff_s", backoff_s)
            cache_dir = cache_dir or provider.get("cache_dir")
        workers = provider.get("io_workers") if isinstance(provider, dict) else None
        fetch_kw = dict(retries=retries, backoff_s=backoff_s, cache_dir=cache_dir, workers=workers)
        embed_kw = dict(pooling=output.pooling, grid=output.mode == "grid", cell_m=output.cell_m,
                        precision=precision, streams=streams)
        if overlap:  # block by block; the next block fetched in a thread where that helps
            from eoembed.overlap import background_helps, embed_overlapped

            background = True if overlap is True else (
                background_helps(embedder, prov, workers, streams) or "measure")
            comps, results = embed_overlapped(
                embedder, reqs, sensor, prov, fetch_kw=fetch_kw, partial_below=partial_below,
                embed_kw=embed_kw, batch_size=batch_size, background=background,
                progress=Progress(f"embed {embedder.card.id}", len(reqs), bar=progress))
        else:
            comps = composite_items(fetch_items(reqs, sensor, prov, **fetch_kw), reqs, sensor,
                                    partial_below=partial_below)
    if precomputed or not overlap:
        try:
            embedder.load()
        except EoembedError as exc:
            results = {r.roi_id: ({}, {**comps[r.roi_id][1], "status": "failed", "stage": "embed",
                                       "error": f"{type(exc).__name__}: {exc}"}) for r in reqs}
        else:
            if precomputed:
                results = embedder.embed_requests(reqs, pooling=output.pooling, grid=output.mode == "grid",
                                                  cell_m=output.cell_m)
            else:
                results = embed_items(embedder, comps, reqs, batch_size=batch_size, **embed_kw)
    out = []
    for r in reqs:
        arrays, rec = results[r.roi_id]
        data = arrays.get("grid" if output.mode == "grid" else "pooled", np.empty((0,), np.float32))
        meta = {k: v for k, v in rec.items() if k != "meta"}
        meta.update(output=output.to_dict(), sensor=sensor.to_dict() if sensor else None,
                    provider=prov.describe() if prov else None,
                    versions=versions(), **embedder.describe())
        out.append(Embedding(data, meta))
    return out


def get_embedding(model: str | Embedder, spatial, temporal: TemporalSpec, *,
                  output: OutputSpec = OutputSpec.pooled(), roi_id: str = "roi", **kwargs: Any) -> Embedding:
    """Embed one ROI; raises the item's error instead of returning a failed item.

    Example::

        emb = eoembed.get_embedding("spectral", spatial=PointBuffer(5.1, 52.1, 320),
                                    temporal=TemporalSpec.year(2022), output=OutputSpec.pooled(),
                                    provider={"name": "local", "catalog": "resources/sample/index.json"})
    """
    (emb,) = get_embeddings_batch(model, [Request(roi_id, spatial, temporal)], output=output, **kwargs)
    if emb.meta["status"] == "failed":
        raise EoembedError(f"{emb.meta['stage']} failed for {roi_id}: {emb.meta['error']}")
    return emb
