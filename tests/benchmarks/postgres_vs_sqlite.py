"""T0 throughput on SQLite vs PostgreSQL, and T2 scaling from 1 to 2 worker processes.

Run on demand (needs the PostgreSQL of ``$AMPEL_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``; each measurement uses a fresh schema or file):

    python tests/benchmarks/postgres_vs_sqlite.py [--objects 800] [--nights 10] [--repeat 2]

Alerts: ZTF-like alerts in the core JSON format, one file per night, each object seen on about
two thirds of the nights with its growing history (up to 20 datapoints: detections, upper limits,
public and private photometry). Two channels (all data; public data with >= 2 detections) each
make a state and T2 tickets per alert.

- T0: the same alerts ingested by one process (and by 2 with ``--workers``), alerts per second.
- T2: one channel's tickets for the first half of the nights, executed by 1 and by 2 worker
  processes: with T2LightCurveSummary (next to no work: the framework's cost per ticket), and with
  a light-curve fit (``T2BazinFit``: least squares of the Bazin model on a parameter grid, about
  10 ms of CPU per light curve, the scale of a fast real fit), tickets per second and speed-up.
Each figure is the best of ``--repeat`` runs. Other processes on the machine distort the rates,
the 2-process ones most: the load average is printed, and the T2 rows give the workers' CPU time
per ticket, whose ratio (the "CPU-bound limit") is the speed-up two free cores would give. Finally the SQLite and PostgreSQL stores of a
2-worker T2 run are checked to hold identical states and results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ampel_core import plugins
from ampel_core.drivers import LocalExecutor, run_job, t2_work
from ampel_core.jobs import T2Task, load_job
from ampel_core.provenance import canonical_json, digest
from ampel_core.registry import Component, get_registry
from ampel_core.runtime import RunSummary, environment, merge
from ampel_core.store import open_store
from ampel_core.units import JSON, StateUnit
from ampel_core.views import StateView


class T2BazinFit(StateUnit):
    """Bazin fit by grid search (numpy), upper limits as zero flux with their noise: CPU-bound like
    a real light-curve fit."""

    grid: int = Field(64, description="Grid points per parameter (rise and fall time, peak time).")

    def process(self, state: StateView) -> JSON:
        points = list(state.datapoints)
        if len(points) < 3:
            return {"fit": None, "points": len(points)}
        t = np.array([dp.time for dp in points])
        flux = np.array([0.0 if dp.upper_limit or dp.flux is None else dp.flux for dp in points])
        error = np.array([dp.flux_err or 1.0 for dp in points])
        t0 = np.linspace(t.min() - 10, t.max() + 5, self.grid)[:, None, None, None]
        rise = np.linspace(0.5, 15, self.grid)[None, :, None, None]
        fall = np.linspace(5, 60, self.grid)[None, None, :, None]
        shape = np.exp(-(t - t0) / fall) / (1 + np.exp(-(t - t0) / rise))
        weights = 1 / error**2
        amplitude = (shape * flux * weights).sum(-1) / np.maximum((shape**2 * weights).sum(-1), 1e-30)
        chi2 = (((amplitude[..., None] * shape - flux) / error) ** 2).sum(-1)
        best = np.unravel_index(np.argmin(chi2), chi2.shape)
        return {"t0": round(float(t0.ravel()[best[0]]), 6), "rise": round(float(rise.ravel()[best[1]]), 6),
                "fall": round(float(fall.ravel()[best[2]]), 6), "amplitude": round(float(amplitude[best]), 4),
                "chi2": round(float(chi2[best]), 4), "points": len(points)}


def register_fit_unit() -> None:
    """Make T2BazinFit usable by name in this process and the processes it forks."""
    registry = get_registry(plugins.get_manager())
    registry.units["T2BazinFit"] = Component("T2BazinFit", f"{__name__}:T2BazinFit", "ampel-benchmarks", "0+local")
    registry._classes["T2BazinFit"] = T2BazinFit


def write_alerts(folder: Path, objects: int, nights: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    history: dict[str, list[dict[str, Any]]] = {f"ZTF24bench{i:05d}": [] for i in range(objects)}
    peak = {name: rng.uniform(3, nights - 2) for name in history}
    count = 0
    for night in range(nights):
        lines = []
        for name in rng.sample(sorted(history), k=objects * 2 // 3):
            time_ = 60300.0 + night + rng.random() * 0.4
            signal = 3000 * math.exp(-((time_ - 60300 - peak[name]) ** 2) / 8)
            upper = signal < 150 or rng.random() < 0.15
            history[name].insert(0, {
                "time": time_, "band": rng.choice(("ztfg", "ztfr")),
                "flux": None if upper else round(signal + rng.gauss(0, 30), 3), "flux_err": 30.0,
                "zp": 25.0, "zpsys": "ab", "upper_limit": upper,
                "tags": ["ZTF", "ZTF_PUB" if rng.random() < 0.8 or not lines else "ZTF_PRIV"],
                "extra": {"rb": round(rng.random(), 3), "field": rng.randint(200, 900)}})
            lines.append(json.dumps({"stock": name, "datapoints": history[name][:20]}))
        (folder / f"night-{night:03d}.jsonl").write_text("\n".join(lines) + "\n")
        count += len(lines)
    return count


def job(store: str, alerts: Path, t2: str, public: bool = True, nights: int | None = None) -> dict[str, Any]:
    """All data into channel ALL, and (``public``) public data with >= 2 detections into PUBLIC;
    the alerts of the first ``nights`` nights (default: all)."""
    channels = [{"name": "ALL", "t2": [{"unit": t2}]},
                {"name": "PUBLIC", "access": ["ZTF_PUB"], "t2": [{"unit": t2}],
                 "filter": {"unit": "MinDetectionsFilter", "config": {"min_detections": 2}}}]
    return {"name": "benchmark", "store": store, "channels": channels if public else channels[:1],
            "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
                       "format": {"name": "json"}, "batch_size": 20, "limit": nights}]}


@contextmanager
def fresh_store(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        from ampel_core.sqlite_store import store_files

        path = folder / f"store-{time.time_ns()}.db"
        yield f"sqlite:///{path}"
        for file in store_files(path):
            file.unlink(missing_ok=True)
    else:
        from ampel_postgres.testing import scratch_schema

        with scratch_schema() as url:
            yield url


def measure_in_child(script: str, backend: str, folder: Path, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run ``script --child JSON`` (``arguments`` plus a fresh store of ``backend``) in a new
    process; the JSON of its last output line."""
    with fresh_store(backend, folder) as store:
        done = subprocess.run([sys.executable, script, "--child", json.dumps({"store": store, **arguments})],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_t2(store: str, workers: int) -> tuple[float, int, float]:
    """Seconds, tickets and the worker processes' CPU seconds for ``workers`` processes to finish
    every ticket of ``store``."""
    task = T2Task(tier=2, batch_size=10)
    opened = open_store(store)
    run = opened.start_run(digest({"benchmark": "t2"}), {"benchmark": "t2"}, environment(get_registry()))
    opened.close()
    summary = RunSummary(run=run)
    cpu, started = children_cpu(), time.perf_counter()
    for part in LocalExecutor().run(t2_work, [(store, task, run, None, workers)] * workers, lambda tier, counts: None):
        merge(summary, part)
    return time.perf_counter() - started, summary.tickets_done + summary.tickets_failed, children_cpu() - cpu


def fingerprint(url: str) -> tuple[Any, ...]:
    store = open_store(url)
    states = sorted(store.execute("SELECT id, stock, datapoints FROM states"))  # type: ignore[attr-defined]
    results = sorted((r.unit, r.link, r.stock, canonical_json(r.body)) for _, r in store.results())
    store.close()
    return states, results


class Bench:
    def __init__(self, alerts: Path, work: Path, repeat: int, t2_nights: int) -> None:
        self.alerts, self.work, self.repeat, self.t2_nights = alerts, work, repeat, t2_nights
        self.rows: list[tuple[str, str, str, str]] = []
        self.fingerprints: dict[str, Any] = {}

    def row(self, store: str, what: str, rate: str, speedup: str = "") -> None:
        self.rows.append((store, what, rate, speedup))
        print(" | ".join(self.rows[-1]), flush=True)

    def t0(self, backend: str, workers: int) -> float:
        """Best alerts per second of ``workers`` processes ingesting the alerts into a fresh store."""
        rates = []
        for _ in range(self.repeat):
            with fresh_store(backend, self.work) as url:
                document = load_job(job(url, self.alerts, "T2BazinFit"))
                summary = run_job(document) if workers == 1 else run_job(document, workers=workers)
                rates.append(summary.alerts / summary.t0_seconds)
        return max(rates)

    def t2(self, backend: str, unit: str, workers: int) -> tuple[float, int, float]:
        """Best tickets per second of ``workers`` processes on the tickets of a one-channel job,
        the number of tickets, and the workers' CPU milliseconds per ticket in that run."""
        runs, tickets = [], 0
        for _ in range(self.repeat):
            with fresh_store(backend, self.work) as url:
                run_job(load_job(job(url, self.alerts, unit, public=False, nights=self.t2_nights)))
                seconds, tickets, cpu = run_t2(url, workers)
                runs.append((tickets / seconds, 1000 * cpu / tickets))
                if unit == "T2BazinFit" and workers == 2:
                    self.fingerprints[backend] = fingerprint(url)
        rate, cpu_ms = max(runs)
        return rate, tickets, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=600)
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    register_fit_unit()
    work = Path(tempfile.mkdtemp(prefix="ampel-bench-"))
    alerts = work / "alerts"
    count = write_alerts(alerts, options.objects, options.nights)
    print(f"{count} alerts of {options.objects} objects over {options.nights} nights; {os.cpu_count()} CPUs; "
          f"python {sys.version.split()[0]}; best of {options.repeat}; load average {os.getloadavg()[0]:.2f}", flush=True)
    bench = Bench(alerts, work, options.repeat, max(1, options.nights // 2))
    for backend in ("sqlite", "postgresql"):
        one = bench.t0(backend, 1)
        bench.row(backend, "T0 ingest, 1 process", f"{one:,.0f} alerts/s")
        two = bench.t0(backend, 2)
        bench.row(backend, "T0 ingest, 2 processes (--workers 2)", f"{two:,.0f} alerts/s", f"{two / one:.2f}x")
    for backend in ("sqlite", "postgresql"):
        rate, tickets, cpu_ms = bench.t2(backend, "T2LightCurveSummary", 1)
        bench.row(backend, f"T2 T2LightCurveSummary (framework cost), 1 worker, {tickets} tickets",
                  f"{rate:,.0f} tickets/s ({1000 / rate:.2f} ms each, worker CPU {cpu_ms:.2f} ms)")
    for backend in ("sqlite", "postgresql"):
        one, tickets, cpu_one = bench.t2(backend, "T2BazinFit", 1)
        bench.row(backend, f"T2 T2BazinFit, 1 worker, {tickets} tickets", f"{one:,.0f} tickets/s (worker CPU {cpu_one:.1f} ms each)")
        two, _, cpu_two = bench.t2(backend, "T2BazinFit", 2)
        bench.row(backend, f"T2 T2BazinFit, 2 workers, {tickets} tickets", f"{two:,.0f} tickets/s (worker CPU {cpu_two:.1f} ms each)",
                  f"{two / one:.2f}x (CPU-bound limit {2 * cpu_one / cpu_two:.2f}x)")
    print()
    print("| store | what | rate | speed-up 1 -> 2 |")
    print("|---|---|---:|---:|")
    for row in bench.rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f} (other processes on the machine distort the rates)")
    same = bench.fingerprints["sqlite"] == bench.fingerprints["postgresql"]
    print(f"\nSQLite and PostgreSQL stores hold identical states and results: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
