"""Features: equal to direct ``light-curve`` calls on each band's points; colours and whole-light-curve
features from their definitions; light curves from real ZTF and ELAsTiCC datapoints."""

from __future__ import annotations

import math

import light_curve as lc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_classifiers.features import (
    FEATURE_VERSIONS, LATEST_COLOR_WINDOW, LSST_BANDS, SURVEYS, ZTF_BANDS, FeatureError, LightCurve, feature_set,
    normalisation,
)
from ampel_core.models import DataPoint

# The single-band extractors behind each set, written out again here (not taken from the module).
CHEAP = [lc.Amplitude(), lc.StandardDeviation(), lc.WeightedMean(), lc.Skew(), lc.Kurtosis(), lc.ReducedChi2(),
         lc.LinearFit(), lc.BeyondNStd(1.0), lc.MaximumSlope(), lc.Cusum(), lc.EtaE(), lc.InterPercentileRange(0.1),
         lc.ObservationCount()]
FULL = [*CHEAP, lc.BazinFit("lmsder"), lc.StetsonK(), lc.OtsuSplit(), lc.Median(), lc.PercentAmplitude()]


def direct(extractors: list, lc_: LightCurve, band: str) -> dict[str, float]:
    """light-curve called directly on one band's points (time relative to the first detection, fluxes
    divided by the largest detected flux)."""
    keep = lc_.band == band
    t0 = lc_.time[lc_.detected][0] if lc_.detected.any() else (lc_.time[0] if len(lc_.time) else 0.0)
    scale = normalisation(lc_.flux, lc_.flux_err, lc_.detected)
    extractor = lc.Extractor(*extractors)
    values = extractor(lc_.time[keep] - t0, lc_.flux[keep] / scale, lc_.flux_err[keep] / scale, fill_value=np.nan)
    return {f"{name}_{band}": float(v) for name, v in zip(extractor.names, values, strict=True)}


def assert_same(expected: float, got: float, rel: float = 1e-9) -> None:
    if not math.isfinite(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=rel, abs=1e-9)


def light_curves(bands: tuple[str, ...], min_points: int = 0, max_points: int = 30) -> st.SearchStrategy[LightCurve]:
    """Light curves with distinct times, fluxes of either sign, positive errors, some non-detections."""

    @st.composite
    def build(draw: st.DrawFn) -> LightCurve:
        n = draw(st.integers(min_points, max_points))
        times = draw(st.lists(st.floats(58000, 58400, allow_nan=False), min_size=n, max_size=n, unique=True))
        flux = draw(st.lists(st.floats(-1e4, 1e5, allow_nan=False), min_size=n, max_size=n))
        err = draw(st.lists(st.floats(0.1, 1e3, allow_nan=False), min_size=n, max_size=n))
        band = draw(st.lists(st.sampled_from(bands), min_size=n, max_size=n))
        detected = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        return LightCurve(np.array(times, dtype=float), np.array(flux, dtype=float), np.array(err, dtype=float),
                          np.array(band, dtype=str), np.array(detected, dtype=bool))

    return build()


@settings(max_examples=60, deadline=None)
@given(light_curves(ZTF_BANDS))
def test_cheap_ztf_features_equal_direct_light_curve_calls_per_band(curve):
    fs = feature_set("cheap", "ztf")
    got = dict(zip(fs.names, fs.extract(curve), strict=True))
    order = np.argsort(curve.time)
    ordered = LightCurve(curve.time[order], curve.flux[order], curve.flux_err[order], curve.band[order],
                         curve.detected[order])
    for band in ZTF_BANDS:
        for name, value in direct(CHEAP, ordered, band).items():
            assert_same(value, got[name])


@settings(max_examples=30, deadline=None)
@given(light_curves(LSST_BANDS, max_points=60))
def test_cheap_lsst_features_equal_direct_light_curve_calls_per_band(curve):
    fs = feature_set("cheap", "lsst")
    got = dict(zip(fs.names, fs.extract(curve), strict=True))
    order = np.argsort(curve.time)
    ordered = LightCurve(*(a[order] for a in (curve.time, curve.flux, curve.flux_err, curve.band, curve.detected)))
    for band in LSST_BANDS:
        for name, value in direct(CHEAP, ordered, band).items():
            assert_same(value, got[name])


def test_full_features_equal_direct_calls_on_a_real_light_curve(rhu_datapoints):
    curve = LightCurve.from_datapoints(rhu_datapoints)
    fs = feature_set("full", "ztf")
    got = dict(zip(fs.names, fs.extract(curve), strict=True))
    for band in ("ztfg", "ztfr"):
        expected = direct(FULL, curve, band)
        assert not math.isnan(expected[f"bazin_fit_amplitude_{band}"])  # the fit ran on the SN's light curve
        for name, value in expected.items():
            assert_same(value, got[name], rel=1e-6)
    best = max(("ztfg", "ztfr"), key=lambda b: (curve.band == b).sum())  # the band with the most points
    periodogram, keep, t0 = lc.Periodogram(peaks=1), curve.band == best, curve.time[curve.detected][0]
    scale = curve.flux[curve.detected].max()
    values = periodogram(curve.time[keep] - t0, curve.flux[keep] / scale, curve.flux_err[keep] / scale,
                         fill_value=np.nan)
    for name, value in zip(periodogram.names, values, strict=True):
        assert_same(float(value), got[name], rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(light_curves(ZTF_BANDS, min_points=1))
def test_colours_and_whole_light_curve_features_follow_their_definitions(curve):
    fs = feature_set("cheap", "ztf")
    got = dict(zip(fs.names, fs.extract(curve), strict=True))
    mag = lambda f: 25 - 2.5 * math.log10(f) if f > 0 else math.nan  # noqa: E731
    det = np.flatnonzero(curve.detected)
    assert got["n_points"] == len(curve.time) and got["n_detections"] == len(det) == curve.n_detections
    assert_same(float(np.max(curve.flux / curve.flux_err)), got["max_snr"])
    if len(det):
        t_det = curve.time[det]
        t_peak = curve.time[det][curve.flux[det] == curve.flux[det].max()].min()  # the earliest of equal peaks
        assert_same(t_det.max() - t_det.min(), got["detection_duration"])
        assert_same(t_peak - t_det.min(), got["rise_time"])
        assert_same(t_det.max() - t_peak, got["fall_time"])
    else:
        assert math.isnan(got["rise_time"]) and math.isnan(got["detection_duration"])
    peak = {b: float(curve.flux[curve.band == b].max()) if (curve.band == b).any() else math.nan for b in ZTF_BANDS}
    top = normalisation(curve.flux, curve.flux_err, curve.detected)
    for b in ZTF_BANDS:
        assert_same(mag(peak[b]) - mag(top), got[f"peak_rel_mag_{b}"])
    for a, b in (("ztfg", "ztfr"), ("ztfr", "ztfi")):
        assert_same(mag(peak[a]) - mag(peak[b]), got[f"color_peak_{a}_{b}"])
        means = [got[f"weighted_mean_{x}"] for x in (a, b)]
        assert_same(mag(means[0]) - mag(means[1]) if not any(map(math.isnan, means)) else math.nan,
                    got[f"color_mean_{a}_{b}"])
        in_a = np.flatnonzero(curve.detected & (curve.band == a))
        in_b = np.flatnonzero(curve.detected & (curve.band == b))
        expected = math.nan
        if len(in_a) and len(in_b):
            latest = in_a[np.argmax(curve.time[in_a])]
            nearest = in_b[np.argmin(np.abs(curve.time[in_b] - curve.time[latest]))]
            if abs(curve.time[nearest] - curve.time[latest]) <= LATEST_COLOR_WINDOW:
                expected = mag(curve.flux[latest]) - mag(curve.flux[nearest])
        assert_same(expected, got[f"color_latest_{a}_{b}"])


@settings(max_examples=40, deadline=None)
@given(light_curves(LSST_BANDS), st.randoms(use_true_random=False))
def test_features_do_not_depend_on_the_order_of_the_points(curve, random):
    fs = feature_set("cheap", "lsst")
    order = list(range(len(curve.time)))
    random.shuffle(order)
    shuffled = LightCurve(*(a[order] for a in (curve.time, curve.flux, curve.flux_err, curve.band, curve.detected)))
    np.testing.assert_array_equal(fs.extract(curve), fs.extract(shuffled))
    many = fs.extract_many([curve, shuffled])
    np.testing.assert_array_equal(many[0], fs.extract(curve))
    assert many.shape == (2, len(fs.names)) and many.dtype == np.float64


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["ztf", "lsst"]), st.data())
def test_full_features_of_any_light_curve_are_floats_or_nan(survey, data):
    """Repeated times, single points, one band, huge and negative fluxes: never an exception."""
    bands = SURVEYS[survey]
    n = data.draw(st.integers(0, 12))
    times = data.draw(st.lists(st.sampled_from([59000.0, 59000.5, 59003.0, 59010.0]), min_size=n, max_size=n))
    flux = data.draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n))
    err = data.draw(st.lists(st.floats(1e-3, 1e4, allow_nan=False), min_size=n, max_size=n))
    band = data.draw(st.lists(st.sampled_from(bands[:2]), min_size=n, max_size=n))
    curve = LightCurve(np.array(times, dtype=float), np.array(flux, dtype=float), np.array(err, dtype=float),
                       np.array(band, dtype=str), np.array([f > 0 for f in flux], dtype=bool))
    values = feature_set("full", survey).extract(curve)
    assert values.shape == (len(feature_set("full", survey).names),) and not np.isinf(values).any()


def test_feature_sets_are_named_versioned_and_digested():
    sets = {(name, survey): feature_set(name, survey) for name in ("cheap", "full") for survey in SURVEYS}
    assert len({fs.digest for fs in sets.values()}) == 4
    for (name, survey), fs in sets.items():
        assert (fs.name, fs.survey, fs.version, fs.bands) == (name, survey, FEATURE_VERSIONS[name], SURVEYS[survey])
        assert len(set(fs.names)) == len(fs.names) and len(fs.digest) == 64
        assert all(f"amplitude_{b}" in fs.names and f"peak_rel_mag_{b}" in fs.names for b in fs.bands)
    assert set(sets["cheap", "ztf"].names) < set(sets["full", "ztf"].names)
    with pytest.raises(FeatureError, match="feature set 'fancy': unknown; choose one of cheap, full"):
        feature_set("fancy", "ztf")
    with pytest.raises(FeatureError, match="survey 'ps1'"):
        feature_set("cheap", "ps1")


def test_a_band_of_another_survey_is_an_error():
    curve = LightCurve(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.ones(2), np.array(["ztfg", "lsstr"]),
                       np.ones(2, dtype=bool))
    with pytest.raises(FeatureError, match=r"band\(s\) lsstr not in ztfg, ztfg, ztfi|band\(s\) lsstr not in"):
        feature_set("cheap", "ztf").extract(curve)
    with pytest.raises(FeatureError, match="arrays of different lengths"):
        LightCurve(np.array([1.0]), np.array([1.0, 2.0]), np.ones(2), np.array(["ztfg"] * 2), np.ones(2, dtype=bool))


def test_an_empty_light_curve_gives_nan_features_and_zero_counts():
    empty = LightCurve.from_datapoints([])
    values = dict(zip(feature_set("full", "lsst").names, feature_set("full", "lsst").extract(empty), strict=True))
    assert values.pop("n_points") == values.pop("n_detections") == values.pop("n_bands") == 0
    assert all(values.pop(f"observation_count_{b}") == 0 for b in LSST_BANDS)
    assert all(math.isnan(v) for v in values.values())


def test_light_curve_of_sn2021rhu_from_its_ztf_alerts(rhu_datapoints):
    """Detections at zp 25 (ZTF's own), upper limits as limits, negative subtractions kept."""
    curve = LightCurve.from_datapoints(rhu_datapoints)
    detections = sorted((dp for dp in rhu_datapoints if dp.is_detection), key=lambda dp: (dp.time, dp.id))
    assert any(dp.upper_limit for dp in rhu_datapoints)
    assert len(curve.time) == curve.n_detections == len(detections) > 30
    np.testing.assert_array_equal(curve.time, [dp.time for dp in detections])
    np.testing.assert_allclose(curve.flux, [dp.flux * 10 ** (-0.4 * (dp.zp - 25)) for dp in detections], rtol=1e-12)
    assert set(curve.band) == {"ztfg", "ztfr"}
    limits = [dp for dp in rhu_datapoints if dp.upper_limit]
    np.testing.assert_array_equal(curve.limit_time, sorted(dp.time for dp in limits))
    first = curve.time[0]
    last_limit = max((dp for dp in limits if dp.time < first), key=lambda dp: dp.time)
    got = dict(zip(feature_set("full", "ztf").names, feature_set("full", "ztf").extract(curve), strict=True))
    assert got["nondet_dt"] == pytest.approx(first - last_limit.time) and 0 < got["nondet_dt"] < 10
    assert got["nondet_depth"] == pytest.approx(min(2.0, last_limit.mag - (25 - 2.5 * math.log10(curve.flux[0]))))
    assert got["rise_rate"] > 0 and got["decline_rate"] > 0 and got["n_bands"] == 2  # rose and faded, in g and r
    features = dict(zip(feature_set("cheap", "ztf").names, feature_set("cheap", "ztf").extract(curve), strict=True))
    assert features["color_peak_ztfg_ztfr"] == pytest.approx(  # g - r at peak of a SN Ia: about 0
        features["peak_rel_mag_ztfg"] - features["peak_rel_mag_ztfr"]) and abs(features["color_peak_ztfg_ztfr"]) < 0.5


def test_light_curve_of_elasticc_alerts_rescales_nanojansky_to_zero_point_25(elasticc_alerts):
    alert = max(elasticc_alerts, key=lambda a: len(a.datapoints))
    curve = LightCurve.from_datapoints(alert.datapoints)
    measured = [dp for dp in alert.datapoints if dp.band and dp.flux is not None and not dp.upper_limit]
    assert len(curve.time) == len(measured) > 30 and {dp.zp for dp in measured} == {31.4}
    np.testing.assert_allclose(np.sort(curve.flux), np.sort([dp.flux * 10 ** (-0.4 * 6.4) for dp in measured]))
    assert set(curve.band) <= set(LSST_BANDS) and len(set(curve.band)) >= 4
    values = feature_set("cheap", "lsst").extract(curve)
    assert np.isfinite(values).sum() > len(values) / 2


def test_forced_photometry_counts_as_detected_from_snr_5_and_yields_to_alert_detections():
    def point(id: int, time: float, flux: float, tags: tuple[str, ...] = ()) -> DataPoint:
        return DataPoint(id=id, stock=1, time=time, band="ztfr", flux=flux, flux_err=10.0, zp=30.0, tags=tags)

    points = [point(1, 1.0, 20.0, ("forced",)), point(2, 2.0, 100.0, ("forced",)), point(3, 3.0, 300.0),
              point(4, 3.0, 310.0, ("forced",)), point(5, 0.5, -40.0, ("forced",)),
              DataPoint(id=6, stock=1, time=4.0, band="ztfr", flux=None, flux_err=None, upper_limit=True)]
    curve = LightCurve.from_datapoints(points)
    np.testing.assert_array_equal(curve.time, [0.5, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(curve.detected, [False, False, True, True])
    np.testing.assert_allclose(curve.flux, np.array([-40.0, 20.0, 100.0, 300.0]) / 100)
    with pytest.raises(FeatureError, match="datapoint 7: zero-point system 'vega'"):
        LightCurve.from_datapoints([DataPoint(id=7, stock=1, time=1.0, band="ztfg", flux=1.0, flux_err=1.0,
                                              zpsys="vega")])


@settings(max_examples=40, deadline=None)
@given(light_curves(ZTF_BANDS, min_points=1), st.floats(1e-3, 1e3), st.lists(st.floats(58000, 58400), max_size=5))
def test_features_do_not_depend_on_the_brightness(curve, factor, limit_times):
    """The same object k times brighter (fluxes, errors, and limits 2.5 log10 k mag brighter) has the
    same features: a 12.5 mag SN is classified as its simulated 19 mag twin."""
    limit_times = np.array(sorted(limit_times), dtype=float)
    limits = np.full(len(limit_times), 20.0)
    dim = LightCurve(curve.time, curve.flux, curve.flux_err, curve.band, curve.detected, limit_times, limits)
    bright = LightCurve(curve.time, curve.flux * factor, curve.flux_err * factor, curve.band, curve.detected,
                        limit_times, limits - 2.5 * math.log10(factor))
    fs = feature_set("cheap", "ztf")
    np.testing.assert_allclose(fs.extract(bright), fs.extract(dim), rtol=1e-6, atol=1e-6)
