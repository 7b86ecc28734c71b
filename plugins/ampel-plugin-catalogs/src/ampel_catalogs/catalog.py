"""The catalogue contract every backend fulfils (local HEALPix-ordered files, PostgreSQL q3c,
extcats on MongoDB), so that units, commands and tests do not care where a catalogue lives.

A catalogue is a table of sources with a position (ICRS, degrees), an id and kept columns. Its
`CatalogInfo` records where it came from (name, origin file, its sha256, row count, columns), and
its `digest` identifies its content: a unit that matches against it declares the catalogue as a
resource, so a changed catalogue changes the unit's trace id.

Matching takes arrays of positions and a radius, and answers with exact great-circle separations
(at RA 0/360 and at the poles too), as a table with one row per (input, catalogue source) pair:

- ``nearest``: at most one row per input, the nearest source within the radius;
- ``all``: every source within the radius, per input by increasing separation;
- ``any``: at most one row per input that has a source within the radius (the nearest), for
  vetoes that only need to know whether there is one.

Rows are ordered by input index (then separation). Columns: ``input`` (index into the given
arrays), ``id`` (the catalogue's id, a string), ``ra``, ``dec`` (the source's, degrees),
``separation`` (arcsec), then the catalogue's kept columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from ampel_core.errors import AmpelError

if TYPE_CHECKING:
    import numpy.typing as npt
    from astropy.table import Table

__all__ = ["MATCH_COLUMNS", "MODES", "Catalog", "CatalogError", "CatalogInfo", "Mode", "checked_query", "file_sha256"]

Mode = Literal["nearest", "all", "any"]
MODES: tuple[Mode, ...] = ("nearest", "all", "any")
MATCH_COLUMNS = ("input", "id", "ra", "dec", "separation")


class CatalogError(AmpelError):
    """A catalogue cannot be imported, found or read; the message says what to do."""


@dataclass(frozen=True)
class CatalogInfo:
    """What a catalogue is and where it came from."""

    name: str
    backend: str  # "local", "postgresql", "extcats"
    rows: int
    columns: tuple[str, ...]  # the kept columns, beside id, ra and dec
    origin: str = ""  # the file it was imported from (or the extcats database)
    origin_sha256: str = ""  # of that file
    digest: str = ""  # sha256 of the catalogue's content as stored: what a unit's trace records
    extra: dict[str, str] = field(default_factory=dict)


class Catalog(Protocol):
    """An opened catalogue."""

    info: CatalogInfo

    def match(self, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: Mode = "nearest",
              columns: tuple[str, ...] | None = None) -> Table:
        """Sources within ``radius`` arcsec of each position (``ra``, ``dec`` in degrees, arrays or
        scalars) as a table described in the module docstring; ``columns``: which kept columns to
        return (default all). CatalogError for a radius that is not positive, non-finite positions or
        an unknown column."""
        ...

    def close(self) -> None: ...


def checked_query(info: CatalogInfo, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: str,
                   columns: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The positions as 1-d float arrays and the kept columns to return; CatalogError for an unknown
    mode, a radius that is not a positive number of arcsec, positions that are not finite or off the
    sphere, or an unknown column. Every backend's `Catalog.match` starts with it."""
    if mode not in MODES:
        raise CatalogError(f"unknown match mode {mode!r}; use one of {', '.join(MODES)}")
    if not (np.isfinite(radius) and radius > 0):
        raise CatalogError(f"the match radius must be a positive number of arcsec, got {radius!r}")
    ra_in, dec_in = np.atleast_1d(np.asarray(ra, dtype=float)), np.atleast_1d(np.asarray(dec, dtype=float))
    if ra_in.shape != dec_in.shape or ra_in.ndim != 1 or not (
            np.isfinite(ra_in).all() and np.isfinite(dec_in).all() and (np.abs(dec_in) <= 90).all()):
        raise CatalogError("positions must be finite, with |dec| <= 90 and as many RAs as Decs")
    kept = info.columns if columns is None else tuple(columns)
    unknown = [c for c in kept if c not in info.columns]
    if unknown:
        raise CatalogError(f"catalogue {info.name} has no column {', '.join(unknown)} "
                           f"(it has {', '.join(info.columns) or 'none'})")
    return ra_in, dec_in, kept


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
