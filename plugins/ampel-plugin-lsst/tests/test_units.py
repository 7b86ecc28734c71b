"""SimpleLSSTFilter and LSSTPhotometryCombiner on decoded sample alerts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ampel_core.models import Alert
from ampel_core.testing import run_unit
from ampel_core.units import Reject, UnitConfigError, build_unit
from ampel_lsst.combiners import LSSTPhotometryCombiner
from ampel_lsst.filters import SimpleLSSTFilter, signal_to_noise
from ampel_lsst.format import LSSTAlertFormat

DATA = Path(__file__).parent / "data"


def elasticc_alerts() -> list[Alert]:
    """3 alerts of one object: 1, 3 and 2 detections (r; r r i; r r), the later ones with forced photometry."""
    return LSSTAlertFormat().decode((DATA / "ampel-lsst_11290844.avro").read_bytes(), "elasticc")


def rubin_alert() -> Alert:
    return LSSTAlertFormat().decode((DATA / "lsst.v7_4.fakeAlert.avro").read_bytes(), "rubin")[0]


def code(verdict: bool | int | Reject | None) -> int:
    return verdict.code if isinstance(verdict, Reject) else int(bool(verdict))


def with_trigger(alert: Alert, **changes: object) -> Alert:
    trigger = dataclasses.replace(alert.trigger, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(alert, datapoints=[trigger, *alert.datapoints[1:]])


def test_defaults_accept_everything() -> None:
    assert all(run_unit(SimpleLSSTFilter, alert) is True for alert in [*elasticc_alerts(), rubin_alert()])


def test_min_detections_and_bands_count_only_dia_sources() -> None:
    first, second, third = elasticc_alerts()
    assert [code(run_unit(SimpleLSSTFilter, a, min_detections=3)) for a in (first, second, third)] == [-5, 1, -5]
    assert [code(run_unit(SimpleLSSTFilter, a, min_bands=2)) for a in (first, second, third)] == [-6, 1, -6]
    assert len(second.datapoints) > 20  # forced photometry and the diaObject are there, but not counted


def test_time_span_of_the_detection_history() -> None:
    _, second, _ = elasticc_alerts()  # detections at 60960.13 .. 60966.18
    assert code(run_unit(SimpleLSSTFilter, second, min_time_span=7)) == -7
    assert run_unit(SimpleLSSTFilter, second, min_time_span=5, max_time_span=7) is True
    assert code(run_unit(SimpleLSSTFilter, second, max_time_span=5)) == -7


def test_snr_uses_the_survey_snr_then_flux_over_error() -> None:
    first = elasticc_alerts()[0]
    assert signal_to_noise(first.trigger) == pytest.approx(16.19, abs=0.01)
    assert run_unit(SimpleLSSTFilter, first, min_snr=16) is True
    assert code(run_unit(SimpleLSSTFilter, first, min_snr=17)) == -3
    no_snr = with_trigger(first, extra={**first.trigger.extra, "snr": None})
    assert signal_to_noise(no_snr.trigger) == pytest.approx(first.trigger.flux / first.trigger.flux_err)


def test_reliability_is_skipped_where_the_schema_has_none_unless_required() -> None:
    elasticc, rubin = elasticc_alerts()[0], rubin_alert()
    assert run_unit(SimpleLSSTFilter, elasticc, min_reliability=0.9) is True
    assert code(run_unit(SimpleLSSTFilter, elasticc, min_reliability=0.9, require_reliability=True)) == -2
    reliable = with_trigger(rubin, extra={**rubin.trigger.extra, "reliability": 0.95})
    assert run_unit(SimpleLSSTFilter, reliable, min_reliability=0.9) is True
    assert code(run_unit(SimpleLSSTFilter, reliable, min_reliability=0.99)) == -1


def test_negative_flux_and_solar_system() -> None:
    first = elasticc_alerts()[0]
    assert code(run_unit(SimpleLSSTFilter, with_trigger(first, flux=-5.0), positive_only=True)) == -4
    assert run_unit(SimpleLSSTFilter, with_trigger(first, flux=-5.0)) is True
    rubin = rubin_alert()  # 7.4 fake alert: associated with ssObject 5364546
    assert code(run_unit(SimpleLSSTFilter, rubin, reject_solar_system=True)) == -8
    assert run_unit(SimpleLSSTFilter, first, reject_solar_system=True) is True


def test_config_is_validated() -> None:
    with pytest.raises(UnitConfigError, match="min_reliability"):
        build_unit(SimpleLSSTFilter, {"min_reliability": 2})
    with pytest.raises(UnitConfigError, match="min_snrr"):
        build_unit(SimpleLSSTFilter, {"min_snrr": 5})


def test_combiner_selects_kinds() -> None:
    points = elasticc_alerts()[1].datapoints
    kinds = {dp.id: next(t for t in dp.tags if t in ("LSST_DP", "LSST_FP", "LSST_OBJ")) for dp in points}

    def chosen(**config: object) -> list[str]:
        return sorted(kinds[i] for i in run_unit(LSSTPhotometryCombiner, points, **config))

    assert chosen() == sorted(k for k in kinds.values() if k != "LSST_OBJ")
    assert set(chosen(forced=False)) == {"LSST_DP"}
    assert set(chosen(detections=False)) == {"LSST_FP"}
    assert chosen(forced=False, dia_object="all") == ["LSST_DP"] * 3 + ["LSST_OBJ"]
    everything = [dp for alert in elasticc_alerts() for dp in alert.datapoints]
    latest = run_unit(LSSTPhotometryCombiner, everything, detections=False, forced=False, dia_object="latest")
    objects = [dp for dp in everything if "LSST_OBJ" in dp.tags]
    assert latest == [max(objects, key=lambda dp: (dp.time, dp.id)).id]
