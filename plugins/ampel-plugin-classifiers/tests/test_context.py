"""Context features: what real ZTF and ELAsTiCC alerts say about an object's surroundings, read from
their datapoints, equal to a direct computation from the alert fields; missing context is NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ampel_classifiers.features import CONTEXT_NAMES, LightCurve, distance_modulus, feature_set, read_context
from ampel_classifiers.simulate import CLASSES, simulate_object
from ampel_core.models import DataPoint


def peak_mag(curve: LightCurve) -> float:
    """The AB magnitude of the brightest detection (zero point 25)."""
    return 25 - 2.5 * math.log10(float(curve.flux[curve.detected].max()))


def context_features(curve: LightCurve, survey: str) -> dict[str, float]:
    fs = feature_set("cheap", survey)
    values = dict(zip(fs.names, fs.extract(curve), strict=True))
    return {name: values[name] for name in CONTEXT_NAMES[survey]}


def test_ztf_context_is_the_latest_candidates_nearest_ps1_source(rhu_alerts, rhu_datapoints):
    latest = max(rhu_alerts, key=lambda alert: max(dp.time for dp in alert.datapoints))
    candidate = max((dp for dp in latest.datapoints if "sgscore1" in dp.extra), key=lambda dp: dp.time).extra
    curve = LightCurve.from_datapoints(rhu_datapoints)
    assert curve.context == {"ps1_sgscore": candidate["sgscore1"], "ps1_distance": candidate["distpsnr1"],
                             "ps1_mag": candidate["srmag1"]}
    assert candidate["sgscore1"] == 0.5 and candidate["srmag1"] == pytest.approx(15.51, abs=0.01)
    got = context_features(curve, "ztf")
    assert got == {"ps1_sgscore": candidate["sgscore1"], "ps1_distance": candidate["distpsnr1"],
                   "ps1_contrast": pytest.approx(peak_mag(curve) - candidate["srmag1"], abs=1e-9)}


def test_elasticc_context_is_the_host_galaxy_of_the_dia_object(elasticc_alerts):
    alert = max(elasticc_alerts, key=lambda a: len(a.datapoints))
    obj = next(dp.extra for dp in alert.datapoints if "hostgal_snsep" in dp.extra)
    curve = LightCurve.from_datapoints(alert.datapoints)
    assert obj["hostgal_z"] > 0 and obj["hostgal_snsep"] >= 0  # this object has a catalogued host
    assert curve.context == {"host_z": obj["hostgal_z"], "host_z_err": obj["hostgal_z_err"],
                             "host_sep": obj["hostgal_snsep"], "host_mag": obj["hostgal_mag_r"]}
    got = context_features(curve, "lsst")
    from astropy.cosmology import Planck18

    modulus = float(Planck18.distmod(obj["hostgal_z"]).value)
    assert distance_modulus(obj["hostgal_z"]) == pytest.approx(modulus, abs=0.01)
    assert got["host_z"] == obj["hostgal_z"] and got["host_sep"] == obj["hostgal_snsep"]
    assert got["host_contrast"] == pytest.approx(peak_mag(curve) - obj["hostgal_mag_r"], abs=1e-9)
    assert got["peak_abs_mag"] == pytest.approx(peak_mag(curve) - modulus, abs=0.01)


def test_every_elasticc_alert_gives_finite_or_nan_context(elasticc_alerts):
    for alert in elasticc_alerts:
        values = context_features(LightCurve.from_datapoints(alert.datapoints), "lsst")
        assert all(math.isnan(v) or math.isfinite(v) for v in values.values())


def test_the_schema_s_photometric_redshift_comes_before_its_hostgal_z():
    record = {"hostgal_zphot": 0.31, "hostgal_zphot_err": 0.02, "hostgal_z": 0.3, "hostgal_z_err": 0.001,
              "hostgal_snsep": 0.4, "hostgal_mag_r": 21.0}
    assert read_context(record) == {"host_z": 0.31, "host_z_err": 0.02, "host_sep": 0.4, "host_mag": 21.0}
    assert read_context({**record, "hostgal_zphot": -9.0})["host_z"] == 0.3


def point(id: int, time: float, extra: dict, band: str = "ztfr") -> DataPoint:
    return DataPoint(id=id, stock=1, time=time, band=band, flux=200.0, flux_err=10.0, extra=extra)


@pytest.mark.parametrize("extra", [
    {"sgscore1": -999.0, "distpsnr1": -999.0, "srmag1": -999.0},  # ZTF: no PS1 source within 30 arcsec
    {"sgscore1": None, "distpsnr1": float("nan"), "srmag1": "17"},  # nulls, NaN, a wrong type
    {"hostgal_snsep": -9.0, "hostgal_z": -9.0, "hostgal_z_err": -9.0, "hostgal_mag_r": 999.0},  # ELAsTiCC: hostless
    {},  # no context at all (e.g. a Rubin schema without host fields)
])
def test_missing_context_gives_nan_features_never_an_error(extra):
    curve = LightCurve.from_datapoints([point(1, 1.0, extra), point(2, 2.0, {})])
    assert curve.context == {}
    for survey in CONTEXT_NAMES:
        bands = {"ztf": "ztfr", "lsst": "lsstr"}[survey]
        same = LightCurve.from_datapoints([point(1, 1.0, extra, bands), point(2, 2.0, {}, bands)])
        assert all(math.isnan(v) for v in context_features(same, survey).values())


def test_context_of_a_light_curve_without_detections_is_nan_where_it_needs_the_peak():
    curve = LightCurve(np.array([1.0]), np.array([-5.0]), np.array([10.0]), np.array(["lsstr"]),
                       np.array([False]), context={"host_z": 0.2, "host_sep": 1.0, "host_mag": 20.0})
    got = context_features(curve, "lsst")
    assert got["host_z"] == 0.2 and got["host_sep"] == 1.0 and math.isnan(got["host_z_err"])
    assert math.isnan(got["host_contrast"]) and math.isnan(got["peak_abs_mag"])
    assert math.isnan(distance_modulus(0.0)) and math.isnan(distance_modulus(math.nan))


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_simulated_context_is_seeded_and_leaves_the_light_curve_unchanged(survey):
    for label in CLASSES:
        one, two = simulate_object(label, survey, (5, 1, 2)), simulate_object(label, survey, (5, 1, 2))
        assert one.lightcurve.context == two.lightcurve.context
        assert all(math.isfinite(v) for v in one.lightcurve.context.values())
        keys = {"ztf": {"ps1_sgscore", "ps1_distance", "ps1_mag"},
                "lsst": {"host_z", "host_z_err", "host_sep", "host_mag"}}[survey]
        assert set(one.lightcurve.context) in (keys, set())


def test_a_tenth_of_simulated_objects_have_no_context_and_the_rest_follow_their_class():
    from ampel_classifiers.simulate import CONTEXT_UNKNOWN, simulate_context

    rng = np.random.default_rng(1)
    ia = [simulate_context("SN Ia", "lsst", {"z": 0.1}, rng) for _ in range(2000)]  # hosts at r ~ 17.7: catalogued
    assert abs(sum(not c for c in ia) / len(ia) - CONTEXT_UNKNOWN) < 0.02
    known = [c for c in ia if c]
    assert abs(np.median([c["host_z"] for c in known]) - 0.1) < 0.01  # photo-z centred on the true redshift
    stars = [simulate_context("periodic variable", "ztf", {"mean_mag": 18.0}, rng) for _ in range(500)]
    scores = [c["ps1_sgscore"] for c in stars if c]
    assert np.mean(np.array(scores) > 0.5) > 0.7 and np.median([c["ps1_distance"] for c in stars if c]) < 0.5
