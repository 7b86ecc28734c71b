"""The runtime of the four tiers and of a whole job.

- T0 (`run_t0`): source -> alert format -> each channel's filter -> ingest (stock, new datapoints,
  journal) -> T1 state per accepting channel -> T2 tickets, one transaction per batch.
- T2 (`run_t2`): claim tickets with a lease, run the unit (dependencies first for tied units),
  retry with exponential backoff, store results or errors with traceback.
- T3 (`run_t3`): select stocks, build read-only views with their latest results, run react units.
- `run_job`: records the run (job digest, environment) and runs the job's tasks in order.

Every alert read is accounted for in the `RunSummary`: accepted / rejected / failed per channel,
quarantined records, and the alerts no channel took.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import socket
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from ampel_core.alerts import AlertDecodeError, SourceRecord
from ampel_core.errors import AmpelError
from ampel_core.jobs import ChannelConfig, Job, Selection, T0Task, T2Task, T3Task, UnitSpec
from ampel_core.models import Alert, DataPoint, JournalEntry, Result, State, Trace
from ampel_core.provenance import canonical_json, code_digest, digest, make_trace, resource_digests, state_id
from ampel_core.registry import Registry, get_registry
from ampel_core.store import IngestBatch, Store, Ticket, TicketSpec, open_store
from ampel_core.units import (
    AlertFilter, Combiner, PointUnit, ReactUnit, Reject, StateUnit, StockUnit, T2Unit, TiedStateUnit, Unit, UnitRef,
    build_unit,
)
from ampel_core.views import StateView, StockView

Progress = Callable[[str, int], None]  # (task label, items done since last call)


@dataclass
class RunSummary:
    """Counters of one run; ``alerts == sum over outcomes`` for every channel."""

    run: int = 0
    records: int = 0
    alerts: int = 0
    quarantined: int = 0
    ingested: int = 0  # alerts taken by at least one channel
    unaccepted: int = 0  # alerts no channel took (rejected or failed everywhere)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    tickets_done: int = 0
    tickets_failed: int = 0
    tickets_retried: int = 0
    reports: int = 0
    reports_failed: int = 0
    t0_seconds: float = 0.0
    wall_seconds: float = 0.0
    status: str = "running"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("accepted", "rejected", "failed"):
            data[key] = dict(sorted(getattr(self, key).items()))
        data["alerts_per_second"] = round(self.alerts / self.t0_seconds, 1) if self.t0_seconds else None
        return data


@dataclass(frozen=True)
class ConfiguredUnit:
    """A unit instance with its trace."""

    name: str
    unit: Unit
    trace: Trace


def configure(registry: Registry, spec: UnitSpec | UnitRef) -> ConfiguredUnit:
    """Build a unit from its spec and compute its trace (UnitConfigError names unit and field)."""
    cls = registry.unit_class(spec.unit)
    unit = build_unit(cls, dict(spec.config or {}))
    component = registry.units[spec.unit]
    trace = make_trace(spec.unit, component.distribution, component.version, code_digest(cls),
                       resource_digests(unit.resources()), unit.model_dump(mode="json"))
    return ConfiguredUnit(spec.unit, unit, trace)


@dataclass
class Channel:
    """A channel ready to run: its units configured, T2 units ordered dependencies first."""

    name: str
    access: frozenset[str] | None
    filter: ConfiguredUnit
    combiner: ConfiguredUnit | None
    t2: list[ConfiguredUnit]

    @classmethod
    def build(cls, registry: Registry, config: ChannelConfig) -> Channel:
        filter_unit = configure(registry, config.filter)
        if not isinstance(filter_unit.unit, AlertFilter):
            raise AmpelError(f"channel '{config.name}': filter '{config.filter.unit}' is not an AlertFilter (T0) unit")
        combiner = configure(registry, config.combiner) if config.combiner else None
        if combiner and not isinstance(combiner.unit, Combiner):
            raise AmpelError(f"channel '{config.name}': combiner '{config.combiner.unit}' is not a Combiner (T1) unit")  # type: ignore[union-attr]
        t2: dict[str, ConfiguredUnit] = {}
        for spec in config.t2:
            _add_with_dependencies(registry, configure(registry, spec), t2, config.name)
        return cls(config.name, frozenset(config.access) or None, filter_unit, combiner, list(t2.values()))

    def traces(self) -> list[Trace]:
        units = [self.filter, *([self.combiner] if self.combiner else []), *self.t2]
        return [u.trace for u in units]

    def sees(self, tags: Iterable[str]) -> bool:
        return self.access is None or not self.access.isdisjoint(tags)


def _add_with_dependencies(registry: Registry, configured: ConfiguredUnit, into: dict[str, ConfiguredUnit],
                           channel: str, chain: tuple[str, ...] = ()) -> None:
    if not isinstance(configured.unit, T2Unit):
        raise AmpelError(f"channel '{channel}': '{configured.name}' in t2 is not a T2 unit (it is tier {configured.unit.tier})")
    if configured.trace.id in into:
        return
    if configured.name in chain:
        raise AmpelError(f"channel '{channel}': dependency cycle {' -> '.join((*chain, configured.name))}")
    if isinstance(configured.unit, TiedStateUnit):
        for ref in configured.unit.dependencies():
            _add_with_dependencies(registry, configure(registry, ref), into, channel, (*chain, configured.name))
    into[configured.trace.id] = configured


def _verdict(value: object) -> tuple[bool, int, str]:
    """(accepted, code, reason) from what a filter returned."""
    if isinstance(value, Reject):
        return False, value.code, value.reason
    if value is True:
        return True, 1, ""
    if value is None or value is False:
        return False, 0, ""
    if isinstance(value, int):
        return (value > 0), value, ""
    raise TypeError(f"filter returned {value!r}; expected bool, int or Reject")


# T0 --------------------------------------------------------------------------------------------


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
                 keep_blobs: bool = True, hook: Any = None) -> None:
        self.store, self.channels, self.run, self.summary, self.keep_blobs = store, channels, run, summary, keep_blobs
        self.hook = hook  # the plugin manager's hook relay, for the ampel_batch_done observers

    def process(self, records: Sequence[SourceRecord], decode: Callable[[bytes, str], list[Alert]]) -> None:
        with _few_collections():
            self._process(records, decode)

    def _process(self, records: Sequence[SourceRecord], decode: Callable[[bytes, str], list[Alert]]) -> None:
        batch = IngestBatch(self.run)
        decoded: list[tuple[str, Alert]] = []
        for record in records:
            self.summary.records += 1
            try:
                decoded.extend((record.origin, alert) for alert in decode(record.payload, record.origin))
            except AlertDecodeError as error:
                batch.quarantined.append((record.origin, str(error), record.payload))
                self.summary.quarantined += 1
            except Exception as error:  # a decoder bug must not stop the run; keep the bytes
                batch.quarantined.append((record.origin, f"decoder raised {type(error).__name__}: {error}", record.payload))
                self.summary.quarantined += 1
        taken = [(origin, alert, takers) for origin, alert in decoded if (takers := self._filter(alert, batch))]
        stored = self.store.stored_datapoints({alert.stock for _, alert, _ in taken})
        # datapoints of this batch's stocks held in memory: the new ones are not in the store until
        # the batch commits, and stored ones a combiner needed are read once per batch
        points: dict[int, dict[int, DataPoint]] = {}  # stock -> id -> datapoint
        self._scheduled: set[tuple[str, str]] = set()
        payloads = {record.origin: record.payload for record in records}
        for origin, alert, takers in taken:
            if self._complete(origin, alert, takers, payloads, batch):
                stock = alert.stock
                self._ingest(origin, alert, takers, stored.setdefault(stock, {}), points.setdefault(stock, {}), batch)
        self.store.ingest(batch)

    def _filter(self, alert: Alert, batch: IngestBatch) -> list[tuple[Channel, int]]:
        self.summary.alerts += 1
        takers = []
        for channel in self.channels:
            if not channel.sees(alert.trigger.tags):  # data rights come before any filter
                batch.rejected.append((alert.id, channel.name, alert.stock, channel.filter.trace.id, 0,
                                       "no access to the triggering datapoint"))
                self.summary.rejected[channel.name] += 1
                continue
            try:
                accepted, code, reason = _verdict(cast(AlertFilter, channel.filter.unit).process(alert))
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
        if takers:
            self.summary.ingested += 1
        else:
            self.summary.unaccepted += 1
        return takers

    def _complete(self, origin: str, alert: Alert, takers: list[tuple[Channel, int]], payloads: dict[str, bytes],
                  batch: IngestBatch) -> bool:
        """Build the datapoints a format deferred (`LazyDataPoints`); when that fails, the alert
        counts as failed for the channels that took it and its bytes are quarantined."""
        try:
            len(alert.datapoints)
            return True
        except Exception as error:
            reason = f"alert {alert.id}: datapoints could not be built: {type(error).__name__}: {error}"
            batch.quarantined.append((origin, reason, payloads.get(origin, b"")))
            for channel, _ in takers:
                batch.failed.append((alert.id, channel.name, alert.stock, channel.filter.trace.id, reason))
                self.summary.accepted[channel.name] -= 1
                self.summary.failed[channel.name] += 1
            self.summary.ingested -= 1
            self.summary.unaccepted += 1
            return False

    def _ingest(self, origin: str, alert: Alert, takers: list[tuple[Channel, int]],
                known: dict[int, tuple[str, ...]], points: dict[int, DataPoint], batch: IngestBatch) -> None:
        now = time.time()
        stock = alert.stock
        new = [dp for dp in alert.datapoints if dp.id not in known]
        for dp in new:
            known[dp.id] = dp.tags
            points[dp.id] = dp
            batch.datapoints.append((dp, alert.id))
        batch.stocks[stock] = now
        batch.names.add((stock, alert.stock_name))
        batch.tags.update((stock, tag) for tag in alert.tags)
        batch.alerts.append((alert.id, stock, origin))
        if self.keep_blobs:
            batch.blobs.extend((alert.id, name, data) for name, data in alert.blobs.items())
        # channels with equal rights and an equally configured combiner share one state
        states: dict[tuple[frozenset[str] | None, str | None], str] = {}
        for channel, code in takers:
            batch.channels.add((stock, channel.name))
            key = (channel.access, channel.combiner.trace.id if channel.combiner else None)
            if key not in states:
                visible = list(known) if channel.access is None else [i for i, tags in known.items() if channel.sees(tags)]
                if channel.combiner is not None:
                    missing = [i for i in visible if i not in points]
                    points.update((dp.id, dp) for dp in self.store.get_datapoints(stock, missing))
                    chosen = sorted((points[i] for i in visible), key=lambda d: (d.time, d.id))
                    visible = list(channel.combiner.unit.combine(chosen))  # type: ignore[attr-defined]
                # no datapoint visible, no state: an empty state would be one id shared by every stock
                ids = sorted(set(visible))
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


def run_t0(store: Store, registry: Registry, task: T0Task, channels: Sequence[Channel], run: int,
           summary: RunSummary, progress: Progress | None = None) -> None:
    source = build_component(registry, "sources", task.source.name, task.source.config)
    alert_format = build_component(registry, "formats", task.format.name, task.format.config)
    runtime = T0Runtime(store, channels, run, summary, task.keep_blobs, registry.manager.hook)
    started = time.perf_counter()
    batch: list[SourceRecord] = []
    try:
        for read, record in enumerate(source, 1):
            batch.append(record)
            if len(batch) >= task.batch_size:
                _flush(runtime, batch, alert_format, source, progress)
            if task.limit is not None and read >= task.limit:
                break
        _flush(runtime, batch, alert_format, source, progress)
    finally:
        source.close()
        summary.t0_seconds += time.perf_counter() - started


def _flush(runtime: T0Runtime, batch: list[SourceRecord], alert_format: Any, source: Any, progress: Progress | None) -> None:
    if not batch:
        return
    counted = ("records", "alerts", "quarantined", "ingested", "unaccepted")
    before = [getattr(runtime.summary, name) for name in counted]
    runtime.process(batch, alert_format.decode)
    source.commit()  # only now is the batch durable: acknowledge it upstream (Kafka offsets)
    if runtime.hook is not None:
        counts = {name: getattr(runtime.summary, name) - old for name, old in zip(counted, before, strict=True)}
        runtime.hook.ampel_batch_done(run_id=runtime.run, tier=0, counts=counts)
    if progress:
        progress("T0 alerts", len(batch))
    batch.clear()


def build_component(registry: Registry, kind: str, name: str, config: dict[str, Any]) -> Any:
    """Instantiate an alert source or format by registered name; errors name it and the field."""
    from pydantic import ValidationError

    cls = registry.component(kind, name)
    try:
        return cls(**config)
    except ValidationError as error:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in error.errors())
        raise AmpelError(f"{kind[:-1]} '{name}': invalid config: {problems}") from None


# T2 --------------------------------------------------------------------------------------------


class T2Runtime:
    """Runs T2 tickets. Units are rebuilt from the trace stored with the ticket; when the installed
    code or version no longer gives that trace, the ticket fails with a message saying so."""

    def __init__(self, store: Store, registry: Registry, task: T2Task, run: int | None, summary: RunSummary,
                 owner: str | None = None) -> None:
        self.store, self.registry, self.task, self.run, self.summary = store, registry, task, run, summary
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._units: dict[str, ConfiguredUnit | str] = {}
        self._dependencies_of: dict[str, list[ConfiguredUnit]] = {}

    def unit_for(self, trace_id: str) -> ConfiguredUnit:
        if trace_id not in self._units:
            trace = self.store.get_trace(trace_id)
            try:
                if trace is None:
                    raise AmpelError(f"trace {trace_id} is not in the store")
                configured = configure(self.registry, UnitRef(trace.unit, trace.config))
                if configured.trace.id != trace_id:
                    changed = [k for k in ("version", "code", "resources", "config")
                               if getattr(configured.trace, k) != getattr(trace, k)]
                    raise AmpelError(f"unit {trace.unit}: the installed {', '.join(changed)} differ(s) from the ticket's "
                                     f"trace {trace_id[:12]}…; re-run T0 with the current code to make new tickets")
                self._units[trace_id] = configured
            except Exception as error:
                self._units[trace_id] = f"{type(error).__name__}: {error}"
        value = self._units[trace_id]
        if isinstance(value, str):
            raise AmpelError(value)
        return value

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Claim and run one batch of tickets; return how many were claimed. When ``should_stop``
        turns true, the tickets not yet started are handed back at once."""
        tickets = self.store.claim_tickets(self.owner, self.task.batch_size, self.task.lease, self.task.channels)
        for position, ticket in enumerate(tickets):
            if should_stop():
                for unstarted in tickets[position:]:
                    self.store.retry_ticket(unstarted, "handed back by a stopping worker", 0.0, self.owner, counts=False)
                break
            self.run_ticket(ticket)
        return len(tickets)

    def run_until_idle(self, progress: Progress | None = None, should_stop: Callable[[], bool] = lambda: False) -> None:
        while not should_stop():
            claimed = self.run_once(should_stop)
            if claimed:
                if progress:
                    progress("T2 tickets", claimed)
                if self.run is not None:
                    self.registry.manager.hook.ampel_batch_done(run_id=self.run, tier=2, counts={"tickets": claimed})
                continue
            due = self.store.next_ticket_time(self.task.channels)
            if due is None:
                return
            time.sleep(min(max(due - time.time(), 0.01), 1.0))

    def run_ticket(self, ticket: Ticket) -> None:
        try:
            configured = self.unit_for(ticket.trace)
            body = self._process(configured, ticket)
            if body is _DEFER:
                self.store.retry_ticket(ticket, "waiting for dependencies", time.time() + 0.05, self.owner, counts=False)
                return
            canonical_json(body)
            if not isinstance(body, dict):
                raise TypeError(f"unit {ticket.unit} returned {type(body).__name__}, expected a dict")
        except Exception as error:
            self._fail(ticket, error)
            return
        if self.store.finish_ticket(ticket, self._result(ticket, "ok", body), self.owner):
            self.summary.tickets_done += 1

    def _result(self, ticket: Ticket, status: str, body: dict[str, Any]) -> Result:
        return Result(ticket.unit, ticket.trace, ticket.link_kind, ticket.link, ticket.stock, body, status, self.run)  # type: ignore[arg-type]

    def _fail(self, ticket: Ticket, error: Exception) -> None:
        detail = "".join(traceback.format_exception(error))
        permanent = isinstance(error, (AmpelError, DependencyFailed)) or ticket.attempts >= self.task.max_attempts
        if permanent:
            body = {"exception": type(error).__name__, "message": str(error), "traceback": detail, "attempts": ticket.attempts}
            if self.store.finish_ticket(ticket, self._result(ticket, "error", body), self.owner):
                self.summary.tickets_failed += 1
        else:
            delay = self.task.backoff * 2 ** (ticket.attempts - 1)
            self.store.retry_ticket(ticket, detail, time.time() + delay, self.owner)
            self.summary.tickets_retried += 1

    def _process(self, configured: ConfiguredUnit, ticket: Ticket) -> Any:
        unit = configured.unit
        if isinstance(unit, PointUnit):
            return unit.process(self.store.get_datapoints(ticket.stock, [int(ticket.link)])[0])
        if isinstance(unit, StockUnit):
            return unit.process(stock_view(self.store, ticket.stock, ticket.channel, None))
        state = self._state_view(ticket)
        if isinstance(unit, TiedStateUnit):
            dependencies = self._dependencies(unit, ticket)
            if dependencies is None:
                return _DEFER
            return unit.process(state, dependencies)
        if isinstance(unit, StateUnit):
            return unit.process(state)
        raise AmpelError(f"unit {ticket.unit} is not a T2 unit")

    def _state_view(self, ticket: Ticket) -> StateView:
        state = self.store.get_state(ticket.link)
        if state is None:
            raise AmpelError(f"state {ticket.link} of ticket {ticket.id} is not in the store")
        stock = self.store.get_stock(ticket.stock)
        name = stock.names[0] if stock and stock.names else str(ticket.stock)
        return StateView(state.id, state.stock, name, ticket.channel, tuple(self.store.get_datapoints(state.stock, state.datapoints)))

    def _dependencies(self, unit: TiedStateUnit, ticket: Ticket) -> dict[str, dict[str, Any]] | None:
        """Dependency results by unit name; None while one is still pending."""
        found = {}
        if ticket.trace not in self._dependencies_of:  # configure once: it hashes resource files
            self._dependencies_of[ticket.trace] = [configure(self.registry, ref) for ref in unit.dependencies()]
        for dependency in self._dependencies_of[ticket.trace]:
            name = dependency.name
            kind, link = ("stock", str(ticket.stock)) if isinstance(dependency.unit, StockUnit) else ("state", ticket.link)
            results = [r for _, r in self.store.results(link=link, unit=name) if r.trace == dependency.trace.id]
            ok = [r for r in results if r.status == "ok"]
            if ok:
                found[name] = ok[-1].body or {}
                continue
            statuses = self.store.ticket_states(dependency.trace.id, kind, link)
            if not statuses or all(s == "failed" for s in statuses):
                why = "failed" if statuses else "has no ticket (is it in the channel's t2 list?)"
                raise DependencyFailed(f"dependency {name} of {ticket.unit} on {kind} {link[:16]} {why}")
            return None
        return found


class DependencyFailed(RuntimeError):
    pass


_DEFER = object()


def run_t2(store: Store, registry: Registry, task: T2Task, run: int | None, summary: RunSummary,
           progress: Progress | None = None) -> None:
    T2Runtime(store, registry, task, run, summary).run_until_idle(progress)


# T3 --------------------------------------------------------------------------------------------


def stock_view(store: Store, stock: int, channel: str | None, access: frozenset[str] | None,
               traces: set[str] | None = None) -> StockView:
    """A stock as ``channel`` sees it: datapoints within ``access``, its latest state and the newest
    successful result of each state/tied unit on that state and of each stock unit — only results
    of the given unit ``traces`` when given (so an old model's results never pass for a new one's)."""
    info = store.get_stock(stock)
    datapoints = tuple(dp for dp in store.stock_datapoints(stock) if access is None or not access.isdisjoint(dp.tags))
    states = store.channel_states(stock, channel)
    latest = states[-1][1] if states else None
    results: dict[str, dict[str, Any]] = {}
    for _, result in store.results(stock=stock):
        if result.status == "ok" and (result.link == latest or result.link_kind == "stock") and (
                traces is None or result.trace in traces):
            results[result.unit] = result.body or {}
    return StockView(stock, info.names if info else (), info.channels if info else (), info.tags if info else (),
                     datapoints, latest, results, channel)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b, "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b, "in": lambda a, b: a in b, "exists": lambda a, b: (a is not None) == b,
}


def matches(view: StockView, predicates: dict[str, Any]) -> bool:
    """Whether the view's latest results satisfy every predicate (see `Selection.results`)."""
    from ampel_core.builtin_units import lookup

    for path, condition in predicates.items():
        value = lookup(view, path)
        tests = condition.items() if isinstance(condition, dict) else [("eq", condition)]
        for op, expected in tests:
            if op not in _OPERATORS:
                raise AmpelError(f"unknown result predicate operator '{op}' for '{path}'; use one of {sorted(_OPERATORS)}")
            if not _OPERATORS[op](value, expected):
                return False
    return True


def select_views(store: Store, selection: Selection, channels: dict[str, Channel]) -> list[StockView]:
    channel = channels.get(selection.channel) if selection.channel else None
    stocks = store.select_stocks(selection.channel, selection.tags, selection.updated_after, selection.updated_before)
    traces = {t.id for t in channel.traces()} if channel else None
    views = [stock_view(store, s, selection.channel, channel.access if channel else None, traces) for s in stocks]
    return [v for v in views if matches(v, selection.results)]


def run_t3(store: Store, registry: Registry, task: T3Task, channels: dict[str, Channel], run: int,
           summary: RunSummary) -> None:
    views = select_views(store, task.select, channels)
    for spec in task.react:
        configured = configure(registry, spec)
        if not isinstance(configured.unit, ReactUnit):
            raise AmpelError(f"T3 react unit '{spec.unit}' is not a ReactUnit")
        store.add_traces([configured.trace])
        try:
            report = configured.unit.process(views)
            summary.reports += 1
        except Exception as error:
            report = {"exception": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()}
            summary.reports_failed += 1
        store.add_report(run, task.select.channel, spec.unit, configured.trace.id, report)


# jobs ------------------------------------------------------------------------------------------


def environment(registry: Registry) -> dict[str, Any]:
    """What a run ran on: Python, platform, every plugin distribution and key libraries."""
    from importlib import metadata

    libraries = {}
    for name in ("numpy", "astropy", "pydantic", "fastavro", "cavro", "sncosmo", "iminuit", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libraries[name] = metadata.version(name)
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "host": socket.gethostname(),
            "plugins": {name: version for name, version, _ in registry.plugins()}, "libraries": libraries}


@contextlib.contextmanager
def recorded_run(job: Job, registry: Registry, channels: dict[str, Channel]) -> Iterator[RunSummary]:
    """Record one run of ``job``: start it (job digest, environment, the channels' unit traces),
    yield its summary, and end it with its status and counts however the body exits. The store is
    open only to record: the body opens its own connections."""
    document = job.model_dump(mode="json")
    summary = RunSummary()
    started = time.perf_counter()
    store = open_store(job.store)
    try:
        summary.run = store.start_run(digest(document), document, environment(registry))
        store.add_traces(t for channel in channels.values() for t in channel.traces())
    finally:
        store.close()
    registry.manager.hook.ampel_run_started(run_id=summary.run, job=document)
    try:
        yield summary
        summary.status = "ok"
    except KeyboardInterrupt:
        summary.status = "interrupted"
        raise
    except BaseException:
        summary.status = "failed"
        raise
    finally:
        summary.wall_seconds = time.perf_counter() - started
        store = open_store(job.store)
        store.end_run(summary.run, summary.status, summary.as_dict())
        store.close()
        registry.manager.hook.ampel_run_finished(run_id=summary.run, summary=summary.as_dict())


def run_job(job: Job, progress: Progress | None = None, registry: Registry | None = None) -> RunSummary:
    """Run every task of ``job`` against its store and record the run. Units are configured (and
    their config validated) before anything is written."""
    registry = registry or get_registry()
    channels = {config.name: Channel.build(registry, config) for config in job.channels}
    with recorded_run(job, registry, channels) as summary:
        store = open_store(job.store)
        try:
            for task in job.tasks:
                if isinstance(task, T0Task):
                    selected = [channels[name] for name in task.channels] if task.channels else list(channels.values())
                    run_t0(store, registry, task, selected, summary.run, summary, progress)
                elif isinstance(task, T2Task):
                    run_t2(store, registry, task, summary.run, summary, progress)
                else:
                    run_t3(store, registry, task, channels, summary.run, summary)
        finally:
            store.close()
    return summary
