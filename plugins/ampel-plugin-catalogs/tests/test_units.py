"""The catalogue units on real data: GWGC (shipped in docs/examples/data/catalogs) and the ZTF alerts
of the quickstart; GCVS and SPICY from ../shared/data for the veto filter."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.table import Table

from ampel_catalogs.catalog import CatalogError
from ampel_catalogs.hosts import T2HostGalaxy, directional_light_radius, redshift_at_distance
from ampel_catalogs.local import LocalBackend
from ampel_catalogs.units import CatalogVetoFilter, T2CatalogMatch, state_position
from ampel_core.models import Alert, DataPoint
from ampel_core.provenance import canonical_json
from ampel_core.registry import get_registry
from ampel_core.runtime.configured import configure
from ampel_core.unit_check import assert_unit_contract, read_alerts
from ampel_core.units import Reject, UnitConfigError, UnitRef, build_unit
from ampel_core.views import StateView

REPOSITORY = Path(__file__).resolve().parents[3]
GWGC = REPOSITORY / "docs" / "examples" / "data" / "catalogs" / "gwgc" / "gwgc_good.csv"
ZTF_ALERTS = REPOSITORY / "docs" / "examples" / "data" / "ztf"
SAMPLE = REPOSITORY / "tests" / "data" / "ztf_sample.jsonl"
GWGC_FILE = {"file": str(GWGC), "ra": "RAJ2000", "dec": "DEJ2000", "id": "NED_name", "keep": ["maj", "min", "PAHyp", "Dist"]}


@pytest.fixture(autouse=True)
def catalog_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $AMPEL_CATALOGS for each test: imports on first use land there."""
    root = tmp_path / "catalogs"
    monkeypatch.setenv("AMPEL_CATALOGS", str(root))
    return root


@pytest.fixture(scope="module")
def gwgc_table() -> Table:
    source = Table.read(GWGC, format="ascii.csv")
    table = Table({"id": source["NED_name"].astype(str), "ra": source["RAJ2000"], "dec": source["DEJ2000"]})
    for column in ("maj", "min", "PAHyp", "Dist"):
        table[column] = source[column]
    return table


@pytest.fixture(scope="module")
def ztf_alerts() -> list[Alert]:
    return read_alerts(ZTF_ALERTS, format="ztf", pattern="*.avro")


def state_of(alerts: list[Alert], name: str) -> StateView:
    """The state of every datapoint of a stock's alerts."""
    chosen = [a for a in alerts if a.stock_name == name]
    datapoints = {dp.id: dp for a in chosen for dp in a.datapoints}
    return StateView("state", chosen[0].stock, name, "TEST", tuple(datapoints.values()))


def at(ra: float, dec: float, count: int = 1, **extra: Any) -> StateView:
    """A state of ``count`` detections at one position (to place a transient where a test needs it)."""
    points = tuple(DataPoint(id=i + 1, stock=1, time=59000.0 + i, band="ztfg", flux=1000.0, flux_err=10.0,
                             extra={"ra": ra, "dec": dec, **extra}) for i in range(count))
    return StateView("state", 1, "TEST", "TEST", points)


def test_directional_light_radius() -> None:
    assert directional_light_radius(10, 4, 30, 30) == pytest.approx(10)  # along the major axis
    assert directional_light_radius(10, 4, 30, 120) == pytest.approx(4)  # along the minor axis
    assert directional_light_radius(10, 4, 30, 210) == pytest.approx(10)
    assert 4 < directional_light_radius(10, 4, 30, 75) < 10
    assert directional_light_radius(5, 5, 0, 123) == pytest.approx(5)


def test_redshift_at_distance() -> None:
    from astropy import units as u
    from astropy.cosmology import Planck18

    z = redshift_at_distance(13.18)
    assert z is not None and Planck18.luminosity_distance(z).to_value(u.Mpc) == pytest.approx(13.18, rel=1e-6)
    assert redshift_at_distance(0.0) is None and redshift_at_distance(float("nan")) is None


def test_host_of_sn2021rhu_is_ngc7814(ztf_alerts: list[Alert]) -> None:
    unit = build_unit(T2HostGalaxy, {"catalog": GWGC_FILE})
    result = unit.process(state_of(ztf_alerts, "ZTF21abiuvdk"))
    canonical_json(result)
    assert result["name"] == "NGC7814" and result["distance"] == 13.18 and result["catalog"] == "gwgc_good"
    assert result["separation"] == pytest.approx(5.5, abs=0.1)  # ../shared/data/README.md: about 5.5"
    assert result["z"] == pytest.approx(redshift_at_distance(13.18)) and result["z"] == pytest.approx(0.002968, abs=2e-6)
    # 5.5" at 13.18 Mpc: 0.35 kpc; NGC 7814 is 4.2' x 2.0', so the SN is well inside its light
    assert result["projected_distance"] == pytest.approx(math.radians(result["separation"] / 3600) * 13180
                                                         / (1 + result["z"]) ** 2, rel=1e-9)
    assert 0.05 < result["dlr"] < 0.1 and result["runner_up"] is None and result["candidates"] == 1
    assert result["position"]["method"] == "mean" and result["position"]["points"] == 34


def test_host_ranking_and_runner_up(gwgc_table: Table) -> None:
    """Between two real neighbouring GWGC galaxies: each rank decides, and the other is the runner-up."""
    from astropy.coordinates import SkyCoord

    coordinates = SkyCoord(gwgc_table["ra"], gwgc_table["dec"], unit="deg")
    first, second, _, _ = coordinates.search_around_sky(coordinates, 0.05 * coordinates.ra.unit)
    usable = (first < second) & np.isfinite(np.asarray(gwgc_table["maj"])[first]) & np.isfinite(
        np.asarray(gwgc_table["Dist"])[first]) & np.isfinite(np.asarray(gwgc_table["maj"])[second])
    a, b = gwgc_table[int(first[usable][0])], gwgc_table[int(second[usable][0])]
    on_a = at(float(a["ra"]) + 1e-4, float(a["dec"]))  # practically at a's centre
    result = build_unit(T2HostGalaxy, {"catalog": GWGC_FILE, "max_dlr": None, "search_radius": 400}).process(on_a)
    assert result["name"] == a["id"] and result["runner_up"]["name"] == b["id"] and result["candidates"] >= 2
    assert result["dlr"] < result["runner_up"]["dlr"]
    canonical_json(result)


def test_host_without_position_or_candidates(ztf_alerts: list[Alert]) -> None:
    unit = build_unit(T2HostGalaxy, {"catalog": GWGC_FILE})
    empty = unit.process(at(180.0, -89.9))  # nothing near the south pole
    assert empty["name"] is None and empty["z"] is None and empty["candidates"] == 0 and empty["position"]
    nowhere = unit.process(StateView("s", 1, "X", "C", (DataPoint(1, 1, 59000.0, "ztfg", 10.0, 1.0),)))
    assert nowhere["position"] is None and nowhere["name"] is None


def test_catalog_match_positions_and_modes(catalog_root: Path, gwgc_table: Table, ztf_alerts: list[Alert]) -> None:
    LocalBackend(catalog_root).create("gwgc", gwgc_table, origin=str(GWGC))
    rhu = state_of(ztf_alerts, "ZTF21abiuvdk")
    config = {"catalogs": [{"catalog": "gwgc", "radius": 10, "columns": ["Dist"]},
                           {"catalog": "gwgc", "name": "wide", "radius": 3600, "mode": "all"},
                           {"catalog": "gwgc", "name": "tight", "radius": 1}]}
    result = build_unit(T2CatalogMatch, config).process(rhu)
    canonical_json(result)
    assert result["gwgc"]["id"] == "NGC7814" and set(result["gwgc"]) == {"id", "ra", "dec", "separation", "Dist"}
    assert result["tight"] is None and result["wide"][0]["id"] == "NGC7814"
    assert [m["separation"] for m in result["wide"]] == sorted(m["separation"] for m in result["wide"])
    assert len(result["digests"]["gwgc"]) == 64 and result["position"]["points"] == 34

    latest = build_unit(T2CatalogMatch, {**config, "position": "latest"}).process(rhu)
    assert latest["gwgc"]["id"] == "NGC7814" and latest["position"]["method"] == "latest"
    per_point = build_unit(T2CatalogMatch, {**config, "position": "datapoints"}).process(rhu)
    assert len(per_point["gwgc"]) == len(rhu.detections) == 34
    assert all(match["id"] == "NGC7814" for match in per_point["gwgc"].values())
    assert set(per_point["tight"].values()) == {None}

    far = build_unit(T2CatalogMatch, config).process(at(266.4, -28.9))  # the Galactic centre: no galaxy within 1 deg
    assert far["gwgc"] is None and far["wide"] == [] and far["tight"] is None


def test_state_position_mean_is_weighted_and_wraps() -> None:
    points = (DataPoint(1, 1, 1.0, "g", 1.0, 1.0, extra={"ra": 359.9999, "dec": 0.0, "raErr": 1e-5, "decErr": 1e-5}),
              DataPoint(2, 1, 2.0, "g", 1.0, 1.0, extra={"ra": 0.0003, "dec": 0.0, "raErr": 1e-4, "decErr": 1e-4}))
    mean = state_position(points, "mean")
    assert mean is not None and mean["weighted"] and mean["points"] == 2
    expected = (-0.0001 * 100 + 0.0003 * 1) / 101  # weights 1/sigma^2: 100 : 1
    assert (mean["ra"] + 180) % 360 - 180 == pytest.approx(expected, abs=1e-9)
    assert state_position(points, "latest")["ra"] == pytest.approx(0.0003)  # type: ignore[index]


def test_changed_catalogue_changes_the_trace(catalog_root: Path, gwgc_table: Table, tmp_path: Path) -> None:
    registry = get_registry()
    backend = LocalBackend(catalog_root)
    backend.create("gwgc", gwgc_table)
    config = {"catalogs": [{"catalog": str(catalog_root / "gwgc"), "radius": 3.0}]}

    def trace(unit: str, unit_config: dict[str, Any]) -> str:
        return configure(registry, UnitRef(unit, unit_config)).trace.id

    before = trace("T2CatalogMatch", config)
    host_before = trace("T2HostGalaxy", {"catalog": str(catalog_root / "gwgc")})
    backend.create("gwgc", gwgc_table)
    assert trace("T2CatalogMatch", config) == before  # same content, same trace
    changed = gwgc_table.copy()
    changed["Dist"][np.flatnonzero(changed["id"] == "NGC7814")[0]] = 14.0  # one changed row
    backend.create("gwgc", changed)
    assert trace("T2CatalogMatch", config) != before
    assert trace("T2HostGalaxy", {"catalog": str(catalog_root / "gwgc")}) != host_before

    # a catalogue file: its content is the resource
    copy = tmp_path / "gwgc.csv"
    copy.write_bytes(GWGC.read_bytes())
    file_config = {"catalog": {**GWGC_FILE, "file": str(copy)}}
    first = trace("T2HostGalaxy", file_config)
    copy.write_text(GWGC.read_text().replace("NGC7814,0.8127,16.1455,4.162", "NGC7814,0.8127,16.1455,4.163"))
    assert trace("T2HostGalaxy", file_config) != first


def test_catalogue_file_is_imported_once(catalog_root: Path, ztf_alerts: list[Alert]) -> None:
    rhu = state_of(ztf_alerts, "ZTF21abiuvdk")
    build_unit(T2HostGalaxy, {"catalog": GWGC_FILE}).process(rhu)
    [imported] = (catalog_root / ".imported").iterdir()
    stamp = (imported / "catalog.parquet").stat().st_mtime_ns
    assert build_unit(T2HostGalaxy, {"catalog": GWGC_FILE}).process(rhu)["name"] == "NGC7814"
    assert [p.name for p in (catalog_root / ".imported").iterdir()] == [imported.name]
    assert (imported / "catalog.parquet").stat().st_mtime_ns == stamp
    assert LocalBackend(catalog_root).list() == []  # the cache is not among the named catalogues


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no catalogue 'nosuch'"):
        build_unit(T2HostGalaxy, {"catalog": "nosuch"}).resources()
    with pytest.raises(CatalogError, match="not found"):
        build_unit(T2HostGalaxy, {"catalog": {**GWGC_FILE, "file": str(tmp_path / "missing.csv")}}).resources()
    with pytest.raises(CatalogError, match="has no column Distance"):
        build_unit(T2HostGalaxy, {"catalog": {**GWGC_FILE, "keep": ["Distance"]}}).process(at(0.8127, 16.1455))
    with pytest.raises(UnitConfigError, match="used twice"):
        build_unit(T2CatalogMatch, {"catalogs": [{"catalog": "a"}, {"catalog": "x/a"}]})
    with pytest.raises(UnitConfigError, match="reserved"):
        build_unit(T2CatalogMatch, {"catalogs": [{"catalog": "position"}]})


def test_veto_filter_on_gwgc(ztf_alerts: list[Alert]) -> None:
    veto = build_unit(CatalogVetoFilter, {"catalogs": [{"catalog": GWGC_FILE, "name": "GWGC", "radius": 10}]})
    verdicts = {a.id: veto.process(a) for a in ztf_alerts}
    rhu = [verdicts[a.id] for a in ztf_alerts if a.stock_name == "ZTF21abiuvdk"]
    assert all(isinstance(v, Reject) and v.code == -1 and v.reason.startswith("GWGC source NGC7814 at 5.") for v in rhu)
    assert sum(v is True for v in verdicts.values()) > 0
    no_position = Alert(1, 1, "X", [DataPoint(1, 1, 59000.0, "ztfg", 10.0, 1.0)])
    assert veto.process(no_position) == Reject(-100, "the trigger has no position")


@pytest.mark.filterwarnings("ignore:No table::len")
def test_veto_filter_on_variable_stars_and_ysos(shared_data: Path, ztf_alerts: list[Alert]) -> None:
    catalogs = shared_data / "catalogs" / "fink-science"
    gcvs = Table.read(catalogs / "gcvs.parquet")
    star = gcvs[1000]
    veto = build_unit(CatalogVetoFilter, {"catalogs": [
        {"catalog": {"file": str(catalogs / "gcvs.parquet"), "ra": "ra", "dec": "dec", "keep": ["VarType"]},
         "name": "GCVS", "radius": 2.0},
        {"catalog": {"file": str(catalogs / "spicy.parquet"), "ra": "RAdeg", "dec": "DEdeg"}, "name": "SPICY",
         "radius": 2.0}]})
    on_star = Alert(1, 1, "X", [DataPoint(1, 1, 59000.0, "ztfg", 10.0, 1.0,
                                          extra={"ra": float(star["ra"]) + 0.2 / 3600, "dec": float(star["dec"])})])
    verdict = veto.process(on_star)
    assert isinstance(verdict, Reject) and verdict.code == -1 and verdict.reason.startswith("GCVS source 1000 at 0.")
    spicy = Table.read(catalogs / "spicy.parquet")
    on_yso = Alert(2, 1, "X", [DataPoint(1, 1, 59000.0, "ztfg", 10.0, 1.0,
                                         extra={"ra": float(spicy["RAdeg"][7]), "dec": float(spicy["DEdeg"][7])})])
    assert veto.process(on_yso) == Reject(-2, "SPICY source 7 at 0.00\" (veto radius 2\")")
    veto.process(ztf_alerts[0])  # open both before timing
    started = time.perf_counter()
    for _ in range(5):
        for alert in ztf_alerts:
            veto.process(alert)
    per_alert = (time.perf_counter() - started) / (5 * len(ztf_alerts))
    assert per_alert < 2e-3, f"{per_alert * 1e3:.2f} ms per alert"  # T0: well under a millisecond here


@pytest.mark.parametrize("unit, config", [
    ("T2HostGalaxy", {"catalog": GWGC_FILE}),
    ("T2CatalogMatch", {"catalogs": [{"catalog": GWGC_FILE, "radius": 60, "mode": "all"}], "position": "datapoints"}),
    ("T2CatalogMatch", {"catalogs": [{"catalog": GWGC_FILE, "radius": 10}], "position": "latest"}),
    ("CatalogVetoFilter", {"catalogs": [{"catalog": GWGC_FILE, "radius": 10}], "accept_without_position": True}),
])
def test_unit_contract(unit: str, config: dict[str, Any], ztf_alerts: list[Alert]) -> None:
    assert_unit_contract(unit, ztf_alerts, config)  # real ZTF alerts, with positions
    assert_unit_contract(unit, read_alerts(SAMPLE), config)  # the sample: datapoints without positions
