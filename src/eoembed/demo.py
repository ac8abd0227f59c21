"""The embedded demo: its ROI table, with labels derived from the GENERATED sample imagery."""

from __future__ import annotations

from pathlib import Path

from eoembed.chunkio import atomic_output
from eoembed.providers.sample import demo_labels, demo_rois, demo_sites, generate

LABEL_COLUMNS = ("site", "yield_t_ha", "landcover")


#: ROIs per demo site: enough for a spatially blocked benchmark that can learn something.
ROIS_PER_SITE = 16


def demo_table(out_dir: str | Path, year: int = 2023, dates_per_year: int = 6):
    """Generate (or reuse) the demo imagery in ``out_dir`` and return the labelled ROI table."""
    index = generate(out_dir, demo_sites(), year=year, dates_per_year=dates_per_year)
    rois = demo_rois(n_per_site=ROIS_PER_SITE, year=year)
    labels = demo_labels(index, rois)[["roi_id", "yield_t_ha", "landcover"]]
    table = rois.merge(labels, on="roi_id", how="left", validate="one_to_one")
    table["yield_t_ha"] = table["yield_t_ha"].round(3)
    return table[["roi_id", "lon", "lat", "buffer_m", "year", *LABEL_COLUMNS]]


def write_demo_table(rois_path: str | Path, out_dir: str | Path, year: int = 2023,
                     dates_per_year: int = 6) -> Path:
    """Write the demo ROI table (TSV) atomically; returns its path."""
    table = demo_table(out_dir, year, dates_per_year)
    with atomic_output(rois_path, ".tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return Path(rois_path)
