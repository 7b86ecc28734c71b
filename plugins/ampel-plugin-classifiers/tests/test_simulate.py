"""The simulation: seeded, every class detectable, survey conventions (ZTF detections only, LSST forced)."""

from __future__ import annotations

import numpy as np
import pytest

from ampel_classifiers.simulate import CLASSES, observing_conditions, simulate, simulate_object, truncate


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_same_seed_same_lightcurves(survey: str) -> None:
    first, second = simulate(survey, 2, seed=11), simulate(survey, 2, seed=11)
    assert [o.label for o in first] == [label for label in CLASSES for _ in range(2)]
    for a, b in zip(first, second, strict=True):
        for field in ("time", "flux", "flux_err", "band", "detected"):
            np.testing.assert_array_equal(getattr(a.lightcurve, field), getattr(b.lightcurve, field))
    other = simulate(survey, 2, seed=12)
    assert not np.array_equal(first[0].lightcurve.flux, other[0].lightcurve.flux)


def test_object_does_not_depend_on_sample_size() -> None:
    small, large = simulate("ztf", {"SN Ia": 1}, seed=4), simulate("ztf", {"SN Ia": 3, "AGN": 1}, seed=4)
    np.testing.assert_array_equal(small[0].lightcurve.flux, large[0].lightcurve.flux)


def test_survey_conventions() -> None:
    for obj in simulate("ztf", 1, seed=5):
        lc = obj.lightcurve
        assert lc.detected.all() and (np.abs(lc.flux / lc.flux_err) >= 5).all()
        assert set(lc.band) <= {"ztfg", "ztfr", "ztfi"}
    for obj in simulate("lsst", 1, seed=5):
        lc = obj.lightcurve
        assert lc.n_detections >= 1
        np.testing.assert_array_equal(lc.detected, np.abs(lc.flux / lc.flux_err) >= 5)
        assert lc.time.min() >= lc.time[lc.detected].min() - 30
        assert set(lc.band) <= {"lsstu", "lsstg", "lsstr", "lssti", "lsstz", "lssty"}


def test_sn_ia_follows_salt2_parameters() -> None:
    obj = simulate_object("SN Ia", "ztf", (1, 0, 0))
    assert {"x1", "c", "z", "t0", "peak_abs_mag_B"} <= set(obj.params)
    assert 0 < obj.params["z"] <= 0.15


def test_truncate_keeps_points_up_to_the_nth_detection() -> None:
    lc = simulate("lsst", {"SN II": 1}, seed=8)[0].lightcurve
    cut = truncate(lc, 1)
    assert cut.n_detections == 1 and cut.time.max() == lc.time[lc.detected].min()
    assert truncate(lc, lc.n_detections).n_detections == lc.n_detections
    with pytest.raises(ValueError, match="cannot truncate"):
        truncate(lc, lc.n_detections + 1)


def test_conditions_table_is_shipped_with_origin() -> None:
    table = observing_conditions()
    for survey in ("ztf", "lsst"):
        assert "alerts" in table[survey]["source"]
        assert abs(sum(band["fraction"] for band in table[survey]["bands"].values()) - 1) < 1e-3


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown survey 'hsc'"):
        simulate("hsc", 1, seed=0)
    with pytest.raises(ValueError, match="unknown class 'nova'"):
        simulate("ztf", {"nova": 1}, seed=0)
