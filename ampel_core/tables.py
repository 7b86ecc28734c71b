"""Tables for people and for programs: every command that prints a table, and `T3TableReport`,
prints it through `print_table` in one of `FORMATS`.

- ``table``: a rich table. No cell is ever cut: off a terminal (piped, redirected) the table takes
  its natural width, however wide; on a terminal narrower than the table, long cells fold onto
  more lines, and ``key_columns`` (names, ids) keep their full width on one line.
- ``csv``: a header line, then one line per row; None is an empty field, numbers are written in
  full precision.
- ``json``: a list of objects, one per row, keyed by column name (None is null).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, Literal, TypeVar

import click

__all__ = [
    "FORMATS",
    "UNLIMITED_WIDTH",
    "F",
    "Format",
    "cell",
    "console",
    "format_option",
    "print_table",
    "rich_table",
]

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")
UNLIMITED_WIDTH = 1_000_000

F = TypeVar("F", bound=Callable[..., Any])


def format_option(function: F) -> F:
    """The ``--format table|csv|json`` option of the commands that print tables."""
    option = click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True,
                          help="table: for people (names never cut); csv or json: for programs.")
    return option(function)


def cell(value: Any) -> str:
    """A value as a table cell: '-' for None, 6 significant digits for floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], output_format: Format = "table",
                file: IO[str] | None = None, key_columns: Sequence[str] = (), show_header: bool = True) -> None:
    """Print ``rows`` (one value per column) under ``columns`` to ``file`` (default standard
    output) in ``output_format``; ``title`` is shown by the ``table`` format only."""
    file = file or sys.stdout
    if output_format == "csv":
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
    elif output_format == "json":
        file.write(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2, default=str) + "\n")
    elif output_format == "table":
        console(file).print(rich_table(title, columns, rows, key_columns, show_header))
    else:
        raise ValueError(f"unknown table format {output_format!r}; use one of {', '.join(FORMATS)}")


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key_columns: Sequence[str] = (),
               show_header: bool = True) -> Any:
    """A rich Table whose cells fold instead of being cut, and whose ``key_columns`` never wrap."""
    from rich.table import Table

    cells = [[cell(value) for value in row] for row in rows]
    table = Table(title=title, show_header=show_header)
    for index, column in enumerate(columns):
        if column in key_columns:
            width = max([len(column), *(len(row[index]) for row in cells)])
            table.add_column(column, no_wrap=True, min_width=width)
        else:
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def console(file: IO[str] | None = None) -> Any:
    """A rich Console on ``file``: the terminal's width on a terminal, unlimited off one (so that
    piped tables are never cut to 80 columns)."""
    from rich.console import Console

    file = file or sys.stdout
    on_terminal = Console(file=file).is_terminal
    return Console(file=file, width=None if on_terminal else UNLIMITED_WIDTH)
