"""T0 on real ZTF alerts in one process and in N stock partitions (``ampel job --workers N``).

Run on demand:  python tests/benchmarks/t0_partitions.py [--alerts 5000] [--workers 2] [--repeat 2]
                [--postgres]

The full T0 of t0_throughput.py (1 channel, every alert accepted and ingested into a new store,
T1 states, T2 tickets) over the "unique" variant of the reference set (each copy a new object;
without ../shared/data the shipped sample), run by one process and by ``--workers`` partitions
(`ampel_core.drivers.run_job` with workers), the partitions once as they are and once with the ZTF
format's ``stocks`` peek switched off, so that every partition decodes every alert (as before the
format had it). The store is a SQLite file; with ``--postgres`` the same runs follow on
PostgreSQL (a fresh schema of ``$AMPEL_TEST_POSTGRES`` each; the server shares this machine's
CPUs). Wall-clock seconds and alerts per second of the whole T0, best of ``--repeat`` runs in
rounds (each measurement in a fresh process); the speed-up is against one process on the same
store. On a machine with fewer free cores than partitions the speed-up is capped accordingly (the
load average is printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import t0_throughput  # the alert sets and channels of the T0 benchmark
from postgres_vs_sqlite import measure_in_child  # in a new process, on a new SQLite file or PostgreSQL schema


def measure(folders: list[str], store: str, workers: int, peek: bool) -> dict[str, Any]:
    """Wall-clock seconds of a job whose one task is the T0 over ``folders`` (opening the store,
    the run record and starting the partitions' processes included)."""
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job
    from ampel_ztf.alerts import ZTFAlertFormat

    if not peek:
        del ZTFAlertFormat.stocks  # the partitions fall back to decoding every record
    job = load_job({"name": "t0-partitions", "store": store, "channels": t0_throughput.channels(1),
                    "tasks": [{"tier": 0, "format": {"name": "ztf"},
                               "source": {"name": "files", "config": {"paths": folders, "pattern": "*.avro"}}}]})
    started = time.perf_counter()
    summary = run_job(job) if workers == 1 else run_job(job, workers=workers)
    return {"seconds": time.perf_counter() - started, "alerts": summary.alerts, "ingested": summary.ingested}


def child(backend: str, folder: Path, **arguments: Any) -> dict[str, Any]:
    return measure_in_child(__file__, backend, folder, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=5000, help="Alerts (rounded up to whole copies).")
    parser.add_argument("--workers", type=int, default=2, help="Partitions (processes) of the parallel runs.")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per measurement; the fastest counts.")
    parser.add_argument("--postgres", action="store_true", help="Also measure on a PostgreSQL store.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(**json.loads(options.child))))
        return
    name, files = next(iter(t0_throughput.alert_sets().items()))  # the reference set, or the sample
    workdir = Path(tempfile.mkdtemp(prefix="ampel-t0-partitions-"))
    try:
        copies = math.ceil(options.alerts / t0_throughput.alerts_in(files))
        _, unique, _ = t0_throughput.build_sets(files, copies, workdir)
        folders = [str(unique / f"copy{copy:05d}") for copy in range(copies)]
        specs = {}
        for backend in ("sqlite", "postgresql") if options.postgres else ("sqlite",):
            specs.update({(backend, "1 process"): (1, True), (backend, f"{options.workers} partitions"): (options.workers, True),
                          (backend, f"{options.workers} partitions, every one decoding every alert"): (options.workers, False)})
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for round_ in range(options.repeat):
            for key, (workers, peek) in specs.items():
                result = child(key[0], workdir, folders=folders, workers=workers, peek=peek)
                if key not in best or result["seconds"] < best[key]["seconds"]:
                    best[key] = result
            print(f"round {round_ + 1} of {options.repeat} measured", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nfull T0 ({name} set, unique variant, 1 channel, every alert accepted), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    print(f"{'store':<11} {'run':<52} {'alerts':>7} {'ingested':>8} {'wall s':>7} {'alerts/s':>9} {'speed-up':>8}")
    for (backend, label), result in best.items():
        single = best[(backend, "1 process")]["seconds"]
        print(f"{backend:<11} {label:<52} {result['alerts']:>7} {result['ingested']:>8} {result['seconds']:>7.2f} "
              f"{result['alerts'] / result['seconds']:>9.0f} {single / result['seconds']:>7.2f}x")


if __name__ == "__main__":
    main()
