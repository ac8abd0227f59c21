"""Turn your own GeoTIFFs into a STAC catalogue that the ``local`` provider reads.

:class:`~eoembed.providers.local.LocalProvider` wants one asset per band, named like the band
(``B02``, ..., plus the quality band ``SCL``), each a single-band raster, with ``datetime``,
``proj:code``, ``eo:cloud_cover`` and ``raster:bands`` on the item. Multi-band GeoTIFFs (e.g.
a 12-band Sentinel-2 patch) do not fit that contract: STAC cannot say "asset ``B02`` is band 2
of this file" (odc-stac names the bands of a multi-band asset ``<asset>.<index>``, and loading
``B02`` from such an asset silently returns its *first* band), so
:func:`build_catalog` **splits every file into single-band Cloud-Optimised GeoTIFFs** (GDAL
COG driver: tiled, deflate) written next to the catalogue, in ``<catalog dir>/<item id>/<band>.tif``.

With ``split=False`` nothing is written but the catalogue: each band's asset points at band *i*
of the user's file (``eoembed:band_index``; eoembed's reader opens each file once and reads all
its bands in one window read) and the constant quality band is virtual (``eoembed:constant``).
Only eoembed reads such catalogues correctly.

Files without a per-pixel quality band (cloud mask) get, when ``qa_value`` is given, a
**constant** quality raster (``SCL.tif``, 20 m for Sentinel-2): ``qa_value`` wherever the image
has data and ``0`` (no data) where every band holds the nodata value. Use it only for imagery
that is already cloud-free (``qa_value=4``, "vegetation", is a class the compositing keeps).

Example::

    from eoembed.catalog import build_catalog
    build_catalog(sorted(Path("patches").glob("*.tif")), "work/catalog.json",
                  bands=["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                         "B09", "B11", "B12"],
                  datetime="2022-06-15", qa_value=4)

then ``provider: {name: local, catalog: work/catalog.json}`` in the workflow config.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eoembed.catalog_assets import (_asset, _footprint, _multiband_assets, _qa_raster, _qa_raw,
                                    write_band_cog)
from eoembed.chunkio import write_text_atomic
from eoembed.collections import Collection, get_collection
from eoembed.errors import ConfigError, ProviderError

__all__ = ["build_catalog", "write_band_cog"]

log = logging.getLogger(__name__)

DateLike = str | dt.date | dt.datetime
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: Native pixel size of quality bands, metres (the constant QA raster is written at it).
_QA_GSD_M = {"SCL": 20.0}
_EXTENSIONS = ["https://stac-extensions.github.io/eo/v2.0.0/schema.json",
               "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
               "https://stac-extensions.github.io/raster/v1.1.0/schema.json"]


def _as_datetime(value: Any, what: str) -> dt.datetime:
    """UTC datetime of a date/datetime/ISO string; a bare date means 12:00 UTC of that day
    (so its local solar date is the same day at every longitude)."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            has_time = "T" in text or " " in text
            value = dt.datetime.fromisoformat(text) if has_time else dt.date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{what}={value!r} is invalid: allowed an ISO date (YYYY-MM-DD) or "
                              "datetime (YYYY-MM-DDTHH:MM:SSZ)") from None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(12), tzinfo=dt.timezone.utc)
    raise ConfigError(f"{what}={value!r} is invalid: allowed a date, datetime or ISO string")


def _datetimes(datetime: DateLike | Sequence[DateLike], n: int) -> list[dt.datetime]:
    if isinstance(datetime, (str, dt.date)):
        return [_as_datetime(datetime, "datetime")] * n
    values = list(datetime)
    if len(values) != n:
        raise ConfigError(f"datetime has {len(values)} value(s) for {n} file(s): allowed one value "
                          "for all files or one per file")
    return [_as_datetime(v, f"datetime[{i}]") for i, v in enumerate(values)]


def _check_bands(bands: Sequence[str], coll: Collection) -> tuple[str, ...]:
    if isinstance(bands, str) or not bands:
        raise ConfigError(f"bands={bands!r} is invalid: allowed a non-empty list of the files' band "
                          f"names, in file order, drawn from {list(coll.bands)}")
    bands = tuple(bands)
    unknown = [b for b in bands if b not in coll.bands]
    if unknown:
        raise ConfigError(f"bands={list(bands)} is invalid: {unknown} are not bands of collection "
                          f"{coll.id!r}; allowed {list(coll.bands)}")
    if len(set(bands)) != len(bands):
        raise ConfigError(f"bands={list(bands)} is invalid: allowed distinct names")
    return bands


def _check_qa(qa_value: int | None, coll: Collection) -> int | None:
    if coll.qa_band is None:
        if qa_value is not None:
            raise ConfigError(f"qa_value={qa_value!r} is invalid: collection {coll.id!r} has no quality "
                              "band; allowed None")
        return None
    valid = {k: v for k, v in coll.qa_names.items() if k not in coll.invalid_qa}
    if qa_value is None:
        raise ConfigError(
            f"qa_value=None: collection {coll.id!r} is cloud-masked with its per-pixel quality band "
            f"{coll.qa_band!r}, which these files lack and LocalProvider requires. If the imagery is "
            f"cloud-free, pass qa_value=4 (a constant {coll.qa_band}); allowed classes: {valid}")
    is_int = isinstance(qa_value, (int, np.integer)) and not isinstance(qa_value, bool)
    if not is_int or int(qa_value) not in valid:
        raise ConfigError(f"qa_value={qa_value!r} is invalid: it would mark every pixel invalid or is no "
                          f"{coll.qa_band} class; allowed one of {valid}")
    return int(qa_value)


def _item_ids(paths: list[Path], item_ids: Sequence[str] | None) -> list[str]:
    if item_ids is None:  # file names, made safe as folder names
        ids = [re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem).strip("._-") or "item" for p in paths]
    else:
        ids = [str(i) for i in item_ids]
    if len(ids) != len(paths):
        raise ConfigError(f"item_ids has {len(ids)} value(s) for {len(paths)} file(s)")
    bad = [i for i in ids if not _ID.match(i) or ".." in i]
    if bad:
        raise ConfigError(f"item ids {bad} are invalid: allowed letters, digits, '_', '-', '.' (they "
                          "name folders); pass item_ids=")
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"item ids {dupes} occur more than once (files with the same name in "
                          "different folders?): pass distinct item_ids=")
    return ids


def _read(path: Path, n_bands: int):
    """Read all bands of a GeoTIFF; checks band count, CRS and north-up orientation."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.count != n_bands:
                raise ConfigError(f"{path}: the file has {src.count} band(s) but bands= lists {n_bands} "
                                  "name(s); allowed exactly one name per band, in file order")
            if src.crs is None:
                raise ConfigError(f"{path}: the file has no CRS; allowed georeferenced GeoTIFFs only")
            t = src.transform
            if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
                raise ConfigError(f"{path}: transform {tuple(t)[:6]} is rotated or not north-up; "
                                  "allowed north-up rasters (warp it first, e.g. gdalwarp)")
            return src.read(), src.crs, t, src.nodata, src.bounds
    except ConfigError:
        raise
    except Exception as exc:  # rasterio/GDAL cannot open or read it
        raise ProviderError(f"{path}: not a readable GeoTIFF: {type(exc).__name__}: {exc}") from exc


def _crs_props(crs) -> dict[str, Any]:
    epsg = crs.to_epsg()
    if epsg is not None:
        return {"proj:code": f"EPSG:{epsg}"}
    return {"proj:code": None, "proj:wkt2": crs.to_wkt()}


def _baseline_offset(baseline: str | None, coll: Collection) -> float:
    """``raster:bands`` offset (reflectance) of a Sentinel-2 L2A processing baseline."""
    if baseline is None:
        return 0.0
    from eoembed.providers.presets import S2_BOA_ADD_OFFSET

    try:
        value = float(str(baseline).strip())
    except ValueError:
        value = None
    if coll.id != "sentinel-2-l2a" or value is None:
        raise ConfigError(f"processing_baseline={baseline!r} is invalid: allowed a Sentinel-2 L2A "
                          f"baseline such as '04.00' (collection {coll.id!r})")
    return round(S2_BOA_ADD_OFFSET * coll.scale, 9) if value >= 4.0 else 0.0


def build_catalog(files: Sequence[str | os.PathLike], out_json: str | os.PathLike, *,
                  bands: Sequence[str], datetime: DateLike | Sequence[DateLike],
                  collection: str = "sentinel-2-l2a", qa_value: int | None = None,
                  item_ids: Sequence[str] | None = None, cloud_cover: float | None = None,
                  units: str | None = None, processing_baseline: str | None = None,
                  split: bool = True) -> Path:
    """Write a STAC ItemCollection for local (multi-band) GeoTIFFs, readable by ``LocalProvider``.

    Every file becomes one item; each of its bands is written as a single-band COG
    ``<out_json dir>/<item id>/<band>.tif`` (same grid, dtype and values; nodata = the file's
    nodata, else the collection's), plus ``<qa band>.tif`` when ``qa_value`` is given. Asset
    hrefs are relative to ``out_json``, so the folder can be moved as a whole.

    Args:
        files: GeoTIFF paths (any CRS, north-up, one image per file). Pixels need not be square
            (EuroSAT chips are 10.007 m x 10.020 m): the COGs keep the file's true affine and
            odc-stac reprojects them onto the ROI grid when they are read.
        out_json: Catalogue path to write (``.json``); its folder receives the COGs.
        bands: Band name of each band of the files, in file order (every file the same).
        datetime: Acquisition date/time: one for all files or one per file (date, datetime or ISO
            string; a bare date means 12:00 UTC, naive datetimes are UTC).
        collection: Collection id (see :mod:`eoembed.collections`).
        qa_value: Quality class written as a constant quality band, for imagery that is already
            cloud-free (Sentinel-2: 4 = vegetation). Required for collections with a quality band.
        item_ids: Item ids; they also name folders (default: the file names without extension,
            characters other than letters, digits, ``_.-`` replaced by ``_``).
        cloud_cover: ``eo:cloud_cover`` in percent; default 0 when ``qa_value`` is given (the
            constant quality band says every pixel is clear), else omitted.
        units: SAR collections: what the files hold, ``"dB"`` or ``"linear"`` (power); written as
            ``raster:bands[].unit`` so the providers convert dB to linear power. Default: the
            collection's ``source_units``.
        processing_baseline: Sentinel-2 L2A only: the ESA processing baseline of the files'
            digital numbers (e.g. ``"04.00"``). It is recorded as ``s2:processing_baseline``
            and as the assets' ``raster:bands`` offset (-0.1 reflectance = -1000 DN from 04.00
            on), which the providers remove. ``None`` records offset 0: the values are taken
            as already free of the offset (harmonized data, e.g. exported from Earth Engine).
        split: ``True`` (default): write the single-band COGs described above (readable by any
            STAC tool, e.g. odc-stac). ``False``: write no pixels at all: each band's asset
            points at the user's file itself (absolute href) with ``eoembed:band_index`` naming
            its band, so eoembed's reader opens each file once and reads all its bands in one
            window read (about 10x less I/O than 13 single-band files); the constant quality
            band is a virtual asset (``eoembed:constant``: the value wherever a band has data)
            instead of a file. Only eoembed reads such a catalogue correctly.

    Returns:
        Absolute path of the catalogue.

    Raises:
        ConfigError: A file is missing, its band count differs from ``bands`` (the message names
            the file and both counts), it has no CRS or is rotated, or an argument is invalid.
        ProviderError: A file exists but cannot be read as a raster.
    """
    coll = get_collection(collection)
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [Path(f).expanduser().absolute() for f in files]
    if not paths:
        raise ConfigError("files is empty: allowed one or more GeoTIFF paths")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} input file(s) not found: {missing}")
    if units is not None and (not coll.is_sar or str(units).lower() not in ("db", "linear")):
        raise ConfigError(f"units={units!r} is invalid for collection {coll.id!r}: allowed "
                          + ("'dB' or 'linear'" if coll.is_sar else "None (not a SAR collection)"))
    if not isinstance(split, bool):
        raise ConfigError(f"split={split!r} is invalid: allowed true (single-band COGs) or false "
                          "(multi-band assets pointing at the files)")
    band_names = _check_bands(bands, coll)
    qa = _check_qa(qa_value, coll)
    times = _datetimes(datetime, len(paths))
    ids = _item_ids(paths, item_ids)
    if cloud_cover is None:
        cloud_cover = 0.0 if qa is not None else None
    elif (isinstance(cloud_cover, bool) or not isinstance(cloud_cover, (int, float))
          or not 0 <= cloud_cover <= 100):
        raise ConfigError(f"cloud_cover={cloud_cover!r} is invalid: allowed a number in [0, 100]")
    offset = _baseline_offset(processing_baseline, coll)
    out = Path(out_json).expanduser().absolute()
    root = out.parent

    features = []
    for path, when, item_id in zip(paths, times, ids):
        data, crs, transform, src_nodata, bounds = _read(path, len(band_names))
        nodata = src_nodata if src_nodata is not None else coll.nodata
        res = max(float(transform.a), float(-transform.e))  # the coarser axis, when not square
        crs_text = crs.to_string()
        tags = {"source": str(path), "written_by": "eoembed.catalog.build_catalog"}
        assets: dict[str, dict] = {}
        if not split:
            assets = _multiband_assets(path, data, transform, nodata, res, band_names, coll, qa, units,
                                       offset)
        for i, band in enumerate(band_names if split else ()):
            rel = f"{item_id}/{band}.tif"
            write_band_cog(root / rel, data[i], crs, transform, nodata, band, "average", tags=tags)
            assets[band] = _asset(rel, data.shape[1:], transform, data.dtype.name, nodata, res,
                                  f"{band} (band {i + 1} of {path.name})",
                                  ["data", "backscatter" if coll.is_sar else "reflectance"],
                                  coll.scale if coll.scale != 1.0 else None, offset, units)
        if qa is not None and split:
            qa_res = _QA_GSD_M.get(coll.qa_band, res)
            raw, fill = _qa_raw(qa, coll)
            qa_arr, qa_transform = _qa_raster(data, nodata, crs, transform, qa_res, raw, fill)
            rel = f"{item_id}/{coll.qa_band}.tif"
            write_band_cog(root / rel, qa_arr, crs, qa_transform, fill, coll.qa_band, "nearest", tags=tags)
            assets[coll.qa_band] = _asset(rel, qa_arr.shape, qa_transform, "uint8", fill,
                                          float(qa_transform.a),
                                          f"constant {coll.qa_band}={raw} (class {qa}, assumed "
                                          f"cloud-free; {fill} = no data)", ["data"], None)
        geometry, bbox = _footprint(crs_text, tuple(bounds))
        props: dict[str, Any] = {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), **_crs_props(crs),
                                 "eoembed:source": str(path)}
        if cloud_cover is not None:
            props["eo:cloud_cover"] = float(cloud_cover)
        if processing_baseline is not None:
            props["s2:processing_baseline"] = str(processing_baseline)
        if qa is not None:
            props["eoembed:qa"] = (f"constant {coll.qa_band}={qa} written by eoembed.catalog "
                                   "(assumed cloud-free)")
        features.append({"type": "Feature", "stac_version": "1.1.0", "stac_extensions": _EXTENSIONS,
                         "id": item_id, "collection": coll.id, "geometry": geometry, "bbox": bbox,
                         "properties": props, "assets": assets, "links": []})
        log.info("catalog: %s -> item %s (%d bands%s)", path, item_id, len(band_names),
                 f" + constant {coll.qa_band}" if qa is not None else "")

    how = "split into single-band COGs" if split else "kept as multi-band assets"
    doc = {"type": "FeatureCollection", "features": features,
           "description": f"{len(features)} local GeoTIFF(s) {how} by eoembed.catalog.build_catalog"}
    return write_text_atomic(out, json.dumps(doc, indent=1), ".json")
