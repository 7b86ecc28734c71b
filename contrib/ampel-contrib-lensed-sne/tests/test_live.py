"""Step 4 of the tutorial: the job file, unchanged, uploaded to a live instance (`ampel serve`,
ampel-plugin-serve) gives the same states, T2 results and traces as `ampel job` on the same
alerts. Skipped without ampel-plugin-serve."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ampel_core.store import open_store
from ampel_core.testing import store_fingerprint

JOB = Path(__file__).parent.parent / "jobs" / "lensed-search.yml"


@pytest.mark.slow
def test_the_job_uploaded_to_a_live_instance_gives_the_local_results(job_parameters: dict[str, str], tmp_path: Path,
                                                                      catalogs: Path) -> None:
    testing = pytest.importorskip("ampel_serve.testing", reason="needs ampel-plugin-serve (the live instance)")
    live_store, local_store = f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'local.db'}"
    data, watch = tmp_path / "data", tmp_path / "drop"
    watch.mkdir()
    # the job's relative catalogue path is taken from the server's data directory: put GWGC there
    shipped = Path(job_parameters["catalogs"])
    shutil.copytree(shipped, data / "docs" / "examples" / "data" / "catalogs")
    token = testing.ampel("serve", "team", "add", "LENSED", "--rights", "ZTF_PUB", "--store", live_store).stdout.strip()
    server = testing.Server(live_store, watch, data, options=["--pattern", "*.avro"]).start()
    try:
        answer = testing.ampel("submit", str(JOB), "--to", server.url, "--token", token).stdout
        assert "uploaded: active, channels LENSED_SNE" in answer
        files = testing.drop_alerts(Path(job_parameters["alerts"]), watch)

        def idle() -> bool:
            store = open_store(live_store, read_only=True)
            try:
                ingested = store.execute("SELECT COUNT(DISTINCT path) FROM serve_ingested")[0][0]  # type: ignore[attr-defined]
                waiting = store.execute("SELECT COUNT(*) FROM tickets WHERE status NOT IN ('done', 'failed')")[0][0]  # type: ignore[attr-defined]
                tickets = store.execute("SELECT COUNT(*) FROM tickets")[0][0]  # type: ignore[attr-defined]
            finally:
                store.close()
            return bool(ingested == files and tickets and not waiting)

        testing.wait_for(idle, timeout=300, what="the server to ingest the sample and run every ticket")
    finally:
        code, output = server.stop()
    assert code == 0, output
    # locally, with the paths the server resolved (they are part of the units' configs, so of the traces)
    testing.ampel("job", str(JOB), "--no-progress", "--store", local_store, "--set", f"alerts={watch}",
                  "--set", f"catalogs={data / 'docs' / 'examples' / 'data' / 'catalogs'}",
                  "--set", f"report={data / 'lensed-report'}")
    served, ran = store_fingerprint(live_store), store_fingerprint(local_store)
    assert served["results"] and len(served["results"]) == len(ran["results"])
    for part in ("stocks", "datapoints", "states", "state sequences", "tickets", "results", "traces"):
        assert served[part] == ran[part], part
