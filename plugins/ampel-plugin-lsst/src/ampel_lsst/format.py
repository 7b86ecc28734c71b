"""Alert formats for Rubin/LSST (schemas 7.x to 11.x) and DESC ELAsTiCC (v0.9, v0.9.1) alerts.

One payload may be (after gunzip, if gzipped):

- an Avro container file (``Obj\\x01``): decoded with the schema it carries; its version is read
  from the schema's name (``lsst.v11_1.alert`` -> ``lsst.v11_1``);
- a Confluent wire-format message, as Rubin's Kafka delivers it: byte 0, a 4-byte big-endian
  schema-registry id, then a schemaless Avro body. The id is looked up in ``schema_ids``; for an
  id not in the table the shipped schemas are tried newest first and the first that decodes the
  whole body exactly is taken;
- a bare schemaless Avro body (ELAsTiCC2 style): decoded with ``schema_version`` if set, else by
  trying the shipped schemas as above;
- a Parquet file (``PAR1``) whose rows are alert records, as Fink exports them (needs pyarrow).

A record of a container or Parquet file that does not make an alert does not cost its siblings:
`decode` raises `PartialDecodeError` with the others' alerts and that record alone (origin
``<origin>#<index>``, its bytes as a one-record container or Parquet file).

See `ampel_lsst.datapoints` for how records become datapoints, and docs/lsst.md.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Container
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ampel_core.alerts import AlertDecodeError, PartialDecodeError, RejectedRecord
from ampel_core.models import Alert, DataPoint, LazyDataPoints, content_id
from ampel_lsst import avro_schemas, datapoints
from ampel_lsst.datapoints import (
    ELASTICC_FIELDS, TAG_ELASTICC, TAG_SOLAR_SYSTEM, TAG_SURVEY, field_names,
)

__all__ = ["AVRO_MAGIC", "CUTOUTS", "EXTRA_FIELDS", "GZIP_MAGIC", "PARQUET_MAGIC", "WIRE_HEADER",
           "ElasticcAlertFormat", "LSSTAlertFormat", "stock_of"]

AVRO_MAGIC = b"Obj\x01"
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
WIRE_HEADER = 5  # magic byte 0 + 4-byte schema id
CUTOUTS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")
EXTRA_FIELDS = ("observation_reason", "target_name")


def _present(value: Any) -> bool:
    # Rubin's pipelines write 0 for "not associated" in some versions; no real id is 0
    return value is not None and value != 0


def stock_of(record: dict[str, Any]) -> tuple[int, str, int | None, int | None]:
    """(stock id, stock name, diaObjectId, ssObjectId) of a decoded alert record.

    The stock id is the diaObjectId (of ``diaObject``, else of ``diaSource``). A solar-system alert
    without one has stock ``content_id("LSST:ssObject", ssObjectId)`` and name ``ssObject:<id>``.
    ValueError when the alert has neither id.
    """
    source = record["diaSource"]
    obj = record.get("diaObject")
    object_id: Any = obj.get("diaObjectId") if obj else None
    if not _present(object_id):
        object_id = source.get("diaObjectId")
    ss_id: Any = source.get("ssObjectId")
    for key in ("ssSource", "ssObject"):
        if not _present(ss_id) and record.get(key):
            ss_id = record[key].get("ssObjectId")
    dia_id = int(object_id) if _present(object_id) else None
    sso_id = int(ss_id) if _present(ss_id) else None
    if dia_id is not None:
        return dia_id, str(dia_id), dia_id, sso_id
    if sso_id is not None:
        return content_id("LSST:ssObject", sso_id), f"ssObject:{sso_id}", None, sso_id
    raise ValueError("alert has neither a diaObjectId nor an ssObjectId")


class LSSTAlertFormat(BaseModel):
    """Rubin/LSST and ELAsTiCC alerts, schema detected (see module docstring and docs/lsst.md).

    ``datapoints[0]`` is the triggering diaSource, then prvDiaSources, prvDiaForcedSources,
    prvDiaNondetectionLimits and the diaObject (one datapoint per distinct source id). The alert id
    is the triggering diaSourceId; ``extra`` holds ``schema``, ``diaObjectId``, ``ssObjectId``,
    ``alertId`` (7.x, ELAsTiCC), ``observation_reason``, ``target_name`` (9.0+) where present, and
    ``tags``; ``blobs`` holds the cutouts.
    """

    model_config = ConfigDict(extra="forbid")

    default_candidates: ClassVar[tuple[str, ...]] = avro_schemas.SHIPPED_SCHEMAS

    schema_version: str | None = Field(None, description=(
        "Decode schemaless bodies with this shipped schema (e.g. 'lsst.v9_0') instead of detecting it; "
        "Avro containers must then carry this version."))
    schema_ids: dict[int, str] = Field(default_factory=lambda: dict(avro_schemas.RUBIN_REGISTRY_IDS), description=(
        "Confluent schema-registry id -> shipped schema, for wire-format messages. Default: Rubin's "
        "MAJOR*100+MINOR ids. Unknown ids fall back to trying the shipped schemas."))
    candidates: list[str] | None = Field(None, description=(
        "Shipped schemas tried, in order, on schemaless bodies of unknown schema; default: all, newest first."))
    cutouts: bool = Field(True, description="Keep the cutout images as alert blobs.")
    dia_object: bool = Field(True, description="Make the diaObject a datapoint (tag LSST_OBJ).")

    _last: str | None = PrivateAttr(None)  # the schema that matched last: tried first next time
    _containers: avro_schemas.ContainerReader = PrivateAttr(default_factory=avro_schemas.ContainerReader)

    @field_validator("schema_version")
    @classmethod
    def _shipped(cls, name: str | None) -> str | None:
        return None if name is None else avro_schemas.check_name(name)

    @field_validator("schema_ids")
    @classmethod
    def _shipped_values(cls, table: dict[int, str]) -> dict[int, str]:
        for name in table.values():
            avro_schemas.check_name(name)
        return table

    @field_validator("candidates")
    @classmethod
    def _shipped_list(cls, names: list[str] | None) -> list[str] | None:
        for name in names or ():
            avro_schemas.check_name(name)
        return names

    # decoding ------------------------------------------------------------------------------------

    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        """All alerts in ``payload``, one per record, in order.

        AlertDecodeError with the reason when the payload cannot be read, or when its only record
        does not make an alert. When some records of a container or Parquet file do not make an
        alert, PartialDecodeError with the alerts of the others and one `RejectedRecord` per failing
        record: origin ``<origin>#<index>`` (index from 0), the reason, and that record alone as a
        one-record Avro container or Parquet file (the whole payload if it cannot be re-encoded).
        """
        data = self._gunzip(payload, origin)
        cut: Callable[[int], bytes] | None = None  # one record's own bytes, for multi-record payloads
        if data[:4] == AVRO_MAGIC:
            records, schema, cut = self._container(data, origin)
        elif data[:4] == PARQUET_MAGIC:
            records, schema, cut = self._parquet(data, origin)
        elif data[:1] == b"\x00" and len(data) > WIRE_HEADER:
            records, schema = self._wire(data, origin)
        elif data:
            schema, record = self._schemaless(data, origin, "schemaless body")
            records = [record]
        else:
            raise AlertDecodeError(f"{origin}: empty payload")
        alerts, rejects = [], []
        for index, record in enumerate(records):
            try:
                alerts.append(self.alert(record, schema))
            except Exception as error:  # a record that does not fit the mapping (missing field, bad type)
                what = f"missing field {error}" if isinstance(error, KeyError) else avro_schemas.describe(error)
                reason = f"{origin}: alert {index} ({schema or 'unknown schema'}): {what}"
                if len(records) == 1 or cut is None:
                    raise AlertDecodeError(reason) from None
                rejects.append(RejectedRecord(f"{origin}#{index}", reason, _own_bytes(cut, index, payload)))
        if rejects:
            raise PartialDecodeError(origin, alerts, rejects)
        return alerts

    @staticmethod
    def _gunzip(payload: bytes, origin: str) -> bytes:
        if payload[:2] != GZIP_MAGIC:
            return payload
        try:
            return gzip.decompress(payload)
        except Exception as error:  # BadGzipFile, EOFError, zlib.error
            raise AlertDecodeError(f"{origin}: corrupt gzip data: {avro_schemas.describe(error)}") from None

    def _container(self, data: bytes, origin: str) -> tuple[list[dict[str, Any]], str | None, Callable[[int], bytes]]:
        try:
            records, writer_schema = self._containers.read(data)
            schema = avro_schemas.container_schema_name(writer_schema if isinstance(writer_schema, dict) else {})
        except Exception as error:  # fastavro raises many types on corrupt containers
            raise AlertDecodeError(f"{origin}: unreadable Avro container: {avro_schemas.describe(error)}") from None
        if self.schema_version and schema != self.schema_version:
            raise AlertDecodeError(f"{origin}: Avro container holds {schema or 'an unknown schema'}, but the "
                                   f"format is configured for {self.schema_version}")
        if not records:
            raise AlertDecodeError(f"{origin}: Avro container holds no alert")
        if not all(isinstance(r, dict) and "diaSource" in r for r in records):
            raise AlertDecodeError(f"{origin}: Avro container does not hold alerts (no 'diaSource' record)")
        return records, schema, lambda index: avro_schemas.container_of(writer_schema, records[index])

    @staticmethod
    def _parquet(data: bytes, origin: str) -> tuple[list[dict[str, Any]], str, Callable[[int], bytes]]:
        try:
            import pyarrow.parquet  # type: ignore[import-untyped]
        except ImportError:
            raise AlertDecodeError(f"{origin}: Parquet alerts need pyarrow: pip install 'ampel-plugin-lsst[parquet]'") from None
        try:
            table = pyarrow.parquet.read_table(io.BytesIO(data))
            records = table.to_pylist()
        except Exception as error:
            raise AlertDecodeError(f"{origin}: unreadable Parquet file: {avro_schemas.describe(error)}") from None
        # a row whose diaSource is null is one bad record; a file without any is not an alert file
        source = next((r["diaSource"] for r in records if isinstance(r.get("diaSource"), dict)), None)
        if source is None:
            raise AlertDecodeError(f"{origin}: Parquet file does not hold alerts (no 'diaSource' column)")
        family = "elasticc" if "midPointTai" in source else "lsst"

        def one_row(index: int) -> bytes:
            out = io.BytesIO()
            pyarrow.parquet.write_table(table.slice(index, 1), out)
            return out.getvalue()

        return records, f"{family} (parquet)", one_row

    def _wire(self, data: bytes, origin: str) -> tuple[list[dict[str, Any]], str]:
        schema_id = int.from_bytes(data[1:WIRE_HEADER], "big")
        body = data[WIRE_HEADER:]
        name = self.schema_ids.get(schema_id)
        if name is not None:
            try:
                return [avro_schemas.read_exact(body, name)], name
            except ValueError as error:
                raise AlertDecodeError(f"{origin}: wire-format message with schema id {schema_id} "
                                       f"({name}): {error}") from None
        try:
            name, record = self._schemaless(body, origin, f"wire-format message with unknown schema id {schema_id}")
        except AlertDecodeError as as_wire:
            try:  # a bare schemaless body may start with byte 0 too (an id or alertId of 0)
                name, record = self._schemaless(data, origin, "schemaless body")
            except AlertDecodeError as as_bare:
                raise AlertDecodeError(f"{as_wire}; nor is it a {str(as_bare).removeprefix(f'{origin}: ')}") from None
        return [record], name

    def _schemaless(self, body: bytes, origin: str, what: str) -> tuple[str, dict[str, Any]]:
        if self.schema_version:
            candidates: tuple[str, ...] = (self.schema_version,)
        else:
            candidates = tuple(self.candidates or self.default_candidates)
            if self._last in candidates:
                candidates = (self._last, *(c for c in candidates if c != self._last))
        reasons = []
        for name in candidates:
            try:
                record = avro_schemas.read_exact(body, name)
            except ValueError as error:
                reasons.append(str(error))
                continue
            self._last = name
            return name, record
        raise AlertDecodeError(f"{origin}: {what} of {len(body)} bytes matches no shipped schema: "
                               + "; ".join(reasons))

    # records -> alert --------------------------------------------------------------------------

    def alert(self, record: dict[str, Any], schema: str | None) -> Alert:
        """The `Alert` of one decoded alert record (``schema``: its namespace, for ``extra``)."""
        source = record["diaSource"]
        names = field_names(source)
        stock, stock_name, object_id, ss_id = stock_of(record)
        tags: tuple[str, ...] = (TAG_SURVEY, TAG_ELASTICC) if names is ELASTICC_FIELDS else (TAG_SURVEY,)
        solar_system = ss_id is not None or bool(record.get("ssSource") or record.get("ssObject"))
        if solar_system:
            tags = (*tags, TAG_SOLAR_SYSTEM)

        trigger = datapoints.detection(source, stock, names, tags)
        detections: list[DataPoint] = [trigger]
        seen = {trigger.id}
        for previous in record.get("prvDiaSources") or ():
            _add(detections, seen, datapoints.detection(previous, stock, names, tags))
        # forced photometry and upper limits (most of an alert, and mostly stored by the stock's
        # earlier alerts): checked and identified now, so that a bad record makes the alert
        # undecodable here, and built only when needed, only those the store lacks (`LazyDataPoints`)
        deferred: list[tuple[int, Callable[..., DataPoint], dict[str, Any]]] = []
        earliest = min(dp.time for dp in detections)
        for measured in record.get("prvDiaForcedSources") or ():
            ident, time = datapoints.forced_key(measured, names)
            if ident not in seen:
                seen.add(ident)
                deferred.append((ident, datapoints.forced, measured))
                earliest = min(earliest, time)
        for limit in record.get("prvDiaNondetectionLimits") or ():
            ident, time = datapoints.upper_limit_key(limit, stock, names)
            if ident not in seen:
                seen.add(ident)
                deferred.append((ident, datapoints.upper_limit, limit))
                earliest = min(earliest, time)
        obj = record.get("diaObject")
        made: list[DataPoint] = []  # the diaObject, made now (one per alert)
        # a solar-system alert may carry a diaObject of nulls (or id 0) from a broker's export: no object
        if obj and self.dia_object and _present(obj.get("diaObjectId")):
            _add(made, seen, datapoints.dia_object(obj, stock, earliest, tags))

        def rest(known: Container[int] = ()) -> list[DataPoint]:
            return [build(measured, stock, names, tags, ident) for ident, build, measured in deferred
                    if ident not in known] + [dp for dp in made if dp.id not in known]

        extra: dict[str, Any] = {"schema": schema, "diaObjectId": object_id, "ssObjectId": ss_id}
        if "alertId" in record:
            extra["alertId"] = record["alertId"]
        for key in EXTRA_FIELDS:
            if record.get(key) is not None:
                extra[key] = record[key]
        blobs = {key: record[key] for key in CUTOUTS if self.cutouts and record.get(key)}
        return Alert(id=trigger.id, stock=stock, stock_name=stock_name, datapoints=LazyDataPoints(detections, rest, rest),
                     extra=extra, blobs=blobs,
                     tags=tuple(t for t in tags if t != TAG_SURVEY))


def _own_bytes(cut: Callable[[int], bytes], index: int, payload: bytes) -> bytes:
    """Record ``index`` re-encoded on its own; the whole payload if that fails (the origin's
    ``#index`` then says which record is meant)."""
    try:
        return cut(index)
    except Exception:  # a record the writer refuses (e.g. against a broken writer schema)
        return payload


def _add(points: list[DataPoint], seen: set[int], datapoint: DataPoint) -> None:
    if datapoint.id not in seen:
        seen.add(datapoint.id)
        points.append(datapoint)


class ElasticcAlertFormat(LSSTAlertFormat):
    """`LSSTAlertFormat` that tries only the ELAsTiCC schemas on schemaless bodies (v0.9.1, then v0.9)."""

    default_candidates: ClassVar[tuple[str, ...]] = avro_schemas.ELASTICC_SCHEMAS
