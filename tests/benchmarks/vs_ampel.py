"""Our T0 beside the published AMPEL's, in one run, on the same 2,046 "unique" real ZTF alerts.

Needs the anchor of ../shared/anchors-ampel (run its setup.sh once; it installs ampel-core
0.10.6a28 + ampel-ztf 0.10.2 into /tmp/ampel-real and builds /tmp/ampel-real/alerts/unique2046,
where every copy of the 93 real alerts is a new object). Run on demand:

    python tests/benchmarks/vs_ampel.py [--repeat 3]

AMPEL runs with its database writes switched off (ampel_nulldb.py: no MongoDB here); ours writes
everything into a new SQLite store (stocks, datapoints, states, cutouts, journal, T2 tickets).
Both filter on the real/bogus score and schedule T2LightCurveSummary per accepted alert, one
process each. Rates are alerts per second of the child process's CPU time (user + sys; the
machine is shared, so CPU time is the fair clock) — the best of ``--repeat`` runs — and wall time.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REAL = Path("/tmp/ampel-real")
ALERTS = REAL / "alerts" / "unique2046"


def timed(command: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stdout + done.stderr


def ours(workdir: Path) -> tuple[float, float, int]:
    store = workdir / f"ours-{time.time_ns()}.db"
    job = workdir / "job.yml"
    job.write_text(yaml.safe_dump({
        "name": "vs-ampel", "store": f"sqlite:///{store}",
        "channels": [{"name": "BENCH", "access": ["ZTF", "ZTF_PUB", "ZTF_PRIV"],
                      "filter": {"unit": "ZTFDecentFilter", "config": {
                          "min_ndet": 2, "min_rb": 0.3, "require_positive": False, "max_fwhm": 100, "max_elong": 100,
                          "max_magdiff": 100, "max_nbad": 100, "min_sso_dist": 0, "bright_star_rad": 0,
                          "min_gal_lat": 0, "ps1_sgveto_rad": 0}},
                      "t2": [{"unit": "T2LightCurveSummary"}]}],
        "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(ALERTS)], "pattern": "*.avro"}},
                   "format": {"name": "ztf"}}]}))
    summary = workdir / "summary.json"
    cpu, wall, _ = timed([sys.executable, "-m", "ampel_core.cli", "job", str(job), "--no-progress",
                          "--summary-json", str(summary)])
    import json

    return cpu, wall, json.loads(summary.read_text())["accepted"]["BENCH"]


def real_ampel() -> tuple[float, float, int]:
    cpu, wall, output = timed([str(REAL / "venv/bin/python"), str(REAL / "ampel_nulldb.py"), "job", "-config",
                               str(REAL / "ampel_conf_mock.yaml"), "-schema", str(REAL / "jobs/ztf_bench_unique2046.yaml"),
                               "-no-color"])
    accepted = next(int(float(line.split()[-1])) for line in output.splitlines()
                    if line.startswith("METRIC ampel_alertprocessor_alerts_accepted_total {'channel': 'BENCH'}"))
    return cpu, wall, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (REAL / "venv/bin/python").exists() or not ALERTS.is_dir():
        sys.exit("run ../shared/anchors-ampel/setup.sh first (it builds /tmp/ampel-real)")
    alerts = len(list(ALERTS.glob("*.avro")))
    workdir = Path(tempfile.mkdtemp(prefix="vs-ampel-"))
    runs: dict[str, list[tuple[float, float, int]]] = {"AMPEL 0.10 (no DB writes)": [], "this AMPEL (SQLite writes)": []}
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        runs["AMPEL 0.10 (no DB writes)"].append(real_ampel())
        runs["this AMPEL (SQLite writes)"].append(ours(workdir))
    print(f"{alerts} unique real ZTF alerts, one process each, best of {args.repeat} (CPU time = user + sys)\n")
    print(f"{'system':28} {'accepted':>8} {'CPU s':>7} {'wall s':>7} {'alerts/s CPU':>13} {'alerts/s wall':>14}")
    best = {}
    for name, results in runs.items():
        cpu = min(r[0] for r in results)
        wall = min(r[1] for r in results)
        best[name] = alerts / cpu
        print(f"{name:28} {results[0][2]:8d} {cpu:7.2f} {wall:7.2f} {alerts / cpu:13.0f} {alerts / wall:14.0f}")
    ratio = best["this AMPEL (SQLite writes)"] / best["AMPEL 0.10 (no DB writes)"]
    print(f"\nratio (CPU rate): {ratio:.2f}x  (target >= 1.5x)")


if __name__ == "__main__":
    main()
