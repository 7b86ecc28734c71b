"""The T2 unit on the light curve of SN 2021rhu as it grew, alert by alert, and its contract."""

import pytest
from ampel_core.models import Alert, DataPoint
from ampel_core.testing import run_unit
from ampel_core.unit_check import assert_unit_contract

from ampel_contrib_lensed_sne.t2_rise import T2LensedSNRise


def states(alerts: list[Alert]) -> list[list[DataPoint]]:
    """The datapoints a stock has after each alert (as AMPEL builds states at ingestion)."""
    known: dict[int, DataPoint] = {}
    found = []
    for alert in alerts:
        known.update({dp.id: dp for dp in alert.datapoints if dp.id not in known})
        found.append(list(known.values()))
    return found


def test_sn2021rhu_rises_to_its_peak_then_fades(sn2021rhu: list[Alert]) -> None:
    results = [run_unit(T2LensedSNRise, state) for state in states(sn2021rhu)]
    assert [result["trend"] for result in results] == [None, "rising", "rising", "rising", "fading", "fading"]
    assert results[0]["ndet"] == 1 and results[0]["bands"] == {"ztfr": {"ndet": 1, "slope": None}}
    peak = results[-1]
    assert peak["peak_band"] == "ztfg" and peak["peak_mag"] == pytest.approx(12.4256, abs=1e-4)
    assert peak["peak_time"] == pytest.approx(59411.4148, abs=1e-4)
    assert peak["bands"]["ztfg"]["slope"] == pytest.approx(0.0205, abs=1e-3)  # mag/day, fading


def test_a_longer_window_and_rate_threshold(sn2021rhu: list[Alert]) -> None:
    last = states(sn2021rhu)[-1]
    assert run_unit(T2LensedSNRise, last, min_rate=0.1)["trend"] == "flat"
    assert run_unit(T2LensedSNRise, last, window=100.0)["bands"]["ztfg"]["ndet"] == 18


def test_upper_limits_only_give_no_peak(sn2021rhu: list[Alert]) -> None:
    limits = [dp for dp in sn2021rhu[0].datapoints if dp.upper_limit]
    result = run_unit(T2LensedSNRise, limits)
    assert result == {"ndet": 0, "peak_mag": None, "peak_time": None, "peak_band": None, "bands": {}, "trend": None}


def test_contract_on_the_sample_alerts(sample_alerts: list[Alert]) -> None:
    report = assert_unit_contract(T2LensedSNRise, sample_alerts)
    print(report.format())
