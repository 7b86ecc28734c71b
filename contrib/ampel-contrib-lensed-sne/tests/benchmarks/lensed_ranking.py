"""Completeness and contamination of the lensed-SN search on a mixed simulated set.

Simulates ``--lensed`` SNe Ia at z_source ~ U(0.8, 1.0), magnified by mu ~ U(10, 30), behind lens
galaxies at z ~ U(0.2, 0.4), and ``--unlensed`` SNe Ia at z ~ U(0.02, 0.15) in their hosts, at ZTF
cadence and noise drawn from the real alert histories shipped with AMPEL (docs/examples/data/ztf;
`ampel_contrib_lensed_sne.simulate`), puts every galaxy into one catalogue file, runs
T2HostGalaxy -> T2SNCosmoFit -> T2LensedSNColours (the job's configuration) on each light curve and
ranks them with T3LensedSNReport. Prints the table:

    python contrib/ampel-contrib-lensed-sne/tests/benchmarks/lensed_ranking.py [--lensed 30 --unlensed 30 --seed 1]

"Fitted" lensed events have a point at S/N >= 3, which T2SNCosmoFit needs to start (minsnr 3).
"Detectable" events would have raised ZTF alerts: at least 3 points at S/N >= 5 (ZTF's detection
threshold). Fainter ones never reach an alert-based search; most of them cannot even be fitted.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[4]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lensed", type=int, default=30)
    parser.add_argument("--unlensed", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--unlensed-z", type=float, nargs=2, default=(0.02, 0.15), metavar=("MIN", "MAX"))
    parser.add_argument("--verbose", action="store_true", help="Print every event's row.")
    parser.add_argument("--alerts", type=Path, default=REPOSITORY / "docs" / "examples" / "data" / "ztf")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lensed-bench-"))
    os.environ["AMPEL_CATALOGS"] = str(folder / "catalogs")

    from ampel_catalogs.hosts import T2HostGalaxy
    from ampel_core.testing import run_unit, state_view, stock_view
    from ampel_core.unit_check import read_alerts
    from ampel_sncosmo.fit import T2SNCosmoFit

    from ampel_contrib_lensed_sne.simulate import cadences, simulated_event
    from ampel_contrib_lensed_sne.t2_colours import T2LensedSNColours
    from ampel_contrib_lensed_sne.t3_report import T3LensedSNReport

    pool = cadences(read_alerts(arguments.alerts, format="ztf", pattern="*.avro"))
    rng = np.random.default_rng(arguments.seed)
    events, rows = [], []
    for index in range(arguments.lensed + arguments.unlensed):
        lensed = index < arguments.lensed
        if lensed:
            z_source, z_lens, mu = rng.uniform(0.8, 1.0), rng.uniform(0.2, 0.4), rng.uniform(10, 30)
        else:
            z_source = z_lens = rng.uniform(*arguments.unlensed_z)
            mu = 1.0
        event, row = simulated_event(rng, pool[rng.integers(len(pool))], stock=index + 1, ra=(index * 3.7) % 360,
                                     dec=float(rng.uniform(-20, 60)), lensed=lensed, z_source=z_source,
                                     z_lens=z_lens, magnification=mu)
        events.append(event)
        rows.append(row)
    catalog_file = folder / "galaxies.csv"
    with catalog_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    host_config = {"catalog": {"file": str(catalog_file), "ra": "RAJ2000", "dec": "DEJ2000", "id": "NED_name",
                               "keep": ["maj", "min", "PAHyp", "Dist"]}}
    unit = T2LensedSNColours(host=host_config)

    start = time.perf_counter()
    views, detectable, fitted = [], {}, {}
    for event in events:
        state = state_view(list(event.datapoints), name=event.name)
        host = run_unit(T2HostGalaxy, state, **unit.host)
        fit = run_unit(T2SNCosmoFit, state, {"T2HostGalaxy": host}, **unit.fit)
        result = run_unit(unit, state, {"T2HostGalaxy": host, "T2SNCosmoFit": fit})
        views.append(stock_view(list(event.datapoints), {"T2HostGalaxy": host, "T2SNCosmoFit": fit,
                                                         "T2LensedSNColours": result}, name=event.name))
        detectable[event.name] = _detectable(event.datapoints)
        fitted[event.name] = bool(fit.get("parameters"))
    elapsed = time.perf_counter() - start
    report = T3LensedSNReport().process(views)
    truth = {event.name: event for event in events}
    _print(report["rows"], truth, detectable, fitted, elapsed, arguments)
    if arguments.verbose:
        for row in report["rows"]:
            event = truth[row["stock"]]
            print(row["rank"], row["stock"], "lensed" if event.lensed else "unlensed",
                  {k: round(v, 3) for k, v in event.truth.items() if k in ("z_source", "z_lens", "magnification")},
                  "detectable" if detectable[row["stock"]] else "-", row["cuts_passed"], row["magnification"],
                  row["reasons"])
    return 0


def _detectable(points: Any) -> bool:
    """Whether ZTF would have issued alerts: at least 3 points at S/N >= 5 (its detection threshold)."""
    return sum(1 for p in points if p.flux_err and p.flux / p.flux_err >= 5) >= 3


def _print(rows: list[dict[str, Any]], truth: dict[str, Any], detectable: dict[str, bool], fitted: dict[str, bool],
           elapsed: float, arguments: argparse.Namespace) -> None:
    lensed = [r for r in rows if truth[r["stock"]].lensed]
    unlensed = [r for r in rows if not truth[r["stock"]].lensed]
    found = [r for r in lensed if r["candidate"]]
    false = [r for r in unlensed if r["candidate"]]
    candidates = found + false
    visible = [r for r in lensed if detectable[r["stock"]]]
    with_fit = [r for r in lensed if fitted[r["stock"]]]
    print(f"lensed-SN search on {len(rows)} simulated light curves (seed {arguments.seed}), "
          f"{elapsed:.1f} s for the three T2 units ({1000 * elapsed / len(rows):.0f} ms per light curve)")
    print(f"{'set':<36}{'events':>8}{'candidates':>12}{'fraction':>10}")
    for label, subset in (("lensed (mu 10-30, z 0.8-1.0)", lensed), ("  of which fitted (a point S/N>=3)", with_fit),
                          ("  of which detectable (alerts)", visible),
                          ("  mu >= 20", [r for r in lensed if truth[r['stock']].truth['magnification'] >= 20]),
                          ("  mu < 20", [r for r in lensed if truth[r['stock']].truth['magnification'] < 20]),
                          (f"unlensed SNe Ia (z {arguments.unlensed_z[0]:g}-{arguments.unlensed_z[1]:g})", unlensed)):
        chosen = sum(bool(r["candidate"]) for r in subset)
        print(f"{label:<36}{len(subset):>8}{chosen:>12}{chosen / len(subset) if subset else float('nan'):>10.2f}")
    print(f"completeness (all lensed) {len(found) / max(len(lensed), 1):.2f}; (fitted) "
          f"{sum(bool(r['candidate']) for r in with_fit) / max(len(with_fit), 1):.2f}; (detectable) "
          f"{sum(bool(r['candidate']) for r in visible) / max(len(visible), 1):.2f}; contamination "
          f"{len(false) / max(len(candidates), 1):.2f} ({len(false)} unlensed of {len(candidates)} candidates)")
    ranks = {r["stock"]: r["rank"] for r in rows}
    for label, subset in (("all lensed", lensed), ("fitted lensed", with_fit), ("detectable lensed", visible)):
        pairs = [(ranks[a["stock"]] < ranks[b["stock"]]) for a in subset for b in unlensed]
        top = rows[: len(subset)]
        print(f"ranking, {label}: above unlensed in {sum(pairs)}/{len(pairs)} pairs "
              f"({sum(pairs) / max(len(pairs), 1):.3f}); the top {len(top)} ranks hold "
              f"{sum(truth[r['stock']].lensed for r in top)} lensed")


if __name__ == "__main__":
    sys.exit(main())
