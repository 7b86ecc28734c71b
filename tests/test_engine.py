"""The runtime on real SQLite files: T0 accounting and idempotency, T2 leases, retries and
dependencies, T3 selection and reports, immutability, replay and diff."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ampel_core.compare import diff, replay
from ampel_core.drivers import run_job
from ampel_core.runtime import RunSummary, T2Runtime
from ampel_core.errors import AmpelError
from ampel_core.hookspecs import hookimpl
from ampel_core.jobs import T2Task, load_job
from ampel_core.store import open_store
from ampel_core.units import AlertFilter, Reject, StateUnit, TiedStateUnit, UnitConfigError


def job(tmp_path: Path, alerts: Path, channels: list[dict[str, Any]], tasks: list[dict[str, Any]] | None = None,
        **extra: Any) -> dict[str, Any]:
    return {"name": "test", "store": f"sqlite:///{tmp_path / 'store.db'}", "channels": channels,
            "tasks": tasks or [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
                                "format": {"name": "json"}, "batch_size": 7}, {"tier": 2, "backoff": 0.01}],
            **extra}


SUMMARY = {"unit": "T2LightCurveSummary"}


def test_every_alert_is_accounted_for(tmp_path: Path, split_alerts: Path, ampel_manager) -> None:
    (split_alerts / "9999.json").write_text('{"stock": "broken", "datapoints": [{"time": "yesterday"}]}\n')
    channels = [{"name": "ALL", "t2": [SUMMARY]},
                {"name": "THREE", "filter": {"unit": "MinDetectionsFilter", "config": {"min_detections": 3}}}]
    summary = run_job(load_job(job(tmp_path, split_alerts, channels)))
    assert summary.records == 47 and summary.alerts == 46 and summary.quarantined == 1
    for channel in ("ALL", "THREE"):
        assert summary.accepted[channel] + summary.rejected[channel] + summary.failed[channel] == summary.alerts
    assert summary.accepted["ALL"] == 46 and summary.rejected["THREE"] == 3
    assert summary.ingested + summary.unaccepted == summary.alerts
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    counts = store.counts()
    assert counts["rejected"] == 3 and counts["alerts"] == 46 and counts["quarantine"] == 1
    [(origin, reason, payload)] = [(q.origin, q.reason, q.payload) for q in store.quarantined()]
    assert origin.endswith("9999.json") and "line 1" in reason and payload.startswith(b'{"stock": "broken"')
    assert summary.tickets_done == counts["states"] == counts["tickets"]
    run = store.get_run(summary.run)
    assert run.status == "ok" and run.summary["alerts"] == 46 and "ampel-core" in run.environment["plugins"]


def test_reingesting_creates_nothing_new(tmp_path: Path, split_alerts: Path, ampel_manager) -> None:
    document = job(tmp_path, split_alerts, [{"name": "ALL", "t2": [SUMMARY]}])
    run_job(load_job(document))
    store = open_store(document["store"])
    first = store.counts()
    second_summary = run_job(load_job(document))
    second = store.counts()
    assert second_summary.tickets_done == 0
    assert {k: v for k, v in second.items() if k != "runs"} == {k: v for k, v in first.items() if k != "runs"}
    assert second["runs"] == first["runs"] + 1


def test_states_grow_with_each_alert_and_respect_access(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    document = job(tmp_path, sample_alerts, [{"name": "ALL"}, {"name": "PRIVATE_ONLY", "access": ["ZTF_PRIV"]}])
    run_job(load_job(document))
    store = open_store(document["store"])
    stock = store.find_stock("ZTF21abiuvdk")
    sizes = [len(store.get_state(state).datapoints) for _, state, _, _ in store.channel_states(stock, "ALL")]
    assert len(sizes) == 34 and sizes == sorted(sizes) and sizes[-1] == len(store.stock_datapoints(stock))
    for _, state, _, _ in store.channel_states(stock, "PRIVATE_ONLY"):
        assert all("ZTF_PRIV" in dp.tags for dp in store.get_datapoints(stock, store.get_state(state).datapoints))


def test_immutable_rows_are_refused_by_the_database(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    document = job(tmp_path, sample_alerts, [{"name": "ALL", "t2": [SUMMARY]}])
    run_job(load_job(document))
    connection = sqlite3.connect(tmp_path / "store.db")
    for statement in ("UPDATE datapoints SET body = '{}'", "DELETE FROM datapoints", "UPDATE states SET stock = 0",
                      "DELETE FROM states", "UPDATE results SET body = '{}'", "DELETE FROM results",
                      "UPDATE traces SET document = '{}'", "DELETE FROM journal"):
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            connection.execute(statement)


class Flaky(StateUnit):
    """Fails the first ``failures`` calls of the process, then succeeds."""

    failures: int = 2
    calls: ClassVar[list[float]] = []

    def process(self, state):
        Flaky.calls.append(time.monotonic())
        if len(Flaky.calls) <= self.failures:
            raise RuntimeError(f"flaky failure {len(Flaky.calls)}")
        return {"n": len(state.datapoints)}


ONE_ALERT = '{"stock": "X1", "id": 1, "datapoints": [{"id": 10, "time": 60000.0, "band": "ztfg", "flux": 5.0, "flux_err": 1.0}]}\n'


def test_retry_with_backoff_then_success(tmp_path: Path, register_units) -> None:
    register_units(Flaky)
    Flaky.calls.clear()
    (tmp_path / "a.json").write_text(ONE_ALERT)
    document = job(tmp_path, tmp_path / "a.json", [{"name": "C", "t2": [{"unit": "Flaky"}]}],
                   [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(tmp_path / "a.json")]}},
                     "format": {"name": "json"}}, {"tier": 2, "backoff": 0.2, "max_attempts": 3}])
    summary = run_job(load_job(document))
    assert (summary.tickets_done, summary.tickets_retried, summary.tickets_failed) == (1, 2, 0)
    gaps = [b - a for a, b in zip(Flaky.calls, Flaky.calls[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # exponential backoff
    store = open_store(document["store"])
    [(_, result)] = store.results()
    assert result.status == "ok" and result.body == {"n": 1}
    assert store.tickets() == [(1, "Flaky", store.tickets()[0][2], "done", 3, None)]


def test_failure_after_last_attempt_keeps_the_traceback(tmp_path: Path, register_units) -> None:
    register_units(Flaky)
    Flaky.calls.clear()
    (tmp_path / "a.json").write_text(ONE_ALERT)
    document = job(tmp_path, tmp_path / "a.json", [{"name": "C", "t2": [{"unit": "Flaky", "config": {"failures": 99}}]}],
                   [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(tmp_path / "a.json")]}},
                     "format": {"name": "json"}}, {"tier": 2, "backoff": 0.0, "max_attempts": 2}])
    summary = run_job(load_job(document))
    assert (summary.tickets_done, summary.tickets_failed) == (0, 1)
    [(_, result)] = open_store(document["store"]).results()
    assert result.status == "error" and result.body["attempts"] == 2
    assert "RuntimeError: flaky failure 2" in result.body["traceback"] and 'in process' in result.body["traceback"]


class T2Peak(StateUnit):
    def process(self, state):
        return {"peak": max((dp.flux for dp in state.detections if dp.flux is not None), default=None)}


class T2Normalised(TiedStateUnit):
    depends_on: ClassVar[tuple[str, ...]] = ("T2Peak",)

    def process(self, state, dependencies):
        peak = dependencies["T2Peak"]["peak"]
        return {"normalised_last": state.table()["flux"][-1] / peak}


def test_tied_unit_runs_after_its_dependency(tmp_path: Path, sample_alerts: Path, register_units) -> None:
    register_units(T2Peak, T2Normalised)
    # the tied unit is listed alone: its dependency is scheduled for it, and first
    document = job(tmp_path, sample_alerts, [{"name": "C", "t2": [{"unit": "T2Normalised"}]}])
    summary = run_job(load_job(document))
    store = open_store(document["store"])
    results = store.results()
    assert summary.tickets_failed == 0 and summary.tickets_done == len(results) == 2 * store.counts()["states"]
    by_link: dict[str, dict[str, Any]] = {}
    for result_id, result in results:
        by_link.setdefault(result.link, {})[result.unit] = (result_id, result.body)
    for units in by_link.values():
        (peak_id, _), (tied_id, tied) = units["T2Peak"], units["T2Normalised"]
        assert peak_id < tied_id
        assert tied["normalised_last"] <= 1.0 + 1e-12


class T2Broken(StateUnit):
    def process(self, state):
        raise ValueError("no good")


class T2NeedsBroken(TiedStateUnit):
    depends_on: ClassVar[tuple[str, ...]] = ("T2Broken",)

    def process(self, state, dependencies):
        return {}


def test_tied_unit_fails_when_its_dependency_failed(tmp_path: Path, register_units) -> None:
    register_units(T2Broken, T2NeedsBroken)
    (tmp_path / "a.json").write_text(ONE_ALERT)
    document = job(tmp_path, tmp_path / "a.json", [{"name": "C", "t2": [{"unit": "T2NeedsBroken"}]}],
                   [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(tmp_path / "a.json")]}},
                     "format": {"name": "json"}}, {"tier": 2, "backoff": 0.0, "max_attempts": 1}])
    summary = run_job(load_job(document))
    assert summary.tickets_failed == 2
    errors = {r.unit: r.body["message"] for _, r in open_store(document["store"]).results()}
    assert errors["T2Broken"] == "no good"
    assert errors["T2NeedsBroken"].startswith("dependency T2Broken of T2NeedsBroken on state")


def test_expired_lease_is_reclaimed_and_the_late_worker_cannot_finish(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    document = job(tmp_path, sample_alerts, [{"name": "C", "t2": [SUMMARY]}], [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(sample_alerts)]}}, "format": {"name": "json"}}])
    run_job(load_job(document))
    store = open_store(document["store"])
    from ampel_core.registry import get_registry

    task = T2Task(tier=2, lease=0.3, batch_size=5)
    crashed = T2Runtime(store, get_registry(), task, None, RunSummary(), owner="crashed-worker")
    claimed = store.claim_tickets("crashed-worker", 5, 0.3)  # claimed, then the worker "dies"
    assert len(claimed) == 5 and store.claim_tickets("other", 100, 10.0)[0].id > claimed[-1].id
    store.execute("UPDATE tickets SET status = 'pending', owner = NULL WHERE owner = 'other'")
    time.sleep(0.35)
    survivor = T2Runtime(store, get_registry(), T2Task(tier=2), None, RunSummary(), owner="survivor")
    survivor.run_until_idle()
    assert store.ticket_status() == {"done": store.counts()["tickets"]}
    assert survivor.summary.tickets_done == store.counts()["tickets"]
    crashed.run_ticket(claimed[0])  # the crashed worker comes back: its lease is gone, nothing is written
    assert crashed.summary.tickets_done == 0
    assert len(store.results()) == store.counts()["tickets"]


class Picky(AlertFilter):
    def process(self, alert):
        if alert.stock_name.endswith("j"):
            raise KeyError("ra")
        return Reject(-7, "too faint") if len(alert.datapoints) < 20 else 3


def test_filter_verdicts_codes_and_exceptions(tmp_path: Path, sample_alerts: Path, register_units) -> None:
    register_units(Picky)
    document = job(tmp_path, sample_alerts, [{"name": "P", "filter": {"unit": "Picky"}}])
    summary = run_job(load_job(document))
    store = open_store(document["store"])
    assert summary.failed["P"] == store.counts()["failed_alerts"] > 0
    assert summary.rejected["P"] == store.counts()["rejected"] > 0
    assert summary.accepted["P"] + summary.rejected["P"] + summary.failed["P"] == 46
    assert store.execute("SELECT DISTINCT code, reason FROM rejected") == [(-7, "too faint")]
    assert "KeyError: 'ra'" in store.execute("SELECT error FROM failed_alerts")[0][0]
    codes = {j.detail["code"] for s in store.select_stocks() for j in store.journal(s) if j.action == "accepted"}
    assert codes == {3}


def test_t3_selects_by_channel_and_results_and_writes_tables(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    outputs = {ext: tmp_path / f"report.{ext}" for ext in ("csv", "ecsv", "parquet")}
    react = [{"unit": "T3TableReport", "config": {"output": str(path), "show": False}} for path in outputs.values()]
    react.append({"unit": "T3JsonExport", "config": {"output": str(tmp_path / "export.json")}})
    document = job(tmp_path, sample_alerts, [{"name": "ALL", "t2": [SUMMARY]}], [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(sample_alerts)]}}, "format": {"name": "json"}},
        {"tier": 2}, {"tier": 3, "select": {"channel": "ALL", "results": {"T2LightCurveSummary.ndet": {"gte": 15}}},
                      "react": react}])
    summary = run_job(load_job(document))
    assert summary.reports == 4 and summary.reports_failed == 0
    from astropy.table import Table

    tables = {ext: Table.read(path) for ext, path in outputs.items()}
    assert all(len(t) == len(tables["csv"]) for t in tables.values())
    assert list(tables["ecsv"].colnames) == ["stock", "ndet", "first", "last"]
    assert min(tables["ecsv"]["ndet"]) >= 15 and "ZTF21abiuvdk" in list(tables["csv"]["stock"])
    import json

    exported = json.loads((tmp_path / "export.json").read_text())
    assert len(exported["stocks"]) == len(tables["csv"])
    store = open_store(document["store"])
    [(channel, unit, body)] = store.reports(summary.run)[:1]
    assert (channel, unit, body["rows"]) == ("ALL", "T3TableReport", len(tables["csv"]))


def test_replay_is_identical_and_diff_shows_a_config_change(tmp_path: Path, sample_alerts: Path, register_units,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    register_units(Flaky)
    document = job(tmp_path, sample_alerts, [{"name": "ALL", "t2": [SUMMARY]}])
    first = run_job(load_job(document)).run
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    _, comparison = replay(document["store"], first)
    assert comparison.same and comparison.identical == open_store(document["store"]).counts()["results"] > 0
    assert not list(scratch_root.iterdir())  # the default scratch store is deleted after the comparison
    # a variant: another unit config on the same alerts, run side by side
    variant = job(tmp_path, sample_alerts, [{"name": "ALL", "t2": [{"unit": "Flaky", "config": {"failures": 0}}]}])
    second = run_job(load_job(variant)).run
    compared = diff(document["store"], first, second)
    assert compared.only_first and compared.only_second and not compared.identical


def test_job_errors_name_the_problem(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    with pytest.raises(AmpelError, match="unknown channel"):
        load_job(job(tmp_path, sample_alerts, [], [{"tier": 2, "channels": ["NOPE"]}]))
    with pytest.raises(AmpelError, match=r"parameter \$\{alerts\}"):
        load_job({"tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": ["${alerts}"]}},
                             "format": {"name": "json"}}]})
    with pytest.raises(UnitConfigError, match="unit 'MinDetectionsFilter': invalid config: field 'min_detections'"):
        run_job(load_job(job(tmp_path, sample_alerts, [
            {"name": "C", "filter": {"unit": "MinDetectionsFilter", "config": {"min_detections": 0}}}])))
    with pytest.raises(Exception, match="unknown unit 'T2Nope'"):
        run_job(load_job(job(tmp_path, sample_alerts, [{"name": "C", "t2": [{"unit": "T2Nope"}]}])))
    overridden = load_job({"parameters": {"n": 1}, "tasks": [{"tier": 2, "batch_size": "${n}"}]}, {"n": 9})
    assert overridden.tasks[0].batch_size == 9


def test_alert_tags_become_stock_tags_for_selection(tmp_path: Path, ampel_manager) -> None:
    alerts = tmp_path / "tagged.jsonl"
    alerts.write_text(ONE_ALERT.replace('"stock": "X1",', '"stock": "X1", "tags": ["SSO"],')
                      + ONE_ALERT.replace("X1", "X2").replace('"id": 10', '"id": 11').replace('"id": 1,', '"id": 2,'))
    document = job(tmp_path, alerts, [{"name": "ALL"}], [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"}}])
    run_job(load_job(document))
    store = open_store(document["store"])
    [tagged] = store.select_stocks(tags=["SSO"])
    assert store.get_stock(tagged).names == ("X1",) and store.get_stock(tagged).tags == ("SSO",)
    assert len(store.select_stocks(channel="ALL")) == 2


def test_a_channel_never_takes_an_alert_whose_trigger_it_may_not_see(tmp_path: Path, ampel_manager) -> None:
    alerts = tmp_path / "rights.jsonl"
    private = ONE_ALERT.replace('"flux_err": 1.0}', '"flux_err": 1.0, "tags": ["ZTF_PRIV"]}')
    alerts.write_text(private + ONE_ALERT.replace("X1", "X2").replace('"id": 10', '"id": 11').replace(
        '"id": 1,', '"id": 2,').replace('"flux_err": 1.0}', '"flux_err": 1.0, "tags": ["ZTF_PUB"]}'))
    document = job(tmp_path, alerts, [{"name": "PUBLIC", "access": ["ZTF_PUB"]}], [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"}}])
    summary = run_job(load_job(document))
    assert (summary.accepted["PUBLIC"], summary.rejected["PUBLIC"]) == (1, 1)
    store = open_store(document["store"])
    assert store.execute("SELECT alert, code, reason FROM rejected") == [(1, 0, "no access to the triggering datapoint")]
    assert [store.get_stock(s).names for s in store.select_stocks()] == [("X2",)]


class Observer:
    """A metrics plugin: records what the run-lifecycle hooks report."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def ampel_run_started(self, run_id: int, job: dict[str, Any]) -> None:
        self.calls.append(("started", job["name"]))

    @hookimpl
    def ampel_batch_done(self, run_id: int, tier: int, counts: dict[str, int]) -> None:
        self.calls.append((f"t{tier}", counts))

    @hookimpl
    def ampel_run_finished(self, run_id: int, summary: dict[str, Any]) -> None:
        self.calls.append(("finished", summary["status"]))


def test_observers_see_the_run_and_every_batch(tmp_path: Path, split_alerts: Path, register_plugin) -> None:
    observer = Observer()
    register_plugin(observer, "ampel-plugin-metrics")
    run_job(load_job(job(tmp_path, split_alerts, [{"name": "ALL", "t2": [SUMMARY]}])))
    assert observer.calls[0] == ("started", "test") and observer.calls[-1] == ("finished", "ok")
    t0 = [counts for name, counts in observer.calls if name == "t0"]
    assert len(t0) == 7 and sum(c["alerts"] for c in t0) == 46 and sum(c["records"] for c in t0) == 46
    assert sum(counts["tickets"] for name, counts in observer.calls if name == "t2") == 46


def test_diff_across_stores_shows_a_recalibrated_variant(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    import json

    variant = tmp_path / "variant.jsonl"  # every flux 2 % brighter: a calibration variant of the same alerts
    lines = []
    for line in sample_alerts.read_text().splitlines():
        alert = json.loads(line)
        for dp in alert["datapoints"]:
            if dp.get("flux") is not None:
                dp["flux"] *= 1.02
        lines.append(json.dumps(alert))
    variant.write_text("\n".join(lines) + "\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = job(tmp_path / "a", sample_alerts, [{"name": "ALL", "t2": [SUMMARY]}])
    second = job(tmp_path / "b", variant, [{"name": "ALL", "t2": [SUMMARY]}])
    run_a, run_b = run_job(load_job(first)).run, run_job(load_job(second)).run
    compared = diff(first["store"], run_a, run_b, second_store_url=second["store"])
    assert not compared.only_first and not compared.only_second and compared.different
    for _, changes in compared.different:
        assert all(key.endswith("peak_flux") for key in changes)
        assert all(abs(b / a - 1.02) < 1e-9 for a, b in changes.values())
    assert diff(first["store"], run_a, run_b, rel_tol=0.03, second_store_url=second["store"]).same


def test_lazy_history_is_built_only_for_taken_alerts_and_a_failing_one_is_accounted(tmp_path: Path, ampel_manager) -> None:
    from ampel_core.alerts import SourceRecord
    from ampel_core.runtime import Channel, T0Runtime
    from ampel_core.jobs import ChannelConfig
    from ampel_core.models import Alert, DataPoint, LazyDataPoints
    from ampel_core.registry import get_registry

    built: list[int] = []

    def decode(payload: bytes, origin: str) -> list[Alert]:
        number = int(payload)
        trigger = DataPoint(id=number, stock=number, time=60000.0 + number, band="ztfg", flux=10.0 * number, flux_err=1.0)

        def rest() -> list[DataPoint]:
            built.append(number)
            if number == 3:
                raise ValueError("fid 7 is not a ZTF band")
            return [DataPoint(id=1000 + number, stock=number, time=59990.0, band="ztfg", flux=None, flux_err=0.5,
                              upper_limit=True)]

        return [Alert(id=number, stock=number, stock_name=f"S{number}", datapoints=LazyDataPoints([trigger], rest))]

    store = open_store(f"sqlite:///{tmp_path / 'lazy.db'}")
    channel = Channel.build(get_registry(), ChannelConfig(name="BRIGHT", filter={"unit": "MinDetectionsFilter"}))
    summary = RunSummary()
    # every alert has a detection, so every alert is taken and its history built; alert 3's fails
    T0Runtime(store, [channel], 1, summary).process([SourceRecord(f"r{n}", str(n).encode()) for n in (1, 2, 3)], decode)
    assert sorted(built) == [1, 2, 3]
    assert (summary.accepted["BRIGHT"], summary.failed["BRIGHT"], summary.quarantined) == (2, 1, 0)
    assert summary.ingested + summary.unaccepted == summary.alerts == 3
    [(origin, reason, payload)] = [(q.origin, q.reason, q.payload) for q in store.quarantined()]
    assert (origin, payload) == ("r3", b"3") and "fid 7 is not a ZTF band" in reason
    assert store.counts()["datapoints"] == 4  # two triggers and their upper limits; nothing of alert 3

    built.clear()
    picky = Channel.build(get_registry(), ChannelConfig(name="PICKY", filter={
        "unit": "MinDetectionsFilter", "config": {"min_detections": 2}}))
    T0Runtime(store, [picky], 1, RunSummary()).process([SourceRecord("r4", b"4")], decode)
    assert built == []  # rejected on its detections: the upper limits were never built


def test_only_the_new_history_is_built_where_a_format_can_select_it(tmp_path: Path, ampel_manager) -> None:
    """Alerts of one stock repeat its history. A format that can tell the ids of its deferred
    datapoints (``select``) gets them built only where they are not stored yet, and the store ends
    up as without ``select`` (every datapoint built, the stored ones then dropped)."""
    from ampel_core.alerts import SourceRecord
    from ampel_core.jobs import ChannelConfig
    from ampel_core.models import Alert, DataPoint, LazyDataPoints
    from ampel_core.registry import get_registry
    from ampel_core.runtime import Channel, T0Runtime
    from ampel_core.testing import store_fingerprint

    built: list[int] = []

    def limit(number: int) -> DataPoint:
        built.append(-number)
        return DataPoint(id=-number, stock=7, time=59900.0 + number, band="ztfr", flux=None, flux_err=0.5, upper_limit=True,
                         extra={"n": number})

    def decoder(selecting: bool) -> Callable[[bytes, str], list[Alert]]:
        def decode(payload: bytes, origin: str) -> list[Alert]:
            number = int(payload)  # alert n: a trigger and the upper limits 1 .. 3n (earlier alerts stored 1 .. 3(n-1))
            trigger = DataPoint(id=number, stock=7, time=60000.0 + number, band="ztfg", flux=10.0, flux_err=1.0)

            def rest(known: Container[int] = ()) -> list[DataPoint]:
                return [limit(n) for n in range(1, 3 * number + 1) if -n not in known]

            points = LazyDataPoints([trigger], rest, rest if selecting else None)
            return [Alert(id=number, stock=7, stock_name="S7", datapoints=points)]
        return decode

    stores = []
    for selecting in (True, False):
        built.clear()
        url = f"sqlite:///{tmp_path / f'select-{selecting}.db'}"
        store = open_store(url)
        channel = Channel.build(get_registry(), ChannelConfig(name="ALL", t2=[SUMMARY]))
        runtime = T0Runtime(store, [channel], 1, RunSummary())
        for batch in ([b"1", b"2"], [b"3"]):  # new history within a batch, and after one
            runtime.process([SourceRecord(f"r{p.decode()}", p) for p in batch], decoder(selecting))
        store.close()
        stores.append(store_fingerprint(url))
        if selecting:  # each upper limit built once: by the first alert that carries it
            assert sorted(built) == sorted(-n for n in range(1, 10))
        else:
            assert len(built) == 3 + 6 + 9
    assert stores[0] == stores[1]
    assert len(stores[0]["datapoints"]) == 3 + 9


def test_lazy_datapoints_unknown_and_truth_build_nothing_more_than_needed() -> None:
    from ampel_core.models import DataPoint, LazyDataPoints

    calls: list[str] = []
    point = DataPoint(id=5, stock=1, time=1.0, band="ztfg", flux=1.0, flux_err=0.1)
    limits = [DataPoint(id=-n, stock=1, time=0.5, band="ztfg", flux=None, flux_err=0.1, upper_limit=True) for n in (1, 2)]

    def rest() -> list[DataPoint]:
        calls.append("rest")
        return limits

    def select(known: Container[int]) -> list[DataPoint]:
        calls.append("select")
        return [dp for dp in limits if dp.id not in known]

    lazy = LazyDataPoints([point], rest, select)
    assert lazy and calls == []  # truth from the detections alone
    assert lazy.unknown({5, -1}) == [limits[1]] and calls == ["select"]
    assert list(lazy) == [point, *limits] and calls == ["select", "rest"]
    assert lazy.unknown({-2}) == [point, limits[0]] and calls == ["select", "rest"]  # built: filtered
    assert LazyDataPoints([point], rest).unknown({5}) == limits  # without select: built whole, filtered


class SeesPrivate(AlertFilter):
    """Takes an alert only when its history holds a datapoint tagged ZTF_PRIV."""

    def process(self, alert):
        return any("ZTF_PRIV" in dp.tags for dp in alert.datapoints)


def test_a_filter_sees_only_the_datapoints_its_channel_may_see(tmp_path: Path, register_units) -> None:
    """A filter's decision must not depend on history outside its channel's rights (it would leak
    it): the ZTF_PUB channel's filter never sees the ZTF_PRIV point that the unrestricted one does."""
    register_units(SeesPrivate)
    alerts = tmp_path / "history.jsonl"
    alerts.write_text('{"stock": "X1", "id": 1, "datapoints": ['
                      '{"id": 10, "time": 60001.0, "band": "ztfg", "flux": 5.0, "flux_err": 1.0, "tags": ["ZTF_PUB"]}, '
                      '{"id": 9, "time": 60000.0, "band": "ztfr", "flux": 4.0, "flux_err": 1.0, "tags": ["ZTF_PRIV"]}]}\n')
    document = job(tmp_path, alerts, [{"name": "PUBLIC", "access": ["ZTF_PUB"], "filter": {"unit": "SeesPrivate"}},
                                      {"name": "ANY", "filter": {"unit": "SeesPrivate"}}],
                   [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"}}])
    summary = run_job(load_job(document))
    assert (summary.accepted["ANY"], summary.accepted["PUBLIC"], summary.rejected["PUBLIC"]) == (1, 0, 1)
