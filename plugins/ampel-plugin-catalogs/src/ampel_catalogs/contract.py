"""The catalogue contract: one pytest suite every catalogue backend must pass, so that the local,
PostgreSQL q3c and extcats backends give the same answers.

A backend's test module subclasses `CatalogContract` and supplies a ``make_catalog`` fixture: a
function ``make_catalog(name, table) -> Catalog`` that stores ``table`` (columns ``id``, ``ra``,
``dec`` in degrees, then kept columns) as the catalogue ``name`` and opens it::

    from ampel_catalogs.contract import CatalogContract

    class TestLocalCatalog(CatalogContract):
        @pytest.fixture
        def make_catalog(self, tmp_path):
            backend = LocalBackend(tmp_path)
            return lambda name, table: (backend.create(name, table), backend.open(name))[1]

The suite checks match results in all three modes against brute force (astropy's
`SkyCoord.separation` between every input and every source) with hypothesis, on random skies that
include both poles and RA 0/360, for radii from 0.1 arcsec to degrees; kept columns and their
selection; an input exactly on a source (separation 0); empty inputs; and that a non-positive
radius, non-finite positions, an unknown column or mode raise `CatalogError`.

Brute force and a backend may disagree by rounding about a source right on the radius; such
sources (within a relative 1e-9 of the radius) may be in or out.

Needs pytest and hypothesis (the plugin's ``test`` extra); only tests import this module.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_catalogs.catalog import MATCH_COLUMNS, MODES, Catalog, CatalogError

__all__ = ["BOUNDARY", "SKIES", "CatalogContract", "MakeCatalog", "brute_force_separations", "random_sky"]

MakeCatalog = Callable[[str, Table], Catalog]
SKIES = ("uniform", "north_pole", "south_pole", "ra_wrap")
BOUNDARY = 1e-9  # relative: sources this close to the radius may be in or out
KEPT = ("mag", "kind", "flags")
_names = itertools.count()


def random_sky(rng: np.random.Generator, n: int, sky: str = "uniform") -> Table:
    """``n`` sources: uniform on the sphere, in caps of 1 degree around a pole, or in a band of 1 degree
    across RA 0/360; the first ones exactly on RA 0, just below RA 360 and on the north pole. Kept
    columns: ``mag`` (float), ``kind`` (string), ``flags`` (int)."""
    if sky == "uniform":
        ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    elif sky in ("north_pole", "south_pole"):
        sign = 1 if sky == "north_pole" else -1
        ra, dec = rng.uniform(0, 360, n), sign * (90 - np.degrees(np.arccos(rng.uniform(np.cos(np.radians(1)), 1, n))))
    elif sky == "ra_wrap":
        ra, dec = np.mod(rng.uniform(-0.5, 0.5, n), 360), rng.uniform(-1, 1, n)
    else:
        raise ValueError(f"unknown sky {sky!r}; use one of {', '.join(SKIES)}")
    ra[:3], dec[:3] = [0.0, 359.99999, 123.0], [0.0, 0.0, 90.0]
    return Table({"id": [f"S{i}" for i in range(n)], "ra": ra, "dec": dec, "mag": rng.uniform(10, 20, n),
                  "kind": rng.choice(["star", "galaxy", "QSO"], n), "flags": rng.integers(0, 1000, n)})


def brute_force_separations(ra: np.ndarray, dec: np.ndarray, catalogue: Table) -> np.ndarray:
    """Separations (arcsec, inputs x sources) from astropy."""
    inputs = SkyCoord(ra[:, None] * u.deg, dec[:, None] * u.deg)
    sources = SkyCoord(np.asarray(catalogue["ra"], dtype=float) * u.deg, np.asarray(catalogue["dec"], dtype=float) * u.deg)
    return np.asarray(inputs.separation(sources).arcsec)


def _source_index(ids: Any) -> np.ndarray:
    return np.array([int(str(i)[1:]) for i in ids], dtype=int)


class CatalogContract:
    """Subclass it and define the ``make_catalog`` fixture (see the module docstring)."""

    @pytest.fixture
    def make_catalog(self) -> MakeCatalog:
        raise NotImplementedError("a backend's contract tests define the make_catalog fixture")

    @staticmethod
    def fresh_name() -> str:
        return f"contract{next(_names)}"

    def check_against_brute_force(self, catalog: Catalog, catalogue: Table, ra: np.ndarray, dec: np.ndarray,
                                  radius: float) -> None:
        separations = brute_force_separations(ra, dec, catalogue)
        surely_in = separations <= radius * (1 - BOUNDARY)
        maybe_in = separations <= radius * (1 + BOUNDARY)

        everything = catalog.match(ra, dec, radius, "all")
        assert tuple(everything.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        inputs, sources = np.asarray(everything["input"], dtype=int), _source_index(everything["id"])
        found = set(zip(inputs.tolist(), sources.tolist(), strict=True))
        assert len(found) == len(everything), "a source appears twice for one input"
        assert found >= set(zip(*map(np.ndarray.tolist, np.nonzero(surely_in)), strict=True)), "missed sources"
        assert all(maybe_in[i, j] for i, j in found), "sources beyond the radius"
        np.testing.assert_allclose(everything["separation"], separations[inputs, sources], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(everything["ra"], np.asarray(catalogue["ra"])[sources], rtol=0, atol=1e-12)
        np.testing.assert_allclose(everything["dec"], np.asarray(catalogue["dec"])[sources], rtol=0, atol=1e-12)
        order = np.lexsort((np.asarray(everything["separation"]), inputs))
        assert (order == np.arange(len(order))).all(), "rows are not ordered by input, then separation"

        for mode in ("nearest", "any"):
            matched = catalog.match(ra, dec, radius, mode)
            inputs, sources = np.asarray(matched["input"], dtype=int), _source_index(matched["id"])
            assert len(np.unique(inputs)) == len(inputs), f"{mode}: more than one row for an input"
            assert (np.diff(inputs) > 0).all(), f"{mode}: rows are not ordered by input"
            assert set(np.flatnonzero(surely_in.any(axis=1))) <= set(inputs.tolist()), f"{mode}: inputs missed"
            assert set(inputs.tolist()) <= set(np.flatnonzero(maybe_in.any(axis=1))), f"{mode}: nothing was there"
            assert maybe_in[inputs, sources].all()
            np.testing.assert_allclose(matched["separation"], separations[inputs, sources], rtol=1e-9, atol=1e-6)
            nearest = np.where(maybe_in, separations, np.inf)[inputs].min(axis=1) if len(inputs) else np.zeros(0)
            np.testing.assert_allclose(matched["separation"], nearest, rtol=1e-9, atol=1e-6)

    # each backend's subclass runs this test (differing executors), with a fresh catalogue per example
    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(seed=st.integers(0, 2**32 - 1), sky=st.sampled_from(SKIES),
           radius=st.one_of(st.sampled_from([0.1, 1.0, 3.0, 60.0, 3600.0, 7200.0]), st.floats(0.1, 7200.0)))
    def test_matches_equal_brute_force(self, make_catalog: MakeCatalog, seed: int, sky: str, radius: float) -> None:
        rng = np.random.default_rng(seed)
        catalogue = random_sky(rng, 300, sky)
        catalog = make_catalog(self.fresh_name(), catalogue)
        try:
            # inputs a few radii from sources, some right on RA 0/360 and the poles, some anywhere
            picks = rng.integers(0, len(catalogue), 40)
            offset = min(radius, 3600.0) / 3600
            dec = np.clip(np.asarray(catalogue["dec"])[picks] + rng.normal(0, offset, 40), -90, 90)
            ra = np.mod(np.asarray(catalogue["ra"])[picks]
                        + rng.normal(0, offset, 40) / np.maximum(np.cos(np.radians(dec)), 1e-3), 360)
            ra = np.append(ra, [359.999999, 0.000001, 0.0, 17.0, 250.0, *rng.uniform(0, 360, 5)])
            dec = np.append(dec, [0.0, 0.0, 90.0, 89.999999, -90.0, *np.degrees(np.arcsin(rng.uniform(-1, 1, 5)))])
            self.check_against_brute_force(catalog, catalogue, ra, dec, radius)
        finally:
            catalog.close()

    def test_an_input_on_a_source_has_separation_zero(self, make_catalog: MakeCatalog) -> None:
        catalogue = random_sky(np.random.default_rng(1), 50)
        catalog = make_catalog(self.fresh_name(), catalogue)
        for mode in MODES:
            # sources 0 and 1 are 0.036 arcsec apart, across RA 0/360
            matched = catalog.match(np.asarray(catalogue["ra"][:10]), np.asarray(catalogue["dec"][:10]), 0.01, mode)
            assert list(matched["input"]) == list(range(10)) and list(matched["id"]) == [f"S{i}" for i in range(10)]
            assert np.all(np.asarray(matched["separation"]) < 1e-6)
        single = catalog.match(float(catalogue["ra"][5]), float(catalogue["dec"][5]), 0.1, "all")
        assert list(single["id"]) == ["S5"] and list(single["input"]) == [0]

    def test_kept_columns_and_their_selection(self, make_catalog: MakeCatalog) -> None:
        catalogue = random_sky(np.random.default_rng(2), 100)
        catalog = make_catalog(self.fresh_name(), catalogue)
        assert catalog.info.rows == 100 and set(catalog.info.columns) == set(KEPT)
        ra, dec = np.asarray(catalogue["ra"][3::7]), np.asarray(catalogue["dec"][3::7])
        for columns, expected in [(None, catalog.info.columns), (("flags", "mag"), ("flags", "mag")), ((), ())]:
            matched = catalog.match(ra, dec, 1.0, "all", columns=columns)
            assert tuple(matched.colnames) == (*MATCH_COLUMNS, *expected)
            rows = _source_index(matched["id"])
            assert list(rows) == list(range(3, 100, 7))
            for column in expected:
                assert list(matched[column]) == list(catalogue[column][rows]), column

    def test_empty_inputs_give_an_empty_table(self, make_catalog: MakeCatalog) -> None:
        catalog = make_catalog(self.fresh_name(), random_sky(np.random.default_rng(3), 20))
        for mode in MODES:
            matched = catalog.match([], [], 3.0, mode)
            assert len(matched) == 0 and tuple(matched.colnames) == (*MATCH_COLUMNS, *catalog.info.columns)
            assert len(catalog.match(np.zeros(0), np.zeros(0), 3.0, mode, columns=("mag",))) == 0
        far = catalog.match([200.0], [-45.0], 0.1, "nearest")  # an input with no source near: no row
        assert len(far) == 0 and tuple(far.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS

    def test_bad_queries_raise_catalog_errors(self, make_catalog: MakeCatalog) -> None:
        catalog = make_catalog(self.fresh_name(), random_sky(np.random.default_rng(4), 20))
        for radius in (0.0, -1.0, float("nan"), float("-inf")):
            with pytest.raises(CatalogError, match="radius"):
                catalog.match(10.0, 20.0, radius)
        bad_positions: list[tuple[Any, Any]] = [(float("nan"), 0.0), (10.0, float("inf")), (10.0, 91.0), ([1.0, 2.0], [3.0])]
        for ra, dec in bad_positions:
            with pytest.raises(CatalogError, match="positions"):
                catalog.match(ra, dec, 1.0)
        with pytest.raises(CatalogError, match="no column nothere"):
            catalog.match(10.0, 20.0, 1.0, columns=("mag", "nothere"))
        with pytest.raises(CatalogError, match="mode"):
            catalog.match(10.0, 20.0, 1.0, "closest")  # type: ignore[arg-type]
