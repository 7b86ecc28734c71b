"""The production store: PostgreSQL through psycopg 3.

URLs: ``postgresql://user:password@host:port/database`` (also ``postgres://`` and
``postgresql+psycopg://``); any libpq parameter may follow as a query string, e.g.
``?options=-csearch_path%3Dmy_schema`` to keep a store in its own schema.

Many worker processes on many hosts share one database:

- T2 tickets are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` plus a lease, so concurrent
  claimers never wait for each other and never get the same ticket; a ticket whose lease ran out
  (its worker died) is claimable again.
- Immutable tables (`ampel_core.sql_schema.IMMUTABLE_TABLES`) refuse UPDATE, DELETE and TRUNCATE in a
  trigger.
- The schema is created, versioned and upgraded by `ampel_core.sql_store.SqlStore` (one policy for
  every SQL backend: older stores are upgraded by `ampel_core.sql_schema.MIGRATIONS`, newer ones
  refused); here under an advisory lock, so concurrent openers create or upgrade it once.

Lease times are compared with each host's clock: keep the worker hosts' clocks in sync (NTP).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo

from ampel_core.sql_schema import IMMUTABLE_TABLES, TABLES
from ampel_core.sql_store import SqlStore
from ampel_core.store import IngestBatch, StoreError

__all__ = ["PostgresStore", "connection_string", "open_store", "redacted"]

_REFUSE_CHANGE = """
CREATE OR REPLACE FUNCTION ampel_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END $$"""


def _not_the_aborted_pipeline(record: logging.LogRecord) -> bool:
    """False for psycopg's warning that a pipeline could not end because an earlier statement
    failed: that statement's error is raised anyway (e.g. the unique violation `PostgresStore.ingest`
    answers by writing the batch again), and the warning would only repeat it."""
    return not (record.msg == "error ignored terminating %r: %s" and isinstance(record.args, tuple)
                and isinstance(record.args[-1], psycopg.errors.PipelineAborted))


logging.getLogger("psycopg").addFilter(_not_the_aborted_pipeline)


def connection_string(url: str) -> str:
    """The libpq connection URI for a store URL (``postgresql+psycopg://`` and ``postgres://``
    become ``postgresql://``)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.partition("+")[0] not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL store URL: {url!r} (expected postgresql://user@host:port/database)")
    return f"postgresql://{rest}"


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        parts = conninfo.conninfo_to_dict(connection_string(url))
    except (psycopg.ProgrammingError, StoreError):
        return "<unparsable URL>"
    if "password" in parts:
        parts["password"] = "***"
    return conninfo.make_conninfo("", **{k: v for k, v in parts.items() if v is not None})


class PostgresStore(SqlStore):
    placeholder = "%s"
    claim_lock = " FOR UPDATE SKIP LOCKED"  # concurrent claimers skip the rows another one is taking
    insert_chunk = 2000  # rows per INSERT of `insert_rows`
    write_behind = True  # T0 decodes the next batch while the server writes this one (ampel_core.runtime.t0)

    def connect(self) -> psycopg.Connection[Any]:
        self._types: dict[str, dict[str, str]] = {}  # table -> column -> SQL type, for insert_rows
        dsn = connection_string(self.url)
        given = conninfo.conninfo_to_dict(dsn)
        defaults = {key: value for key, value in (("application_name", "ampel"), ("connect_timeout", "10"))
                    if key not in given}
        if self.read_only:  # the server refuses every write of this session
            defaults["options"] = f"{given.get('options') or ''} -c default_transaction_read_only=on".strip()
        try:
            # autocommit: a single statement is its own transaction (one round trip, no BEGIN/COMMIT);
            # `transaction` wraps the multi-statement writes
            return psycopg.connect(conninfo.make_conninfo(dsn, **defaults), autocommit=True)
        except psycopg.OperationalError as error:
            raise StoreError(f"cannot connect to the PostgreSQL store {redacted(self.url)}: {error}".strip()) from None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            yield cursor

    def insert_rows(self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    conflict: str = "ON CONFLICT DO NOTHING") -> None:
        """One statement for all ``rows``: each column goes to the server as one array parameter
        and ``unnest`` turns the arrays back into rows, in their order. A row per statement
        (``executemany``, even pipelined) made the client's Python cost per row (binding, the
        pipeline's bookkeeping) most of a T0 batch's time; see docs/t0-performance.md."""
        if not rows:
            return
        types = self._column_types(cursor, table)
        arrays = ", ".join(f"%b::{types[column]}[]" for column in columns)  # binary: no text escaping
        statement = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {conflict}"
        # in chunks, pipelined (`ingest`): the server inserts one chunk while the next is encoded
        for start in range(0, len(rows), self.insert_chunk):
            cursor.execute(statement, [list(values) for values in zip(*rows[start:start + self.insert_chunk], strict=True)])

    def ingest(self, batch: IngestBatch, new_datapoints: bool = True) -> None:
        """`SqlStore.ingest` with its statements pipelined: sent without waiting for each result
        (errors still roll the whole batch back). The datapoint rows, most rows of a batch, go in
        as new rows (``new_datapoints``): ``ON CONFLICT DO NOTHING`` is a speculative insertion,
        which doubles the server's work per row (docs/t0-performance.md). Should another writer
        have stored some of them since the batch began (a unique violation: nothing of the batch
        is committed), the batch is written again with the conflict clause."""
        with self.conn.pipeline():
            try:
                super().ingest(batch, new_datapoints)
            except psycopg.errors.UniqueViolation:  # rolled back
                if not new_datapoints:
                    raise
                super().ingest(batch, False)

    def _column_types(self, cursor: Any, table: str) -> dict[str, str]:
        """The SQL type of each column of ``table`` (read from the catalogue once per table)."""
        found = self._types.get(table)
        if found is None:
            cursor.execute("SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a WHERE a.attrelid = "
                           "%s::regclass AND a.attnum > 0 AND NOT a.attisdropped", (table,))
            found = self._types[table] = dict(cursor.fetchall())
        return found

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement, atomic on its own."""
        with self.conn.cursor() as cursor:
            cursor.execute(self.sql(query), params)
            return list(cursor.fetchall()) if cursor.description else []

    def dialect(self, statement: str) -> str:
        return statement.format(serial="BIGSERIAL PRIMARY KEY", blob="BYTEA")

    def tables(self, cursor: Any) -> set[str]:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {row[0] for row in cursor.fetchall()}

    def lock_schema(self, cursor: Any) -> None:
        # one opener at a time per schema creates or upgrades; the others then find it done
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('ampel-schema:' || current_schema()))")

    def label(self) -> str:
        return redacted(self.url)

    def schema_statements(self) -> list[str]:
        statements = [s.strip() for s in self.dialect(TABLES).split(";") if s.strip()]
        statements.append(_REFUSE_CHANGE)
        # alert blobs (cutouts) come compressed (gzipped FITS): stored out of line as they are, the
        # server no longer tries (and fails) to compress each one (docs/t0-performance.md)
        statements.append("ALTER TABLE alert_blobs ALTER COLUMN data SET STORAGE EXTERNAL")
        for table in IMMUTABLE_TABLES:
            statements += [
                f"CREATE OR REPLACE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ampel_refuse_change()",
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ampel_refuse_change()",
            ]
        return statements


def open_store(url: str, read_only: bool = False) -> PostgresStore:
    return PostgresStore(url, read_only)
