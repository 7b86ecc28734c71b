"""Stock positions and the HEALPix index ranges of a cone (ampel_core.sky)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_core.models import Alert, DataPoint
from ampel_core.sky import MAX_CONE_RADIUS, alert_position, angular_distance, cone_ranges, healpix_indexes

ra_values = st.floats(min_value=-360.0, max_value=720.0, allow_nan=False)
dec_values = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)


def offset(ra: float, dec: float, distance: float, angle: float) -> tuple[float, float]:
    """The position ``distance`` degrees from (ra, dec) towards position angle ``angle`` (radians)."""
    phi, lam, delta = math.radians(dec), math.radians(ra), math.radians(distance)
    new_phi = math.asin(max(-1.0, min(1.0, math.sin(phi) * math.cos(delta)
                                      + math.cos(phi) * math.sin(delta) * math.cos(angle))))
    new_lam = lam + math.atan2(math.sin(angle) * math.sin(delta) * math.cos(phi),
                               math.cos(delta) - math.sin(phi) * math.sin(new_phi))
    return math.degrees(new_lam) % 360, math.degrees(new_phi)


@settings(max_examples=200, deadline=None)
@given(ra_values, dec_values, st.floats(min_value=0.0, max_value=MAX_CONE_RADIUS),
       st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=2 * math.pi))
def test_every_position_in_the_cone_is_in_a_range(ra: float, dec: float, radius: float, fraction: float,
                                                  angle: float) -> None:
    inside = offset(ra, dec, radius * fraction, angle)
    (pixel,) = healpix_indexes([inside[0]], [inside[1]])
    ranges = cone_ranges(ra, dec, radius)
    assert any(start <= pixel < end for start, end in ranges), (inside, ranges)
    assert all(start < end for start, end in ranges)
    assert all(end < start for (_, end), (start, _) in itertools.pairwise(ranges))  # merged, sorted


def test_ranges_of_a_small_cone_are_few_and_narrow() -> None:
    ranges = cone_ranges(150.0, 2.2, 2 / 3600)
    assert len(ranges) <= 16
    assert sum(end - start for start, end in ranges) < 4**6  # a few hundred order-16 pixels, not a sky patch


def test_radius_beyond_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"radius 5.1 degrees"):
        cone_ranges(0.0, 0.0, 5.1)
    with pytest.raises(ValueError, match="radius"):
        cone_ranges(0.0, 0.0, -1.0)


@given(ra_values, dec_values, ra_values, dec_values)
def test_angular_distance_is_a_metric(ra1: float, dec1: float, ra2: float, dec2: float) -> None:
    forward = angular_distance(ra1, dec1, ra2, dec2)
    assert 0.0 <= forward <= 180.0
    assert forward == pytest.approx(angular_distance(ra2, dec2, ra1, dec1), abs=1e-9)
    assert angular_distance(ra1, dec1, ra1 + 360.0, dec1) == pytest.approx(0.0, abs=1e-6)


def test_alert_position_from_alert_or_trigger() -> None:
    def alert(extra: dict[str, object], trigger: dict[str, object]) -> Alert:
        point = DataPoint(id=1, stock=2, time=59000.0, band="ztfg", flux=1.0, flux_err=0.1, extra=trigger)
        return Alert(id=1, stock=2, stock_name="X", datapoints=[point], extra=extra)

    assert alert_position(alert({"ra": -10.0, "dec": 20.0}, {})) == (350.0, 20.0)
    assert alert_position(alert({}, {"ra": 10.0, "decl": -5.0})) == (10.0, -5.0)  # Rubin's older name
    assert alert_position(alert({"ra": None, "dec": 1.0}, {"ra": 3.0, "dec": 4.0})) == (3.0, 4.0)
    assert alert_position(alert({"ra": float("nan"), "dec": 1.0}, {})) is None
    assert alert_position(alert({"ra": 1.0, "dec": 91.0}, {})) is None
    assert alert_position(alert({"ra": True, "dec": 1.0}, {})) is None
    assert alert_position(Alert(id=1, stock=2, stock_name="X", datapoints=[])) is None
