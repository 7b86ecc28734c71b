"""Decoding Rubin and ELAsTiCC alerts: every sample, every envelope, the datapoint mapping."""

from __future__ import annotations

import copy
import gzip
import io
import math
import tarfile
from pathlib import Path
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from ampel_core.alerts import AlertDecodeError, FileSource
from ampel_core.models import content_id
from ampel_lsst import avro_schemas, datapoints
from ampel_lsst.format import ElasticcAlertFormat, LSSTAlertFormat

DATA = Path(__file__).parent / "data"
SHIPPED = sorted(p.name for p in DATA.iterdir() if ".avro" in p.name)
RUBIN_VERSIONS = {"7/4": "lsst.v7_4", "9/0": "lsst.v9_0", "10/0": "lsst.v10_0", "11/0": "lsst.v11_0",
                  "11/1": "lsst.v11_1"}


def container_records(payload: bytes) -> list[dict[str, Any]]:
    """The records of a (possibly gzipped) Avro container read by fastavro alone: the reference."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return list(fastavro.reader(io.BytesIO(payload)))


def carried_sources(record: dict[str, Any]) -> int:
    """Distinct sources an alert record carries: diaSource + prvDiaSources, prvDiaForcedSources,
    prvDiaNondetectionLimits and the diaObject."""
    detections = {s["diaSourceId"] for s in [record["diaSource"], *(record.get("prvDiaSources") or [])]}
    forced = {s["diaForcedSourceId"] for s in record.get("prvDiaForcedSources") or []}
    limits = record.get("prvDiaNondetectionLimits") or []
    return len(detections) + len(forced) + len(limits) + (1 if record.get("diaObject") else 0)


def check_alert(alert: Any, record: dict[str, Any]) -> None:
    assert len(alert.datapoints) == carried_sources(record)
    assert alert.trigger.id == record["diaSource"]["diaSourceId"] == alert.id
    assert "LSST_DP" in alert.trigger.tags
    assert alert.trigger.extra is record["diaSource"] or alert.trigger.extra == record["diaSource"]
    object_id = (record.get("diaObject") or {}).get("diaObjectId") or record["diaSource"].get("diaObjectId")
    assert alert.stock == object_id
    assert len({dp.id for dp in alert.datapoints}) == len(alert.datapoints)


def schemaless(record: dict[str, Any], name: str) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, avro_schemas.load(name), record)
    return out.getvalue()


def rubin_fake(version: str = "11_1") -> dict[str, Any]:
    return container_records((DATA / f"lsst.v{version}.fakeAlert.avro").read_bytes())[0]


# every sample ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_samples_decode_with_one_datapoint_per_source(name: str) -> None:
    payload = (DATA / name).read_bytes()
    alerts = LSSTAlertFormat().decode(payload, name)
    if "schemaless" in name:
        records = [avro_schemas.read_exact(gzip.decompress(payload), "elasticc.v0_9")]
    else:
        records = container_records(payload)
    assert len(alerts) == len(records) >= 1
    for alert, record in zip(alerts, records, strict=True):
        check_alert(alert, record)


def test_every_shared_rubin_sample_decodes_with_its_version(shared_data: Path) -> None:
    samples = sorted((shared_data / "lsst_alerts/schema").glob("*/*/sample_data/*.avro"))
    assert len(samples) == 5
    for path in samples:
        version = RUBIN_VERSIONS["/".join(path.parts[-4:-2])]
        payload = path.read_bytes()
        alerts = LSSTAlertFormat().decode(payload, str(path))
        for alert, record in zip(alerts, container_records(payload), strict=True):
            check_alert(alert, record)
            assert alert.extra["schema"] == version
            assert alert.trigger.band == "lsstr"


def test_every_shared_elasticc_sample_decodes(shared_data: Path) -> None:
    files = sorted(p for p in (shared_data / "elasticc").iterdir() if ".avro" in p.name)
    assert len(files) == 3
    for path in files:
        alerts = ElasticcAlertFormat().decode(path.read_bytes(), path.name)
        assert alerts and all(a.extra["schema"] == "elasticc.v0_9" for a in alerts)


def test_all_5689_elasticc_alerts_decode_with_one_datapoint_per_source(shared_data: Path) -> None:
    path = shared_data / "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz"
    alert_format = ElasticcAlertFormat()
    alerts, stocks = 0, set()
    for record in FileSource(paths=[str(path)]):
        decoded = alert_format.decode(record.payload, record.origin)
        for alert, raw in zip(decoded, container_records(record.payload), strict=True):
            check_alert(alert, raw)
            alerts += 1
            stocks.add(alert.stock)
    assert (alerts, len(stocks)) == (5689, 518)


# the datapoint mapping -------------------------------------------------------------------------


def test_rubin_photometry_is_njy_at_zp_31_4() -> None:
    alert = LSSTAlertFormat().decode((DATA / "lsst.v11_1.fakeAlert.avro").read_bytes(), "fake")[0]
    trigger = alert.trigger
    assert (trigger.time, trigger.band, trigger.flux, trigger.flux_err) == (60902.993305483615, "lsstr", 1241.0, 12.0)
    assert (trigger.zp, trigger.zpsys, trigger.upper_limit) == (31.4, "ab", False)
    assert trigger.mag == pytest.approx(31.4 - 2.5 * math.log10(1241.0))
    assert trigger.mag_err == pytest.approx(2.5 / math.log(10) * 12.0 / 1241.0)
    assert trigger.tags == ("LSST", "LSST_DP")
    assert alert.stock_name == "281323062375219201"
    assert alert.extra == {"schema": "lsst.v11_1", "diaObjectId": 281323062375219201, "ssObjectId": None}
    assert alert.tags == ()


def test_elasticc_fields_bands_and_negative_flux() -> None:
    alerts = LSSTAlertFormat().decode((DATA / "ampel-lsst_11290844.avro").read_bytes(), "elasticc")
    points = [dp for alert in alerts for dp in alert.datapoints]
    assert {dp.band for dp in points if "LSST_OBJ" not in dp.tags} <= {f"lsst{b}" for b in "ugrizy"}
    assert all("ELASTICC" in dp.tags for dp in points)
    negative = [dp for dp in points if dp.flux is not None and dp.flux <= 0]
    assert negative and all(dp.mag is None and dp.mag_err is None for dp in negative)
    forced = [dp for dp in points if "LSST_FP" in dp.tags]
    assert forced and all("forced" in dp.tags and "LSST_DP" not in dp.tags for dp in forced)
    assert forced[0].id == content_id("LSST_FP", forced[0].extra["diaForcedSourceId"])
    assert alerts[0].extra["alertId"] == 22581688068


def test_elasticc_y_band_maps_to_lssty() -> None:
    alert = LSSTAlertFormat().decode((DATA / "fink-client_alert_mjd60674.0512_obj747_src1494043.avro.gz").read_bytes(), "f")[0]
    assert alert.trigger.extra["filterName"] == "Y" and alert.trigger.band == "lssty"
    assert alert.trigger.time == 60674.0512


def test_dia_object_datapoint() -> None:
    alerts = LSSTAlertFormat().decode((DATA / "ampel-lsst_11290844.avro").read_bytes(), "elasticc")
    objects = [dp for alert in alerts for dp in alert.datapoints if "LSST_OBJ" in dp.tags]
    assert len(objects) == 3
    assert all(dp.band == "" and dp.flux is None and not dp.upper_limit for dp in objects)
    assert objects[0].extra["diaObjectId"] == 11290844
    # ELAsTiCC diaObjects carry no epoch: time is the alert's earliest source
    assert objects[0].time == min(dp.time for dp in alerts[0].datapoints)
    without = LSSTAlertFormat(dia_object=False).decode((DATA / "ampel-lsst_11290844.avro").read_bytes(), "e")
    assert [len(a.datapoints) for a in without] == [len(a.datapoints) - 1 for a in alerts]

    rubin = LSSTAlertFormat().decode((DATA / "lsst.v11_1.fakeAlert.avro").read_bytes(), "fake")[0].datapoints[-1]
    assert "LSST_OBJ" in rubin.tags and rubin.time == rubin.extra["validityStartMjdTai"]


def test_upper_limits_from_nondetection_limits() -> None:
    record = container_records((DATA / "ampel-lsst_11290844.avro").read_bytes())[1]
    record["prvDiaNondetectionLimits"] = [{"ccdVisitId": 7, "midPointTai": 60950.5, "filterName": "g", "diaNoise": 100.0}]
    alert = LSSTAlertFormat().decode(schemaless(record, "elasticc.v0_9"), "limits")[0]
    limit = next(dp for dp in alert.datapoints if dp.upper_limit)
    assert (limit.flux, limit.flux_err, limit.band, limit.time) == (None, 100.0, "lsstg", 60950.5)
    assert limit.mag == pytest.approx(31.4 - 2.5 * math.log10(500.0))
    assert {"LSST_UL", "upper_limit"} <= set(limit.tags)
    assert len(alert.datapoints) == carried_sources(record)


def eager_datapoints(record: dict[str, Any], alert: Any) -> list[Any]:
    """The datapoints of an alert record built one by one, every one, in the format's order
    (detections, forced photometry, upper limits, diaObject; a repeated id kept once): the reference
    for the format's lazily built history."""
    names, stock = datapoints.field_names(record["diaSource"]), alert.stock
    tags = alert.trigger.tags[:-1]  # the alert's base tags: the trigger's less LSST_DP
    made = [datapoints.detection(s, stock, names, tags) for s in [record["diaSource"], *(record.get("prvDiaSources") or ())]]
    made += [datapoints.forced(s, stock, names, tags) for s in record.get("prvDiaForcedSources") or ()]
    made += [datapoints.upper_limit(s, stock, names, tags) for s in record.get("prvDiaNondetectionLimits") or ()]
    first: dict[int, Any] = {}
    made = [first.setdefault(dp.id, dp) for dp in made if dp.id not in first]  # the first of each id
    if record.get("diaObject"):
        made.append(datapoints.dia_object(record["diaObject"], stock, min(dp.time for dp in made), tags))
    return made


def test_history_is_built_only_where_the_store_lacks_it_and_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced photometry and upper limits are built when needed (`LazyDataPoints`), and by
    `unknown` only those whose ids the store does not hold: the same datapoints (every field,
    ``extra`` included), in the same order, as building every one; nothing else is built."""
    import random

    from ampel_core.models import LazyDataPoints

    records = container_records((DATA / "ampel-lsst_11290844.avro").read_bytes())
    with_limits = copy.deepcopy(records[1])
    with_limits["prvDiaNondetectionLimits"] = [
        {"ccdVisitId": 7 + i, "midPointTai": 60900.5 + i, "filterName": "grizY"[i % 5], "diaNoise": 100.0 + i}
        for i in range(12)] + [{"ccdVisitId": 7, "midPointTai": 60900.5, "filterName": "g", "diaNoise": 1.0}]  # a repeat
    records.append(with_limits)
    built: list[Any] = []

    def counted(make: Any) -> Any:
        def build(*args: Any) -> Any:
            built.append(make(*args))
            return built[-1]
        return build

    for name in ("forced", "upper_limit"):
        monkeypatch.setattr(datapoints, name, counted(getattr(datapoints, name)))
    chance, compared = random.Random(23), 0
    for record in records:
        for round_ in range(20):
            alert = LSSTAlertFormat().decode(schemaless(record, "elasticc.v0_9"), "history")[0]
            assert isinstance(alert.datapoints, LazyDataPoints) and not built  # decoding built no history
            expected = eager_datapoints(record, alert)
            built.clear()
            known = {dp.id for dp in expected if chance.random() < round_ / 20}
            new = alert.datapoints.unknown(known)
            want = [dp for dp in expected if dp.id not in known]
            assert [repr((dp, dp.extra)) for dp in new] == [repr((dp, dp.extra)) for dp in want]
            assert len(built) == sum(1 for dp in want if {"LSST_FP", "LSST_UL"} & set(dp.tags))
            built.clear()
            fresh = LSSTAlertFormat().decode(schemaless(record, "elasticc.v0_9"), "history")[0]
            assert [repr((dp, dp.extra)) for dp in fresh.datapoints] == [repr((dp, dp.extra)) for dp in expected]
            assert [dp.id for dp in fresh.detections] == [dp.id for dp in expected if dp.is_detection]
            built.clear()
            compared += len(expected)
    assert compared > 1000 and any("LSST_UL" in dp.tags for dp in expected)


@pytest.mark.parametrize("history, field, value", [
    ("prvDiaForcedSources", "filterName", "q"), ("prvDiaForcedSources", "midPointTai", math.nan),
    ("prvDiaNondetectionLimits", "filterName", "q"), ("prvDiaNondetectionLimits", "midPointTai", math.inf)])
def test_a_bad_history_record_makes_the_alert_undecodable_though_built_later(history: str, field: str, value: Any) -> None:
    record = container_records((DATA / "ampel-lsst_11290844.avro").read_bytes())[1]
    record["prvDiaNondetectionLimits"] = [{"ccdVisitId": 7, "midPointTai": 60950.5, "filterName": "g", "diaNoise": 100.0}]
    record[history][-1][field] = value
    with pytest.raises(AlertDecodeError, match="unknown band 'q'" if value == "q" else "'midPointTai' is missing or not finite"):
        LSSTAlertFormat().decode(schemaless(record, "elasticc.v0_9"), "bad-history")


def test_cutouts_become_blobs() -> None:
    record = rubin_fake()
    record["cutoutDifference"] = b"\x00FITS"
    payload = b"\x00" + (1101).to_bytes(4, "big") + schemaless(record, "lsst.v11_1")
    assert LSSTAlertFormat().decode(payload, "k")[0].blobs == {"cutoutDifference": b"\x00FITS"}
    assert LSSTAlertFormat(cutouts=False).decode(payload, "k")[0].blobs == {}


# solar-system alerts ---------------------------------------------------------------------------


def test_solar_system_alert_without_dia_object_is_tagged() -> None:
    record = rubin_fake()
    record["diaObject"] = None
    record["diaSource"]["ssObjectId"] = 4242
    for source in record["prvDiaSources"]:
        source["ssObjectId"] = 4242
    alert = LSSTAlertFormat().decode(schemaless(record, "lsst.v11_1"), "sso")[0]
    assert alert.stock == content_id("LSST:ssObject", 4242)
    assert alert.stock_name == "ssObject:4242"
    assert alert.extra["ssObjectId"] == 4242 and alert.extra["diaObjectId"] is None
    assert "LSST_SSO" in alert.tags
    assert all("LSST_SSO" in dp.tags for dp in alert.datapoints)
    assert len(alert.datapoints) == carried_sources(record)


def test_alert_with_dia_object_and_ss_object_keeps_the_dia_object_stock() -> None:
    alert = LSSTAlertFormat().decode((DATA / "lsst.v7_4.fakeAlert.avro").read_bytes(), "fake74")[0]
    assert alert.stock == 281323062375219201
    assert alert.extra["ssObjectId"] == 5364546 and "LSST_SSO" in alert.trigger.tags


def test_alert_without_any_object_id_is_a_decode_error() -> None:
    record = rubin_fake()
    record["diaObject"] = None
    with pytest.raises(AlertDecodeError, match="neither a diaObjectId nor an ssObjectId"):
        LSSTAlertFormat().decode(schemaless(record, "lsst.v11_1"), "orphan")


# envelopes: wire format, schemaless, gzip ------------------------------------------------------


@pytest.mark.parametrize("version", ["7_4", "11_1"])
def test_confluent_wire_format_with_rubin_registry_id(version: str) -> None:
    record = rubin_fake(version)
    name = f"lsst.v{version}"
    registry_id = {"7_4": 704, "11_1": 1101}[version]
    payload = b"\x00" + registry_id.to_bytes(4, "big") + schemaless(record, name)
    wire = LSSTAlertFormat().decode(payload, "kafka")[0]
    container = LSSTAlertFormat().decode((DATA / f"{name}.fakeAlert.avro").read_bytes(), "file")[0]
    assert wire.extra["schema"] == name
    assert wire.datapoints == container.datapoints
    assert [dp.extra for dp in wire.datapoints] == [dp.extra for dp in container.datapoints]


def test_wire_format_unknown_id_tries_shipped_schemas_and_configurable_table() -> None:
    body = schemaless(rubin_fake("7_4"), "lsst.v7_4")
    payload = b"\x00" + (31337).to_bytes(4, "big") + body
    assert LSSTAlertFormat().decode(payload, "k")[0].extra["schema"] == "lsst.v7_4"
    assert LSSTAlertFormat(schema_ids={31337: "lsst.v7_4"}).decode(payload, "k")[0].extra["schema"] == "lsst.v7_4"
    with pytest.raises(AlertDecodeError, match=r"schema id 31337 \(lsst.v11_1\)"):
        LSSTAlertFormat(schema_ids={31337: "lsst.v11_1"}).decode(payload, "k")


def test_wire_format_ambiguous_versions_decode_to_the_same_datapoints() -> None:
    # 9.0 and 10.0 differ only in ssSource / MPCORB: without a known id, 10.0 (newer) is taken
    record = {**rubin_fake("11_1"), "MPCORB": None, "ssSource": None}  # 11.1 content, encoded as 9.0
    body = schemaless(record, "lsst.v9_0")
    unknown = LSSTAlertFormat().decode(b"\x00" + (1).to_bytes(4, "big") + body, "k")[0]
    known = LSSTAlertFormat().decode(b"\x00" + (900).to_bytes(4, "big") + body, "k")[0]
    assert (unknown.extra["schema"], known.extra["schema"]) == ("lsst.v10_0", "lsst.v9_0")
    assert unknown.datapoints[:-1] == known.datapoints[:-1]  # the diaObject layout is identical too


def test_bare_schemaless_elasticc_is_detected() -> None:
    payload = (DATA / "ampel-lsst_schemaless_alert_mjd60563.1120_obj104044681_src208089362038.avro.gz").read_bytes()
    for alert_format in (LSSTAlertFormat(), ElasticcAlertFormat(), LSSTAlertFormat(schema_version="elasticc.v0_9")):
        alert = alert_format.decode(payload, "s")[0]
        assert (alert.extra["schema"], alert.stock, alert.id) == ("elasticc.v0_9", 104044681, 208089362038)
    with pytest.raises(AlertDecodeError, match="matches no shipped schema"):
        LSSTAlertFormat(schema_version="elasticc.v0_9_1").decode(payload, "s")
    with pytest.raises(AlertDecodeError, match="matches no shipped schema"):
        ElasticcAlertFormat().decode(gzip.compress(schemaless(rubin_fake(), "lsst.v11_1")), "rubin")


def test_container_version_must_match_a_configured_schema_version() -> None:
    payload = (DATA / "lsst.v7_4.fakeAlert.avro").read_bytes()
    assert LSSTAlertFormat(schema_version="lsst.v7_4").decode(payload, "f")
    with pytest.raises(AlertDecodeError, match=r"holds lsst\.v7_4, but the format is configured for lsst\.v11_1"):
        LSSTAlertFormat(schema_version="lsst.v11_1").decode(payload, "f")


def test_alerts_inside_a_tar_archive(tmp_path: Path) -> None:
    archive = tmp_path / "alerts.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in SHIPPED:
            tar.add(DATA / name, arcname=f"data/{name}")
    alert_format = LSSTAlertFormat()
    alerts = [a for r in FileSource(paths=[str(archive)], pattern="*.avro*") for a in alert_format.decode(r.payload, r.origin)]
    assert len(alerts) == 7


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "empty payload"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    (b"Obj\x01\x00\x00", "unreadable Avro container"),
    (b"\x00\x00\x00\x04\x4d\x01\x02", "unknown schema id 1101"),
    (b"hello world", "matches no shipped schema"),
])
def test_undecodable_bytes_give_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(AlertDecodeError, match=reason):
        LSSTAlertFormat(schema_ids={}).decode(payload, "bad")


def test_unknown_band_is_a_decode_error() -> None:
    record = copy.deepcopy(rubin_fake())
    record["diaSource"]["band"] = "q"
    with pytest.raises(AlertDecodeError, match="unknown band 'q'"):
        LSSTAlertFormat().decode(schemaless(record, "lsst.v11_1"), "bad-band")


def test_a_container_of_other_records_is_a_decode_error() -> None:
    out = io.BytesIO()
    fastavro.writer(out, {"type": "record", "name": "x", "fields": [{"name": "a", "type": "int"}]}, [{"a": 1}])
    with pytest.raises(AlertDecodeError, match="not an alert schema"):
        LSSTAlertFormat().decode(out.getvalue(), "other")


def test_config_names_only_shipped_schemas() -> None:
    with pytest.raises(ValidationError, match=r"unknown alert schema 'lsst\.v6_0'"):
        LSSTAlertFormat(schema_version="lsst.v6_0")
    with pytest.raises(ValidationError, match="unknown alert schema"):
        LSSTAlertFormat(schema_ids={1: "ztf.v4"})
    assert LSSTAlertFormat.model_validate({"schema_ids": {"1101": "lsst.v11_1"}}).schema_ids == {1101: "lsst.v11_1"}


# Parquet (Fink exports) ------------------------------------------------------------------------


def test_parquet_rows_decode_like_the_avro_alerts(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")

    records = container_records((DATA / "ampel-lsst_11290844.avro").read_bytes())
    out = io.BytesIO()
    parquet.write_table(pyarrow.Table.from_pylist(records), out)
    from_parquet = LSSTAlertFormat().decode(out.getvalue(), "parquet")
    from_avro = LSSTAlertFormat().decode((DATA / "ampel-lsst_11290844.avro").read_bytes(), "avro")
    assert [a.datapoints for a in from_parquet] == [a.datapoints for a in from_avro]
    assert from_parquet[0].extra["schema"] == "elasticc (parquet)"
    with pytest.raises(AlertDecodeError, match="unreadable Parquet"):
        LSSTAlertFormat().decode(out.getvalue()[:-20], "cut")


def test_every_shared_parquet_alert_decodes(shared_data: Path) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")
    paths = [shared_data / "lsst_alerts/rubin_or4_simulated/fink-science_or4_lsst7.1_part-00000.parquet",
             *sorted((shared_data / "elasticc").glob("*.parquet"))]
    total = 0
    for path in paths:
        alerts = LSSTAlertFormat().decode(path.read_bytes(), path.name)
        rows = parquet.read_table(path).to_pylist()
        for alert, row in zip(alerts, rows, strict=True):
            check_alert(alert, row)
        total += len(alerts)
    assert total == 50 + 89 + 100
