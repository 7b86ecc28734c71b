"""The local backend fulfils the catalogue contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from ampel_catalogs.catalog import Catalog
from ampel_catalogs.contract import CatalogContract, MakeCatalog
from ampel_catalogs.local import LocalBackend


class TestLocalCatalog(CatalogContract):
    @pytest.fixture
    def make_catalog(self, tmp_path: Path) -> MakeCatalog:
        backend = LocalBackend(tmp_path)

        def make(name: str, table: Table) -> Catalog:
            backend.create(name, table)
            return backend.open(name)

        return make
