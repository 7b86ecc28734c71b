"""The PostgreSQL q3c backend fulfils the catalogue contract, and what only it has: locations,
replacing a catalogue, the catalogue list and a clear error without q3c.

The server is the one `ampel_postgres.testing` finds (127.0.0.1:5432 or ``$AMPEL_TEST_POSTGRES``);
the embedded PostgreSQL it falls back to has no q3c, so these tests then skip with the reason, and
fail under CI, which installs q3c (.ci/run)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest
from astropy.table import MaskedColumn, Table

from ampel_catalogs.catalog import Catalog, CatalogError
from ampel_catalogs.contract import CatalogContract, MakeCatalog, random_sky
from ampel_catalogs.locations import open_catalog
from ampel_catalogs.postgres import PostgresCatalogBackend, open_postgres_catalog
from ampel_postgres.testing import postgres_url, scratch_schema

__all__ = ["postgres_url"]  # a fixture, used by the fixtures below


@pytest.fixture
def catalog_url(postgres_url: str) -> Iterator[str]:
    """A scratch schema in a database that has q3c."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        except psycopg.Error as error:
            reason = (f"PostgreSQL at {postgres_url} has no q3c ({str(error).strip()}); install "
                      "postgresql-$VERSION-q3c (.ci/run does) or point AMPEL_TEST_POSTGRES to a server with it")
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    with scratch_schema(postgres_url) as url:
        yield url


class TestPostgresCatalog(CatalogContract):
    @pytest.fixture
    def make_catalog(self, catalog_url: str) -> Iterator[MakeCatalog]:
        backend, opened = PostgresCatalogBackend(catalog_url), []

        def make(name: str, table: Table) -> Catalog:
            backend.create(name, table)
            opened.append(backend.open(name))
            return opened[-1]

        yield make
        for catalog in opened:
            catalog.close()


def test_locations_list_and_replacing(catalog_url: str) -> None:
    backend = PostgresCatalogBackend(catalog_url)
    first = backend.create("sky", random_sky(np.random.default_rng(5), 50), "sky.csv", "ab" * 32)
    again = backend.create("sky", random_sky(np.random.default_rng(5), 50), "sky.csv", "ab" * 32)
    assert first == again and first.rows == 50 and len(first.digest) == 64  # the digest is of the content
    other = backend.create("sky", random_sky(np.random.default_rng(6), 40))
    assert other.digest != first.digest and [i.rows for i in backend.list()] == [40]
    location = f"{catalog_url}&catalog=sky"
    for catalog in (open_postgres_catalog(location), open_catalog(location)):
        assert catalog.info == other
        catalog.close()
    with pytest.raises(CatalogError, match=r"no catalogue 'nosuch'.*sky"):
        open_catalog(f"{catalog_url}&catalog=nosuch")
    with pytest.raises(CatalogError, match=r"\?catalog=NAME"):
        open_catalog(catalog_url)
    with pytest.raises(CatalogError, match="catalogue name"):
        backend.create("no/slash", random_sky(np.random.default_rng(5), 5))
    with pytest.raises(CatalogError, match="no column ra"):
        backend.create("bad", Table({"id": ["a"], "dec": [1.0]}))
    with pytest.raises(CatalogError, match="no valid position"):
        backend.create("bad", Table({"id": ["a"], "ra": [1.0], "dec": [91.0]}))


def test_masked_values_are_nulls(catalog_url: str) -> None:
    backend = PostgresCatalogBackend(catalog_url)
    table = Table({"id": ["a", "b"], "ra": [10.0, 10.001], "dec": [20.0, 20.0],
                   "z": MaskedColumn([0.1, 0.0], mask=[False, True]), "name": MaskedColumn(["x", ""], mask=[True, False])})
    backend.create("masked", table)
    catalog = backend.open("masked")
    matched = catalog.match([10.0, 10.001], [20.0, 20.0], 1.0)
    assert list(matched["id"]) == ["a", "b"] and matched["z"][0] == 0.1 and matched["z"].mask.tolist() == [False, True]
    assert matched["name"].mask.tolist() == [True, False] and matched["name"][1] == ""
    catalog.close()


def test_without_q3c_the_error_says_what_to_install(postgres_url: str) -> None:
    database = f"ampel_test_no_q3c_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    try:
        url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{database}"))
        with pytest.raises(CatalogError, match="CREATE EXTENSION q3c"):
            PostgresCatalogBackend(url).create("sky", random_sky(np.random.default_rng(5), 5))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {database} WITH (FORCE)")
