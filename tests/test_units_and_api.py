"""Unit base classes, the built-in units, the pytest fixtures of ampel_core.testing and the
notebook API, on the real sample alerts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from ampel_core import api
from ampel_core.alerts import AlertDecodeError, JsonAlertFormat
from ampel_core.builtin_units import MinDetectionsFilter, T2LightCurveSummary, T3TableReport
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.testing import run_unit, state_view, stock_view
from ampel_core.units import PointUnit, Reject, UnitConfigError, build_unit, config_schema


def sn2021rhu(sample_alerts: Path):
    alerts = JsonAlertFormat().decode(sample_alerts.read_bytes(), str(sample_alerts))
    return [a for a in alerts if a.stock_name == "ZTF21abiuvdk"]


def final_state(sample_alerts: Path) -> list:
    """Every datapoint the 34 alerts carry (as the final state of an accepting channel)."""
    return list({dp.id: dp for alert in sn2021rhu(sample_alerts) for dp in alert.datapoints}.values())


def test_json_format_decodes_and_rejects_clearly(sample_alerts: Path) -> None:
    alerts = sn2021rhu(sample_alerts)
    assert len(alerts) == 34 and alerts[-1].trigger.band in ("ztfg", "ztfr")
    assert alerts[-1].trigger.flux > 0 and alerts[-1].trigger.zp == 25.0
    with pytest.raises(AlertDecodeError, match=r"x\.json line 2: missing field: 'datapoints'"):
        JsonAlertFormat().decode(b'{"stock": "a", "datapoints": [{"time": 1, "band": "g"}]}\n{"stock": "b"}\n', "x.json")
    with pytest.raises(AlertDecodeError, match="no alert in 0 bytes"):
        JsonAlertFormat().decode(b"", "empty.json")


def test_light_curve_summary_on_the_final_state_of_sn2021rhu(sample_alerts: Path) -> None:
    final = final_state(sample_alerts)
    result = run_unit(T2LightCurveSummary, final)
    detections = [dp for dp in final if not dp.upper_limit]
    assert result["ndet"] == len(detections) == 34 and result["nlim"] == len(final) - 34
    assert result["first_detection"] == min(dp.time for dp in detections)
    assert math.isclose(result["duration"], max(dp.time for dp in detections) - min(dp.time for dp in detections))
    for band, entry in result["bands"].items():
        brightest = max((dp for dp in detections if dp.band == band), key=lambda dp: dp.flux)
        assert entry["peak_mag"] == brightest.mag and entry["peak_time"] == brightest.time
    assert result["bands"]["ztfg"]["peak_mag"] < 13.0  # SN 2021rhu peaked near 12.5 mag


def test_filter_verdicts_and_config_errors(sample_alerts: Path) -> None:
    alert = sn2021rhu(sample_alerts)[0]
    assert run_unit(MinDetectionsFilter, alert) is True
    verdict = run_unit(MinDetectionsFilter, alert, min_detections=50)
    assert isinstance(verdict, Reject) and verdict.code == -1 and "< 50" in verdict.reason
    with pytest.raises(UnitConfigError) as error:
        build_unit(MinDetectionsFilter, {"min_detections": "many", "colour": "red"})
    message = str(error.value)
    assert message.startswith("unit 'MinDetectionsFilter': invalid config:")
    assert "field 'min_detections'" in message and "field 'colour'" in message


def test_config_schema_has_defaults_and_descriptions() -> None:
    schema = config_schema(T3TableReport)
    assert schema["properties"]["max_rows"]["default"] == 50
    assert "Column name" in schema["properties"]["columns"]["description"]


class T2NotJson(PointUnit):
    def process(self, datapoint):
        return {"when": object()}


def test_run_unit_refuses_output_that_is_not_json(sample_alerts: Path) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_unit(T2NotJson, sn2021rhu(sample_alerts)[0].trigger)


def test_registered_test_units_build_into_the_config(register_units, ampel_config) -> None:
    register_units(T2NotJson)
    config = yaml.safe_load(ampel_config().read_text())
    assert config["units"]["T2NotJson"]["distribution"] == "local-test"
    assert config["units"]["T2NotJson"]["kind"] == "point"


def test_views_give_sncosmo_ready_tables(sample_alerts: Path) -> None:
    final = final_state(sample_alerts)
    table = state_view(final).table()
    assert table.colnames == ["id", "time", "band", "flux", "flux_err", "zp", "zpsys", "mag", "mag_err", "upper_limit"]
    assert len(table) == 34 and list(table["time"]) == sorted(table["time"])
    with_limits = stock_view(final).table(upper_limits=True)
    assert len(with_limits) == len(final) and math.isnan(with_limits[with_limits["upper_limit"]]["flux"][0])


def test_notebook_api(tmp_path: Path, sample_alerts: Path, ampel_manager) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_job(load_job({"store": url, "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]}],
                      "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(sample_alerts)]}},
                                 "format": {"name": "json"}}, {"tier": 2}]}))
    store = api.open_store(url)
    curve = api.light_curve(store, "ZTF21abiuvdk", upper_limits=False)
    assert len(curve) == 34 and set(curve["band"]) == {"ztfg", "ztfr"}
    results = api.results_table(store, "T2LightCurveSummary")
    assert len(results) == len(store.select_stocks()) and "bands.ztfg.ndet" in results.colnames
    assert dict(zip(results["name"], results["ndet"], strict=True))["ZTF21abiuvdk"] == 34
    figure = api.plot_light_curve(store, "ZTF21abiuvdk")
    assert figure.get_size_inches().tolist() == [8.0, 5.0]
