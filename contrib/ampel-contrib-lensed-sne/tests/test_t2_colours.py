"""T2LensedSNColours on real and simulated light curves: SN 2021rhu (a normal SN Ia in NGC 7814)
fails the cuts; a SALT2 SN Ia at z 0.8, magnified 30 times behind a lens galaxy at z 0.25 (a
catalogue row built here: the shipped catalogues hold only nearby galaxies), at ZTF cadence and
noise drawn from real alert histories, passes; the same SN Ia unlensed in that galaxy does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ampel_contrib_lensed_sne.simulate import Cadence, simulated_event, write_galaxy_catalog
from ampel_contrib_lensed_sne.t2_colours import T2LensedSNColours

#: three real cadences of the shipped sample: g+r over 71 days, g+r over 79 days, g+r+i over 27 days
CADENCES = ("ZTF20abyfpze", "ZTF21abiuvdk", "ZTF25acldfsf")


def test_sn2021rhu_fails_the_cuts(sn2021rhu_light_curve: list[Any], gwgc: dict[str, Any], catalogs: Path,
                                  analyse: Any) -> None:
    found = analyse(sn2021rhu_light_curve, gwgc, name="ZTF21abiuvdk")
    result = found["T2LensedSNColours"]
    assert found["T2SNCosmoFit"]["success"] and result["host"]["name"] == "NGC7814"
    assert result["fit"]["z"] == pytest.approx(result["host"]["z"])  # fitted at its host's redshift
    assert result["candidate"] is False
    assert result["cuts_passed"] < 7 and f"{result['cuts_passed']} colour cuts passed < 7" in result["reasons"]
    assert result["significance"] < 0  # bluer than the cuts, overall
    assert result["magnification"]["value"] < 2.0  # no brighter than a SN Ia in NGC 7814 could be
    assert result["inputs"]["state"] == found["state"].id
    # the data-driven check: the GP's g-r agrees with the model's within 0.15 mag at every phase (at
    # this S/N the tension in sigma is large: SALT2 is not a perfect description of SN 2021rhu)
    for phase in ("t0-7", "t0", "t0+7"):
        assert abs(result["gp_colours"][phase]["g-r"]["value"] - result["colours"][phase]["g-r"]["value"]) < 0.15


def simulate(cadence: Cadence, tmp_path: Path, seed: int, lensed: bool) -> tuple[Any, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    z_lens = 0.25
    event, row = simulated_event(rng, cadence, stock=100 + seed, ra=150.0, dec=30.0, lensed=lensed,
                                 z_source=0.8 if lensed else z_lens, z_lens=z_lens,
                                 magnification=30.0 if lensed else 1.0)
    return event, write_galaxy_catalog(tmp_path / f"lens-{seed}-{lensed}.csv", [row])


@pytest.mark.parametrize("cadence_of", CADENCES)
def test_a_magnified_sn_ia_behind_a_lens_galaxy_passes(cadence_of: str, ztf_cadences: list[Cadence],
                                                       tmp_path: Path, catalogs: Path, analyse: Any) -> None:
    cadence = next(c for c in ztf_cadences if c.source == cadence_of)
    event, catalog = simulate(cadence, tmp_path, seed=2, lensed=True)
    found = analyse(event.datapoints, catalog, name=event.name)
    result = found["T2LensedSNColours"]
    assert found["T2HostGalaxy"]["name"] == "GAL00102"
    assert found["T2HostGalaxy"]["z"] == pytest.approx(0.25, rel=1e-3)
    assert result["candidate"] is True, result["reasons"]
    assert result["cuts_passed"] >= 7 and result["significance"] > 0
    assert result["magnification"]["value"] >= 2.0
    # every colour measured at t0 is redder than the cut
    assert all(c["passed"] for c in result["colours"]["t0"].values() if c["value"] is not None)


@pytest.mark.parametrize("cadence_of", CADENCES)
def test_the_same_sn_ia_unlensed_in_that_galaxy_is_no_candidate(cadence_of: str, ztf_cadences: list[Cadence],
                                                                tmp_path: Path, catalogs: Path,
                                                                analyse: Any) -> None:
    cadence = next(c for c in ztf_cadences if c.source == cadence_of)
    event, catalog = simulate(cadence, tmp_path, seed=2, lensed=False)
    result = analyse(event.datapoints, catalog, name=event.name)["T2LensedSNColours"]
    assert result["candidate"] is False
    assert result["magnification"]["value"] < 2.0  # it may be as red, but it is not brighter


def test_without_a_fit_the_result_says_why(ztf_cadences: list[Cadence], tmp_path: Path, catalogs: Path,
                                           analyse: Any) -> None:
    event, catalog = simulate(ztf_cadences[0], tmp_path, seed=3, lensed=True)
    few = event.datapoints[:3]
    result = analyse(few, catalog, name=event.name)["T2LensedSNColours"]
    assert result["candidate"] is False and result["colours"] is None
    assert result["reasons"][0].startswith("no fit: 3 points < min_detections 5")


def test_the_dependencies_are_the_fit_and_the_host_with_their_configs() -> None:
    unit = T2LensedSNColours(host={"catalog": "gwgc"})
    fit, host = unit.dependencies()
    assert (fit.unit, host.unit) == ("T2SNCosmoFit", "T2HostGalaxy")
    assert fit.config == unit.fit and host.config == {"catalog": "gwgc"}
    # the fit takes its redshift from the very host result this unit reads
    assert fit.config["redshift"]["config"] == host.config
    with pytest.raises(ValueError, match="min_cuts_passed"):
        T2LensedSNColours(min_cuts_passed=10)
