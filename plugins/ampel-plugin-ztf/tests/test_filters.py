"""The ZTF filters on real alerts: every check of the decent filter, the criteria filter, config
validation, and that odd alerts never make them raise."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_core.models import Alert
from ampel_core.testing import run_unit
from ampel_core.units import Reject, UnitConfigError, build_unit, config_schema
from ampel_ztf.alerts import ZTFAlertFormat
from ampel_ztf.filters import ZTFAttributeFilter, ZTFDecentFilter, galactic_latitude

SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data" / "ztf"


@pytest.fixture(scope="module")
def alerts() -> list[Alert]:
    return [a for p in sorted(SAMPLE.rglob("*.avro")) for a in ZTFAlertFormat().decode(p.read_bytes(), str(p))]


@pytest.fixture(scope="module")
def good(alerts: list[Alert]) -> Alert:
    """An alert of SN 2021rhu the default decent filter accepts."""
    alert = next(a for a in alerts if a.stock_name == "ZTF21abiuvdk" and len(a.datapoints) == 22)
    assert ZTFDecentFilter().process(alert) is True
    return alert


def changed(alert: Alert, **fields: Any) -> Alert:
    """The alert with some candidate fields changed (None: removed)."""
    extra = {k: v for k, v in {**alert.trigger.extra, **fields}.items() if v is not None}
    trigger = dataclasses.replace(alert.trigger, extra=extra)
    return dataclasses.replace(alert, datapoints=[trigger, *alert.datapoints[1:]])


def code(result: object) -> int:
    return result.code if isinstance(result, Reject) else 1


def test_decent_filter_on_the_sample(alerts: list[Alert]) -> None:
    outcomes = Counter(code(run_unit(ZTFDecentFilter, alert)) for alert in alerts)
    assert outcomes == {1: 40, -1: 7, -2: 5, -5: 3, -7: 3, -10: 4}


@pytest.mark.parametrize(("fields", "config", "expected"), [
    ({"isdiffpos": "f"}, {}, -1),
    ({"isdiffpos": "0"}, {"require_positive": False}, 1),
    ({}, {"min_ndet": 1000}, -2),
    ({}, {"max_tspan": 1.0}, -3),
    ({}, {"min_tspan": 1000.0}, -3),
    ({"rb": 0.1}, {}, -4),
    ({"drb": 0.2}, {"min_drb": 0.5}, -4),
    ({"drb": None}, {"min_drb": 0.99}, 1),  # schemas before 3.3 have no drb: the check is skipped
    ({"fwhm": 9.0}, {}, -5), ({"elong": 2.0}, {}, -5), ({"magdiff": -1.5}, {}, -5), ({"nbad": 3}, {}, -5),
    ({"ssdistnr": 3.0}, {}, -6),
    ({"ssdistnr": -999.0}, {}, 1),  # ZTF's "no known solar-system object"
    ({"ssdistnr": 30.0}, {}, 1),
    ({"distpsnr1": 0.3, "sgscore1": 0.95}, {}, -7),
    ({"distpsnr1": 0.3, "sgscore1": 0.95}, {"ps1_sgveto_th": 0.99}, 1),
    ({"distpsnr1": 0.5, "sgscore1": 0.02, "distpsnr2": 2.0, "sgscore2": 0.97, "srmag2": 19.0}, {}, -8),
    ({"neargaiabright": 8.0, "maggaiabright": 10.5}, {}, -9),
    ({"neargaiabright": 8.0, "maggaiabright": 13.5}, {}, 1),
    ({"neargaiabright": -999.0}, {}, 1),
    ({"distpsnr2": 12.0, "sgscore2": 0.99, "srmag2": 11.0, "sgmag2": 11.5, "distpsnr3": 30.0}, {}, -9),
    ({"ra": 266.4, "dec": -28.9}, {}, -10),  # the galactic centre
    ({}, {"min_gal_lat": 89.0}, -10),
])
def test_each_check_of_the_decent_filter(good: Alert, fields: dict[str, Any], config: dict[str, Any],
                                         expected: int) -> None:
    result = run_unit(ZTFDecentFilter, changed(good, **fields), **config)
    assert code(result) == expected, result
    if isinstance(result, Reject):
        assert result.reason


def test_galactic_latitude_agrees_with_astropy() -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    for ra, dec in [(0, 0), (266.40499, -28.93617), (192.85948, 27.12825), (83.6, 22.0), (0.8127, 16.1455), (300, -80)]:
        expected = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic.b.deg
        assert galactic_latitude(ra, dec) == pytest.approx(expected, abs=2e-3)


def test_attribute_filter(good: Alert) -> None:
    def run(*criteria: tuple[str, str, Any], match: str = "all") -> object:
        return run_unit(ZTFAttributeFilter, good, match=match,
                        criteria=[{"attribute": a, "operator": o, "value": v} for a, o, v in criteria])

    rb = good.trigger.extra["rb"]
    assert run(("rb", ">=", rb), ("fid", "in", [1, 2]), ("alert.objectId", "==", "ZTF21abiuvdk")) is True
    assert run(("rb", ">", rb)) == Reject(-1, f"not rb > {rb!r}")
    assert run(("rb", ">", rb), ("magpsf", "<", 30), match="any") is True
    assert run(("rb", ">", rb), ("magpsf", ">", 30), match="any") == Reject(-2, "no criterion holds")
    assert run(("no_such_field", "missing", None), ("rb", "exists", None)) is True
    assert code(run(("no_such_field", "<", 1))) == -1
    assert code(run(("isdiffpos", "<", 1))) == -1  # a string compared with a number: does not hold
    assert run(("alert.schemavsn", "in", ["3.3", "4.02"]), ("programid", "not in", [2, 3])) is True


def test_config_is_validated_and_exported() -> None:
    with pytest.raises(UnitConfigError, match="field 'min_rb'"):
        build_unit(ZTFDecentFilter, {"min_rb": 2})
    with pytest.raises(UnitConfigError, match="field 'no_such_threshold'"):
        build_unit(ZTFDecentFilter, {"no_such_threshold": 1})
    with pytest.raises(UnitConfigError, match="criteria"):
        build_unit(ZTFAttributeFilter, {"criteria": [{"attribute": "rb", "operator": "~", "value": 1}]})
    with pytest.raises(UnitConfigError, match="'in' needs a list value"):
        build_unit(ZTFAttributeFilter, {"criteria": [{"attribute": "fid", "operator": "in", "value": 1}]})
    properties = config_schema(ZTFDecentFilter)["properties"]
    assert {"min_rb", "min_drb", "min_ndet", "min_sso_dist", "ps1_sgveto_rad", "ps1_sgveto_th", "bright_star_rad",
            "min_tspan", "max_tspan", "min_gal_lat"} <= set(properties)
    assert all(field.get("description") for field in properties.values())


odd_values = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-10**6, 10**6), st.text(max_size=3),
                       st.booleans(), st.lists(st.integers(), max_size=2))
CHECKED = ["isdiffpos", "rb", "drb", "fwhm", "elong", "magdiff", "nbad", "ssdistnr", "distpsnr1", "sgscore1",
           "distpsnr2", "sgscore2", "srmag2", "sgmag2", "neargaiabright", "maggaiabright", "ra", "dec"]


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(CHECKED), numbers))
def test_odd_numbers_do_not_crash_the_decent_filter(good: Alert, fields: dict[str, Any]) -> None:
    result = ZTFDecentFilter().process(changed(good, **fields))
    assert result is True or isinstance(result, Reject)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(CHECKED), odd_values))
def test_odd_fields_do_not_crash_the_attribute_filter(good: Alert, fields: dict[str, Any]) -> None:
    unit = ZTFAttributeFilter(criteria=[{"attribute": name, "operator": op, "value": value}
                                        for name in CHECKED for op, value in (("<", 0.5), ("==", "t"), ("in", [1, "t"]))])
    result = unit.process(changed(good, **fields))
    assert result is True or isinstance(result, Reject)
