"""The embedded default store: one SQLite file (``sqlite:///relative/path.db``,
``sqlite:////absolute/path.db``), WAL mode, one transaction per batch. Several processes may share
the file; ticket claims take the write lock (``BEGIN IMMEDIATE``), so each ticket goes to one worker.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ampel_core.store import IMMUTABLE_TABLES, TABLES, SqlStore, StoreError, Ticket


def sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not a SQLite store URL: {url!r} (expected sqlite:///relative.db or sqlite:////absolute.db)")
    return url.removeprefix("sqlite:///")


class SqliteStore(SqlStore):
    def connect(self) -> sqlite3.Connection:
        path = sqlite_path(self.url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA page_size = 16384")  # before WAL: fewer pages for ~1 kB bodies and cutouts
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA wal_autocheckpoint = 16384")  # checkpoint (and fsync) every 64 MiB, not 4
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        cursor = self.conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # a lone SELECT reads its own WAL snapshot without the write lock, so the readers of
        # several worker processes never queue behind (or sleep in the busy handler for) a writer
        if query.lstrip()[:6].upper() == "SELECT":
            cursor = self.conn.execute(self.sql(query), params)
            try:
                return list(cursor.fetchall())
            finally:
                cursor.close()
        return super().execute(query, params)

    def schema_statements(self) -> list[str]:
        # INTEGER PRIMARY KEY makes the id the rowid: rows stored in id order, no separate key index
        tables = TABLES.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB").replace(
            "BIGINT PRIMARY KEY", "INTEGER PRIMARY KEY")
        statements = [s.strip() for s in tables.split(";") if s.strip()]
        for table in IMMUTABLE_TABLES:
            for operation in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable: {operation} refused'); END")
        return statements

    def claim_tickets(self, owner: str, limit: int, lease: float, channels: Sequence[str] | None = None) -> list[Ticket]:
        """Lease up to ``limit`` claimable tickets (pending and due, or with an expired lease)."""
        now = time.time()
        channel_clause = f" AND channel IN ({','.join('?' * len(channels))})" if channels else ""
        rows = self.execute(
            "UPDATE tickets SET status = 'running', owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id IN "
            "(SELECT id FROM tickets WHERE ((status = 'pending' AND not_before <= ?) OR (status = 'running' AND lease_until < ?))"
            f"{channel_clause} ORDER BY id LIMIT ?) "
            "RETURNING id, unit, trace, link_kind, link, version, stock, channel, attempts, status",
            (owner, now + lease, now, now, *(channels or ()), limit))
        return sorted((Ticket(*row) for row in rows), key=lambda t: t.id)


def open_store(url: str) -> SqliteStore:
    return SqliteStore(url)
