"""The Kafka source commits offsets only for what was durably ingested.

There is no broker here: `FakeBroker` stands in for one (partitions of real ZTF alert bytes, a
consumer group's committed offsets, redelivery from them). The store is a real SQLite file, and the
runtime is the real engine: the test checks, at every commit, that each committed message's alert
is already readable from the store by another connection.
"""

from __future__ import annotations

import sqlite3
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ampel_core.drivers import run_job
from ampel_core.errors import AmpelError
from ampel_core.jobs import load_job
from ampel_core.kafka import KafkaSource
from ampel_core.registry import Component, Registry
from ampel_ztf.sources import PUBLIC_BROKER, ZTFKafkaSource

pytest.importorskip("confluent_kafka")
SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data" / "ztf"


@dataclass
class Error:
    number: int
    is_fatal: bool = False

    def code(self) -> int:
        return self.number

    def fatal(self) -> bool:
        return self.is_fatal

    def __str__(self) -> str:
        return f"error {self.number}"


@dataclass
class Message:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _error: Error | None = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Error | None:
        return self._error


@dataclass
class FakeBroker:
    """Partitions of messages and one group's committed offsets. ``on_commit`` runs before a commit
    is accepted; ``fail_after`` makes the consumer's poll raise after that many messages."""

    partitions: dict[tuple[str, int], list[bytes]]
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    on_commit: Any = None
    fail_after: int | None = None

    def consumer(self) -> FakeConsumer:
        return FakeConsumer(self)


class FakeConsumer:
    """The part of confluent_kafka.Consumer that KafkaSource uses, round-robin over partitions."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker, self.position = broker, dict(broker.committed)
        self.delivered, self.closed, self.revoke = 0, False, None
        self.extra: list[Message] = []

    def subscribe(self, topics: list[str], on_revoke: Any = None) -> None:
        self.topics, self.revoke = topics, on_revoke

    def poll(self, timeout: float) -> Message | None:
        if self.extra:
            return self.extra.pop(0)
        if self.broker.fail_after is not None and self.delivered >= self.broker.fail_after:
            raise RuntimeError("the broker went away")
        for key in sorted(self.broker.partitions):
            offset = self.position.get(key, 0)
            if offset < len(self.broker.partitions[key]):
                self.position[key] = offset + 1
                self.delivered += 1
                return Message(key[0], key[1], offset, self.broker.partitions[key][offset])
        return None

    def commit(self, offsets: list[Any], asynchronous: bool = True) -> list[Any]:
        assert asynchronous is False, "commits must be synchronous"
        new = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        if self.broker.on_commit:
            self.broker.on_commit(new)
        self.broker.committed.update(new)
        self.broker.commits.append(new)
        return offsets

    def close(self) -> None:
        self.closed = True


def test_offsets_are_committed_only_when_asked_and_only_for_what_was_yielded() -> None:
    broker = FakeBroker({("t", 0): [b"a0", b"a1", b"a2"], ("t", 1): [b"b0", b"b1"]})
    consumer = broker.consumer()
    source = KafkaSource(topics=["t"], max_idle=0)
    source.connect(consumer)
    records = iter(source)
    taken = [next(records) for _ in range(4)]
    assert [r.payload for r in taken] == [b"a0", b"a1", b"a2", b"b0"] and taken[0].origin == "kafka:t[0]@0"
    assert broker.commits == []  # nothing is acknowledged by reading
    source.commit()
    assert broker.commits == [{("t", 0): 3, ("t", 1): 1}]  # next offset to read, per partition
    source.commit()
    assert len(broker.commits) == 1  # nothing new: no commit
    assert [r.payload for r in records] == [b"b1"] and not consumer.closed
    source.commit()  # the final commit after the iteration ended also leaves the group
    assert broker.commits[-1] == {("t", 1): 2} and consumer.closed


def test_revoked_partitions_are_not_committed_and_errors_are_handled() -> None:
    broker = FakeBroker({("t", 0): [b"a0", b"a1"], ("t", 1): [b"b0"]})
    consumer = broker.consumer()
    source = KafkaSource(topics=["t"], max_idle=0)
    source.connect(consumer)
    records = iter(source)
    next(records), next(records), next(records)
    consumer.revoke(consumer, [types.SimpleNamespace(topic="t", partition=0)])
    source.commit()
    assert broker.commits == [{("t", 1): 1}]
    consumer.extra = [Message("t", 0, 0, None, Error(-191)), Message("t", 0, 0, None, Error(5))]
    assert list(records) == []  # end-of-partition and transient errors are skipped
    consumer = FakeBroker({}).consumer()
    consumer.extra = [Message("t", 0, 0, None, Error(-150, is_fatal=True))]
    source = KafkaSource(topics=["t"], max_idle=0)
    source.connect(consumer)
    with pytest.raises(AmpelError, match="kafka consumer failed: error -150"):
        list(source)


def test_configuration() -> None:
    settings = KafkaSource(topics=["^ztf_.*"], group_id="me", consumer_config={"enable.auto.commit": True}).settings()
    assert settings["enable.auto.commit"] is False and settings["group.id"] == "me"
    assert ZTFKafkaSource(night="20240101").topics == ["^ztf_20240101_programid1$"]
    public = ZTFKafkaSource()
    assert public.bootstrap_servers == PUBLIC_BROKER and public.topics == [r"^ztf_\d{8}_programid1$"]
    local = ZTFKafkaSource(bootstrap_servers="localhost:9092", topics=["alerts"], max_messages=10)
    assert local.topics == ["alerts"]
    with pytest.raises(ValueError):
        ZTFKafkaSource(night="2024-01-01")
    with pytest.raises(ValueError):
        KafkaSource(topics=[])


# through the engine ------------------------------------------------------------------------------

BROKERS: dict[str, FakeBroker] = {}


class BrokerSource(KafkaSource):
    """A KafkaSource connected to a FakeBroker by name (for jobs)."""

    broker: str

    def model_post_init(self, context: Any) -> None:
        self.connect(BROKERS[self.broker].consumer())


@pytest.fixture
def broker_source(ztf_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    module = types.ModuleType("ampel_ztf_test_brokers")
    module.BrokerSource = BrokerSource  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ztf_registry.sources["fake-kafka"] = Component("fake-kafka", f"{module.__name__}:BrokerSource", "local-test", "0")
    return ztf_registry


def kafka_job(tmp_path: Path, broker: str) -> dict[str, Any]:
    return {"name": "kafka", "store": f"sqlite:///{tmp_path / 'store.db'}",
            "channels": [{"name": "ALL", "filter": {"unit": "AcceptAll"}}],
            "tasks": [{"tier": 0, "batch_size": 4, "format": {"name": "ztf"},
                       "source": {"name": "fake-kafka", "config": {"topics": ["ztf"], "broker": broker, "max_idle": 0}}}]}


def stored_alerts(path: Path) -> set[int]:
    with sqlite3.connect(path) as connection:  # another connection: sees only committed transactions
        return {row[0] for row in connection.execute("SELECT id FROM alerts")}


def test_engine_commits_offsets_only_after_the_batch_is_in_the_store(tmp_path: Path, broker_source: Registry) -> None:
    from ampel_ztf.alerts import ZTFAlertFormat

    files = sorted(SAMPLE.rglob("*.avro"))[:23]
    payloads = [p.read_bytes() for p in files]
    partitions = {("ztf", 0): payloads[:12], ("ztf", 1): payloads[12:]}
    alert_ids = {key: [[a.id for a in ZTFAlertFormat().decode(m, "") ] for m in messages]
                 for key, messages in partitions.items()}
    broker = BROKERS["crash"] = FakeBroker(partitions, fail_after=10)
    database = tmp_path / "store.db"

    def check(offsets: dict[tuple[str, int], int]) -> None:
        in_store = stored_alerts(database)
        for key, offset in offsets.items():
            for ids in alert_ids[key][:offset]:
                assert set(ids) <= in_store, f"offset {offset} of {key} committed before its alerts were stored"

    broker.on_commit = check
    with pytest.raises(RuntimeError, match="the broker went away"):
        run_job(load_job(kafka_job(tmp_path, "crash")), registry=broker_source)
    # two full batches of 4 were ingested and committed; the 2 messages of the third batch were not
    assert broker.committed == {("ztf", 0): 8} and len(broker.commits) == 2
    assert stored_alerts(database) == {i for ids in alert_ids[("ztf", 0)][:8] for i in ids}

    broker.fail_after = None  # the consumer group restarts from its committed offsets
    summary = run_job(load_job(kafka_job(tmp_path, "crash")), registry=broker_source)
    assert broker.committed == {("ztf", 0): 12, ("ztf", 1): 11}
    assert summary.records == 23 - 8 and summary.quarantined == 0
    assert stored_alerts(database) == {i for ids in [*alert_ids[("ztf", 0)], *alert_ids[("ztf", 1)]] for i in ids}
