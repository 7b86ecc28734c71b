"""The colours: the fitted model's equal direct sncosmo bandmag differences on the same points;
their propagated errors agree with sampling the fit's covariance; the GP interpolation recovers a
known light curve within its errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ampel_contrib_lensed_sne.colours import COLOUR_CUTS, COLOURS, flux_colours, gp_fluxes, model_colour_errors


@pytest.fixture
def rhu(sn2021rhu_light_curve: list[Any], gwgc: dict[str, Any], catalogs: Path, analyse: Any) -> dict[str, Any]:
    """The three T2 results on SN 2021rhu's complete light curve (its 34 alerts), host from GWGC."""
    return analyse(sn2021rhu_light_curve, gwgc, name="ZTF21abiuvdk")  # type: ignore[no-any-return]


def direct_model(fit: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The fitted SALT2 model built with sncosmo from the shipped model files (not through the unit),
    and the ZTF bandpasses as sncosmo loads them (ampel-plugin-sncosmo's offline loader)."""
    import sncosmo
    from ampel_sncosmo.datafiles import SHIPPED_DATA_DIR, load_bandpass, search_path

    directory = SHIPPED_DATA_DIR / "models" / "salt2" / "salt2-4"
    model = sncosmo.Model(sncosmo.SALT2Source(modeldir=str(directory), name="salt2", version="2.4"))
    model.set(**fit["parameters"])
    return model, {band: load_bandpass(band, search_path(None)).value for band in ("ztfg", "ztfr", "ztfi")}


def test_model_colours_are_bandmag_differences_at_t0_and_seven_days_either_side(rhu: dict[str, Any]) -> None:
    fit, result = rhu["T2SNCosmoFit"], rhu["T2LensedSNColours"]
    assert fit["success"] and result["t0"] == fit["parameters"]["t0"]
    model, bands = direct_model(fit)
    t0 = fit["parameters"]["t0"]
    for phase, key in ((-7, "t0-7"), (0, "t0"), (7, "t0+7")):
        for colour, (first, second) in COLOURS.items():
            expected = model.bandmag(bands[first], "ab", t0 + phase) - model.bandmag(bands[second], "ab", t0 + phase)
            measured = result["colours"][key][colour]
            assert measured["value"] == pytest.approx(expected, abs=1e-9), (key, colour)
            assert measured["cut"] == COLOUR_CUTS[key][colour]
            assert measured["passed"] == (expected > COLOUR_CUTS[key][colour])
            assert measured["significance"] == pytest.approx((expected - measured["cut"]) / measured["error"])
    assert result["cuts_passed"] == sum(v["passed"] for p in result["colours"].values() for v in p.values())


def test_colour_errors_agree_with_sampling_the_fit_covariance(rhu: dict[str, Any]) -> None:
    fit = rhu["T2SNCosmoFit"]
    model, bands = direct_model(fit)
    names, matrix = fit["covariance"]["names"], np.asarray(fit["covariance"]["matrix"])
    propagated = model_colour_errors(model, bands, names, matrix)
    rng = np.random.default_rng(7)
    centre = np.array([fit["parameters"][n] for n in names])
    samples = []
    for draw in rng.multivariate_normal(centre, matrix, size=400):
        model.set(**dict(zip(names, draw, strict=True)))
        t0 = float(model.get("t0"))
        samples.append([model.bandmag(bands["ztfg"], "ab", t0 + p) - model.bandmag(bands["ztfr"], "ab", t0 + p)
                        for p in (-7, 0, 7)])
    spread = np.std(samples, axis=0)
    for index, key in enumerate(("t0-7", "t0", "t0+7")):
        assert propagated[key]["g-r"] == pytest.approx(spread[index], rel=0.25), key


def test_gp_recovers_a_noisy_light_curve_within_its_errors() -> None:
    rng = np.random.default_rng(3)
    time = np.sort(rng.uniform(-25, 50, 40))

    def truth(t: Any) -> Any:
        return 1000 * np.exp(-0.5 * (np.asarray(t) / 12.0) ** 2)

    error = np.full(len(time), 40.0)
    flux = truth(time) + rng.normal(0, error)
    at = [-7.0, 0.0, 7.0]
    mean, sigma = gp_fluxes(time, flux, error, at)
    pulls = (np.array(mean) - truth(at)) / np.array(sigma)
    assert np.all(np.abs(pulls) < 3) and np.all(np.array(sigma) < 40)


def test_gp_without_points_knows_nothing() -> None:
    mean, sigma = gp_fluxes([], [], [], [0.0])
    assert mean == [0.0] and sigma == [math.inf]


def test_flux_colours_need_flux_above_one_sigma_in_both_bands() -> None:
    colours = flux_colours({"ztfg": (100.0, 10.0), "ztfr": (200.0, 10.0), "ztfi": (5.0, 10.0)})
    assert colours["g-r"] is not None and colours["g-r"]["value"] == pytest.approx(2.5 * math.log10(2))
    assert colours["g-r"]["error"] == pytest.approx(2.5 / math.log(10) * math.hypot(0.1, 0.05))
    assert colours["g-i"] is None and colours["r-i"] is None
