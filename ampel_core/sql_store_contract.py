"""The store contract of SQL backends (`ampel_core.sql_store.SqlStore`): `SqlStoreContract` is
`ampel_core.store_contract.StoreContract` plus what only SQL can show: the database itself refuses
changes to immutable rows, the schema version policy (newer refused, older upgraded by
`ampel_core.sql_schema.MIGRATIONS` or refused), and readers that never wait for a writer. Raw SQL
goes through ``store.execute`` with ``?`` placeholders, as `SqlStore` provides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ampel_core import sql_schema
from ampel_core.sql_schema import IMMUTABLE_TABLES, SCHEMA_VERSION
from ampel_core.sql_store import SqlStore
from ampel_core.store import Store, StoreError, open_store
from ampel_core.store_contract import OWNER_A, StoreContract, alert_batch, datapoint, ok_result, trace

__all__ = ["SqlStoreContract"]


class SqlStoreContract(StoreContract):
    """`StoreContract` plus what SQL backends (`ampel_core.sql_store.SqlStore`) must show in the database."""

    @pytest.fixture
    def store(self, open_extra: Callable[[], Store]) -> SqlStore:
        opened = open_extra()
        assert isinstance(opened, SqlStore)
        return opened

    # --- the schema ------------------------------------------------------------------------
    def test_newer_schema_is_refused(self, store: SqlStore, store_url: str) -> None:
        store.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        with pytest.raises(StoreError, match="newer"):
            open_store(store_url)

    def test_older_schema_without_upgrade_path_is_refused(self, store: SqlStore, store_url: str) -> None:
        store.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("1",))
        with pytest.raises(StoreError, match=r"version 1.*no upgrade path"):
            open_store(store_url)

    def test_version_2_store_gains_positions(self, store: SqlStore, store_url: str) -> None:
        for index in ("stock_positions_healpix", "stocks_updated", "stock_channels_channel"):
            store.execute(f"DROP INDEX {index}")
        store.execute("DROP TABLE stock_positions")
        store.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("2",))
        upgraded = open_store(store_url)
        assert isinstance(upgraded, SqlStore)
        assert upgraded.execute("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert upgraded.positions([1]) == {} and upgraded.cone_search(10.0, 10.0, 1.0) == []
        upgraded.close()

    def test_older_schema_is_upgraded_by_its_migrations(self, store: SqlStore, store_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sql_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        with pytest.raises(StoreError, match=f"version {SCHEMA_VERSION}.*no upgrade path"):
            open_store(store_url)
        monkeypatch.setattr(sql_schema, "MIGRATIONS", {SCHEMA_VERSION: ["ALTER TABLE runs ADD COLUMN note TEXT"]})
        upgraded = open_store(store_url)
        assert isinstance(upgraded, SqlStore)
        assert upgraded.execute("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION + 1),)]
        assert upgraded.execute("SELECT note FROM runs") == []
        upgraded.close()

    # --- immutability and concurrency ------------------------------------------------------
    @pytest.mark.parametrize("table", IMMUTABLE_TABLES)
    def test_immutable_tables_refuse_update_and_delete(self, store: SqlStore, table: str) -> None:
        run = self.run_id(store)
        store.add_traces([trace()])
        store.ingest(alert_batch(run, "ZTF24imm", 5, [datapoint("ZTF24imm", 0)]))
        (ticket,) = store.claim_tickets(OWNER_A, 10, 60)
        assert store.finish_ticket(ticket, ok_result(ticket, run), OWNER_A)
        before = store.counts()
        execute = store.execute
        column = {"datapoints": "tags", "states": "datapoints", "results": "body", "traces": "document", "alerts": "origin",
                  "journal": "detail", "channel_states": "state"}[table]
        with pytest.raises(Exception, match="immutable"):
            execute(f"UPDATE {table} SET {column} = ?", ("changed",))
        with pytest.raises(Exception, match="immutable"):
            execute(f"DELETE FROM {table}")
        assert store.counts() == before
        assert execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", ("changed",))[0][0] == 0
        store.ingest(alert_batch(run, "ZTF24imm2", 6, [datapoint("ZTF24imm2", 0)]))  # the store still works
        assert store.counts()["alerts"] == 2

    def test_reads_do_not_wait_for_a_writer(self, store: SqlStore, open_extra: Callable[[], Store]) -> None:
        """Workers share a store: one's write transaction must not stall the others' reads."""
        run = self.run_id(store)
        self.ingest_tickets(store, run, 1)
        reader = open_extra()
        seconds: list[float] = []

        def read() -> None:
            started = time.perf_counter()
            reader.get_run(run)
            reader.stock_datapoints(1)
            reader.next_ticket_time()
            seconds.append(time.perf_counter() - started)

        with store.transaction() as cursor:
            cursor.execute(store.sql("INSERT INTO stock_tags (stock, tag) VALUES (?, ?)"), (1, "busy"))
            thread = threading.Thread(target=read)
            thread.start()
            thread.join(5.0)
            finished_during_write = bool(seconds)
        thread.join()
        assert finished_during_write, f"reads waited {seconds[0]:.1f} s for the writer's transaction to end"

