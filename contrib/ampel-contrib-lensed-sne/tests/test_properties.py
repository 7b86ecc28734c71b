"""Property-based tests (hypothesis): config validation of the units, and the algebra of colours."""

from __future__ import annotations

import math

import pytest
from ampel_core.units import UnitConfigError, build_unit
from hypothesis import given
from hypothesis import strategies as st

from ampel_contrib_lensed_sne.colours import colour_significance, flux_colours
from ampel_contrib_lensed_sne.t0_filter import LensedSNFilter
from ampel_contrib_lensed_sne.t2_colours import T2LensedSNColours


@given(st.integers(-20, 20))
def test_min_cuts_passed_is_checked_and_named(value: int) -> None:
    if 0 <= value <= 9:
        assert build_unit(T2LensedSNColours, {"min_cuts_passed": value}).min_cuts_passed == value  # type: ignore[attr-defined]
    else:
        with pytest.raises(UnitConfigError, match="min_cuts_passed"):
            build_unit(T2LensedSNColours, {"min_cuts_passed": value})


@given(st.integers(-5, 5), st.integers(-5, 5))
def test_filter_counts_are_checked_and_named(detections: int, bands: int) -> None:
    config = {"min_positive_detections": detections, "min_bands": bands}
    if detections >= 1 and bands >= 1:
        build_unit(LensedSNFilter, config)
    else:
        with pytest.raises(UnitConfigError, match="min_positive_detections" if detections < 1 else "min_bands"):
            build_unit(LensedSNFilter, config)


@given(st.dictionaries(st.sampled_from(["fit", "host", "min_magnification"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=2))
def test_bad_configs_raise_a_config_error_naming_a_field(config: dict[str, object]) -> None:
    try:
        build_unit(T2LensedSNColours, config)
    except UnitConfigError as error:
        assert any(name in str(error) for name in config)


positive = st.floats(1e-3, 1e6, allow_nan=False)


@given(positive, positive, positive, positive)
def test_swapping_the_bands_negates_the_colour(f1: float, f2: float, e1: float, e2: float) -> None:
    e1, e2 = min(e1, f1 / 2), min(e2, f2 / 2)  # above zero at 1 sigma
    forward = flux_colours({"ztfg": (f1, e1), "ztfr": (f2, e2)}, {"x": ("ztfg", "ztfr")})["x"]
    backward = flux_colours({"ztfg": (f1, e1), "ztfr": (f2, e2)}, {"x": ("ztfr", "ztfg")})["x"]
    assert forward is not None and backward is not None
    assert forward["value"] == pytest.approx(-backward["value"], abs=1e-9)
    assert forward["error"] == pytest.approx(backward["error"])


@given(st.floats(-5, 5), st.floats(1e-3, 5), st.floats(-5, 5))
def test_significance_is_signed_distance_in_sigma(value: float, error: float, cut: float) -> None:
    significance = colour_significance(value, error, cut)
    assert significance is not None and significance == pytest.approx((value - cut) / error)
    assert (significance > 0) == (value > cut) or math.isclose(value, cut, abs_tol=1e-12)
    assert colour_significance(None, error, cut) is None and colour_significance(value, 0.0, cut) is None
