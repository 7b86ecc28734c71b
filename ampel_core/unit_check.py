"""The contract check for unit authors (``ampel unit check``): run one unit over sample alerts the
way the runtime would, and report what would go wrong in production.

For every call the check records exceptions (count and first traceback), outputs of the wrong type
for the unit's tier, outputs that are not JSON-able (`canonical_json` raises TypeError), NaN or
infinite numbers anywhere in an output (canonical JSON would silently store them as null), and the
time the call took. Inputs are built as ingestion builds them, in alert order:

- filters (T0): each alert;
- combiners (T1): each stock's datapoints so far (this alert's and every earlier alert's);
- point units (T2): each distinct datapoint once, upper limits only if the unit takes them;
- state and tied units (T2): each distinct state, i.e. the datapoints a stock has after each alert;
  tied units get their dependencies' results, computed by running those units on the same state;
- stock units (T2): a stock view with the same datapoints, once per distinct state;
- react units (T3): one call with a view of every stock (all its datapoints, no T2 results).

With ``edge_cases`` (the default) a few odd but legal inputs derived from the sample are added:
an alert with only its trigger, a state of one detection, a state of upper limits only, a combiner
input of one datapoint, and an empty selection for react units.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampel_core.errors import AmpelError
from ampel_core.models import Alert, DataPoint
from ampel_core.provenance import canonical_json, state_id
from ampel_core.runtime.configured import call_unit, configure_dependencies, verdict
from ampel_core.units import AlertFilter, Combiner, PointUnit, ReactUnit, StateUnit, StockUnit, TiedStateUnit, Unit, build_unit
from ampel_core.views import StateView, StockView

if TYPE_CHECKING:
    from ampel_core.registry import Registry

__all__ = ["EXCEPTION", "INVALID", "NON_FINITE", "NOT_JSON", "PROBLEM_KINDS", "CheckReport", "Problem",
           "assert_unit_contract", "check_unit", "non_finite_paths", "read_alerts"]

EXCEPTION = "exceptions"
INVALID = "invalid outputs"
NOT_JSON = "non-JSON-able outputs"
NON_FINITE = "NaN/inf in outputs"
PROBLEM_KINDS = (EXCEPTION, INVALID, NOT_JSON, NON_FINITE)


@dataclass
class Problem:
    """One kind of problem: how many calls had it, and the first one in full."""

    count: int
    first_input: str
    first_detail: str


@dataclass
class CheckReport:
    """What `check_unit` found. ``times`` are seconds per call; ``ok`` means at least one call and
    no problem."""

    unit: str
    kind: str
    config: dict[str, Any]
    origin: str = ""  # "distribution version" when the unit was found by name
    inputs: str = ""
    calls: int = 0
    times: list[float] = field(default_factory=list)
    problems: dict[str, Problem] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.calls > 0 and not self.problems

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100, nearest rank) of the time per call in seconds."""
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p95(self) -> float | None:
        return self.percentile(95)

    def add(self, kind: str, label: str, detail: str) -> None:
        if kind in self.problems:
            self.problems[kind].count += 1
        else:
            self.problems[kind] = Problem(1, label, detail)

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "kind": self.kind, "origin": self.origin, "config": self.config, "inputs": self.inputs,
                "calls": self.calls, "ok": self.ok, "p50_seconds": self.p50, "p95_seconds": self.p95,
                "max_seconds": max(self.times) if self.times else None,
                "problems": {kind: {"count": p.count, "first_input": p.first_input, "first_detail": p.first_detail}
                             for kind, p in self.problems.items()}}

    def format(self) -> str:
        """The report as text for a terminal."""
        origin = f"; {self.origin}" if self.origin else ""
        lines = [f"{self.unit} ({self.kind} unit{origin}), config {canonical_json(self.config).decode()}",
                 f"  inputs: {self.inputs}"]
        if self.times:
            lines.append(f"  calls: {self.calls}   time per call: p50 {_duration(self.p50)}, "
                         f"p95 {_duration(self.p95)}, max {_duration(max(self.times))}")
        else:
            lines.append("  calls: 0 -- the alerts gave this unit nothing to process; pass other alerts")
        for kind in PROBLEM_KINDS:
            problem = self.problems.get(kind)
            if problem is None:
                continue
            lines.append(f"  PROBLEM {kind}: {problem.count} of {self.calls} calls; first on {problem.first_input}:")
            lines.extend("    " + line for line in problem.first_detail.rstrip().splitlines())
        if self.ok:
            lines.append(f"  ok: no {', '.join(PROBLEM_KINDS)}")
        return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def non_finite_paths(value: Any, path: str = "$", limit: int = 5) -> list[str]:
    """Where ``value`` holds NaN or infinite numbers (floats, numpy scalars and arrays), as paths
    like ``$.bands.ztfg.slope`` or ``$.rows[3]``; at most ``limit`` of them."""
    found: list[str] = []

    def walk(item: Any, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                found.append(f"{where} = {item}")
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(item, (list, tuple)):
            for index, sub in enumerate(item):
                walk(sub, f"{where}[{index}]")
        elif getattr(getattr(item, "dtype", None), "kind", "") in ("f", "c"):  # numpy scalar or array
            import numpy as np

            if not np.all(np.isfinite(item)):
                found.append(f"{where} (numpy {item.dtype} with NaN/inf)")

    walk(value, path)
    return found


# inputs as ingestion would build them -----------------------------------------------------------


def _accumulated(alerts: Iterable[Alert]) -> Iterator[tuple[Alert, tuple[DataPoint, ...]]]:
    """Each alert with every datapoint its stock has so far (this alert's and earlier ones), in time
    order. A datapoint seen before keeps its first form, as the store keeps the first one written."""
    known: dict[int, dict[int, DataPoint]] = {}
    for alert in alerts:
        points = known.setdefault(alert.stock, {})
        for dp in alert.datapoints:
            points.setdefault(dp.id, dp)
        yield alert, tuple(sorted(points.values(), key=lambda d: (d.time, d.id)))


def _alert_label(alert: Alert) -> str:
    return f"alert {alert.id} ({alert.stock_name})"


def _state_inputs(alerts: Sequence[Alert], edge_cases: bool) -> Iterator[tuple[str, Alert, tuple[DataPoint, ...]]]:
    """(label, alert, datapoints) of each distinct state, then the edge cases."""
    seen: set[str] = set()
    for alert, points in _accumulated(alerts):
        sid = state_id(dp.id for dp in points)
        if sid not in seen:
            seen.add(sid)
            yield f"state of {alert.stock_name} after alert {alert.id} ({len(points)} datapoints)", alert, points
    if not edge_cases or not alerts:
        return
    for alert in alerts:
        detections = [dp for dp in alert.datapoints if dp.is_detection]
        if detections:
            yield f"edge case: a state of one detection of {alert.stock_name}", alert, (detections[0],)
            break
    for alert in alerts:
        limits = tuple(dp for dp in alert.datapoints if dp.upper_limit)
        if limits:
            yield f"edge case: a state of upper limits only of {alert.stock_name} ({len(limits)})", alert, limits
            break


def _stock_view(alert: Alert, points: tuple[DataPoint, ...], results: Mapping[str, Any] | None = None) -> StockView:
    return StockView(id=alert.stock, names=(alert.stock_name,), channels=("CHECK",), tags=(), datapoints=points,
                     latest_state=state_id(dp.id for dp in points), results=dict(results or {}), channel="CHECK")


def _state_view(alert: Alert, points: tuple[DataPoint, ...]) -> StateView:
    return StateView(id=state_id(dp.id for dp in points), stock=alert.stock, stock_name=alert.stock_name,
                     channel="CHECK", datapoints=points)


# running ----------------------------------------------------------------------------------------


_FAILED = object()


class _Runner:
    """Calls one unit, timing each call and recording problems in ``report``."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report

    def call(self, label: str, function: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            output = function(*args)
        except Exception as error:
            output = _FAILED
            # the traceback from the unit's own frame on: this checker's frame is noise to its author
            self.report.add(EXCEPTION, label, "".join(traceback.format_exception(error.with_traceback(
                error.__traceback__.tb_next if error.__traceback__ else None))))
        self.report.times.append(time.perf_counter() - started)
        self.report.calls += 1
        return output

    def check_json(self, label: str, output: Any) -> None:
        try:
            canonical_json(output)
        except TypeError as error:
            self.report.add(NOT_JSON, label, f"{error}; return dicts, lists, str, int, float, bool and None "
                                             "(numpy scalars and arrays are converted)")
            return
        bad = non_finite_paths(output)
        if bad:
            self.report.add(NON_FINITE, label, "\n".join(bad))

    def check_t2(self, label: str, output: Any) -> None:
        if output is _FAILED:
            return
        if not isinstance(output, dict):
            self.report.add(INVALID, label, f"returned {_type_name(output)} {output!r:.80}; a T2 unit returns a dict")
            return
        self.check_json(label, output)


def _check_filter(unit: AlertFilter, alerts: Sequence[Alert], runner: _Runner, edge_cases: bool) -> None:
    inputs = [(_alert_label(alert), alert) for alert in alerts]
    if edge_cases and alerts:
        first = alerts[0]
        inputs.append((f"edge case: {_alert_label(first)} with only its trigger datapoint",
                       replace(first, datapoints=first.datapoints[:1], extra=dict(first.extra))))
    for label, alert in inputs:
        output = runner.call(label, call_unit, unit, alert)
        if output is _FAILED:
            continue
        try:
            verdict(output)  # bool is an int; numpy.bool_ is neither, and the runtime refuses it
        except TypeError:
            runner.report.add(INVALID, label, f"returned {_type_name(output)} {output!r:.80}; a filter returns "
                                              "True/False, an int (accept code > 0), Reject(code, reason) or None")


def _check_combiner(unit: Combiner, alerts: Sequence[Alert], runner: _Runner, edge_cases: bool) -> None:
    inputs = [(f"datapoints of {alert.stock_name} after alert {alert.id}", list(points))
              for alert, points in _accumulated(alerts)]
    if edge_cases and alerts:
        inputs.append((f"edge case: one datapoint of {alerts[0].stock_name}", list(alerts[0].datapoints[:1])))
    for label, points in inputs:
        output = runner.call(label, call_unit, unit, points)
        if output is _FAILED:
            continue
        given = {dp.id for dp in points}
        try:
            chosen = list(output)
        except TypeError:
            chosen = None
        if chosen is None or not all(isinstance(i, int) and i in given for i in chosen):
            runner.report.add(INVALID, label, f"returned {output!r:.120}; a combiner returns ids of the datapoints it got")


def _check_points(unit: PointUnit, alerts: Sequence[Alert], runner: _Runner) -> None:
    seen: set[int] = set()
    for alert in alerts:
        for dp in alert.datapoints:
            if dp.id in seen or (dp.upper_limit and not unit.upper_limits):
                continue
            seen.add(dp.id)
            label = f"datapoint {dp.id} ({alert.stock_name}, {dp.band}, MJD {dp.time:.5f})"
            runner.check_t2(label, runner.call(label, call_unit, unit, dp))


def _check_states(unit: StateUnit | StockUnit | TiedStateUnit, alerts: Sequence[Alert], runner: _Runner,
                  edge_cases: bool, registry: Registry | None) -> None:
    for label, alert, points in _state_inputs(alerts, edge_cases):
        state = _state_view(alert, points)
        subject = _stock_view(alert, points) if unit.link == "stock" else state
        dependencies: dict[str, Any] | str | None = None
        if isinstance(unit, TiedStateUnit):
            dependencies = _dependency_results(unit, state, alert, registry)
            if isinstance(dependencies, str):
                runner.report.add(EXCEPTION, label, dependencies)
                continue
        runner.check_t2(label, runner.call(label, call_unit, unit, subject, dependencies))


def _dependency_results(unit: TiedStateUnit, state: StateView, alert: Alert,
                        registry: Registry | None) -> dict[str, Any] | str:
    """Results of the unit's dependencies on this state, or the reason one could not be computed."""
    from ampel_core.registry import get_registry

    registry = registry or get_registry()
    results: dict[str, Any] = {}
    for dependency in configure_dependencies(registry, unit):
        inner: dict[str, Any] | None = None
        if isinstance(dependency.unit, TiedStateUnit):
            found = _dependency_results(dependency.unit, state, alert, registry)
            if isinstance(found, str):
                return found
            inner = found
        subject = _stock_view(alert, state.datapoints) if isinstance(dependency.unit, StockUnit) else state
        if not isinstance(dependency.unit, (StateUnit, StockUnit, TiedStateUnit)):
            return f"dependency {dependency.name} is not a state, tied or stock unit"
        try:
            results[dependency.name] = call_unit(dependency.unit, subject, inner)
        except Exception:
            return f"dependency {dependency.name} raised (the runtime would fail this unit too):\n{traceback.format_exc()}"
    return results


def _check_react(unit: ReactUnit, alerts: Sequence[Alert], runner: _Runner, edge_cases: bool) -> None:
    final: dict[int, tuple[Alert, tuple[DataPoint, ...]]] = {}
    for alert, points in _accumulated(alerts):
        final[alert.stock] = (alert, points)
    selections = [(f"a selection of {len(final)} stocks", [_stock_view(a, p) for a, p in final.values()])]
    if edge_cases:
        selections.append(("edge case: an empty selection", []))
    for label, views in selections:
        output = runner.call(label, call_unit, unit, views)
        if output is _FAILED:
            continue
        if output is not None and not isinstance(output, dict):
            runner.report.add(INVALID, label, f"returned {_type_name(output)}; a react unit returns a dict or None")
            continue
        runner.check_json(label, output)


def check_unit(unit: Unit | type[Unit] | str, alerts: Iterable[Alert], config: Mapping[str, Any] | None = None,
               registry: Registry | None = None, edge_cases: bool = True) -> CheckReport:
    """Run ``unit`` over ``alerts`` as the runtime would and report problems and time per call.

    ``unit`` is a unit instance, a unit class (built with ``config``) or an installed unit's name
    (looked up in ``registry``, the process-wide one by default). UnitConfigError names a bad config
    field; RegistryError an unknown unit. The unit's own errors never raise: they are in the report.
    """
    origin = ""
    if isinstance(unit, str):
        from ampel_core.registry import get_registry

        registry = registry or get_registry()
        cls = registry.unit_class(unit)
        origin = f"{registry.units[unit].distribution} {registry.units[unit].version}"
        unit = cls
    instance = build_unit(unit, config) if isinstance(unit, type) else unit
    if not isinstance(instance, Unit):
        raise TypeError(f"{instance!r} is not a unit")
    alerts = list(alerts)
    report = CheckReport(type(instance).__name__, f"T{instance.tier} {instance.kind}", instance.model_dump(mode="json"),
                         origin)
    runner = _Runner(report)
    stocks = len({alert.stock for alert in alerts})
    report.inputs = f"{len(alerts)} alerts of {stocks} stocks" + ("" if edge_cases else ", no edge cases")
    if isinstance(instance, AlertFilter):
        _check_filter(instance, alerts, runner, edge_cases)
    elif isinstance(instance, Combiner):
        _check_combiner(instance, alerts, runner, edge_cases)
    elif isinstance(instance, PointUnit):
        _check_points(instance, alerts, runner)
    elif isinstance(instance, (StateUnit, StockUnit, TiedStateUnit)):
        _check_states(instance, alerts, runner, edge_cases, registry)
    elif isinstance(instance, ReactUnit):
        _check_react(instance, alerts, runner, edge_cases)
    else:
        raise TypeError(f"{type(instance).__name__} derives from no tier base class of ampel_core.units")
    return report


def assert_unit_contract(unit: Unit | type[Unit] | str, alerts: Iterable[Alert],
                         config: Mapping[str, Any] | None = None, registry: Registry | None = None,
                         edge_cases: bool = True) -> CheckReport:
    """`check_unit` for tests: return the report, or raise AssertionError with it as the message
    when the unit raised, returned something invalid, non-JSON-able or non-finite, or ran 0 times."""
    report = check_unit(unit, alerts, config, registry, edge_cases)
    if not report.ok:
        raise AssertionError("unit contract check failed:\n" + report.format())
    return report


def read_alerts(paths: str | Path | Sequence[str | Path], format: str = "json",
                format_config: Mapping[str, Any] | None = None, limit: int | None = None,
                registry: Registry | None = None, pattern: str = "*") -> list[Alert]:
    """Decode the alerts in files, directories or tar archives with a registered alert format;
    ``pattern`` (fnmatch) selects file names inside directories and archives.

    AmpelError names the record that cannot be decoded, so a check never runs on half the input.
    """
    from ampel_core.alerts import AlertDecodeError, FileSource
    from ampel_core.runtime.configured import build_component
    from ampel_core.registry import get_registry

    if isinstance(paths, (str, Path)):
        paths = [paths]
    decoder = build_component(registry or get_registry(), "formats", format, dict(format_config or {}))
    alerts: list[Alert] = []
    for record in FileSource(paths=[str(p) for p in paths], pattern=pattern):
        try:
            alerts.extend(decoder.decode(record.payload, record.origin))
        except AlertDecodeError as error:
            raise AmpelError(f"alerts: {error} (is '{format}' the right alert format? Are other files among "
                             "the alerts? Select the alert files with a pattern.)") from None
        if limit is not None and len(alerts) >= limit:
            return alerts[:limit]
    return alerts
