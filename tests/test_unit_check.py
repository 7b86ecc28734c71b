"""The unit contract check (`ampel_core.unit_check`, ``ampel unit check``) on the built-in units and
on deliberately broken units, over the real ZTF sample alerts."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

from ampel_core.cli import cli, main
from ampel_core.models import Alert, DataPoint
from ampel_core.registry import Registry
from ampel_core.unit_check import (
    EXCEPTION,
    INVALID,
    NON_FINITE,
    NOT_JSON,
    CheckReport,
    assert_unit_contract,
    check_unit,
    non_finite_paths,
    read_alerts,
)
from ampel_core.units import JSON, AlertFilter, PointUnit, ReactUnit, StateUnit, StockUnit, TiedStateUnit
from ampel_core.views import StateView, StockView


@pytest.fixture
def alerts(sample_alerts: Path, ampel_manager: object) -> list[Alert]:
    return read_alerts(sample_alerts)


def stocks_and_states(alerts: list[Alert]) -> tuple[int, int]:
    """(stocks, distinct states) of the alerts, as ingestion would count them."""
    seen: dict[int, set[int]] = {}
    states = set()
    for alert in alerts:
        seen.setdefault(alert.stock, set()).update(dp.id for dp in alert.datapoints)
        states.add(frozenset(seen[alert.stock]))
    return len(seen), len(states)


# deliberately broken units ------------------------------------------------------------------------


class T2RaisesOnLongStates(StateUnit):
    """Fails on states of more than ``limit`` datapoints."""

    limit: int = 15

    def process(self, state: StateView) -> JSON:
        if len(state.datapoints) > self.limit:
            raise ValueError(f"{len(state.datapoints)} datapoints is too many for me")
        return {"n": len(state.datapoints)}


class T2NaNPeak(StateUnit):
    """Returns NaN (a Python float, a numpy scalar and inside a numpy array) for every state."""

    def process(self, state: StateView) -> JSON:
        table = state.table()
        return {"mean_mag": float(np.mean(table["mag"])) if len(table) else math.nan,
                "limits": {"worst": np.float32("inf")}, "fluxes": np.array([1.0, np.nan])}


class T2NotJsonable(StateUnit):
    def process(self, state: StateView) -> JSON:
        return {"n": len(state.datapoints), "phase": complex(0, len(state.datapoints))}


class T2ReturnsList(StateUnit):
    def process(self, state: StateView) -> JSON:
        return [len(state.datapoints)]  # type: ignore[return-value]


class NumpyBoolFilter(AlertFilter):
    """Returns numpy.bool_, which the runtime refuses (it is not a bool)."""

    def process(self, alert: Alert) -> Any:
        return np.bool_(len(alert.datapoints) > 1)


class ExtraFieldFilter(AlertFilter):
    """Needs an alert field the sample alerts do not have."""

    def process(self, alert: Alert) -> bool:
        return alert.extra["drb"] > 0.5


class T2PointMag(PointUnit):
    calls: ClassVar[list[int]] = []

    def process(self, datapoint: DataPoint) -> JSON:
        T2PointMag.calls.append(datapoint.id)
        return {"mag": datapoint.mag}


class T2StateSize(StateUnit):
    sizes: ClassVar[list[tuple[int, int]]] = []

    def process(self, state: StateView) -> JSON:
        T2StateSize.sizes.append((state.stock, len(state.datapoints)))
        return {"n": len(state.datapoints)}


class T2StockNames(StockUnit):
    def process(self, stock: StockView) -> JSON:
        return {"name": stock.name, "n": len(stock.datapoints)}


class T2TiedOnSummary(TiedStateUnit):
    depends_on = ("T2LightCurveSummary",)

    def process(self, state: StateView, dependencies: Mapping[str, JSON]) -> JSON:
        return {"ndet_twice": 2 * dependencies["T2LightCurveSummary"]["ndet"]}


class T2TiedOnBroken(TiedStateUnit):
    depends_on = ("T2RaisesOnLongStates",)

    def process(self, state: StateView, dependencies: Mapping[str, JSON]) -> JSON:
        return {"ok": True}


class T3Unserialisable(ReactUnit):
    def process(self, views: Any) -> JSON:
        return {"names": (view.name for view in views)} if views else {"names": []}


# built-in units pass --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "config"), [
    ("AcceptAll", {}), ("MinDetectionsFilter", {"min_detections": 3, "min_bands": 2}), ("Combiner", {}),
    ("T2LightCurveSummary", {}), ("T3TableReport", {"show": False}),
])
def test_builtin_units_pass_the_check(name: str, config: dict[str, Any], alerts: list[Alert]) -> None:
    report = assert_unit_contract(name, alerts, config)
    assert report.ok and report.problems == {}
    assert report.origin.startswith("ampel-core ")
    assert report.calls == len(report.times) > 0
    assert 0 < report.p50 <= report.p95 <= max(report.times)  # type: ignore[operator]


def test_filter_runs_once_per_alert_plus_the_trigger_only_edge_case(alerts: list[Alert]) -> None:
    assert check_unit("AcceptAll", alerts).calls == len(alerts) + 1
    assert check_unit("AcceptAll", alerts, edge_cases=False).calls == len(alerts)


def test_state_units_see_each_distinct_state_accumulated_per_stock(register_units: Callable[..., Registry],
                                                                   alerts: list[Alert]) -> None:
    register_units(T2StateSize)
    T2StateSize.sizes.clear()
    report = check_unit("T2StateSize", alerts, edge_cases=False)
    _, states = stocks_and_states(alerts)
    assert report.ok and report.calls == states == len(T2StateSize.sizes)
    sn2021rhu = [size for stock, size in T2StateSize.sizes if stock == alerts[0].stock]
    assert sn2021rhu == sorted(sn2021rhu)  # a stock's state only grows
    every_datapoint = {dp.id for alert in alerts if alert.stock == alerts[0].stock for dp in alert.datapoints}
    assert sn2021rhu[-1] == len(every_datapoint) > len(alerts[-1].datapoints)
    assert check_unit("T2StateSize", alerts).calls == states + 2  # one detection; upper limits only


def test_point_units_see_each_detection_once(register_units: Callable[..., Registry], alerts: list[Alert]) -> None:
    register_units(T2PointMag)
    T2PointMag.calls.clear()
    report = check_unit("T2PointMag", alerts)
    detections = {dp.id for alert in alerts for dp in alert.datapoints if not dp.upper_limit}
    assert report.ok and sorted(T2PointMag.calls) == sorted(detections) and report.calls == len(detections)


def test_stock_tied_and_react_units(register_units: Callable[..., Registry], alerts: list[Alert]) -> None:
    register_units(T2StockNames, T2TiedOnSummary)
    assert check_unit("T2StockNames", alerts).ok
    assert check_unit("T2TiedOnSummary", alerts).ok
    react = check_unit("T3JsonExport", alerts, {"output": "/dev/null"})
    assert react.ok and react.calls == 2  # every stock, and the empty selection


# broken units are reported -------------------------------------------------------------------------


def test_exceptions_are_counted_with_the_first_traceback(register_units: Callable[..., Registry],
                                                         alerts: list[Alert]) -> None:
    register_units(T2RaisesOnLongStates)
    report = check_unit("T2RaisesOnLongStates", alerts, edge_cases=False)
    long_states = sum(1 for _, size in _state_sizes(alerts) if size > 15)
    assert 0 < long_states < report.calls
    assert not report.ok and set(report.problems) == {EXCEPTION}
    problem = report.problems[EXCEPTION]
    assert problem.count == long_states
    assert "Traceback" in problem.first_detail and "ValueError: 17 datapoints is too many" in problem.first_detail
    assert problem.first_input.startswith("state of ZTF21abiuvdk after alert ")
    text = report.format()
    assert f"PROBLEM exceptions: {long_states} of {report.calls} calls" in text and "p95" in text
    with pytest.raises(AssertionError, match="unit contract check failed"):
        assert_unit_contract("T2RaisesOnLongStates", alerts)


def _state_sizes(alerts: list[Alert]) -> list[tuple[int, int]]:
    seen: dict[int, set[int]] = {}
    sizes, states = [], set()
    for alert in alerts:
        seen.setdefault(alert.stock, set()).update(dp.id for dp in alert.datapoints)
        if frozenset(seen[alert.stock]) not in states:
            states.add(frozenset(seen[alert.stock]))
            sizes.append((alert.stock, len(seen[alert.stock])))
    return sizes


def test_nan_and_inf_are_reported_with_their_path(register_units: Callable[..., Registry],
                                                  alerts: list[Alert]) -> None:
    register_units(T2NaNPeak)
    report = check_unit("T2NaNPeak", alerts)
    assert set(report.problems) == {NON_FINITE}
    assert report.problems[NON_FINITE].count == report.calls
    detail = report.problems[NON_FINITE].first_detail
    assert "$.limits.worst" in detail and "$.fluxes" in detail


def test_non_jsonable_and_wrongly_typed_outputs(register_units: Callable[..., Registry], alerts: list[Alert]) -> None:
    register_units(T2NotJsonable, T2ReturnsList, NumpyBoolFilter, T3Unserialisable)
    not_json = check_unit("T2NotJsonable", alerts).problems
    assert set(not_json) == {NOT_JSON} and "not JSON serializable: complex" in not_json[NOT_JSON].first_detail
    assert set(check_unit("T2ReturnsList", alerts).problems) == {INVALID}
    numpy_bool = check_unit("NumpyBoolFilter", alerts).problems[INVALID]
    assert numpy_bool.count == len(alerts) + 1 and "returned numpy.bool" in numpy_bool.first_detail
    # the empty selection serialises; the selection of stock views does not
    assert check_unit("T3Unserialisable", alerts).problems[NOT_JSON].count == 1


def test_a_failing_dependency_fails_the_tied_unit(register_units: Callable[..., Registry], alerts: list[Alert]) -> None:
    register_units(T2RaisesOnLongStates, T2TiedOnBroken)
    problem = check_unit("T2TiedOnBroken", alerts).problems[EXCEPTION]
    assert "dependency T2RaisesOnLongStates raised" in problem.first_detail


def test_a_unit_that_gets_nothing_to_process_is_not_ok(alerts: list[Alert]) -> None:
    report = check_unit("T2LightCurveSummary", [])
    assert report.calls == 0 and not report.ok and "nothing to process" in report.format()


def test_non_finite_paths() -> None:
    assert non_finite_paths({"a": [1.0, {"b": float("-inf")}], "c": "nan", "d": None}) == ["$.a[1].b = -inf"]
    assert non_finite_paths({"x": np.float64(1.5), "y": np.arange(3.0)}) == []
    assert len(non_finite_paths([math.nan] * 10, limit=3)) == 3


def test_percentiles_use_nearest_rank() -> None:
    report = CheckReport("U", "T2 state", {}, times=[float(t) for t in range(1, 101)])
    assert (report.p50, report.p95, report.percentile(100)) == (50.0, 95.0, 100.0)


# the command ------------------------------------------------------------------------------------------


def test_cli_reports_problems_and_exits_1(register_units: Callable[..., Registry], sample_alerts: Path) -> None:
    register_units(T2RaisesOnLongStates, ExtraFieldFilter)
    runner = CliRunner()
    ok = runner.invoke(cli, ["unit", "check", "T2LightCurveSummary", "--alerts", str(sample_alerts)])
    assert ok.exit_code == 0, ok.output
    assert "T2LightCurveSummary (T2 state unit; ampel-core" in ok.output and "ok: no exceptions" in ok.output
    broken = runner.invoke(cli, ["unit", "check", "T2RaisesOnLongStates", "--alerts", str(sample_alerts),
                                 "--config", '{"limit": 20}'])
    assert broken.exit_code == 1 and "PROBLEM exceptions" in broken.output and "ValueError" in broken.output
    as_json = runner.invoke(cli, ["unit", "check", "ExtraFieldFilter", "--alerts", str(sample_alerts), "--json",
                                  "--limit", "5", "--no-edge-cases"])
    report = json.loads(as_json.output)
    assert as_json.exit_code == 1 and report["calls"] == 5 and report["ok"] is False
    assert "KeyError: 'drb'" in report["problems"][EXCEPTION]["first_detail"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["NoSuchUnit"], "unknown unit 'NoSuchUnit'"),
    (["MinDetectionsFilter", "--config", "{not json"], "--config is not valid JSON"),
    (["MinDetectionsFilter", "--config", '{"min_detections": 0}'], "field 'min_detections'"),
    (["MinDetectionsFilter", "--format", "nosuchformat"], "unknown format 'nosuchformat'"),
])
def test_cli_errors_the_user_can_act_on_exit_2(arguments: list[str], message: str, sample_alerts: Path,
                                               ampel_manager: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["unit", "check", *arguments[:1], "--alerts", str(sample_alerts), *arguments[1:]])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_undecodable_alerts_name_the_record(tmp_path: Path, ampel_manager: object) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stock": "x", "datapoints": []}\n')
    with pytest.raises(Exception, match=r"bad.jsonl line 1: .*no datapoints"):
        read_alerts(bad)


def test_pattern_selects_the_alert_files_of_a_folder(split_alerts: Path, ampel_manager: object,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (split_alerts / "README.md").write_text("# where these alerts came from\n")
    assert len(read_alerts(split_alerts, pattern="*.json")) == 46
    with pytest.raises(SystemExit) as exit_info:
        main(["unit", "check", "AcceptAll", "--alerts", str(split_alerts)])
    assert exit_info.value.code == 2 and "README.md line 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["unit", "check", "AcceptAll", "--alerts", str(split_alerts), "--pattern", "*.json"])
    assert exit_info.value.code == 0 and "calls: 47" in capsys.readouterr().out
