"""`ContainerReader` decodes records with cavro where it can: the records must be those fastavro
decodes, on every shared ELAsTiCC alert and Rubin sample (NaN compared as NaN)."""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from ampel_lsst import avro_schemas
from ampel_lsst.avro_schemas import ContainerReader

pytestmark = pytest.mark.skipif(avro_schemas.cavro is None, reason="cavro is not installed here")


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def containers(shared_data: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(shared_data / "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".avro"):
                handle = archive.extractfile(member)
                assert handle is not None
                yield member.name, handle.read()
    for path in sorted((shared_data / "lsst_alerts/schema").glob("*/*/sample_data/*.avro")):
        yield path.name, path.read_bytes()


def test_cavro_decodes_the_records_fastavro_decodes(shared_data: Path) -> None:
    reader, decoded, by_cavro = ContainerReader(), 0, 0
    for name, data in containers(shared_data):
        records, _ = reader.read(data)
        expected = list(fastavro.reader(io.BytesIO(data)))
        assert len(records) == len(expected) > 0, name
        assert all(same(got, want) for got, want in zip(records, expected, strict=True)), name
        decoded += len(records)
        by_cavro += len(records) * any(compiled is not None for *_, compiled in reader._schemas.values())
    assert decoded >= 5689
    assert by_cavro >= 5689  # the ELAsTiCC schema has no logical types: cavro decoded it


def block_of(data: bytes, keep: slice) -> bytes:
    """The one-record, one-block container ``data`` with its block's bytes cut to ``keep`` (the
    block's size and sync marker kept consistent: only the record is damaged)."""
    stream = io.BytesIO(data)
    header = avro_schemas._read(stream, avro_schemas._HEADER)
    start = stream.tell()
    count, size = avro_schemas._read(stream, "long"), avro_schemas._read(stream, "long")
    body = stream.read(size)[keep]
    out = io.BytesIO()
    for value in (count, len(body)):
        fastavro.schemaless_writer(out, "long", value)
    return data[:start] + out.getvalue() + body + header["sync"]


@pytest.mark.parametrize(("keep", "decodes"), [(slice(0, -7), False), (slice(0, None), True), (slice(3, None), None)],
                         ids=["cut short", "intact", "shifted"])
def test_a_block_cavro_cannot_decode_fails_as_with_fastavro(shared_data: Path, keep: slice, decodes: bool | None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fastavro makes of a damaged block (an error, or records), the reader makes too."""
    data = block_of((shared_data / "elasticc/ampel-lsst_11290844.avro").read_bytes(), keep)

    def outcome() -> tuple[str, str]:
        try:
            return "records", repr(ContainerReader().read(data)[0])
        except Exception as error:
            return type(error).__name__, str(error)

    with_cavro = outcome()
    monkeypatch.setattr(avro_schemas, "_compiled", lambda raw, schema: None)
    assert outcome() == with_cavro
    if decodes is not None:
        assert (with_cavro[0] == "records") is decodes
