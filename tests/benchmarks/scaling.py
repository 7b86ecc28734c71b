"""Scaling with workers: T0 on SQLite and PostgreSQL, T0 over an archive (local processes and
Dask), and T0 + T2 SALT2 fits, for 1, 2, 4, ... workers up to this machine's cores.

Run on demand:  python tests/benchmarks/scaling.py [--alerts 5000] [--fits 930] [--workers 1,2,4]
                [--repeat 3] [--rows t0-sqlite,t0-postgres,t0-archive,t0-dask,t2-fits]

Data: the "unique" variant of t0_throughput.py's reference set (each copy new objects; without
../shared/data the shipped sample), ``--alerts`` alerts, one channel accepting every alert
(ZTFDecentFilter with permissive cuts, T2LightCurveSummary tickets, not run here). The archive rows
read the same alerts from an archive built once (`ampel archive build`, 16 partitions, untimed).
T2 fits: ``--fits`` alerts of the same set, one channel whose T2 is T2SNCosmoFit (SALT2 2.4,
redshift fitted in its default range): one fit per state.

| row | run | measure |
|---|---|---|
| t0-sqlite | ``ampel job --workers N``, files, SQLite | alerts / T0 second |
| t0-postgres | the same on PostgreSQL (a fresh schema each run) | alerts / T0 second |
| t0-archive | PostgreSQL, archive source, N local processes (each its own partitions) | alerts / T0 second |
| t0-dask | PostgreSQL, archive source, ``--executor dask``: a LocalCluster of N single-threaded workers, one task per partition (cluster start not timed) | alerts / T0 second |
| t2-fits | PostgreSQL, T0 then T2 fits, N processes | wall seconds of the run |

Each measurement runs in a fresh process; rounds interleave every (row, N) ``--repeat`` times and
the median counts; speed-ups are against N=1 of the same row, from the medians. The load average
is printed: on a machine whose cores are busy, the speed-ups are capped accordingly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import t0_throughput  # the alert sets and channels of the T0 benchmark
from postgres_vs_sqlite import fresh_store  # a new SQLite file or PostgreSQL schema

ROWS = {"t0-sqlite": "T0 SQLite, alerts/s", "t0-postgres": "T0 PostgreSQL, alerts/s",
        "t0-archive": "T0 PostgreSQL, archive partitions, alerts/s", "t0-dask": "T0 PostgreSQL, Dask executor, alerts/s",
        "t2-fits": "T0+T2 fits PostgreSQL, wall s"}
ARCHIVE_PARTITIONS = 16


def job_document(row: str, store: str, unique: str, archive: str, fits: str) -> dict[str, Any]:
    if row == "t2-fits":
        channels = [{"name": "FITS", "filter": {"unit": "ZTFDecentFilter", "config": t0_throughput.PERMISSIVE},
                     "t2": [{"unit": "T2SNCosmoFit"}]}]
        source = {"name": "files", "config": {"paths": [fits], "pattern": "*.avro"}}
        return {"name": "scaling", "store": store, "channels": channels,
                "tasks": [{"tier": 0, "format": {"name": "ztf"}, "source": source}, {"tier": 2}]}
    source = ({"name": "archive", "config": {"path": archive}} if row in ("t0-archive", "t0-dask")
              else {"name": "files", "config": {"paths": [unique], "pattern": "*.avro"}})
    return {"name": "scaling", "store": store, "channels": t0_throughput.channels(1),
            "tasks": [{"tier": 0, "format": {"name": "ztf"}, "source": source}]}


def measure(row: str, workers: int, store: str, unique: str, archive: str, fits: str) -> dict[str, Any]:
    """One run of ``row`` with ``workers`` (in this fresh process): its summary's numbers."""
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job

    job = load_job(job_document(row, store, unique, archive, fits))
    options: dict[str, Any] = {"workers": workers} if workers > 1 or row == "t0-dask" else {}
    if row == "t0-dask":
        options["executor"] = "dask"
    summary = run_job(job, **options)
    return {"alerts": summary.alerts, "t0_seconds": summary.t0_seconds, "wall_seconds": summary.wall_seconds,
            "tickets_done": summary.tickets_done, "tickets_failed": summary.tickets_failed,
            "bytes_read": sum(summary.partition_bytes.values())}


def child(row: str, workers: int, workdir: Path, **paths: str) -> dict[str, Any]:
    backend = "sqlite" if row == "t0-sqlite" else "postgresql"
    with fresh_store(backend, workdir) as store:
        arguments = {"row": row, "workers": workers, "store": store, **paths}
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(arguments)], capture_output=True,
                              text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{row} with {workers} workers failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def value(row: str, result: dict[str, Any]) -> float:
    return float(result["wall_seconds"]) if row == "t2-fits" else result["alerts"] / result["t0_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=5000, help="T0 alerts (rounded up to whole copies of the set).")
    parser.add_argument("--fits", type=int, default=930, help="Alerts (hence SALT2 fits) of the t2-fits row.")
    cores = os.cpu_count() or 1
    default_workers = ",".join(str(n) for n in (1, 2, 4, 8, 16) if n <= cores)
    parser.add_argument("--workers", default=default_workers, help=f"Worker counts (default here: {default_workers}).")
    parser.add_argument("--repeat", type=int, default=3, help="Rounds; the median counts.")
    parser.add_argument("--rows", default=",".join(ROWS), help="Rows to measure.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(**json.loads(options.child))))
        return
    rows = [row for row in options.rows.split(",") if row]
    workers = [int(n) for n in options.workers.split(",")]
    name, files = next(iter(t0_throughput.alert_sets().items()))
    per_copy = t0_throughput.alerts_in(files)
    workdir = Path(tempfile.mkdtemp(prefix="ampel-scaling-"))
    try:
        _, unique, _ = t0_throughput.build_sets(files, math.ceil(options.alerts / per_copy), workdir / "t0")
        _, fits, _ = t0_throughput.build_sets(files, math.ceil(options.fits / per_copy), workdir / "fits")
        archive = workdir / "archive"
        if {"t0-archive", "t0-dask"} & set(rows):
            from ampel_core.archive import build_archive
            from ampel_ztf.alerts import ZTFAlertFormat

            build_archive([str(unique)], archive, ZTFAlertFormat(), {"name": "ztf", "config": {}}, ARCHIVE_PARTITIONS)
        paths = {"unique": str(unique), "archive": str(archive), "fits": str(fits)}
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_number in range(options.repeat):
            for row in rows:
                for count in workers:
                    result = child(row, count, workdir, **paths)
                    results.setdefault((row, count), []).append(result)
                    print(f"round {round_number + 1}: {row} x{count}: {value(row, result):.1f}", file=sys.stderr)
        print_table(name, rows, workers, results, options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(name: str, rows: list[str], workers: list[int], results: dict[tuple[str, int], list[dict[str, Any]]],
                options: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nscaling: {name} set, {options.alerts} alerts (T0), {options.fits} fits (T2), {os.cpu_count()} CPUs, "
          f"median of {options.repeat}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| run | " + " | ".join(str(n) for n in workers) + " |")
    print("|---|" + "---|" * len(workers))
    for row in rows:
        medians = {n: statistics.median(value(row, r) for r in results[(row, n)]) for n in workers}
        base = medians[workers[0]]
        cells = []
        for n in workers:
            ratio = base / medians[n] if row == "t2-fits" else medians[n] / base
            cells.append(f"{medians[n]:,.1f}" + (f" ({ratio:.2f}x)" if n != workers[0] else ""))
        print(f"| {ROWS[row]} | " + " | ".join(cells) + " |")
    for row in rows:
        for n in workers:
            sample = results[(row, n)][0]
            detail = (f"tickets done {sample['tickets_done']}, failed {sample['tickets_failed']}" if row == "t2-fits"
                      else f"alerts {sample['alerts']}" + (f", archive bytes read {sample['bytes_read']:,}"
                                                           if sample["bytes_read"] else ""))
            print(f"  {row} x{n}: {detail}")


if __name__ == "__main__":
    main()
