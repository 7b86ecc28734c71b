"""The command line end to end, in subprocesses: jobs and their summary, the fault test (SIGKILL
mid-ingest, then restart), stock show / plot, provenance with PROV-JSON, runs, replay."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml


def ampel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ampel_core.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def write_job(path: Path, alerts: Path, store: Path, batch_size: int = 50) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "cli-test", "store": f"sqlite:///{store}", "parameters": {"alerts": str(alerts)},
        "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]},
                     {"name": "PUB", "access": ["ZTF_PUB"], "filter": {"unit": "MinDetectionsFilter",
                                                                        "config": {"min_detections": 2}}}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": ["${alerts}"]}}, "format": {"name": "json"},
                   "batch_size": batch_size}, {"tier": 2},
                  {"tier": 3, "select": {"channel": "ALL"}, "react": [{"unit": "T3TableReport", "config": {"max_rows": 3}}]}]}))
    return path


def test_job_prints_summary_and_writes_json(tmp_path: Path, sample_alerts: Path) -> None:
    job = write_job(tmp_path / "job.yml", sample_alerts, tmp_path / "s.db")
    result = ampel("job", str(job), "--summary-json", str(tmp_path / "summary.json"), "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["alerts"] == 46 and summary["accepted"] == {"ALL": 46, "PUB": 45} and summary["status"] == "ok"
    assert "alerts decoded" in result.stderr and "46 / 0 / 0" in result.stderr
    assert "ZTF21abiuvdk" in result.stdout or "stocks" in result.stdout  # the T3 table
    runs = ampel("runs", "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert "cli-test" in runs.stdout and " ok " in runs.stdout


def test_job_that_cannot_run_exits_2_with_a_clear_message(tmp_path: Path, sample_alerts: Path) -> None:
    job = write_job(tmp_path / "job.yml", sample_alerts, tmp_path / "s.db")
    broken = yaml.safe_load(job.read_text())
    broken["channels"][0]["t2"] = [{"unit": "T2DoesNotExist"}]
    job.write_text(yaml.safe_dump(broken))
    result = ampel("job", str(job), "--no-progress")
    assert result.returncode == 2
    assert "error: unknown unit 'T2DoesNotExist'" in result.stderr
    missing = ampel("job", str(tmp_path / "nope.yml"))
    assert missing.returncode == 2 and "job file not found" in missing.stderr


def store_content(path: Path) -> dict[str, set]:
    connection = sqlite3.connect(path)
    queries = {
        "stocks": "SELECT id FROM stocks", "alerts": "SELECT id, stock FROM alerts",
        "datapoints": "SELECT id, stock, tags, body FROM datapoints", "states": "SELECT id, datapoints FROM states",
        "channel_states": "SELECT stock, channel, state, alert FROM channel_states",
        "tickets": "SELECT trace, link_kind, link, version, status FROM tickets",
        "results": "SELECT trace, link, status, body FROM results", "rejected": "SELECT alert, channel, code FROM rejected",
        "journal": "SELECT dedup FROM journal WHERE tier < 2"}
    return {name: set(connection.execute(query)) for name, query in queries.items()}


def test_sigkill_mid_ingest_then_restart_equals_an_uninterrupted_run(tmp_path: Path, sample_copies: Any) -> None:
    alerts = sample_copies(tmp_path / "alerts", 40)  # 1,840 alerts
    reference = write_job(tmp_path / "reference.yml", alerts, tmp_path / "reference.db", batch_size=5)
    assert ampel("job", str(reference), "--no-progress").returncode == 0
    killed_store = tmp_path / "killed.db"
    job = write_job(tmp_path / "job.yml", alerts, killed_store, batch_size=5)
    process = subprocess.Popen([sys.executable, "-m", "ampel_core.cli", "job", str(job), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingested = 0
    deadline = time.monotonic() + 60
    while ingested < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
        if killed_store.exists():
            with contextlib.suppress(sqlite3.OperationalError):
                ingested = sqlite3.connect(killed_store, timeout=1).execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = store_content(killed_store)
    assert 0 < len(partial["alerts"]) < 1840, "the kill must land mid-ingest"
    assert ampel("job", str(job), "--no-progress").returncode == 0
    assert store_content(killed_store) == store_content(tmp_path / "reference.db")
    runs = sqlite3.connect(killed_store).execute("SELECT status FROM runs ORDER BY id").fetchall()
    assert runs == [("killed",), ("ok",)]  # the rerun found the killed run's process gone and recorded it


@pytest.fixture(scope="module")
def quickstore(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("inspect")
    sample = Path(__file__).parent / "data" / "ztf_sample.jsonl"
    job = write_job(folder / "job.yml", sample, folder / "s.db")
    assert ampel("job", str(job), "--no-progress").returncode == 0
    return f"sqlite:///{folder / 's.db'}"


def test_stock_show(quickstore: str) -> None:
    shown = ampel("stock", "show", "ZTF21abiuvdk", "--store", quickstore, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["stock"]["names"] == ["ZTF21abiuvdk"] and len(data["datapoints"]) == 50
    assert sum(1 for s in data["states"] if s[0] == "ALL") == 34
    assert {r["unit"] for r in data["results"]} == {"T2LightCurveSummary"}
    assert {j["action"] for j in data["journal"]} == {"accepted", "t2 done"}
    assert all(len(j["detail"]["state"]) == 64 for j in data["journal"] if j["action"] == "accepted")
    table = ampel("stock", "show", "ZTF21abiuvdk", "--store", quickstore)
    assert "50 datapoints" in table.stdout and "journal entries" in table.stdout
    missing = ampel("stock", "show", "ZTF00nothing", "--store", quickstore)
    assert missing.returncode == 2 and "no stock 'ZTF00nothing'" in missing.stderr


def test_stock_plot_writes_a_png_of_the_expected_size(quickstore: str, tmp_path: Path) -> None:
    output = tmp_path / "lc.png"
    result = ampel("stock", "plot", "ZTF21abiuvdk", "--store", quickstore, "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(output)
    assert image.shape[:2] == (500, 800) and image[..., :3].std() > 0.05  # 8x5 in at 100 dpi, not blank


def test_provenance_from_result_to_run_and_prov_json(quickstore: str, tmp_path: Path) -> None:
    result = ampel("provenance", "result:1", "--store", quickstore, "--prov-json", str(tmp_path / "prov.json"))
    assert result.returncode == 0, result.stderr
    chain = json.loads(result.stdout)
    assert chain["result"]["unit"] == "T2LightCurveSummary" and chain["trace"]["distribution"] == "ampel-core"
    assert len(chain["trace"]["code"]) == 64 and chain["trace"]["config"] == {}
    assert chain["state"]["datapoints"] == len(chain["datapoints"]) > 0
    assert all(dp["alert"] is not None for dp in chain["datapoints"])
    assert all(alert["origin"].endswith("ztf_sample.jsonl") for alert in chain["alerts"])
    assert chain["runs"][0]["environment"]["python"] == sys.version.split()[0]
    prov = json.loads((tmp_path / "prov.json").read_text())
    assert any(key.startswith("ampel:result/") for key in prov["entity"])
    assert any(key.startswith("ampel:run/") for key in prov["activity"])
    assert "wasDerivedFrom" in prov and "wasGeneratedBy" in prov
    state = ampel("provenance", chain["result"]["link"], "--store", quickstore)
    assert json.loads(state.stdout)["state"]["id"] == chain["result"]["link"]
    point = chain["datapoints"][0]
    for stock in ("ZTF21abiuvdk", str(chain["stock"]["id"])):  # a datapoint is named with its stock
        one = ampel("provenance", f"datapoint:{stock}:{point['id']}", "--store", quickstore)
        assert one.returncode == 0, one.stderr
        assert json.loads(one.stdout)["datapoints"] == [point]
    missing = ampel("provenance", "datapoint:ZTF21abiuvdk:-5", "--store", quickstore)
    assert missing.returncode != 0 and "no datapoint ZTF21abiuvdk:-5 in" in missing.stderr
    for odd in ("²", "datapoint:²:1", "datapoint:ZTF21abiuvdk:²"):  # '²'.isdigit() holds, int('²') fails
        refused = ampel("provenance", odd, "--store", quickstore)
        assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "internal error" not in refused.stderr


def test_replay_reports_identical(quickstore: str) -> None:
    result = ampel("replay", "1", "--store", quickstore)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replay: IDENTICAL" in result.stdout and "different: 0" in result.stdout
