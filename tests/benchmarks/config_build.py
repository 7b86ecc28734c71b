"""Wall time of `ampel --help` and `ampel config build` with everything installed in this
environment (core and every plugin of the repository). Run on demand:

    python tests/benchmarks/config_build.py [--repeat 7]

Prints a table: median / min / max seconds over the repeats, and the targets (config build < 1 s,
--help < 0.3 s). Each command runs in a fresh process, as a user would run it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AMPEL = [sys.executable, "-m", "ampel_core.cli"]


def timed(command: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    output = Path(tempfile.mkdtemp()) / "ampel_conf.yaml"
    plugins = subprocess.run([*AMPEL, "plugins"], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    rows = [("ampel --help", timed([*AMPEL, "--help"], args.repeat), 0.3),
            ("ampel config build", timed([*AMPEL, "config", "build", "-o", str(output)], args.repeat), 1.0)]
    import yaml

    units = len(yaml.safe_load(output.read_text())["units"])
    print(f"{len(plugins)} distributions installed ({', '.join(p.split()[0] for p in plugins)}); {units} units\n")
    print(f"{'command':22} {'median s':>9} {'min s':>7} {'max s':>7} {'target s':>9}  ok")
    for name, times, target in rows:
        median = statistics.median(times)
        print(f"{name:22} {median:9.3f} {min(times):7.3f} {max(times):7.3f} {target:9.1f}  {'yes' if median < target else 'NO'}")


if __name__ == "__main__":
    main()
