"""Export per-ROI grid embeddings as CF-1.8 NetCDF, one group per ROI.

Each ROI has its own UTM grid, so the ROIs of a chunk cannot share one ``(y, x)`` frame. A file
holds one NetCDF-4 **group per ROI** (CF-1.8 allows groups); every group is a complete CF
dataset: ``embedding(dim, y, x)`` on the projected cell centres of the ROI's pixel grid coarsened
by ``cell_px`` (cell size ``res * cell_px`` metres), a ``crs`` grid-mapping variable with the ROI's
UTM CRS (pyproj ``CRS.to_cf()`` plus ``crs_wkt``/``spatial_ref``/``GeoTransform`` for GDAL) and
the request in its attributes. The root group carries the model provenance and an index
``roi_groups`` (JSON ``{roi_id: group name}``). Read one ROI back with :func:`open_grid`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from eoembed.chunkio import atomic_output
from eoembed.errors import SpecError
from eoembed.export import (EXPORT_STATUSES, history_line, iter_items, json_attr, mean_valid_fraction,
                            provenance, time_window)
from eoembed.grid import GridSpec

__all__ = ["cell_coords", "export_grid_netcdf", "group_name", "open_grid"]


def group_name(roi_id: str) -> str:
    """A valid NetCDF group name for ``roi_id`` (``/`` replaced, leading char made safe)."""
    name = re.sub(r"/", "_", str(roi_id)).rstrip() or "_"
    return name if re.match(r"[A-Za-z0-9_]", name[0]) else f"_{name}"


def cell_coords(grid: GridSpec, cell_px: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``(x, y)`` centres of the ``rows x cols`` cells of ``cell_px`` pixels of ``grid``.

    Cells start at the grid's upper-left corner; the last row/column may extend past the grid
    (the embed stage pads partial cells).
    """
    a, _, c, _, e, f = grid.transform
    x = c + a * cell_px * (np.arange(cols) + 0.5)
    y = f + e * cell_px * (np.arange(rows) + 0.5)
    return x, y


def _roi_dataset(item, prov: dict[str, Any]):
    """The CF dataset of one ROI's grid embedding."""
    import xarray as xr
    from pyproj import CRS

    rec = item.record
    emb = np.asarray(item.arrays["grid"], dtype=np.float32)
    if emb.ndim != 3:
        raise SpecError("grid", list(emb.shape), "a (dim, rows, cols) array", f"item {item.roi_id}")
    grid = GridSpec.from_dict(rec["grid"])
    cell_px = int(rec.get("cell_px") or 1)
    x, y = cell_coords(grid, cell_px, emb.shape[1], emb.shape[2])
    cell_m = abs(grid.res) * cell_px
    crs = CRS(grid.crs)
    crs_attrs = crs.to_cf()
    crs_attrs["spatial_ref"] = crs_attrs["crs_wkt"]
    a, _, c, _, e, f = grid.transform
    crs_attrs["GeoTransform"] = f"{c!r} {a * cell_px!r} 0.0 {f!r} 0.0 {e * cell_px!r}"
    start, end = time_window(rec)
    xy_units = "m" if crs.axis_info and crs.axis_info[0].unit_name == "metre" else "unknown"
    return xr.Dataset(
        {"embedding": (("dim", "y", "x"), emb,
                       {"long_name": f"{prov['model']} grid embedding", "units": "1",
                        "grid_mapping": "crs"}),
         "crs": ((), np.int32(0), crs_attrs)},
        coords={"x": ("x", x, {"standard_name": "projection_x_coordinate", "long_name": "cell centre x",
                               "units": xy_units, "axis": "X"}),
                "y": ("y", y, {"standard_name": "projection_y_coordinate", "long_name": "cell centre y",
                               "units": xy_units, "axis": "Y"})},
        attrs={"Conventions": "CF-1.8", "roi_id": item.roi_id, "model": str(prov["model"]),
               "status": str(rec.get("status")), "request": json_attr(rec.get("request")),
               "request_key": str(rec.get("request_key") or ""),
               "geometry_wkt": str(rec.get("geometry_wkt") or ""),
               "time_start": start.isoformat() if start else "",
               "time_end": end.isoformat() if end else "",
               "time_window": "[time_start, time_end) (end exclusive)",
               "pixel_grid": json_attr(grid.to_dict()), "cell_px": cell_px, "cell_size_m": cell_m,
               "valid_fraction": json_attr(rec.get("valid_fraction")),
               "valid_fraction_mean": mean_valid_fraction(rec)})


def export_grid_netcdf(chunk_path: str | os.PathLike, out_path: str | os.PathLike) -> list[str]:
    """Write the grid embeddings of one embed-stage chunk file, one NetCDF group per ROI.

    Only ``ok``/``partial`` items with a ``"grid"`` array are written.

    Args:
        chunk_path: One embed-stage chunk file.
        out_path: Destination ``.nc``.

    Returns:
        The ROI ids written, in file order.
    """
    import xarray as xr

    items = list(iter_items([chunk_path]))
    prov = provenance(items[0].meta if items else {})
    tree: dict[str, Any] = {}
    groups: dict[str, str] = {}
    for item in items:
        if item.record.get("status") not in EXPORT_STATUSES or "grid" not in item.arrays:
            continue
        name = group_name(item.roi_id)
        if name in tree:
            raise SpecError("roi_id", item.roi_id, f"ids whose group names are unique (clash on {name!r})",
                            "export_grid_netcdf")
        tree[name] = _roi_dataset(item, prov)
        groups[item.roi_id] = name
    root = xr.Dataset(attrs={
        "Conventions": "CF-1.8", "title": f"eoembed grid embeddings of model {prov['model']}",
        "source": "eoembed embed stage", "model": str(prov["model"]),
        "model_card": json_attr(prov["card"]), "options": json_attr(prov["options"]),
        "weights_sha256": json_attr(prov["weights_sha256"]), "sensor": json_attr(prov["sensor"]),
        "versions": json_attr(prov["versions"]), "roi_groups": json_attr(groups),
        "history": history_line("export_grid_netcdf", len(groups), 1, prov["versions"] or {})})
    dtree = xr.DataTree.from_dict({"/": root, **{f"/{n}": ds for n, ds in tree.items()}})
    encoding = {f"/{n}": {"embedding": {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True}}
                for n in tree}
    with atomic_output(out_path, ".nc") as tmp:
        dtree.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return list(groups)


def open_grid(path: str | os.PathLike, roi_id: str):
    """Open one ROI's grid embedding from a file written by :func:`export_grid_netcdf`.

    Returns:
        An in-memory ``xarray.Dataset`` with ``embedding(dim, y, x)``, ``x``/``y`` coordinates and
        the ``crs`` grid mapping decoded as a coordinate.

    Raises:
        SpecError: If the file has no group for ``roi_id``.
    """
    import xarray as xr

    with xr.open_dataset(path, engine="netcdf4") as root:
        groups = json.loads(root.attrs.get("roi_groups", "{}"))
    if roi_id not in groups:
        raise SpecError("roi_id", roi_id, f"one of {sorted(groups)} (the ROIs in {os.fspath(path)})",
                        "open_grid")
    with xr.open_dataset(path, group=groups[roi_id], engine="netcdf4", decode_coords="all") as ds:
        return ds.load()
