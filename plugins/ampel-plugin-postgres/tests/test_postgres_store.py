"""What the PostgreSQL store does beyond the shared contract: SKIP LOCKED claims, schema creation
by concurrent openers, upgrades, TRUNCATE refusal and connection errors."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

import ampel_postgres.store as pg
from ampel_postgres.store import connection_string
from ampel_core.sql_schema import SCHEMA_VERSION
from ampel_core.store import StoreError, open_store
from ampel_core.store_contract import alert_batch, datapoint
from ampel_postgres.testing import postgres_store_url, postgres_url, scratch_schema  # noqa: F401 - fixtures


def test_claims_skip_rows_locked_by_another_claimer(postgres_store_url: str) -> None:  # noqa: F811
    store = open_store(postgres_store_url)
    run = store.start_run("d" * 64, {}, {})
    for i in range(3):
        store.ingest(alert_batch(run, f"ZTF24lock{i}", i, [datapoint(f"ZTF24lock{i}", 0)]))
    first_id = store.execute("SELECT MIN(id) FROM tickets")[0][0]  # type: ignore[attr-defined]
    with psycopg.connect(pg.connection_string(postgres_store_url)) as holder:
        holder.execute("SELECT id FROM tickets WHERE id = %s FOR UPDATE", (first_id,))  # a claim in flight
        started = time.perf_counter()
        claimed = store.claim_tickets("other", 10, 60)
        assert time.perf_counter() - started < 1.0  # did not wait for the lock
        assert [t.id for t in claimed] == [first_id + 1, first_id + 2]
        holder.rollback()
    assert [t.id for t in store.claim_tickets("other", 10, 60)] == [first_id]
    store.close()


def test_concurrent_openers_create_the_schema_once(postgres_store_url: str) -> None:  # noqa: F811
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            open_store(postgres_store_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = open_store(postgres_store_url)
    assert store.execute("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]  # type: ignore[attr-defined]
    store.close()


def test_truncate_of_immutable_tables_is_refused(postgres_store_url: str) -> None:  # noqa: F811
    store = open_store(postgres_store_url)
    store.ingest(alert_batch(store.start_run("d" * 64, {}, {}), "ZTF24trunc", 1, [datapoint("ZTF24trunc", 0)]))
    with pytest.raises(psycopg.errors.RestrictViolation, match="immutable"):
        store.execute("TRUNCATE datapoints CASCADE")  # type: ignore[attr-defined]
    assert store.counts()["datapoints"] == 1
    store.close()


def test_url_forms_and_errors(postgres_url: str) -> None:  # noqa: F811
    with scratch_schema(postgres_url) as url:
        for form in (url.replace("postgresql://", "postgres://"), url.replace("postgresql://", "postgresql+psycopg://")):
            open_store(form).close()
    with pytest.raises(StoreError, match=r"cannot connect.*password=\*\*\*") as refused:
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(refused.value)
    with pytest.raises(StoreError, match="not a PostgreSQL store URL"):
        pg.PostgresStore("mysql://x")


def test_a_schema_of_another_application_is_refused(postgres_store_url: str) -> None:  # noqa: F811
    with psycopg.connect(connection_string(postgres_store_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StoreError, match=r"not an AMPEL store and not empty \(it holds the tables notes\)"):
        open_store(postgres_store_url)
    with psycopg.connect(connection_string(postgres_store_url), autocommit=True) as conn:
        assert conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall() == [
            ("notes",)]


def test_datapoints_another_writer_stored_meanwhile_do_not_cost_the_batch(postgres_store_url: str,  # noqa: F811
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The datapoint rows go in as new rows (no speculative insertion); when another writer stored
    some of them after this batch began, the batch is written again with ON CONFLICT DO NOTHING:
    it commits whole, every datapoint once, the other writer's rows untouched, and nothing is
    logged (psycopg's warning about the aborted pipeline would only repeat the handled error)."""
    store, other = open_store(postgres_store_url), open_store(postgres_store_url)
    run = store.start_run("d" * 64, {}, {})
    points = [datapoint("ZTF24race", i) for i in range(4)]
    other.ingest(alert_batch(run, "ZTF24race", 1, points[:2]))  # the other writer's alert, committed first
    with caplog.at_level(logging.DEBUG):
        store.ingest(alert_batch(run, "ZTF24race", 2, points[:3], channels=("CH", "LATE")))
        store.ingest(alert_batch(run, "ZTF24race", 3, points))  # again, on the same connection
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    count = "SELECT count(*) FROM {} WHERE stock = %s"
    stock = points[0].stock
    assert [store.execute(count.format(table), (stock,))[0][0]  # type: ignore[attr-defined]
            for table in ("datapoints", "alerts", "channel_states")] == [4, 3, 4]
    assert [dp.id for dp in store.stock_datapoints(stock)] == sorted(dp.id for dp in points)
    # alert blobs (gzipped cutouts) are stored as they come, not compressed again by the server
    assert store.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'alert_blobs'::regclass "  # type: ignore[attr-defined]
                         "AND attname = 'data'") == [("e",)]
    store.close()
    other.close()
