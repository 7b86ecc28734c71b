"""The embedded default store: one SQLite file (``sqlite:///relative/path.db``,
``sqlite:////absolute/path.db``), WAL mode, one transaction per batch. Several processes may share
the file; ticket claims take the write lock (``BEGIN IMMEDIATE``), so each ticket goes to one worker.

Alert blobs (image cutouts: most of an alert's bytes, read rarely) are appended to a pack file
beside the database (``<file>-blobs``; copy it with the database), and ``alert_blob_refs`` records
where each one is. Writing them there instead of into the database's pages halves what a T0 batch
writes (SQLite writes every page twice: to the WAL and at the checkpoint). The bytes are appended
while the batch's transaction holds the write lock (so concurrent writers append one after the
other) and are written before it commits; a batch that rolls back leaves unreferenced bytes at
the end of the pack, which nothing reads. Durability is the database's (``synchronous =
NORMAL``): a committed batch survives a crash of the process; an OS crash or power loss may lose
the last batches, and should it lose cutout bytes whose reference survived, `alert_blobs` says so
instead of returning them. A ``:memory:`` store keeps its blobs in the ``alert_blobs`` table.
"""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ampel_core.sql_schema import IMMUTABLE_TABLES, TABLES
from ampel_core.sql_store import SqlStore
from ampel_core.store import StoreError

__all__ = ["PACK_SUFFIX", "SqliteStore", "open_store", "sqlite_path", "store_files"]

BLOB_REFS = """CREATE TABLE IF NOT EXISTS alert_blob_refs (alert INTEGER NOT NULL, name TEXT NOT NULL,
    position INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (alert, name))"""


PACK_SUFFIX = "-blobs"


def store_files(path: str | Path) -> list[Path]:
    """Every file of the SQLite store at ``path``: the database, its WAL and shared-memory files and
    the pack of alert blobs (to copy or delete a store whole)."""
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", PACK_SUFFIX)]


def sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not a SQLite store URL: {url!r} (expected sqlite:///relative.db or sqlite:////absolute.db)")
    return url.removeprefix("sqlite:///")


class SqliteStore(SqlStore):
    def connect(self) -> sqlite3.Connection:
        try:
            return self._connect(sqlite_path(self.url))
        except (OSError, ValueError, sqlite3.Error) as error:  # a directory, a NUL in the path, no permission
            raise StoreError(f"cannot open the SQLite store {sqlite_path(self.url)!r}: {error}") from None

    def _connect(self, path: str) -> sqlite3.Connection:
        self.pack_path = None if path == ":memory:" else f"{path}{PACK_SUFFIX}"
        self._pack: int | None = None  # its file descriptor, opened on first use
        if self.read_only:
            if not Path(path).is_file():
                raise StoreError(f"no store at {path}: the file does not exist (a SQLite store URL is "
                                 "sqlite:///relative/path.db or sqlite:////absolute/path.db; a bare path works too)")
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None, timeout=60,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA query_only = ON")
            return conn
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        try:  # before the pragmas below, which would change another application's file
            self.refuse_foreign(self.tables(conn.cursor()))
        except StoreError:
            conn.close()
            raise
        conn.execute("PRAGMA page_size = 16384")  # before WAL: fewer pages for ~1 kB datapoint bodies
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint = 16384")  # checkpoint (and fsync) every 256 MiB, not every 1000 pages
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        cursor = self.conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # not when a signal lands just after COMMIT (or before BEGIN took)
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            # a lone SELECT reads its own WAL snapshot without the write lock, so the readers of
            # several worker processes never queue behind (or sleep in the busy handler for) a writer
            if query.lstrip()[:6].upper() == "SELECT":
                cursor = self.conn.execute(self.sql(query), params)
                try:
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            return super().execute(query, params)
        except sqlite3.DatabaseError as error:
            raise _damaged(self.url, error) from None

    def stored_version(self, cursor: Any) -> int:
        try:
            return super().stored_version(cursor)
        except sqlite3.DatabaseError as error:
            raise _damaged(self.url, error) from None

    def close(self) -> None:
        super().close()
        if self._pack is not None:
            os.close(self._pack)
            self._pack = None

    def _pack_fd(self) -> int:
        if self._pack is None:
            assert self.pack_path is not None
            self._pack = os.open(self.pack_path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._pack

    def _store_blobs(self, cursor: Any, blobs: Sequence[tuple[int, str, bytes]]) -> None:
        if not blobs or self.pack_path is None:
            return super()._store_blobs(cursor, blobs)
        new: dict[tuple[int, str], bytes] = {}
        for alert, name, data in blobs:
            new.setdefault((alert, name), data)
        alerts = sorted({alert for alert, _ in new})
        for start in range(0, len(alerts), 500):  # re-ingested alerts append nothing
            chunk = alerts[start:start + 500]
            cursor.execute(f"SELECT alert, name FROM alert_blob_refs WHERE alert IN ({','.join('?' * len(chunk))})", chunk)
            for key in cursor.fetchall():
                new.pop(tuple(key), None)
        if not new:
            return None
        fd = self._pack_fd()
        position = os.lseek(fd, 0, os.SEEK_END)
        refs = []
        for (alert, name), data in new.items():
            refs.append((alert, name, position, len(data)))
            position += len(data)
        for blob in new.values():  # one write each: joining them first costs more than it saves
            rest = memoryview(blob)
            while rest:
                rest = rest[os.write(fd, rest):]
        cursor.executemany("INSERT INTO alert_blob_refs (alert, name, position, length) VALUES (?, ?, ?, ?)", refs)
        return None

    def alert_blobs(self, alert: int) -> dict[str, bytes]:
        found = super().alert_blobs(alert)  # the blobs of a :memory: store
        for name, position, length in self.execute("SELECT name, position, length FROM alert_blob_refs WHERE alert = ?",
                                                   (alert,)):
            data = os.pread(self._pack_fd(), length, position)
            if len(data) != length:
                raise StoreError(f"{self.pack_path}: blob '{name}' of alert {alert} ({length} bytes at {position}) is "
                                 "missing or cut short: the pack file was lost, replaced or truncated (as an OS crash "
                                 "before its bytes reached the disk can do)")
            found[name] = data
        return found

    def dialect(self, statement: str) -> str:
        # INTEGER PRIMARY KEY makes the id the rowid: rows stored in id order, no separate key index
        return statement.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB").replace(
            "BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY")

    def tables(self, cursor: Any) -> set[str]:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return {row[0] for row in cursor.fetchall()}

    def schema_statements(self) -> list[str]:
        tables = self.dialect(TABLES)
        statements = [s.strip() for s in tables.split(";") if s.strip()] + [BLOB_REFS]
        for table in IMMUTABLE_TABLES:
            for operation in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable: {operation} refused'); END")
        return statements


def _damaged(url: str, error: sqlite3.DatabaseError) -> Exception:
    """A damaged or foreign file as a StoreError; other database errors (constraints, a busy
    database) stay what they are."""
    if type(error) is sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
        return StoreError(f"{sqlite_path(url)} cannot be read as a SQLite store ({error}): the file is damaged or "
                          "not an AMPEL store; restore it from a copy, or ingest into a new store")
    return error


def open_store(url: str, read_only: bool = False) -> SqliteStore:
    return SqliteStore(url, read_only)
