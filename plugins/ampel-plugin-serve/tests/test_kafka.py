"""``ampel serve --source kafka://...``: the URL is checked, and against a real broker (``$AMPEL_TEST_KAFKA``,
host:port; none can be installed here) the served store equals a local run of the same job."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ampel_core.errors import AmpelError
from ampel_core.store import open_store

from ampel_serve.service import kafka_source
from ampel_serve.testing import ampel, free_port, wait_for

BROKER = os.environ.get("AMPEL_TEST_KAFKA", "")


def test_kafka_url() -> None:
    spec = kafka_source("kafka://broker1:9092,broker2:9092/ztf_public,ztf_partner?group=live", 1.0, 100)
    assert spec.name == "kafka"
    assert spec.config["bootstrap_servers"] == "broker1:9092,broker2:9092"
    assert spec.config["topics"] == ["ztf_public", "ztf_partner"] and spec.config["group_id"] == "live"
    assert kafka_source("kafka://b:9092/t", 1.0, 100).config["group_id"] == "ampel-serve"
    for bad in ("http://b:9092/t", "kafka://b:9092/", "kafka:///t", "b:9092/t"):
        with pytest.raises(AmpelError, match="expected kafka://host:port/topic"):
            kafka_source(bad, 1.0, 100)


def test_watch_and_kafka_together_are_refused(tmp_path: Path) -> None:
    done = ampel("serve", "--store", f"sqlite:///{tmp_path / 's.db'}", "--watch", str(tmp_path),
                 "--source", "kafka://b:9092/t", "--port", str(free_port()), check=False)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
        "error: give either --watch DIR or --source kafka://..., not both")


@pytest.mark.skipif(not BROKER, reason="no Kafka broker: set AMPEL_TEST_KAFKA=host:port (none can be installed here)")
def test_serve_from_kafka(tmp_path: Path, job_file: Path, alerts: Path, local_store_url: str) -> None:
    from confluent_kafka import Producer
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job

    topic = f"ampel_serve_test_{secrets.token_hex(4)}"
    producer = Producer({"bootstrap.servers": BROKER})
    files = sorted(alerts.rglob("*.avro"))
    for path in files:
        producer.produce(topic, path.read_bytes())
    producer.flush(30)
    store = f"sqlite:///{tmp_path / 'live.db'}"
    token = ampel("serve", "team", "add", "A", "--rights", "ZTF_PUB", "--store", store).stdout.strip()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ampel_core.cli", "serve", "--store", store, "--source",
                                f"kafka://{BROKER}/{topic}?group={topic}", "--port", str(port), "--data-dir",
                                str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _answers(port), 60, "the server")
        ampel("submit", str(job_file), "--to", f"http://127.0.0.1:{port}", "--token", token)
        wait_for(lambda: _count(store, "SELECT COUNT(*) FROM alerts") >= 41
                 and _count(store, "SELECT COUNT(*) FROM tickets WHERE status NOT IN ('done', 'failed')") == 0,
                 180, "ingestion from Kafka")
    finally:
        process.terminate()
        process.communicate(timeout=120)
    assert process.returncode == 0
    run_job(load_job(job_file, {"alerts": str(alerts)}, store=local_store_url))
    # origins differ (kafka:topic[partition]@offset vs file names); the science does not
    for query in ("SELECT id, stock, datapoints FROM states", "SELECT unit, trace, link, body FROM results"):
        assert sorted(map(tuple, _rows(store, query))) == sorted(map(tuple, _rows(local_store_url, query)))


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2):
            return True
    except OSError:
        time.sleep(0.2)
        return False


def _rows(store_url: str, query: str) -> list[Any]:
    store = open_store(store_url, read_only=True)
    try:
        return store.execute(query)  # type: ignore[attr-defined, no-any-return]
    finally:
        store.close()


def _count(store_url: str, query: str) -> int:
    return int(_rows(store_url, query)[0][0])
