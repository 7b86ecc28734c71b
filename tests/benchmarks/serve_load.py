"""The read API under load while alerts are ingested: stock requests per second and their latency.

Run on demand (loopback only; bounded by --requests and --seconds):

    python tests/benchmarks/serve_load.py [--via serve|job] [--preload 10] [--live 60] [--requests 8000]
                                          [--seconds 20] [--connections 8] [--path stock|lightcurve]

Alerts: the real ZTF alerts shipped in docs/examples/data/ztf (62 alerts of 27 objects), written
as unique copies (new objectIds and candids per copy, as tests/benchmarks/t0_throughput.py does):
``--preload`` copies are ingested first (the stocks the requests ask for), ``--live`` copies are
ingested during the measurement. One team, one uploaded job: a channel that accepts every alert.

- ``--via serve`` (default, as deployed): a real ``ampel serve --watch DIR`` answers the API and
  ingests the files dropped into its watched directory (by default in a child process of its own,
  ``ampel serve ingest``; ``--serve-option=--threads`` keeps it in the API's process);
- ``--via job``: the API alone (uvicorn, one process) and a T0 job ingesting into the same store in
  another process.

This process sends the load: ``--connections`` keep-alive HTTP/1.1 connections, each sending
``GET /api/stocks/{name}`` (a random preloaded stock, with the team's token; ``--path
lightcurve``: its light curve) and waiting for the answer, from the moment the live alerts are
being ingested until they all are, ``--requests`` answers or ``--seconds`` have passed.

Printed: alerts ingested per second during the load (the store's alerts, ingested or rejected, before
and after),
the API's answers per second, latency p50 / p99 / max, non-200 answers, the API process's CPU
seconds per second, the load average, and the targets of issue 22: ingest >= 300 alerts/s while
the API answers >= 500 stock requests/s with p99 < 100 ms. On a machine shared with other work the
rates and latencies say how busy the machine was as much as what the service costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = {"name": "LOAD_ALL", "access": ["ZTF_PUB"], "filter": {"unit": "AcceptAll"}, "t2": []}


def t0_job(store: str, folder: Path) -> dict[str, Any]:
    return {"name": "serve-load", "store": store, "channels": [CHANNEL],
            "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(folder)], "pattern": "*.avro"}},
                       "format": {"name": "ztf"}}]}


def ingest(store: str, folder: str) -> None:
    """Child: ingest ``folder``; print {"alerts", "started", "ended"} (wall-clock times)."""
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job

    job = load_job(t0_job(store, Path(folder)))
    started, cpu = time.time(), time.process_time()
    summary = run_job(job)
    print(json.dumps({"alerts": summary.alerts, "started": started, "ended": time.time(),
                      "cpu": time.process_time() - cpu}), flush=True)


def serve(store: str, data_dir: str, port: int) -> None:
    """Child: the API on 127.0.0.1:port."""
    import uvicorn

    from ampel_serve.app import ServeSettings, create_app

    app = create_app(ServeSettings(store=store, data_dir=Path(data_dir)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def child(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True)


async def load(port: int, paths: list[str], token: str, requests: int, seconds: float,
               connections: int, stop: Any = lambda: False) -> tuple[list[float], int, float]:
    """(latencies in seconds, non-200 answers, elapsed seconds) of the load, which ends after
    ``requests`` requests, ``seconds`` or when ``stop()`` says so."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    remaining = [requests]

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0 and time.perf_counter() < deadline and not stop():
                remaining[0] -= 1
                path = random.choice(paths)
                started = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if status_line.split()[1] != b"200":
                    failures += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, failures, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--ingest-child":
        return ingest(sys.argv[2], sys.argv[3])
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-child":
        return serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preload", type=int, default=10, help="copies of the 62 alerts ingested first")
    parser.add_argument("--live", type=int, default=60, help="copies ingested during the load")
    parser.add_argument("--requests", type=int, default=8000, help="at most this many requests")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--path", choices=["stock", "lightcurve"], default="stock",
                        help="GET /api/stocks/{name} (the whole stock) or its /lightcurve")
    parser.add_argument("--via", choices=["serve", "job"], default="serve",
                        help="serve: one `ampel serve` ingests a watched directory and answers; job: API and T0 job "
                             "in two processes")
    parser.add_argument("--serve-option", action="append", default=[],
                        help="an option for `ampel serve` (--via serve), e.g. --serve-option=--threads")
    parser.add_argument("--workdir", help="keep the store and alerts here (default: a temporary folder)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        run(options, Path(options.workdir or temporary))


def prepare(options: argparse.Namespace, workdir: Path) -> tuple[str, Path, str, Path, Path, int]:
    """The store (a team with a token and the load job uploaded), the preload and live copies:
    (store URL, data directory, token, preload folder, live folder, alerts per copy)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import yaml
    from t0_throughput import build_sets

    from ampel_serve.jobs import JobBook
    from ampel_serve.teams import TeamBook

    files = sorted((ROOT / "docs/examples/data/ztf").rglob("*.avro"))
    _, preload, per_copy = build_sets(files, options.preload, workdir / "preload")
    # the live copies get other names: build preload + live copies, drop the first ones
    _, live, _ = build_sets(files, options.preload + options.live, workdir / "live")
    for copy in range(options.preload):
        for path in (live / f"copy{copy:05d}").iterdir():
            path.unlink()
        (live / f"copy{copy:05d}").rmdir()
    store_url = f"sqlite:///{workdir}/store.db"
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    teams = TeamBook(store_url)
    token = teams.add_team("load", ["ZTF_PUB"], rate_limit=10**9)
    jobs = JobBook(store_url, data_dir, teams)
    job = {"name": "load", "channels": [CHANNEL], "tasks": [{"tier": 2}]}
    jobs.submit(teams.team("load"), yaml.safe_dump(job).encode(), 1 << 20)
    jobs.close()
    teams.close()
    return store_url, data_dir, token, preload, live, per_copy


def alerts_stored(store_url: str) -> int:
    """The alerts the store has taken in: ingested, or rejected by the one channel (its rights do
    not cover the triggering datapoint)."""
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    try:
        return int(store.execute("SELECT (SELECT COUNT(*) FROM alerts) + (SELECT COUNT(*) FROM rejected)")[0][0])  # type: ignore[attr-defined]
    finally:
        store.close()


def stock_paths(store_url: str, suffix: str) -> list[str]:
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    try:
        return [f"/api/stocks/{store.get_stock(s).names[0]}{suffix}"  # type: ignore[union-attr]
                for s in store.select_stocks("LOAD_ALL")]
    finally:
        store.close()


def run(options: argparse.Namespace, workdir: Path) -> None:
    """``--via serve``: one `ampel serve` process ingests a watched directory and answers the API
    (as deployed); ``--via job``: the API alone in one process, a T0 job in another."""
    from ampel_serve.testing import Server, wait_for

    store_url, data_dir, token, preload, live, per_copy = prepare(options, workdir)
    suffix = "/lightcurve" if options.path == "lightcurve" else ""
    expected = (options.preload + options.live) * per_copy
    if options.via == "serve":
        drop = workdir / "drop"
        drop.mkdir()
        preload.rename(drop / "preload")
        server = Server(store_url, drop, data_dir,
                        options=["--pattern", "*.avro", "--t2-workers", "0", *options.serve_option]).start()
        assert server.process is not None
        pid, port = server.process.pid, int(server.url.rpartition(":")[2])
        stop_server = server.stop
    else:
        from ampel_core.drivers import run_job
        from ampel_core.jobs import load_job

        run_job(load_job(t0_job(store_url, preload)))
        port = 20000 + os.getpid() % 20000
        process = child("--serve-child", store_url, str(data_dir), str(port))
        pid = process.pid
        wait_for(lambda: _answers(port), 60, "the API")

        def stop_server() -> Any:
            process.terminate()
            return process.wait(10)
    try:
        wait_for(lambda: alerts_stored(store_url) >= options.preload * per_copy, 600, "the preload")
        paths = stock_paths(store_url, suffix)
        asyncio.run(load(port, paths[:20], token, 200, 5.0, 2))  # warm up: threads, connections, caches
        if options.via == "serve":
            live.rename(drop / "live")  # one rename: the service sees every live file at once
            ingesting = lambda: alerts_stored(store_url) < expected  # noqa: E731
            wait_for(lambda: alerts_stored(store_url) > options.preload * per_copy, 60, "the ingest to start")
        else:
            ingester = child("--ingest-child", store_url, str(live))
            ingesting = lambda: ingester.poll() is None  # noqa: E731
            time.sleep(1.0)  # its start-up: imports, config
        stored_before, server_cpu = alerts_stored(store_url), cpu_seconds(pid)
        checked = [0.0, True]

        def stop() -> bool:  # the ingest ended (looked at every 0.2 s)
            if time.time() - checked[0] > 0.2:
                checked[0], checked[1] = time.time(), ingesting()
            return not checked[1]

        latencies, failures, elapsed = asyncio.run(load(port, paths, token, options.requests, options.seconds,
                                                        options.connections, stop))
        stored_after, server_cpu = alerts_stored(store_url), cpu_seconds(pid) - server_cpu
        still_ingesting = ingesting()
    finally:
        stop_server()
    ingest_rate = (stored_after - stored_before) / elapsed
    read_rate = len(latencies) / elapsed
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    where = (f"`ampel serve {' '.join(options.serve_option)}`".replace(" `", "`") if options.via == "serve"
             else "API process + T0 job process")
    print(f"\nserve_load --via {options.via}: {where}; {len(paths)} preloaded stocks ({options.preload} x {per_copy} "
          f"alerts), {options.live * per_copy} alerts dropped for the load; GET /api/stocks/{{name}}{suffix}, "
          f"{options.connections} connections; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'measure':<44} {'value':>12}  target")
    rows = [("alerts ingested during the load (alerts/s)", f"{ingest_rate:.0f}", ">= 300", ingest_rate >= 300),
            ("API answers (requests/s)", f"{read_rate:.0f}", ">= 500", read_rate >= 500),
            ("latency p50 (ms)", f"{p50:.1f}", "", None),
            ("latency p99 (ms)", f"{p99:.1f}", "< 100", p99 < 100),
            ("latency max (ms)", f"{max(latencies) * 1000:.1f}", "", None),
            ("answers / not 200", f"{len(latencies)} / {failures}", "0 not 200", failures == 0),
            ("API process CPU (s per s of the load)", f"{server_cpu / elapsed:.2f}", "", None),
            ("API answers per CPU second of its process", f"{len(latencies) / max(server_cpu, 1e-9):.0f}", "", None),
            ("load duration (s); ingest still running at its end", f"{elapsed:.1f}; {still_ingesting}", "", None)]
    for label, value, target, met in rows:
        verdict = "" if met is None else ("  met" if met else "  NOT MET")
        print(f"{label:<44} {value:>12}  {target}{verdict}")


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1).read()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
