"""How units name a catalogue, open it and declare it for the trace.

A unit's ``catalog`` option is either a location string (see `ampel_catalogs.locations`: a local
name, a folder ``dir/NAME``, ``postgresql://…``, ``extcats://…``) or a `CatalogFile`: a table file
(CSV, FITS, Parquet, VOTable: what ``astropy.table.Table.read`` reads) imported on first use into a
cache under the local root (``$AMPEL_CATALOGS`` or ``./catalogs``, in ``.imported/``), keyed by the
file's sha256 and the column mapping, so that a job runs on a fresh machine without an import step.

What goes into a unit's trace (`catalog_resources`):

- a local catalogue: its Parquet file (``LocalCatalog.path``);
- a `CatalogFile`: the file itself (its content; the column mapping is in the unit's config);
- PostgreSQL and extcats catalogues have no file: the trace then relies on the location string
  alone, so units put the catalogue's ``info.digest`` into their results instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ampel_catalogs.catalog import CatalogError

if TYPE_CHECKING:
    from astropy.table import Table

    from ampel_catalogs.catalog import Catalog

__all__ = ["CatalogFile", "CatalogSpec", "catalog_name", "catalog_resource", "import_file", "open_spec"]

_REMOTE = ("postgresql", "postgres", "extcats")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class CatalogFile(BaseModel):
    """A table file used as a catalogue, imported on first use (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="Path of the file (CSV, FITS, Parquet, VOTable), relative to the working folder.")
    ra: str = Field(description="Column of the right ascension (ICRS, degrees).")
    dec: str = Field(description="Column of the declination (ICRS, degrees).")
    id: str | None = Field(None, description="Column of the source id; default: the row number.")
    keep: list[str] = Field(default_factory=list, description="Columns kept beside id, ra and dec.")
    format: str | None = Field(None, description="astropy.table format, e.g. 'ascii.csv'; default: from the name.")


CatalogSpec = str | CatalogFile


def catalog_name(spec: CatalogSpec) -> str:
    """The name a unit reports a catalogue by when none is configured: the file's stem, the
    ``catalog=`` of a PostgreSQL location, the database of an extcats one, else the last path part."""
    if isinstance(spec, CatalogFile):
        return Path(spec.file).stem
    scheme, separator, rest = spec.partition("://")
    if separator and scheme.partition("+")[0] in _REMOTE:
        query = dict(part.partition("=")[::2] for part in rest.partition("?")[2].split("&") if part)
        return query.get("catalog") or rest.partition("?")[0].rstrip("/").rpartition("/")[2] or spec
    return Path(rest if separator else spec).name


def catalog_resource(spec: CatalogSpec) -> Path | None:
    """The file whose content identifies the catalogue (see the module docstring), or None for
    PostgreSQL and extcats. CatalogError when a local catalogue or file is missing."""
    if isinstance(spec, CatalogFile):
        path = Path(spec.file)
        if not path.is_file():
            raise CatalogError(f"catalogue file {spec.file} not found (working folder: {Path.cwd()})")
        return path
    if spec.partition("://")[0].partition("+")[0] in _REMOTE:
        return None
    from ampel_catalogs.local import LocalCatalog

    opened = _open_location(spec)
    assert isinstance(opened, LocalCatalog)
    return opened.path


def open_spec(spec: CatalogSpec) -> Catalog:
    """Open the catalogue, importing a `CatalogFile` into the cache first if needed."""
    if isinstance(spec, CatalogFile):
        from ampel_catalogs.local import LocalBackend

        root, name = import_file(spec)
        return LocalBackend(root).open(name)
    return _open_location(spec)


def _open_location(location: str) -> Catalog:
    from ampel_catalogs.locations import open_catalog

    return open_catalog(location)


def import_file(spec: CatalogFile, root: str | Path | None = None) -> tuple[Path, str]:
    """(cache folder, catalogue name) of the file's import, made now unless it exists. Safe when
    several workers do it at once: each writes a temporary folder and renames it into place."""
    from ampel_core.provenance import digest, file_digest

    from ampel_catalogs.local import LocalBackend, default_root

    path = Path(spec.file)
    if not path.is_file():
        raise CatalogError(f"catalogue file {spec.file} not found (working folder: {Path.cwd()})")
    sha256 = file_digest(path)
    key = digest({"sha256": sha256, **spec.model_dump(exclude={"file"})})
    name = f"{_UNSAFE.sub('_', path.stem).strip('_.-') or 'catalog'}-{key}"
    cache = Path(root) if root is not None else default_root() / ".imported"
    if (cache / name / "info.json").is_file():
        return cache, name
    table = _read(spec, path)
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".importing-", dir=cache))
    try:
        LocalBackend(scratch).create(name, table, origin=str(path), origin_sha256=sha256)
        try:
            os.replace(scratch / name, cache / name)
        except OSError:
            if not (cache / name / "info.json").is_file():  # not another worker's finished import
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return cache, name


def _read(spec: CatalogFile, path: Path) -> Table:
    """The file as a table of id, ra, dec and the kept columns; rows without a valid position left out."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    import warnings

    try:
        with warnings.catch_warnings():  # e.g. "no table::len::<column> found in metadata" of Parquet files
            warnings.simplefilter("ignore")
            source = Table.read(path, format=spec.format) if spec.format else Table.read(path)
    except Exception as error:  # astropy raises many kinds; the user needs the file and the reason
        raise CatalogError(f"catalogue file {spec.file}: cannot read it ({error}); set `format` "
                           "(an astropy.table format) or convert it with `ampel catalog import`") from None
    wanted = [spec.ra, spec.dec, *([spec.id] if spec.id else []), *spec.keep]
    missing = [c for c in wanted if c not in source.colnames]
    if missing:
        raise CatalogError(f"catalogue file {spec.file} has no column {', '.join(missing)} "
                           f"(it has {', '.join(source.colnames)})")
    ra = np.asarray(source[spec.ra].filled(np.nan) if isinstance(source[spec.ra], MaskedColumn) else source[spec.ra],
                    dtype=float)
    dec = np.asarray(source[spec.dec].filled(np.nan) if isinstance(source[spec.dec], MaskedColumn) else source[spec.dec],
                     dtype=float)
    ids = np.asarray(source[spec.id]).astype(str) if spec.id else np.arange(len(source)).astype(str)
    table = Table({"id": ids, "ra": ra, "dec": dec})
    for column in spec.keep:
        values = source[column]
        table[column] = values.filled(np.nan) if isinstance(values, MaskedColumn) and values.dtype.kind == "f" else values
    return table[np.isfinite(ra) & np.isfinite(dec)]
