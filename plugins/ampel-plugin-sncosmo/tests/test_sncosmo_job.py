"""End to end: the 34 alerts of SN 2021rhu through the ZTF alert format into an SQLite store, T2
fits by the engine, a T3 table with the fit columns; and a changed model file giving a new trace."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

from ampel_sncosmo.datafiles import SHIPPED_DATA_DIR

pytestmark = pytest.mark.usefixtures("no_sncosmo_env")

RHU_FOLDER = "ztf_alerts/pitt-google/ZTF21abiuvdk_SN2021rhu"
FIT_CONFIG: dict[str, Any] = {"redshift": {"kind": "fixed", "value": 0.0035}, "bounds": {"x1": [-5, 5], "c": [-0.5, 1.0]}}
COLUMNS = {"stock": "name", "ndet": "T2LightCurveSummary.ndet", "success": "T2SNCosmoFit.success",
           "t0": "T2SNCosmoFit.parameters.t0", "x1": "T2SNCosmoFit.parameters.x1",
           "x1_err": "T2SNCosmoFit.errors.x1", "c": "T2SNCosmoFit.parameters.c", "chi2": "T2SNCosmoFit.chi2",
           "ndof": "T2SNCosmoFit.ndof"}


@pytest.fixture(scope="module")
def registry() -> Any:
    pytest.importorskip("ampel_ztf")
    from ampel_core.registry import get_registry

    registry = get_registry()
    if "ztf" not in registry.formats or "T2SNCosmoFit" not in registry.units:
        pytest.skip("needs ampel-plugin-ztf and ampel-plugin-sncosmo installed (pip install -e plugins/...)")
    return registry


def job(tmp_path: Path, alerts: Path, fit_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "sncosmo-e2e",
        "store": f"sqlite:///{tmp_path / 'ampel.db'}",
        "channels": [{"name": "SNIA", "t2": [{"unit": "T2LightCurveSummary"},
                                             {"unit": "T2SNCosmoFit", "config": fit_config}]}],
        "tasks": [
            {"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
             "format": {"name": "ztf", "config": {"cutouts": False}}},
            {"tier": 2},
            {"tier": 3, "select": {"channel": "SNIA"},
             "react": [{"unit": "T3TableReport", "config": {"columns": COLUMNS, "show": False,
                                                            "output": str(tmp_path / "table.csv")}}]},
        ],
    }


def fit_results(store: Any, name: str) -> tuple[str, list[Any]]:
    """The stock's latest state in channel SNIA and every T2SNCosmoFit result of the stock, oldest first."""
    stock = store.find_stock(name)
    latest = store.channel_states(stock, "SNIA")[-1][1]
    return latest, [r for _, r in store.results(stock=stock, unit="T2SNCosmoFit")]


def test_sn2021rhu_through_the_engine_equals_a_direct_fit(registry, shared_data, tmp_path, reference_fits, direct_fit):
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job
    from ampel_core.store import open_store

    summary = run_job(load_job(job(tmp_path, shared_data / RHU_FOLDER, FIT_CONFIG)), registry=registry)
    assert summary.status == "ok" and summary.alerts == 34 and summary.tickets_failed == 0

    store = open_store(f"sqlite:///{tmp_path / 'ampel.db'}")
    latest, results = fit_results(store, "ZTF21abiuvdk")
    assert all(r.status == "ok" for r in results)
    final = [r.body for r in results if r.link == latest]
    assert len(final) == 1
    body = final[0]
    state = store.get_state(latest)
    detections = [dp for dp in store.get_datapoints(state.stock, state.datapoints) if not dp.upper_limit]
    assert len(detections) == body["npoints"] == 34

    direct, _ = direct_fit(detections, shared_data / "sncosmo", ["t0", "x0", "x1", "c"], z=0.0035,
                           bounds={"x1": (-5, 5), "c": (-0.5, 1.0)})
    assert body["success"] is True and direct.success
    assert body["parameters"] == pytest.approx(dict(zip(direct.param_names, direct.parameters, strict=True)), rel=1e-9)
    assert body["errors"] == pytest.approx(dict(direct.errors), rel=1e-9)
    assert (body["chi2"], body["ndof"]) == (pytest.approx(direct.chisq, rel=1e-9), direct.ndof)
    # The reference was computed from the *last* copy of each detection (later alerts repeat it in
    # prv_candidates, rounded: magpsf 15.6623 for 15.662269...); the store keeps the first, the alert's
    # own candidate. That moves the fit by far less than its errors.
    reference = reference_fits["ZTF21abiuvdk"]
    for name, error in reference["errors"].items():
        assert abs(body["parameters"][name] - reference["params"][name]) < 0.01 * error, name
    assert body["chi2"] == pytest.approx(reference["chisq"], rel=1e-3)

    # earlier, shorter states: skipped while too short, fitted afterwards; never an error
    assert any(r.body["skipped"] for r in results) and sum(not r.body["skipped"] for r in results) >= 10

    with open(tmp_path / "table.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["stock"] == "ZTF21abiuvdk" and row["success"] == "True"
    assert float(row["x1"]) == pytest.approx(body["parameters"]["x1"], rel=1e-9)
    assert float(row["x1_err"]) == pytest.approx(body["errors"]["x1"], rel=1e-9)
    assert int(float(row["ndof"])) == 30


def test_a_changed_model_file_gives_results_of_another_trace(registry, shared_data, tmp_path):
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job
    from ampel_core.store import open_store

    data_dir = tmp_path / "sncosmo"
    shutil.copytree(SHIPPED_DATA_DIR / "models", data_dir / "models")
    alerts = tmp_path / "alerts"
    alerts.mkdir()
    for path in sorted((shared_data / RHU_FOLDER).glob("*.avro"))[-8:]:  # a shorter run: the last 8 alerts
        shutil.copy(path, alerts)
    document = job(tmp_path, alerts, {**FIT_CONFIG, "data_dir": str(data_dir)})

    run_job(load_job(document), registry=registry)
    store = open_store(f"sqlite:///{tmp_path / 'ampel.db'}")
    latest, before = fit_results(store, "ZTF21abiuvdk")
    (old_trace,) = {r.trace for r in before}

    model_file = data_dir / "models/salt2/salt2-4/salt2_color_correction.dat"
    model_file.chmod(0o644)
    text = model_file.read_text().rstrip()
    model_file.write_text(text[:-1] + str((int(text[-1]) + 1) % 10) + "\n")

    run_job(load_job(document), registry=registry)
    latest, after = fit_results(store, "ZTF21abiuvdk")
    new_results = after[len(before):]
    assert after[:len(before)] == before  # appended, never overwritten
    assert new_results and {r.trace for r in new_results} != {old_trace}
    (new_trace,) = {r.trace for r in new_results}
    old, new = store.get_trace(old_trace), store.get_trace(new_trace)
    changed = {name for name in old.resources if old.resources[name] != new.resources[name]}
    assert changed == {"models/salt2/salt2-4/salt2_color_correction.dat"}
    assert old.config == new.config and old.code == new.code

    final_old = next(r.body for r in before if r.link == latest)
    final_new = next(r.body for r in new_results if r.link == latest)
    assert final_old["parameters"] != final_new["parameters"]
