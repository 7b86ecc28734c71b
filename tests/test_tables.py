"""Tables on the command line and in T3TableReport (issue 18, item 10): names are never cut, piped
or on an 80-column terminal, and every command that prints a table takes --format table|csv|json."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from rich.console import Console

from ampel_core.store import open_store
from ampel_core.tables import print_table, rich_table

WIDE_COLUMNS = {"stock": "name", "id": "id", "ndet": "T2LightCurveSummary.ndet",
                "first": "T2LightCurveSummary.first_detection", "last": "T2LightCurveSummary.last_detection",
                "duration": "T2LightCurveSummary.duration", "nlim": "T2LightCurveSummary.nlim",
                "g_peak": "T2LightCurveSummary.bands.ztfg.peak_mag", "r_peak": "T2LightCurveSummary.bands.ztfr.peak_mag"}


def ampel(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess whose output is a pipe, as in `ampel ... | cat`, at 80 columns."""
    return subprocess.run([sys.executable, "-m", "ampel_core.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "80"})


def write_job(tmp_path: Path, alerts: Path, report_format: str) -> Path:
    path = tmp_path / f"job-{report_format}.yml"
    path.write_text(yaml.safe_dump({
        "name": "tables", "store": f"sqlite:///{tmp_path / 'tables.db'}",
        "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"}},
                  {"tier": 2},
                  {"tier": 3, "select": {"channel": "ALL"},
                   "react": [{"unit": "T3TableReport", "config": {"columns": WIDE_COLUMNS, "format": report_format}}]}]},
        sort_keys=False))
    return path


def test_tables_never_cut_names(tmp_path: Path, sample_alerts: Path) -> None:
    done = ampel("job", str(write_job(tmp_path, sample_alerts, "table")), "--no-progress")
    assert done.returncode == 0, done.stderr
    store = open_store(f"sqlite:///{tmp_path / 'tables.db'}")
    names = [store.get_stock(stock).names[0] for stock in store.select_stocks()]
    assert len(names) == 13 and "ZTF21abiuvdk" in names
    assert "…" not in done.stdout and all(name in done.stdout for name in names)
    assert max(map(len, done.stdout.splitlines())) > 80  # wider than the terminal: the pipe got it whole
    assert "alerts taken by no channel" in done.stderr and "…" not in done.stderr

    runs = ampel("runs", "--store", f"sqlite:///{tmp_path / 'tables.db'}")
    [run] = store.runs()
    assert runs.returncode == 0 and run.job_digest in runs.stdout and "…" not in runs.stdout

    # on an 80-column terminal, long cells fold onto more lines, and names keep one line whole
    rows = [[name, "a rather long value that needs folding " * 2, 1.5] for name in names]
    terminal = Console(file=io.StringIO(), width=80)
    terminal.print(rich_table("narrow", ["stock", "note", "x"], rows, key_columns=["stock"]))
    text = terminal.file.getvalue()
    assert "…" not in text and all(name in text for name in names)
    assert max(len(line) for line in text.splitlines()) <= 80


def test_tables_print_as_csv_and_json(tmp_path: Path, sample_alerts: Path) -> None:
    as_csv = ampel("job", str(write_job(tmp_path, sample_alerts, "csv")), "--no-progress", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 13 and list(rows[0]) == list(WIDE_COLUMNS)
    assert {row["stock"]: row["ndet"] for row in rows}["ZTF21abiuvdk"] == "34"
    summary = list(csv.reader(io.StringIO(as_csv.stderr)))
    assert summary[0] == ["what", "count"] and ["alerts decoded", "46"] in summary

    as_json = ampel("job", str(write_job(tmp_path, sample_alerts, "json")), "--no-progress", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert {row["stock"]: row["ndet"] for row in report}["ZTF21abiuvdk"] == 34
    assert json.loads(as_json.stderr)["alerts"] == 46

    store_url = f"sqlite:///{tmp_path / 'tables.db'}"
    runs = json.loads(ampel("runs", "--store", store_url, "--format", "json").stdout)
    assert [run["run"] for run in runs] == [1, 2] and all(len(run["job digest"]) == 64 for run in runs)
    shown = ampel("stock", "show", "ZTF21abiuvdk", "--store", store_url, "--format", "csv").stdout
    sections = shown.split("\n\n")
    titles = [section.splitlines()[0] for section in sections]
    assert titles[0] == "# 50 datapoints" and [title.split(" ", 2)[2] for title in titles[1:]] == [
        "channel states", "T2 results", "journal entries"]
    datapoints = list(csv.DictReader(io.StringIO(sections[0].split("\n", 1)[1])))
    assert len(datapoints) == 50 and sum(row["limit"] == "yes" for row in datapoints) == 16
    assert json.loads(ampel("stock", "show", "ZTF21abiuvdk", "--store", store_url, "--format", "json").stdout)["stock"]
    units = json.loads(ampel("units", "--format", "json").stdout)
    assert {"tier": "T3", "kind": "react", "unit": "T3TableReport", "distribution": "ampel-core"}.items() <= next(
        u for u in units if u["unit"] == "T3TableReport").items()
    plugins = list(csv.DictReader(io.StringIO(ampel("plugins", "--format", "csv").stdout)))
    assert any(row["distribution"] == "ampel-core" for row in plugins)


def test_print_table_writes_none_as_empty_and_numbers_in_full() -> None:
    out = io.StringIO()
    print_table("t", ["name", "x"], [["ZTF20acunklg", None], ["ZTF21abiuvdk", 59410.50123456]], "csv", file=out)
    assert out.getvalue() == "name,x\nZTF20acunklg,\nZTF21abiuvdk,59410.50123456\n"
