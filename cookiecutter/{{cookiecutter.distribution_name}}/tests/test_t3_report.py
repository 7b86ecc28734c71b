"""The T3 react unit on stock views like those the T3 runtime builds, and its contract."""

import json
from pathlib import Path

from ampel_core.models import Alert
from ampel_core.testing import run_unit, stock_view
from ampel_core.unit_check import assert_unit_contract

from {{ cookiecutter.package_name }}.t3_report import T3{{ cookiecutter.unit_prefix }}Report

{% if cookiecutter.include_t2 == "yes" -%}
T2_UNIT, RESULT = "T2{{ cookiecutter.unit_prefix }}Rise", {"peak_mag": 12.4, "trend": "fading", "bands": {}}
{%- else -%}
T2_UNIT, RESULT = "T2LightCurveSummary", {"duration": 65.0, "ndet": 34}
{%- endif %}


def test_rows_ranked_by_detections_with_the_t2_result(sample_alerts: list[Alert], tmp_path: Path) -> None:
    views = [stock_view(alert.datapoints, {T2_UNIT: RESULT} if alert.stock_name == "ZTF18aamyaaj" else {},
                        name=alert.stock_name) for alert in sample_alerts if alert.stock_name != "ZTF21abiuvdk"]
    output = tmp_path / "report.json"
    report = run_unit(T3{{ cookiecutter.unit_prefix }}Report, views, output=str(output))
    assert report["stocks"] == 4
    assert [row["stock"] for row in report["rows"]] == ["ZTF18aamyaaj", "ZTF18abefmzp", "ZTF18aazyhkf", "ZTF18abbwsvo"]
    first, last = report["rows"][0], report["rows"][-1]
    assert first["ndet"] == 22 and all(first[key] == RESULT[key] for key in T3{{ cookiecutter.unit_prefix }}Report().result_keys)
    assert all(last[key] is None for key in T3{{ cookiecutter.unit_prefix }}Report().result_keys)  # no result: None
    assert json.loads(output.read_text())["rows"] == report["rows"]


def test_contract_on_the_sample_alerts(sample_alerts: list[Alert]) -> None:
    assert_unit_contract(T3{{ cookiecutter.unit_prefix }}Report, sample_alerts)
