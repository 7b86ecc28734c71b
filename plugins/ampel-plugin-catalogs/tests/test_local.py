"""The local backend against brute force (astropy's SkyCoord.separation) on random skies, the poles
and RA 0/360 included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_catalogs.catalog import CatalogError
from ampel_catalogs.local import LocalBackend


def sky(rng: np.random.Generator, n: int, near_pole: bool = False) -> Table:
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(0.999 if near_pole else -1, 1, n)))
    ra[:3], dec[:3] = [0.0, 359.9999, 123.0], [0.0, 0.0, 90.0]  # on RA 0/360 and at the pole
    return Table({"id": [f"S{i}" for i in range(n)], "ra": ra, "dec": dec, "mag": rng.uniform(10, 20, n)})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.sampled_from([0.1, 3.0, 60.0, 3600.0, 36000.0]),
       near_pole=st.booleans())
def test_matches_equal_brute_force(tmp_path_factory: pytest.TempPathFactory, seed: int, radius: float,
                                   near_pole: bool) -> None:
    rng = np.random.default_rng(seed)
    catalogue = sky(rng, 400, near_pole)
    backend = LocalBackend(tmp_path_factory.mktemp("catalogs"))
    backend.create("random", catalogue)
    opened = backend.open("random")
    # inputs: near catalogue sources (within a few radii), across RA 0/360, at the pole
    picks = rng.integers(0, len(catalogue), 30)
    ra = np.mod(np.asarray(catalogue["ra"])[picks] + rng.normal(0, radius / 3600, 30), 360)
    dec = np.clip(np.asarray(catalogue["dec"])[picks] + rng.normal(0, radius / 3600, 30), -90, 90)
    ra, dec = np.append(ra, [359.99999, 0.00001, 17.0]), np.append(dec, [0.0, 0.0, 89.99999])
    separations = SkyCoord(ra[:, None] * u.deg, dec[:, None] * u.deg).separation(
        SkyCoord(np.asarray(catalogue["ra"]) * u.deg, np.asarray(catalogue["dec"]) * u.deg)).arcsec
    everything = opened.match(ra, dec, radius, "all")
    expected = sorted((i, f"S{j}") for i, j in zip(*np.nonzero(separations <= radius), strict=True))
    assert sorted(zip(everything["input"], everything["id"], strict=True)) == expected
    np.testing.assert_allclose(everything["separation"],
                               separations[everything["input"], [int(s[1:]) for s in everything["id"]]], atol=1e-6)
    nearest = opened.match(ra, dec, radius, "nearest")
    inside = (separations <= radius).any(axis=1)
    assert list(nearest["input"]) == list(np.flatnonzero(inside))
    np.testing.assert_allclose(nearest["separation"], separations[inside].min(axis=1), atol=1e-6)


def test_bad_queries_and_names_are_refused(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.create("tiny", Table({"id": ["a"], "ra": [10.0], "dec": [20.0]}))
    opened = backend.open("tiny")
    for radius in (0.0, -1.0, float("nan")):
        with pytest.raises(CatalogError, match="positive"):
            opened.match(10.0, 20.0, radius)
    with pytest.raises(CatalogError, match="no column mag"):
        opened.match(10.0, 20.0, 1.0, columns=("mag",))
    with pytest.raises(CatalogError, match=r"no catalogue 'other'.*tiny"):
        backend.open("other")
    with pytest.raises(CatalogError, match="catalogue name"):
        backend.create("../up", Table({"id": ["a"], "ra": [1.0], "dec": [1.0]}))
    assert [i.name for i in backend.list()] == ["tiny"] and backend.list()[0].rows == 1
