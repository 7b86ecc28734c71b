"""Catalogue units: `T2CatalogMatch` (T2, what lies near a transient) and `CatalogVetoFilter` (T0,
reject alerts near known variable stars, AGN, young stellar objects), plus the helpers they and
`ampel_catalogs.hosts` share: the position of a state, catalogues opened once per unit instance,
and match rows as JSON.

Positions are read from the datapoints' survey fields ``extra["ra"]``, ``extra["dec"]`` (degrees;
ZTF candidates, Rubin diaSources), with ``extra["raErr"]``, ``extra["decErr"]`` (degrees) as
uncertainties where the survey gives them (Rubin).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ampel_catalogs.catalog import Mode
from ampel_catalogs.sources import CatalogSpec, catalog_name, catalog_resource, open_spec
from ampel_core.units import JSON, AlertFilter, Reject, StateUnit

if TYPE_CHECKING:
    from astropy.table import Table

    from ampel_catalogs.catalog import Catalog
    from ampel_core.models import Alert, DataPoint
    from ampel_core.views import StateView

__all__ = ["CatalogQuery", "CatalogVetoFilter", "OpenedCatalogs", "Position", "T2CatalogMatch", "VetoCatalog",
           "datapoint_position", "declared_resources", "json_value", "match_rows", "state_position"]

Position = Literal["latest", "mean", "datapoints"]


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def datapoint_position(datapoint: DataPoint) -> tuple[float, float] | None:
    """(ra, dec) in degrees of a datapoint, or None when its survey fields have none."""
    ra, dec = datapoint.extra.get("ra"), datapoint.extra.get("dec")
    if _finite(ra) and _finite(dec) and abs(dec) <= 90:
        return float(ra) % 360.0, float(dec)
    return None


def state_position(datapoints: Sequence[DataPoint], how: Literal["latest", "mean"]) -> JSON | None:
    """The position of a transient from its detections with a position: the latest one's, or their
    mean (on the unit sphere, so RA 0/360 needs no care), weighted by 1/sigma^2 when every one has
    ``raErr`` and ``decErr``. ``{"ra", "dec" (degrees), "method", "points", "weighted"}`` or None."""
    located = sorted(((dp, p) for dp in datapoints if dp.is_detection and (p := datapoint_position(dp))),
                     key=lambda item: (item[0].time, item[0].id))
    if not located:
        return None
    if how == "latest":
        ra, dec = located[-1][1]
        return {"ra": ra, "dec": dec, "method": "latest", "points": 1, "weighted": False}
    import numpy as np

    from ampel_catalogs.local import unit_vectors

    positions = np.array([p for _, p in located])
    errors = [(dp.extra.get("raErr"), dp.extra.get("decErr")) for dp, _ in located]
    weighted = all(_finite(e_ra) and _finite(e_dec) and e_ra > 0 and e_dec > 0 for e_ra, e_dec in errors)
    weights = np.ones(len(located))
    if weighted:
        e_ra, e_dec = np.array(errors, dtype=float).T
        weights = 1 / ((e_ra * np.cos(np.radians(positions[:, 1]))) ** 2 + e_dec**2)
    vector = (unit_vectors(positions[:, 0], positions[:, 1]) * weights[:, None]).sum(axis=0)
    x, y, z = vector / np.linalg.norm(vector)
    return {"ra": float(np.degrees(np.arctan2(y, x)) % 360), "dec": float(np.degrees(np.arcsin(np.clip(z, -1, 1)))),
            "method": "mean", "points": len(located), "weighted": weighted}


def json_value(value: Any) -> Any:
    """A table cell as a JSON value: numpy scalars as Python ones, NaN and masked as None."""
    if value is None or getattr(value, "mask", False) is True:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def match_rows(table: Table) -> list[list[JSON]]:
    """Rows of a match table as JSON dicts (``input`` dropped), grouped by input: entry i holds the
    matches of the i-th position (the table must cover inputs 0..max)."""
    size = int(max(table["input"], default=-1)) + 1
    grouped: list[list[JSON]] = [[] for _ in range(size)]
    names = [c for c in table.colnames if c != "input"]
    for row in table:
        grouped[int(row["input"])].append({name: json_value(row[name]) for name in names})
    return grouped


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogQuery(_Config):
    """One catalogue to match against."""

    catalog: CatalogSpec = Field(description="A location (name, folder, postgresql://, extcats://) or a file "
                                             "{file, ra, dec, id, keep} imported on first use.")
    name: str | None = Field(None, description="Key of this catalogue in the result; default: from the location.")
    radius: float = Field(3.0, gt=0, description="Match radius (arcsec).")
    mode: Mode = Field("nearest", description="nearest: the nearest source or None; any: the same, for vetoes; "
                                              "all: every source within the radius, nearest first.")
    columns: list[str] | None = Field(None, description="Kept columns to return; default: all.")

    @property
    def key(self) -> str:
        return self.name or catalog_name(self.catalog)


class OpenedCatalogs:
    """Catalogues opened on first use and kept for the life of a unit instance."""

    def __init__(self) -> None:
        self._opened: dict[str, Catalog] = {}

    def get(self, key: str, spec: CatalogSpec) -> Catalog:
        if key not in self._opened:
            self._opened[key] = open_spec(spec)
        return self._opened[key]


def declared_resources(specs: Mapping[str, CatalogSpec]) -> dict[str, str | Path]:
    """``{"catalog:<key>": file}`` of the catalogues that have a file (see `catalog_resource`)."""
    found = {key: catalog_resource(spec) for key, spec in specs.items()}
    return {f"catalog:{key}": path for key, path in found.items() if path is not None}


def _unique_keys(keys: list[str], reserved: tuple[str, ...] = ()) -> None:
    clashes = sorted({k for k in keys if keys.count(k) > 1 or k in reserved})
    if clashes:
        raise ValueError(f"catalogue names {', '.join(clashes)} are used twice or reserved ({', '.join(reserved)}); "
                         "give each catalogue a distinct `name`")


class T2CatalogMatch(StateUnit):
    """Match a transient's position against catalogues (local, PostgreSQL q3c, extcats).

    ``position``: ``latest`` (the latest detection's), ``mean`` (of the detections; weighted by
    1/sigma^2 where the survey gives errors) or ``datapoints`` (each detection with a position).

    Result: one key per catalogue (``name``, default from its location). With ``latest``/``mean``
    its value is, for modes ``nearest`` and ``any``, the nearest source ``{"id", "ra", "dec",
    "separation" (arcsec), <kept columns>}`` or None, and for ``all`` a list of them, nearest first
    (empty when nothing matched). With ``datapoints`` it is ``{<datapoint id>: that value}``. Beside
    them: ``position`` (see `state_position`; None when no detection has one: every catalogue is
    then None or []) and ``digests`` (``{name: content digest}`` of each catalogue: for PostgreSQL
    and extcats catalogues, which have no file to declare, this is what ties a result to the
    catalogue's content; their trace records only the location string).

    Local catalogues and catalogue files are resources: a changed catalogue changes the trace id.
    """

    catalogs: list[CatalogQuery] = Field(min_length=1, description="The catalogues, each with radius and mode.")
    position: Position = Field("mean", description="Which position to match: latest, mean or datapoints.")

    _opened: OpenedCatalogs = PrivateAttr(default_factory=OpenedCatalogs)

    @model_validator(mode="after")
    def _distinct_names(self) -> T2CatalogMatch:
        _unique_keys([query.key for query in self.catalogs], reserved=("position", "digests"))
        return self

    def resources(self) -> dict[str, str | Path]:
        """The Parquet file of each local catalogue and each catalogue file, as ``catalog:<name>``."""
        return declared_resources({query.key: query.catalog for query in self.catalogs})

    def process(self, state: StateView) -> JSON:
        if self.position == "datapoints":
            points = [(dp.id, p) for dp in state.detections if (p := datapoint_position(dp))]
            where: JSON | None = {"method": "datapoints", "points": len(points)} if points else None
        else:
            where = state_position(state.datapoints, self.position)
            points = [(0, (where["ra"], where["dec"]))] if where else []
        result: JSON = {"position": where, "digests": {}}
        for query in self.catalogs:
            catalog = self._opened.get(query.key, query.catalog)
            result["digests"][query.key] = catalog.info.digest
            found: list[list[JSON]] = []
            if points:
                table = catalog.match([p[1][0] for p in points], [p[1][1] for p in points], query.radius, query.mode,
                                      None if query.columns is None else tuple(query.columns))
                found = match_rows(table)
            found += [[] for _ in range(len(points) - len(found))]
            values = [rows if query.mode == "all" else (rows[0] if rows else None) for rows in found]
            if self.position == "datapoints":
                result[query.key] = {str(point_id): value for (point_id, _), value in zip(points, values, strict=True)}
            else:
                result[query.key] = values[0] if values else ([] if query.mode == "all" else None)
        return result


class VetoCatalog(_Config):
    """A catalogue whose sources veto alerts near them."""

    catalog: CatalogSpec = Field(description="A location or a file {file, ra, dec, id, keep} (see T2CatalogMatch).")
    name: str | None = Field(None, description="Name in the rejection reason; default: from the location.")
    radius: float = Field(2.0, gt=0, description="Veto radius (arcsec).")

    @property
    def key(self) -> str:
        return self.name or catalog_name(self.catalog)


class CatalogVetoFilter(AlertFilter):
    """Reject alerts whose triggering detection lies within ``radius`` of a source of any of the
    ``catalogs`` (variable stars: GCVS; AGN and blazars: 4LAC, 3HSP, MILLIQUAS; young stellar objects:
    SPICY); accept the others.

    A rejection is ``Reject(-(i + 1), "<name> source <id> at <separation>\\" (veto radius <r>\\")")``
    for the i-th catalogue (the first that vetoes). An alert whose trigger has no position is
    rejected with code -100, or accepted with ``accept_without_position``. One ``any`` match per
    catalogue and alert; catalogues are opened on the first alert and kept.
    """

    catalogs: list[VetoCatalog] = Field(min_length=1, description="The vetoing catalogues and radii.")
    accept_without_position: bool = Field(False, description="Accept alerts whose trigger has no ra/dec.")

    _opened: OpenedCatalogs = PrivateAttr(default_factory=OpenedCatalogs)

    @model_validator(mode="after")
    def _distinct_names(self) -> CatalogVetoFilter:
        _unique_keys([veto.key for veto in self.catalogs])
        return self

    def resources(self) -> dict[str, str | Path]:
        """The Parquet file of each local catalogue and each catalogue file, as ``catalog:<name>``."""
        return declared_resources({veto.key: veto.catalog for veto in self.catalogs})

    def process(self, alert: Alert) -> bool | int | Reject | None:
        where = datapoint_position(alert.trigger)
        if where is None:
            return True if self.accept_without_position else Reject(-100, "the trigger has no position")
        for index, veto in enumerate(self.catalogs):
            table = self._opened.get(veto.key, veto.catalog).match(where[0], where[1], veto.radius, "any", ())
            if len(table):
                source, separation = str(table["id"][0]), float(table["separation"][0])
                return Reject(-(index + 1), f"{veto.key} source {source} at {separation:.2f}\" "
                                            f"(veto radius {veto.radius:g}\")")
        return True

