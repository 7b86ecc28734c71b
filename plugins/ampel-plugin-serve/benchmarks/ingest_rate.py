"""How fast `ampel serve` ingests a watched directory: COPIES copies of the quickstart's 62 ZTF alerts
(58 files each) dropped at once into a running server (real process, SQLite or PostgreSQL store),
with the test job (one channel, T2LightCurveSummary). Prints the ingest run's T0 rate and the wall
time from the drop until every file is ingested and every T2 ticket run.

    python plugins/ampel-plugin-serve/benchmarks/ingest_rate.py [COPIES] [STORE_URL]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ampel_core.store import open_store

from ampel_serve.testing import Server, ampel, drop_alerts, wait_for

REPO = Path(__file__).resolve().parents[3]


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{root / 'live.db'}"
        (root / "drop").mkdir()
        token = ampel("serve", "team", "add", "BENCH", "--rights", "ZTF_PUB", "--store", store).stdout.strip()
        server = Server(store, root / "drop", root / "data", options=["--pattern", "*.avro"]).start()
        ampel("submit", str(REPO / "plugins/ampel-plugin-serve/tests/data/sn-candidates.yml"), "--to", server.url,
              "--token", token)
        started = time.perf_counter()
        files = drop_alerts(REPO / "docs/examples/data/ztf", root / "drop", copies)

        def rows(query: str) -> list[tuple[object, ...]]:
            opened = open_store(store, read_only=True)
            try:
                return opened.execute(query)  # type: ignore[attr-defined, no-any-return]
            finally:
                opened.close()

        wait_for(lambda: rows("SELECT COUNT(*) FROM serve_ingested")[0][0] == files
                 and not rows("SELECT COUNT(*) FROM tickets WHERE status NOT IN ('done', 'failed')")[0][0], 600,
                 "ingestion")
        wall = time.perf_counter() - started
        server.stop()
        runs = [run for run in open_store(store, read_only=True).runs() if run.job.get("serve") == "ingest"]
        alerts = sum(run.summary.get("alerts", 0) for run in runs)
        t0 = sum(run.summary.get("t0_seconds", 0.0) for run in runs)
        print("| store | files | alerts | T0 seconds | T0 alerts/s | drop -> all ingested and T2 done (s) |")
        print("|---|---|---|---|---|---|")
        print(f"| {store.partition(':')[0]} | {files} | {alerts} | {t0:.2f} | {alerts / t0:.0f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
