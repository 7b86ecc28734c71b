"""The four table formats give back what they were given (property test): every row, column,
type and missing value, read with the libraries a user reads them with (VOTable has no null text:
a missing text value comes back as an empty string)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_serve.formats import Format, table_bytes

texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
kinds = {
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "str": texts,
    "bool": st.booleans(),
}


@st.composite
def tables(draw: Any) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_.]{0,8}", fullmatch=True), min_size=1, max_size=5, unique=True))
    column_kinds = [draw(st.sampled_from(sorted(kinds))) for _ in names]
    rows = draw(st.lists(st.fixed_dictionaries({name: st.none() | kinds[kind] for name, kind in zip(names, column_kinds,
                                                                                                 strict=True)}),
                         min_size=1, max_size=6))
    return names, column_kinds, rows


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_json_and_csv_round_trip(table: tuple[list[str], list[str], list[dict[str, Any]]]) -> None:
    names, _, rows = table
    document = orjson.loads(table_bytes(rows, names, Format.json, {"limit": 5, "offset": 0, "next_offset": None}))
    assert document["columns"] == names and document["items"] == rows and document["next_offset"] is None
    read = list(csv.reader(io.StringIO(table_bytes(rows, names, Format.csv).decode())))
    assert read[0] == names
    assert read[1:] == [["" if row[n] is None else str(row[n]) for n in names] for row in rows]


@settings(max_examples=40, deadline=None)
@given(tables())
def test_parquet_and_votable_round_trip(table: tuple[list[str], list[str], list[dict[str, Any]]]) -> None:
    import pyarrow.parquet as pq
    from astropy.io.votable import parse_single_table

    names, column_kinds, rows = table
    parquet = pq.read_table(io.BytesIO(table_bytes(rows, names, Format.parquet))).to_pylist()
    assert parquet == [{n: row[n] for n in names} for row in rows]
    votable = parse_single_table(io.BytesIO(table_bytes(rows, names, Format.votable))).to_table()
    assert votable.colnames == names and len(votable) == len(rows)
    for name, kind in zip(names, column_kinds, strict=True):
        column = votable[name]
        mask = getattr(column, "mask", None)
        for index, row in enumerate(rows):
            missing = bool(mask[index]) if mask is not None and mask.shape else False
            if row[name] is None:  # VOTable has no null text: a missing text value (or a column of none) is ""
                value = column[index]
                assert missing or str(value) == "" or (kind == "float" and math.isnan(value)), (name, index, value)
            else:
                assert not missing and same(column[index].item() if hasattr(column[index], "item") else column[index],
                                            row[name]), (name, kind, column[index], row[name])
