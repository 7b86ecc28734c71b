"""The T2 runtime: claim tickets with a lease, run each ticket's unit (dependencies first for tied
units), retry with exponential backoff, store results or errors with their traceback.

`run_t2` is the loop every driver runs (``ampel job``, its worker processes, Dask tasks and
``ampel worker t2``): tickets until none is left, or, for a long-lived worker, until told to stop.
`stop_on_signals` turns SIGINT / SIGTERM into such a stop: the current ticket is finished and the
tickets claimed but not started are handed back at once, so a rerun never waits for their lease.

Claims are sized so that the workers finish together (`claim_size`): a fixed batch of 50 lets 16
workers take 800 of 930 tickets in the first round and leaves the tail to three of them. A worker
claims at most ``remaining / (CLAIM_SHARE x workers)`` tickets (guided self-scheduling: claims
shrink as the queue drains, down to one ticket each in the tail), and at most `CLAIM_SECONDS` of
work at the unit's measured pace (a slow unit, a fit taking seconds, is claimed one ticket at a
time). ``workers`` is the number the driver started, or the number of workers holding leases in
the store now plus this one (``ampel worker t2`` on many hosts), whichever is larger.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.jobs import T2Task
from ampel_core.models import Result
from ampel_core.registry import Registry
from ampel_core.runtime.configured import (
    ConfiguredUnit, DependencyFailed, call_unit, configure, configure_dependencies, t2_body,
)
from ampel_core.runtime.run import ENDED, Report, RunSummary, process_alive
from ampel_core.runtime.t3 import stock_view
from ampel_core.store import Store, Ticket
from ampel_core.units import StockUnit, TiedStateUnit, UnitRef
from ampel_core.views import StateView

__all__ = ["CLAIM_SECONDS", "CLAIM_SHARE", "T2Runtime", "claim_size", "release_gone_workers", "run_t2",
           "stop_on_signals"]

CLAIM_SHARE = 2
"""A claim takes at most 1 / (CLAIM_SHARE x workers) of the tickets left."""
CLAIM_SECONDS = 2.0
"""A claim holds at most about this much work at the measured seconds per ticket (at least one ticket)."""


_log = logging.getLogger("ampel")


def _never() -> bool:
    return False


def claim_size(batch_size: int, remaining: int, workers: int, seconds_per_ticket: float | None = None) -> int:
    """How many tickets to claim: at most ``batch_size``, at most ``remaining / (CLAIM_SHARE x
    workers)`` (rounded up) and at most `CLAIM_SECONDS` of work at ``seconds_per_ticket`` (None:
    not measured yet); always at least one."""
    size = min(batch_size, -(-remaining // (CLAIM_SHARE * max(workers, 1))))
    if seconds_per_ticket:
        size = min(size, int(CLAIM_SECONDS / seconds_per_ticket))
    return max(1, size)


def release_gone_workers(store: Store) -> int:
    """Hand back at once the tickets leased to workers that are provably gone: a process of this
    host that no longer runs, or one whose run has ended (interrupted, killed, failed, stopped).
    Leases of workers on other hosts run out on their own. Returns how many tickets."""
    released = 0
    for owner, _, _ in store.leases():
        host, _, rest = owner.partition(":")
        pid, _, rest = rest.partition(":")
        run, _, _ = rest.partition(":")
        gone = process_alive(host, int(pid) if pid.isdecimal() else None) is False
        if not gone and run.isdecimal() and int(run):
            recorded = store.get_run(int(run))
            gone = recorded is not None and recorded.status in ENDED
        if gone:
            released += store.release_tickets(owner)
    if released:
        _log.warning("handed back %d ticket(s) leased to workers that are gone", released)
    return released


class T2Runtime:
    """Runs T2 tickets. Units are rebuilt from the trace stored with the ticket; when the installed
    code or version no longer gives that trace, the ticket fails with a message saying so."""

    def __init__(self, store: Store, registry: Registry, task: T2Task, run: int | None, summary: RunSummary,
                 report: Report | None = None, owner: str | None = None, workers: int = 1) -> None:
        self.store, self.registry, self.task, self.run, self.summary = store, registry, task, run, summary
        self.report, self.workers = report, workers
        self.seconds_per_ticket: float | None = None  # measured over the last claim
        self._pending: int | None = None  # tickets pending, counted or guessed (`claim_size`)
        self._workers = workers
        # host:pid:run:instance — a later run can tell that the claimer is gone (`release_gone_workers`)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{run or 0}:{id(self):x}"
        self._waiting_said = 0.0
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

    def run_once(self, should_stop: Callable[[], bool] = _never) -> int:
        """Claim and run one batch of tickets; return how many were claimed. When ``should_stop``
        turns true, the tickets not yet started are handed back at once."""
        tickets = self.store.claim_tickets(self.owner, self.claim_size(), self.task.lease, self.task.channels)
        started = time.perf_counter()
        for position, ticket in enumerate(tickets):
            if should_stop():
                for unstarted in tickets[position:]:
                    self.store.retry_ticket(unstarted, "handed back by a stopping worker", 0.0, self.owner, counts=False)
                break
            self.run_ticket(ticket)
        if tickets:
            self.seconds_per_ticket = (time.perf_counter() - started) / len(tickets)
        return len(tickets)

    def claim_size(self) -> int:
        """The size of the next claim (`claim_size`). The pending tickets and the workers holding
        leases are counted in the store only near the tail: while far more tickets are pending than
        full claims could take, a guess (the last count less what every worker may have claimed
        since) says so without a query."""
        if self.task.batch_size == 1:
            return 1
        if self._pending is None or self._pending < 4 * CLAIM_SHARE * self._workers * self.task.batch_size:
            self._pending = self.store.ticket_status().get("pending", 0)
            others = {owner for owner, _, _ in self.store.leases() if owner != self.owner}
            self._workers = max(self.workers, len(others) + 1)
        size = claim_size(self.task.batch_size, self._pending, self._workers, self.seconds_per_ticket)
        self._pending -= size * self._workers  # the others claim too: a pessimistic guess until the next count
        return size

    def run_until_idle(self, should_stop: Callable[[], bool] = _never) -> None:
        """Run tickets until none is open (pending, or leased to another worker) or ``should_stop``."""
        while not should_stop():
            before = (self.summary.tickets_done, self.summary.tickets_failed, self.summary.tickets_retried)
            claimed = self.run_once(should_stop)
            if claimed:
                if self.report is not None:
                    done, failed, retried = (now - then for now, then in zip(
                        (self.summary.tickets_done, self.summary.tickets_failed, self.summary.tickets_retried),
                        before, strict=True))
                    self.report(2, {"tickets": claimed, "tickets_done": done, "tickets_failed": failed,
                                    "tickets_retried": retried})
                continue
            due = self.store.next_ticket_time(self.task.channels)
            if due is None:
                return
            if due - time.time() > 2 and time.monotonic() - self._waiting_said > 60:
                self._say_waiting(due)
            time.sleep(min(max(due - time.time(), 0.01), 1.0))

    def _say_waiting(self, due: float) -> None:
        """Tell why nothing happens: tickets leased to other workers, and until when."""
        self._waiting_said = time.monotonic()
        others = [(owner, count) for owner, count, _ in self.store.leases() if owner != self.owner]
        if others:
            hosts = sorted({owner.partition(":")[0] for owner, _ in others})
            _log.warning("waiting for %d ticket(s) leased to %d other worker(s) on %s until %s (their lease; a "
                         "worker that is gone hands them back when it ends)", sum(c for _, c in others), len(others),
                         ", ".join(hosts), time.strftime("%H:%M:%S", time.localtime(due)))

    def run_ticket(self, ticket: Ticket) -> None:
        try:
            configured = self.unit_for(ticket.trace)
            output = self._process(configured, ticket)
            if output is _DEFER:
                self.store.retry_ticket(ticket, "waiting for dependencies", time.time() + 0.05, self.owner, counts=False)
                return
            body = t2_body(ticket.unit, output)
        except Exception as error:
            self._fail(ticket, error)
            return
        if self.store.finish_ticket(ticket, self._result(ticket, "ok", body), self.owner):
            self.summary.tickets_done += 1

    def _result(self, ticket: Ticket, status: str, body: dict[str, Any]) -> Result:
        return Result(ticket.unit, ticket.trace, ticket.link_kind, ticket.link, ticket.stock, body, status, self.run)  # type: ignore[arg-type]

    def _fail(self, ticket: Ticket, error: Exception) -> None:
        detail = "".join(traceback.format_exception(error))
        permanent = isinstance(error, AmpelError) or ticket.attempts >= self.task.max_attempts
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
        dependencies = None
        if ticket.link_kind == "point":
            subject: Any = self.store.get_datapoints(ticket.stock, [int(ticket.link)])[0]
        elif ticket.link_kind == "stock":
            subject = stock_view(self.store, ticket.stock, ticket.channel, None)
        else:
            subject = self._state_view(ticket)
            if isinstance(unit, TiedStateUnit):
                dependencies = self._dependencies(unit, ticket)
                if dependencies is None:
                    return _DEFER
        return call_unit(unit, subject, dependencies)

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
            self._dependencies_of[ticket.trace] = configure_dependencies(self.registry, unit)
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




_DEFER = object()


def run_t2(store: Store, registry: Registry, task: T2Task, run: int | None, summary: RunSummary,
           report: Report | None = None, should_stop: Callable[[], bool] = _never, poll: float | None = None,
           workers: int = 1) -> None:
    """Run tickets until none is left; with ``poll`` (seconds), keep polling for new ones until
    ``should_stop`` (a long-lived worker). Each claimed batch is ``report``-ed. ``workers``: how
    many workers the driver started (sizes the claims, `claim_size`)."""
    release_gone_workers(store)
    runtime = T2Runtime(store, registry, task, run, summary, report, workers=workers)
    while not should_stop():
        runtime.run_until_idle(should_stop)
        if poll is None:
            return
        deadline = time.monotonic() + poll
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.1, poll))


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """A ``should_stop`` for `run_t2` that turns true on the first SIGINT or SIGTERM; a second
    SIGINT raises KeyboardInterrupt as usual. Outside the main thread (Dask worker threads) no
    handler can be installed and ``should_stop`` stays false."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop.is_set
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop.is_set
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
