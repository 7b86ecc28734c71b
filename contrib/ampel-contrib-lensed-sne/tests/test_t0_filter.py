"""LensedSNFilter on AMPEL's shipped real ZTF alerts: what it accepts, why it rejects, the
catalogue veto, and its contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from ampel_catalogs.units import datapoint_position
from ampel_core.models import Alert
from ampel_core.testing import run_unit
from ampel_core.unit_check import assert_unit_contract
from ampel_core.units import Reject
from ampel_ztf.filters import ZTFDecentFilter

from ampel_contrib_lensed_sne.simulate import write_galaxy_catalog
from ampel_contrib_lensed_sne.t0_filter import LensedSNFilter


def positives(alert: Alert) -> tuple[int, int]:
    points = [dp for dp in alert.detections if dp.flux is not None and dp.flux > 0]
    return len(points), len({dp.band for dp in points})


def test_sn2021rhu_is_accepted_once_it_has_three_positive_detections_in_two_bands(sn2021rhu: list[Alert]) -> None:
    for alert in sn2021rhu:
        verdict = run_unit(LensedSNFilter, alert)
        count, bands = positives(alert)
        decent = ZTFDecentFilter(min_ndet=1, min_rb=0.3, min_gal_lat=10.0).process(alert)
        if decent is not True:
            assert verdict == decent  # the ZTF plugin's reason, unchanged
        elif count < 3 or bands < 2:
            assert verdict == Reject(-20, f"{count} positive detections in {bands} bands (need 3 in 2)")
        else:
            assert verdict is True
    assert run_unit(LensedSNFilter, sn2021rhu[0]) == Reject(-20, "1 positive detections in 1 bands (need 3 in 2)")
    assert sum(run_unit(LensedSNFilter, a) is True for a in sn2021rhu) >= 20


def test_negative_subtractions_and_the_galactic_plane_are_rejected(ztf_alerts: list[Alert]) -> None:
    verdicts = [(alert, run_unit(LensedSNFilter, alert)) for alert in ztf_alerts]
    negative = [v for a, v in verdicts if a.trigger.extra.get("isdiffpos") in ("f", "0")]
    assert negative and all(v == Reject(-1, "negative subtraction") for v in negative)
    assert any(isinstance(v, Reject) and v.code == -10 for _, v in verdicts)  # |b| < 10 deg
    for alert, verdict in verdicts:
        if verdict is True:
            count, bands = positives(alert)
            assert count >= 3 and bands >= 2 and alert.trigger.flux > 0


def test_a_known_variable_at_the_position_vetoes(sn2021rhu: list[Alert], tmp_path: Path, catalogs: Path) -> None:
    alert = sn2021rhu[10]
    ra, dec = datapoint_position(alert.trigger)  # type: ignore[misc]
    near = write_galaxy_catalog(tmp_path / "variables.csv", [
        {"NED_name": "V1", "RAJ2000": ra + 0.5 / 3600, "DEJ2000": dec, "maj": 0, "min": 0, "PAHyp": 0, "Dist": 0}])
    far = write_galaxy_catalog(tmp_path / "agn.csv", [
        {"NED_name": "Q1", "RAJ2000": ra + 0.1, "DEJ2000": dec, "maj": 0, "min": 0, "PAHyp": 0, "Dist": 0}])
    assert run_unit(LensedSNFilter, alert) is True
    assert run_unit(LensedSNFilter, alert, veto=[{"catalog": far, "name": "agn", "radius": 2.0}]) is True
    verdict = run_unit(LensedSNFilter, alert, veto=[{"catalog": far, "name": "agn", "radius": 2.0},
                                                    {"catalog": near, "name": "variables", "radius": 2.0}])
    assert isinstance(verdict, Reject) and verdict.code == -101
    assert verdict.reason.startswith("variables source V1 at 0.4")
    unit = LensedSNFilter(veto=[{"catalog": near, "name": "variables"}])
    assert set(unit.resources()) == {"catalog:variables"}  # the veto catalogue is in the trace


def test_contract_over_the_real_alerts(ztf_alerts: list[Alert]) -> None:
    report = assert_unit_contract(LensedSNFilter, ztf_alerts)
    assert report.ok


def test_a_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="min_positive_detections"):
        LensedSNFilter(min_positive_detections=0)
