"""ROI table validation: every problem of every row reported at once, with row numbers."""

import pandas as pd
import pytest

from eoembed import TableError
from eoembed.table import load_table, to_requests

HEADER = "roi_id\tlon\tlat\tbuffer_m\tminlon\tminlat\tmaxlon\tmaxlat\tyear\tstart\tend\tcrop\n"
GOOD = "ok1\t5\t52\t100\t\t\t\t\t2022\t\t\twheat\nbox1\t\t\t\t5\t52\t5.1\t52.1\t\t2021-03-01\t2021-09-01\tmaize\n"
BAD_ROWS = {  # row content -> (column fragment, message fragment)
    "a/b\t5\t52\t100\t\t\t\t\t2022\t\t\t": ("roi_id", "does not match"),
    "..\t5\t52\t100\t\t\t\t\t2022\t\t\t": ("roi_id", "does not match"),
    "has space\t5\t52\t100\t\t\t\t\t2022\t\t\t": ("roi_id", "does not match"),
    "x..y\t5\t52\t100\t\t\t\t\t2022\t\t\t": ("roi_id", "'..'"),
    "ok1\t5\t52\t100\t\t\t\t\t2022\t\t\t": ("roi_id", "duplicate"),
    "far\t200\t52\t100\t\t\t\t\t2022\t\t\t": ("lon", "out of range"),
    "pole\t5\t89\t100\t\t\t\t\t2022\t\t\t": ("lat", "out of range"),
    "zero\t5\t52\t0\t\t\t\t\t2022\t\t\t": ("buffer_m", "out of range"),
    "nan\tabc\t52\t100\t\t\t\t\t2022\t\t\t": ("lon", "not a number"),
    "rbox\t\t\t\t5\t52\t4\t53\t2022\t\t\t": ("maxlon", "greater than"),
    "nogeo\t\t\t\t\t\t\t\t2022\t\t\t": ("geometry", "no geometry"),
    "half\t5\t52\t\t\t\t\t\t2022\t\t\t": ("lon,lat,buffer_m", "incomplete"),
    "rev\t5\t52\t100\t\t\t\t\t\t2022-05-01\t2022-01-01\t": ("end", "reversed"),
    "empty\t5\t52\t100\t\t\t\t\t\t2022-05-01\t2022-05-01\t": ("end", "empty"),
    "baddate\t5\t52\t100\t\t\t\t\t\t2022-02-30\t2022-05-01\t": ("start", "not a date"),
    "notime\t5\t52\t100\t\t\t\t\t\t\t\t": ("year/start/end", "no time window"),
    "yr\t5\t52\t100\t\t\t\t\t20x2\t\t\t": ("year", "not an integer"),
}


def write(tmp_path, text):
    path = tmp_path / "rois.tsv"
    path.write_text(HEADER + text)
    return path


def test_good_table_parses_into_requests_with_labels(tmp_path):
    table = load_table(write(tmp_path, GOOD))
    assert list(table["kind"]) == ["point_buffer", "bbox"]
    assert list(table["crop"]) == ["wheat", "maize"]
    reqs = to_requests(table)
    assert reqs[0].temporal.start.isoformat() == "2022-01-01" and reqs[0].temporal.end.isoformat() == "2023-01-01"
    assert reqs[1].spatial.kind == "bbox" and reqs[1].temporal.end.isoformat() == "2021-09-01"


def test_every_bad_row_is_reported_at_once_with_its_row_number(tmp_path):
    rows = list(BAD_ROWS)
    path = write(tmp_path, GOOD + "\n".join(rows) + "\n")
    with pytest.raises(TableError) as info:
        load_table(path)
    problems = info.value.problems
    for i, row in enumerate(rows):
        rownum = i + 3  # two good rows first
        column, fragment = BAD_ROWS[row]
        hits = [p for p in problems if p[0] == rownum and column in p[1] and fragment in p[2]]
        assert hits, f"row {rownum} ({row.split(chr(9))[0]!r}): no problem with {column}/{fragment}: {problems}"
    # the duplicate is reported on both of its rows
    assert {p[0] for p in problems if "duplicate" in p[2]} == {1, 3 + rows.index("ok1\t5\t52\t100\t\t\t\t\t2022\t\t\t")}
    text = str(info.value)
    assert f"{len(problems)} problem(s)" in text and "row 3" in text


def test_missing_id_column_and_empty_table(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("lon\tlat\n1\t2\n")
    with pytest.raises(TableError, match="roi_id"):
        load_table(p)
    p.write_text("roi_id\tlon\n")
    with pytest.raises(TableError, match="no rows"):
        load_table(p)


def test_validation_is_vectorised_enough_for_100k_rows(tmp_path):
    n = 100_000
    df = pd.DataFrame({"roi_id": [f"r{i}" for i in range(n)], "lon": "5.0", "lat": "52.0", "buffer_m": "100",
                       "year": "2022"})
    df.loc[n - 1, "lat"] = "95"  # one bad row at the very end is still found
    path = tmp_path / "big.tsv"
    df.to_csv(path, sep="\t", index=False)
    with pytest.raises(TableError) as info:
        load_table(path)
    assert info.value.problems == [(n, "lat", "95 is out of range: allowed [-80, 84]")]
