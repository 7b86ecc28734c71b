"""`T2HostGalaxy`: the most likely host galaxy of a transient in a galaxy catalogue with sizes,
orientations and distances (GWGC's columns by default), by the directional light radius or by the
projected physical distance.

**Directional light radius** (DLR; Sullivan et al. 2006, ApJ 648, 868; Gupta et al. 2016, AJ 152,
154): the galaxy's light profile is an ellipse of semi-major axis ``a``, semi-minor axis ``b`` and
position angle ``PA`` (east of north); its radius in the direction of the transient, at an angle
``phi`` from the major axis, is ``r = a b / sqrt((a sin phi)^2 + (b cos phi)^2)``, and the
transient's size-normalised distance is ``dlr = separation / r``. A small dlr means the transient
lies well inside the galaxy's light; Gupta et al. take dlr < 4 as a possible host. GWGC gives
``maj`` and ``min`` as *diameters* in arcmin, so ``a = maj / 2``, ``b = min / 2``; a galaxy without
``min`` is taken as round, one without ``PA`` as round with radius ``a``, one without ``maj`` has no dlr.

**Projected distance**: the separation at the galaxy's angular-diameter distance,
``D_A = D / (1 + z)^2`` where ``D`` is the catalogue's distance, taken as a luminosity distance, and
``z`` the redshift at which Planck18 gives that luminosity distance (`astropy.cosmology.z_at_value`).
That ``z`` (a Hubble-flow redshift, without the galaxy's peculiar velocity) is the one reported.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr

from ampel_catalogs.sources import CatalogSpec, catalog_name
from ampel_catalogs.units import OpenedCatalogs, json_value, declared_resources, state_position
from ampel_core.units import JSON, StateUnit

if TYPE_CHECKING:
    from ampel_core.views import StateView

__all__ = ["T2HostGalaxy", "directional_light_radius", "redshift_at_distance"]


def directional_light_radius(semi_major: float, semi_minor: float, position_angle: float, direction: float) -> float:
    """The radius (in the unit of the axes) of an ellipse with the given semi-axes and position angle
    of its major axis (degrees east of north) in the direction ``direction`` (degrees east of north)."""
    phi = math.radians(direction - position_angle)
    return semi_major * semi_minor / math.hypot(semi_major * math.sin(phi), semi_minor * math.cos(phi))


@lru_cache(maxsize=4096)
def redshift_at_distance(distance: float) -> float | None:
    """The redshift at which Planck18's luminosity distance is ``distance`` Mpc; None for a distance
    that is not positive or too small to solve (the Local Group)."""
    if not (math.isfinite(distance) and distance > 0):
        return None
    import warnings

    import astropy.units as u
    from astropy.cosmology import Planck18, z_at_value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            z = float(z_at_value(Planck18.luminosity_distance, distance * u.Mpc, zmin=1e-9, zmax=10).value)
        except Exception:  # astropy's CosmologyError, or a failed root search: no redshift to give
            return None
    return z if math.isfinite(z) else None


class T2HostGalaxy(StateUnit):
    """The most likely host galaxy of a transient among the galaxies of ``catalog`` within
    ``search_radius`` of its position (``position``: the latest detection's or the mean of the
    detections'), ranked by ``rank_by``: ``dlr`` (the directional light radius, galaxies without a
    size last) or ``projected_distance`` (kpc, galaxies without a distance last); candidates beyond
    ``max_dlr`` or ``max_projected_distance`` are left out. Method and references: module docstring.

    Result: ``name``, ``ra``, ``dec`` (degrees), ``separation`` (arcsec), ``dlr``,
    ``projected_distance`` (kpc), ``distance`` (Mpc, the catalogue's), ``z`` (from that distance,
    Planck18), ``runner_up`` (the same keys for the second candidate, or None), ``candidates``
    (how many passed), ``position`` (the position matched, see `ampel_catalogs.units.state_position`),
    ``catalog`` and ``digest`` (the catalogue's name and content digest). Values that are unknown
    are None; every galaxy key is None when there is no candidate. T2SNCosmoFit takes ``z`` with
    ``redshift: {kind: dependency, unit: T2HostGalaxy, key: z}``.
    """

    catalog: CatalogSpec = Field("gwgc", description="The galaxy catalogue: a location or a file {file, ra, dec, id, keep}.")
    search_radius: float = Field(600.0, gt=0, description="Radius (arcsec) within which galaxies are candidates.")
    rank_by: Literal["dlr", "projected_distance"] = Field("dlr", description="What ranks the candidates.")
    max_dlr: float | None = Field(4.0, gt=0, description="Leave out candidates with a larger dlr (None: keep all).")
    max_projected_distance: float | None = Field(
        None, gt=0, description="Leave out candidates farther than this (kpc; None: keep all).")
    position: Literal["latest", "mean"] = Field("mean", description="Which position of the transient to use.")
    major_axis: str = Field("maj", description="Column of the major-axis diameter (arcmin).")
    minor_axis: str = Field("min", description="Column of the minor-axis diameter (arcmin).")
    position_angle: str = Field("PAHyp", description="Column of the major axis' position angle (degrees east of north).")
    distance: str = Field("Dist", description="Column of the distance (Mpc).")

    _opened: OpenedCatalogs = PrivateAttr(default_factory=OpenedCatalogs)

    def resources(self) -> dict[str, str | Path]:
        """The catalogue's Parquet file (local) or file, as ``catalog:<name>``; none for PostgreSQL/extcats."""
        return declared_resources({"host": self.catalog})

    def process(self, state: StateView) -> JSON:
        catalog = self._opened.get("host", self.catalog)
        where = state_position(state.datapoints, self.position)
        result: JSON = {**_describe(None), "runner_up": None, "candidates": 0, "position": where,
                        "catalog": catalog_name(self.catalog), "digest": catalog.info.digest}
        if where is None:
            return result
        columns = (self.major_axis, self.minor_axis, self.position_angle, self.distance)
        table = catalog.match(where["ra"], where["dec"], self.search_radius, "all", columns)
        if not len(table):
            return result
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        galaxies = SkyCoord(table["ra"], table["dec"], unit="deg")
        directions = galaxies.position_angle(SkyCoord(where["ra"], where["dec"], unit="deg")).to_value(u.deg)
        candidates = [self._candidate(row, float(direction)) for row, direction in zip(table, directions, strict=True)]
        candidates = [c for c in candidates
                      if (self.max_dlr is None or c["dlr"] is None or c["dlr"] <= self.max_dlr)
                      and (self.max_projected_distance is None or c["projected_distance"] is None
                           or c["projected_distance"] <= self.max_projected_distance)]
        rank = self.rank_by
        candidates.sort(key=lambda c: (c[rank] is None, c[rank] if c[rank] is not None else 0.0, c["separation"]))
        if candidates:
            best = candidates[0]
            result.update(_describe(best))
            result["runner_up"] = _describe(candidates[1]) if len(candidates) > 1 else None
            result["candidates"] = len(candidates)
        return result

    def _candidate(self, row: Any, direction: float) -> dict[str, Any]:
        """A galaxy of the match table with its dlr, projected distance and redshift."""
        separation = float(row["separation"])
        major, minor, angle, distance = (_number(row[c]) for c in
                                         (self.major_axis, self.minor_axis, self.position_angle, self.distance))
        dlr = None
        if major is not None and major > 0:
            semi_major = major * 30.0  # arcmin diameter -> arcsec radius
            semi_minor = minor * 30.0 if minor is not None and minor > 0 else semi_major
            radius = semi_major if angle is None else directional_light_radius(semi_major, semi_minor, angle, direction)
            dlr = separation / radius
        z = redshift_at_distance(distance) if distance is not None else None
        projected = None
        if distance is not None and distance > 0 and z is not None:
            from astropy import units as u

            angular_diameter_distance = distance * u.Mpc / (1 + z) ** 2
            projected = float((separation * u.arcsec * angular_diameter_distance).to_value(u.kpc, u.dimensionless_angles()))
        return {"name": json_value(row["id"]), "ra": float(row["ra"]), "dec": float(row["dec"]), "separation": separation,
                "dlr": dlr, "projected_distance": projected, "distance": distance, "z": z}


def _number(value: Any) -> float | None:
    plain = json_value(value)
    return float(plain) if isinstance(plain, (int, float)) and not isinstance(plain, bool) else None


_KEYS = ("name", "ra", "dec", "separation", "dlr", "projected_distance", "distance", "z")


def _describe(candidate: dict[str, Any] | None) -> JSON:
    return {key: None if candidate is None else candidate[key] for key in _KEYS}
