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


def test_real_variable_star_catalogue_vetoes_exactly_the_alerts_on_its_stars(shared_data: Path, catalogs: Path) -> None:
    """GCVS (59,099 variable stars, ../shared/data) as the veto over every real ZTF alert there: an
    alert is vetoed if and only if a GCVS star lies within 3 arcsec of its trigger (brute force with
    astropy), and the reason names that star's distance."""
    import astropy.units as u
    import numpy as np
    from ampel_core.unit_check import read_alerts
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    gcvs_file = shared_data / "catalogs" / "fink-science" / "gcvs.parquet"
    alerts = read_alerts(shared_data / "ztf_alerts", format="ztf", pattern="*.avro")
    veto = [{"catalog": {"file": str(gcvs_file), "ra": "ra", "dec": "dec"}, "name": "gcvs", "radius": 3.0}]
    unit = LensedSNFilter(veto=veto, decent={"min_ndet": 1, "min_rb": 0.0, "min_gal_lat": 0.0})
    stars = Table.read(gcvs_file, include_names=["ra", "dec"])
    stars = SkyCoord(np.asarray(stars["ra"]), np.asarray(stars["dec"]), unit="deg")
    vetoed = 0
    for alert in alerts:
        verdict = run_unit(unit, alert)
        position = datapoint_position(alert.trigger)
        if position is None or (isinstance(verdict, Reject) and verdict.code > -100):
            continue  # rejected before the veto
        nearest = SkyCoord(*position, unit="deg").separation(stars).min().to_value(u.arcsec)
        if nearest <= 3.0 - 1e-6:
            assert isinstance(verdict, Reject) and verdict.code == -100, alert.stock_name
            assert f'at {nearest:.2f}"' in verdict.reason
            vetoed += 1
        elif nearest > 3.0 + 1e-6:
            assert verdict is True, (alert.stock_name, verdict)
    assert vetoed >= 1
