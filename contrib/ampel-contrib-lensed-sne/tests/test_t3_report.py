"""T3LensedSNReport on a mixed simulated set: lensed events rank above unlensed ones; the report
files hold a table, plots and the provenance (stock, state) of every row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ampel_core.testing import run_unit, stock_view
from ampel_core.views import StockView

from ampel_contrib_lensed_sne.simulate import Cadence, simulated_event, write_galaxy_catalog
from ampel_contrib_lensed_sne.t3_report import T3LensedSNReport, ranking_score


def test_lensed_events_rank_above_unlensed_ones(ztf_cadences: list[Cadence], tmp_path: Path, catalogs: Path,
                                                analyse: Any) -> None:
    rng = np.random.default_rng(11)
    # cadences covering rise and peak in both g and r (ZTF18aaawcpm, in the Galactic plane, has g only
    # three weeks before and five weeks after: no colour can be measured; the benchmark keeps such cases)
    pool = [c for c in ztf_cadences if c.span > 60 and c.band.count("ztfg") >= 20 and c.band.count("ztfr") >= 20]
    events, rows = [], []
    for index in range(8):
        lensed = index % 2 == 0
        z_lens = float(rng.uniform(0.2, 0.3))
        event, row = simulated_event(rng, pool[index % len(pool)], stock=index + 1, ra=20.0 + 5 * index, dec=10.0,
                                     lensed=lensed, z_source=float(rng.uniform(0.8, 0.85)) if lensed else z_lens,
                                     z_lens=z_lens, magnification=float(rng.uniform(25, 30)) if lensed else 1.0)
        events.append(event)
        rows.append(row)
    catalog = write_galaxy_catalog(tmp_path / "galaxies.csv", rows)
    views = []
    for event in events:
        found = analyse(event.datapoints, catalog, name=event.name)
        results = {unit: found[unit] for unit in ("T2HostGalaxy", "T2SNCosmoFit", "T2LensedSNColours")}
        views.append(StockView(event.datapoints[0].stock, (event.name,), ("TEST",), (), event.datapoints,
                               found["state"].id, results))
    report = run_unit(T3LensedSNReport, views, output_dir=str(tmp_path / "report"), max_plots=3)
    lensed = {e.name for e in events if e.lensed}
    ranked = [row["stock"] for row in report["rows"]]
    assert set(ranked[:4]) == lensed, ranked  # every lensed event above every unlensed one
    assert report["candidates"] == sum(row["candidate"] for row in report["rows"]) >= 3
    assert all(row["stock"] in lensed for row in report["rows"] if row["candidate"])
    scores = [row["score"] for row in report["rows"]]
    assert scores == sorted(scores, reverse=True)
    assert scores == [ranking_score(v.results["T2LensedSNColours"]) for v in sorted(
        views, key=lambda v: ranked.index(v.name))]

    folder = tmp_path / "report"
    written = json.loads((folder / "report.json").read_text())["rows"]
    assert [row["stock"] for row in written] == ranked
    for row in written:  # provenance: the numbers are those of the stock's results on this state
        view = next(v for v in views if v.name == row["stock"])
        assert row["provenance"]["stock"] == view.id and row["provenance"]["state"] == view.latest_state is not None
        assert row["provenance"]["units"] == ["T2HostGalaxy", "T2LensedSNColours", "T2SNCosmoFit"]
        result = view.results["T2LensedSNColours"]
        assert row["cuts_passed"] == result["cuts_passed"] and row["g-r@t0"] == result["colours"]["t0"]["g-r"]["value"]
    plots = sorted(folder.glob("plots/*.png"))
    assert [p.stem for p in plots] == sorted(ranked[:3]) and all(p.stat().st_size > 1000 for p in plots)
    table = (folder / "report.md").read_text().splitlines()
    assert table[0].startswith("| rank | stock |") and len(table) == 2 + len(ranked)


def test_stocks_without_a_result_come_last_with_no_score() -> None:
    assert ranking_score(None) == float("-inf")
    report = run_unit(T3LensedSNReport, [stock_view([], {}, name="empty")])
    (row,) = report["rows"]
    assert row["score"] is None and row["candidate"] is False and row["rank"] == 1
