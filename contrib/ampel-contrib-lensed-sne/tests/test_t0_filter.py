"""The T0 filter on real alerts: what it accepts, why it rejects, and its contract."""

from ampel_core.models import Alert
from ampel_core.testing import run_unit
from ampel_core.unit_check import assert_unit_contract
from ampel_core.units import Reject

from ampel_contrib_lensed_sne.t0_filter import LensedSNFilter


def verdicts(alerts: list[Alert], **config: object) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for alert in alerts:
        found.setdefault(alert.stock_name, []).append(run_unit(LensedSNFilter, alert, **config))
    return found


def test_accepts_bright_objects_seen_often_enough(sample_alerts: list[Alert]) -> None:
    found = verdicts(sample_alerts)
    accepted = sorted(name for name, results in found.items() if True in results)
    assert accepted == ["ZTF18aamyaaj", "ZTF18abefmzp", "ZTF21abiuvdk"]
    # SN 2021rhu: the first alert has one detection; every later one passes
    assert found["ZTF21abiuvdk"][0] == Reject(-2, "1 detections < 3")
    assert found["ZTF21abiuvdk"][1:] == [True] * 5


def test_rejections_say_why(sample_alerts: list[Alert]) -> None:
    found = verdicts(sample_alerts)
    assert found["ZTF18abbwsvo"] == [Reject(-2, "2 detections < 3")]
    (faint,) = found["ZTF18aazyhkf"]
    assert isinstance(faint, Reject) and faint.code == -3 and "fainter than 19.0" in faint.reason


def test_config_changes_the_verdict(sample_alerts: list[Alert]) -> None:
    found = verdicts(sample_alerts, max_mag=19.5, min_detections=1)
    assert all(result is True for results in found.values() for result in results)


def test_contract_on_the_sample_alerts(sample_alerts: list[Alert]) -> None:
    report = assert_unit_contract(LensedSNFilter, sample_alerts)
    print(report.format())  # pytest -s shows the time per call
