"""Tables of the read API in four formats: json, csv, parquet and votable.

Every tabular endpoint builds a list of rows (dicts with the same keys, `None` where a value is
missing) and hands it to `table_response` with the requested format:

- ``json``: ``{"columns": [...], "items": [row, ...], "limit", "offset", "next_offset"}`` — rows
  as objects, ``next_offset`` null on the last page;
- ``csv``: a header line and one line per row (missing values empty), UTF-8;
- ``parquet``: one Apache Parquet file (pyarrow), missing values null;
- ``votable``: an IVOA VOTable (astropy), missing values masked (text: VOTable has no null text,
  so a missing text value is an empty string).

Paged answers (every format) also carry the headers ``X-Limit``, ``X-Offset`` and, unless the
page is the last, ``X-Next-Offset``. A value that is a list or a mapping is one JSON-text cell in csv,
parquet and votable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson
from fastapi.responses import Response

__all__ = ["MEDIA_TYPES", "Format", "table_bytes", "table_response"]


class Format(StrEnum):
    json = "json"
    csv = "csv"
    parquet = "parquet"
    votable = "votable"


MEDIA_TYPES = {Format.json: "application/json", Format.csv: "text/csv; charset=utf-8",
               Format.parquet: "application/vnd.apache.parquet", Format.votable: "application/x-votable+xml"}


def _cell(value: Any) -> Any:
    """A value as one cell of csv, parquet or votable: lists and mappings as JSON text."""
    return orjson.dumps(value).decode() if isinstance(value, list | dict | tuple) else value


def _kind(values: Sequence[Any]) -> type:
    """The one Python type of a column's present values (bool, int, float or str; mixed numbers
    are float, anything else str)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return str
    if len(kinds) == 1 and next(iter(kinds)) in (bool, int, float, str):
        return next(iter(kinds))
    return float if kinds <= {int, float} else str


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, tuple[type, list[Any]]]:
    found: dict[str, tuple[type, list[Any]]] = {}
    for name in columns:
        values = [_cell(row.get(name)) for row in rows]
        kind = _kind(values)
        if kind is str:
            values = [None if v is None else str(v) for v in values]
        elif kind is float:
            values = [None if v is None else float(v) for v in values]
        found[name] = (kind, values)
    return found


def table_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format,
                page: dict[str, Any] | None = None) -> bytes:
    """``rows`` (with these ``columns``, in order) in format ``fmt``; ``page`` (limit, offset,
    next_offset) goes into the json body."""
    if fmt is Format.json:
        return orjson.dumps({"columns": list(columns), "items": [{c: row.get(c) for c in columns} for row in rows],
                             **(page or {})}, option=orjson.OPT_SERIALIZE_NUMPY)
    if fmt is Format.csv:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if (v := _cell(row.get(c))) is None else v for c in columns] for row in rows])
        return text.getvalue().encode()
    data = _columns(rows, columns)
    if fmt is Format.parquet:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        arrow = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
        table = pa.table({name: pa.array(values, type=arrow[kind]) for name, (kind, values) in data.items()})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    fill = {bool: False, int: 0, float: float("nan"), str: ""}
    numpy_type = {bool: "bool", int: "int64", float: "float64", str: "str"}
    table = Table()
    for name, (kind, values) in data.items():
        table[name] = MaskedColumn([fill[kind] if v is None else v for v in values], mask=[v is None for v in values],
                                   dtype=numpy_type[kind])
    sink = io.BytesIO()
    from_table(table).to_xml(sink)
    return sink.getvalue()


def table_response(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format, limit: int | None = None,
                   offset: int = 0, more: bool = False) -> Response:
    """The response of a tabular endpoint (see the module docstring); ``more``: a next page exists."""
    page: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if limit is not None:
        page = {"limit": limit, "offset": offset, "next_offset": offset + limit if more else None}
        headers = {"X-Limit": str(limit), "X-Offset": str(offset)}
        if more:
            headers["X-Next-Offset"] = str(offset + limit)
    body = table_bytes(rows, columns, fmt, page)
    if fmt is not Format.json:
        headers["Content-Disposition"] = f'inline; filename="ampel.{ "xml" if fmt is Format.votable else fmt.value}"'
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)
