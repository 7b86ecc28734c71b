"""Catalogues kept in extcats' MongoDB layout (AmpelProject/extcats), read through pymongo.

extcats keeps a catalogue as a database: a collection of sources (``srcs`` by default), one
document per source with its position in degrees (``ra``/``dec``, or the field names the catalogue
uses), and a ``meta`` collection saying how it is indexed:

- ``{"type": "healpix", "key": "hpxid_16", "order": 16, "nest": true, "is_indexed": true}``: each
  document has the HEALPix pixel of its position at that order;
- ``{"type": "sphere2d", "key": "pos", "pos_format": "geoJSON", "is_indexed": true}``: each document
  has a GeoJSON point (RA folded into -180..180) with a ``2dsphere`` index;
- ``{"_id": "science", ...}``: contact, description, reference.

`ExtcatsCatalog.match` asks MongoDB for the candidates around each position (the HEALPix pixels that
cover the circle, from astropy-healpix, as index ranges at a coarser order for large radii; else a
``$geoWithin``/``$centerSphere`` query; else a declination band) and computes the exact
separations in Python, so its answers are those of the other backends.

Locations: ``extcats://[user:password@]host:port/DATABASE`` with optional parameters
``collection`` (default ``srcs``), ``ra``, ``dec`` (the position fields, default ``ra``, ``dec``),
``id`` (the id field, default ``_id``) and ``columns`` (comma-separated kept fields; default every
field of a source document but the position, id and index fields).

Moving a catalogue out of MongoDB: `export_table` reads it whole into an astropy Table, which
`ampel_catalogs.local.LocalBackend.create` or `ampel_catalogs.postgres.PostgresCatalogBackend.create`
stores (see docs/catalogs.md).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from ampel_catalogs.catalog import MATCH_COLUMNS, CatalogError, CatalogInfo, Mode, checked_query

if TYPE_CHECKING:
    import numpy.typing as npt
    from astropy.table import Table

__all__ = ["DEFAULT_COLLECTION", "ExtcatsCatalog", "export_table", "open_extcats_catalog"]

DEFAULT_COLLECTION = "srcs"
_PARAMETERS = ("collection", "ra", "dec", "id", "columns")
_PADDING = 1e-8  # relative: candidates reach this much beyond the radius; the exact test follows


class ExtcatsCatalog:
    """An extcats catalogue: the database ``database`` of the pymongo ``client`` (which it closes
    on `close` when ``owns_client``)."""

    def __init__(self, client: Any, database: str, collection: str = DEFAULT_COLLECTION, ra_key: str = "ra",
                 dec_key: str = "dec", id_key: str = "_id", columns: tuple[str, ...] | None = None,
                 location: str = "", owns_client: bool = False) -> None:
        import pymongo.errors

        self._client, self._owns_client = client, owns_client
        self.ra_key, self.dec_key, self.id_key = ra_key, dec_key, id_key
        where = location or f"extcats database {database!r}"
        try:
            if database not in client.list_database_names():
                raise CatalogError(f"{where}: MongoDB has no database {database!r} (an extcats catalogue is a database)")
            db = client[database]
            names = db.list_collection_names()
            if collection not in names:
                raise CatalogError(f"{where}: the database has no source collection {collection!r} "
                                   f"(it has {', '.join(sorted(names)) or 'none'}); name it with ?collection=")
            if "meta" not in names:
                raise CatalogError(f"{where}: the database has no 'meta' collection, so it is not in extcats' layout")
            self._sources = db[collection]
            meta = list(db["meta"].find())
            sample = self._sources.find_one() or {}
            rows = self._sources.estimated_document_count()
            digest = _digest(db, collection)
        except pymongo.errors.PyMongoError as error:
            raise CatalogError(f"{where}: MongoDB cannot be read: {error}") from None
        healpix = sorted((doc for doc in meta if doc.get("type") == "healpix"),
                         key=lambda doc: (bool(doc.get("is_indexed")), int(doc.get("order", 0))))
        sphere = [doc for doc in meta if doc.get("type") == "sphere2d"]
        self.healpix = healpix[-1] if healpix else None
        self.sphere2d = sphere[0] if sphere else None
        self.method = ("healpix" if self.healpix and self.healpix.get("is_indexed") else
                       "sphere2d" if self.sphere2d and self.sphere2d.get("is_indexed") else
                       "healpix" if self.healpix else "sphere2d" if self.sphere2d else "declination")
        missing = [key for key in (ra_key, dec_key) if sample and key not in sample]
        if missing:
            raise CatalogError(f"{where}: source documents have no field {', '.join(missing)} (fields: "
                               f"{', '.join(sample)}); name the position fields with ?ra=...&dec=...")
        internal = {"_id", ra_key, dec_key, id_key, *(doc.get("key") for doc in [*healpix, *sphere])}
        self._sample = {key: value for key, value in sample.items() if key not in internal}
        kept = tuple(self._sample) if columns is None else columns
        self.info = CatalogInfo(database, "extcats", rows, kept, location or f"extcats:///{database}", "", digest,
                                {"collection": collection, "method": self.method})

    def match(self, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: Mode = "nearest",
              columns: tuple[str, ...] | None = None) -> Table:
        """See `ampel_catalogs.catalog.Catalog.match`; one MongoDB query per position."""
        from astropy.coordinates import angular_separation
        from astropy.table import Table
        import pymongo.errors

        ra_in, dec_in, kept = checked_query(self.info, ra, dec, radius, mode, columns)
        projection = {key: 1 for key in (self.id_key, self.ra_key, self.dec_key, *kept)}
        inputs: list[int] = []
        documents: list[dict[str, Any]] = []
        try:
            for index, (ra_one, dec_one) in enumerate(zip(ra_in.tolist(), dec_in.tolist(), strict=True)):
                found = list(self._sources.find(self._candidates(ra_one, dec_one, radius), projection))
                inputs += [index] * len(found)
                documents += found
        except pymongo.errors.PyMongoError as error:
            raise CatalogError(f"catalogue {self.info.name}: the MongoDB query failed: {error}") from None
        input_index = np.asarray(inputs, dtype=np.int64)
        source_ra = np.asarray([float(doc[self.ra_key]) for doc in documents], dtype=float)
        source_dec = np.asarray([float(doc[self.dec_key]) for doc in documents], dtype=float)
        separations = np.degrees(angular_separation(*np.radians(
            [source_ra, source_dec, ra_in[input_index], dec_in[input_index]]))) * 3600 if documents else np.zeros(0)
        chosen = np.flatnonzero(separations <= radius)
        chosen = chosen[np.lexsort((separations[chosen], input_index[chosen]))]
        if mode != "all" and len(chosen):
            chosen = chosen[np.r_[True, np.diff(input_index[chosen]) > 0]]
        result = Table({"input": input_index[chosen],
                        "id": np.asarray([str(documents[i].get(self.id_key, "")) for i in chosen], dtype=str),
                        "ra": source_ra[chosen], "dec": source_dec[chosen], "separation": separations[chosen]})
        for column in kept:
            result[column] = _column([documents[i].get(column) for i in chosen], self._sample.get(column))
        assert tuple(result.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        return result

    def _candidates(self, ra: float, dec: float, radius: float) -> dict[str, Any]:
        """The MongoDB filter for the sources that may lie within ``radius`` arcsec."""
        degrees = min(radius / 3600 * (1 + _PADDING) + 1e-12, 180.0)
        if self.method == "healpix" and self.healpix:
            return _healpix_filter(self.healpix, ra, dec, degrees, self.info.name)
        if self.method == "sphere2d" and self.sphere2d:
            folded = ra - 360 if ra % 360 > 180 else ra % 360
            return {self.sphere2d["key"]: {"$geoWithin": {"$centerSphere": [[folded, dec], math.radians(degrees)]}}}
        return {self.dec_key: {"$gte": dec - degrees, "$lte": dec + degrees}}

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def open_extcats_catalog(location: str) -> ExtcatsCatalog:
    """Open ``extcats://host:port/DATABASE[?collection=&ra=&dec=&id=&columns=a,b]`` (see the module
    docstring)."""
    import pymongo

    parts = urlsplit(location)
    database = parts.path.strip("/")
    if not (parts.netloc and database):
        raise CatalogError(f"catalogue location {location!r}: use extcats://host:port/DATABASE")
    parameters = dict(parse_qsl(parts.query))
    unknown = sorted(set(parameters) - set(_PARAMETERS))
    if unknown:
        raise CatalogError(f"catalogue location {location!r}: unknown parameter {', '.join(unknown)} "
                           f"(known: {', '.join(_PARAMETERS)})")
    columns = tuple(c for c in parameters["columns"].split(",") if c) if "columns" in parameters else None
    client: Any = pymongo.MongoClient(f"mongodb://{parts.netloc}", serverSelectionTimeoutMS=5000)
    try:
        return ExtcatsCatalog(client, database, parameters.get("collection", DEFAULT_COLLECTION),
                              parameters.get("ra", "ra"), parameters.get("dec", "dec"), parameters.get("id", "_id"),
                              columns, location, owns_client=True)
    except BaseException:
        client.close()
        raise


def export_table(location: str) -> Table:
    """The whole extcats catalogue at ``location`` as a Table (``id`` as a string, ``ra``, ``dec``,
    then the kept columns; missing values masked), ready for ``LocalBackend.create`` or
    ``PostgresCatalogBackend.create``."""
    from astropy.table import Table
    import pymongo.errors

    catalog = open_extcats_catalog(location)
    try:
        projection = {key: 1 for key in (catalog.id_key, catalog.ra_key, catalog.dec_key, *catalog.info.columns)}
        documents = list(catalog._sources.find({}, projection, batch_size=10_000))
    except pymongo.errors.PyMongoError as error:
        raise CatalogError(f"{location}: the MongoDB export failed: {error}") from None
    finally:
        catalog.close()
    table = Table({"id": np.asarray([str(doc.get(catalog.id_key, "")) for doc in documents], dtype=str),
                   "ra": np.asarray([float(doc[catalog.ra_key]) % 360 for doc in documents], dtype=float),
                   "dec": np.asarray([float(doc[catalog.dec_key]) for doc in documents], dtype=float)})
    for column in catalog.info.columns:
        table[column] = _column([doc.get(column) for doc in documents], catalog._sample.get(column))
    table.meta.update({"origin": location, "digest": catalog.info.digest})
    return table


def _healpix_filter(meta: dict[str, Any], ra: float, dec: float, degrees: float, name: str) -> dict[str, Any]:
    """Pixels of the catalogue's HEALPix grid that cover the circle; for a nested grid and a large
    circle, ranges of pixel ids, the descendants of pixels at a coarser order."""
    import astropy.units as u
    from astropy_healpix import HEALPix

    key, order, nested = meta["key"], int(meta["order"]), bool(meta.get("nest", True))
    level = order
    if nested:  # a coarser order whose pixels are about the circle's radius: a few ranges of ids
        base_pixel = math.degrees(math.sqrt(4 * math.pi / 12))  # the size of an order-0 pixel
        level = min(order, max(0, math.floor(math.log2(base_pixel / max(degrees / 2, 1e-12)))))
    grid = HEALPix(nside=2**level, order="nested" if nested else "ring")
    # cone_search_lonlat can miss a pixel the circle only grazes: widen the circle by two pixel sizes
    widened = min(degrees + 2 * grid.pixel_resolution.to_value(u.deg), 180.0)
    pixels = np.unique(grid.cone_search_lonlat((ra % 360) * u.deg, dec * u.deg, widened * u.deg))
    if not nested and len(pixels) > 100_000:
        raise CatalogError(f"catalogue {name}: a radius of {degrees * 3600:.0f} arcsec covers {len(pixels)} pixels of "
                           "its RING-ordered HEALPix grid; use a smaller radius")
    if level == order:
        return {key: {"$in": pixels.tolist()}}
    shift = 2 * (order - level)
    starts = pixels << shift
    ends = (pixels + 1) << shift
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1  # merge neighbouring ranges
    ranges = zip(starts[np.r_[0, breaks]].tolist(), ends[np.r_[breaks - 1, len(ends) - 1]].tolist(), strict=True)
    return {"$or": [{key: {"$gte": start, "$lt": end}} for start, end in ranges]}


def _column(values: list[Any], sample: Any) -> Any:
    """A column of document values; missing ones (None) masked."""
    from astropy.table import MaskedColumn

    missing = np.array([value is None for value in values], dtype=bool)
    if not values:
        return np.zeros(0) if sample is None else np.asarray([sample])[:0]
    if not missing.any():
        return np.asarray(values)
    present = next(value for value in values if value is not None)
    return MaskedColumn(np.asarray([present if value is None else value for value in values]), mask=missing)


def _digest(db: Any, collection: str) -> str:
    """sha256 of MongoDB's own hash of the source collection (``dbHash``), so that a changed
    catalogue changes the trace ids of the units that match against it."""
    reply = db.command("dbHash", collections=[collection])
    return hashlib.sha256(f"{db.name}/{collection}:{reply['collections'][collection]}".encode()).hexdigest()
