"""The T0 runtime: source -> alert format -> each channel's filter -> ingest (stock, new
datapoints, journal) -> T1 state per accepting channel -> T2 tickets, one transaction per batch.

`run_t0` runs a T0 task, whole or as partition ``index`` of ``count`` (`StockPartition`: every
partition reads the whole source and ingests only the alerts of its own stocks, so all alerts of
one stock are ingested by one process, in source order, and a partitioned run makes the states
and tickets a one-process run makes). A batch is written by a writer thread while the next one
is decoded, and acknowledged only once committed (see `run_t0`). Every alert read is accounted for in the `RunSummary`:
accepted / rejected / failed per channel, quarantined records, and the alerts no channel took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from ampel_core.alerts import AlertDecodeError, PartialDecodeError, SourceRecord
from ampel_core.jobs import T0Task
from ampel_core.models import Alert, DataPoint, JournalEntry, LazyDataPoints, State
from ampel_core.provenance import state_id
from ampel_core.registry import Registry
from ampel_core.runtime.configured import Channel, build_component, verdict
from ampel_core.runtime.run import Report, RunSummary, batch_counts, merge
from ampel_core.sky import alert_position
from ampel_core.store import IngestBatch, Store, TicketSpec
from ampel_core.units import AlertFilter, PointUnit, StockUnit

__all__ = ["StockPartition", "T0Runtime", "partition_of", "run_t0"]

#: stored datapoints a T0 process keeps in memory for combiners (`T0Runtime._stored`): about 25 MB
#: of ZTF datapoints (1.2 kB each, read from a store); the cache is emptied when it is full
READ_CACHE = 20_000
_BATCH_COUNTERS = ("records", "alerts", "quarantined", "unreadable", "ingested", "unaccepted")


@contextlib.contextmanager
def _few_collections(threshold: int = 50_000) -> Iterator[None]:
    """Raise the cyclic garbage collector's first threshold for a while: a T0 batch keeps hundreds
    of thousands of new objects (decoded alerts) alive and makes almost no reference cycles, so
    with the default (700) the collector only traverses them again and again (3 % of T0's time)."""
    first, *older = gc.get_threshold()
    gc.set_threshold(max(first, threshold), *older)
    try:
        yield
    finally:
        gc.set_threshold(first, *older)


class T0Runtime:
    """Ingests alerts for a set of channels into a store, one transaction per batch."""

    def __init__(self, store: Store, channels: Sequence[Channel], run: int, summary: RunSummary,
                 keep_blobs: bool = True, count_records: bool = True) -> None:
        self.store, self.channels, self.run, self.keep_blobs = store, channels, run, keep_blobs
        self.total = summary  # the run's: committed batches only
        self.summary = RunSummary(run=summary.run)  # the batch being prepared
        self.count_records = count_records  # partitions read every record; one of them counts them
        self._decided: dict[tuple[int, str], tuple[str, str | None, str | None]] = {}
        self._again: dict[int, list[tuple[Channel, str]]] = {}  # alert -> (channel, its earlier state)
        # stored datapoints read for combiners, kept across batches (stored datapoints never change):
        # stock -> id -> datapoint, at most READ_CACHE of them
        self._read: dict[int, dict[int, DataPoint]] = {}
        self._read_size = 0

    def process(self, records: Sequence[SourceRecord], decode: Callable[[bytes, str], list[Alert]]) -> RunSummary:
        """Ingest one batch in one transaction; return its counts. The run's summary counts the
        batch only once it is committed, so an interrupted run reports what its store holds."""
        batch, counts = self.prepare(records, decode)
        self.write(batch)
        self.acknowledge(counts)
        return counts

    def prepare(self, records: Sequence[SourceRecord], decode: Callable[[bytes, str], list[Alert]],
                settle: Callable[[], None] = lambda: None) -> tuple[IngestBatch, RunSummary]:
        """Decode, filter and build one batch's writes, and count it (not yet in the run's
        summary: `acknowledge` adds the counts once `write` has committed the batch). ``settle``
        is called once the records are decoded, before the store is first read: `run_t0` waits
        there for the previous batch's write, so that this batch sees it."""
        self.summary = RunSummary(run=self.total.run)
        with _few_collections():
            batch = self._process(records, decode, settle)
        return batch, self.summary

    def write(self, batch: IngestBatch) -> None:
        """Write a prepared batch in one transaction."""
        self.store.ingest(batch)

    def acknowledge(self, counts: RunSummary) -> None:
        """Add a committed batch's counts to the run's summary."""
        merge(self.total, counts.as_dict())

    def _process(self, records: Sequence[SourceRecord], decode: Callable[[bytes, str], list[Alert]],
                 settle: Callable[[], None]) -> IngestBatch:
        batch = IngestBatch(self.run)
        decoded: list[tuple[str, Alert]] = []
        self.summary.records += len(records) if self.count_records else 0
        for record in records:
            if record.error is not None:  # the source could not read it whole: its bytes so far, and why
                if self.count_records:  # one partition accounts for it
                    batch.quarantined.append((record.origin, record.error, record.payload))
                    self.summary.quarantined += 1
                    self.summary.unreadable += 1
                continue
            try:
                decoded.extend((record.origin, alert) for alert in decode(record.payload, record.origin))
            except PartialDecodeError as error:  # a container's good alerts ingest, each bad record alone
                decoded.extend((record.origin, alert) for alert in error.alerts)
                batch.quarantined.extend((reject.origin, reject.reason, reject.payload) for reject in error.rejects)
                self.summary.quarantined += len(error.rejects)
            except AlertDecodeError as error:
                batch.quarantined.append((record.origin, str(error), record.payload))
                self.summary.quarantined += 1
            except Exception as error:  # a decoder bug must not stop the run; keep the bytes
                batch.quarantined.append((record.origin, f"decoder raised {type(error).__name__}: {error}", record.payload))
                self.summary.quarantined += 1
        settle()
        # a rerun decides each (alert, channel) once: what an earlier run decided with the same filter stands
        self._decided = self.store.t0_decisions([alert.id for _, alert in decoded],
                                                [channel.name for channel in self.channels]) if decoded else {}
        self._again = {}
        taken = [(origin, alert, takers) for origin, alert in decoded if (takers := self._filter(alert, batch))]
        stored = self.store.stored_datapoints({alert.stock for _, alert, _ in taken})
        # datapoints of this batch's stocks held in memory: the new ones are not in the store until
        # the batch commits, and stored ones a combiner needed are read once per batch
        points: dict[int, dict[int, DataPoint]] = {}  # stock -> id -> datapoint
        self._scheduled: set[tuple[str, str]] = set()
        payloads = {record.origin: record.payload for record in records}
        for origin, alert, takers in taken:
            known = stored.setdefault(alert.stock, {})
            new = self._new(origin, alert, takers, payloads, known, batch)
            if new is not None:
                self._ingest(origin, alert, takers, new, known, points.setdefault(alert.stock, {}), batch)
        for _, alert in decoded:
            for channel, sid in self._again.get(alert.id, ()):
                self._tickets(channel, alert.stock, sid, [], batch)
        return batch

    def _filter(self, alert: Alert, batch: IngestBatch) -> list[tuple[Channel, int]]:
        self.summary.alerts += 1
        takers = []
        taken_before = False
        views: dict[frozenset[str] | None, Alert] = {}  # channels of equal rights see one cut of the alert
        for channel in self.channels:
            before = self._decided.get((alert.id, channel.name))
            if before is not None and before[1] == channel.filter.trace.id:  # counted as then, nothing written
                getattr(self.summary, before[0])[channel.name] += 1
                if before[0] == "accepted":
                    taken_before = True
                    if before[2]:  # its T2 units (a variant's new ones) get tickets on that state
                        self._again.setdefault(alert.id, []).append((channel, before[2]))
                continue
            if not channel.sees(alert.trigger.tags):  # data rights come before any filter
                batch.rejected.append((alert.id, channel.name, alert.stock, channel.filter.trace.id, 0,
                                       "no access to the triggering datapoint"))
                self.summary.rejected[channel.name] += 1
                continue
            try:
                view = views.get(channel.access)
                if view is None:
                    view = views[channel.access] = _as_seen_by(alert, channel)
                accepted, code, reason = verdict(cast(AlertFilter, channel.filter.unit).process(view))
            except Exception as error:
                batch.failed.append((alert.id, channel.name, alert.stock, channel.filter.trace.id,
                                     f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}"))
                self.summary.failed[channel.name] += 1
                continue
            if accepted:
                takers.append((channel, code))
                self.summary.accepted[channel.name] += 1
            else:
                batch.rejected.append((alert.id, channel.name, alert.stock, channel.filter.trace.id, code, reason))
                self.summary.rejected[channel.name] += 1
        if takers or taken_before:
            self.summary.ingested += 1
        else:
            self.summary.unaccepted += 1
        return takers

    def _new(self, origin: str, alert: Alert, takers: list[tuple[Channel, int]], payloads: dict[str, bytes],
             known: dict[int, tuple[str, ...]], batch: IngestBatch) -> list[DataPoint] | None:
        """The alert's datapoints not in ``known`` (stored, or ingested earlier in this batch), in
        order. Those a format deferred (`LazyDataPoints`) are built now, and where the format can
        tell their ids first, only the new ones: a ZTF alert repeats its stock's stored history.
        When building fails, None: the alert counts as failed for the channels that took it and
        its bytes are quarantined."""
        try:
            points = alert.datapoints
            if isinstance(points, LazyDataPoints):
                return points.unknown(known)
            return [dp for dp in points if dp.id not in known]
        except Exception as error:
            reason = f"alert {alert.id}: datapoints could not be built: {type(error).__name__}: {error}"
            batch.quarantined.append((origin, reason, payloads.get(origin, b"")))
            for channel, _ in takers:
                batch.failed.append((alert.id, channel.name, alert.stock, channel.filter.trace.id, reason))
                self.summary.accepted[channel.name] -= 1
                self.summary.failed[channel.name] += 1
            self.summary.ingested -= 1
            self.summary.unaccepted += 1
            return None

    def _ingest(self, origin: str, alert: Alert, takers: list[tuple[Channel, int]], new: list[DataPoint],
                known: dict[int, tuple[str, ...]], points: dict[int, DataPoint], batch: IngestBatch) -> None:
        now = time.time()
        stock = alert.stock
        for dp in new:
            known[dp.id] = dp.tags
            points[dp.id] = dp
            batch.datapoints.append((dp, alert.id))
        batch.stocks[stock] = now
        position = alert_position(alert)
        if position is not None:
            batch.positions[stock] = position
        batch.names.add((stock, alert.stock_name))
        batch.tags.update((stock, tag) for tag in alert.tags)
        batch.alerts.append((alert.id, stock, origin))
        if self.keep_blobs:
            batch.blobs.extend((alert.id, name, data) for name, data in alert.blobs.items())
        # channels with equal rights and an equally configured combiner share one state
        visible: dict[tuple[frozenset[str] | None, str | None], list[int]] = {}
        for channel, _ in takers:
            key = (channel.access, channel.combiner.trace.id if channel.combiner else None)
            if key not in visible:
                visible[key] = _visible(channel, known)
        # the stored datapoints the combiners need, in one query for all of them
        missing = {i for (_, combiner), ids in visible.items() if combiner is not None for i in ids if i not in points}
        if missing:
            points.update(self._stored(stock, missing))
        states: dict[tuple[frozenset[str] | None, str | None], str] = {}
        for channel, code in takers:
            batch.channels.add((stock, channel.name))
            key = (channel.access, channel.combiner.trace.id if channel.combiner else None)
            if key not in states:
                ids = visible[key]
                if channel.combiner is not None:
                    chosen = sorted((points[i] for i in ids), key=lambda d: (d.time, d.id))
                    ids = list(channel.combiner.unit.combine(chosen))  # type: ignore[attr-defined]
                # no datapoint visible, no state: an empty state would be one id shared by every stock
                ids = sorted(set(ids))
                states[key] = state_id(ids) if ids else ""
                if states[key] and states[key] not in batch.states:
                    batch.states[states[key]] = State(states[key], stock, tuple(ids))
            sid = states[key]
            batch.journal.append(JournalEntry(stock, 0, "accepted", channel.name, channel.filter.trace.id, self.run,
                                              alert.id, {"code": code, "origin": origin, "state": sid or None}, now))
            if not sid:
                continue
            # the T1 record of this step is the channel_states row (stock, channel, state, alert, run)
            batch.channel_states.append((stock, channel.name, sid, alert.id))
            self._tickets(channel, stock, sid, new, batch)

    def _stored(self, stock: int, ids: set[int]) -> Iterator[tuple[int, DataPoint]]:
        """(id, datapoint) of these stored datapoints of ``stock``, each read from the store once
        while it stays in the cache: later alerts of a stock need its earlier datapoints again."""
        read = self._read.get(stock)
        if read is None:
            if self._read_size >= READ_CACHE:
                self._read.clear()
                self._read_size = 0
            read = self._read[stock] = {}
        unread = ids.difference(read)
        if unread:
            found = self.store.get_datapoints(stock, sorted(unread))
            read.update((dp.id, dp) for dp in found)
            self._read_size += len(found)
        return ((i, read[i]) for i in ids if i in read)

    def _tickets(self, channel: Channel, stock: int, sid: str, new: list[DataPoint], batch: IngestBatch) -> None:
        for configured in channel.t2:
            unit, trace = configured.unit, configured.trace.id
            if isinstance(unit, PointUnit):
                batch.tickets.extend(TicketSpec(configured.name, trace, "point", str(dp.id), stock, channel.name)
                                     for dp in new if channel.sees(dp.tags) and (unit.upper_limits or not dp.upper_limit))
            elif (trace, sid) not in self._scheduled:  # one ticket per unit instance and state, whichever channel
                self._scheduled.add((trace, sid))
                if isinstance(unit, StockUnit):
                    batch.tickets.append(TicketSpec(configured.name, trace, "stock", str(stock), stock, channel.name, sid))
                else:
                    batch.tickets.append(TicketSpec(configured.name, trace, "state", sid, stock, channel.name))




def _as_seen_by(alert: Alert, channel: Channel) -> Alert:
    """``alert`` with only the datapoints ``channel`` may see: a filter never sees (and so never
    decides on) history outside its channel's rights, e.g. ZTF_PRIV points of a ZTF_PUB channel.
    A format's `LazyDataPoints` stay lazy."""
    if channel.access is None:
        return alert
    points = alert.datapoints

    def visible(some: Sequence[DataPoint]) -> list[DataPoint]:
        # formats reuse a few tag tuples: the rights are checked once per distinct tuple
        allowed = {tags for tags in {dp.tags for dp in some} if channel.sees(tags)}
        return [dp for dp in some if dp.tags in allowed]

    if isinstance(points, LazyDataPoints):
        seen: Sequence[DataPoint] = LazyDataPoints(visible(points.detections),
                                                   lambda: visible(points.materialize()[len(points.detections):]))
    else:
        seen = visible(points)
        if len(seen) == len(points):
            return alert
    return dataclasses.replace(alert, datapoints=seen)


def _visible(channel: Channel, known: dict[int, tuple[str, ...]]) -> list[int]:
    """The ids of the datapoints in ``known`` (id -> tags) that ``channel`` may see. Formats reuse a
    few tag tuples, so the rights are checked once per distinct tuple, not once per datapoint."""
    if channel.access is None:
        return list(known)
    allowed = {tags for tags in set(known.values()) if channel.sees(tags)}
    return [i for i, tags in known.items() if tags in allowed]


def partition_of(stock: int, count: int) -> int:
    """The partition (0 .. count-1) that ingests ``stock``; uniform even for structured ids."""
    hashed = hashlib.blake2b(stock.to_bytes(8, "big", signed=True), digest_size=8).digest()
    return int.from_bytes(hashed, "big") % count


class StockPartition:
    """An alert format that keeps only the alerts of partition ``index`` of ``count``.

    Every record that cannot be decoded is quarantined (and counted) by exactly one partition.
    A format may offer ``stocks(payload, origin) -> set[int]``: the stock ids in a record, found
    more cheaply than by decoding it; partitions then skip, undecoded, the records of other
    partitions' stocks.
    """

    def __init__(self, alert_format: Any, index: int, count: int) -> None:
        self.alert_format, self.index, self.count = alert_format, index, count
        self._peek: Callable[[bytes, str], set[int]] | None = getattr(alert_format, "stocks", None)

    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        stocks: set[int] = set()
        if self._peek is not None and self.count > 1:
            try:
                stocks = set(self._peek(payload, origin))
            except Exception:
                stocks = set()  # decoding says what is wrong
            if stocks and all(partition_of(stock, self.count) != self.index for stock in stocks):
                return []
        try:
            alerts: list[Alert] = self.alert_format.decode(payload, origin)
        except PartialDecodeError as error:  # each partition ingests its own good alerts; one quarantines the rest
            owner = partition_of(min(stocks), self.count) if stocks else 0
            mine = [alert for alert in error.alerts if partition_of(alert.stock, self.count) == self.index]
            raise PartialDecodeError(origin, mine, error.rejects if self.index == owner else []) from None
        except Exception:
            if self.index == (partition_of(min(stocks), self.count) if stocks else 0):
                raise
            return []
        return [alert for alert in alerts if partition_of(alert.stock, self.count) == self.index]


def run_t0(store: Store, registry: Registry, task: T0Task, channels: Sequence[Channel], run: int,
           summary: RunSummary, report: Report | None = None, partition: tuple[int, int] = (0, 1)) -> None:
    """Run a T0 task (partition ``(index, count)`` of it) into ``store``: read the source in batches
    of ``task.batch_size`` records, ingest each batch in one transaction, then acknowledge it to the
    source (Kafka offsets) and ``report`` its counts. The source is closed however this ends."""
    index, count = partition
    source = build_component(registry, "sources", task.source.name, task.source.config)
    alert_format = build_component(registry, "formats", task.format.name, task.format.config)
    decode = alert_format.decode if count == 1 else StockPartition(alert_format, index, count).decode
    runtime = T0Runtime(store, channels, run, summary, task.keep_blobs, count_records=index == 0)
    started = time.perf_counter()
    # write-behind, for a store whose writes wait on a server (``write_behind``: PostgreSQL): a batch
    # is written (its transaction committed) by one writer thread while this thread reads and
    # decodes the next one; the next batch waits for that commit before it reads the store, and a
    # batch is acknowledged (counted, reported, its Kafka offsets committed) only once it is
    # committed. The writer waits on the server without the GIL, so decoding and the server's work
    # overlap. SQLite writes in this process, and its executemany gives up and takes back the GIL
    # for every row, which a busy decoding thread makes slow: it writes inline.
    writing: list[tuple[Future[None], RunSummary]] = []

    def settle() -> None:
        while writing:
            future, counts = writing[0]
            future.result()  # interrupted here, the batch stays to be settled (and counted) on the way out
            writing.pop(0)
            _acknowledge(runtime, counts, source, report)

    batch: list[SourceRecord] = []
    with (ThreadPoolExecutor(1, thread_name_prefix="ampel-t0-writer") if getattr(store, "write_behind", False)
          else _Inline()) as writer:
        try:
            for read, record in enumerate(source, 1):
                batch.append(record)
                if len(batch) >= task.batch_size:
                    _flush(runtime, batch, decode, settle, writer, writing)
                if task.limit is not None and read >= task.limit:
                    break
            _flush(runtime, batch, decode, settle, writer, writing)
            settle()
        except BaseException:
            with contextlib.suppress(Exception):  # a batch being written when the run stopped counts if it committed
                settle()
            raise
        finally:
            source.close()
            summary.t0_seconds += time.perf_counter() - started
            for name, size in getattr(source, "bytes_read", {}).items():  # what an archive source read
                summary.partition_bytes[name] = summary.partition_bytes.get(name, 0) + size


class _Inline:
    """A writer that writes at once, in this thread (for stores without ``write_behind``)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, write: Callable[[IngestBatch], None], batch: IngestBatch) -> Future[None]:
        done: Future[None] = Future()
        write(batch)  # an error propagates here, before the batch is acknowledged
        done.set_result(None)
        return done


def _flush(runtime: T0Runtime, batch: list[SourceRecord], decode: Callable[[bytes, str], list[Alert]],
           settle: Callable[[], None], writer: ThreadPoolExecutor | _Inline, writing: list[tuple[Future[None], RunSummary]]) -> None:
    if not batch:
        return
    prepared, counts = runtime.prepare(batch, decode, settle)
    settle()  # a batch that decoded nothing never read the store: the previous one is still to settle
    writing.append((writer.submit(runtime.write, prepared), counts))
    batch.clear()
    if isinstance(writer, _Inline):
        settle()  # written: acknowledge it now


def _acknowledge(runtime: T0Runtime, counts: RunSummary, source: Any, report: Report | None) -> None:
    runtime.acknowledge(counts)
    source.commit()  # only now is the batch durable: acknowledge it upstream (Kafka offsets)
    if report is not None:
        report(0, batch_counts(counts, _BATCH_COUNTERS))
