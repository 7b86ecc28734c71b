"""The PostgreSQL backend: large catalogues in PostgreSQL with the q3c extension, with the same
API and the same answers as the local backend (the contract suite, `ampel_catalogs.contract`,
shows it).

A catalogue NAME is the table ``catalog_NAME`` (columns ``id`` text, ``ra``, ``dec`` double
precision, then the kept columns) in the connection's schema, bulk-loaded with COPY, indexed on
``q3c_ang2ipix(ra, dec)``, clustered on that index and analysed. Its `CatalogInfo` is a row of the
table ``ampel_catalogs`` beside it; the digest is the sha256 of the content loaded (the column names
and types, then the rows as CSV, in the order given).

Matching sends all positions in one statement (``unnest`` of two arrays) and joins them with
``q3c_join``; q3c selects the candidates (with a radius a little larger than asked), and the
separations are then computed exactly in Python (`astropy.coordinates.angular_separation`, as
Vincenty's formula) from the sources' coordinates, so that a source on the radius is in or out as
in the local backend. ``nearest`` and ``any`` take the nearest per input with ``DISTINCT ON``.

Locations: ``postgresql://user@host:port/database?catalog=NAME`` (`open_postgres_catalog`); the
``catalog`` parameter is removed before connecting, any other (``options=-csearch_path=...``) kept.
The server needs q3c: ``apt-get install postgresql-15-q3c`` (or ``postgresql-$VERSION-q3c``), then
``CREATE EXTENSION q3c`` in the database.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql

from ampel_catalogs.catalog import MATCH_COLUMNS, CatalogError, CatalogInfo, Mode, checked_query

if TYPE_CHECKING:
    import numpy.typing as npt
    from astropy.table import Table

__all__ = ["METADATA_TABLE", "PostgresCatalog", "PostgresCatalogBackend", "open_postgres_catalog", "table_name"]

METADATA_TABLE = "ampel_catalogs"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DTYPES = {"double precision": np.float64, "real": np.float32, "bigint": np.int64, "boolean": np.bool_, "text": np.str_}
_PADDING = 1e-8  # relative: q3c's candidates reach this much beyond the radius; the exact test follows


def table_name(name: str) -> str:
    """The table that holds the catalogue ``name``."""
    return f"catalog_{name}"


class PostgresCatalogBackend:
    """Catalogues in the PostgreSQL database at ``url`` (a libpq URL; its search_path, if it sets
    one, is the schema of the catalogues)."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            conn = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as error:
            raise CatalogError(f"cannot connect to PostgreSQL at {_redacted(self.url)}: {' '.join(str(error).split())}") from None
        # q3c's row estimates are pessimistic; PostgreSQL would JIT-compile every match (200 ms each)
        conn.execute("SET jit = off")
        conn.commit()
        return conn

    def create(self, name: str, table: Table, origin: str = "", origin_sha256: str = "") -> CatalogInfo:
        """Store ``table`` (columns ``id``, ``ra``, ``dec`` in degrees, then the kept columns: numbers,
        booleans or strings; masked values become NULL) as the catalogue ``name``, replacing one of
        that name, in one transaction; its info."""
        if not _NAME.fullmatch(name):
            raise CatalogError(f"catalogue name {name!r}: use up to 48 letters, digits, '_', '.' and '-'")
        missing = [c for c in ("id", "ra", "dec") if c not in table.colnames]
        if missing:
            raise CatalogError(f"catalogue {name}: the table has no column {', '.join(missing)}")
        kept = [c for c in table.colnames if c not in ("id", "ra", "dec")]
        bad_names = [c for c in kept if not _COLUMN.fullmatch(c)]
        if bad_names:
            raise CatalogError(f"catalogue {name}: column names {', '.join(map(repr, bad_names))} are not usable in "
                               "PostgreSQL; rename them to letters, digits and '_'")
        ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
        bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90))
        if bad.any():
            raise CatalogError(f"catalogue {name}: {int(bad.sum())} rows have no valid position (first: row "
                               f"{int(np.flatnonzero(bad)[0])}); drop them before importing")
        types = ["text", "double precision", "double precision", *(_sql_type(name, table[c]) for c in kept)]
        content = _csv(table, ["id", "ra", "dec", *kept])
        digest = hashlib.sha256(repr(list(zip(["id", "ra", "dec", *kept], types, strict=True))).encode())
        digest.update(content)
        info = CatalogInfo(name, self.name, len(table), tuple(kept), origin, origin_sha256, digest.hexdigest(),
                           {"table": table_name(name)})
        target = sql.Identifier(table_name(name))
        with self.connect() as conn:
            q3c = _q3c_schema(conn)
            _ensure_metadata_table(conn)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind))
                for column, kind in zip(["id", "ra", "dec", *kept], types, strict=True))))
            with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target)) as copy:
                for start in range(0, len(content), 1 << 24):
                    copy.write(content[start:start + (1 << 24)])
            index = sql.Identifier(f"{table_name(name)}_q3c")
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({}.q3c_ang2ipix(ra, dec))").format(index, target, q3c))
            conn.execute(sql.SQL("CLUSTER {} USING {}").format(target, index))
            conn.execute(sql.SQL("ANALYZE {}").format(target))
            conn.execute(sql.SQL(
                "INSERT INTO {} (name, rows, columns, column_types, origin, origin_sha256, digest) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET rows = excluded.rows, "
                "columns = excluded.columns, column_types = excluded.column_types, origin = excluded.origin, "
                "origin_sha256 = excluded.origin_sha256, digest = excluded.digest, created = now()").format(
                sql.Identifier(METADATA_TABLE)),
                (name, len(table), kept, types[3:], origin, origin_sha256, info.digest))
        return info

    def open(self, name: str) -> PostgresCatalog:
        """The catalogue ``name``, with a connection of its own (close it)."""
        conn = self.connect()
        try:
            found = self._infos(conn, name)
            if not found:
                known = ", ".join(info.name for info, _ in self._infos(conn)) or "none"
                raise CatalogError(f"no catalogue {name!r} in PostgreSQL at {_redacted(self.url)} (catalogues "
                                   f"there: {known}); import one with PostgresCatalogBackend.create")
            info, types = found[0]
            q3c = _q3c_schema(conn)
            conn.commit()
            conn.autocommit = True  # reads only: no transaction to end after each match
            return PostgresCatalog(conn, info, types, q3c)
        except BaseException:
            conn.close()
            raise

    def list(self) -> list[CatalogInfo]:
        with self.connect() as conn:
            return [info for info, _ in self._infos(conn)]

    def _infos(self, conn: psycopg.Connection[Any],
               name: str | None = None) -> builtins.list[tuple[CatalogInfo, tuple[str, ...]]]:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (METADATA_TABLE,)).fetchone()
        if not (exists and exists[0]):
            return []
        rows = conn.execute(sql.SQL(
            "SELECT name, rows, columns, column_types, origin, origin_sha256, digest FROM {} "
            "WHERE %(name)s::text IS NULL OR name = %(name)s ORDER BY name").format(sql.Identifier(METADATA_TABLE)),
            {"name": name}).fetchall()
        return [(CatalogInfo(row[0], self.name, row[1], tuple(row[2]), row[4], row[5], row[6],
                             {"table": table_name(row[0])}), tuple(row[3])) for row in rows]


class PostgresCatalog:
    """An opened PostgreSQL catalogue; it holds one connection until `close`."""

    def __init__(self, conn: psycopg.Connection[Any], info: CatalogInfo, column_types: tuple[str, ...],
                 q3c: sql.Identifier) -> None:
        self.info = info
        self._conn = conn
        self._types = dict(zip(info.columns, column_types, strict=True))
        self._q3c = q3c

    def match(self, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: Mode = "nearest",
              columns: tuple[str, ...] | None = None) -> Table:
        """See `ampel_catalogs.catalog.Catalog.match`; all positions go in one statement."""
        from astropy.coordinates import angular_separation
        from astropy.table import MaskedColumn, Table

        ra_in, dec_in, kept = checked_query(self.info, ra, dec, radius, mode, columns)
        names = {"kept": sql.SQL("").join(sql.SQL(", c.{}").format(sql.Identifier(column)) for column in kept),
                 "table": sql.Identifier(self.info.extra.get("table", table_name(self.info.name))), "q3c": self._q3c}
        if len(ra_in) == 1:  # an alert: the plain query plans in a tenth of the time of the join
            query = sql.SQL(
                "SELECT 0, c.id, c.ra, c.dec{kept} FROM {table} AS c "
                "WHERE {q3c}.q3c_join(%(ra)s::float8, %(dec)s::float8, c.ra, c.dec, %(radius)s::float8) "
                "ORDER BY {q3c}.q3c_dist(%(ra)s::float8, %(dec)s::float8, c.ra, c.dec)").format(**names)
            if mode != "all":
                query += sql.SQL(" LIMIT 1")
            positions: dict[str, Any] = {"ra": float(np.mod(ra_in[0], 360)), "dec": float(dec_in[0])}
        else:
            query = sql.SQL(
                "SELECT {distinct} q.i - 1, c.id, c.ra, c.dec{kept} "
                "FROM unnest(%(ra)b::float8[], %(dec)b::float8[]) WITH ORDINALITY AS q(ra, dec, i) "
                "JOIN {table} AS c ON {q3c}.q3c_join(q.ra, q.dec, c.ra, c.dec, %(radius)s) "
                "ORDER BY q.i, {q3c}.q3c_dist(q.ra, q.dec, c.ra, c.dec)").format(
                distinct=sql.SQL("" if mode == "all" else "DISTINCT ON (q.i)"), **names)
            positions = {"ra": np.mod(ra_in, 360).tolist(), "dec": dec_in.tolist()}
        degrees = min(radius / 3600 * (1 + _PADDING), 180.0)
        try:
            # never prepared: a generic plan does not know how few positions come, and scans the table
            rows = self._conn.execute(query, {**positions, "radius": degrees}, prepare=False).fetchall() \
                if len(ra_in) else []
        except psycopg.Error as error:
            raise CatalogError(f"catalogue {self.info.name}: matching in PostgreSQL failed: {str(error).strip()}") from None
        values: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * (4 + len(kept))
        inputs = np.asarray(values[0], dtype=np.int64)
        source_ra, source_dec = np.asarray(values[2], dtype=float), np.asarray(values[3], dtype=float)
        separations = np.degrees(angular_separation(*np.radians(
            [source_ra, source_dec, ra_in[inputs], dec_in[inputs]]))) * 3600 if len(inputs) else np.zeros(0)
        inside = separations <= radius
        order = np.lexsort((separations[inside], inputs[inside]))
        chosen = np.flatnonzero(inside)[order]
        result = Table({"input": inputs[chosen], "id": np.asarray(values[1], dtype=str)[chosen],
                        "ra": source_ra[chosen], "dec": source_dec[chosen], "separation": separations[chosen]})
        for position, column in enumerate(kept, start=4):
            data = np.asarray(values[position], dtype=object)[chosen]
            missing = np.array([value is None for value in data], dtype=bool)
            dtype = _DTYPES.get(self._types[column], np.object_)
            if missing.any():
                filled = np.where(missing, "" if dtype is np.str_ else 0, data)
                result[column] = MaskedColumn(np.asarray(filled.tolist(), dtype=dtype), mask=missing)
            else:
                result[column] = np.asarray(data.tolist(), dtype=dtype)
        assert tuple(result.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        return result

    def close(self) -> None:
        self._conn.close()


def open_postgres_catalog(location: str) -> PostgresCatalog:
    """Open ``postgresql://user@host:port/database?catalog=NAME`` (other query parameters are passed
    to libpq)."""
    parts = urlsplit(location)
    parameters = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in parameters if key == "catalog"]
    if len(names) != 1 or not names[0]:
        raise CatalogError(f"catalogue location {_redacted(location)!r}: name the catalogue once, as in "
                           "postgresql://user@host:port/database?catalog=NAME")
    url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in parameters if k != "catalog"])))
    return PostgresCatalogBackend(url).open(names[0])


def _sql_type(name: str, column: Any) -> str:
    kind, size = column.dtype.kind, column.dtype.itemsize
    if kind == "f":
        return "real" if size == 4 else "double precision"
    if kind in "iu":
        return "bigint"
    if kind == "b":
        return "boolean"
    if kind in "USO":
        return "text"
    raise CatalogError(f"catalogue {name}: column {column.name!r} has type {column.dtype}, which PostgreSQL "
                       "catalogues cannot keep; use numbers, booleans or strings")


def _csv(table: Table, columns: list[str]) -> bytes:
    """The rows as CSV (no header), masked values empty (NULL for COPY), floats as their shortest
    round-tripping representation."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.csv  # type: ignore[import-untyped]

    arrays = {}
    for column in columns:
        data = table[column]
        mask = np.asarray(getattr(data, "mask", np.zeros(len(data), dtype=bool)), dtype=bool)
        values = np.asarray(data).astype(str) if column == "id" or data.dtype.kind in "SO" else np.asarray(data)
        arrays[column] = pa.array(values, mask=mask if mask.any() else None)
    buffer = io.BytesIO()
    pyarrow.csv.write_csv(pa.table(arrays), buffer, pyarrow.csv.WriteOptions(include_header=False))
    return buffer.getvalue()


def _q3c_schema(conn: psycopg.Connection[Any]) -> sql.Identifier:
    """The schema of q3c's functions, added to the connection's search_path (q3c's SQL functions call
    each other unqualified, so a search_path of another schema alone would break them)."""
    row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                       "WHERE e.extname = 'q3c'").fetchone()
    if row is None:
        conn.rollback()
        raise CatalogError("PostgreSQL has no q3c extension in this database: install it on the server "
                           "(Debian: apt-get install postgresql-$VERSION-q3c) and run CREATE EXTENSION q3c")
    conn.execute("SELECT set_config('search_path', current_setting('search_path') || ', ' || quote_ident(%s), false)",
                 (row[0],))
    return sql.Identifier(row[0])


def _ensure_metadata_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, rows bigint NOT NULL, columns text[] NOT NULL, "
        "column_types text[] NOT NULL, origin text NOT NULL, origin_sha256 text NOT NULL, digest text NOT NULL, "
        "created timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(METADATA_TABLE)))


def _redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)
