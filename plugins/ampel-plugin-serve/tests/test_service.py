"""`ampel serve` end to end: a real server process (uvicorn on 127.0.0.1) on a real SQLite file and
a real PostgreSQL schema, fed real ZTF alerts through a watched directory. A job run locally and the
same job uploaded give identical stores; SIGTERM loses nothing and a restart resumes; a replay runs
a new channel over what the store holds; paused jobs take no alerts; T3 runs on its schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.store import open_store
from ampel_core.testing import store_fingerprint
from ampel_serve._cli import request_json

from ampel_serve.testing import ampel, drop_alerts, wait_for


def _team(store: str, name: str = "A", rights: str = "ZTF_PUB") -> str:
    return ampel("serve", "team", "add", name, "--rights", rights, "--store", store).stdout.strip()


def _rows(store: str, query: str) -> list[tuple[Any, ...]]:
    opened = open_store(store, read_only=True)
    try:
        return opened.execute(query)  # type: ignore[attr-defined, no-any-return]
    finally:
        opened.close()


def _idle(store: str, files: int) -> bool:
    """Every dropped file ingested and no T2 ticket left to run."""
    ingested = _rows(store, "SELECT COUNT(DISTINCT path) FROM serve_ingested")[0][0]
    open_tickets = _rows(store, "SELECT COUNT(*) FROM tickets WHERE status NOT IN ('done', 'failed')")[0][0]
    tickets = _rows(store, "SELECT COUNT(*) FROM tickets")[0][0]
    return bool(ingested == files and tickets and not open_tickets)


def _run_locally(job_file: Path, alerts: Path, store: str) -> None:
    """The job as a team runs it on its own machine, T0 over the same files (T3 reports are not part
    of a store's fingerprint; the traces of its units are)."""
    job = load_job(job_file, {"alerts": str(alerts)}, store=store)
    summary = run_job(job)
    assert summary.status == "ok" and summary.tickets_done > 0


def _ended(store: str) -> list[str]:
    return [status for (status,) in _rows(store, "SELECT status FROM runs ORDER BY id")]


@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_run_locally_then_upload_gives_identical_results(server: Any, store_url: str, local_store_url: str,
                                                         job_file: Path, alerts: Path, mode: str) -> None:
    token = _team(store_url)
    live = server("--pattern", "*.avro", *(["--threads"] if mode == "threads" else []))
    answer = ampel("submit", str(job_file), "--to", live.url, "--token", token).stdout
    assert "version 1 uploaded: active, channels TEAM_A_SN" in answer
    files = drop_alerts(alerts, live.watch)
    wait_for(lambda: _idle(store_url, files), what="the server to ingest every file and run every ticket")
    code, output = live.stop()
    assert code == 0, output

    _run_locally(job_file, live.watch, local_store_url)
    served, ran = store_fingerprint(store_url), store_fingerprint(local_store_url)
    assert served["results"] and served["states"]
    assert served == ran
    assert set(_ended(store_url)) <= {"ok", "stopped"}  # every run of the server recorded its end


def test_sigterm_finishes_in_flight_work_and_a_restart_resumes(server: Any, store_url: str, local_store_url: str,
                                                               job_file: Path, alerts: Path) -> None:
    token = _team(store_url)
    first = server("--pattern", "*.avro", "--batch-size", "10")  # T0 passes of 10 files
    ampel("submit", str(job_file), "--to", first.url, "--token", token)
    files = drop_alerts(alerts, first.watch, copies=10)
    wait_for(lambda: _rows(store_url, "SELECT COUNT(*) FROM serve_ingested")[0][0] >= 3, what="ingestion to start")
    code, output = first.stop()
    assert code == 0, output
    statuses = _ended(store_url)
    assert "running" not in statuses and "killed" not in statuses, statuses
    stopped_at = _rows(store_url, "SELECT COUNT(*) FROM serve_ingested")[0][0]
    assert 3 <= stopped_at < files  # stopped after the pass in flight, with files left

    second = server("--pattern", "*.avro")
    wait_for(lambda: _idle(store_url, files), what="the restarted server to finish")
    code, output = second.stop()
    assert code == 0, output

    _run_locally(job_file, first.watch, local_store_url)
    assert store_fingerprint(store_url) == store_fingerprint(local_store_url)


def _other_job(job_file: Path, tmp_path: Path) -> Path:
    """A second team's job: another channel, another filter."""
    document = yaml.safe_load(job_file.read_text())
    document["name"] = "bright"
    document["channels"][0].update(name="TEAM_B_BRIGHT", filter={"unit": "MinDetectionsFilter", "config": {"min_detections": 8}})
    document["tasks"][2]["select"]["channel"] = "TEAM_B_BRIGHT"
    path = tmp_path / "bright.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_replay_runs_a_new_channel_over_the_store(server: Any, store_url: str, local_store_url: str, tmp_path: Path,
                                                  job_file: Path, alerts: Path) -> None:
    token_a, token_b = _team(store_url, "A"), _team(store_url, "B")
    live = server("--pattern", "*.avro")
    ampel("submit", str(job_file), "--to", live.url, "--token", token_a)
    files = drop_alerts(alerts, live.watch)
    wait_for(lambda: _idle(store_url, files), what="ingestion of the first job")
    bright = _other_job(job_file, tmp_path)
    ampel("submit", str(bright), "--to", live.url, "--token", token_b)
    summary = request_json("POST", f"{live.url}/jobs/bright/replay", token_b)
    assert summary["files"] == files and summary["accepted"]["TEAM_B_BRIGHT"] > 0
    assert "TEAM_A_SN" not in summary["accepted"]  # the first job's decisions stand
    wait_for(lambda: _idle(store_url, files), what="the replay's tickets")
    live.stop()

    # the same as one local run of both channels over the same alerts
    both = yaml.safe_load(job_file.read_text())
    both["channels"].append(yaml.safe_load(bright.read_text())["channels"][0])
    combined = tmp_path / "both.yml"
    combined.write_text(yaml.safe_dump(both))
    _run_locally(combined, live.watch, local_store_url)
    served, ran = store_fingerprint(store_url), store_fingerprint(local_store_url)
    history = ("channel_states", "journal", "state sequences")
    assert {k: v for k, v in served.items() if k not in history} == {k: v for k, v in ran.items() if k not in history}
    # the replayed channel takes the same alerts and ends with the same state of each stock; its
    # states in between differ: replayed alerts see every datapoint the store already holds
    # (later alerts' too), so the replay makes each stock's latest state at once
    def taken(found: dict[str, Any], channel: str) -> list[Any]:
        return [row[:5] for row in found["journal"] if row[3] == channel]

    def latest(found: dict[str, Any], channel: str) -> dict[int, str]:
        return {stock: state for stock, name, state in found["state sequences"] if name == channel}

    for channel in ("TEAM_A_SN", "TEAM_B_BRIGHT"):
        assert taken(served, channel) == taken(ran, channel) and latest(served, channel) == latest(ran, channel)
    assert [row for row in served["state sequences"] if row[1] == "TEAM_A_SN"] == [
        row for row in ran["state sequences"] if row[1] == "TEAM_A_SN"]


def test_a_paused_job_takes_no_alerts_until_resumed(server: Any, store_url: str, job_file: Path, alerts: Path) -> None:
    token = _team(store_url)
    live = server("--pattern", "*.avro")
    ampel("submit", str(job_file), "--to", live.url, "--token", token)
    assert request_json("POST", f"{live.url}/jobs/sn-candidates/pause", token)["status"] == "paused"
    files = drop_alerts(alerts, live.watch)
    import time

    time.sleep(1.5)  # many polls of the watched directory
    assert _rows(store_url, "SELECT COUNT(*) FROM serve_ingested")[0][0] == 0
    assert _rows(store_url, "SELECT COUNT(*) FROM alerts")[0][0] == 0
    assert request_json("POST", f"{live.url}/jobs/sn-candidates/resume", token)["status"] == "active"
    wait_for(lambda: _idle(store_url, files), what="ingestion after resume")


def test_t3_runs_on_its_schedule(server: Any, store_url: str, job_file: Path, alerts: Path) -> None:
    token = _team(store_url)
    live = server("--pattern", "*.avro", "--t3-interval", "0.5")
    ampel("submit", str(job_file), "--to", live.url, "--token", token)
    files = drop_alerts(alerts, live.watch)
    wait_for(lambda: _idle(store_url, files), what="ingestion")

    def reported() -> bool:  # by a T3 run begun after the last T0-T2 activity (an earlier one may have seen no stock)
        last = _rows(store_url, "SELECT MAX(time) FROM journal WHERE tier < 3")[0][0]
        rows = _rows(store_url, "SELECT r.started FROM runs r JOIN reports p ON p.run = r.id")
        return any(started >= last for (started,) in rows)

    wait_for(reported, timeout=30, what="a T3 report")
    code, output = live.stop()
    assert code == 0
    assert "ZTF21abiuvdk" in output  # the T3TableReport of the job printed its table


def test_startup_errors_are_one_line(tmp_path: Path) -> None:
    import socket

    store = f"sqlite:///{tmp_path / 's.db'}"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = ampel("serve", "--store", store, "--port", port, check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    done = ampel("serve", "--store", store, "--watch", str(tmp_path / "nowhere"), "--port", "0", check=False)
    assert done.returncode == 2 and done.stderr.strip() == f"error: --watch {tmp_path / 'nowhere'}: no such directory"
    done = ampel("submit", str(tmp_path / "none.yml"), "--to", "http://127.0.0.1:1", "--token", "t", check=False)
    assert done.returncode == 2 and done.stderr.strip() == f"error: job file not found: {tmp_path / 'none.yml'}"
    (tmp_path / "job.yml").write_text("name: x\n")
    done = ampel("submit", str(tmp_path / "job.yml"), "--to", "http://127.0.0.1:1", "--token", "t", check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: cannot reach http://127.0.0.1:1/jobs")


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``: their command lines (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found[int(entry.name)] = command
    return found


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_child_is_started_again_and_an_orphan_stops(server: Any, store_url: str, job_file: Path,
                                                             alerts: Path) -> None:
    import os
    import signal

    token = _team(store_url)
    live = server("--pattern", "*.avro")
    ampel("submit", str(job_file), "--to", live.url, "--token", token)
    children = _children(live.process.pid)
    ingest = next(pid for pid, command in children.items() if "serve ingest" in command)
    assert sum("serve t2" in command for command in children.values()) == 1
    os.kill(ingest, signal.SIGKILL)
    wait_for(lambda: any("serve ingest" in c and p != ingest for p, c in _children(live.process.pid).items()),
             30, "the ingestion to be started again")
    files = drop_alerts(alerts, live.watch)
    wait_for(lambda: _idle(store_url, files), what="ingestion by the new process")
    children = _children(live.process.pid)
    live.process.kill()  # SIGKILL: no graceful stop; the ingest process notices it is orphaned
    live.process.wait()
    wait_for(lambda: not any(_alive(pid) for pid in children), 30, "the orphaned ingestion and T2 worker to stop")
    assert "running" not in _ended(store_url)  # they recorded the end of their runs
