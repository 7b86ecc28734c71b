"""Interruptions, in real `ampel job` processes: Ctrl-C, SIGTERM and SIGKILL at any point, then the
same command again, must leave the store an uninterrupted run leaves (`store_fingerprint`), never
wait for a dead process's leases, record the interrupted run truthfully, and count only what was
committed. Also: a rerun of a finished job adds nothing but its run record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_core.store import StoreError, open_store
from ampel_core.testing import store_fingerprint

SAMPLE = Path(__file__).parents[1] / "data" / "ztf_sample.jsonl"
PROBE = Path(__file__).parents[1] / "fixtures" / "probe"  # ampel_probe_units: T2Probe logs and sleeps
# `ampel` with the probe unit registered (it is not an installed distribution)
BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import ampel_probe_units as probe; "
             "from ampel_core import plugins; plugins.register(plugins.get_manager(), probe, 'ampel-probe-units'); "
             "from ampel_core.cli import main; main(sys.argv[1:])")


def write_job(path: Path, alerts: Path, store: Path, log: Path, batch_size: int = 20) -> Path:
    """T0 over ``alerts`` (two channels), T2 with T2LightCurveSummary and the slow T2Probe, T3.
    The probe's ``log`` is part of its configuration, so jobs compared must share one."""
    path.write_text(yaml.safe_dump({
        "name": "faults", "store": f"sqlite:///{store}",
        "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"},
                                            {"unit": "T2Probe", "config": {"log": str(log)}}]},
                     {"name": "PUB", "access": ["ZTF_PUB"], "filter": {"unit": "MinDetectionsFilter",
                                                                        "config": {"min_detections": 2}}}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"},
                   "batch_size": batch_size},
                  {"tier": 2, "batch_size": 5},
                  {"tier": 3, "select": {"channel": "ALL"}, "react": [{"unit": "T3TableReport", "config": {"show": False}}]}]}))
    return path


def start(job: Path, seconds: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", BOOTSTRAP, str(PROBE), "job", str(job), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PROBE_SECONDS": str(seconds)})


def finish(job: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    process = start(job)
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < timeout
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


def probe_starts(log: Path) -> int:
    return sum(line.startswith("start") for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe's log, one for every job of this module (see `write_job`)."""
    return tmp_path_factory.mktemp("probe") / "probe.log"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, log: Path,
              sample_copies: Any) -> tuple[Path, dict[str, list[tuple[object, ...]]]]:
    """Six copies of the sample (276 alerts) and the fingerprint of an uninterrupted run over them."""
    folder = tmp_path_factory.mktemp("reference")
    alerts = sample_copies(folder / "alerts", 6, one_per_file=False)
    finish(write_job(folder / "job.yml", alerts, folder / "store.db", log))
    return alerts, store_fingerprint(f"sqlite:///{folder / 'store.db'}")


def interrupted_then_rerun(tmp_path: Path, alerts: Path, log: Path, signum: int, when: str, delay: float = 0.0) -> Path:
    """Run the job, send ``signum`` once the probe has started a few tickets (``when`` 't2') or after
    ``delay`` seconds (``when`` 'time'), check how it ended, then run it again; the store's path."""
    store = tmp_path / "store.db"
    job = write_job(tmp_path / "job.yml", alerts, store, log)
    earlier = probe_starts(log)
    process = start(job, seconds=0.2 if when == "t2" else 0.0)
    started = time.monotonic()
    if when == "t2":
        while probe_starts(log) < earlier + 3:
            assert process.poll() is None, "the job ended before the signal"
            assert time.monotonic() - started < 60, "the job never got to T2"
            time.sleep(0.02)
    else:
        while process.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr
    if process.returncode != 0:  # else the signal came after the job had finished
        assert process.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 130), stderr
        if signum != signal.SIGKILL:
            assert "error: interrupted" in stderr
    if when == "t2" and store.exists():
        opened = open_store(f"sqlite:///{store}")
        status = opened.ticket_status()
        last = opened.runs()[-1].status
        opened.close()
        if signum == signal.SIGKILL:
            assert last == "running" and status.get("running", 0) > 0  # until the next run finds its process gone
        else:
            assert last == "interrupted" and status.get("running", 0) == 0  # claimed tickets were handed back
    started = time.monotonic()
    rerun = finish(job)
    assert time.monotonic() - started < 60, "the rerun waited for a lease"  # the lease is 300 s
    assert "Traceback" not in rerun.stderr
    return store


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_t2_does_not_stall_the_rerun(tmp_path: Path, reference: tuple[Path, dict], log: Path,
                                                 signum: int) -> None:
    alerts, expected = reference
    store = interrupted_then_rerun(tmp_path, alerts, log, signum, "t2")
    assert store_fingerprint(f"sqlite:///{store}") == expected
    opened = open_store(f"sqlite:///{store}")
    statuses = [run.status for run in opened.runs()]
    opened.close()
    assert statuses == ["killed" if signum == signal.SIGKILL else "interrupted", "ok"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signum=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGKILL]), delay=st.floats(0.4, 4.0))
def test_a_signal_at_any_point_then_a_rerun_equals_an_uninterrupted_run(
        tmp_path_factory: pytest.TempPathFactory, reference: tuple[Path, dict], log: Path, signum: int,
        delay: float) -> None:
    alerts, expected = reference
    store = interrupted_then_rerun(tmp_path_factory.mktemp("signal"), alerts, log, signum, "time", delay)
    assert store_fingerprint(f"sqlite:///{store}") == expected


def committed_alerts(store: Path) -> int:
    """Alerts committed so far; 0 until the job has created the store's schema."""
    try:
        return open_store(f"sqlite:///{store}", read_only=True).counts()["alerts"]
    except StoreError:  # no file yet, or the file before its schema is written
        return 0


def test_counts_after_an_interruption_equal_what_was_committed(tmp_path: Path, log: Path, sample_copies: Any) -> None:
    alerts = sample_copies(tmp_path / "alerts", 40, one_per_file=False)  # 1,840 alerts
    store = tmp_path / "store.db"
    process = start(write_job(tmp_path / "job.yml", alerts, store, log, batch_size=10))
    deadline = time.monotonic() + 60
    while committed_alerts(store) < 200:
        assert time.monotonic() < deadline and process.poll() is None, "T0 never got going"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    opened = open_store(f"sqlite:///{store}")
    run = opened.runs()[-1]
    counts = opened.counts()
    opened.close()
    assert run.status == "interrupted" and 200 <= counts["alerts"] < 1840
    assert run.summary["ingested"] == run.summary["alerts"] == counts["alerts"] == 46 * run.summary["records"]


def test_a_rerun_changes_no_history(tmp_path: Path, reference: tuple[Path, dict], log: Path) -> None:
    alerts, expected = reference
    store = tmp_path / "store.db"
    job = write_job(tmp_path / "job.yml", alerts, store, log)
    finish(job)
    before = open_store(f"sqlite:///{store}").counts()
    finish(job)
    after = open_store(f"sqlite:///{store}").counts()
    assert store_fingerprint(f"sqlite:///{store}") == expected
    assert {k: v for k, v in after.items() if k not in ("runs", "reports")} == {
        k: v for k, v in before.items() if k not in ("runs", "reports")}
    assert (after["runs"], after["reports"]) == (before["runs"] + 1, before["reports"] + 1)


def test_a_rerun_of_the_elasticc_example_changes_no_history(tmp_path: Path, shared_data: Path) -> None:
    """The case of the report: docs/examples/elasticc.yml twice on one store (a combiner channel
    that rejects some alerts) added a channel state."""
    job = Path(__file__).parents[2] / "docs" / "examples" / "elasticc.yml"
    archive = shared_data / "elasticc" / "alerce_simulator_elasticc_v0_9_5689alerts.tar.gz"
    store = f"sqlite:///{tmp_path / 'elasticc.db'}"
    command = [sys.executable, "-m", "ampel_core.cli", "job", str(job), "--set", f"alerts={archive}", "--store", store,
               "--no-progress"]
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    first = store_fingerprint(store)
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    assert store_fingerprint(store) == first
