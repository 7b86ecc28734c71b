"""Bad bytes never crash the format: garbage and truncated alerts raise AlertDecodeError, and
nothing else ever escapes ``decode``."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fastavro
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ampel_core.alerts import AlertDecodeError
from ampel_lsst import avro_schemas
from ampel_lsst.format import ElasticcAlertFormat, LSSTAlertFormat

DATA = Path(__file__).parent / "data"
FORMAT = LSSTAlertFormat()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wire(name: str, registry_id: int) -> bytes:
    record = next(fastavro.reader(io.BytesIO((DATA / f"{name}.fakeAlert.avro").read_bytes())))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, avro_schemas.load(name), record)
    return b"\x00" + registry_id.to_bytes(4, "big") + body.getvalue()


SAMPLES = {
    "container": (DATA / "lsst.v11_1.fakeAlert.avro").read_bytes(),
    "container-3-alerts": (DATA / "ampel-lsst_11290844.avro").read_bytes(),
    "gzipped-container": (DATA / "fink-client_alert_mjd60674.0512_obj747_src1494043.avro.gz").read_bytes(),
    "schemaless": gzip.decompress(
        (DATA / "ampel-lsst_schemaless_alert_mjd60563.1120_obj104044681_src208089362038.avro.gz").read_bytes()),
    "wire-7.4": _wire("lsst.v7_4", 704),
    "wire-11.1": _wire("lsst.v11_1", 1101),
}
sample_names = st.sampled_from(sorted(SAMPLES))


def decode_or_reason(payload: bytes) -> list[object] | str:
    """What decode returns, or the reason of its AlertDecodeError; any other exception fails."""
    try:
        return list(FORMAT.decode(payload, "fuzz"))
    except AlertDecodeError as error:
        assert str(error).startswith("fuzz: ")
        return str(error)


@SETTINGS
@given(st.binary(max_size=4096))
@example(b"\x00")
@example(b"\x00\x00\x00\x00\x00")
@example(b"Obj\x01")
@example(b"\x1f\x8b")
def test_garbage_is_a_decode_error(payload: bytes) -> None:
    assert isinstance(decode_or_reason(payload), str)


@SETTINGS
@given(st.sampled_from([b"Obj\x01", b"PAR1", b"\x00\x00\x00\x04\x4d", b"\x00\x00\x00\x02\xc0", b"\x00\x00\x01\x00\x00"]),
       st.binary(max_size=4096))
def test_garbage_behind_a_valid_header_is_a_decode_error(header: bytes, payload: bytes) -> None:
    assert isinstance(decode_or_reason(header + payload), str)


@SETTINGS
@given(sample_names, st.data())
def test_truncated_alerts_are_decode_errors(name: str, data: st.DataObject) -> None:
    payload = SAMPLES[name]
    cut = data.draw(st.integers(0, len(payload) - 1), label="cut")
    assert isinstance(decode_or_reason(payload[:cut]), str)


@SETTINGS
@given(sample_names, st.data())
def test_gzipped_truncated_alerts_are_decode_errors(name: str, data: st.DataObject) -> None:
    payload = gzip.compress(SAMPLES[name])
    cut = data.draw(st.integers(0, len(payload) - 1), label="cut")
    assert isinstance(decode_or_reason(payload[:cut]), str)


@SETTINGS
@given(sample_names, st.data())
def test_corrupted_alerts_decode_or_raise_decode_error(name: str, data: st.DataObject) -> None:
    payload = bytearray(SAMPLES[name])
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        position = data.draw(st.integers(0, len(payload) - 1), label="position")
        payload[position] = data.draw(st.integers(0, 255), label="byte")
    decode_or_reason(bytes(payload))  # a flipped float is still an alert: either outcome is fine


def test_every_sample_decodes_untouched() -> None:
    for name, payload in SAMPLES.items():
        assert isinstance(decode_or_reason(payload), list), name
        assert ElasticcAlertFormat().decode(payload, name) if "elasticc" in name else True


def test_a_header_claiming_records_of_no_bytes_is_refused_not_looped() -> None:
    schema = {"type": "record", "name": "trap", "fields": [{"name": "diaSource", "type": "null"}]}
    out = io.BytesIO()
    fastavro.writer(out, schema, [{"diaSource": None}] * 3)
    assert "claims 3 records in 0 bytes" in str(decode_or_reason(out.getvalue()))
