"""The example job (jobs/example.yaml) end to end: T0 over the sample alerts, T2, T3, into a
SQLite store in a temporary folder."""

from pathlib import Path

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.registry import Registry
from ampel_core.store import open_store

ROOT = Path(__file__).parent.parent
CHANNEL = "{{ cookiecutter.unit_prefix | upper }}_EXAMPLE"


def test_example_job(registry: Registry, tmp_path: Path) -> None:
    parameters = {"alerts": str(ROOT / "tests" / "data" / "sample_alerts.jsonl"),
                  "report": str(tmp_path / "report.json")}
    job = load_job(ROOT / "jobs" / "example.yaml", parameters, store=f"sqlite:///{tmp_path / 'example.db'}")
    summary = run_job(job, registry=registry)
    assert summary.status == "ok" and summary.alerts == 10 and summary.quarantined == 0
{%- if cookiecutter.include_t0 == "yes" %}
    assert summary.accepted[CHANNEL] == 7 and summary.rejected[CHANNEL] == 3  # see test_t0_filter.py
{%- else %}
    assert summary.accepted[CHANNEL] == 10
{%- endif %}
    assert summary.tickets_done == summary.accepted[CHANNEL] and summary.tickets_failed == 0
    assert summary.reports == 1 and summary.reports_failed == 0
    store = open_store(job.store)
    (channel, unit, report), = store.reports(summary.run)
{%- if cookiecutter.include_t3 == "yes" %}
    assert unit == "T3{{ cookiecutter.unit_prefix }}Report" and report["stocks"] == len(report["rows"]) > 0
    assert (tmp_path / "report.json").exists()
{%- else %}
    assert unit == "T3TableReport" and report["rows"] > 0
{%- endif %}
    assert channel == CHANNEL
