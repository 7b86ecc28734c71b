"""The ZTF alert format: Avro alert containers (ZTF schemas 1.8 to 4.02) to survey-neutral `Alert`s.

One payload is one Avro object container (optionally gzipped) holding one alert (as IPAC
distributes them) or many (broker re-distributions). Datapoints:

- the triggering ``candidate`` (always ``datapoints[0]``) and every detection in ``prv_candidates``
  (an entry with a ``candid`` and a ``magpsf``): ``id`` = ``candid``; ``flux``/``flux_err`` in the
  zp=25 AB system from ``magpsf``/``sigmapsf``, negative when ``isdiffpos`` is ``f``/``0``;
- every upper limit in ``prv_candidates`` (no ``candid``): ``flux`` None, ``flux_err`` the 1-sigma
  noise flux (a fifth of the flux at the 5-sigma ``diffmaglim``), ``mag`` = ``diffmaglim``, and
  the ``id`` `upper_limit_id`: -(``pid`` x 10^4 + ``diffmaglim`` in hundredths of a magnitude),
  the same on every re-ingest and negative, so that upper limits are told from detections by
  their sign (as in AMPEL). ``pid`` names the processed image, of which a stock has one limit
  (datapoints are keyed by stock and id). Entries without a ``diffmaglim`` between 0 and 50 mag
  measure nothing and are skipped (ZTF writes e.g. -1006.94 where it computed no limit);
- with ``forced_photometry``, the ``fp_hists`` of schema 4.x alerts (``procstatus`` '0' only),
  tagged ``forced``, ``flux`` = ``forcediffimflux`` scaled from ``magzpsci`` to zp=25, and a
  content-derived ``id`` from the stock, ``jd``, ``fid`` and ``pid``.

``time`` is MJD (``jd`` - 2400000.5), ``band`` ``ztfg``/``ztfr``/``ztfi`` for ``fid`` 1/2/3.
Every datapoint is tagged ``ZTF`` plus the data-rights tag of its ``programid`` (`PROGRAM_TAGS`).
``extra`` is the raw ZTF entry, every field (the cutouts are not in it).
A datapoint first seen in ``prv_candidates`` carries fewer fields than its ``candidate`` form;
the store keeps whichever it sees first (datapoints are immutable).

The cutouts go to ``Alert.blobs`` (``cutoutScience``, ``cutoutTemplate``, ``cutoutDifference``: the
``stampData`` bytes as published, gzipped FITS from IPAC), never into datapoints. ``Alert.extra`` holds the alert's top-level
fields (``schemavsn``, ``publisher``, broker annotations) and `FILTER_FIELDS` of the candidate.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Container
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ampel_core.alerts import AlertDecodeError, PartialDecodeError, RejectedRecord
from ampel_core.models import Alert, DataPoint, LazyDataPoints, content_id
from ampel_ztf.avro import peek_strings, read_container
from ampel_ztf.ids import to_stock_id

__all__ = ["BANDS", "CUTOUTS", "FILTER_FIELDS", "MAG_TO_FLUX_ERR", "MJD_OFFSET", "NOT_EXTRA", "PROGRAM_TAGS",
           "SIGNS", "ZERO_POINT", "ZTFAlertFormat", "detection", "forced_point", "tags", "upper_limit",
           "upper_limit_id"]

MJD_OFFSET = 2400000.5
ZERO_POINT = 25.0
BANDS = {1: "ztfg", 2: "ztfr", 3: "ztfi"}
SIGNS = {"t": 1.0, "1": 1.0, "f": -1.0, "0": -1.0}
MAG_TO_FLUX_ERR = math.log(10) / 2.5

#: programid -> data-rights tag. 1 public survey; 2 ZTF partnership (collaboration); 3 Caltech
#: time; 0 engineering/commissioning data. Unknown programids get ``ZTF_PROGRAMID_<n>``.
PROGRAM_TAGS = {0: "ZTF_COM", 1: "ZTF_PUB", 2: "ZTF_PRIV", 3: "ZTF_CALTECH"}
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
NOT_EXTRA = frozenset(("candidate", "prv_candidates", "fp_hists", *CUTOUTS))
#: candidate fields copied into Alert.extra (those filters usually look at)
FILTER_FIELDS = ("ra", "dec", "programid", "isdiffpos", "rb", "drb", "ndethist", "ncovhist", "jdstarthist",
                 "jdendhist", "ssdistnr", "ssmagnr", "sgscore1", "distpsnr1", "srmag1", "neargaiabright",
                 "maggaiabright")

_tags: dict[Any, tuple[str, ...]] = {}


def tags(programid: Any) -> tuple[str, ...]:
    """The tags of a datapoint of ``programid``: ``("ZTF", <data-rights tag>)``."""
    found = _tags.get(programid)
    if found is None:
        if not isinstance(programid, int):
            raise ValueError(f"programid {programid!r} is not an integer")
        found = _tags[programid] = ("ZTF", PROGRAM_TAGS.get(programid, f"ZTF_PROGRAMID_{programid}"))
    return found


def _band(fid: Any) -> str:
    band = BANDS.get(fid)
    if band is None:
        raise ValueError(f"fid {fid!r} is not 1 (g), 2 (r) or 3 (i)")
    return band


def detection(entry: dict[str, Any], stock: int) -> DataPoint:
    """The datapoint of a detection (``candidate`` or a ``prv_candidates`` entry with a candid)."""
    mag, mag_err = entry["magpsf"], entry["sigmapsf"]
    sign = SIGNS.get(entry["isdiffpos"])
    if sign is None:
        raise ValueError(f"candid {entry['candid']}: isdiffpos {entry['isdiffpos']!r} is not t, f, 1 or 0")
    flux = sign * 10 ** (-0.4 * (mag - ZERO_POINT))
    return DataPoint(
        id=entry["candid"], stock=stock, time=entry["jd"] - MJD_OFFSET, band=_band(entry["fid"]),
        flux=flux, flux_err=None if mag_err is None else abs(flux) * mag_err * MAG_TO_FLUX_ERR,
        mag=mag, mag_err=mag_err, tags=tags(entry["programid"]), extra=entry)


def upper_limit(entry: dict[str, Any], stock: int) -> DataPoint | None:
    """The datapoint of an upper limit (a ``prv_candidates`` entry without candid); None if the
    entry has no usable ``diffmaglim``."""
    limit = entry["diffmaglim"]
    if limit is None or not 0.0 < limit < 50.0:  # ZTF writes e.g. -1006.94 where it has no limit
        return None
    return _upper_limit(entry, stock, upper_limit_id(entry.get("pid"), limit, entry["jd"], entry["fid"]))


def _upper_limit(entry: dict[str, Any], stock: int, ident: int) -> DataPoint:
    """The datapoint of an upper limit whose ``diffmaglim`` was checked and whose id is ``ident``."""
    limit, jd, fid = entry["diffmaglim"], entry["jd"], entry["fid"]
    # positional (the order of the DataPoint fields): this runs for most datapoints of an alert
    return DataPoint(
        ident, stock, jd - MJD_OFFSET, _band(fid),
        None, 10 ** (-0.4 * (limit - ZERO_POINT)) / 5.0, ZERO_POINT, "ab", limit, None, True, tags(entry["programid"]),
        # most candidate fields are null for a non-detection (43 of 50): leaving them out halves
        # what is encoded and stored per upper limit, and loses nothing
        {key: value for key, value in entry.items() if value is not None})


def upper_limit_id(pid: int | None, limit: float, jd: float, fid: int) -> int:
    """The stable negative id of an upper limit: -(pid x 10^4 + diffmaglim in hundredths of a mag),
    or, without an integer pid below 9 x 10^14, the negated `content_id` of pid, limit, jd and fid."""
    if type(pid) is int and 0 <= pid < 9 * 10**14:
        return -(pid * 10_000 + round(limit * 100))
    return -content_id("ZTF upper limit", pid, limit, jd, fid)


def forced_point(entry: dict[str, Any], stock: int) -> DataPoint | None:
    """The datapoint of a forced-photometry entry (``fp_hists``); None unless it succeeded
    (``procstatus`` '0' with a finite flux and zero point)."""
    flux, flux_err, zero_point = entry.get("forcediffimflux"), entry.get("forcediffimfluxunc"), entry.get("magzpsci")
    if entry.get("procstatus") != "0" or flux is None or zero_point is None or flux == -99999.0:
        return None
    if not math.isfinite(flux) or not math.isfinite(zero_point):
        return None
    scale = 10 ** (-0.4 * (zero_point - ZERO_POINT))
    flux *= scale
    flux_err = None if flux_err is None else flux_err * scale
    positive = flux > 0
    return DataPoint(
        id=content_id("ZTF forced", stock, entry["jd"], entry["fid"], entry.get("pid")), stock=stock,
        time=entry["jd"] - MJD_OFFSET, band=_band(entry["fid"]), flux=flux, flux_err=flux_err,
        mag=ZERO_POINT - 2.5 * math.log10(flux) if positive else None,
        mag_err=flux_err / flux / MAG_TO_FLUX_ERR if positive and flux_err is not None else None,
        tags=(*tags(entry["programid"]), "forced"), extra=entry)


class ZTFAlertFormat(BaseModel):
    """ZTF Avro alerts (see the module documentation for the datapoint mapping).

    Raises `AlertDecodeError` (origin and reason in the message) for an empty payload, bytes that
    are not an Avro container, a truncated or corrupt container, a schema that is not a ZTF alert
    schema, and an alert whose fields cannot be mapped (e.g. an objectId that is not a ZTF name).
    One bad alert in a multi-alert container makes the whole payload undecodable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    forced_photometry: bool = Field(False, description="Turn fp_hists (schema 4.x) into 'forced' datapoints.")
    cutouts: bool = Field(True, description="Keep the cutouts as alert blobs.")

    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        if payload[:2] == b"\x1f\x8b":
            try:
                payload = gzip.decompress(payload)
            except (OSError, EOFError) as error:
                raise AlertDecodeError(f"{origin}: corrupt gzip data: {error}") from None
        try:
            schema, records = read_container(payload)
        except AlertDecodeError as error:
            raise AlertDecodeError(f"{origin}: {error}") from None
        if "objectId" not in schema.fields or "candidate" not in schema.fields:
            raise AlertDecodeError(f"{origin}: not a ZTF alert: schema '{schema.name}' has no 'objectId' and "
                                   "'candidate' fields")
        if not records:
            raise AlertDecodeError(f"{origin}: the Avro container holds no alert")
        alerts, rejects = [], []
        for number, record in enumerate(records, 1):
            try:
                alerts.append(self.alert(record))
            except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as error:
                kind = "missing field" if isinstance(error, KeyError) else type(error).__name__
                reason = f"{origin}: alert {number} of {len(records)}: {kind}: {error}"
                if len(records) == 1:
                    raise AlertDecodeError(reason) from None
                rejects.append(RejectedRecord(f"{origin}#{number - 1}", reason, _alone(schema.parsed, record, payload)))
        if rejects:  # a container's good alerts are kept; each bad one is quarantined alone
            raise PartialDecodeError(origin, alerts, rejects)
        return alerts

    def stocks(self, payload: bytes, origin: str) -> set[int]:
        """The stock ids of the alerts in ``payload``, from their objectIds read without decoding
        the alerts (a partitioned run, ``ampel job --workers N``, decodes only its own alerts);
        empty where they cannot be read so (e.g. a block of several alerts): then it decodes."""
        if payload[:2] == b"\x1f\x8b":
            payload = gzip.decompress(payload)
        return {to_stock_id(name) for name in peek_strings(payload, "objectId") or ()}

    def alert(self, record: dict[str, Any]) -> Alert:
        """The Alert of one decoded ZTF alert record."""
        name = record["objectId"]
        stock = to_stock_id(name)
        candidate = record["candidate"]
        trigger = detection(candidate, stock)
        detections = [trigger]
        seen = {trigger.id}
        limits = []
        for entry in record.get("prv_candidates") or ():
            if entry["candid"] is not None and entry["magpsf"] is not None:
                point = detection(entry, stock)
                if point.id not in seen and point.is_detection:
                    seen.add(point.id)
                    detections.append(point)
                continue
            if (entry["fid"] not in BANDS or type(entry["programid"]) is not int or type(entry["jd"]) is not float
                    or not (entry["diffmaglim"] is None or type(entry["diffmaglim"]) is float)):
                # checked now, built later (rest): a bad entry must make the alert undecodable here
                raise ValueError(f"upper limit with fid {entry['fid']!r}, programid {entry['programid']!r}, "
                                 f"jd {entry['jd']!r}, diffmaglim {entry['diffmaglim']!r}")
            limits.append(entry)
        fp_hists = (record.get("fp_hists") or ()) if self.forced_photometry else ()

        def rest(known: Container[int] = ()) -> list[DataPoint]:
            """Upper limits and forced photometry: most of an alert, built only when needed; of
            the upper limits only those whose ids are not in ``known`` (an upper limit's id is
            known before it is built; most of an alert's history is stored by earlier alerts)."""
            points, ids = [], set(seen)
            for entry in limits:
                limit = entry["diffmaglim"]
                if limit is None or not 0.0 < limit < 50.0:  # as upper_limit
                    continue
                ident = upper_limit_id(entry.get("pid"), limit, entry["jd"], entry["fid"])
                if ident not in ids:
                    ids.add(ident)
                    if ident not in known:
                        points.append(_upper_limit(entry, stock, ident))
            for entry in fp_hists:  # built whole: building one can fail, and must fail as it did
                point = forced_point(entry, stock)
                if point is not None and point.id not in ids:
                    ids.add(point.id)
                    if point.id not in known:
                        points.append(point)
            return points

        extra = {key: value for key, value in record.items() if key not in NOT_EXTRA}
        for key in FILTER_FIELDS:
            extra[key] = candidate.get(key)
        blobs = {}
        if self.cutouts:
            for key in CUTOUTS:
                cutout = record.get(key)
                data = cutout.get("stampData") if isinstance(cutout, dict) else cutout
                if isinstance(data, bytes) and data:
                    blobs[key] = data
        alert_id = record.get("candid") or candidate["candid"]
        return Alert(id=alert_id, stock=stock, stock_name=name, datapoints=LazyDataPoints(detections, rest, rest),
                     extra=extra, blobs=blobs)


def _alone(schema: Any, record: dict[str, Any], payload: bytes) -> bytes:
    """``record`` as a one-record Avro container of its writer ``schema``; the whole ``payload``
    where it cannot be written so (a record the schema does not describe)."""
    import io

    import fastavro

    try:
        buffer = io.BytesIO()
        fastavro.writer(buffer, schema, [record])
        return buffer.getvalue()
    except Exception:
        return payload
