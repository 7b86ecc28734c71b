"""The ZTF quickstart (docs/examples/ztf-quickstart.yml) into a temporary store: SN 2021rhu
(ZTF21abiuvdk) gets NGC 7814 from the shipped GWGC as its host, and its SALT2 fit the redshift of
that host's distance (issue 19, item 7)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ampel_catalogs.hosts import redshift_at_distance
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.store import open_store

REPOSITORY = Path(__file__).resolve().parents[3]
QUICKSTART = REPOSITORY / "docs" / "examples" / "ztf-quickstart.yml"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("ampel_sncosmo")
    pytest.importorskip("ampel_ztf")
    folder = tmp_path_factory.mktemp("quickstart")
    here, catalogs = os.getcwd(), os.environ.get("AMPEL_CATALOGS")
    os.chdir(REPOSITORY)  # the job names its alerts and catalogue relative to the repository
    os.environ["AMPEL_CATALOGS"] = str(folder / "catalogs")
    try:
        run_job(load_job(QUICKSTART, store=f"sqlite:///{folder / 'q.db'}"))
    finally:
        os.chdir(here)
        if catalogs is None:
            os.environ.pop("AMPEL_CATALOGS")
        else:
            os.environ["AMPEL_CATALOGS"] = catalogs
    opened = open_store(f"sqlite:///{folder / 'q.db'}")
    assert len(list((folder / "catalogs" / ".imported").iterdir())) == 1  # GWGC, imported once
    yield opened
    opened.close()


def test_sn2021rhu_host_is_ngc7814(store: Any) -> None:
    stock = store.find_stock("ZTF21abiuvdk")
    last_state = store.channel_states(stock, "SN2021RHU")[-1][1]
    [host] = [r.body for _, r in store.results(stock=stock, unit="T2HostGalaxy") if r.link == last_state]
    assert host["name"] == "NGC7814" and host["distance"] == 13.18  # GWGC: NGC7814 at 13.18 Mpc
    assert host["separation"] == pytest.approx(5.5, abs=0.1) and host["dlr"] < 0.1
    assert host["z"] == redshift_at_distance(13.18) == pytest.approx(0.002968, abs=2e-6)
    assert host["catalog"] == "gwgc_good" and host["runner_up"] is None


def test_salt2_fit_uses_the_host_redshift(store: Any) -> None:
    stock = store.find_stock("ZTF21abiuvdk")
    last_state = store.channel_states(stock, "SN2021RHU")[-1][1]
    results = [r for _, r in store.results(stock=stock) if r.link == last_state and r.status == "ok"]
    [host] = [r.body for r in results if r.unit == "T2HostGalaxy"]
    [fit] = [r.body for r in results if r.unit == "T2SNCosmoFit" and r.body["redshift"]["origin"] == "dependency"]
    assert fit["success"] and fit["redshift"] == {"origin": "dependency", "value": host["z"], "unit": "T2HostGalaxy",
                                                  "key": "z"}
    parameters = fit["parameters"]
    assert parameters["z"] == host["z"]
    # Sensible for a SN Ia, and what the hand-written z = 0.0035 gave within the fit's errors
    # (t0 59410.50, x1 -1.55, c 0.135): the 16 % lower redshift moves x1 and c by less than 0.01.
    assert parameters["t0"] == pytest.approx(59410.5, abs=0.1)
    assert parameters["x1"] == pytest.approx(-1.558, abs=0.02) and parameters["c"] == pytest.approx(0.137, abs=0.005)
    assert fit["ndof"] == 30
