"""Where a catalogue is: one string, as units, commands and jobs name it.

- ``NAME``: the local catalogue NAME under ``$AMPEL_CATALOGS`` (default ``./catalogs``);
- ``path/to/folder/NAME`` or ``local:///abs/folder/NAME``: a local catalogue folder (holding
  ``info.json`` and ``catalog.parquet``);
- ``postgresql://user@host:port/database?catalog=NAME``: a catalogue in PostgreSQL with q3c
  (`ampel_catalogs.postgres`);
- ``extcats://host:port/DATABASE``: a catalogue in extcats' MongoDB layout (`ampel_catalogs.extcats`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ampel_catalogs.catalog import Catalog, CatalogError

__all__ = ["open_catalog"]


def open_catalog(location: str) -> Catalog:
    """Open the catalogue at ``location`` (see the module docstring); CatalogError names what is
    missing and how to get it."""
    scheme, separator, rest = location.partition("://")
    backend = {"postgresql": "postgres", "postgres": "postgres", "extcats": "extcats"}.get(scheme.partition("+")[0])
    if separator and backend:
        try:
            module = importlib.import_module(f"ampel_catalogs.{backend}")
        except ImportError as error:
            raise CatalogError(f"catalogue location {location!r}: the {backend} backend cannot be loaded ({error}); "
                               f"pip install 'ampel-plugin-catalogs[{backend}]'") from None
        opened: Catalog = getattr(module, f"open_{backend}_catalog")(location)
        return opened
    from ampel_catalogs.local import LocalBackend

    if separator and scheme == "local":
        location = rest
    elif separator:
        raise CatalogError(f"catalogue location {location!r}: unknown scheme {scheme!r} (use a name, a folder, "
                           "local://, postgresql:// or extcats://)")
    path = Path(location)
    if len(path.parts) > 1 or path.is_absolute():
        return LocalBackend(path.parent).open(path.name)
    return LocalBackend().open(location)
