"""How the records of a Rubin or ELAsTiCC alert become `DataPoint`s.

Photometry: time is the exposure mid-point in MJD (TAI, as the survey gives it); band ``u…y`` (ELAsTiCC:
``u…Y``) becomes ``lsstu…lssty``; flux and flux_err are the PSF difference flux in nJy, so
``zp = 31.4`` (AB): ``mag = 31.4 - 2.5 log10(flux)``. mag and mag_err are derived where flux > 0.
A null band (Rubin's schemas allow it) becomes ``""``: the datapoint is kept but, like the diaObject,
is no detection and is left out of light curves; any other unknown band is a ValueError.

| record | datapoint id | tags |
|---|---|---|
| diaSource, prvDiaSources | ``diaSourceId`` | ``LSST``, ``LSST_DP`` |
| prvDiaForcedSources | ``content_id("LSST_FP", diaForcedSourceId)`` | ``LSST``, ``LSST_FP``, ``forced`` |
| prvDiaNondetectionLimits (7.x, ELAsTiCC) | ``content_id("LSST_UL", stock, ccdVisitId, time, band)`` | ``LSST``, ``LSST_UL``, ``upper_limit`` |
| diaObject | ``content_id("LSST_OBJ", diaObjectId, time, digest of the record)`` | ``LSST``, ``LSST_OBJ`` |

ELAsTiCC datapoints also carry ``ELASTICC``; those of solar-system alerts ``LSST_SSO``. ``extra`` is
the survey's record as decoded (the raw fields). A diaObject datapoint has no photometry (band ``""``,
flux None); its time is the record's own epoch (``validityStartMjdTai``, 7.x: ``radecMjdTai``) or,
where the schema has none (ELAsTiCC), the earliest source time in the alert.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ampel_core.models import DataPoint, content_id

__all__ = ["BANDS", "ELASTICC_FIELDS", "KIND_FORCED", "KIND_UPPER_LIMIT", "MAG_PER_LN", "OBJECT_EPOCH_FIELDS",
           "RUBIN_FIELDS", "TAG_DETECTION", "TAG_ELASTICC", "TAG_FORCED", "TAG_OBJECT", "TAG_SOLAR_SYSTEM",
           "TAG_SURVEY", "TAG_UPPER_LIMIT", "ZP", "ZPSYS", "FieldNames", "detection", "dia_object", "field_names",
           "forced", "forced_key", "upper_limit", "upper_limit_key"]

ZP = 31.4  # AB magnitude of 1 nJy
ZPSYS = "ab"
MAG_PER_LN = 2.5 / math.log(10)  # mag_err = MAG_PER_LN * flux_err / flux

BANDS = {"u": "lsstu", "g": "lsstg", "r": "lsstr", "i": "lssti", "z": "lsstz", "y": "lssty", "Y": "lssty"}

TAG_SURVEY = "LSST"
TAG_ELASTICC = "ELASTICC"
TAG_DETECTION = "LSST_DP"
TAG_FORCED = "LSST_FP"
TAG_UPPER_LIMIT = "LSST_UL"
TAG_OBJECT = "LSST_OBJ"
TAG_SOLAR_SYSTEM = "LSST_SSO"
KIND_FORCED = "forced"  # the survey-neutral kind tags of ampel_core.models.DataPoint
KIND_UPPER_LIMIT = "upper_limit"

OBJECT_EPOCH_FIELDS = ("validityStartMjdTai", "radecMjdTai")


@dataclass(frozen=True, slots=True)
class FieldNames:
    """Where a schema family keeps the photometry of a source record."""

    time: str
    band: str
    flux: str
    flux_err: str


RUBIN_FIELDS = FieldNames(time="midpointMjdTai", band="band", flux="psfFlux", flux_err="psfFluxErr")
ELASTICC_FIELDS = FieldNames(time="midPointTai", band="filterName", flux="psFlux", flux_err="psFluxErr")


def field_names(dia_source: Mapping[str, Any]) -> FieldNames:
    """The field names of the schema family of this diaSource (Rubin 7.x to 11.x or ELAsTiCC)."""
    if "midpointMjdTai" in dia_source:
        return RUBIN_FIELDS
    if "midPointTai" in dia_source:
        return ELASTICC_FIELDS
    raise ValueError("diaSource has neither 'midpointMjdTai' (Rubin) nor 'midPointTai' (ELAsTiCC)")


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) is not float:
        value = float(value)
    return value if math.isfinite(value) else None


def _band(record: Mapping[str, Any], names: FieldNames) -> str:
    band = record[names.band]
    if band is None:  # nullable in Rubin's schemas: kept, without a band, so out of light curves
        return ""
    try:
        return BANDS[band]
    except (KeyError, TypeError):
        raise ValueError(f"unknown band {band!r} in {names.band!r} (expected one of u g r i z y)") from None


def _time(record: Mapping[str, Any], names: FieldNames) -> float:
    time = _finite(record[names.time])
    if time is None:
        raise ValueError(f"{names.time!r} is missing or not finite")
    return time


def _measurement(
    id: int, stock: int, record: dict[str, Any], names: FieldNames, tags: tuple[str, ...]
) -> DataPoint:
    flux = _finite(record[names.flux])
    flux_err = _finite(record[names.flux_err])
    mag = mag_err = None
    if flux is not None and flux > 0:
        mag = ZP - 2.5 * math.log10(flux)
        mag_err = None if flux_err is None else MAG_PER_LN * flux_err / flux
    # positional (the order of the DataPoint fields): this runs for every source of an alert
    return DataPoint(id, stock, _time(record, names), _band(record, names), flux, flux_err, ZP, ZPSYS, mag, mag_err,
                     False, tags, record)


def detection(record: dict[str, Any], stock: int, names: FieldNames, tags: tuple[str, ...]) -> DataPoint:
    """A diaSource (trigger or prvDiaSources); ``tags`` are the alert's base tags."""
    return _measurement(int(record["diaSourceId"]), stock, record, names, (*tags, TAG_DETECTION))


def forced(record: dict[str, Any], stock: int, names: FieldNames, tags: tuple[str, ...],
           id: int | None = None) -> DataPoint:
    """A diaForcedSource: PSF flux forced at the diaObject position (may be negative or None);
    ``id``: its `forced_key` id, where known."""
    if id is None:
        id = content_id(TAG_FORCED, int(record["diaForcedSourceId"]))
    return _measurement(id, stock, record, names, (*tags, TAG_FORCED, KIND_FORCED))


def forced_key(record: dict[str, Any], names: FieldNames) -> tuple[int, float]:
    """(id, time) of the datapoint `forced` makes of this record, without making it; raises what
    `forced` raises on the same record."""
    id = content_id(TAG_FORCED, int(record["diaForcedSourceId"]))
    _finite(record[names.flux])
    _finite(record[names.flux_err])
    time = _time(record, names)
    _band(record, names)
    return id, time


def upper_limit(record: dict[str, Any], stock: int, names: FieldNames, tags: tuple[str, ...],
                id: int | None = None) -> DataPoint:
    """A diaNondetectionLimit: ``flux_err`` is its 1-sigma noise ``diaNoise`` (nJy), ``mag`` the
    5-sigma limiting magnitude; ``id``: its `upper_limit_key` id, where known."""
    time, band = _time(record, names), _band(record, names)
    noise = _finite(record["diaNoise"])
    mag = ZP - 2.5 * math.log10(5 * noise) if noise is not None and noise > 0 else None
    if id is None:
        id = content_id(TAG_UPPER_LIMIT, stock, record["ccdVisitId"], time, band)
    return DataPoint(id=id, stock=stock, time=time, band=band, flux=None, flux_err=noise, zp=ZP, zpsys=ZPSYS,
                     mag=mag, mag_err=None, upper_limit=True, tags=(*tags, TAG_UPPER_LIMIT, KIND_UPPER_LIMIT),
                     extra=record)


def upper_limit_key(record: dict[str, Any], stock: int, names: FieldNames) -> tuple[int, float]:
    """(id, time) of the datapoint `upper_limit` makes of this record, without making it; raises
    what `upper_limit` raises on the same record."""
    time, band = _time(record, names), _band(record, names)
    _finite(record["diaNoise"])
    return content_id(TAG_UPPER_LIMIT, stock, record["ccdVisitId"], time, band), time


def dia_object(record: dict[str, Any], stock: int, fallback_time: float, tags: tuple[str, ...]) -> DataPoint:
    """The diaObject as published with this alert (see the module docstring for id and time)."""
    time = next((t for t in (_finite(record.get(f)) for f in OBJECT_EPOCH_FIELDS) if t is not None), fallback_time)
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    id = content_id(TAG_OBJECT, int(record["diaObjectId"]), time, digest)
    return DataPoint(id=id, stock=stock, time=time, band="", flux=None, flux_err=None, zp=ZP, zpsys=ZPSYS,
                     tags=(*tags, TAG_OBJECT), extra=record)
