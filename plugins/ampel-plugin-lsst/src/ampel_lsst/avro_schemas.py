"""The Avro alert schemas shipped in ``ampel_lsst/schemas/`` and decoding against them.

A schema is named by its namespace: ``lsst.v7_4`` … ``lsst.v11_1`` (Rubin) and ``elasticc.v0_9``,
``elasticc.v0_9_1`` (DESC ELAsTiCC). Nothing is downloaded; see ``schemas/README.md`` for origin and
licence. Parsed schemas are cached per process (they are constants of the installed package).
"""

from __future__ import annotations

import functools
import io
import re
import zlib
from pathlib import Path
from typing import Any, cast

import fastavro
import orjson

try:
    import cavro
except ImportError:  # no wheel for this platform or Python: fastavro decodes
    cavro = None

__all__ = ["ELASTICC_SCHEMAS", "LSST_SCHEMAS", "MAX_BLOCK", "RUBIN_REGISTRY_IDS", "SCHEMA_DIR", "SHIPPED_SCHEMAS",
           "ContainerReader", "check_name", "container_schema_name", "describe", "load", "read_exact"]

SCHEMA_DIR = Path(__file__).with_name("schemas")

# Newest first: the order in which a schemaless body of unknown schema is tried.
LSST_SCHEMAS = ("lsst.v11_1", "lsst.v11_0", "lsst.v10_0", "lsst.v9_0", "lsst.v7_4")
ELASTICC_SCHEMAS = ("elasticc.v0_9_1", "elasticc.v0_9")
SHIPPED_SCHEMAS = LSST_SCHEMAS + ELASTICC_SCHEMAS

# Rubin's schema registry holds alert schema MAJOR.MINOR under id MAJOR*100 + MINOR
# (lsst/alert_packet, bin/syncAllSchemasToRegistry.py; the 11.x files carry "confluent:version": 1101).
RUBIN_REGISTRY_IDS: dict[int, str] = {
    704: "lsst.v7_4", 900: "lsst.v9_0", 1000: "lsst.v10_0", 1100: "lsst.v11_0", 1101: "lsst.v11_1",
}

_ADDRESS = re.compile(r"\s*(from )?<[^<>]* at 0x[0-9a-f]+>")
_ALERT_NAME = re.compile(r"^(?P<namespace>(?:lsst|elasticc)\.v\d+(?:_\d+)+)\.alert$")


def check_name(name: str) -> str:
    """``name`` if it is a shipped schema; ValueError listing the shipped ones otherwise."""
    if name not in SHIPPED_SCHEMAS:
        raise ValueError(f"unknown alert schema '{name}'; shipped: {', '.join(SHIPPED_SCHEMAS)}")
    return name


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The parsed alert schema ``name`` (with the record schemas it references)."""
    check_name(name)
    return cast(dict[str, Any], fastavro.schema.load_schema(str(SCHEMA_DIR / f"{name}.alert.avsc"), named_schemas={}))


def _read(stream: io.BytesIO, schema: Any) -> Any:
    """One schemaless Avro value (fastavro's return type is a union of every Avro type)."""
    return fastavro.schemaless_reader(stream, schema, None)


def container_schema_name(writer_schema: dict[str, Any]) -> str | None:
    """The namespace (e.g. ``lsst.v11_1``) of an Avro container's alert schema, shipped or not;
    None when its full name is not ``<lsst|elasticc>.vX_Y.alert``."""
    name = str(writer_schema.get("name", ""))
    if "." not in name and writer_schema.get("namespace"):
        name = f"{writer_schema['namespace']}.{name}"
    match = _ALERT_NAME.match(name)
    return match["namespace"] if match else None


def describe(error: BaseException) -> str:
    """``Type: message`` of a decoding error, without object addresses (reasons are stored)."""
    message = _ADDRESS.sub("", str(error)).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def read_exact(body: bytes, name: str) -> dict[str, Any]:
    """Decode the schemaless Avro ``body`` with schema ``name``.

    Raises ValueError unless the body decodes and is consumed exactly (no bytes left over), which
    is what tells a matching schema from one that merely reads a prefix. Any fastavro error on bad
    bytes is re-raised as ValueError.
    """
    stream = io.BytesIO(body)
    try:
        record = _read(stream, load(name))
    except Exception as error:  # fastavro raises many types on bad bytes (EOF, index, unicode ...)
        raise ValueError(f"not {name}: {describe(error)}") from None
    if stream.tell() != len(body):
        raise ValueError(f"not {name}: {len(body) - stream.tell()} of {len(body)} bytes left over")
    if not isinstance(record, dict):
        raise ValueError(f"not {name}: decoded to {type(record).__name__}")
    return record


def container_of(writer_schema: Any, record: Any) -> bytes:
    """A one-record Avro container file (null codec) of ``record`` under ``writer_schema`` (JSON)."""
    out = io.BytesIO()
    fastavro.writer(out, writer_schema, [record])
    return out.getvalue()


# The header of an Avro object container file (Avro specification, "Object Container Files").
_HEADER = fastavro.parse_schema({"type": "record", "name": "org.apache.avro.file.Header", "fields": [
    {"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": 4}},
    {"name": "meta", "type": {"type": "map", "values": "bytes"}},
    {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": 16}},
]})
MAX_BLOCK = 256 * 2**20  # bytes of one decompressed block; more is not an alert file
#: cavro's options (as in ampel-plugin-ztf): as lenient about schemas as fastavro, records as
#: dicts, invalid UTF-8 an error
_CAVRO_OPTIONS = None if cavro is None else cavro.PERMISSIVE_OPTIONS.replace(
    record_decodes_to_dict=True, unicode_errors="strict")
#: reads one byte: whether a block has bytes left after its records (cavro's reader does not say where it is)
_ONE_BYTE: Any = None if cavro is None else cavro.Schema({"type": "fixed", "name": "rest", "size": 1})


def _inflate(block: bytes) -> bytes:
    inflater = zlib.decompressobj(-15)
    data = inflater.decompress(block, MAX_BLOCK)
    if inflater.unconsumed_tail:
        raise ValueError(f"deflate block larger than {MAX_BLOCK} bytes")
    return data


_CODECS = {b"null": lambda block: block, b"deflate": _inflate}


class ContainerReader:
    """Reads Avro container files, parsing each distinct writer schema only once.

    Files that each embed the same schema (one alert per file, as ELAsTiCC and Rubin's samples
    come) would otherwise spend most of their decoding time re-parsing it. Codecs other than null
    and deflate are left to ``fastavro.reader``. Only containers whose top-level record has the
    field ``required`` are read (ValueError otherwise), which also bounds the work garbage can cause.
    Any other error on bad bytes propagates as it is.

    Records are decoded by cavro where it is installed (about three times fastavro's rate on
    ELAsTiCC alerts), for schemas without logical types (fastavro turns a ``timestamp-micros`` into
    a datetime, cavro need not): the same records. A block cavro cannot decode whole is decoded
    again by fastavro, so a bad block fails with fastavro's error, as without cavro.
    """

    def __init__(self, required: str = "diaSource", max_schemas: int = 64) -> None:
        self.required = required
        self.max_schemas = max_schemas
        self._schemas: dict[bytes, tuple[Any, Any, Any]] = {}  # raw -> (fastavro's, JSON, cavro's or None)

    def read(self, data: bytes) -> tuple[list[Any], Any]:
        """(records, writer schema as JSON) of the container ``data``."""
        stream = io.BytesIO(data)
        header = _read(stream, _HEADER)
        meta = header["meta"]
        if "avro.schema" not in meta:
            raise ValueError("container header has no 'avro.schema'")
        parsed, writer_schema, compiled = self._schema(meta["avro.schema"])
        codec = _CODECS.get(meta.get("avro.codec", b"null"))
        if codec is None:
            return list(fastavro.reader(io.BytesIO(data))), writer_schema
        records = []
        while stream.tell() < len(data):
            count, size = _read(stream, "long"), _read(stream, "long")
            block = stream.read(size) if 0 <= size <= len(data) else b""
            if len(block) != size or stream.read(16) != header["sync"]:
                raise EOFError("truncated block or bad sync marker")
            data_block = codec(block)
            if not 0 <= count <= len(data_block):  # an alert record takes at least one byte
                raise ValueError(f"block claims {count} records in {len(data_block)} bytes")
            found = _cavro_records(compiled, data_block, count) if compiled is not None else None
            if found is None:
                body = io.BytesIO(data_block)
                found = [_read(body, parsed) for _ in range(count)]
                if body.tell() != len(data_block):
                    raise ValueError("block has bytes beyond its records")
            records += found
        return records, writer_schema

    def _schema(self, raw: bytes) -> tuple[Any, Any, Any]:
        if raw not in self._schemas:
            if len(self._schemas) >= self.max_schemas:
                self._schemas.clear()
            writer_schema = orjson.loads(raw)
            fields = writer_schema.get("fields") if isinstance(writer_schema, dict) else None
            if not isinstance(fields, list) or not any(isinstance(f, dict) and f.get("name") == self.required
                                                       for f in fields):
                raise ValueError(f"container schema {str(writer_schema)[:60]!r} is not an alert schema "
                                 f"(no '{self.required}' field)")
            self._schemas[raw] = (fastavro.parse_schema(writer_schema), writer_schema, _compiled(raw, writer_schema))
        return self._schemas[raw]


def _compiled(raw: bytes, writer_schema: Any) -> Any:
    """The schema compiled by cavro; None without cavro, for a schema with logical types, or for one
    cavro refuses (fastavro decodes)."""
    if cavro is None or b"logicalType" in raw:
        return None
    try:
        return cavro.Schema(writer_schema, options=_CAVRO_OPTIONS)
    except Exception:
        return None


def _cavro_records(compiled: Any, data: bytes, count: int) -> list[Any] | None:
    """The ``count`` records of a block, decoded by cavro; None if it cannot decode them all and
    exactly (fastavro then decodes the block, and says what is wrong)."""
    try:
        reader = cavro.MemoryReader(data)
        found = [compiled.binary_read(reader) for _ in range(count)]
    except Exception:
        return None
    try:
        _ONE_BYTE.binary_read(reader)
    except EOFError:
        return found
    return None
