"""How fast `ampel serve` ingests a watched directory: COPIES copies of the quickstart's 62 ZTF alerts
(59 files each) dropped at once into a running server (real process, SQLite or PostgreSQL store),
with the test job (one channel, T2LightCurveSummary); the server with ingestion and T2 in
processes of their own, then with ``--threads`` (SQLite only). Prints the ingest runs' T0 rate and
the wall time from the drop until every file is ingested and every T2 ticket run. The copies
repeat the same alerts (their later copies are recognised as decided and only decoded).

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


def measure(copies: int, store_url: str | None, mode: str) -> str:
    """One row of the table: a fresh store, a server in ``mode`` (processes or threads)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = store_url or f"sqlite:///{root / 'live.db'}"
        (root / "drop").mkdir()
        token = ampel("serve", "team", "add", "BENCH", "--rights", "ZTF_PUB", "--store", store).stdout.strip()
        options = ["--pattern", "*.avro", *(["--threads"] if mode == "threads" else [])]
        server = Server(store, root / "drop", root / "data", options=options).start()
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
        return (f"| {store.partition(':')[0]} | {mode} | {files} | {alerts} | {t0:.2f} | {alerts / t0:.0f} | "
                f"{wall:.1f} |")


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    store = sys.argv[2] if len(sys.argv) > 2 else None  # a PostgreSQL URL must point to an empty schema
    rows = [measure(copies, store, mode) for mode in (["processes", "threads"] if store is None else ["processes"])]
    print("| store | ingest and T2 in | files | alerts | T0 seconds | T0 alerts/s | drop -> all ingested, T2 done (s) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
