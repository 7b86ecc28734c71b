"""Catalogues in extcats' MongoDB layout fulfil the catalogue contract, for both of extcats' indexes
(HEALPix ids and GeoJSON 2dsphere), and move into the local backend with `export_table`.

They need a real MongoDB server: ``$AMPEL_TEST_MONGO`` (``mongodb://host:port``). None can be
installed on AMPEL's development machines, so there these tests skip, saying so."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_catalogs.catalog import Catalog, CatalogError
from ampel_catalogs.contract import CatalogContract, MakeCatalog, random_sky
from ampel_catalogs.local import LocalBackend
from ampel_catalogs.locations import open_catalog

MONGO = os.environ.get("AMPEL_TEST_MONGO", "")
needs_mongo = pytest.mark.skipif(not MONGO, reason="no MongoDB server: set AMPEL_TEST_MONGO=mongodb://host:port to "
                                                    "test the extcats backend (none can be installed on this machine)")
HEALPIX_ORDER = 16


@pytest.fixture
def mongo() -> Iterator[tuple[Any, list[str]]]:
    """A client and the list of databases to drop afterwards."""
    import pymongo

    client: Any = pymongo.MongoClient(MONGO, serverSelectionTimeoutMS=5000)
    databases: list[str] = []
    yield client, databases
    for name in databases:
        client.drop_database(name)
    client.close()


def push_extcats(client: Any, database: str, table: Table, index: str) -> None:
    """Store ``table`` as extcats' CatalogPusher does: source documents with ra/dec, the HEALPix id
    (order 16, nested) and a GeoJSON point, one of the two indexed, and the meta collection."""
    import pymongo
    from astropy_healpix import HEALPix

    ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
    pixels = HEALPix(nside=2**HEALPIX_ORDER, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    folded = np.where(ra > 180, ra - 360, ra)
    kept = [c for c in table.colnames if c not in ("id", "ra", "dec")]
    documents = [{"id": str(table["id"][i]), "ra": float(ra[i]), "dec": float(dec[i]),
                  **{c: table[c][i].item() for c in kept}, "hpxid_16": int(pixels[i]),
                  "pos": {"type": "Point", "coordinates": [float(folded[i]), float(dec[i])]}} for i in range(len(table))]
    db = client[database]
    db["srcs"].insert_many(documents)
    db["meta"].insert_one({"_id": "hpxid_16", "key": "hpxid_16", "type": "healpix", "order": HEALPIX_ORDER,
                           "nest": True, "is_indexed": index == "healpix"})
    db["meta"].insert_one({"_id": "pos", "key": "pos", "type": "sphere2d", "pos_format": "geoJSON",
                           "is_indexed": index == "sphere2d"})
    db["meta"].insert_one({"_id": "science", "contact": "AMPEL tests", "email": "", "description": "random sky",
                           "ref": ""})
    db["srcs"].create_index("hpxid_16" if index == "healpix" else [("pos", pymongo.GEOSPHERE)])


def location(database: str, **parameters: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"id": "id", **parameters}.items())
    return f"extcats://{urlsplit(MONGO).netloc}/{database}?{query}"


@needs_mongo
class ExtcatsContract(CatalogContract):
    index = "healpix"

    @pytest.fixture
    def make_catalog(self, mongo: tuple[Any, list[str]]) -> Iterator[MakeCatalog]:
        client, databases = mongo
        opened: list[Catalog] = []

        def make(name: str, table: Table) -> Catalog:
            database = f"ampel_test_{secrets.token_hex(4)}_{name}"
            databases.append(database)
            push_extcats(client, database, table, self.index)
            opened.append(open_catalog(location(database)))
            return opened[-1]

        yield make
        for catalog in opened:
            catalog.close()


class TestExtcatsHealpix(ExtcatsContract):
    index = "healpix"


class TestExtcatsSphere2d(ExtcatsContract):
    index = "sphere2d"


@needs_mongo
def test_export_into_the_local_backend(mongo: tuple[Any, list[str]], tmp_path: Path) -> None:
    from ampel_catalogs.extcats import export_table

    client, databases = mongo
    database = f"ampel_test_{secrets.token_hex(4)}_export"
    databases.append(database)
    table = random_sky(np.random.default_rng(7), 200)
    push_extcats(client, database, table, "healpix")
    exported = export_table(location(database))
    assert sorted(exported["id"]) == sorted(table["id"]) and set(exported.colnames) == set(table.colnames)
    LocalBackend(tmp_path).create("moved", exported, origin=location(database))
    local, extcats = LocalBackend(tmp_path).open("moved"), open_catalog(location(database))
    ra, dec = np.asarray(table["ra"]) + 1e-4, np.asarray(table["dec"])
    for mode in ("nearest", "all"):
        a, b = local.match(ra % 360, dec, 30.0, mode), extcats.match(ra % 360, dec, 30.0, mode)
        assert list(a["input"]) == list(b["input"]) and list(a["id"]) == list(b["id"])
    extcats.close()
    with pytest.raises(CatalogError, match="no database"):
        open_catalog(location(f"ampel_test_{secrets.token_hex(4)}_missing"))
    with pytest.raises(CatalogError, match="unknown parameter"):
        open_catalog(location(database, colour="red"))


@settings(max_examples=200, deadline=None)
@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-90, 90), radius=st.floats(0.1, 36000.0),
       seed=st.integers(0, 2**32 - 1))
def test_healpix_candidates_cover_the_circle(ra: float, dec: float, radius: float, seed: int) -> None:
    """The HEALPix ids asked of MongoDB include those of every position within the radius (the
    query's two forms, ``$in`` and ``$or`` of ranges, evaluated here as MongoDB does)."""
    from astropy.coordinates import SkyCoord
    from astropy_healpix import HEALPix

    from ampel_catalogs.extcats import _healpix_filter

    rng = np.random.default_rng(seed)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    inside = centre.directional_offset_by(rng.uniform(0, 360, 500) * u.deg,
                                          radius * np.sqrt(rng.uniform(0, 1, 500)) * u.arcsec)
    inside = inside[centre.separation(inside).arcsec <= radius]
    pixels = HEALPix(nside=2**HEALPIX_ORDER, order="nested").lonlat_to_healpix(inside.ra, inside.dec)
    query = _healpix_filter({"key": "hpxid_16", "order": HEALPIX_ORDER, "nest": True}, ra, dec, radius / 3600, "test")
    if "$in" in query.get("hpxid_16", {}):
        assert set(pixels.tolist()) <= set(query["hpxid_16"]["$in"])
    else:
        ranges = np.array([[r["hpxid_16"]["$gte"], r["hpxid_16"]["$lt"]] for r in query["$or"]])
        assert len(ranges) <= 64, "too many ranges for one query"
        covered = ((pixels[:, None] >= ranges[:, 0]) & (pixels[:, None] < ranges[:, 1])).any(axis=1)
        assert covered.all()
