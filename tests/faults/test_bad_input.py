"""Bad input gets a clear answer: a truncated archive makes an incomplete run, one bad record is
quarantined alone, inspecting never creates or changes a store, quarantine reasons and failed
runs' errors are reachable from the shell, and no command prints a traceback, whatever its
arguments (hypothesis)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_core.store import open_store

SAMPLE = Path(__file__).parents[1] / "data" / "ztf_sample.jsonl"
README = Path(__file__).parents[2] / "README.md"


def ampel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ampel_core.cli", *args], capture_output=True, text=True, timeout=300)


def job_file(path: Path, source: Path, store: Path, pattern: str = "*") -> Path:
    path.write_text(yaml.safe_dump({
        "name": "bad-input", "store": f"sqlite:///{store}", "channels": [{"name": "ALL"}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(source)], "pattern": pattern}},
                   "format": {"name": "json"}, "batch_size": 10}]}))
    return path


def clean_exit(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of the 46 sample alerts (one run)."""
    folder = tmp_path_factory.mktemp("small")
    clean_exit(ampel("job", str(job_file(folder / "job.yml", SAMPLE, folder / "small.db")), "--no-progress"), 0)
    return folder / "small.db"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- 2. a truncated archive --------------------------------------------------------------------


def test_a_truncated_archive_makes_an_incomplete_run(tmp_path: Path) -> None:
    archive = tmp_path / "alerts.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for number, line in enumerate(SAMPLE.read_bytes().splitlines()):
            member = tarfile.TarInfo(f"alerts/{number:03d}.json")
            member.size = len(line) + 1000  # padded: the archive does not compress to almost nothing
            tar.addfile(member, io.BytesIO(line + b" " * 1000))
    cut = tmp_path / "cut.tar.gz"
    size = archive.stat().st_size // 2
    cut.write_bytes(archive.read_bytes()[:size])
    store = tmp_path / "store.db"
    result = ampel("job", str(job_file(tmp_path / "job.yml", cut, store)), "--no-progress")
    clean_exit(result, 3)
    assert "warning: run 1 is incomplete: 1 source record(s) could not be read whole" in result.stderr
    opened = open_store(f"sqlite:///{store}")
    [quarantined] = opened.quarantined()
    run = opened.runs()[0]
    alerts = opened.counts()["alerts"]
    opened.close()
    assert f"unexpected end of archive at byte {size} (of {size})" in quarantined.reason
    assert "the members after it are missing" in quarantined.reason and quarantined.origin.startswith(f"{cut}::")
    assert run.status == "incomplete" and run.summary["unreadable"] == 1 and 0 < alerts < 46
    assert run.summary["records"] == alerts + 1 and run.summary["alerts"] == alerts  # every record accounted for


def test_the_truncated_elasticc_archive_of_the_report(tmp_path: Path, shared_data: Path) -> None:
    cut = tmp_path / "elasticc.tar.gz"
    whole = shared_data / "elasticc" / "alerce_simulator_elasticc_v0_9_5689alerts.tar.gz"
    cut.write_bytes(whole.read_bytes()[:1_500_000])
    job = Path(__file__).parents[2] / "docs" / "examples" / "elasticc.yml"
    result = ampel("job", str(job), "--set", f"alerts={cut}", "--store", f"sqlite:///{tmp_path / 'e.db'}", "--no-progress")
    clean_exit(result, 3)
    opened = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    [quarantined] = opened.quarantined()
    assert "unexpected end of archive at byte 1500000" in quarantined.reason
    assert opened.runs()[0].status == "incomplete" and opened.counts()["alerts"] == 5689 - 2871


# --- 3. one bad record -------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_one_bad_record_loses_no_sibling(tmp_path: Path, workers: str) -> None:
    lines = SAMPLE.read_bytes().splitlines()
    mixed = [*lines[:10], b'{"stock": "ZTF99bad", "datapoints": "none"}', *lines[10:20], b"{not json", *lines[20:]]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
    store = tmp_path / "store.db"
    result = ampel("job", str(job_file(tmp_path / "job.yml", tmp_path / "mixed.jsonl", store)), "--no-progress",
                   "--workers", workers)
    clean_exit(result, 0)
    assert "note: 2 record(s) quarantined; why: `ampel quarantine list" in result.stderr
    opened = open_store(f"sqlite:///{store}")
    quarantined = opened.quarantined()
    assert opened.counts()["alerts"] == 46
    opened.close()
    assert [(Path(q.origin).name, q.payload) for q in quarantined] == [("mixed.jsonl#11", mixed[10]),
                                                                        ("mixed.jsonl#22", mixed[21])]
    assert "mixed.jsonl line 22: JSONDecodeError" in quarantined[1].reason


# --- 4. inspecting never writes ----------------------------------------------------------------

INSPECTING = [["runs"], ["stock", "show", "ZTF21abiuvdk"], ["stock", "plot", "ZTF21abiuvdk", "-o", "{tmp}/lc.png"],
              ["provenance", "1"], ["quarantine", "list"], ["quarantine", "show", "ab"], ["diff", "1", "1"]]


@pytest.mark.parametrize("command", INSPECTING, ids=lambda c: " ".join(c[:2]))
def test_inspecting_never_creates_or_changes_a_store(tmp_path: Path, command: list[str], small_store: Path) -> None:
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    missing = tmp_path / "typo.db"
    result = ampel(*args, "--store", f"sqlite:///{missing}")
    clean_exit(result, 2)
    assert f"error: no store at {missing}: the file does not exist" in result.stderr and not missing.exists()
    foreign = tmp_path / "other.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE notes (text TEXT)").connection.commit()
    before = digest(foreign)
    result = ampel(*args, "--store", f"sqlite:///{foreign}")
    clean_exit(result, 2)
    assert "is not an AMPEL store" in result.stderr and digest(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]  # no -wal, -shm or -blobs either
    before = digest(small_store)
    result = ampel(*args, "--store", str(small_store))  # a bare path is a SQLite file
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr and digest(small_store) == before
    assert "is not an AMPEL store" not in result.stderr and "no store at" not in result.stderr


def test_a_job_never_spreads_into_another_applications_database(tmp_path: Path) -> None:
    foreign = tmp_path / "other.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE notes (text TEXT)").connection.commit()
    before = digest(foreign)
    result = ampel("job", str(job_file(tmp_path / "job.yml", SAMPLE, foreign)), "--no-progress")
    clean_exit(result, 2)
    assert "is not an AMPEL store and not empty (it holds the tables notes)" in result.stderr
    assert digest(foreign) == before


# --- 8. why did it fail? -----------------------------------------------------------------------


def test_quarantine_and_failed_runs_are_reachable_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "good.jsonl").write_bytes(SAMPLE.read_bytes().splitlines()[0] + b"\n")
    (tmp_path / "alerts" / "bad.jsonl").write_bytes(b"\x00\x01 not an alert\n")
    store = tmp_path / "store.db"
    clean_exit(ampel("job", str(job_file(tmp_path / "job.yml", tmp_path / "alerts", store)), "--no-progress"), 0)
    listed = json.loads(ampel("quarantine", "list", "--store", str(store), "--json").stdout)
    assert [(Path(q["origin"]).name, q["run"], q["bytes"]) for q in listed] == [("bad.jsonl", 1, 16)]
    assert listed[0]["reason"].startswith(f"{tmp_path / 'alerts' / 'bad.jsonl'} line 1: JSONDecodeError: unexpected character")
    shown = ampel("quarantine", "show", listed[0]["id"][:10], "--store", str(store), "-o", str(tmp_path / "bytes"), "--json")
    clean_exit(shown, 0)
    assert json.loads(shown.stdout)["reason"] == listed[0]["reason"]
    assert (tmp_path / "bytes").read_bytes() == b"\x00\x01 not an alert\n"
    # a run that fails: its source vanishes between the check and the read
    broken = yaml.safe_load((tmp_path / "job.yml").read_text())
    broken["tasks"][0]["source"]["config"]["paths"] = [str(tmp_path / "gone")]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    clean_exit(ampel("job", str(tmp_path / "broken.yml"), "--no-progress"), 2)
    runs = json.loads(ampel("runs", "--store", str(store), "--format", "json").stdout)
    assert runs[-1]["status"] == "failed" and "no such file or directory" in runs[-1]["error"]


# --- 5. no traceback, ever ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [["provenance", "result:abc"], ["replay", "99999999999999999999999"],
                                  ["stock", "plot", "ZTF21abiuvdk", "--dpi", "0"], ["config", "check", str(README)],
                                  ["provenance", "datapoint:ZTF21abiuvdk:99999999999999999999999"],
                                  ["stock", "show", "99999999999999999999999"]])
def test_no_traceback_for_the_reported_commands(args: list[str], small_store: Path) -> None:
    result = ampel(*args, *(["--store", str(small_store)] if args[0] != "config" else []))
    clean_exit(result, 2)
    assert result.stderr.strip().splitlines()[-1].lower().startswith("error")
    assert "internal error" not in result.stderr


def test_a_damaged_store_is_an_error_line(tmp_path: Path, small_store: Path) -> None:
    damaged = tmp_path / "x.db"
    damaged.write_bytes(small_store.read_bytes()[:100_000])
    result = ampel("runs", "--store", f"sqlite:///{damaged}")
    clean_exit(result, 2)
    assert "cannot be read as a SQLite store (database disk image is malformed)" in result.stderr


COMMANDS = [["runs"], ["stock", "show"], ["stock", "plot"], ["provenance"], ["replay"], ["diff"], ["quarantine", "list"],
            ["quarantine", "show"], ["units"], ["unit", "show"], ["unit", "check"], ["plugins"], ["config", "check"],
            ["config", "build"], ["job"], ["worker", "t2", "--idle-exit"], ["catalog", "import"], ["catalog", "list"],
            ["catalog", "info"], ["catalog", "match"], ["catalog", "xmatch"]]
WORDS = st.sampled_from(["0", "-1", "1", "2", "99999999999999999999999", "1e9", "nan", "", " ", "result:", "state:",
                         "datapoint:", "datapoint:x:1", "state:" + "f" * 64, "ZTF21abiuvdk", "T2LightCurveSummary",
                         "--store", "--format", "--json", "--run", "--dpi", "-o", "--set", "x=1", "--workers", "--flux",
                         "table", "csv", "xml", "--rel-tol", "--second-store", "--tier", "9", "--lease", "-5",
                         "sqlite:///", "postgresql://nobody@127.0.0.1:1/none", "{missing}", "{readme}", "{store}",
                         "{directory}", "t2", "--concurrency", "--batch-size", "é", "\u0000x"])


STORES = st.sampled_from([[], ["--store", "{store}"], ["--store", "{store}"], ["--store", "{missing}"],
                           ["--store", "{readme}"], ["--store", "{directory}"], ["--store", "{damaged}"]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), words=st.lists(WORDS, max_size=4), store=STORES)
def test_no_command_prints_a_traceback_whatever_its_arguments(
        command: list[str], words: list[str], store: list[str], small_store: Path,
        tmp_path_factory: pytest.TempPathFactory, capfd: pytest.CaptureFixture[str]) -> None:
    from ampel_core.cli import main

    folder = tmp_path_factory.getbasetemp()
    damaged = folder / "damaged.db"
    if not damaged.exists():
        damaged.write_bytes(small_store.read_bytes()[:100_000])
    places = {"{missing}": str(folder / "missing.db"), "{readme}": str(README), "{store}": str(small_store),
              "{directory}": str(folder), "{damaged}": str(damaged)}
    words = [*words, *store]
    before = digest(small_store)
    here = os.getcwd()
    os.chdir(folder)  # what a command writes by default (ampel_conf.yaml, lc.png) goes there
    try:
        main([*command, *(places.get(word, word) for word in words)])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    finally:
        os.chdir(here)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.strip(), "exit 2 without a word"
    if command[0] not in ("job", "worker", "config") and "-o" not in words:  # the commands that may write
        assert digest(small_store) == before
