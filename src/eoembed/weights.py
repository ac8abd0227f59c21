"""Model weights: find, download, verify and load them safely.

A model card lists its weights files (:class:`~eoembed.models.base.WeightsFile`). For each
file, :func:`resolve` looks in this order:

1. an explicit path from the config (``models.<id>.weights.<name>``);
2. the cache, ``<cache_dir>/<model id>/<file name>``;
3. a download from the published URL into the cache, only when downloads are allowed.

Nothing is unpickled before its sha256 is checked (:func:`load_state_dict`, via
:mod:`eoembed.checksums`), and ``torch.load`` always runs with ``weights_only=True``.
Downloads (:mod:`eoembed.download`) are streamed, hashed, verified and renamed atomically,
so a failed or wrong download never leaves a file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from eoembed.checksums import file_sha256, verify_sha256
from eoembed.download import download, redact_url
from eoembed.errors import WeightsError
from eoembed.models.base import WeightsFile

if TYPE_CHECKING:
    import torch

__all__ = ["default_cache_dir", "download", "file_sha256", "format_status", "load_state_dict",
           "redact_url", "resolve", "status", "verify_sha256"]


def default_cache_dir() -> Path:
    """The per-user weights cache, ``platformdirs.user_cache_dir("eoembed") / "weights"``.

    The config's ``weights_dir`` (passed to :func:`resolve` as ``cache_dir``) overrides it.
    """
    return Path(platformdirs.user_cache_dir("eoembed")) / "weights"


def _plain_name(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        raise WeightsError(f"{what}={value!r} is invalid: allowed a plain file name (no '/' or '..')")
    return value


def cache_path(model_id: str, wf: WeightsFile, cache_dir: str | os.PathLike | None = None) -> Path:
    """Absolute cache location of ``wf`` for ``model_id``: ``<cache_dir>/<model_id>/<wf.name>``."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return (base / _plain_name(model_id, "model id") / _plain_name(wf.name, "weights name")).absolute()


def resolve(model_id: str, wf: WeightsFile, *, explicit_path: str | os.PathLike | None = None,
            cache_dir: str | os.PathLike | None = None, allow_download: bool = False,
            progress: bool = True, retries: int = 4, backoff_s: float = 1.0,
            timeout_s: float = 60.0) -> Path:
    """Find the local file of a weights file, downloading it only when allowed.

    Args:
        model_id: Model id (cache subdirectory, and for messages).
        wf: The weights file from the model card.
        explicit_path: Path from config (``models.<id>.weights.<name>``); must exist.
        cache_dir: Weights cache (config ``weights_dir``); default :func:`default_cache_dir`.
        allow_download: Whether a missing file may be downloaded from ``wf.url``.
        progress: Log download progress.
        retries, backoff_s, timeout_s: Download retry policy (see :func:`download`).

    Returns:
        Absolute path of the file. Its sha256 is checked by :func:`load_state_dict`
        (a fresh download is verified before it is saved).

    Raises:
        WeightsError: Explicit path missing, file missing and downloads not allowed,
            or the download failed.
    """
    if explicit_path is not None:
        p = Path(explicit_path).expanduser().absolute()
        if not p.is_file():
            raise WeightsError(f"weights for model '{model_id}': models.{model_id}.weights.{wf.name}="
                               f"'{p}' does not exist (expected {wf.name}, sha256 {wf.sha256}).")
        return p
    target = cache_path(model_id, wf, cache_dir)
    if target.is_file():
        return target
    if not allow_download:
        raise WeightsError(
            f"weights for model '{model_id}' not found: expected {wf.name} (sha256 {wf.sha256}). "
            f"Download it from {redact_url(wf.url)} and place the file at {target}, or set "
            f"models.{model_id}.weights.{wf.name} in the config, or allow downloads "
            "(weights.allow_download: true).")
    return download(wf.url, target, wf.sha256, size_bytes=wf.size_bytes, retries=retries,
                    backoff_s=backoff_s, timeout_s=timeout_s, progress=progress)


def _check_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    what = f"weights file {path} is not a plain state dict (mapping of parameter name -> tensor)"
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{what}: it holds a {type(obj).__name__}")
    bad = [(k, type(v).__name__) for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!r}: {t}" for k, t in bad[:5])
        nested = [k for k, v in obj.items() if isinstance(v, Mapping)]
        hint = f"; nested mapping(s) under {nested[:5]} (a training checkpoint?)" if nested else ""
        raise WeightsError(f"{what}: {len(bad)} entr(y/ies) are not str -> tensor ({shown}){hint}")
    if not obj:
        raise WeightsError(f"{what}: it is empty")
    return dict(obj)


def _load_safetensors(path: Path) -> Any:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        raise WeightsError(f"weights file {path} is in safetensors format, but the 'safetensors' "
                           "package is not installed; install it (pip install safetensors)") from exc
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise WeightsError(f"weights file {path} is corrupt or not a safetensors file: {exc}") from exc


def _load_torch(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"weights file {path} is not a plain state dict: torch.load(weights_only=True) "
                           f"refused it (it pickles objects other than tensors): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - zip/pickle/storage errors of a damaged file
        raise WeightsError(f"weights file {path} is truncated or corrupt and cannot be loaded: "
                           f"{type(exc).__name__}: {exc}") from exc


def load_state_dict(path: str | os.PathLike, expected_sha256: str, *,
                    prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Verify, then load a plain state dict (``str -> Tensor``) on the CPU.

    The sha256 is checked before anything is unpickled; ``.safetensors`` files are read with
    safetensors, everything else with ``torch.load(..., weights_only=True)``.

    Args:
        path: Weights file.
        expected_sha256: Published sha256 (hex).
        prefix: If given, keep only keys starting with it, with the prefix stripped
            (e.g. ``"encoder."``).

    Raises:
        WeightsError: sha256 mismatch, missing/corrupt file, not a flat mapping of tensors,
            or no key under ``prefix``.
    """
    p = Path(path).absolute()
    verify_sha256(p, expected_sha256)
    raw = _load_safetensors(p) if p.suffix == ".safetensors" else _load_torch(p)
    state = _check_state_dict(raw, p)
    if prefix is None:
        return state
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        raise WeightsError(f"weights file {p}: no key starts with prefix={prefix!r}; "
                           f"keys look like {list(state)[:5]}")
    return picked


def status(entries: Iterable[tuple[str, WeightsFile, str | os.PathLike | None]], *,
           cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Report where each weights file is and whether it is intact (hashes only present files).

    Args:
        entries: ``(model_id, weights_file, explicit_path_or_None)`` tuples.
        cache_dir: Weights cache (default :func:`default_cache_dir`).

    Returns:
        One dict per entry: ``model``, ``file``, ``url`` (redacted), ``sha256`` (expected),
        ``path`` (the one :func:`resolve` would use), ``present``, ``sha_ok`` (``None`` when
        absent), ``size`` (bytes on disk or ``None``), ``expected_size``, ``error``.
    """
    rows = []
    for model_id, wf, explicit in entries:
        path = (Path(explicit).expanduser().absolute() if explicit is not None
                else cache_path(model_id, wf, cache_dir))
        present = path.is_file()
        sha_ok, error = None, None
        if present:
            try:
                sha_ok = file_sha256(path) == wf.sha256.strip().lower()
            except WeightsError as exc:
                sha_ok, error = False, str(exc)
        rows.append({"model": model_id, "file": wf.name, "url": redact_url(wf.url),
                     "sha256": wf.sha256, "path": str(path), "present": present, "sha_ok": sha_ok,
                     "size": path.stat().st_size if present else None,
                     "expected_size": wf.size_bytes, "error": error})
    return rows


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def format_status(rows: list[dict[str, Any]]) -> str:
    """Render :func:`status` rows as a text table, plus download hints for missing files."""
    if not rows:
        return "no model in this configuration needs weights files"
    header = ("MODEL", "FILE", "STATE", "SIZE", "PATH")
    table = []
    for r in rows:
        state = ("missing" if not r["present"] else "ok" if r["sha_ok"]
                 else "unreadable" if r.get("error") else "SHA256 MISMATCH")
        table.append((r["model"], r["file"], state, _human(r["size"]), r["path"]))
    widths = [max(len(str(row[i])) for row in (header, *table)) for i in range(len(header) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1]
             for row in (header, *table)]
    missing = [r for r in rows if not r["present"]]
    bad = [r for r in rows if r["present"] and not r["sha_ok"]]
    lines.append(f"{len(rows)} file(s): {len(rows) - len(missing) - len(bad)} ok, "
                 f"{len(missing)} missing, {len(bad)} bad")
    for r in missing:
        lines.append(f"  {r['model']}/{r['file']}: download from {r['url']} "
                     f"(sha256 {r['sha256']}) or allow downloads (weights.allow_download: true)")
    for r in bad:
        lines.append(f"  {r['model']}/{r['file']}: delete {r['path']} and download it again")
    return "\n".join(lines)
