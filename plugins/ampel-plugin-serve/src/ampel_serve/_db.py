"""The serve plugin's own tables (teams, tokens, uploaded jobs) in the store's database.

They live beside the store's tables, in the same SQLite file or PostgreSQL schema, reached through
a connection of their own opened on the store's URL (`open_store` then creates or upgrades the
store's schema first). The core's schema knows nothing of them. Every statement uses ``?``
placeholders and types both SQLite and PostgreSQL accept; no autoincrement ids.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.sql_store import SqlStore
from ampel_core.store import open_store

__all__ = ["SCHEMA", "ServeDB"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS serve_teams (name TEXT PRIMARY KEY, rights TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS serve_tokens (id TEXT PRIMARY KEY, team TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
        created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION, rate_limit INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS serve_jobs (team TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
        digest TEXT NOT NULL, document TEXT NOT NULL, channels TEXT NOT NULL, traces TEXT NOT NULL,
        status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, changed DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (team, name, version))""",
    # one row per channel of a job version: channel names are unique across teams while not removed
    """CREATE TABLE IF NOT EXISTS serve_channels (channel TEXT PRIMARY KEY, team TEXT NOT NULL, job TEXT NOT NULL)""",
    # files of a watched directory that are ingested (path, size, modification time in ns)
    """CREATE TABLE IF NOT EXISTS serve_ingested (path TEXT NOT NULL, size BIGINT NOT NULL, mtime BIGINT NOT NULL,
        run INTEGER, done DOUBLE PRECISION NOT NULL, PRIMARY KEY (path, size, mtime))""",
    # a counter that changes whenever the set of active jobs changes (the service reloads then)
    """CREATE TABLE IF NOT EXISTS serve_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
]


class ServeDB:
    """The serve tables of the store at ``url``: one connection per thread (the API serves requests
    from a thread pool), opened on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[SqlStore] = []
        self._lock = threading.Lock()
        with self.transaction() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)

    def _store(self) -> SqlStore:
        store = getattr(self._local, "store", None)
        if store is None:
            opened = open_store(self.url)
            if not isinstance(opened, SqlStore):
                opened.close()
                raise AmpelError(f"ampel serve needs a SQL store (SQLite or PostgreSQL), not {self.url!r}")
            store = self._local.store = opened
            with self._lock:
                self._all.append(store)
        return store

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in one transaction; use `sql` on each statement."""
        store = self._store()
        with store.transaction() as cursor:
            yield _Cursor(cursor, store)

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._store().execute(query, params)

    def close(self) -> None:
        with self._lock:
            for store in self._all:
                store.close()
            self._all.clear()
        self._local = threading.local()


class _Cursor:
    """A cursor that takes ``?`` placeholders on either backend."""

    def __init__(self, cursor: Any, store: SqlStore) -> None:
        self.cursor, self.store = cursor, store

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self.store.sql(query), params)
        return list(self.cursor.fetchall()) if self.cursor.description else []
