"""The ZTF alert format on the alerts shipped in docs/examples/data/ztf: the datapoint mapping,
codecs, multi-alert containers, the schema cache and clear reasons for bad bytes."""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_core.alerts import AlertDecodeError, FileSource, PartialDecodeError
from ampel_core.models import Alert
from ampel_ztf import avro
from ampel_ztf.alerts import CUTOUTS, ZTFAlertFormat, upper_limit_id
from ampel_ztf.ids import to_stock_id

SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data" / "ztf"
SN2021RHU = SAMPLE / "pitt-google" / "ZTF21abiuvdk_SN2021rhu"
FORMAT = ZTFAlertFormat()


def avro_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.avro"))


def records(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Writer schema and records as fastavro.reader (the reference decoder) reads them."""
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        return reader.writer_schema, list(reader)


def container(schema: dict[str, Any], rows: list[dict[str, Any]], codec: str = "null") -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, rows, codec=codec)
    return buffer.getvalue()


def check_alert(alert: Alert, record: dict[str, Any]) -> None:
    """Everything the mapping promises, checked against the raw record."""
    candidate = record["candidate"]
    assert alert.stock_name == record["objectId"] and alert.stock == to_stock_id(record["objectId"])
    assert alert.id == (record.get("candid") or candidate["candid"])
    trigger = alert.datapoints[0]
    assert trigger.id == candidate["candid"] and not trigger.upper_limit and repr(trigger.extra) == repr(candidate)
    history = record.get("prv_candidates") or []
    detections = [p for p in history if p["candid"] is not None and p["magpsf"] is not None]
    limits = [p for p in history if p["candid"] is None and p["diffmaglim"] is not None and 0 < p["diffmaglim"] < 50]
    assert len(alert.datapoints) == len({d["candid"] for d in detections} | {candidate["candid"]}) + len(limits)
    assert len({dp.id for dp in alert.datapoints}) == len(alert.datapoints)
    for dp in alert.datapoints:
        raw = dp.extra
        assert dp.stock == alert.stock and dp.zp == 25.0 and dp.zpsys == "ab"
        assert dp.time == pytest.approx(raw["jd"] - 2400000.5, abs=1e-9)
        assert dp.band == {1: "ztfg", 2: "ztfr", 3: "ztfi"}[raw["fid"]]
        assert dp.tags[0] == "ZTF" and dp.tags[1] == {0: "ZTF_COM", 1: "ZTF_PUB", 2: "ZTF_PRIV", 3: "ZTF_CALTECH"}.get(
            raw["programid"], f"ZTF_PROGRAMID_{raw['programid']}")
        assert not set(CUTOUTS) & set(raw)
        if dp.upper_limit:
            assert dp.flux is None and dp.mag == raw["diffmaglim"] and dp.mag_err is None
            assert dp.flux_err == pytest.approx(10 ** (-0.4 * (raw["diffmaglim"] - 25)) / 5)
        else:
            assert dp.id == raw["candid"] and dp.mag == raw["magpsf"] and dp.mag_err == raw["sigmapsf"]
            sign = 1 if raw["isdiffpos"] in ("t", "1") else -1
            assert math.copysign(1, dp.flux) == sign
            assert 25 - 2.5 * math.log10(abs(dp.flux)) == pytest.approx(raw["magpsf"], abs=1e-9)
            assert dp.flux_err == pytest.approx(abs(dp.flux) * raw["sigmapsf"] * math.log(10) / 2.5)
    for name in CUTOUTS:
        cutout = record.get(name)
        if cutout:
            assert alert.blobs[name] == cutout["stampData"]
        else:
            assert name not in alert.blobs
    assert not set(CUTOUTS) & set(alert.extra) and "prv_candidates" not in alert.extra
    assert alert.extra["rb"] == candidate["rb"] and alert.extra.get("schemavsn") == record.get("schemavsn")


def test_every_shipped_alert_decodes_as_promised(sample_files: list[Path]) -> None:
    decoded = 0
    for path in sample_files:
        _, rows = records(path)
        alerts = FORMAT.decode(path.read_bytes(), str(path))
        assert len(alerts) == len(rows)
        for alert, row in zip(alerts, rows, strict=True):
            check_alert(alert, row)
        decoded += len(alerts)
    assert len(sample_files) == 59 and decoded == 62


def test_sn2021rhu_light_curve() -> None:
    alerts = [a for p in avro_files(SN2021RHU) for a in FORMAT.decode(p.read_bytes(), str(p))]
    assert len(alerts) == 34 and {a.stock_name for a in alerts} == {"ZTF21abiuvdk"}
    points = {dp.id: dp for a in alerts for dp in a.datapoints}
    detections = [dp for dp in points.values() if not dp.upper_limit]
    assert len(detections) == 34 and {dp.band for dp in detections} == {"ztfg", "ztfr"}
    assert len(points) - len(detections) == 16
    peak = min(detections, key=lambda dp: dp.mag)
    assert peak.mag == pytest.approx(12.42, abs=0.01) and 59409 < peak.time < 59412
    assert all(dp.tags == ("ZTF", "ZTF_PUB") for dp in points.values())


def test_upper_limits_get_the_same_id_in_every_alert() -> None:
    by_measurement: dict[tuple[float, int], set[int]] = {}
    for path in avro_files(SN2021RHU):
        for alert in FORMAT.decode(path.read_bytes(), str(path)):
            for dp in alert.datapoints:
                if dp.upper_limit:
                    by_measurement.setdefault((dp.extra["jd"], dp.extra["fid"]), set()).add(dp.id)
    assert len(by_measurement) == 16 and all(len(ids) == 1 for ids in by_measurement.values())
    assert all(i < 0 for ids in by_measurement.values() for i in ids)  # told from candids by sign
    # stored ids must never change: pin them
    assert upper_limit_id(1585239462515, 20.1564998626709, 2459277.739, 2) == -15852394625152016
    assert upper_limit_id(None, 20.0, 2459382.5, 1) != upper_limit_id(0, 20.0, 2459382.5, 1) < 0


def test_junk_limiting_magnitudes_are_not_datapoints() -> None:
    path = SAMPLE / "ampel-ztf" / "ztf_public_20180819_mod1000" / "595211876015015031.avro"
    _, [row] = records(path)
    [alert] = FORMAT.decode(path.read_bytes(), str(path))
    junk = [p for p in row["prv_candidates"] if p["candid"] is None and p["diffmaglim"] < 0]
    assert [p["diffmaglim"] for p in junk] == [pytest.approx(-1006.94, abs=0.01)]
    assert all(dp.mag > 0 for dp in alert.datapoints)


def test_alerts_without_top_level_candid_and_with_broker_fields() -> None:
    path = SAMPLE / "alerce" / "survey_parser_ZTF_samples_reencoded" / "0000105125901326831.avro"
    schema, [row] = records(path)
    assert "candid" not in row and schema["name"] == "topLevelRecord"
    [alert] = FORMAT.decode(path.read_bytes(), str(path))
    assert alert.id == row["candidate"]["candid"]
    fink = SAMPLE / "fink-client" / "fink-broker-sample-alert-1.avro"
    [alert] = FORMAT.decode(fink.read_bytes(), str(fink))
    assert alert.extra["cdsxmatch"] is not None and "candidate" not in alert.extra


def test_forced_photometry_is_optional() -> None:
    path = SAMPLE / "alerce" / "lc_classifier_example" / "2454460970015010006.avro"
    _, [row] = records(path)
    [plain] = FORMAT.decode(path.read_bytes(), str(path))
    [forced] = ZTFAlertFormat(forced_photometry=True).decode(path.read_bytes(), str(path))
    extra = [dp for dp in forced.datapoints if "forced" in dp.tags]
    usable = [fp for fp in row["fp_hists"] if fp["procstatus"] == "0" and fp["forcediffimflux"] != -99999]
    assert len(extra) == len(usable) > 0 and len(forced.datapoints) == len(plain.datapoints) + len(extra)
    for dp in extra:
        raw = dp.extra
        assert dp.flux == pytest.approx(raw["forcediffimflux"] * 10 ** (-0.4 * (raw["magzpsci"] - 25)))
        assert not dp.upper_limit and dp.tags == ("ZTF", "ZTF_PUB", "forced")


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "bzip2", "xz"])
def test_codecs(codec: str) -> None:
    path = avro_files(SN2021RHU)[20]
    schema, rows = records(path)
    payload = container(schema, rows, codec)
    [alert] = FORMAT.decode(payload, codec)
    [reference] = FORMAT.decode(path.read_bytes(), "original")
    assert alert.datapoints == reference.datapoints and alert.blobs == reference.blobs
    assert FORMAT.decode(gzip.compress(payload), "gzipped")[0].datapoints == reference.datapoints


def test_multi_alert_containers_with_several_blocks() -> None:
    files = avro_files(SN2021RHU)[:7]
    schema, _ = records(files[0])
    rows = [records(p)[1][0] for p in files]
    buffer = io.BytesIO()
    writer = fastavro.write.Writer(buffer, schema, codec="deflate", sync_interval=100_000)
    for row in rows:
        writer.write(row)
    writer.flush()
    payload = buffer.getvalue()
    assert payload.count(payload[-16:]) > 2  # more than one block
    alerts = FORMAT.decode(payload, "multi")
    assert [a.id for a in alerts] == [r["candid"] for r in rows]


def test_a_bad_alert_of_a_container_is_rejected_alone() -> None:
    files = avro_files(SN2021RHU)[:4]
    schema, _ = records(files[0])
    rows = [records(p)[1][0] for p in files]
    rows[2] = {**rows[2], "candidate": {**rows[2]["candidate"], "fid": 7}}  # no ZTF band 7
    with pytest.raises(PartialDecodeError) as raised:
        FORMAT.decode(container(schema, rows), "multi.avro")
    error = raised.value
    assert [a.id for a in error.alerts] == [rows[i]["candid"] for i in (0, 1, 3)]
    [reject] = error.rejects
    assert reject.origin == "multi.avro#2" and "alert 3 of 4" in reject.reason and "7" in reject.reason
    assert records_of(reject.payload) == [rows[2]]  # the bad record's own bytes, readable alone
    with pytest.raises(AlertDecodeError, match="alert 1 of 1"):  # a one-alert container fails whole
        FORMAT.decode(container(schema, rows[2:3]), "one.avro")


def records_of(payload: bytes) -> list[dict[str, Any]]:
    return list(fastavro.reader(io.BytesIO(payload)))


def test_schemas_are_parsed_once(monkeypatch: pytest.MonkeyPatch, sample_files: list[Path]) -> None:
    calls = []
    parse = fastavro.parse_schema
    monkeypatch.setattr(avro, "_schemas", {})
    monkeypatch.setattr(avro.fastavro, "parse_schema", lambda schema: calls.append(1) or parse(schema))
    payloads = [p.read_bytes() for p in sample_files]
    for payload in payloads * 3:
        FORMAT.decode(payload, "x")
    distinct = {avro._header(payload)[0]["avro.schema"] for payload in payloads}
    assert len(calls) == len(distinct) == len(avro._schemas) < len(payloads)


@contextlib.contextmanager
def fastavro_only() -> Iterator[None]:
    """Decoding as without cavro (where it has no wheel): every schema compiled again after."""
    saved = avro.cavro
    avro.cavro = None
    avro._schemas.clear()
    try:
        yield
    finally:
        avro.cavro = saved
        avro._schemas.clear()


@pytest.fixture(params=["cavro", "fastavro"])
def decoder(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test using it runs with each decoder `ampel_ztf.avro` may use."""
    if request.param == "cavro" and avro.cavro is None:
        pytest.skip("cavro is not installed (no wheel for this platform or Python): fastavro decodes")
    with fastavro_only() if request.param == "fastavro" else contextlib.nullcontext():
        yield request.param


needs_cavro = pytest.mark.skipif(avro.cavro is None, reason="cavro is not installed (no wheel for this platform)")


def test_records_are_those_fastavro_reads(sample_files: list[Path], decoder: str) -> None:
    for path in sample_files:
        schema, rows = records(path)
        parsed, ours = avro.read_container(path.read_bytes())
        assert repr(ours) == repr(rows) and parsed.name == schema["name"]  # repr: NaN == NaN
        assert (parsed.compiled is None) == (decoder == "fastavro")


def check_peek(payload: bytes, origin: str) -> bool:
    """`ZTFAlertFormat.stocks` gives the decoded alerts' stocks, or nothing; True if it gave them."""
    peeked = FORMAT.stocks(payload, origin)
    assert not peeked or peeked == {a.stock for a in FORMAT.decode(payload, origin)}
    return bool(peeked)


def test_stocks_are_read_without_decoding(monkeypatch: pytest.MonkeyPatch, sample_files: list[Path]) -> None:
    payloads = {str(path): path.read_bytes() for path in sample_files}
    assert all(check_peek(payload, origin) for origin, payload in payloads.items())
    assert all(check_peek(gzip.compress(payload), "gz") for payload in list(payloads.values())[:3])
    schema, rows = records(avro_files(SN2021RHU)[0])
    for codec in ("null", "deflate", "snappy"):
        assert check_peek(container(schema, rows, codec), codec)
    assert check_peek(container(schema, rows * 2), "two blocks of one alert")
    one_block = io.BytesIO()
    fastavro.writer(one_block, schema, rows * 2, sync_interval=10**7)
    assert FORMAT.stocks(one_block.getvalue(), "one block of two alerts") == set()  # decoded instead
    monkeypatch.setattr(avro.fastavro, "schemaless_reader", None)  # the peek decodes no record
    assert FORMAT.stocks(payloads[str(avro_files(SN2021RHU)[0])], "x") == {to_stock_id("ZTF21abiuvdk")}


VALUES = {"null": st.none(), "boolean": st.booleans(), "int": st.integers(-2**31, 2**31 - 1),
          "long": st.integers(-2**63, 2**63 - 1), "float": st.floats(width=32, allow_nan=False),
          "double": st.floats(allow_nan=False), "bytes": st.binary(max_size=40), "string": st.text(max_size=20)}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_peeked_strings_are_the_decoded_ones(data: st.DataObject) -> None:
    kinds = st.sampled_from(sorted(VALUES))
    fields = data.draw(st.lists(st.one_of(kinds, st.lists(kinds, min_size=1, max_size=3, unique=True)), max_size=6))
    fields.append(data.draw(st.sampled_from(["string", ["string"], ["null", "string"], ["long", "string"]])))
    schema = {"type": "record", "name": "r", "fields": [{"name": f"f{n}", "type": t} for n, t in enumerate(fields)]
              + [{"name": "rest", "type": {"type": "array", "items": "long"}}]}

    def value(kind: Any) -> Any:
        return data.draw(VALUES[kind] if isinstance(kind, str) else st.sampled_from(kind).flatmap(lambda k: VALUES[k]))

    rows = [{**{f"f{n}": value(t) for n, t in enumerate(fields)}, "rest": [1, 2]}
            for _ in range(data.draw(st.integers(1, 3)))]
    field = f"f{len(fields) - 1}"
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, rows, codec=data.draw(st.sampled_from(["null", "deflate"])), sync_interval=1)
    peeked = avro.peek_strings(buffer.getvalue(), field)
    decoded = [row[field] for row in fastavro.reader(io.BytesIO(buffer.getvalue()))]
    assert peeked == decoded if all(isinstance(v, str) for v in decoded) else peeked is None


def test_partitions_decode_only_their_own_ztf_alerts(sample_files: list[Path]) -> None:
    from ampel_core.runtime import StockPartition, partition_of

    class Counting(ZTFAlertFormat):
        def decode(self, payload: bytes, origin: str) -> list[Alert]:
            decoded.append(origin)
            return super().decode(payload, origin)

    decoded: list[str] = []
    parts = [StockPartition(Counting(), index, 3) for index in range(3)]
    kept = [a.id for part in parts for path in sample_files for a in part.decode(path.read_bytes(), str(path))]
    assert sorted(kept) == sorted(a.id for path in sample_files for a in FORMAT.decode(path.read_bytes(), "x"))
    # a file is decoded by the partitions of its alerts' stocks only: once, for one alert per file
    owners = {str(path): {partition_of(a.stock, 3) for a in FORMAT.decode(path.read_bytes(), "x")} for path in sample_files}
    assert sorted(decoded) == sorted(origin for origin, partitions in owners.items() for _ in partitions)
    assert len(decoded) < 1.1 * len(sample_files)


# bad input ----------------------------------------------------------------------------------------

GOOD = avro_files(SN2021RHU)[0].read_bytes()


def reason(payload: bytes) -> str:
    with pytest.raises(AlertDecodeError) as error:
        FORMAT.decode(payload, "test.avro")
    message = str(error.value)
    assert message.startswith("test.avro: ")
    return message


def test_clear_reasons_for_bad_bytes(decoder: str) -> None:
    assert "empty payload (0 bytes)" in reason(b"")
    assert "not an Avro container" in reason(b"this is not an alert\n")
    assert "not an Avro container" in reason(b"{\"objectId\": \"ZTF21abiuvdk\"}")
    assert "corrupt gzip data" in reason(b"\x1f\x8b\x08garbage")
    assert "truncated Avro container" in reason(GOOD[: len(GOOD) // 2])
    assert "truncated Avro container: ends inside the sync marker after block 1" in reason(GOOD[:-1])
    assert "truncated Avro container" in reason(GOOD[:100])
    wrong = container({"type": "record", "name": "lsst.alert", "fields": [{"name": "diaSourceId", "type": "long"}]},
                      [{"diaSourceId": 1}])
    assert "not a ZTF alert: schema 'lsst.alert'" in reason(wrong)
    schema, rows = records(avro_files(SN2021RHU)[0])
    assert "holds no alert" in reason(container(schema, []))
    rows[0]["objectId"] = "SN2021rhu"
    assert "alert 1 of 1" in reason(container(schema, rows)) and "not a ZTF object name" in reason(container(schema, rows))
    rows[0]["objectId"], rows[0]["candidate"]["fid"] = "ZTF21abiuvdk", 7
    assert "fid 7 is not 1 (g), 2 (r) or 3 (i)" in reason(container(schema, rows))


def test_corrupt_block_and_unknown_codec(decoder: str) -> None:
    start = avro._header(GOOD)[2]
    flipped = bytearray(GOOD)
    flipped[start + 40] ^= 0xFF  # inside the first record
    message = reason(bytes(flipped))
    assert "block 1" in message or "sync marker" in message
    header = GOOD[:start].replace(b"\x08null", b"\x06lz4")
    assert b"lz4" in header, "the sample's header names its codec 'null'"
    assert "unsupported Avro codec 'lz4'" in reason(header + GOOD[start:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_else(payload: bytes) -> None:
    with contextlib.suppress(AlertDecodeError):
        FORMAT.decode(payload, "fuzz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD)), st.binary(max_size=64), st.booleans())
def test_damaged_alerts_decode_or_give_a_reason(position: int, noise: bytes, truncate: bool) -> None:
    payload = GOOD[:position] if truncate else GOOD[:position] + noise + GOOD[position + len(noise):]
    try:
        alerts = FORMAT.decode(payload, "fuzz")
    except AlertDecodeError as error:
        assert str(error).startswith("fuzz: ")
    else:
        assert alerts and all(a.datapoints for a in alerts)
        try:
            peeked = FORMAT.stocks(payload, "fuzz")
        except Exception:  # a peek that fails makes a partition decode
            peeked = set()
        assert not peeked or peeked == {a.stock for a in alerts}


def varint(value: int) -> bytes:
    """Avro's zig-zag varint of ``value`` >= 0."""
    value, encoded = value << 1, bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(encoded + bytes([value]))


def test_bytes_left_after_the_records(decoder: str) -> None:
    _, _, start = avro._header(GOOD)
    count, position = avro._long(GOOD, start)
    block, position = avro._bytes(GOOD, position, "block")
    tail = block + b"\x00"  # one byte more in the block than its record takes
    damaged = GOOD[:start] + varint(count) + varint(len(tail)) + tail + GOOD[position:]
    assert "block 1: " in reason(damaged) and "left after 1 records (corrupt block or wrong schema)" in reason(damaged)


def outcome(payload: bytes) -> str:
    """The records decoded from ``payload`` (repr: NaN == NaN), or that it gave an AlertDecodeError."""
    try:
        return repr(avro.read_container(payload)[1])
    except AlertDecodeError:
        return "AlertDecodeError"


@needs_cavro
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD)), st.binary(min_size=1, max_size=64), st.booleans())
def test_what_cavro_decodes_fastavro_decodes_alike(position: int, noise: bytes, truncate: bool) -> None:
    """Of damaged alerts, cavro decodes none that fastavro refuses, and none differently; it refuses a
    few that fastavro decodes: union indexes below 0, which fastavro takes as Python's list indexes
    (-1 for the last branch)."""
    payload = GOOD[:position] if truncate else GOOD[:position] + noise + GOOD[position + len(noise):]
    with_cavro = outcome(payload)
    with fastavro_only():
        assert with_cavro in ("AlertDecodeError", outcome(payload))


@needs_cavro
def test_cavro_refuses_negative_union_indexes() -> None:
    schema = {"type": "record", "name": "ztf.alert",
              "fields": [{"name": "objectId", "type": "string"}, {"name": "candidate", "type": ["long", "null"]}]}
    payload = container(schema, [{"objectId": "ZTF21abiuvdk", "candidate": None}])
    assert payload[-17] == 2  # union index 1 (zig-zag), the block's last byte before the sync marker
    damaged = payload[:-17] + b"\x01" + payload[-16:]  # index -1
    with fastavro_only():
        assert outcome(damaged) == outcome(payload)  # fastavro takes -1 for the last branch
    assert "does not match the writer schema" in reason(damaged) and "not valid for a union of 2 items" in reason(damaged)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_garbage_after_a_valid_header_gives_a_reason(tail: bytes) -> None:
    _, _, start = avro._header(GOOD)
    with contextlib.suppress(AlertDecodeError):
        FORMAT.decode(GOOD[:start] + tail, "fuzz")


# sources ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_archives_are_read_as_streams(tmp_path: Path, mode: str, sample_files: list[Path]) -> None:
    archive = tmp_path / ("alerts.tar" + (".gz" if mode == "w:gz" else ""))
    with tarfile.open(archive, mode) as tar:
        tar.add(SAMPLE, arcname="ztf")
    from_tar = [a.id for r in FileSource(paths=[str(archive)], pattern="*.avro") for a in FORMAT.decode(r.payload, r.origin)]
    from_folder = [a.id for r in FileSource(paths=[str(SAMPLE)], pattern="*.avro") for a in FORMAT.decode(r.payload, r.origin)]
    assert sorted(from_tar) == sorted(from_folder) and len(from_tar) == 62


# every ZTF alert of ../shared/data ----------------------------------------------------------------

def test_every_readable_alert_of_the_shared_data(shared_data: Path, shared_alert_files: list[Path],
                                                 manifest: dict[tuple[str, int], dict[str, str]]) -> None:
    decoded = 0
    for path in shared_alert_files:
        _, rows = records(path)
        alerts = FORMAT.decode(path.read_bytes(), str(path))
        assert len(alerts) == len(rows)
        for index, (alert, row) in enumerate(zip(alerts, rows, strict=True)):
            check_alert(alert, row)
            entry = manifest[(str(path.relative_to(shared_data)), index)]
            detections = sum(not dp.upper_limit for dp in alert.datapoints)
            limits = len(alert.datapoints) - detections
            junk = sum(1 for p in row["prv_candidates"] or () if p["candid"] is None and not 0 < p["diffmaglim"] < 50)
            assert (alert.stock_name, str(alert.id)) == (entry["objectId"], entry["candid"])
            assert detections == 1 + int(entry["n_prv_det"]) and limits == int(entry["n_prv_upperlim"]) - junk
        decoded += len(alerts)
    assert len(shared_alert_files) == 311 and decoded == 461


def test_records_equal_fastavro_for_the_shared_data(shared_alert_files: list[Path], decoder: str) -> None:
    for path in shared_alert_files:
        _, rows = records(path)
        assert repr(avro.read_container(path.read_bytes())[1]) == repr(rows)


def test_stocks_of_the_shared_data(shared_alert_files: list[Path]) -> None:
    peeked = sum(check_peek(path.read_bytes(), str(path)) for path in shared_alert_files)
    assert peeked == 308  # all but the 3 containers holding several alerts in one block


def test_the_unreadable_files_get_a_reason(shared_data: Path) -> None:
    files = avro_files(shared_data / "ztf_alerts_unreadable")
    assert len(files) == 12
    for path in files:
        with pytest.raises(AlertDecodeError, match=r"corrupt Avro container: block 1 declares \d+ bytes, but the sync"):
            FORMAT.decode(path.read_bytes(), str(path))


@pytest.mark.parametrize("version", ["1.8", "1.9", "2.0", "3.0", "3.1", "3.2", "3.3"])
def test_every_published_schema_version(shared_data: Path, version: str) -> None:
    """A real alert written with each ZTF schema of ../shared/data/ztf_schema/versions decodes to the
    same datapoints (fastavro's schema resolution moves it between versions)."""
    import json

    schema = json.loads((shared_data / "ztf_schema" / "versions" / f"schema_{version}.json").read_text())
    source = shared_data / "ztf_alerts" / "ampel-ztf" / "ztf_public_20180601" / "516442333515015024.avro"
    _, [row] = records(source)
    rows = [conform(row, schema, {})]
    payload = container(schema, rows)
    [alert] = FORMAT.decode(payload, version)
    [reference] = FORMAT.decode(source.read_bytes(), "original")
    assert [(dp.id, dp.time, dp.band, dp.flux, dp.flux_err, dp.tags) for dp in alert.datapoints] == [
        (dp.id, dp.time, dp.band, dp.flux, dp.flux_err, dp.tags) for dp in reference.datapoints]
    assert alert.extra.get("schemavsn") == (None if version == "1.8" else rows[0].get("schemavsn"))


PLACEHOLDERS = {"string": "", "int": 0, "long": 0, "float": 0.0, "double": 0.0, "boolean": False, "bytes": b""}


def conform(value: Any, schema: Any, named: dict[str, Any]) -> Any:
    """``value`` reshaped to fit ``schema``: fields it lacks get their default, null or a placeholder."""
    if isinstance(schema, str):
        schema = named.get(schema, named.get(schema.rpartition(".")[2], schema))
        if isinstance(schema, str):
            return PLACEHOLDERS[schema] if value is None else value
    if isinstance(schema, list):
        if value is None and "null" in schema:
            return None
        return conform(value, next(s for s in schema if s != "null"), named)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")] = schema
        value = value or {}
        return {f["name"]: conform(value.get(f["name"], f.get("default")), f["type"], named) for f in schema["fields"]}
    if kind == "array":
        return [conform(item, schema["items"], named) for item in value or []]
    return conform(value, kind, named)


def test_other_surveys_alerts_are_not_ztf_alerts(shared_data: Path) -> None:
    path = shared_data / "elasticc" / "ampel-lsst_11290844.avro"
    with pytest.raises(AlertDecodeError, match=r"not a ZTF alert: schema '.*' has no 'objectId'"):
        FORMAT.decode(path.read_bytes(), str(path))


@pytest.mark.parametrize("forced_photometry", [False, True])
def test_only_the_unknown_history_is_built_and_it_is_the_same(shared_alert_files: list[Path],
                                                              forced_photometry: bool) -> None:
    """A T0 builds only the datapoints its store does not hold yet (`LazyDataPoints.unknown`): for
    every shared alert, and any set of ids already known, they are exactly the datapoints (every
    field, ``extra`` included) of the whole alert less the known ones, in the same order."""
    import random

    from ampel_core.models import LazyDataPoints

    alert_format, chance = ZTFAlertFormat(forced_photometry=forced_photometry), random.Random(23)
    compared = 0
    for path in shared_alert_files:
        payload = path.read_bytes()
        try:
            whole, fresh = alert_format.decode(payload, str(path)), alert_format.decode(payload, str(path))
        except AlertDecodeError:
            continue  # files this format refuses: their own tests
        for full, lazy in zip(whole, fresh, strict=True):
            points = list(full.datapoints)
            known = {dp.id for dp in points if chance.random() < 0.7} | {12345}
            assert isinstance(lazy.datapoints, LazyDataPoints)
            new = lazy.datapoints.unknown(known)
            expected = [dp for dp in points if dp.id not in known]
            assert [repr((dp, dp.extra)) for dp in new] == [repr((dp, dp.extra)) for dp in expected], path  # NaN as NaN
            compared += len(points)
    assert compared > 10_000
