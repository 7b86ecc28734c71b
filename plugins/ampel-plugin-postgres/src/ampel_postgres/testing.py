"""Scratch PostgreSQL stores for tests and benchmarks.

The server comes from ``$AMPEL_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
`scratch_schema` gives a store URL in a fresh schema of its own, dropped afterwards, so tests share
no state. The pytest fixtures ``postgres_url`` (the server) and ``postgres_store_url`` (a scratch
store) fail, never skip, when the server is unreachable and ``$CI`` is set; elsewhere they skip with
the reason. Import them into a test module: ``from ampel_postgres.testing import postgres_url, postgres_store_url``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

__all__ = ["DEFAULT_URL", "postgres_store_url", "postgres_url", "scratch_schema", "server_url", "unreachable_reason",
           "with_search_path"]

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("AMPEL_TEST_POSTGRES", DEFAULT_URL)


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
def postgres_url() -> str:
    url = server_url()
    reason = unreachable_reason(url)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide PostgreSQL (.ci/run starts it)")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    with scratch_schema(postgres_url) as url:
        yield url
