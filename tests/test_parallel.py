"""Parallel execution against one store: ``ampel job --workers N`` (SQLite and PostgreSQL),
``--executor dask`` (a LocalCluster), and ``ampel worker t2 --concurrency N`` as real processes:
identical results to a one-process run, every ticket executed exactly once, a SIGKILLed worker's
ticket finished elsewhere after its lease, SIGTERM finishing the current ticket."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ampel_core.drivers import run_job
from ampel_core.errors import AmpelError
from ampel_core.hookspecs import hookimpl
from ampel_core.jobs import load_job
from ampel_core.drivers import SQLITE_MAX_WORKERS, check_store
from ampel_core.runtime import partition_of
from ampel_core.store import open_store
from ampel_core.testing import store_fingerprint

try:
    import ampel_postgres.plugin
    from ampel_postgres.testing import postgres_url, scratch_schema  # noqa: F401 - fixture
except ImportError:  # pragma: no cover - the PostgreSQL tests then fail, naming what is missing
    ampel_postgres = None  # type: ignore[assignment]

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture
def postgres(postgres_url: str, register_plugin: Any) -> Iterator[str]:
    """A fresh PostgreSQL store URL, with the store plugin registered in the test's plugin manager."""
    register_plugin(ampel_postgres.plugin, "ampel-plugin-postgres")
    with scratch_schema(postgres_url) as url:
        yield url


# data --------------------------------------------------------------------------------------------


def write_nights(folder: Path, stocks: int = 36, nights: int = 6, seed: int = 7) -> Path:
    """ZTF-like alerts in the core JSON format, one file per night: each object is seen on several
    nights, each alert carrying the object's whole history (detections, upper limits, public and
    private photometry), so one object's alerts are spread over many files. Plus one unreadable file."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    history: dict[str, list[dict[str, Any]]] = {f"ZTF24sim{i:04d}": [] for i in range(stocks)}
    for night in range(nights):
        lines = []
        for name in rng.sample(sorted(history), k=stocks * 2 // 3):
            for _ in range(rng.choice((1, 1, 2))):
                upper = rng.random() < 0.25
                flux = None if upper else round(rng.uniform(200, 5000), 3)
                program = rng.choice(("ZTF_PUB", "ZTF_PUB", "ZTF_PRIV"))  # some alerts have no public photometry
                point = {"time": 60300.0 + night + rng.random() * 0.5, "band": rng.choice(("ztfg", "ztfr", "ztfi")),
                         "flux": flux, "flux_err": round(rng.uniform(10, 60), 3), "zp": 25.0, "zpsys": "ab",
                         "upper_limit": upper, "tags": ["ZTF", program]}
                history[name].insert(0, point)
                lines.append(json.dumps({"stock": name, "datapoints": history[name][:12]}))
        (folder / f"night-{night:02d}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "night-99.jsonl").write_text('{"stock": "broken", "datapoints": [{"time": "never"}]}\n')
    return folder


def job_document(store: str, alerts: Path, batch_size: int = 5) -> dict[str, Any]:
    return {
        "name": "parallel", "store": store,
        "channels": [
            {"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]},
            {"name": "PUBLIC", "access": ["ZTF_PUB"], "filter": {"unit": "MinDetectionsFilter",
                                                                 "config": {"min_detections": 2}},
             "t2": [{"unit": "T2LightCurveSummary"}]},
            {"name": "COMBINED", "combiner": {"unit": "Combiner"}, "t2": [{"unit": "T2LightCurveSummary"}]},
        ],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"},
                   "batch_size": batch_size},
                  {"tier": 2, "batch_size": 4},
                  {"tier": 3, "select": {"channel": "PUBLIC"}, "react": [{"unit": "T3TableReport", "config": {"show": False}}]}],
    }


def counters(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("run", "t0_seconds", "wall_seconds", "alerts_per_second")}


# partitions and stores ---------------------------------------------------------------------------


def test_partitions_are_stable_and_balanced() -> None:
    stocks = range(10_000, 30_000)  # consecutive ids: a plain modulo would be fine, structured ids not
    for count in (2, 3, 4):
        sizes = Counter(partition_of(s, count) for s in stocks)
        assert set(sizes) == set(range(count))
        assert max(sizes.values()) < 1.1 * min(sizes.values())
    assert partition_of(2**62 + 5, 4) == partition_of(2**62 + 5, 4)
    assert partition_of(-7, 3) in range(3)


class PeekingFormat:
    """The JSON format with the optional ``stocks`` peek, counting full decodes."""

    def __init__(self) -> None:
        from ampel_core.alerts import JsonAlertFormat

        self.inner, self.decoded = JsonAlertFormat(), 0

    def stocks(self, payload: bytes, origin: str) -> set[int]:
        from ampel_core.models import content_id

        return {content_id("stock", json.loads(line)["stock"]) for line in payload.splitlines() if line.strip()}

    def decode(self, payload: bytes, origin: str) -> list[Any]:
        self.decoded += 1
        return self.inner.decode(payload, origin)


def test_partitions_split_alerts_and_quarantine_once(sample_alerts: Path) -> None:
    from ampel_core.alerts import AlertDecodeError, JsonAlertFormat
    from ampel_core.runtime import StockPartition

    lines = sample_alerts.read_bytes().splitlines(keepends=True)
    broken = b'{"stock": "ZTF24bad", "datapoints": [{"time": "never"}]}\n'
    for make in (JsonAlertFormat, PeekingFormat):
        parts = [StockPartition(make(), index, 3) for index in range(3)]
        kept = [a.id for part in parts for line in lines for a in part.decode(line, "f")]
        assert sorted(kept) == sorted(a.id for line in lines for a in JsonAlertFormat().decode(line, "f"))
        raised = 0
        for part in parts:
            try:
                assert part.decode(broken, "bad") == []
            except AlertDecodeError:
                raised += 1
        assert raised == 1  # one partition quarantines it
        assert all(part.decode(b"\x00garbage", "worse") == [] for part in parts[1:])
        with pytest.raises(AlertDecodeError):
            parts[0].decode(b"\x00garbage", "worse")
    peeking = [StockPartition(PeekingFormat(), index, 3) for index in range(3)]
    for part in peeking:
        for line in lines:
            part.decode(line, "f")
    assert sum(part.alert_format.decoded for part in peeking) == len(lines)  # each record decoded once in all


def test_which_stores_can_serve_several_processes(tmp_path: Path) -> None:
    note = check_store(f"sqlite:///{tmp_path}/s.db", 2)
    assert note is not None and "SQLite" in note and "lock" in note
    assert check_store("postgresql://db/ampel", 64, "dask", "tcp://10.0.0.1:8786") is None
    with pytest.raises(AmpelError, match="in-memory SQLite"):
        check_store("sqlite:///:memory:", 2)
    with pytest.raises(AmpelError, match=rf"at most {SQLITE_MAX_WORKERS}.*PostgreSQL"):
        check_store(f"sqlite:///{tmp_path}/s.db", SQLITE_MAX_WORKERS + 1)
    with pytest.raises(AmpelError, match=r"other hosts.*PostgreSQL"):
        check_store(f"sqlite:///{tmp_path}/s.db", 2, "dask", "tcp://10.0.0.1:8786")


def _work(registry: Any, seconds: float, outcome: str, report: Any) -> dict[str, Any]:
    report(0, {"items": 1})
    time.sleep(seconds)
    if outcome == "raise":
        raise ValueError("unit exploded")
    if outcome == "die":
        os._exit(3)
    return {"slept": seconds}


def test_local_executor_results_progress_and_failures() -> None:
    from ampel_core.drivers import LocalExecutor

    reports: Counter[str] = Counter()
    assert LocalExecutor().run(_work, [(0.0, "ok"), (0.1, "ok")], lambda tier, counts: reports.update(counts)) == [
        {"slept": 0.0}, {"slept": 0.1}]
    assert reports == {"items": 2}
    started = time.perf_counter()
    with pytest.raises(AmpelError, match=r"worker 2 of 3 failed: ValueError: unit exploded"):
        LocalExecutor().run(_work, [(30.0, "ok"), (0.0, "raise"), (30.0, "ok")], print)
    assert time.perf_counter() - started < 15  # the others were stopped, not waited for
    with pytest.raises(AmpelError, match="worker 1 of 1 failed: process exited with code 3"):
        LocalExecutor().run(_work, [(0.0, "die")], print)


# identical results -------------------------------------------------------------------------------


def test_workers_and_backends_give_identical_results(tmp_path: Path, postgres: str) -> None:
    alerts = write_nights(tmp_path / "alerts")
    reference_url = f"sqlite:///{tmp_path / 'one.db'}"
    reference = run_job(load_job(job_document(reference_url, alerts))).as_dict()
    assert reference["quarantined"] == 1 and reference["records"] == 7 and reference["tickets_done"] > 100
    expected = store_fingerprint(reference_url)
    runs = {
        "sqlite, 2 workers": (f"sqlite:///{tmp_path / 'two.db'}", 2),
        "sqlite, 3 workers": (f"sqlite:///{tmp_path / 'three.db'}", 3),
        "postgresql, 1 process": (postgres, 1),
    }
    for label, (url, workers) in runs.items():
        document = job_document(url, alerts)
        summary = (run_job(load_job(document)) if workers == 1 else run_job(load_job(document), workers=workers)).as_dict()
        assert counters(summary) == counters(reference), label
        got = store_fingerprint(url)
        for part in expected:
            assert got[part] == expected[part], f"{label}: {part} differ"
        assert len(open_store(url).runs()) == 1, f"{label}: one run record"


def test_postgresql_workers_and_dask_give_identical_results(tmp_path: Path, postgres: str, postgres_url: str) -> None:
    alerts = write_nights(tmp_path / "alerts", seed=11)
    reference_url = f"sqlite:///{tmp_path / 'one.db'}"
    reference = run_job(load_job(job_document(reference_url, alerts))).as_dict()
    expected = store_fingerprint(reference_url)
    summary = run_job(load_job(job_document(postgres, alerts)), workers=2).as_dict()
    assert counters(summary) == counters(reference)
    assert store_fingerprint(postgres) == expected
    with scratch_schema(postgres_url) as dask_url:
        progress: Counter[str] = Counter()
        summary = run_job(load_job(job_document(dask_url, alerts)), workers=2, executor="dask",
                                   progress=lambda label, n: progress.update({label: n})).as_dict()
        assert counters(summary) == counters(reference)
        assert progress["T0 alerts"] == reference["alerts"] and progress["T2 tickets"] == reference["tickets_done"]
        assert store_fingerprint(dask_url) == expected
        store = open_store(dask_url)
        [run] = store.runs()
        assert run.status == "ok" and run.summary["tickets_done"] == reference["tickets_done"]
        assert store.reports(run.id)[0][2]["rows"] == reference_rows(reference_url)  # type: ignore[attr-defined]
        store.close()


def test_channels_without_rights_make_no_state(tmp_path: Path, ampel_manager: Any) -> None:
    """An alert a channel may not see makes no state for it (the empty set's state id would be
    every stock's, and its rows would belong to whichever stock came first)."""
    alerts = tmp_path / "private.jsonl"
    alerts.write_text("".join(json.dumps({"stock": name, "datapoints": [
        {"time": 60300.0, "band": "ztfg", "flux": 900.0, "flux_err": 20.0, "tags": ["ZTF_PRIV"]}]}) + "\n"
        for name in ("ZTF24priv1", "ZTF24priv2")))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    document = job_document(url, alerts)
    document["channels"][1]["filter"] = {"unit": "AcceptAll"}
    summary = run_job(load_job(document))
    assert summary.rejected["PUBLIC"] == 2 and summary.accepted["ALL"] == 2
    store = open_store(url)
    assert store.select_stocks("PUBLIC") == []
    stocks = store.select_stocks("ALL")
    assert len(stocks) == 2 and all(len(store.channel_states(stock, "ALL")) == 1 for stock in stocks)
    assert store.counts()["states"] == store.counts()["tickets"] == 2  # ALL's, one per stock


def reference_rows(url: str) -> int:
    store = open_store(url)
    rows = store.reports(store.runs()[0].id)[0][2]["rows"]  # type: ignore[attr-defined]
    store.close()
    return int(rows)


def test_cli_job_with_workers(tmp_path: Path, sample_alerts: Path) -> None:
    job_file = tmp_path / "job.yml"
    job_file.write_text(json.dumps(job_document(f"sqlite:///{tmp_path / 'store.db'}", sample_alerts)))
    summary_file = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, "-m", "ampel_core.cli", "job", str(job_file), "--workers", "2",
                           "--no-progress", "--summary-json", str(summary_file)],
                          capture_output=True, text=True, timeout=120, cwd=REPOSITORY)
    assert done.returncode == 0, done.stderr
    assert "SQLite store: 2 processes" in done.stderr and "run summary" not in done.stderr
    summary = json.loads(summary_file.read_text())
    assert summary["alerts"] == 46 and summary["status"] == "ok" and summary["tickets_done"] > 0
    refused = subprocess.run([sys.executable, "-m", "ampel_core.cli", "job", str(job_file), "--workers", "2",
                              "--store", "sqlite:///:memory:", "--no-progress"],
                             capture_output=True, text=True, timeout=120, cwd=REPOSITORY)
    assert refused.returncode == 2 and "in-memory SQLite" in refused.stderr


# T2 workers as real processes ---------------------------------------------------------------------

PROBE_FOLDER = Path(__file__).parent / "fixtures" / "probe"  # ampel_probe_units: a T2 unit that logs and sleeps

# a worker process: the installed plugins plus the probe unit, then the real `ampel` command line
BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import ampel_probe_units as probe; "
             "from ampel_core import plugins; plugins.register(plugins.get_manager(), probe, 'ampel-probe-units'); "
             "from ampel_core.cli import main; main(sys.argv[1:])")


@pytest.fixture(scope="session")
def probe_folder() -> Path:
    return PROBE_FOLDER


@pytest.fixture
def probe(probe_folder: Path, register_plugin: Any) -> ModuleType:
    if str(probe_folder) not in sys.path:
        sys.path.insert(0, str(probe_folder))
    import ampel_probe_units

    register_plugin(ampel_probe_units, "ampel-probe-units")
    return ampel_probe_units


def make_tickets(store: str, log: Path, tmp_path: Path, count: int) -> list[str]:
    """Ingest ``count`` one-alert objects whose channel runs T2Probe: ``count`` state tickets."""
    alerts = tmp_path / "tickets.jsonl"
    alerts.write_text("".join(json.dumps({"stock": f"ZTF24tkt{i:05d}", "datapoints": [
        {"time": 60300.0 + i / count, "band": "ztfg", "flux": 1000.0 + i, "flux_err": 20.0}]}) + "\n" for i in range(count)))
    document = {"name": "tickets", "store": store,
                "channels": [{"name": "PROBE", "t2": [{"unit": "T2Probe", "config": {"log": str(log)}}]}],
                "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
                           "format": {"name": "json"}, "batch_size": 500}]}
    run_job(load_job(document))
    opened = open_store(store)
    states = [link for _, _, link, _, _, _ in opened.tickets()]  # type: ignore[attr-defined]
    opened.close()
    assert len(states) == count
    return states


def worker(probe_folder: Path, store: str, *options: str, seconds: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", BOOTSTRAP, str(probe_folder), "worker", "t2", "--store", store, *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPOSITORY,
                            env={**os.environ, "PROBE_SECONDS": str(seconds)})


def executions(log: Path) -> tuple[Counter[str], Counter[str]]:
    """How often each state was started and finished by a unit execution."""
    lines = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return Counter(s for kind, _, s in lines if kind == "start"), Counter(s for kind, _, s in lines if kind == "end")


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_four_worker_processes_execute_every_ticket_once(backend: str, tmp_path: Path, probe: ModuleType,
                                                          request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue("postgres") if backend == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    log = tmp_path / "executions.log"
    states = make_tickets(store, log, tmp_path, 2000)
    process = worker(Path(probe.__file__).parent, store, "--concurrency", "4", "--idle-exit", "--batch-size", "5")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "2000 done, 0 failed" in stderr
    started, finished = executions(log)
    assert started == finished == Counter(states)  # each ticket ran exactly once
    assert len({line.split()[1] for line in log.read_text().splitlines()}) == 4  # in four processes
    opened = open_store(store)
    assert opened.ticket_status() == {"done": 2000}
    assert Counter(r.link for _, r in opened.results()) == Counter(states)
    runs = opened.runs()
    assert runs[-1].status == "ok" and runs[-1].summary["tickets_done"] == 2000 and runs[-1].job["concurrency"] == 4
    opened.close()


def test_a_killed_workers_tickets_are_handed_back_at_once_on_its_host(tmp_path: Path, probe: ModuleType,
                                                                       postgres: str) -> None:
    """The killed worker's process is provably gone (same host, no such pid): the next worker does
    not wait for its 60 s lease, and the ticket's interrupted attempt does not count."""
    folder = Path(probe.__file__).parent
    log = tmp_path / "executions.log"
    states = make_tickets(postgres, log, tmp_path, 20)
    doomed = worker(folder, postgres, "--lease", "60", "--batch-size", "1", seconds=60)
    wait_for(lambda: executions(log)[0], 30, "the first worker to start a ticket")
    [victim] = executions(log)[0]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    started_at = time.monotonic()
    survivor = worker(folder, postgres, "--lease", "30", "--batch-size", "2", "--idle-exit")
    _, stderr = survivor.communicate(timeout=120)
    assert time.monotonic() - started_at < 40, "waited for the dead worker's lease"
    assert "handed back 1 ticket(s) leased to workers that are gone" in stderr
    assert survivor.returncode == 0, stderr
    started, finished = executions(log)
    assert started[victim] == 2 and finished[victim] == 1  # killed mid-ticket, then run again elsewhere
    assert finished == Counter(states)
    store = open_store(postgres)
    assert store.ticket_status() == {"done": 20}
    assert Counter(r.link for _, r in store.results()) == Counter(states)
    [(_, _, _, _, attempts, _)] = [t for t in store.tickets() if t[2] == victim]
    assert attempts == 1
    assert [run.status for run in store.runs()][-2:] == ["killed", "ok"]  # the survivor's run marked the dead one
    store.close()


def test_a_lease_held_on_another_host_is_waited_for_and_said(tmp_path: Path, probe: ModuleType, postgres: str) -> None:
    folder = Path(probe.__file__).parent
    log = tmp_path / "executions.log"
    make_tickets(postgres, log, tmp_path, 3)
    store = open_store(postgres)
    [elsewhere] = store.claim_tickets("observatory-7:4242:0:1", 1, 4.0)
    store.close()
    started_at = time.monotonic()
    process = worker(folder, postgres, "--idle-exit", "--batch-size", "1")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert time.monotonic() - started_at > 3  # it waited for the lease
    assert "waiting for 1 ticket(s) leased to 1 other worker(s) on observatory-7 until" in stderr
    assert executions(log)[1][elsewhere.link] == 1 and "3 done, 0 failed" in stderr


def test_sigterm_finishes_the_current_ticket_and_exits(tmp_path: Path, probe: ModuleType, postgres: str) -> None:
    folder = Path(probe.__file__).parent
    log = tmp_path / "executions.log"
    make_tickets(postgres, log, tmp_path, 30)
    process = worker(folder, postgres, "--concurrency", "2", "--batch-size", "3", seconds=0.6)
    wait_for(lambda: sum(executions(log)[0].values()) >= 3, 60, "both workers to be busy")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "(stopped)" in stderr
    started, finished = executions(log)
    assert started == finished and 0 < sum(finished.values()) < 30  # what was started was finished
    store = open_store(postgres)
    status = store.ticket_status()
    assert status.get("running", 0) == 0  # unstarted claimed tickets were handed back
    assert status["done"] == sum(finished.values()) and status["pending"] == 30 - status["done"]
    run = store.runs()[-1]
    assert run.status == "stopped" and run.summary["tickets_done"] == status["done"]
    store.close()


# observers under every driver --------------------------------------------------------------------


class Recorder:
    """An observer plugin: every run-lifecycle hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def ampel_run_started(self, run_id: int, job: dict[str, Any]) -> None:
        self.calls.append(("started", run_id))

    @hookimpl
    def ampel_batch_done(self, run_id: int, tier: int, counts: dict[str, int]) -> None:
        self.calls.append(("batch", run_id, tier, counts))

    @hookimpl
    def ampel_run_finished(self, run_id: int, summary: dict[str, Any]) -> None:
        self.calls.append(("finished", run_id, summary))


BATCH_KEYS = {0: ("records", "alerts", "quarantined", "ingested", "unaccepted"),
              2: ("tickets_done", "tickets_failed", "tickets_retried"), 3: ("stocks", "reports", "reports_failed")}


def observed(calls: list[tuple[Any, ...]]) -> dict[int, dict[str, int]]:
    """What the observers saw of one run, whichever way its work was split: the run started first
    and finished last, every batch names that run, and per tier the batches add up to the run's
    counters. Returns the batches' sums per tier."""
    assert calls[0][0] == "started" and calls[-1][0] == "finished"
    assert [call[0] for call in calls[1:-1]] == ["batch"] * (len(calls) - 2)
    run, summary = calls[0][1], calls[-1][2]
    assert {call[1] for call in calls} == {run}
    sums: dict[int, Counter[str]] = {}
    for _, _, tier, counts in calls[1:-1]:
        assert set(BATCH_KEYS[tier]) <= set(counts), counts
        sums.setdefault(tier, Counter()).update({key: counts[key] for key in BATCH_KEYS[tier]})
    for tier in (0, 2):
        assert {key: summary[key] for key in BATCH_KEYS[tier]} == {key: sums.get(tier, Counter())[key]
                                                                   for key in BATCH_KEYS[tier]}
    return {tier: dict(counts) for tier, counts in sorted(sums.items())}


def test_observers_see_the_same_run_under_every_driver(tmp_path: Path, register_plugin: Any) -> None:
    """One job with one process, --workers 2 and --executor dask, and its T2 by `ampel worker t2`:
    the recording plugin sees one start and one finish per run and the same batch counts."""
    from click.testing import CliRunner

    from ampel_core.cli import cli

    alerts = write_nights(tmp_path / "alerts", stocks=18, nights=3)
    recorder = Recorder()
    register_plugin(recorder, "ampel-plugin-recorder")
    seen = {}
    for driver, options in {"one process": {}, "--workers 2": {"workers": 2},
                            "--executor dask": {"workers": 2, "executor": "dask"}}.items():
        recorder.calls.clear()
        summary = run_job(load_job(job_document(f"sqlite:///{tmp_path / driver}.db", alerts)), **options)
        seen[driver] = observed(recorder.calls)
        assert counters(recorder.calls[-1][2]) == counters(summary.as_dict())
        assert seen[driver][0]["alerts"] > 0 and seen[driver][2]["tickets_done"] > 0 and seen[driver][3]["reports"] == 1
    assert seen["--workers 2"] == seen["--executor dask"] == seen["one process"]

    store = f"sqlite:///{tmp_path / 'worker.db'}"
    document = job_document(store, alerts)
    document["tasks"] = document["tasks"][:1]
    run_job(load_job(document))
    recorder.calls.clear()
    result = CliRunner().invoke(cli, ["worker", "t2", "--store", store, "--idle-exit", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert observed(recorder.calls) == {2: seen["one process"][2]}


# archives: one task per partition ------------------------------------------------------------------


def archive_job(store: str, archive: Path) -> dict[str, Any]:
    document = job_document(store, archive)
    document["tasks"][0]["source"] = {"name": "archive", "config": {"path": str(archive)}}
    return document


def test_a_job_over_an_archive_gives_identical_results_and_reads_it_once(tmp_path: Path, postgres: str,
                                                                        postgres_url: str) -> None:
    """One process, 2 local processes (SQLite) and Dask with one task per partition (PostgreSQL):
    the same states, tickets, results and counts; every partition file read once, by one task."""
    from ampel_core.alerts import JsonAlertFormat
    from ampel_core.archive import build_archive

    alerts = write_nights(tmp_path / "alerts", seed=5)
    archive = tmp_path / "archive"
    info = build_archive([str(alerts)], archive, JsonAlertFormat(), {"name": "json", "config": {}}, 5)
    assert info.quarantined == 1  # the broken line stays in the archive's quarantine
    sizes = {entry["name"]: entry["bytes"] for entry in info.files}
    reference_url = f"sqlite:///{tmp_path / 'one.db'}"
    reference = run_job(load_job(archive_job(reference_url, archive))).as_dict()
    assert reference["partition_bytes"] == sizes and reference["bytes_read"] == info.bytes
    assert reference["alerts"] == info.alerts and reference["tickets_done"] > 100
    expected = store_fingerprint(reference_url)
    runs = {"sqlite, 2 processes": (f"sqlite:///{tmp_path / 'two.db'}", {"workers": 2}),
            "postgresql, dask, 2 workers, 5 tasks": (postgres, {"workers": 2, "executor": "dask"})}
    for label, (url, options) in runs.items():
        summary = run_job(load_job(archive_job(url, archive)), **options).as_dict()  # type: ignore[arg-type]
        assert counters(summary) == counters(reference), label  # partition_bytes too: each file read once
        assert store_fingerprint(url) == expected, label
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            scratch_schema(postgres_url) as url:  # --scheduler ADDRESS: a cluster this job did not start
        summary = run_job(load_job(archive_job(url, archive)), executor="dask", scheduler=cluster.scheduler_address)
        assert counters(summary.as_dict()) == counters(reference)
        assert store_fingerprint(url) == expected
    with pytest.raises(AmpelError, match="with a limit"):
        document = archive_job(f"sqlite:///{tmp_path / 'limit.db'}", archive)
        document["tasks"][0]["limit"] = 10
        run_job(load_job(document), workers=2)


def test_claims_shrink_so_that_the_tail_is_spread() -> None:
    """930 tickets of equal cost on 16 workers: with a fixed claim of 50 the first round takes 800
    and three workers run the last 130 (100 ticket-times in all); sized claims end within a few
    tickets of the ideal 930 / 16."""
    import heapq

    from ampel_core.runtime.t2 import claim_size

    def makespan(size_of: Any, tickets: int = 930, workers: int = 16) -> int:
        free = [(0, worker) for worker in range(workers)]
        remaining, end = tickets, 0
        while remaining:
            at, worker = heapq.heappop(free)
            claimed = min(size_of(remaining, workers), remaining)
            remaining -= claimed
            end = max(end, at + claimed)
            heapq.heappush(free, (at + claimed, worker))
        return end

    assert makespan(lambda remaining, workers: 50) == 100
    sized = makespan(lambda remaining, workers: claim_size(50, remaining, workers))
    assert sized <= -(-930 // 16) + 3
    assert claim_size(50, 10_000, 16) == 50 and claim_size(50, 20, 16) == 1 and claim_size(50, 0, 4) == 1
    assert claim_size(50, 10_000, 16, seconds_per_ticket=3.0) == 1  # a slow unit: one ticket at a time
    assert claim_size(50, 10_000, 16, seconds_per_ticket=0.1) == 20


def test_worker_processes_share_the_tail(tmp_path: Path, probe: ModuleType) -> None:
    """Four real worker processes with --batch-size 50 over 120 tickets: every process runs some
    (a fixed claim of 50 would leave one idle and give two of them 50 each)."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    log = tmp_path / "executions.log"
    states = make_tickets(store, log, tmp_path, 120)
    process = worker(Path(probe.__file__).parent, store, "--concurrency", "4", "--idle-exit", "--batch-size", "50",
                     seconds=0.05)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    _, finished = executions(log)
    assert finished == Counter(states)
    per_process = Counter(line.split()[1] for line in log.read_text().splitlines() if line.startswith("end"))
    assert len(per_process) == 4 and max(per_process.values()) <= 45, per_process
