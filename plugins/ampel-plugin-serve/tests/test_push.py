"""The T3 push units against real servers: real ZTF alerts (docs/examples/data/ztf) through T0 and
T2 into a SQLite store, then T3 jobs whose push units post to an HTTP server this test starts on
127.0.0.1 (webhook, TNS endpoint), write a TNS bulk-report file, or produce to Kafka (a broker
from $AMPEL_TEST_KAFKA; without one, only the undeliverable case, against a closed port); and a
team's job uploaded to a running `ampel serve` that pushes from its T3 schedule."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.models import DataPoint
from ampel_core.registry import Registry
from ampel_core.runtime.t3 import stock_view
from ampel_core.store import open_store
from ampel_core.units import UnitConfigError, build_unit
from ampel_serve.push import (
    ALLOWED_HOSTS_ENV,
    KafkaPublisher,
    PushError,
    TNSReporter,
    WebhookPublisher,
    mjd_to_utc,
    stock_position,
)

REPOSITORY = Path(__file__).resolve().parents[3]
ALERTS = REPOSITORY / "docs" / "examples" / "data" / "ztf"
CHANNEL = {"name": "ZTF_PUBLIC", "access": ["ZTF_PUB"], "t2": [{"unit": "T2LightCurveSummary"}]}
SN2021RHU = "ZTF21abiuvdk"
FAST = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 5}


@pytest.fixture(scope="module")
def ztf_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """62 real ZTF alerts through T0 (every public alert accepted) and T2 light-curve summaries."""
    pytest.importorskip("ampel_ztf")
    url = f"sqlite:///{tmp_path_factory.mktemp('push') / 'store.db'}"
    run_job(load_job({"name": "ingest", "store": url, "channels": [CHANNEL], "tasks": [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(ALERTS)], "pattern": "*.avro"}},
         "format": {"name": "ztf"}},
        {"tier": 2}]}))
    return url


@pytest.fixture
def registry(register_units: Callable[..., Registry]) -> Registry:
    return register_units(WebhookPublisher, TNSReporter, KafkaPublisher)


def run_t3(ztf_store: str, registry: Registry, *react: dict[str, Any], select: dict[str, Any] | None = None
           ) -> tuple[Any, list[tuple[str | None, str, Any]]]:
    """Run one T3 task over the store; its summary and stored reports."""
    job = {"name": "push", "store": ztf_store, "channels": [CHANNEL],
           "tasks": [{"tier": 3, "select": select or {"channel": "ZTF_PUBLIC"}, "react": list(react)}]}
    summary = run_job(load_job(job), registry=registry)
    store = open_store(ztf_store)
    try:
        return summary, store.reports(summary.run)
    finally:
        store.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """What the local server answers (status, body, headers), one per request; the last repeats."""

    answers: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=lambda: [(200, b"ok", {})])
    received: list[Received] = field(default_factory=list)
    url: str = ""


@contextmanager
def http_server(*answers: tuple[int, bytes, dict[str, str]]) -> Iterator[Server]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, recording every POST."""
    state = Server(list(answers) or [(200, b"ok", {})])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.received.append(Received(self.path, dict(self.headers), body))
                status, answer, headers = state.answers.pop(0) if len(state.answers) > 1 else state.answers[0]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def selected(ztf_store: str) -> dict[int, Any]:
    """The stocks of the channel, as a T3 over it sees them (id -> StockView)."""
    store = open_store(ztf_store)
    try:
        return {s: stock_view(store, s, "ZTF_PUBLIC", frozenset({"ZTF_PUB"}))
                for s in store.select_stocks("ZTF_PUBLIC", [], None, None)}
    finally:
        store.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Webhook -------------------------------------------------------------------------------------


def test_webhook_posts_every_stock_once_with_its_provenance(ztf_store: str, registry: Registry,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    views = selected(ztf_store)
    with http_server() as server:
        monkeypatch.setenv("AMPEL_PUSH_SLACK", f"{server.url}/services/T000/B000/secret")
        summary, [(channel, unit, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url_env": "AMPEL_PUSH_SLACK", "stocks_per_message": 20, "link": "https://ampel.example.org/stocks/{name}",
            **FAST}})
    assert summary.reports == 1 and summary.reports_failed == 0
    assert (channel, unit) == ("ZTF_PUBLIC", "WebhookPublisher")
    assert len(server.received) == len(report["messages"]) == -(-len(views) // 20) >= 2
    assert {r.path for r in server.received} == {"/services/T000/B000/secret"}
    assert "secret" not in json.dumps(report) and report["target"] == server.url  # the path is the secret
    sent = [stock for message in report["messages"] for stock in message["stocks"]]
    assert sorted(s["id"] for s in sent) == sorted(views) and report["sent"] == len(views) and report["failed"] == 0
    assert all(s["state"] == views[s["id"]].latest_state and s["name"] == views[s["id"]].name for s in sent)
    assert all(m["status"] == 200 and m["attempts"] == 1 and m["delivered"] for m in report["messages"])
    bodies = [json.loads(r.body) for r in server.received]
    assert [m["text"] for m in report["messages"]] == [b["text"] for b in bodies]  # what was sent
    assert all(r.headers["Content-Type"] == "application/json" for r in server.received)
    rhu = next(v for v in views.values() if v.name == SN2021RHU)
    [line] = [b["text"]["text"] for body in bodies for b in body["blocks"] if SN2021RHU in b["text"]["text"]]
    assert line == (f"*<https://ampel.example.org/stocks/{SN2021RHU}|{SN2021RHU}>* · "
                    f"ndet: {rhu.results['T2LightCurveSummary']['ndet']}")
    assert all(len(body["blocks"]) <= 21 and body["text"].startswith("*AMPEL: ") for body in bodies)


def test_webhook_retries_with_backoff_then_delivers(ztf_store: str, registry: Registry) -> None:
    views = selected(ztf_store)
    with http_server((503, b"busy", {}), (429, b"slow down", {"Retry-After": "0"}), (200, b"ok", {})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url": f"{server.url}/hook", "stocks_per_message": 45, **FAST}})
    assert summary.reports_failed == 0
    assert report["messages"][0]["attempts"] == 3 and report["messages"][0]["status"] == 200
    assert len(server.received) == 2 + len(report["messages"]) and report["sent"] == len(views)
    assert server.received[0].body == server.received[2].body  # the same message, re-sent


def test_webhook_failure_is_in_the_report_and_the_run_summary(ztf_store: str, registry: Registry) -> None:
    views = selected(ztf_store)
    with http_server((500, b"down", {})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url": f"{server.url}/hook", "retries": 2, **FAST}})
    assert summary.reports == 0 and summary.reports_failed == 1
    assert report["exception"] == "PushError"
    assert len(server.received) == 3  # one message, three attempts; the others are not attempted
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert kept["sent"] == 0 and kept["failed"] == len(views)
    assert sorted(s["id"] for m in kept["messages"] for s in m["stocks"]) == sorted(views)
    first, *rest = kept["messages"]
    assert first["attempts"] == 3 and first["status"] == 500 and "HTTP 500" in first["error"]
    assert all(m["attempts"] == 0 and m["error"].startswith("not attempted") for m in rest)


def test_since_last_report_announces_each_state_once_and_again_after_a_failure(
        ztf_store: str, registry: Registry, tmp_path: Path) -> None:
    """A live instance runs a job's T3 again and again: with `since_last_report` a webhook gets each
    stock's state once; a push that failed is repeated on the next run, not lost."""
    views = selected(ztf_store)
    store = tmp_path / "store.db"  # a copy: the journal lines written here stay out of the shared store
    store.write_bytes(Path(ztf_store.removeprefix("sqlite:///")).read_bytes())
    url, select = f"sqlite:///{store}", {"channel": "ZTF_PUBLIC", "since_last_report": True}
    with http_server((500, b"down", {}), (200, b"ok", {})) as server:
        react = {"unit": "WebhookPublisher", "config": {"url": f"{server.url}/hook", "retries": 0,
                                                        "stocks_per_message": 45, **FAST}}
        down, [(_, _, failed)] = run_t3(url, registry, react, select=select)
        assert down.reports_failed == 1 and failed["exception"] == "PushError" and len(server.received) == 1
        back, [(_, _, report)] = run_t3(url, registry, react, select=select)
        messages = -(-len(views) // 45)
        assert back.reports == 1 and report["sent"] == len(views) and len(server.received) == 1 + messages
        sent = [stock["id"] for message in report["messages"] for stock in message["stocks"]]
        assert sorted(sent) == sorted(views)  # every stock, the ones of the failed push included
        quiet, [(_, _, nothing)] = run_t3(url, registry, react, select=select)
        assert quiet.reports == 1 and nothing["sent"] == 0 and nothing["messages"] == []
        assert len(server.received) == 1 + messages  # nothing new: nothing posted
    reported = open_store(url)
    try:
        lines = [e for s in views for e in reported.journal(s) if e.tier == 3]
        assert sorted((e.stock, e.detail["state"]) for e in lines) == sorted((s, v.latest_state) for s, v in views.items())
    finally:
        reported.close()


def test_webhook_final_4xx_is_not_retried_and_others_still_go(ztf_store: str, registry: Registry) -> None:
    with http_server((400, b"invalid_payload", {}), (200, b"ok", {})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url": f"{server.url}/hook", **FAST}})
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert summary.reports_failed == 1 and len(server.received) == len(kept["messages"])
    assert [m["delivered"] for m in kept["messages"]] == [False] + [True] * (len(kept["messages"]) - 1)
    assert "invalid_payload" in kept["messages"][0]["error"] and kept["messages"][0]["attempts"] == 1


def test_redirects_are_not_followed(ztf_store: str, registry: Registry) -> None:
    with http_server((302, b"", {"Location": "http://127.0.0.1:9/elsewhere"})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url": f"{server.url}/hook", "stocks_per_message": 45, **FAST}})
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert summary.reports_failed == 1 and len(server.received) == len(kept["messages"])
    assert all(m["status"] == 302 and m["attempts"] == 1 for m in kept["messages"])


def test_unreachable_webhook_fails_the_report(ztf_store: str, registry: Registry) -> None:
    summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
        "url": f"http://127.0.0.1:{closed_port()}/hook", "retries": 1, **FAST}})
    assert summary.reports_failed == 1 and "not delivered" in report["message"]
    assert '"attempts": 2' in report["message"] and "Connection refused" in report["message"]


def test_push_error_carries_the_report(ztf_store: str) -> None:
    view = next(iter(selected(ztf_store).values()))
    publisher = build_unit(WebhookPublisher, {"url": f"http://127.0.0.1:{closed_port()}/hook", "retries": 0})
    assert isinstance(publisher, WebhookPublisher)
    with pytest.raises(PushError, match="1 of 1 webhook messages") as raised:
        publisher.process([view])
    assert raised.value.report["failed"] == 1 and raised.value.report["messages"][0]["stocks"][0]["id"] == view.id


def test_allowed_hosts_and_secret_names(ztf_store: str, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "hooks.slack.com")
    with http_server() as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
            "url": f"{server.url}/hook", **FAST}})
    assert summary.reports_failed == 1 and server.received == []
    assert f"not in {ALLOWED_HOSTS_ENV}" in report["message"]
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert sorted(s["id"] for s in kept["undelivered"]) == sorted(selected(ztf_store)) and kept["sent"] == 0
    monkeypatch.delenv("AMPEL_PUSH_UNSET", raising=False)
    summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "WebhookPublisher", "config": {
        "url_env": "AMPEL_PUSH_UNSET"}})
    assert summary.reports_failed == 1 and "AMPEL_PUSH_UNSET is not set" in report["message"]
    for config, problem in [({"url_env": "DATABASE_PASSWORD"}, "AMPEL_PUSH_"), ({}, "exactly one of url"),
                            ({"url": "file:///etc/passwd"}, "http://")]:
        with pytest.raises(UnitConfigError, match=problem):
            build_unit(WebhookPublisher, config)


# TNS -----------------------------------------------------------------------------------------

TNS = {"reporting_groupid": 48, "data_source_groupid": 48, "reporter": "A. Tester on behalf of AMPEL"}


def check_at_report(report: dict[str, Any], origin: dict[str, Any], view: Any) -> None:
    """An AT report agrees with the datapoints its provenance names."""
    points = {dp.id: dp for dp in view.datapoints}
    discovery, limit = points[origin["discovery"]], points[origin["non_detection"]]
    positive = [dp for dp in view.datapoints if dp.is_detection and dp.flux > 0]
    assert discovery.time == min(dp.time for dp in positive)
    assert report["discovery_datetime"] == mjd_to_utc(discovery.time)
    assert limit.upper_limit and limit.time == max(dp.time for dp in view.datapoints
                                                   if dp.upper_limit and dp.time < discovery.time)
    assert report["non_detection"]["obsdate"] == mjd_to_utc(limit.time) < report["discovery_datetime"]
    assert float(report["non_detection"]["limiting_flux"]) == pytest.approx(limit.mag, abs=5e-4)
    photometry = [report["photometry"][str(i)] for i in range(len(report["photometry"]))]
    assert [p["obsdate"] for p in photometry] == [mjd_to_utc(points[i].time) for i in origin["photometry"]]
    assert origin["photometry"][0] == discovery.id and float(photometry[0]["flux"]) == pytest.approx(discovery.mag,
                                                                                                     abs=5e-4)
    assert {p["filterid"] for p in photometry} <= {"110", "111", "112"} and report["internal_name"] == view.name
    ra, dec = (sum(points[i].extra[k] for i in origin["position"]) / len(origin["position"]) for k in ("ra", "dec"))
    assert float(report["ra"]["value"]) == pytest.approx(ra, abs=1e-5)
    assert float(report["dec"]["value"]) == pytest.approx(dec, abs=1e-5)
    assert report["reporting_groupid"] == "48" and report["reporter"] == TNS["reporter"]


def test_tns_bulk_report_file(ztf_store: str, registry: Registry, tmp_path: Path) -> None:
    views = selected(ztf_store)
    summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "TNSReporter", "config": {
        "output": str(tmp_path / "tns" / "at_{utc}.json"), **TNS}})
    assert summary.reports == 1 and summary.reports_failed == 0
    [output] = (tmp_path / "tns").iterdir()
    assert report["output"] == str(output) and re.fullmatch(r"at_\d{8}T\d{6}Z\.json", output.name)
    bulk = json.loads(output.read_text())["at_report"]
    assert [r["at_report"] for r in report["reports"]] == [bulk[str(i)] for i in range(len(bulk))]  # what was sent
    assert len(bulk) == len(report["reports"]) >= 1
    assert len(report["reports"]) + len(report["skipped"]) == len(views)  # every stock accounted for
    assert all(s["reason"] for s in report["skipped"])
    with pytest.raises(UnitConfigError, match="utc"):
        build_unit(TNSReporter, {"output": "tns/{run}.json", **TNS})
    for number, origin in enumerate(report["reports"]):
        assert origin["state"] == views[origin["id"]].latest_state
        check_at_report(bulk[str(number)], origin, views[origin["id"]])
    assert SN2021RHU in {r["internal_name"] for r in bulk.values()}


def test_tns_unreportable_stock_says_why(ztf_store: str) -> None:
    views = list(selected(ztf_store).values())
    reporter = build_unit(TNSReporter, {"output": "unused.json", **TNS, "filters": {}})
    assert isinstance(reporter, TNSReporter)
    reports, _, skipped = reporter.reports(views)
    assert reports == [] and len(skipped) == len(views)
    assert any("has no TNS filter id" in s["reason"] for s in skipped)
    rhu = next(v for v in views if v.name == SN2021RHU)
    early = type(rhu)(rhu.id, rhu.names, rhu.channels, rhu.tags,
                      tuple(dp for dp in rhu.datapoints if not dp.upper_limit), rhu.latest_state)
    full = build_unit(TNSReporter, {"output": "unused.json", **TNS})
    assert isinstance(full, TNSReporter)
    _, _, [skip] = full.reports([early])
    assert "no upper limit before the first detection" in skip["reason"]


def test_tns_endpoint(ztf_store: str, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMPEL_PUSH_TNS_API_KEY", "k3y")
    reply = json.dumps({"id_code": 200, "id_message": "OK", "data": {"report_id": "12345"}}).encode()
    with http_server((502, b"", {}), (200, reply, {})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "TNSReporter", "config": {
            "url": f"{server.url}/api/set/bulk-report", "bot_id": 7, "bot_name": "ampel_bot",
            "reports_per_request": 100, **TNS, **FAST}})
    assert summary.reports_failed == 0
    [request] = report["requests"]
    assert request["delivered"] and request["report_id"] == "12345" and request["attempts"] == 2
    assert request["stocks"] == [r["id"] for r in report["reports"]]
    posted = server.received[-1]
    assert posted.path == "/api/set/bulk-report"
    assert posted.headers["User-Agent"] == 'tns_marker{"tns_id": 7, "type": "bot", "name": "ampel_bot"}'
    form = urllib.parse.parse_qs(posted.body.decode())
    assert form["api_key"] == ["k3y"] and "k3y" not in json.dumps(report)
    bulk = json.loads(form["data"][0])["at_report"]
    assert len(bulk) == len(report["reports"]) and bulk["0"]["internal_name"] == report["reports"][0]["name"]


def test_tns_refusal_is_a_failure(ztf_store: str, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMPEL_PUSH_TNS_API_KEY", "k3y")
    reply = json.dumps({"id_code": 400, "id_message": "Bad request", "data": {}}).encode()
    with http_server((200, reply, {})) as server:
        summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "TNSReporter", "config": {
            "url": f"{server.url}/api/set/bulk-report", "bot_id": 7, "bot_name": "ampel_bot",
            "reports_per_request": 1, **TNS, **FAST}})
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert summary.reports_failed == 1 and len(server.received) == len(kept["requests"]) == len(kept["reports"])
    assert all(not r["delivered"] and r["error"] == "TNS answered 400: Bad request" for r in kept["requests"])


# Kafka ---------------------------------------------------------------------------------------


def test_kafka_undeliverable_is_reported(ztf_store: str, registry: Registry) -> None:
    pytest.importorskip("confluent_kafka")
    views = selected(ztf_store)
    summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "KafkaPublisher", "config": {
        "bootstrap": f"127.0.0.1:{closed_port()}", "retries": 0, "timeout": 1}})
    kept = json.loads(report["message"].partition("; report: ")[2])
    assert summary.reports_failed == 1 and kept["topic"] == "ampel.ZTF_PUBLIC"
    assert kept["sent"] == 0 and sorted(m["id"] for m in kept["messages"]) == sorted(views)
    assert all(m["error"] for m in kept["messages"])


@pytest.mark.skipif(not os.environ.get("AMPEL_TEST_KAFKA"),
                    reason="no Kafka broker can be installed here: set AMPEL_TEST_KAFKA=host:port to run it")
def test_kafka_topic_per_channel(ztf_store: str, registry: Registry) -> None:
    kafka = pytest.importorskip("confluent_kafka")
    broker, views = os.environ["AMPEL_TEST_KAFKA"], selected(ztf_store)
    topic = f"ampel-test-{os.getpid()}.ZTF_PUBLIC"
    summary, [(_, _, report)] = run_t3(ztf_store, registry, {"unit": "KafkaPublisher", "config": {
        "bootstrap": broker, "topic": f"ampel-test-{os.getpid()}.{{channel}}", "timeout": 10}})
    assert summary.reports_failed == 0 and report["topic"] == topic and report["sent"] == len(views)
    consumer = kafka.Consumer({"bootstrap.servers": broker, "group.id": f"ampel-test-{os.getpid()}",
                               "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: dict[str, Any] = {}
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            received[message.key().decode()] = json.loads(message.value())
        if len(received) == len(views):
            break
    consumer.close()
    assert sorted(m["id"] for m in received.values()) == sorted(views)
    assert all(m["state"] == views[m["id"]].latest_state and m["channel"] == "ZTF_PUBLIC" for m in received.values())


def test_kafka_topic_names() -> None:
    publisher = build_unit(KafkaPublisher, {"bootstrap": "127.0.0.1:9092", "topic": "alerts/{channel}"})
    assert isinstance(publisher, KafkaPublisher)
    with pytest.raises(Exception, match="not a Kafka topic name"):
        publisher.topic_of("ZTF")


# Helpers -------------------------------------------------------------------------------------


def test_position_of_sn2021rhu(ztf_store: str) -> None:
    rhu = next(v for v in selected(ztf_store).values() if v.name == SN2021RHU)
    position = stock_position(rhu.datapoints)
    assert position is not None
    ra, dec, error, used = position
    assert len(used) == len([dp for dp in rhu.datapoints if dp.is_detection and dp.flux > 0])
    # NGC 7814 (SN 2021rhu's host) is at 00h03m15s +16d08m44s; the SN is 5.5 arcsec from its centre
    assert abs(ra - 0.8129) < 0.01 and abs(dec - 16.1456) < 0.01 and error < 1.0


def test_mjd_to_utc() -> None:
    assert mjd_to_utc(51544.5) == "2000-01-01 12:00:00.000"


def test_the_plugin_registers_the_units() -> None:
    from ampel_core.registry import get_registry

    units = get_registry().units
    assert {units[name].distribution for name in ("WebhookPublisher", "TNSReporter", "KafkaPublisher")} == {
        "ampel-plugin-serve"}


# Properties ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_secret_names_are_validated(name: str) -> None:
    valid = re.fullmatch(r"AMPEL_PUSH_[A-Z0-9_]+", name) is not None
    try:
        build_unit(WebhookPublisher, {"url_env": name})
    except UnitConfigError as error:
        assert not valid and "url_env" in str(error)
    else:
        assert valid


@settings(max_examples=200, deadline=None)
@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-85, 85),
       offsets=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=20))
def test_position_is_the_mean_also_across_ra_zero(ra: float, dec: float, offsets: list[tuple[float, float]]) -> None:
    """Detections within 1 arcsec of (ra, dec): the position is within 1.5 arcsec of it, wherever
    it is (RA 0/360 included), and the error is below 2 arcsec."""
    cos_dec = math.cos(math.radians(dec))
    points = [DataPoint(id=n, stock=1, time=60000.0 + n, band="ztfg", flux=100.0, flux_err=1.0, mag=20.0,
                        extra={"ra": (ra + dx / 3600 / cos_dec) % 360, "dec": dec + dy / 3600})
              for n, (dx, dy) in enumerate(offsets)]
    position = stock_position(points)
    assert position is not None
    found_ra, found_dec, error, used = position
    separation = math.hypot(((found_ra - ra + 180) % 360 - 180) * cos_dec, found_dec - dec) * 3600
    assert separation < 1.5 and error < 2 and used == list(range(len(offsets)))


@settings(max_examples=300, deadline=None)
@given(st.floats(40000, 80000))
def test_mjd_to_utc_round_trips(mjd: float) -> None:
    text = mjd_to_utc(mjd)
    parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    # to the nearest millisecond; doubles near 4e9 s carry about 1e-6 s of their own rounding
    assert abs((parsed - datetime(1858, 11, 17, tzinfo=UTC)).total_seconds() - mjd * 86400) <= 5e-4 + 1e-5


# In the live instance --------------------------------------------------------------------------


def test_an_uploaded_job_pushes_from_the_live_instance(server: Any, store_url: str, job_file: Path, alerts: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A team uploads a job whose T3 posts to its webhook (secret from the server's environment)
    and writes TNS reports into the server's data directory; `ampel serve` runs it on its schedule."""
    from ampel_serve.testing import ampel, drop_alerts, wait_for

    job = yaml.safe_load(job_file.read_text())
    job["tasks"][-1]["react"] = [
        {"unit": "WebhookPublisher", "config": {"url_env": "AMPEL_PUSH_A_SLACK", **FAST}},
        {"unit": "TNSReporter", "config": {"output": "tns/at_{utc}.json", "api_key_env": "AMPEL_PUSH_A_TNS", **TNS}}]
    uploaded = tmp_path / "push-job.yml"
    uploaded.write_text(yaml.safe_dump(job))
    with http_server() as hook:
        monkeypatch.setenv("AMPEL_PUSH_A_SLACK", f"{hook.url}/services/team-a-secret")  # the server inherits it
        token = ampel("serve", "team", "add", "A", "--rights", "ZTF_PUB", "--store", store_url).stdout.strip()
        live = server("--pattern", "*.avro", "--t3-interval", "1")
        ampel("submit", str(uploaded), "--to", live.url, "--token", token)
        drop_alerts(alerts, live.watch)
        wait_for(lambda: any(SN2021RHU.encode() in r.body for r in hook.received), timeout=120,
                 what="the webhook message about SN 2021rhu")
        code, _ = live.stop()
    assert code == 0
    written = sorted((live.data_dir / "tns").glob("at_*.json"))
    assert written and any(SN2021RHU in path.read_text() for path in written)
    store = open_store(store_url, read_only=True)
    try:
        runs = [run for (run,) in store.execute("SELECT DISTINCT run FROM reports")]  # type: ignore[attr-defined]
        reports = [(unit, body) for run in runs for _, unit, body in store.reports(run)]
    finally:
        store.close()
    pushed = [body for unit, body in reports if unit == "WebhookPublisher" and body.get("sent")]
    assert pushed and all("team-a-secret" not in json.dumps(body) for _, body in reports)
    assert {s["name"] for body in pushed for m in body["messages"] for s in m["stocks"]} >= {SN2021RHU}


_MAGS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(10, 25))
_ANGLES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(-100, 400))
_POINTS = st.lists(st.tuples(st.floats(59000, 59100), st.sampled_from(["ztfg", "ztfr", "lsstu", ""]),
                             st.booleans(), _MAGS, _MAGS, st.floats(-1e4, 1e4), _ANGLES, _ANGLES), max_size=25)


@settings(max_examples=300, deadline=None)
@given(_POINTS)
def test_at_report_of_any_light_curve(rows: list[tuple[Any, ...]]) -> None:
    """Whatever the datapoints, an AT report is either made — with finite numbers only, the last
    non-detection before the discovery, every number from a datapoint its provenance names — or
    refused with a reason (AmpelError); nothing else."""
    from ampel_core.errors import AmpelError
    from ampel_core.views import StockView
    from ampel_serve.push import ZTF_TNS_FILTERS, at_report

    points = tuple(DataPoint(id=n, stock=1, time=time, band=band, flux=None if limit else flux, flux_err=1.0,
                             mag=mag, mag_err=mag_err, upper_limit=limit, extra={"ra": ra, "dec": dec})
                   for n, (time, band, limit, mag, mag_err, flux, ra, dec) in enumerate(rows))
    view = StockView(1, ("ZTF99test",), ("C",), (), points, "state", {}, "C")
    try:
        report, origin = at_report(view, ZTF_TNS_FILTERS, reporting_groupid=1, data_source_groupid=48, reporter="r")
    except AmpelError as error:
        assert str(error)
        return
    text = json.dumps(report).lower()
    assert "nan" not in text and "inf" not in text
    assert report["non_detection"]["obsdate"] < report["discovery_datetime"]
    named = {origin["discovery"], origin["non_detection"], *origin["photometry"], *origin["position"]}
    assert named <= {dp.id for dp in points}
    assert all(points[i].band in ZTF_TNS_FILTERS for i in (origin["discovery"], origin["non_detection"]))
    assert 0 <= float(report["ra"]["value"]) < 360 and -90 <= float(report["dec"]["value"]) <= 90
