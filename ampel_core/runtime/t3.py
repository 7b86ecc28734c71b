"""The T3 runtime: select stocks, build read-only views with their latest results, run react units
and record their reports."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.jobs import Selection, T3Task
from ampel_core.models import JournalEntry
from ampel_core.registry import Registry
from ampel_core.runtime.configured import Channel, call_unit, configure
from ampel_core.runtime.run import Report
from ampel_core.store import Store
from ampel_core.units import ReactUnit
from ampel_core.views import ResultRef, StockView, lookup

__all__ = ["matches", "run_t3", "select_views", "stock_view"]


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
    refs: dict[str, ResultRef] = {}
    for result_id, result in store.results(stock=stock):
        if result.status == "ok" and (result.link == latest or result.link_kind == "stock") and (
                traces is None or result.trace in traces):
            results[result.unit] = result.body or {}
            refs[result.unit] = ResultRef(result_id, result.trace)
    return StockView(stock, info.names if info else (), info.channels if info else (), info.tags if info else (),
                     datapoints, latest, results, channel, refs)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b, "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b, "in": lambda a, b: a in b, "exists": lambda a, b: (a is not None) == b,
}


def matches(view: StockView, predicates: dict[str, Any]) -> bool:
    """Whether the view's latest results satisfy every predicate (see `Selection.results`)."""
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


def _reported(store: Store, views: list[StockView]) -> dict[int, set[str | None]]:
    """For each view's stock, the unit configurations (trace ids) that reported its latest state on
    its channel in a successful report (`Selection.since_last_report`: the stock's journal)."""
    return {v.id: {e.trace for e in store.journal(v.id) if e.tier == 3 and e.action == "reported"
                   and e.channel == v.channel and e.detail.get("state") == v.latest_state} for v in views}


def run_t3(store: Store, registry: Registry, task: T3Task, channels: dict[str, Channel], run: int,
           report: Report | None = None) -> dict[str, int]:
    """Run each react unit of ``task`` on the selected views and record its report (or, when it
    raises, the error with its traceback); ``report`` and return the task's counts (stocks, reports,
    reports_failed)."""
    views = select_views(store, task.select, channels)
    channel = task.select.channel
    counts = {"stocks": len(views), "reports": 0, "reports_failed": 0}
    reported = _reported(store, views) if task.select.since_last_report else {}
    for spec in task.react:
        configured = configure(registry, spec)
        if not isinstance(configured.unit, ReactUnit):
            raise AmpelError(f"T3 react unit '{spec.unit}' is not a ReactUnit")
        trace = configured.trace.id
        store.add_traces([configured.trace])
        given = [v for v in views if trace not in reported[v.id]] if task.select.since_last_report else views
        journal: list[JournalEntry] = []
        try:
            body = call_unit(configured.unit, given)
            counts["reports"] += 1
            if task.select.since_last_report:
                journal = [JournalEntry(stock=v.id, tier=3, action="reported", channel=channel, trace=trace, run=run,
                                        detail={"unit": spec.unit, "state": v.latest_state}) for v in given]
        except Exception as error:
            body = {"exception": type(error).__name__, "message": str(error), "traceback": traceback.format_exc()}
            counts["reports_failed"] += 1
        store.add_report(run, channel, spec.unit, trace, body, journal)
    if report is not None:
        report(3, counts)
    return counts
