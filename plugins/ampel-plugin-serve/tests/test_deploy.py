"""What docs/deploy.md tells an operator to do, done for real: the backups it describes restore to
an identical store (SQLite online backup plus the blob pack; pg_dump / pg_restore of a PostgreSQL
store, immutability triggers included), and the example systemd units pass `systemd-analyze
verify`."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.sql_store import SqlStore
from ampel_core.store import open_store
from ampel_core.testing import store_fingerprint

REPOSITORY = Path(__file__).resolve().parents[3]
ALERTS = REPOSITORY / "docs" / "examples" / "data" / "ztf" / "pitt-google"
DEPLOY = REPOSITORY / "docs" / "examples" / "deploy"


def ingest(url: str) -> None:
    """The 37 SN 2021rhu and Pitt-Google test alerts (with cutouts) through T0 and T2."""
    pytest.importorskip("ampel_ztf")
    run_job(load_job({"name": "ingest", "store": url, "channels": [
        {"name": "ZTF_PUBLIC", "access": ["ZTF_PUB"], "t2": [{"unit": "T2LightCurveSummary"}]}], "tasks": [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(ALERTS)], "pattern": "*.avro"}},
         "format": {"name": "ztf"}},
        {"tier": 2}]}))


def blobs(url: str) -> dict[int, dict[str, bytes]]:
    store = open_store(url, read_only=True)
    assert isinstance(store, SqlStore)
    try:
        return {alert: store.alert_blobs(alert) for (alert,) in store.execute("SELECT id FROM alerts")}
    finally:
        store.close()


def test_sqlite_online_backup_with_its_blob_pack(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 command-line shell is not installed (apt install sqlite3)")
    live, backup = tmp_path / "ampel.db", tmp_path / "backup" / "ampel.db"
    ingest(f"sqlite:///{live}")
    backup.parent.mkdir()
    # as docs/deploy.md says: the database first (online, consistent), then the append-only pack
    subprocess.run(["sqlite3", str(live), f".backup '{backup}'"], check=True)
    shutil.copyfile(f"{live}-blobs", f"{backup}-blobs")
    assert store_fingerprint(f"sqlite:///{backup}") == store_fingerprint(f"sqlite:///{live}")
    kept = blobs(f"sqlite:///{backup}")
    assert kept == blobs(f"sqlite:///{live}") and sum(map(len, kept.values())) >= 3 * 34  # the cutouts


@pytest.fixture
def postgres_store(request: pytest.FixtureRequest) -> str:
    pytest.importorskip("ampel_postgres")
    from ampel_postgres.testing import scratch_schema, server_url, unreachable_reason

    url = server_url()
    reason = unreachable_reason(url)
    if reason:
        pytest.skip(reason)
    manager = scratch_schema(url)
    store_url = manager.__enter__()
    request.addfinalizer(lambda: manager.__exit__(None, None, None))
    return store_url


def test_postgres_dump_and_restore(postgres_store: str, tmp_path: Path) -> None:
    import psycopg

    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt install postgresql-client)")
    ingest(postgres_store)
    schema = _schema(postgres_store)
    dump = tmp_path / "ampel.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", postgres_store], check=True)
    base = urlunsplit(urlsplit(postgres_store)._replace(query=""))
    database = f"ampel_restore_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    parts = urlsplit(postgres_store)
    restored = urlunsplit(parts._replace(path=f"/{database}"))  # the same schema, in the new database
    restored_database = urlunsplit(parts._replace(path=f"/{database}", query=""))
    try:
        subprocess.run(["pg_restore", "--exit-on-error", f"--dbname={restored_database}", str(dump)], check=True)
        assert store_fingerprint(restored) == store_fingerprint(postgres_store)
        assert blobs(restored) == blobs(postgres_store)
        with psycopg.connect(restored_database, autocommit=True) as conn, pytest.raises(psycopg.Error) as refused:
            conn.execute(f"UPDATE {schema}.datapoints SET body = body")  # the triggers came back too
        assert "immutable" in str(refused.value)
        store = open_store(restored)  # and the restored store is usable: it opens at the current schema version
        store.close()
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {database} WITH (FORCE)")


def _schema(url: str) -> str:
    from urllib.parse import parse_qs

    options = parse_qs(urlsplit(url).query)["options"][0]
    return options.removeprefix("-csearch_path=")


@pytest.mark.parametrize("unit", ["ampel-serve.service", "ampel-worker@.service", "ampel-backup.service",
                                  "ampel-backup.timer"])
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    ampel = Path(sys.executable).parent / "ampel"
    text = (DEPLOY / unit).read_text().replace("/opt/ampel/venv/bin/ampel", str(ampel))
    (tmp_path / unit).write_text(text)
    if unit.endswith(".timer"):
        (tmp_path / "ampel-backup.service").write_text((DEPLOY / "ampel-backup.service").read_text())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / unit)],
                            capture_output=True, text=True, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
