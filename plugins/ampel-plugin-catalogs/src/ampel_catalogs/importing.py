"""Reading catalogue files (CSV, FITS, Parquet, VOTable, HEASARC tdat) and importing them into the
local backend: `read_table` reads a file as an astropy Table, `positions` turns its RA and Dec
columns into degrees, `import_catalog` does both and stores the result with its origin.

Positions: numeric columns are degrees (or converted from the column's angular unit, e.g. rad);
text columns are parsed with astropy.coordinates: a plain number is degrees, a sexagesimal RA
("00 03 15.4", "00:03:15.4", "0h03m15.4s") is in hours unless it says "d", a sexagesimal Dec
("+16 08 45", "16d08m45s") in degrees. RA is wrapped into [0, 360). A row whose position is empty,
masked, not a number or outside |Dec| <= 90 is invalid: the import refuses the file, naming the
first one, unless ``skip_invalid`` drops them (the count is recorded in the info and returned).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ampel_catalogs.catalog import MATCH_COLUMNS, CatalogError, CatalogInfo, file_sha256

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["FORMATS", "ImportResult", "file_format", "import_catalog", "positions", "read_table"]

# format name -> (file name endings, astropy's reader)
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "csv": ((".csv", ".csv.gz", ".csv.bz2"), "ascii.csv"),
    "fits": ((".fits", ".fit", ".fits.gz", ".fit.gz", ".fts"), "fits"),
    "parquet": ((".parquet", ".pq"), "parquet"),
    "votable": ((".vot", ".votable", ".xml", ".vot.gz", ".xml.gz"), "votable"),
    "tdat": ((".tdat", ".tdat.gz"), "ascii.tdat"),
}


@dataclass(frozen=True)
class ImportResult:
    """What an import stored, and how many rows of the file it dropped for lack of a position."""

    info: CatalogInfo
    skipped: int


def file_format(path: Path, given: str | None = None) -> str:
    """The format of ``path``: ``given`` if any, else from its name's ending (CatalogError if unknown)."""
    if given is not None:
        if given not in FORMATS:
            raise CatalogError(f"unknown catalogue file format {given!r}; use one of {', '.join(FORMATS)}")
        return given
    name = path.name.lower()
    for format_name, (endings, _) in FORMATS.items():
        if name.endswith(endings):
            return format_name
    known = ", ".join(e for es, _ in FORMATS.values() for e in es)
    raise CatalogError(f"{path}: cannot tell its format from its name (known endings: {known}); "
                       f"pass --format {'|'.join(FORMATS)}")


def read_table(path: str | Path, file_format_name: str | None = None) -> Table:
    """The file at ``path`` as an astropy Table (the first table of a FITS file or a VOTable)."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    reader = FORMATS[file_format(path, file_format_name)][1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FITS/VOTable/tdat readers warn about harmless header details
            table = Table.read(path, format=reader)
    except Exception as error:  # astropy raises many types for a file it cannot read
        raise CatalogError(f"{path}: cannot be read as {reader} ({type(error).__name__}: {error})") from None
    if not isinstance(table, Table):
        raise CatalogError(f"{path}: holds no table")
    return table


def positions(table: Table, ra_column: str, dec_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA and Dec in degrees (RA in [0, 360)) of every row, and a mask of the rows whose position is
    valid (see the module docstring); CatalogError for a missing column."""
    import astropy.units as u

    for column in (ra_column, dec_column):
        if column not in table.colnames:
            raise CatalogError(f"the table has no column {column!r} (it has {', '.join(table.colnames)})")
    ra = _degrees(table[ra_column], u.hourangle)
    dec = _degrees(table[dec_column], u.deg)
    valid = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    return np.mod(np.where(valid, ra, 0.0), 360.0), np.where(valid, dec, 0.0), valid


def import_catalog(name: str, path: str | Path, ra: str, dec: str, id_column: str | None = None,
                   keep: tuple[str, ...] = (), root: str | Path | None = None, skip_invalid: bool = False,
                   file_format_name: str | None = None) -> ImportResult:
    """Import the file at ``path`` as the local catalogue ``name`` (under ``root``, default
    ``$AMPEL_CATALOGS``): positions from the columns ``ra`` and ``dec``, ids from ``id_column``
    (default: the row number in the file, from 0), and the ``keep`` columns; records the file, its
    sha256, the row count and the columns used. CatalogError names what is wrong."""
    from astropy.table import MaskedColumn, Table

    from ampel_catalogs.local import LocalBackend

    path = Path(path)
    table = read_table(path, file_format_name)
    reserved = [c for c in keep if c in MATCH_COLUMNS]
    if reserved:
        raise CatalogError(f"cannot keep a column named {', '.join(reserved)}: the match table uses "
                           f"{', '.join(MATCH_COLUMNS)} for its own columns")
    missing = [c for c in (id_column, *keep) if c is not None and c not in table.colnames]
    if missing:
        raise CatalogError(f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(table.colnames)})")
    shaped = [c for c in keep if table[c].ndim > 1]
    if shaped:
        raise CatalogError(f"{path}: column {', '.join(shaped)} holds arrays per row; keep scalar columns only")
    ra_deg, dec_deg, valid = positions(table, ra, dec)
    invalid = np.flatnonzero(~valid)
    if len(invalid) and not skip_invalid:
        first = int(invalid[0])
        raise CatalogError(f"{path}: {len(invalid)} of {len(table)} rows have no valid position in columns {ra!r}, "
                           f"{dec!r} (first: row {first}, {ra}={str(table[ra][first])!r}, {dec}={str(table[dec][first])!r}); "
                           "fix them, or pass --skip-invalid to drop them")
    ids = np.arange(len(table)).astype(str) if id_column is None else _text(table[id_column])
    stored = Table({"id": ids[valid], "ra": ra_deg[valid], "dec": dec_deg[valid]})
    for column in keep:
        values = table[column][valid]
        if values.dtype.kind == "S":
            values = MaskedColumn(_text(values), mask=getattr(values, "mask", False))
        stored[column] = values
        stored[column].unit = table[column].unit
    if len(stored) == 0:
        raise CatalogError(f"{path}: no row has a valid position; nothing to import")
    extra = {"format": file_format(path, file_format_name), "ra_column": ra, "dec_column": dec,
             "id_column": id_column or "(row number)", "skipped_rows": str(len(invalid))}
    info = LocalBackend(root).create(name, stored, str(path.resolve()), file_sha256(path), extra)
    return ImportResult(info, len(invalid))


def _degrees(column: Any, text_unit: Any) -> np.ndarray:
    """A position column in degrees, NaN where a value is missing or unreadable."""
    import astropy.units as u
    from astropy.coordinates import Angle

    mask = np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), dtype=bool)
    if column.dtype.kind in "iuf":
        unit = column.unit if column.unit is not None and column.unit.physical_type == "angle" else u.deg
        values = (np.asarray(column, dtype=float) * unit).to_value(u.deg)
        return np.where(mask, np.nan, values)
    if column.dtype.kind not in "USO":
        raise CatalogError(f"column {column.name!r} holds {column.dtype}, not positions")
    texts = [text.strip() for text in _text(column)]
    out = np.full(len(texts), np.nan)
    for index, text in enumerate(texts):
        if mask[index] or not text:
            continue
        try:
            out[index] = float(text)
            continue
        except ValueError:
            pass
        try:
            unit = u.deg if "d" in text.lower() or "°" in text else text_unit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "24:00:00" is RA 360, wrapped to 0 below
                out[index] = Angle(text, unit=unit).to_value(u.deg)
        except (ValueError, u.UnitsError):
            pass
    return out


def _text(column: Any) -> np.ndarray:
    """A column's values as str (bytes decoded as UTF-8, masked values as '')."""
    values = np.asarray(column.filled("") if hasattr(column, "filled") and column.dtype.kind in "SU" else column)
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8", "replace")
    return values.astype(str)
