"""Instructions executed by the full T0 against fastavro decoding: the noise-free companion of
t0_throughput.py.

Run on demand:  python tests/benchmarks/t0_instructions.py [--alerts 500] [--workdir DIR] [--keep]

Needs valgrind. Each measurement of t0_throughput.py (fastavro.reader over every container, this
plugin's ZTFAlertFormat.decode, the full T0 with 1 and with 10 channels accepting every alert) runs
in a fresh process under ``valgrind --tool=callgrind``, once over the unique variant of each alert
set (about ``--alerts`` alerts, whole copies) and once over no alerts; the difference is what the
alerts cost, start-up, imports and the store's creation cancelled out. Instruction counts repeat to
the last digit whatever else the machine is doing, where CPU times on a shared machine vary by
10-20 % between runs of the same work (see docs/ztf.md).

Instructions are not time: they leave out waiting for memory and the kernel's work (writing the
WAL, the checkpoint and the cutouts), which the full T0 has and decoding has not. So the share
printed here is an upper bound of the rate share t0_throughput.py measures, and the distance between
the two is what memory and I/O cost. The issue's targets are about rates and are checked there.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import t0_throughput  # the measurements themselves

#: (label, child kind, arguments besides the folders)
MEASUREMENTS = [
    ("decode only: fastavro.reader", "decode_fastavro", {}),
    ("decode only: ZTFAlertFormat", "decode_ampel", {}),
    ("full T0,  1 ch, all accepted", "full_t0", {"channel_count": 1}),
    ("full T0, 10 ch, all accepted", "full_t0", {"channel_count": 10}),
]


def instructions(kind: str, arguments: dict[str, object], workdir: Path) -> tuple[int, int]:
    """(instructions, alerts) of one t0_throughput child measurement run under callgrind."""
    out = Path(tempfile.mkstemp(prefix="callgrind-", dir=workdir)[1])
    result = t0_throughput.child(kind, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"], **arguments)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    out.unlink()
    if not found:
        raise RuntimeError(f"no instruction total in callgrind's output for {kind}")
    return int(found.group(1)), int(result["alerts"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=500, help="Alerts per set (rounded up to whole copies).")
    parser.add_argument("--workdir", type=Path, help="Where to build the sets (default: a temporary folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    options = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: it counts the instructions (apt install valgrind)")
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="ampel-t0-instructions-"))
    try:
        run(options.alerts, workdir)
    finally:
        if not options.keep and not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def run(alerts: int, workdir: Path) -> None:
    empty = workdir / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    jobs: dict[tuple[str, str], tuple[str, dict[str, object]]] = {}  # (set, label) -> (kind, arguments)
    for name, files in t0_throughput.alert_sets().items():
        per_copy = t0_throughput.alerts_in(files)
        _, unique, _ = t0_throughput.build_sets(files, math.ceil(alerts / per_copy), workdir / name)
        for label, kind, extra in MEASUREMENTS:
            for key, folder in ((name, unique), ("(none)", empty)):  # the run over no alerts is shared
                store = {"store": str(workdir / f"{key}-{kind}-{extra.get('channel_count', 0)}.db")} if kind == "full_t0" else {}
                jobs[key, label] = (kind, {"folders": [str(folder)], **extra, **store})
    print(f"{len(jobs)} runs under callgrind, {min(len(jobs), os.cpu_count() or 1)} at a time",
          file=sys.stderr)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = dict(zip(jobs, pool.map(lambda job: instructions(*job, workdir), jobs.values()), strict=True))

    print("\ninstructions per alert (millions), what the alerts add to a run over none (valgrind callgrind)")
    print(f"{'set':<10} {'measurement':<30} {'alerts':>7} {'M instr/alert':>13} {'fastavro / this':>15}")
    for name in dict.fromkeys(key for key, _ in jobs if key != "(none)"):
        per_alert = {}
        for label, _, _ in MEASUREMENTS:
            total, count = counted[name, label]
            per_alert[label] = (total - counted["(none)", label][0]) / count
        reference = per_alert[MEASUREMENTS[0][0]]
        for label, value in per_alert.items():
            print(f"{name:<10} {label:<30} {counted[name, label][1]:>7} {value / 1e6:>13.2f} {reference / value:>15.0%}")


if __name__ == "__main__":
    main()
