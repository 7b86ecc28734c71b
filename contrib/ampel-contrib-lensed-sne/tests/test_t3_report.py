"""The T3 react unit on stock views like those the T3 runtime builds, and its contract."""

import json
from pathlib import Path

from ampel_core.models import Alert
from ampel_core.testing import run_unit, stock_view
from ampel_core.unit_check import assert_unit_contract

from ampel_contrib_lensed_sne.t3_report import T3LensedSNReport

T2_UNIT, RESULT = "T2LensedSNRise", {"peak_mag": 12.4, "trend": "fading", "bands": {}}


def test_rows_ranked_by_detections_with_the_t2_result(sample_alerts: list[Alert], tmp_path: Path) -> None:
    views = [stock_view(alert.datapoints, {T2_UNIT: RESULT} if alert.stock_name == "ZTF18aamyaaj" else {},
                        name=alert.stock_name) for alert in sample_alerts if alert.stock_name != "ZTF21abiuvdk"]
    output = tmp_path / "report.json"
    report = run_unit(T3LensedSNReport, views, output=str(output))
    assert report["stocks"] == 4
    assert [row["stock"] for row in report["rows"]] == ["ZTF18aamyaaj", "ZTF18abefmzp", "ZTF18aazyhkf", "ZTF18abbwsvo"]
    first, last = report["rows"][0], report["rows"][-1]
    assert first["ndet"] == 22 and all(first[key] == RESULT[key] for key in T3LensedSNReport().result_keys)
    assert all(last[key] is None for key in T3LensedSNReport().result_keys)  # no result: None
    assert json.loads(output.read_text())["rows"] == report["rows"]


def test_contract_on_the_sample_alerts(sample_alerts: list[Alert]) -> None:
    assert_unit_contract(T3LensedSNReport, sample_alerts)
