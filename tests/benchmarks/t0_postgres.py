"""T0 in one process on PostgreSQL against SQLite: the full ZTF T0 of t0_throughput.py.

Run on demand (needs the PostgreSQL of ``$AMPEL_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``, on this host for its CPU time):

    python tests/benchmarks/t0_postgres.py [--alerts 2500] [--repeat 3] [--variants]

The "unique" variant of the reference set (each copy new objects; without ../shared/data the
shipped sample), one channel accepting every alert (every alert ingested: stock, datapoints,
cutouts, state, ticket, journal), into a new SQLite file or a new PostgreSQL schema, each run in a
fresh process. ``--variants`` adds PostgreSQL as it was before docs/t0-performance.md, part by
part (measurement only, patched in the child): rows sent one statement each (psycopg's pipelined
``executemany``) instead of ``unnest`` statements, and batches written in turn instead of while
the next one is decoded; and one ``unnest`` statement per table, not pipelined, instead of
pipelined chunks of `PostgresStore.insert_chunk` rows.

Per run: the T0's wall-clock seconds, the CPU seconds of this process (the client) and, for
PostgreSQL, of its server backend (read from /proc: the server must run on this host), and the
WAL bytes the server wrote. The measurements go in rounds (each once per round) so that load from
other work hits them alike; the median of ``--repeat`` rounds is printed. On a machine with free
cores the wall-clock rate is the one that counts (the server works while the client decodes); on a
busy one, compare the CPU columns: SQLite's work is all in the client, PostgreSQL's is split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import t0_throughput  # the alert sets and channels of the T0 benchmark
from postgres_vs_sqlite import measure_in_child  # in a new process, on a new SQLite file or PostgreSQL schema

VARIANTS = {  # label -> what the child patches (measurement only)
    "sqlite": ("sqlite", ()),
    "postgresql": ("postgresql", ()),
    "postgresql, one INSERT per table, not pipelined": ("postgresql", ("unchunked",)),
    "postgresql, rows one statement each": ("postgresql", ("executemany",)),
    "postgresql, rows one statement each, no write-behind": ("postgresql", ("executemany", "inline")),
}


def backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(folders: list[str], store: str, patches: list[str]) -> dict[str, Any]:
    """The T0 task of a job (warmed up: imports and configuration done by a first run over no
    alerts), with the clocks of this process and of the store's server backend."""
    import time

    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job
    from ampel_core.sql_store import SqlStore

    pids: list[int] = []
    wal: list[int] = []
    if store.startswith("postgresql"):
        from ampel_postgres.store import PostgresStore

        connect, close = PostgresStore.connect, PostgresStore.close

        def connecting(self: Any) -> Any:
            conn = connect(self)
            pids.append(conn.info.backend_pid)
            wal.append(int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]))
            return conn

        def closing(self: Any) -> None:  # the backend's CPU time before it exits
            pids.remove(self.conn.info.backend_pid)
            measured.append(backend_cpu([self.conn.info.backend_pid]))
            wal.append(int(self.conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]))
            close(self)

        measured: list[float] = []
        PostgresStore.connect, PostgresStore.close = connecting, closing  # type: ignore[method-assign]
        if "unchunked" in patches:
            PostgresStore.insert_chunk = 2**62  # type: ignore[misc]
            PostgresStore.ingest = SqlStore.ingest  # type: ignore[method-assign]
        if "executemany" in patches:
            PostgresStore.insert_rows = SqlStore.insert_rows  # type: ignore[method-assign]
            PostgresStore.ingest = SqlStore.ingest  # type: ignore[method-assign]
    if "inline" in patches:
        PostgresStore.write_behind = False  # type: ignore[misc]

    def job(paths: list[str], url: str) -> Any:
        return load_job({"name": "t0-postgres", "store": url, "channels": t0_throughput.channels(1),
                         "tasks": [{"tier": 0, "format": {"name": "ztf"},
                                    "source": {"name": "files", "config": {"paths": paths, "pattern": "*.avro"}}}]})

    with tempfile.TemporaryDirectory() as empty:
        run_job(job([empty], f"sqlite:///{empty}/warm-up.db"))
    timed = job(folders, store)
    if store.startswith("postgresql"):
        measured.clear()
    cpu = time.process_time()
    summary = run_job(timed)
    cpu = time.process_time() - cpu
    server = sum(measured) if store.startswith("postgresql") else 0.0
    return {"alerts": summary.alerts, "ingested": summary.ingested, "wall": summary.t0_seconds, "cpu": cpu,
            "server": server, "wal_mb": (wal[-1] - wal[0]) / 2**20 if len(wal) > 1 else 0.0}


def child(backend: str, folder: Path, **arguments: Any) -> dict[str, Any]:
    return measure_in_child(__file__, backend, folder, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2500, help="Alerts (rounded up to whole copies).")
    parser.add_argument("--repeat", type=int, default=3, help="Rounds; the median counts.")
    parser.add_argument("--variants", action="store_true", help="Also PostgreSQL as it was, part by part.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(**json.loads(options.child))))
        return
    name, files = next(iter(t0_throughput.alert_sets().items()))
    workdir = Path(tempfile.mkdtemp(prefix="ampel-t0-postgres-"))
    labels = list(VARIANTS) if options.variants else ["sqlite", "postgresql"]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    try:
        copies = math.ceil(options.alerts / t0_throughput.alerts_in(files))
        _, unique, _ = t0_throughput.build_sets(files, copies, workdir)
        folders = [str(unique / f"copy{copy:05d}") for copy in range(copies)]
        for round_ in range(options.repeat):
            for label in labels:
                backend, patches = VARIANTS[label]
                runs[label].append(child(backend, workdir, folders=folders, patches=list(patches)))
            print(f"round {round_ + 1} of {options.repeat} measured", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def median(label: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[label])

    alerts = runs["sqlite"][0]["alerts"]
    print(f"\nfull T0, {name} set, unique variant, {alerts} alerts, 1 channel, every alert accepted; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; median of {options.repeat} rounds\n")
    print(f"| {'store':<52} | wall s | alerts/s (wall) | vs SQLite (wall) | client CPU s | server CPU s | "
          "CPU s in all | vs SQLite (CPU) | WAL MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    sqlite_wall, sqlite_cpu = median("sqlite", "wall"), median("sqlite", "cpu")
    for label in labels:
        wall, cpu, server = median(label, "wall"), median(label, "cpu"), median(label, "server")
        print(f"| {label:<52} | {wall:6.2f} | {alerts / wall:15.0f} | {sqlite_wall / wall:16.0%} | {cpu:12.2f} | "
              f"{server:12.2f} | {cpu + server:12.2f} | {sqlite_cpu / (cpu + server):15.0%} | {median(label, 'wal_mb'):6.0f} |")


if __name__ == "__main__":
    main()
