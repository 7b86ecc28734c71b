"""Reading Avro object container files from bytes, with writer schemas parsed once per process.

`fastavro.reader` parses the writer schema of every container it opens. ZTF distributes one alert
per container, and parsing the ~30 kB ZTF schema costs about a sixth of decoding the alert, so
`read_container` reads the container header itself, parses each distinct schema once (cached by
its bytes) and decodes the records with cavro (a Cython Avro codec that compiles each schema
into a tree of readers: about five times fastavro's rate on ZTF alerts, and the same records;
docs/ztf.md) where it is installed (it has wheels for x86-64 and Python up to 3.12, so the
plugin asks for it only there), else with `fastavro.schemaless_reader`.

Supported codecs: null, deflate, snappy (cramjam), bzip2, xz, zstandard (cramjam). Every problem
with the bytes is an `AlertDecodeError` whose message says what is wrong and where.

`peek_strings` reads one string field of each record (e.g. the objectId) without decoding the
records, where only fields of primitive types come before it.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
import orjson

try:
    import cavro
except ImportError:  # no wheel for this platform or Python: fastavro decodes
    cavro = None

from ampel_core.alerts import AlertDecodeError

__all__ = ["CAVRO_OPTIONS", "CODECS", "FIXED_SIZES", "MAGIC", "MAX_CACHED_SCHEMAS", "PRIMITIVES", "SYNC_SIZE",
           "Layout", "WriterSchema", "peek_strings", "read_container", "writer_schema"]

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
MAX_CACHED_SCHEMAS = 64
#: cavro's options: as lenient about schemas as fastavro (ZTF's schemas give ``null`` defaults to
#: unions that start with another type), records as dicts, invalid UTF-8 an error (not replaced)
CAVRO_OPTIONS = None if cavro is None else cavro.PERMISSIVE_OPTIONS.replace(
    record_decodes_to_dict=True, unicode_errors="strict")


PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
FIXED_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}
Layout = tuple[tuple[str, str | tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A parsed writer schema: fastavro's parsed form, the full record name, its field names, the
    ``layout`` of its leading fields for `peek_strings`: (name, primitive type, or a tuple of them
    for a union) of each field up to the first that is not of primitive types, and the schema
    compiled by cavro (None without cavro, or for a schema cavro refuses: fastavro decodes)."""

    parsed: Any
    name: str
    fields: frozenset[str]
    layout: Layout = ()
    compiled: Any = None


def _layout(document: dict[str, Any]) -> Layout:
    layout: list[tuple[str, str | tuple[str, ...]]] = []
    for field in document.get("fields", ()):
        kind = field.get("type") if isinstance(field, dict) else None
        found = [(k.get("type") if isinstance(k, dict) else k) for k in (kind if isinstance(kind, list) else [kind])]
        kinds = [k for k in found if isinstance(k, str) and k in PRIMITIVES]
        if len(kinds) != len(found):
            break
        layout.append((str(field.get("name")), tuple(kinds) if isinstance(kind, list) else kinds[0]))
    return tuple(layout)


_schemas: dict[bytes, WriterSchema] = {}


def writer_schema(raw: bytes) -> WriterSchema:
    """The parsed schema for the JSON bytes ``raw`` (cached by those bytes)."""
    schema = _schemas.get(raw)
    if schema is None:
        try:
            document = orjson.loads(raw)
            parsed = fastavro.parse_schema(document)
        except Exception as error:
            raise AlertDecodeError(f"invalid Avro schema in the container header: {error}") from None
        if isinstance(document, dict):
            name, namespace = str(document.get("name", "?")), document.get("namespace")
            name = f"{namespace}.{name}" if namespace and "." not in name else name
            fields = frozenset(str(f.get("name")) for f in document.get("fields", ()) if isinstance(f, dict))
            layout = _layout(document)
        else:
            name, fields, layout = str(document)[:40], frozenset(), ()
        schema = WriterSchema(parsed, name, fields, layout, _compiled(document))
        if len(_schemas) >= MAX_CACHED_SCHEMAS:  # only garbage makes many distinct schemas
            _schemas.clear()
        _schemas[raw] = schema
    return schema


def _compiled(document: Any) -> Any:
    if cavro is None:
        return None
    try:
        return cavro.Schema(document, options=CAVRO_OPTIONS)
    except Exception:  # a schema fastavro reads but cavro refuses: fastavro decodes it
        return None


def _long(buffer: bytes, position: int) -> tuple[int, int]:
    """The zig-zag varint at ``position`` and the position after it."""
    try:
        byte = buffer[position]
        value, shift = byte & 0x7F, 7
        while byte & 0x80:
            position += 1
            byte = buffer[position]
            value |= (byte & 0x7F) << shift
            shift += 7
            if shift > 70:
                raise AlertDecodeError(f"corrupt Avro container: overlong integer at byte {position}")
    except IndexError:
        raise AlertDecodeError(f"truncated Avro container: ends inside an integer at byte {position}") from None
    return (value >> 1) ^ -(value & 1), position + 1


def _header(payload: bytes) -> tuple[dict[str, bytes], bytes, int]:
    """The metadata map, sync marker and position of the first block."""
    metadata: dict[str, bytes] = {}
    position = len(MAGIC)
    while True:
        count, position = _long(payload, position)
        if count == 0:
            break
        if count < 0:  # a negative count is followed by the block's size in bytes
            _, position = _long(payload, position)
            count = -count
        for _ in range(count):
            key, position = _bytes(payload, position, "metadata key")
            value, position = _bytes(payload, position, "metadata value")
            metadata[key.decode("utf-8", "replace")] = value
    sync = payload[position:position + SYNC_SIZE]
    if len(sync) < SYNC_SIZE:
        raise AlertDecodeError("truncated Avro container: header ends before the sync marker")
    return metadata, sync, position + SYNC_SIZE


def _bytes(payload: bytes, position: int, what: str) -> tuple[bytes, int]:
    size, position = _long(payload, position)
    end = position + size
    if size < 0 or end > len(payload):
        raise AlertDecodeError(f"truncated Avro container: {what} of {size} bytes at byte {position}, "
                               f"only {len(payload) - position} left")
    return payload[position:end], end


def _snappy(block: bytes) -> bytes:
    import cramjam

    data = bytes(cramjam.snappy.decompress_raw(block[:-4]))
    if zlib.crc32(data) != int.from_bytes(block[-4:], "big"):
        raise AlertDecodeError("corrupt snappy block: CRC32 mismatch")
    return data


def _zstandard(block: bytes) -> bytes:
    import cramjam

    return bytes(cramjam.zstd.decompress(block))


CODECS: dict[str, Callable[[bytes], bytes]] = {
    "null": lambda block: block,
    "deflate": lambda block: zlib.decompress(block, -15),
    "snappy": _snappy,
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "zstandard": _zstandard,
}


def _sync_error(payload: bytes, sync: bytes, start: int, size: int, block_number: int) -> str:
    found = payload.find(sync, start)
    where = "nowhere after it" if found < 0 else f"after {found - start} bytes"
    return (f"corrupt Avro container: block {block_number} declares {size} bytes, but the sync marker "
            f"follows {where} (bytes lost, inserted or truncated)")


def read_container(payload: bytes) -> tuple[WriterSchema, list[dict[str, Any]]]:
    """The writer schema and every record of the Avro container ``payload``.

    Raises AlertDecodeError for: bytes that are not an Avro container, a truncated container, a
    bad sync marker, an unknown codec, a block that does not decompress, and records that do not
    match the writer schema (including blocks whose records do not fill them exactly).
    """
    if not payload:
        raise AlertDecodeError("empty payload (0 bytes)")
    if payload[:4] != MAGIC:
        raise AlertDecodeError(f"not an Avro container: starts with {payload[:4]!r} instead of {MAGIC!r}")
    metadata, sync, position = _header(payload)
    if "avro.schema" not in metadata:
        raise AlertDecodeError("Avro container header has no 'avro.schema'")
    schema = writer_schema(metadata["avro.schema"])
    codec_name = metadata.get("avro.codec", b"null").decode("utf-8", "replace") or "null"
    codec = CODECS.get(codec_name)
    if codec is None:
        raise AlertDecodeError(f"unsupported Avro codec {codec_name!r} (supported: {', '.join(CODECS)})")
    records: list[dict[str, Any]] = []
    end = len(payload)
    block_number = 0
    while position < end:
        block_number += 1
        count, position = _long(payload, position)
        block, position = _bytes(payload, position, f"block {block_number}")
        if payload[position:position + SYNC_SIZE] != sync:
            if len(payload) - position < SYNC_SIZE and sync.startswith(payload[position:]):
                raise AlertDecodeError(f"truncated Avro container: ends inside the sync marker after block {block_number}")
            raise AlertDecodeError(_sync_error(payload, sync, position - len(block), len(block), block_number))
        position += SYNC_SIZE
        try:
            data = codec(block)
        except AlertDecodeError:
            raise
        except Exception as error:
            raise AlertDecodeError(f"block {block_number}: {codec_name} decompression failed: {error}") from None
        if count < 0 or count > len(data):  # every record of an alert schema takes at least one byte
            raise AlertDecodeError(f"corrupt Avro container: block {block_number} claims {count} records "
                                   f"in {len(data)} bytes")
        records.extend(_records(data, count, schema, block_number))
    return schema, records


def peek_strings(payload: bytes, field: str) -> list[str] | None:
    """The value of the string field ``field`` in every record of the Avro container ``payload``,
    read without decoding the records; None where that cannot be done: a field of a type other
    than a primitive one comes before it, its value in a record is not a string, or a block holds
    several records (where the next record starts is known only once this one is decoded). Raises
    AlertDecodeError (or UnicodeDecodeError, KeyError ...) for bytes it cannot read; of damaged
    records it gives what decoding them would, or an error."""
    if payload[:4] != MAGIC:
        raise AlertDecodeError(f"not an Avro container: starts with {payload[:4]!r}")
    metadata, _, position = _header(payload)
    schema = writer_schema(metadata["avro.schema"])
    codec = CODECS[metadata.get("avro.codec", b"null").decode() or "null"]
    if field not in (name for name, _ in schema.layout):
        return None
    values = []
    while position < len(payload):
        count, position = _long(payload, position)
        block, position = _bytes(payload, position, "block")
        position += SYNC_SIZE
        if count != 1:
            return None
        value = _leading_string(codec(block), schema.layout, field)
        if value is None:
            return None
        values.append(value)
    return values


def _leading_string(data: bytes, layout: Layout, field: str) -> str | None:
    position = 0
    for name, kind in layout:
        if isinstance(kind, tuple):  # a union: the branch's index comes first
            index, position = _long(data, position)
            if not 0 <= index < len(kind):
                raise AlertDecodeError(f"field {name!r}: union index {index} out of range")
            kind = kind[index]
        if name == field:
            if kind != "string":
                return None
            value, _ = _bytes(data, position, field)
            return value.decode()
        if kind in ("int", "long"):
            _, position = _long(data, position)
        elif kind in ("string", "bytes"):
            _, position = _bytes(data, position, name)
        else:
            position += FIXED_SIZES[kind]
    return None


#: reads one byte: whether a block has bytes left after its records (cavro's reader does not say where it is)
_ONE_BYTE: Any = None if cavro is None else cavro.Schema({"type": "fixed", "name": "rest", "size": 1})


def _records(data: bytes, count: int, schema: WriterSchema, block_number: int) -> list[dict[str, Any]]:
    records: list[Any] = []
    try:
        left = (_fastavro_records if schema.compiled is None else _cavro_records)(data, count, schema, records)
    except Exception as error:
        raise AlertDecodeError(f"block {block_number}, record {len(records) + 1}: does not match the writer "
                               f"schema '{schema.name}': {type(error).__name__}: {error}") from None
    if left:
        raise AlertDecodeError(f"block {block_number}: {left} left after {count} records (corrupt block or wrong schema)")
    return records


def _fastavro_records(data: bytes, count: int, schema: WriterSchema, records: list[Any]) -> str:
    """Appends the records to ``records``; says what is left of ``data`` ('' if nothing)."""
    stream = io.BytesIO(data)
    for _ in range(count):
        records.append(fastavro.schemaless_reader(stream, schema.parsed, None))
    left = len(data) - stream.tell()
    return f"{left} bytes" if left else ""


def _cavro_records(data: bytes, count: int, schema: WriterSchema, records: list[Any]) -> str:
    """As `_fastavro_records`, with cavro."""
    reader = cavro.MemoryReader(data)
    for _ in range(count):
        records.append(schema.compiled.binary_read(reader))
    try:
        _ONE_BYTE.binary_read(reader)
    except EOFError:
        return ""
    return "bytes"
