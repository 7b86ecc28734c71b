"""The example job (jobs/example.yaml) end to end: T0 over the sample alerts, T2, T3, into a
SQLite store in a temporary folder."""

from pathlib import Path

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.registry import Registry
from ampel_core.store import open_store

ROOT = Path(__file__).parent.parent
CHANNEL = "LENSEDSN_EXAMPLE"


def test_example_job(registry: Registry, tmp_path: Path) -> None:
    parameters = {"alerts": str(ROOT / "tests" / "data" / "sample_alerts.jsonl"),
                  "report": str(tmp_path / "report.json")}
    job = load_job(ROOT / "jobs" / "example.yaml", parameters, store=f"sqlite:///{tmp_path / 'example.db'}")
    summary = run_job(job, registry=registry)
    assert summary.status == "ok" and summary.alerts == 10 and summary.quarantined == 0
    assert summary.accepted[CHANNEL] == 7 and summary.rejected[CHANNEL] == 3  # see test_t0_filter.py
    assert summary.tickets_done == summary.accepted[CHANNEL] and summary.tickets_failed == 0
    assert summary.reports == 1 and summary.reports_failed == 0
    store = open_store(job.store)
    (channel, unit, report), = store.reports(summary.run)
    assert unit == "T3LensedSNReport" and report["stocks"] == len(report["rows"]) > 0
    assert (tmp_path / "report.json").exists()
    assert channel == CHANNEL
