"""The store contract suite on the embedded SQLite backend (a fresh file per test), and the
SQLite store's own part: the pack file of alert blobs."""

import os
from pathlib import Path

import pytest

from ampel_core.sqlite_store import SqliteStore
from ampel_core.store import StoreError
from ampel_core.sql_store_contract import SqlStoreContract
from ampel_core.store_contract import alert_batch, datapoint


class TestSqliteStore(SqlStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/store.db"


CUTOUTS = {"cutoutScience": os.urandom(20_000), "cutoutDifference": b"\x1f\x8b" + bytes(range(256)) * 40}


def ingest(store: SqliteStore, alert: int, name: str = "ZTF24abc") -> None:
    run = store.start_run("a" * 64, {}, {})
    store.ingest(alert_batch(run, name, alert, [datapoint(name, alert)], blobs=CUTOUTS))


def test_blobs_go_to_the_pack_file_and_back(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/store.db")
    ingest(store, 1)
    ingest(store, 2, "ZTF24abd")
    pack = tmp_path / "store.db-blobs"
    assert pack.stat().st_size == 2 * sum(map(len, CUTOUTS.values()))
    assert store.execute("SELECT COUNT(*) FROM alert_blobs") == [(0,)]  # not in the database's pages
    store.close()
    again = SqliteStore(f"sqlite:///{tmp_path}/store.db")
    assert again.alert_blobs(1) == again.alert_blobs(2) == CUTOUTS
    assert again.alert_blobs(3) == {}


def test_reingesting_an_alert_appends_nothing(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/store.db")
    ingest(store, 1)
    size = (tmp_path / "store.db-blobs").stat().st_size
    ingest(store, 1)
    run = store.start_run("a" * 64, {}, {})
    twice = alert_batch(run, "ZTF24abe", 5, [datapoint("ZTF24abe", 0)], blobs=CUTOUTS)
    twice.blobs += twice.blobs  # the same alert twice in one batch
    store.ingest(twice)
    assert (tmp_path / "store.db-blobs").stat().st_size == 2 * size
    assert store.alert_blobs(1) == store.alert_blobs(5) == CUTOUTS


def test_a_cut_short_pack_is_an_error_not_wrong_bytes(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/store.db")
    ingest(store, 1)
    os.truncate(tmp_path / "store.db-blobs", 100)
    with pytest.raises(StoreError, match=r"store.db-blobs: blob 'cutout\w+' of alert 1 .* missing or cut short"):
        store.alert_blobs(1)


def test_a_memory_store_keeps_blobs_in_the_database() -> None:
    store = SqliteStore("sqlite:///:memory:")
    ingest(store, 1)
    assert store.alert_blobs(1) == CUTOUTS
    assert store.execute("SELECT COUNT(*) FROM alert_blobs") == [(2,)]
