"""The store: where stocks, datapoints, states, results, tickets, runs and the journal live.

`Store` is the contract every backend fulfils (the contract test suite in
`ampel_core.store_contract.StoreContract` checks it through the protocol alone, so a backend that is
not SQL can pass it); `IngestBatch` is what one T0 batch writes, `Ticket` / `TicketSpec` are T2
work. Open a store by URL with `open_store` (backends are registered per URL scheme through the
``ampel_stores`` hook). SQL backends build on `ampel_core.sql_store.SqlStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ampel_core.errors import AmpelError
from ampel_core.models import DataPoint, JournalEntry, Result, Run, State, Stock, Trace
from ampel_core.provenance import json_default, canonical_json

__all__ = ["IngestBatch", "Quarantined", "Store", "StoreError", "Ticket", "TicketSpec", "dumps", "dumps_fast", "open_store"]

class StoreError(AmpelError):
    """The store cannot be opened or used (bad URL, newer schema, ...)."""


@dataclass(frozen=True, slots=True)
class TicketSpec:
    """A T2 job to do: run the unit with ``trace`` on one link (a datapoint, state or stock)."""

    unit: str
    trace: str
    link_kind: str
    link: str
    stock: int
    channel: str
    version: str = ""  # stock units: the state that prompted this run


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record that could not be decoded or read whole: why, where from, its bytes, by which run.
    ``id`` is the sha256 of origin and bytes (quarantining the same record twice keeps one)."""

    id: str
    origin: str
    reason: str
    payload: bytes
    run: int | None


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    unit: str
    trace: str
    link_kind: str
    link: str
    version: str
    stock: int
    channel: str
    attempts: int
    status: str


@dataclass
class IngestBatch:
    """Everything one T0 batch writes, in one transaction."""

    run: int
    stocks: dict[int, float] = field(default_factory=dict)  # stock id -> time of ingest
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)  # stock id -> (ra, dec) of its latest alert
    names: set[tuple[int, str]] = field(default_factory=set)
    channels: set[tuple[int, str]] = field(default_factory=set)
    tags: set[tuple[int, str]] = field(default_factory=set)
    alerts: list[tuple[int, int, str]] = field(default_factory=list)  # (alert id, stock, origin)
    blobs: list[tuple[int, str, bytes]] = field(default_factory=list)
    datapoints: list[tuple[DataPoint, int]] = field(default_factory=list)  # (datapoint, alert id)
    states: dict[str, State] = field(default_factory=dict)
    channel_states: list[tuple[int, str, str, int]] = field(default_factory=list)  # stock, channel, state, alert
    tickets: list[TicketSpec] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    rejected: list[tuple[int, str, int, str | None, int, str]] = field(default_factory=list)  # alert, channel, stock, trace, code, reason
    failed: list[tuple[int, str, int, str | None, str]] = field(default_factory=list)  # alert, channel, stock, trace, error
    quarantined: list[tuple[str, str, bytes]] = field(default_factory=list)  # origin, reason, payload


class Store(Protocol):
    """What the runtime needs from a backend. All times are unix seconds."""

    url: str

    def close(self) -> None: ...
    # runs and traces
    def start_run(self, job_digest: str, job: dict[str, Any], environment: dict[str, Any]) -> int: ...
    def end_run(self, run: int, status: str, summary: dict[str, Any]) -> None: ...
    def get_run(self, run: int) -> Run | None: ...
    def runs(self) -> list[Run]: ...
    def add_traces(self, traces: Iterable[Trace]) -> None: ...
    def get_trace(self, trace: str) -> Trace | None: ...
    # T0
    def stored_datapoints(self, stocks: Iterable[int]) -> dict[int, dict[int, tuple[str, ...]]]: ...
    def t0_decisions(self, alerts: Sequence[int], channels: Sequence[str]
                     ) -> dict[tuple[int, str], tuple[str, str | None, str | None]]: ...
    def ingest(self, batch: IngestBatch) -> None: ...
    # reading
    def get_datapoints(self, stock: int, ids: Iterable[int]) -> list[DataPoint]: ...
    def stock_datapoints(self, stock: int) -> list[DataPoint]: ...
    def get_state(self, state: str) -> State | None: ...
    def get_stock(self, stock: int) -> Stock | None: ...
    def find_stock(self, name: str) -> int | None: ...
    def channel_states(self, stock: int, channel: str | None = None) -> list[tuple[str, str, int | None, float]]: ...
    def results(self, stock: int | None = None, link: str | None = None, run: int | None = None,
                unit: str | None = None) -> list[tuple[int, Result]]: ...
    def get_result(self, result_id: int) -> Result | None: ...
    def journal(self, stock: int) -> list[JournalEntry]: ...
    def select_stocks(self, channel: str | None = None, tags: Sequence[str] = (),
                      updated_after: float | None = None, updated_before: float | None = None) -> list[int]: ...
    def datapoint_origin(self, stock: int, datapoint: int) -> tuple[int | None, int | None]: ...
    def alert_origin(self, alert: int) -> tuple[str, int] | None: ...
    def counts(self) -> dict[str, int]: ...
    def quarantined(self, run: int | None = None) -> list[Quarantined]: ...
    def alert_blobs(self, alert: int) -> dict[str, bytes]: ...
    # the read API
    def positions(self, stocks: Iterable[int]) -> dict[int, tuple[float, float]]: ...
    def cone_search(self, ra: float, dec: float, radius: float, channels: Sequence[str] | None = None,
                    limit: int = 1000) -> list[tuple[int, float, float, float]]: ...
    def latest_stocks(self, channels: Sequence[str], limit: int = 100, offset: int = 0) -> list[tuple[int, float]]: ...
    # T2
    def claim_tickets(self, owner: str, limit: int, lease: float, channels: Sequence[str] | None = None) -> list[Ticket]: ...
    def finish_ticket(self, ticket: Ticket, result: Result, owner: str) -> bool: ...
    def retry_ticket(self, ticket: Ticket, error: str, not_before: float, owner: str, counts: bool = True) -> None: ...
    def ticket_status(self) -> dict[str, int]: ...
    def ticket_states(self, trace: str, link_kind: str, link: str) -> list[str]: ...
    def next_ticket_time(self, channels: Sequence[str] | None = None) -> float | None: ...
    def tickets(self, status: str | None = None) -> list[tuple[int, str, str, str, int, str | None]]: ...
    def leases(self) -> list[tuple[str, int, float]]: ...
    def release_tickets(self, owner: str) -> int: ...
    # T3
    def add_report(self, run: int, channel: str | None, unit: str, trace: str, body: Any,
                   journal: Sequence[JournalEntry] = ()) -> None: ...
    def reports(self, run: int) -> list[tuple[str | None, str, Any]]: ...


def dumps(value: Any) -> str:
    return canonical_json(value).decode()


def dumps_fast(value: Any) -> str:
    """JSON for bulk rows whose key order does not matter (datapoint bodies): no key sorting, and
    keys other than strings (rare, and slower to allow) only on a second try."""
    try:
        return orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return dumps(value)


def open_store(url: str, read_only: bool = False) -> Store:
    """Open the store at ``url`` with the backend registered for its scheme; a bare path (no
    ``scheme://``) is a SQLite file. ``read_only`` (what inspecting commands use) never creates or
    changes anything: a store that does not exist, or a database that is not an AMPEL store, is a
    StoreError saying so."""
    from ampel_core.registry import get_registry

    if "://" not in url:
        url = f"sqlite:///{url}"
    scheme = url.partition(":")[0].partition("+")[0]
    registry = get_registry()
    if scheme not in registry.stores:
        raise StoreError(f"no store backend for '{scheme}://' URLs (store URL {url!r}); installed: "
                         f"{', '.join(sorted(registry.stores))}. PostgreSQL needs `pip install ampel-plugin-postgres`.")
    opener = registry.stores[scheme].load()
    store: Store = opener(url, read_only=True) if read_only else opener(url)
    return store

