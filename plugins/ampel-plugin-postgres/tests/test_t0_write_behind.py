"""T0 on PostgreSQL writes each batch while the next is decoded (write-behind): an `ampel job`
interrupted with Ctrl-C counts exactly what it committed, and its rerun completes the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ampel_core.store import open_store
from ampel_core.testing import renamed_copies
from ampel_postgres.testing import postgres_store_url, postgres_url  # noqa: F401 - fixtures

SAMPLE = Path(__file__).parents[3] / "tests" / "data" / "ztf_sample.jsonl"  # 46 alerts of the core's sample


@pytest.mark.skipif(not SAMPLE.is_file(), reason=f"no sample alerts at {SAMPLE} (a checkout of the whole repository has them)")
def test_an_interrupted_t0_counts_what_it_committed(tmp_path: Path, postgres_store_url: str) -> None:  # noqa: F811
    # 300 files of 46 alerts, one batch each: T0 takes seconds, so the signal comes in the middle of it
    # even when this test process is descheduled for a while on a busy machine (40 files took 1 s)
    copies = 300
    alerts = renamed_copies(SAMPLE, tmp_path / "alerts", copies, one_per_file=False)
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({
        "name": "write-behind", "store": postgres_store_url,
        "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
                   "format": {"name": "json"}, "batch_size": 1}]}))
    process = subprocess.Popen([sys.executable, "-m", "ampel_core.cli", "job", str(job), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "T0 never got going"
        try:
            store = open_store(postgres_store_url, read_only=True)
        except Exception:  # the job has not created the schema yet
            time.sleep(0.05)
            continue
        ingested = store.counts()["alerts"]
        store.close()
        if ingested >= 92:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr and "error: interrupted" in stderr
    store = open_store(postgres_store_url)
    run, counts = store.runs()[-1], store.counts()
    assert run.status == "interrupted" and 92 <= counts["alerts"] < 46 * copies
    # the summary counts the batches committed, the one being written when the signal came included
    assert run.summary["ingested"] == run.summary["alerts"] == counts["alerts"] == 46 * run.summary["records"]
    store.close()

    rerun = subprocess.run([sys.executable, "-m", "ampel_core.cli", "job", str(job), "--no-progress"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False)
    assert rerun.returncode == 0, rerun.stderr
    store = open_store(postgres_store_url)
    assert store.counts()["alerts"] == 46 * copies and store.counts()["stocks"] == copies * len({
        json.loads(line)["stock"] for line in SAMPLE.read_text().splitlines()})
    store.close()
