"""Alert archives: Parquet files partitioned by stock, for reprocessing on many workers.

``ampel archive build SOURCE... OUT --format NAME --partitions N`` (`build_archive`) reads alert
files, directories, tar archives, Kafka dumps (message values written as files, one message per
file or several in one Avro container) and brokers' Parquet exports, and writes::

    OUT/archive.json            the manifest (`ArchiveInfo`): format, partitions, counts, sizes
    OUT/part-00000.parquet ...  one file per partition: columns stock, time, alert, origin, payload
    OUT/quarantine.parquet      records that could not be decoded (origin, reason, payload), if any

Every alert of a stock is in one partition (`ampel_core.runtime.partition_of` of its stock id,
the function ``ampel job --workers N`` partitions by), sorted by (stock, trigger time, alert id).
``payload`` is the alert's original bytes where a record holds one stock: an alert file, a tar
member, a Kafka message. A record holding several stocks is cut into one record per alert: lines
of a newline-delimited file, one-record Avro containers with the record's own writer schema and
codec (Avro containers). A Parquet export becomes one one-record Avro container per row, with an
Avro schema derived from the Parquet schema (timestamps as int64 nanoseconds), so the survey's
Avro format decodes it; the decoded records equal the Parquet rows (tests/test_archive.py).

The job source ``archive`` (`ArchiveSource`) reads the partitions given to it and nothing else,
and counts the bytes of the partition files it read (`ArchiveSource.bytes_read`), so a job over
an archive on N workers reads the archive once in all.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from ampel_core.alerts import AlertDecodeError, FileSource, PartialDecodeError, SourceRecord
from ampel_core.errors import AmpelError
from ampel_core.models import Alert

__all__ = ["ARCHIVE_VERSION", "MANIFEST", "ArchiveInfo", "ArchiveSource", "arrow_to_avro_schema", "build_archive",
           "parquet_records", "parquet_rows", "partition_file", "read_info", "source_records", "split_record"]

ARCHIVE_VERSION = 1
MANIFEST = "archive.json"
_SPILL_ROWS = 20_000  # rows held per partition before they are spilled to a temporary file


_NEEDS = "archives need pyarrow and fastavro: pip install 'ampel-core[parquet]' fastavro"


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]  # imported on use: `ampel config build` stays fast
    except ImportError:
        raise AmpelError(_NEEDS) from None
    return pyarrow


def _parquet() -> Any:
    _pyarrow()
    import pyarrow.parquet  # type: ignore[import-untyped]

    return pyarrow.parquet


def _fastavro() -> Any:
    try:
        import fastavro
    except ImportError:
        raise AmpelError(_NEEDS) from None
    return fastavro


def partition_file(index: int) -> str:
    """The file name of partition ``index``."""
    return f"part-{index:05d}.parquet"


@dataclass
class ArchiveInfo:
    """The manifest of an archive (``archive.json``)."""

    format: dict[str, Any]
    partitions: int
    alerts: int = 0
    stocks: int = 0
    quarantined: int = 0
    sources: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # per partition: name, alerts, stocks, bytes
    version: int = ARCHIVE_VERSION
    partitioning: str = "ampel_core.runtime.partition_of(stock, partitions): blake2b-64 of the stock id"
    order: str = "stock, time (MJD of the triggering datapoint), alert id"

    @property
    def bytes(self) -> int:
        return sum(int(entry["bytes"]) for entry in self.files)


def read_info(path: str | Path) -> ArchiveInfo:
    """The manifest of the archive at ``path``; AmpelError when it is not an archive."""
    manifest = Path(path) / MANIFEST
    try:
        document = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise AmpelError(f"{path}: not an AMPEL archive (no {MANIFEST}; build one with `ampel archive build`)") from None
    except (OSError, ValueError) as error:
        raise AmpelError(f"{manifest}: unreadable manifest: {error}") from None
    if document.get("version") != ARCHIVE_VERSION:
        raise AmpelError(f"{manifest}: archive version {document.get('version')!r}, this AMPEL reads {ARCHIVE_VERSION}")
    return ArchiveInfo(**document)


# reading sources -----------------------------------------------------------------------------------


_PARQUET_MAGIC = b"PAR1"
_AVRO_MAGIC = b"Obj\x01"


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == _PARQUET_MAGIC


def source_records(sources: list[str]) -> Iterator[SourceRecord]:
    """The records of files, directories and tar archives (`ampel_core.alerts.FileSource`); a
    Parquet export (a file, not a tar member) yields one one-record Avro container per row
    (`parquet_records`)."""
    for record in FileSource(paths=sources).records():
        if record.error is None and record.payload[:4] == _PARQUET_MAGIC and "::" not in record.origin \
                and _is_parquet(Path(record.origin)):
            yield from parquet_records(record.origin)
        else:
            yield record


def _avro_name(path: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in path)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"_{cleaned}"


def arrow_to_avro_schema(schema: Any, name: str = "alert") -> dict[str, Any]:
    """An Avro record schema for rows of the pyarrow ``schema``: every field nullable, structs as
    records, lists as arrays, timestamps as longs (nanoseconds). AmpelError for a column type
    with no Avro form (the column is named)."""
    pa = _pyarrow()

    def convert(arrow: Any, path: str) -> Any:
        if pa.types.is_null(arrow):
            return "null"
        if pa.types.is_boolean(arrow):
            return "boolean"
        if pa.types.is_integer(arrow):
            return "int" if arrow.bit_width <= 16 or (arrow.bit_width == 32 and pa.types.is_signed_integer(arrow)) \
                else "long"
        if pa.types.is_timestamp(arrow) or pa.types.is_date64(arrow):
            return "long"
        if pa.types.is_date32(arrow):
            return "int"
        if pa.types.is_float16(arrow) or pa.types.is_float32(arrow):
            return "float"
        if pa.types.is_float64(arrow):
            return "double"
        if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
            return "string"
        if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow) or pa.types.is_fixed_size_binary(arrow):
            return "bytes"
        if pa.types.is_dictionary(arrow):
            return convert(arrow.value_type, path)
        if pa.types.is_struct(arrow):
            return {"type": "record", "name": _avro_name(path), "fields": [
                {"name": arrow.field(i).name, "type": ["null", convert(arrow.field(i).type, f"{path}_{arrow.field(i).name}")],
                 "default": None} for i in range(arrow.num_fields)]}
        if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
            return {"type": "array", "items": ["null", convert(arrow.value_type, f"{path}_item")]}
        raise AmpelError(f"Parquet column {path!r} has type {arrow}, which has no Avro form in an archive")

    return {"type": "record", "name": _avro_name(name), "fields": [
        {"name": f.name, "type": ["null", convert(f.type, f.name)], "default": None} for f in schema]}


def _arrow_rows(table: Any) -> Any:
    """``table`` with every timestamp (also inside structs and lists) as int64 nanoseconds."""
    pa = _pyarrow()

    def plain(arrow: Any) -> Any:
        if pa.types.is_timestamp(arrow) or pa.types.is_date64(arrow):
            return pa.int64()
        if pa.types.is_struct(arrow):
            return pa.struct([pa.field(arrow.field(i).name, plain(arrow.field(i).type)) for i in range(arrow.num_fields)])
        if pa.types.is_list(arrow):
            return pa.list_(plain(arrow.value_type))
        if pa.types.is_large_list(arrow):
            return pa.large_list(plain(arrow.value_type))
        return arrow

    target = pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema])
    return table if target == table.schema else table.cast(target)


def parquet_rows(path: str) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The Avro schema (`arrow_to_avro_schema`) and the rows of a Parquet file as dicts (timestamps
    as int64 nanoseconds): the records an archive keeps of a Parquet export."""
    pq = _parquet()

    handle = pq.ParquetFile(path)
    schema = arrow_to_avro_schema(handle.schema_arrow, Path(path).stem)

    def rows() -> Iterator[dict[str, Any]]:
        for group in range(handle.num_row_groups):
            yield from _arrow_rows(handle.read_row_group(group)).to_pylist()

    return schema, rows()


def parquet_records(path: str) -> Iterator[SourceRecord]:
    """One record per row of a Parquet export: a one-record Avro container (origin ``FILE#ROW``)."""
    fastavro = _fastavro()
    schema, rows = parquet_rows(path)
    parsed = fastavro.parse_schema(schema)
    for number, row in enumerate(rows):
        buffer = io.BytesIO()
        try:
            fastavro.writer(buffer, parsed, [row])
        except (ValueError, TypeError) as error:
            yield SourceRecord(f"{path}#{number}", b"", f"{path} row {number}: cannot be written as Avro: {error}")
            continue
        yield SourceRecord(f"{path}#{number}", buffer.getvalue())


def split_record(record: SourceRecord) -> list[SourceRecord]:
    """``record`` cut into one record per alert: an Avro container into one-record containers (same
    writer schema and codec), anything else into its non-empty lines (origin ``ORIGIN#N``, from 0).
    AmpelError when it cannot be cut."""
    payload = record.payload
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    if payload[:4] == _AVRO_MAGIC:
        fastavro = _fastavro()
        reader = fastavro.reader(io.BytesIO(payload))
        pieces = []
        for number, row in enumerate(reader):
            buffer = io.BytesIO()
            fastavro.writer(buffer, reader.writer_schema, [row], codec=reader.codec)
            pieces.append(SourceRecord(f"{record.origin}#{number}", buffer.getvalue()))
        return pieces
    lines = [line for line in payload.splitlines(keepends=True) if line.strip()]
    if len(lines) < 2:
        raise AmpelError(f"{record.origin}: holds alerts of several stocks and cannot be cut into one record per alert")
    return [SourceRecord(f"{record.origin}#{number}", line) for number, line in enumerate(lines)]


# building ------------------------------------------------------------------------------------------


class _Writer:
    """Rows of each partition, spilled to temporary files; `finish` sorts each partition alone."""

    COLUMNS = ("stock", "time", "alert", "origin", "payload")

    def __init__(self, out: Path, partitions: int) -> None:
        self.out, self.partitions = out, partitions
        self.spill = out / "_building"
        self.spill.mkdir()
        self.rows: list[list[tuple[int, float, int, str, bytes]]] = [[] for _ in range(partitions)]
        self.spilled: list[list[Path]] = [[] for _ in range(partitions)]

    def add(self, partition: int, row: tuple[int, float, int, str, bytes]) -> None:
        self.rows[partition].append(row)
        if len(self.rows[partition]) >= _SPILL_ROWS:
            self._spill(partition)

    def _table(self, rows: list[tuple[int, float, int, str, bytes]]) -> Any:
        pa = _pyarrow()

        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in self.COLUMNS]
        types = (pa.int64(), pa.float64(), pa.int64(), pa.string(), pa.binary())
        return pa.table({name: pa.array(values, type=kind) for name, values, kind in zip(self.COLUMNS, columns, types,
                                                                                         strict=True)})

    def _spill(self, partition: int) -> None:
        pq = _parquet()

        path = self.spill / f"{partition}-{len(self.spilled[partition])}.parquet"
        pq.write_table(self._table(self.rows[partition]), path)
        self.spilled[partition].append(path)
        self.rows[partition] = []

    def finish(self) -> list[dict[str, Any]]:
        pa = _pyarrow()
        pq = _parquet()

        files = []
        for partition in range(self.partitions):
            tables = [pq.read_table(path) for path in self.spilled[partition]] + [self._table(self.rows[partition])]
            table = pa.concat_tables(tables).sort_by([("stock", "ascending"), ("time", "ascending"),
                                                      ("alert", "ascending"), ("origin", "ascending")])
            path = self.out / partition_file(partition)
            pq.write_table(table, path, row_group_size=2_000, compression="zstd")
            files.append({"name": path.name, "alerts": table.num_rows,
                          "stocks": len(set(table.column("stock").to_pylist())), "bytes": path.stat().st_size})
        shutil.rmtree(self.spill)
        return files


def build_archive(sources: list[str], out: str | Path, alert_format: Any, format_spec: dict[str, Any],
                  partitions: int) -> ArchiveInfo:
    """Build the archive ``out`` (a new or empty folder) from ``sources`` with ``alert_format`` (an
    `ampel_core.alerts.AlertFormat`; ``format_spec`` is its name and config, kept in the manifest).
    Records that cannot be decoded go to ``quarantine.parquet`` with their reason; none is dropped."""
    if partitions < 1:
        raise AmpelError(f"--partitions must be at least 1, got {partitions}")
    from ampel_core.runtime import partition_of

    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AmpelError(f"{target}: exists and is not an empty folder; the archive is written into a new one")
    target.mkdir(parents=True, exist_ok=True)
    writer = _Writer(target, partitions)
    quarantine: list[tuple[str, str, bytes]] = []
    stocks: set[int] = set()
    alerts = 0
    for record in source_records(sources):
        if record.error is not None:
            quarantine.append((record.origin, record.error, record.payload))
            continue
        for piece, piece_alerts, reason in _pieces(record, alert_format):
            if reason is not None:
                quarantine.append((piece.origin, reason, piece.payload))
                continue
            first = min(piece_alerts, key=lambda a: (a.trigger.time, a.id))
            stocks.add(first.stock)
            alerts += len(piece_alerts)
            writer.add(partition_of(first.stock, partitions),
                       (first.stock, first.trigger.time, first.id, piece.origin, piece.payload))
    files = writer.finish()
    if quarantine:
        pa = _pyarrow()
        pq = _parquet()

        origins, reasons, payloads = zip(*quarantine, strict=True)
        pq.write_table(pa.table({"origin": pa.array(origins, pa.string()), "reason": pa.array(reasons, pa.string()),
                                 "payload": pa.array(payloads, pa.binary())}), target / "quarantine.parquet")
    info = ArchiveInfo(format=format_spec, partitions=partitions, alerts=alerts, stocks=len(stocks),
                       quarantined=len(quarantine), sources=[str(Path(s).resolve()) for s in sources], files=files)
    (target / MANIFEST).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def _decode(record: SourceRecord, alert_format: Any) -> tuple[list[Alert], str | None]:
    try:
        return list(alert_format.decode(record.payload, record.origin)), None
    except PartialDecodeError as error:
        return error.alerts, str(error)
    except AlertDecodeError as error:
        return [], str(error)
    except Exception as error:  # a decoder bug: the record is kept in the quarantine with it
        return [], f"decoder raised {type(error).__name__}: {error}"


def _pieces(record: SourceRecord, alert_format: Any) -> Iterator[tuple[SourceRecord, list[Alert], str | None]]:
    """(record, its alerts, None), or (record, [], why it cannot be archived), for the record or,
    when it holds several stocks or bad records besides good ones, for each of its pieces."""
    alerts, reason = _decode(record, alert_format)
    if not alerts:
        yield record, [], reason
        return
    if reason is None and len({alert.stock for alert in alerts}) == 1:
        yield record, alerts, None
        return
    for piece in split_record(record):
        piece_alerts, piece_reason = _decode(piece, alert_format)
        if piece_reason is None and len({alert.stock for alert in piece_alerts}) > 1:
            piece_reason = f"{piece.origin}: one record holds alerts of several stocks"
        yield piece, piece_alerts if piece_reason is None else [], piece_reason


# reading -------------------------------------------------------------------------------------------


class ArchiveSource(BaseModel):
    """The job source ``archive``: the records of an archive's partitions ``partitions`` (default
    all), partition after partition, each in (stock, time) order. Origins are the records' origins
    when the archive was built. ``bytes_read`` counts the bytes of each partition file read."""

    model_config = ConfigDict(extra="forbid")

    path: str
    partitions: list[int] | None = None
    _info: ArchiveInfo = PrivateAttr()
    _bytes_read: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        self._info = read_info(self.path)
        wanted = self.partitions if self.partitions is not None else list(range(self._info.partitions))
        unknown = [p for p in wanted if not 0 <= p < self._info.partitions]
        if unknown:
            raise AmpelError(f"archive {self.path} has partitions 0..{self._info.partitions - 1}, not {unknown}")

    @property
    def info(self) -> ArchiveInfo:
        return self._info

    @property
    def bytes_read(self) -> dict[str, int]:
        """Partition file name -> its size in bytes, for each partition file read to its end."""
        return self._bytes_read

    def __iter__(self) -> Iterator[SourceRecord]:  # type: ignore[override]  # not pydantic's field iteration
        pq = _parquet()

        wanted = self.partitions if self.partitions is not None else range(self._info.partitions)
        for partition in wanted:
            path = Path(self.path) / partition_file(partition)
            with open(path, "rb") as raw:
                handle = pq.ParquetFile(raw)
                for batch in handle.iter_batches(batch_size=500, columns=["origin", "payload"]):
                    for origin, payload in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                        yield SourceRecord(origin, payload)
            self._bytes_read[path.name] = os.path.getsize(path)

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass
