"""jobs/lensed-search.yml end to end on AMPEL's shipped ZTF sample: T0, the T2 chain, the T3
report, into a SQLite store; and the same file with the Dask executor gives the same store."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.registry import Registry
from ampel_core.store import open_store
from ampel_core.testing import store_fingerprint

JOB = Path(__file__).parent.parent / "jobs" / "lensed-search.yml"


@pytest.fixture
def parameters(job_parameters: dict[str, str], catalogs: Path) -> dict[str, str]:
    return job_parameters


def test_the_search_runs_on_the_shipped_sample(registry: Registry, parameters: dict[str, str], tmp_path: Path) -> None:
    job = load_job(JOB, parameters, store=f"sqlite:///{tmp_path / 'lensed.db'}")
    summary = run_job(job, registry=registry)
    assert summary.status == "ok" and summary.alerts == 62 and summary.quarantined == 0
    assert summary.accepted["LENSED_SNE"] + summary.rejected["LENSED_SNE"] == 62 and summary.failed["LENSED_SNE"] == 0
    assert summary.tickets_done > 0 and summary.tickets_failed == 0
    assert summary.reports == 1 and summary.reports_failed == 0
    store = open_store(job.store)
    (channel, unit, report), = store.reports(summary.run)
    assert (channel, unit) == ("LENSED_SNE", "T3LensedSNReport")
    rows = {row["stock"]: row for row in report["rows"]}
    rhu = rows["ZTF21abiuvdk"]  # SN 2021rhu, a normal SN Ia in NGC 7814: no candidate
    assert rhu["candidate"] is False and rhu["host"] == "NGC7814" and rhu["cuts_passed"] < 7
    assert report["candidates"] == 0  # no object of the sample has a host that the shipped GWGC places it in
    written = json.loads((Path(parameters["report"]) / "report.json").read_text())["rows"]
    assert [row["stock"] for row in written] == [row["stock"] for row in report["rows"]]
    # every row's numbers are those of the stock's results on the state it names
    for row in report["rows"]:
        state = row["provenance"]["state"]
        results = {result.unit: result.body for _, result in store.results(link=state)}
        assert results["T2LensedSNColours"]["cuts_passed"] == row["cuts_passed"]
        assert results["T2LensedSNColours"]["inputs"]["state"] == state
        for unit, ref in row["provenance"]["results"].items():  # each number's result id and trace
            cited = store.get_result(ref["result"])
            assert cited is not None and (cited.unit, cited.trace) == (unit, ref["trace"])
            assert cited.link == state or cited.link_kind == "stock"
        assert set(row["provenance"]["results"]) == set(row["provenance"]["units"])
    assert (Path(parameters["report"]) / "plots" / "ZTF21abiuvdk.png").exists()


def ampel_job(*arguments: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "ampel_core.cli", "job", str(JOB), "--no-progress", *arguments]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_same_file_runs_with_the_dask_executor_with_identical_results(parameters: dict[str, str],
                                                                          tmp_path: Path) -> None:
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("needs dask.distributed (pip install 'ampel-core[dask]')")
    settings = [argument for name, value in parameters.items() for argument in ("--set", f"{name}={value}")]
    reports = []
    for name, executor in (("local", []), ("dask", ["--executor", "dask", "--workers", "2"])):
        ampel_job(*settings, "--store", f"sqlite:///{tmp_path / name}.db", *executor, cwd=tmp_path)
        reports.append(json.loads((Path(parameters["report"]) / "report.json").read_text())["rows"])
    local, dask = (store_fingerprint(f"sqlite:///{tmp_path / name}.db") for name in ("local", "dask"))
    assert local == dask
    assert len(local["results"]) > 0
    for rows in reports:
        for row in rows:
            row.pop("plot")
    assert reports[0] == reports[1]
