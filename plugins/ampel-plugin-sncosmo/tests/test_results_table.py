"""`api.results_table` on the quickstart's store (issue 18, item 11): T2SNCosmoFit runs in two
configurations there (a fitted redshift in ZTF_SN_CANDIDATES, the redshift of the host galaxy found by
T2HostGalaxy in SN2021RHU, both on ZTF21abiuvdk), and the table never mixes them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ampel_core import api
from ampel_core.jobs import load_job

QUICKSTART = Path(__file__).resolve().parents[3] / "docs" / "examples" / "ztf-quickstart.yml"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("ampel_ztf")
    pytest.importorskip("ampel_catalogs")
    from ampel_core.drivers import run_job
    from ampel_core.registry import get_registry

    if "T2SNCosmoFit" not in get_registry().units:
        pytest.skip("needs ampel-plugin-sncosmo installed")
    url = f"sqlite:///{tmp_path_factory.mktemp('quickstart') / 'q.db'}"
    here, catalogs = os.getcwd(), os.environ.get("AMPEL_CATALOGS")
    os.chdir(QUICKSTART.parents[2])  # the job names its alerts relative to the repository
    os.environ["AMPEL_CATALOGS"] = str(tmp_path_factory.mktemp("catalogs"))  # GWGC's import, not ./catalogs
    try:
        run_job(load_job(QUICKSTART, store=url))
    finally:
        os.chdir(here)
        if catalogs is None:
            os.environ.pop("AMPEL_CATALOGS")
        else:
            os.environ["AMPEL_CATALOGS"] = catalogs
    return api.open_store(url)


def rows(table: Any, name: str) -> list[dict[str, Any]]:
    return [dict(zip(table.colnames, row, strict=True)) for row in table if row["name"] == name]


def test_results_table_separates_configurations(store: Any) -> None:
    everything = api.results_table(store, "T2SNCosmoFit")
    assert {"channels", "trace", "config"} <= set(everything.colnames)
    fixed, fitted = sorted(rows(everything, "ZTF21abiuvdk"), key=lambda row: row["config"])  # fixed: from the host
    assert fitted["trace"] != fixed["trace"] and len(fitted["trace"]) == len(fixed["trace"]) == 64
    [host] = api.results_table(store, "T2HostGalaxy", channel="SN2021RHU")
    assert 'redshift.kind="dependency"' in fixed["config"] and 'redshift.unit="T2HostGalaxy"' in fixed["config"]
    assert 'catalog.file="docs/examples/data/catalogs/gwgc/gwgc_good.csv"' in fixed["config"]
    assert host["name"] == "NGC7814" and fixed["parameters.z"] == host["z"] == pytest.approx(0.002968, abs=2e-6)
    assert fitted["config"] == 'redshift.kind="fit", redshift.range=[0.01, 0.2]' and fitted["parameters.z"] != host["z"]
    assert (fixed["channels"], fitted["channels"]) == ("SN2021RHU", "ZTF_SN_CANDIDATES")
    assert len(everything) == len(set(zip(everything["stock"], everything["trace"], strict=True)))  # newest per stock and trace

    stock = store.find_stock("ZTF21abiuvdk")
    [rhu] = api.results_table(store, "T2SNCosmoFit", channel="SN2021RHU")
    assert rhu["result"] == fixed["result"] and rhu["link"] == store.channel_states(stock, "SN2021RHU")[-1][1]
    candidates = api.results_table(store, "T2SNCosmoFit", channel="ZTF_SN_CANDIDATES")
    assert len(candidates) == len(everything) - 1 and set(candidates["config"]) == {fitted["config"]}
    assert rows(candidates, "ZTF21abiuvdk")[0]["link"] == store.channel_states(stock, "ZTF_SN_CANDIDATES")[-1][1]

    [by_trace] = api.results_table(store, "T2SNCosmoFit", trace=fixed["trace"][:12])
    assert by_trace["result"] == fixed["result"]
    history = api.results_table(store, "T2SNCosmoFit", channel="SN2021RHU", latest_only=False)
    assert len(history) == sum(1 for _, r in store.results(unit="T2SNCosmoFit")
                               if r.trace == fixed["trace"] and r.status == "ok") > 1
    assert len(api.results_table(store, "T2SNCosmoFit", channel="NO_SUCH_CHANNEL")) == 0


def test_results_table_of_a_unit_shared_by_channels(store: Any) -> None:
    """T2LightCurveSummary has one configuration in both channels: one trace, results on states
    both channels saw belong to both."""
    summaries = api.results_table(store, "T2LightCurveSummary")
    assert len(set(summaries["trace"])) == 1 and set(summaries["config"]) == {"(none)"}
    assert len(summaries) == len(store.select_stocks(channel="ZTF_SN_CANDIDATES") + store.select_stocks(channel="SN2021RHU")) - 1
    [rhu] = api.results_table(store, "T2LightCurveSummary", channel="SN2021RHU")
    assert rhu["name"] == "ZTF21abiuvdk" and rhu["ndet"] == 34 and "SN2021RHU" in rhu["channels"].split(",")
