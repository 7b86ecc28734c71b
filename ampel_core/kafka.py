"""Alerts from Kafka topics (confluent-kafka, imported on first use), survey-neutral.

`KafkaSource` joins a consumer group and yields each message's value as a `SourceRecord`. Auto
commit is off: offsets are committed only by `commit()`, which the runtime calls once everything
yielded so far is durably ingested (or quarantined). A crash before that commit means the
uncommitted messages are delivered again, to this or another member of the group: delivery is
at-least-once, and re-ingesting an alert is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ampel_core.alerts import SourceRecord
from ampel_core.errors import AmpelError

__all__ = ["KafkaSource"]

_log = logging.getLogger(__name__)

_PARTITION_EOF = -191  # confluent_kafka.KafkaError._PARTITION_EOF


class KafkaSource(BaseModel):
    """Messages of ``topics`` (names, or regular expressions starting with ``^``) from the brokers
    at ``bootstrap_servers`` as consumer group ``group_id``.

    Iteration ends after ``max_messages`` messages or ``max_idle`` seconds without one (None: never).
    The consumer stays open after the iteration so the runtime can `commit` the last batch; that
    final commit (or `close`) leaves the group.
    """

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field("localhost:9092", description="Comma-separated host:port list.")
    topics: list[str] = Field(min_length=1, description="Topic names, or regexes starting with '^'.")
    group_id: str = Field("ampel", description="Consumer group; offsets are committed for this group.")
    auto_offset_reset: str = Field("earliest", description="Where a group without offsets starts: earliest|latest.")
    consumer_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Further librdkafka settings (security.protocol, sasl.*, ...).")
    poll_timeout: float = Field(1.0, gt=0, description="Seconds one poll waits for a message.")
    max_idle: float | None = Field(10.0, description="Stop after this many seconds without a message; None: never.")
    max_messages: int | None = Field(None, ge=1, description="Stop after this many messages; None: no limit.")

    _consumer: Any = PrivateAttr(None)
    _pending: dict[tuple[str, int], int] = PrivateAttr(default_factory=dict)  # next offset to commit
    _finished: bool = PrivateAttr(False)

    def settings(self) -> dict[str, Any]:
        """The librdkafka configuration of the consumer (auto commit always off)."""
        return {"bootstrap.servers": self.bootstrap_servers, "group.id": self.group_id,
                "auto.offset.reset": self.auto_offset_reset, "enable.partition.eof": False,
                **self.consumer_config, "enable.auto.commit": False}

    def connect(self, consumer: Any = None) -> Any:
        """Subscribe ``consumer`` (any object with confluent-kafka's ``Consumer`` methods subscribe,
        poll, commit, close) or, by default, a new confluent-kafka consumer; return it."""
        if self._consumer is None:
            if consumer is None:
                try:
                    from confluent_kafka import Consumer
                except ImportError:
                    raise AmpelError("the kafka source needs confluent-kafka: pip install 'ampel-core[kafka]'") from None
                consumer = Consumer(self.settings())
            consumer.subscribe(self.topics, on_revoke=self._revoked)
            self._consumer = consumer
        return self._consumer

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        # offsets of revoked partitions can no longer be committed by us; the new owner re-reads them
        for partition in partitions:
            self._pending.pop((partition.topic, partition.partition), None)

    def __iter__(self) -> Iterator[SourceRecord]:  # type: ignore[override]  # not pydantic's field iteration
        consumer = self.connect()
        self._finished = False
        received, last_message = 0, time.monotonic()
        while self.max_messages is None or received < self.max_messages:
            message = consumer.poll(self.poll_timeout)
            if message is None:
                if self.max_idle is not None and time.monotonic() - last_message >= self.max_idle:
                    break
                continue
            error = message.error()
            if error is not None:
                if error.code() == _PARTITION_EOF:
                    continue
                if error.fatal():
                    raise AmpelError(f"kafka consumer failed: {error}")
                _log.warning("kafka: %s", error)
                continue
            last_message = time.monotonic()
            received += 1
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            self._pending[(topic, partition)] = offset + 1
            yield SourceRecord(f"kafka:{topic}[{partition}]@{offset}", message.value() or b"")
        self._finished = True

    def commit(self) -> None:
        """Commit the offsets of every message yielded so far (synchronously); after the iteration
        has ended, also close the consumer. Raises AmpelError if the broker refuses a commit."""
        if self._consumer is None:
            return
        if self._pending:
            from confluent_kafka import TopicPartition

            offsets = [TopicPartition(topic, partition, offset)
                       for (topic, partition), offset in sorted(self._pending.items())]
            committed = self._consumer.commit(offsets=offsets, asynchronous=False) or []
            failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in committed if getattr(tp, "error", None)]
            if failed:
                raise AmpelError(f"kafka: offset commit failed for {', '.join(failed)}")
            self._pending.clear()
        if self._finished:
            self.close()

    def close(self) -> None:
        """Leave the consumer group (uncommitted messages will be delivered again)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._pending.clear()
