"""``ampel catalog``: import catalogue files, list them, show one, match positions or whole tables."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from ampel_core.tables import Format, format_option, print_table

from ampel_catalogs.catalog import MODES, Catalog, CatalogError, Mode

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["catalog", "write_table", "xmatch_table"]

_ROOT = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Folder of local catalogues (default: $AMPEL_CATALOGS, else ./catalogs).")
_MODE = click.option("--mode", type=click.Choice(MODES), default="nearest", show_default=True,
                     help="nearest: the nearest source per position; all: every source within the radius; "
                          "any: the nearest, for vetoes.")
_RADIUS = click.option("--radius", type=float, required=True, help="Match radius in arcsec.")


@click.group()
def catalog() -> None:
    """Import catalogues and match positions against them (see docs/catalogs.md)."""


@catalog.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ra", "ra_column", required=True, help="Column of RA (degrees, or sexagesimal hours).")
@click.option("--dec", "dec_column", required=True, help="Column of Dec (degrees, or sexagesimal).")
@click.option("--id", "id_column", default=None, help="Column of source ids (default: the row number).")
@click.option("--keep", multiple=True, help="A column to keep (repeat it; or COL1,COL2).")
@click.option("--format", "file_format_name", type=click.Choice(["csv", "fits", "parquet", "votable", "tdat"]),
              default=None, help="The file's format (default: from its name).")
@click.option("--skip-invalid", is_flag=True, help="Drop rows without a valid position instead of refusing the file.")
@_ROOT
def import_command(name: str, file: Path, ra_column: str, dec_column: str, id_column: str | None,
                   keep: tuple[str, ...], file_format_name: str | None, skip_invalid: bool, root: Path | None) -> None:
    """Import FILE (CSV, FITS, Parquet, VOTable or HEASARC tdat) as the local catalogue NAME."""
    from ampel_catalogs.importing import import_catalog

    columns = tuple(c for entry in keep for c in _split(entry))
    result = import_catalog(name, file, ra_column, dec_column, id_column, columns, root, skip_invalid,
                            file_format_name)
    skipped = f"; {result.skipped} rows without a valid position skipped" if result.skipped else ""
    click.echo(f"catalogue {result.info.name}: {result.info.rows} rows from {file}{skipped} "
               f"(digest {result.info.digest[:12]})")


@catalog.command("list")
@_ROOT
@format_option
def list_command(root: Path | None, output_format: Format) -> None:
    """List the local catalogues."""
    from ampel_catalogs.local import LocalBackend

    backend = LocalBackend(root)
    rows = [(i.name, i.rows, ", ".join(i.columns), i.origin, i.digest[:12]) for i in backend.list()]
    print_table(f"catalogues in {backend.root}", ("name", "rows", "columns", "origin", "digest"), rows,
                output_format, key_columns=("name",))


@catalog.command("info")
@click.argument("name")
@_ROOT
@format_option
def info_command(name: str, root: Path | None, output_format: Format) -> None:
    """Show what catalogue NAME (a name, a folder or a URL) is and where it came from."""
    opened = _open(name, root)
    try:
        fields: dict[str, Any] = asdict(opened.info)
    finally:
        opened.close()
    extra = fields.pop("extra")
    fields["columns"] = ", ".join(fields["columns"])
    rows = [(key, value) for key, value in {**fields, **extra}.items()]
    print_table(f"catalogue {opened.info.name}", ("field", "value"), rows, output_format, key_columns=("field",))


@catalog.command("match", context_settings={"ignore_unknown_options": True})  # a Dec of -89.4 is no option
@click.argument("name")
@click.argument("ra", type=float)
@click.argument("dec", type=float)
@_RADIUS
@_MODE
@click.option("--column", "columns", multiple=True, help="A kept column to show (repeat it; default: all).")
@_ROOT
@format_option
def match_command(name: str, ra: float, dec: float, radius: float, mode: Mode, columns: tuple[str, ...],
                  root: Path | None, output_format: Format) -> None:
    """Sources of catalogue NAME within --radius arcsec of RA DEC (degrees; a negative Dec is fine)."""
    opened = _open(name, root)
    try:
        found = opened.match(ra, dec, radius, mode, tuple(c for e in columns for c in _split(e)) or None)
    finally:
        opened.close()
    shown = [c for c in found.colnames if c != "input"]
    rows = [tuple(_plain(row[c]) for c in shown) for row in found]
    print_table(f"{opened.info.name} within {radius:g}\" of ({ra:g}, {dec:g})", shown, rows, output_format,
                key_columns=("id",))


@catalog.command("xmatch")
@click.argument("name")
@click.argument("table_file", metavar="TABLE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ra", "ra_column", required=True, help="TABLE's column of RA.")
@click.option("--dec", "dec_column", required=True, help="TABLE's column of Dec.")
@_RADIUS
@_MODE
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (.csv, .ecsv, .parquet, .fits, .vot); default: CSV on standard output.")
@click.option("--keep-unmatched", is_flag=True, help="Also write inputs without a match, with empty catalogue fields.")
@_ROOT
def xmatch_command(name: str, table_file: Path, ra_column: str, dec_column: str, radius: float, mode: Mode,
                   output: Path | None, keep_unmatched: bool, root: Path | None) -> None:
    """Match every row of TABLE against catalogue NAME, as CDS xMatch does: one output row per
    (input row, source) pair, the input's columns, then the catalogue's id, position and columns
    (named <catalogue>_<column>), then the separation in arcsec."""
    from ampel_catalogs.importing import read_table

    inputs = read_table(table_file)
    opened = _open(name, root)
    try:
        joined, matched = xmatch_table(opened, inputs, ra_column, dec_column, radius, mode, keep_unmatched)
    finally:
        opened.close()
    write_table(joined, output)
    click.echo(f"{matched} of {len(inputs)} rows of {table_file} matched {opened.info.name} within {radius:g}\"; "
               f"{len(joined)} rows written to {output or 'standard output'}", err=True)


def _open(location: str, root: Path | None) -> Catalog:
    from ampel_catalogs.locations import open_catalog

    if root is not None and "://" not in location and len(Path(location).parts) == 1:
        from ampel_catalogs.local import LocalBackend

        return LocalBackend(root).open(location)
    return open_catalog(location)


def _split(entry: str) -> list[str]:
    return [c.strip() for c in entry.split(",") if c.strip()]


def _plain(value: Any) -> Any:
    """A table cell as a plain Python value (None for a masked one), for print_table."""
    import numpy as np

    if value is np.ma.masked:
        return None
    return value.item() if isinstance(value, np.generic) else value


def xmatch_table(opened: Catalog, inputs: Table, ra_column: str, dec_column: str, radius: float, mode: Mode,
                 keep_unmatched: bool = False) -> tuple[Table, int]:
    """The pairs of ``inputs`` rows and catalogue sources (see ``xmatch``), and how many inputs
    matched. Every input row needs a valid position (CatalogError names the first that has none)."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    from ampel_catalogs.importing import positions

    ra, dec, valid = positions(inputs, ra_column, dec_column)
    if not valid.all():
        first = int(np.flatnonzero(~valid)[0])
        raise CatalogError(f"{int((~valid).sum())} input rows have no valid position (first: row {first}, "
                           f"{ra_column}={str(inputs[ra_column][first])!r}, {dec_column}={str(inputs[dec_column][first])!r})")
    found = opened.match(ra, dec, radius, mode)
    prefix = f"{opened.info.name}_"
    renamed = {c: ("separation" if c == "separation" else prefix + c) for c in found.colnames if c != "input"}
    clashes = [new for new in renamed.values() if new in inputs.colnames]
    if clashes:
        raise CatalogError(f"the input table already has column {', '.join(clashes)}; rename it first")
    rows = np.asarray(found["input"], dtype=np.int64)
    matched = len(np.unique(rows))
    if keep_unmatched:
        missing = np.setdiff1d(np.arange(len(inputs)), rows)
        order = np.argsort(np.concatenate([rows, missing]), kind="stable")
        source = np.concatenate([np.arange(len(rows)), np.full(len(missing), -1)])[order]
        rows = np.concatenate([rows, missing])[order]
    else:
        source = np.arange(len(rows))
    joined = Table(inputs[rows], masked=False, copy=True)
    for old, new in renamed.items():
        column = found[old]
        values = column[np.maximum(source, 0)] if len(column) else column.__class__(np.zeros(len(source), column.dtype))
        mask = (source < 0) | np.asarray(getattr(values, "mask", False))
        joined[new] = MaskedColumn(np.asarray(values), mask=mask, unit=column.unit) if mask.any() else values
    joined["separation"].unit = "arcsec"
    joined.add_column(joined.columns.pop("separation"))  # last, as the command's help says
    return joined, matched


def write_table(table: Table, output: Path | None) -> None:
    """``table`` to ``output`` in the format its name says (CSV on standard output without one)."""
    formats = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".parquet": "parquet", ".fits": "fits",
               ".vot": "votable", ".xml": "votable"}
    if output is None:
        table.write(sys.stdout, format="ascii.csv")
        return
    writer = formats.get(output.suffix.lower())
    if writer is None:
        raise CatalogError(f"{output}: unknown output format; use a name ending in {', '.join(formats)}")
    table.write(output, format=writer, overwrite=True)
