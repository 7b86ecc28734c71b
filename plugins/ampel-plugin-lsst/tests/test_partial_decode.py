"""Solar-system alerts, nulls in nullable fields, and bad records inside a container (issue 18).

Every generated record starts from a real alert of its shipped schema (Rubin's fake alerts of
``lsst-alert-packet``, the ELAsTiCC alerts of Ampel-LSST; ELAsTiCC 0.9.1 is a 0.9 alert written
with the 0.9.1 schema) and stays valid for that schema. A schema-valid alert with a diaObjectId or
an ssObjectId always decodes; a record that does not make an alert (neither id, an unknown band) is
rejected alone, with its index and its own bytes, and its siblings decode.
"""

from __future__ import annotations

import copy
import gzip
import io
import pickle
import random
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_core.alerts import AlertDecodeError, PartialDecodeError, RejectedRecord
from ampel_core.models import Alert, content_id
from ampel_lsst import avro_schemas
from ampel_lsst.format import LSSTAlertFormat

DATA = Path(__file__).parent / "data"
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
WIRE_IDS = {**{name: id for id, name in avro_schemas.RUBIN_REGISTRY_IDS.items()},
            "elasticc.v0_9": 90, "elasticc.v0_9_1": 91}  # ELAsTiCC has no registry: configured ids
FORMAT = LSSTAlertFormat(schema_ids={id: name for name, id in WIRE_IDS.items()})
SSO_ID = 20_000_000_001


def schema_of(name: str) -> dict[str, Any]:
    """The alert schema ``name`` with every named type written out in place."""
    return fastavro.schema.expand_schema(avro_schemas.load(name))  # type: ignore[no-any-return]


def record_schema(field_type: Any) -> dict[str, Any] | None:
    """The record schema of a field (inside a nullable union or an array), if it holds records."""
    for branch in field_type if isinstance(field_type, list) else [field_type]:
        if isinstance(branch, dict) and branch["type"] == "array":
            branch = branch["items"]
        if isinstance(branch, dict) and branch["type"] == "record":
            return branch
    return None


def nullable(field: dict[str, Any]) -> bool:
    return isinstance(field["type"], list) and "null" in field["type"]


def project(values: dict[str, Any], schema: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A record of ``schema`` from the same-named ``values`` (and ``overrides``); nullable fields
    without a value are None. KeyError for a required field without one."""
    values = {**values, **overrides}
    return {f["name"]: values[f["name"]] if f["name"] in values or not nullable(f) else None
            for f in schema["fields"]}


def roundtrip(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` written with and read back through schema ``name``: what a decoder sees."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, avro_schemas.load(name), record)
    return avro_schemas.read_exact(out.getvalue(), name)


def with_histories(record: dict[str, Any], name: str) -> dict[str, Any]:
    """``record`` with forced photometry (and, where the schema has them, non-detection limits)
    derived from its own prvDiaSources, so that their nullable fields are exercised too."""
    fields = {f["name"]: f["type"] for f in schema_of(name)["fields"]}
    sources = record.get("prvDiaSources") or [record["diaSource"]]
    object_id = record["diaObject"]["diaObjectId"]
    record = dict(record)
    if not record.get("prvDiaForcedSources"):
        forced = record_schema(fields["prvDiaForcedSources"])
        assert forced is not None
        record["prvDiaForcedSources"] = [
            project(s, forced, diaForcedSourceId=s["diaSourceId"] + 7, diaObjectId=object_id,
                    ccdVisitId=s.get("ccdVisitId", s.get("visit")), totFlux=s.get("psFlux"), totFluxErr=s.get("psFluxErr"))
            for s in sources]
    if "prvDiaNondetectionLimits" in fields and not record.get("prvDiaNondetectionLimits"):
        limit = record_schema(fields["prvDiaNondetectionLimits"])
        assert limit is not None
        record["prvDiaNondetectionLimits"] = [
            project(s, limit, ccdVisitId=s.get("ccdVisitId", s.get("visit", 1)) + 1,
                    diaNoise=s.get("psfFluxErr", s.get("psFluxErr")) or 100.0) for s in sources]
    return roundtrip(record, name)


@pytest.fixture(scope="module")
def real_records(shared_data: Path) -> dict[str, dict[str, Any]]:
    """One real alert record per shipped schema, with forced photometry and limits added."""
    bases = {}
    for name in avro_schemas.LSST_SCHEMAS:
        major, minor = name.removeprefix("lsst.v").split("_")
        path = shared_data / f"lsst_alerts/schema/{major}/{minor}/sample_data/fakeAlert.avro"
        bases[name] = next(fastavro.reader(io.BytesIO(path.read_bytes())))
    elasticc = next(fastavro.reader(io.BytesIO(gzip.decompress(
        (DATA / "fink-client_alert_mjd60674.0512_obj747_src1494043.avro.gz").read_bytes()))))
    bases["elasticc.v0_9"] = elasticc
    bases["elasticc.v0_9_1"] = roundtrip(elasticc, "elasticc.v0_9_1")  # writing drops the 0.9-only fields
    assert sorted(bases) == sorted(avro_schemas.SHIPPED_SCHEMAS)
    return {name: with_histories(record, name) for name, record in bases.items()}


def null_some(value: dict[str, Any], schema: dict[str, Any], chance: float, rng: random.Random,
              keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``value`` with each nullable field (at any depth, but not those in ``keep``) set to None
    with probability ``chance``."""
    out = dict(value)
    for field in schema["fields"]:
        name = field["name"]
        if out.get(name) is None or name in keep:
            continue
        if nullable(field) and rng.random() < chance:
            out[name] = None
        elif (inner := record_schema(field["type"])) is not None:
            if isinstance(out[name], list):
                out[name] = [null_some(item, inner, chance, rng) for item in out[name]]
            else:
                out[name] = null_some(out[name], inner, chance, rng, keep)
    return out


KINDS = ("object", "sso", "no id", "bad band")  # the last two do not make an alert


def make_record(base: dict[str, Any], name: str, kind: str, index: int, chance: float,
                rng: random.Random) -> dict[str, Any]:
    """A schema-valid record of ``kind``; its trigger's diaSourceId is made unique by ``index``."""
    record = copy.deepcopy(base)
    source = record["diaSource"]
    source["diaSourceId"] += index
    if "diaSourceId" in record:
        record["diaSourceId"] = source["diaSourceId"]
    object_id = record["diaObject"]["diaObjectId"]
    source["diaObjectId"] = object_id  # the stock survives a null diaObject
    keep = frozenset({"diaObjectId"})
    if kind in ("sso", "no id"):
        record["diaObject"] = None
        source["diaObjectId"] = rng.choice([0, None])
        if "ssObjectId" in source:
            source["ssObjectId"] = None
        for history in ("prvDiaSources", "prvDiaForcedSources", "prvDiaNondetectionLimits"):
            if history in record:
                record[history] = rng.choice([[], None])
        for ss_record in ("ssObject", "ssSource", "MPCORB", "mpc_orbits"):
            if ss_record in record:
                record[ss_record] = None
        if kind == "sso":
            assert "ssObjectId" in source, f"{name} has no solar-system alerts"
            source["ssObjectId"] = SSO_ID + index
            keep = frozenset({"ssObjectId", "diaObjectId"})
    if kind == "bad band":
        source["band" if "band" in source else "filterName"] = "q"
        keep |= {"band"}
    return null_some(record, schema_of(name), chance, rng, keep)


def expected_stock(record: dict[str, Any]) -> int:
    object_id = record["diaSource"]["diaObjectId"]
    return object_id if object_id else content_id("LSST:ssObject", record["diaSource"]["ssObjectId"])


def container(records: list[dict[str, Any]], name: str) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, avro_schemas.load(name), records)
    return out.getvalue()


def parquet(records: list[dict[str, Any]]) -> bytes:
    pyarrow = pytest.importorskip("pyarrow")
    out = io.BytesIO()
    pytest.importorskip("pyarrow.parquet").write_table(pyarrow.Table.from_pylist(records), out)
    return out.getvalue()


def wire(record: dict[str, Any], name: str) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, avro_schemas.load(name), record)
    return b"\x00" + WIRE_IDS[name].to_bytes(4, "big") + out.getvalue()


def decode_all(payload: bytes, origin: str) -> tuple[list[Alert], list[RejectedRecord]]:
    """The alerts and rejected records of a multi-record payload."""
    try:
        return FORMAT.decode(payload, origin), []
    except PartialDecodeError as error:
        assert isinstance(error, AlertDecodeError)
        return error.alerts, error.rejects


def check_outcome(alerts: list[Alert], rejects: list[RejectedRecord], records: list[dict[str, Any]],
                  kinds: list[str], origin: str) -> None:
    good = [(r, k) for r, k in zip(records, kinds, strict=True) if k in ("object", "sso")]
    assert [(a.id, a.stock) for a in alerts] == [(r["diaSource"]["diaSourceId"], expected_stock(r)) for r, _ in good]
    for alert, (record, kind) in zip(alerts, good, strict=True):
        assert ("LSST_SSO" in alert.tags) == (kind == "sso" or bool(record["diaSource"].get("ssObjectId"))
                                                or bool(record.get("ssObject")) or bool(record.get("ssSource")))
        if kind == "sso":
            assert alert.stock_name == f"ssObject:{record['diaSource']['ssObjectId']}"
            assert alert.extra["diaObjectId"] is None and len(alert.datapoints) == 1
    bad = [i for i, k in enumerate(kinds) if k not in ("object", "sso")]
    assert [r.origin for r in rejects] == [f"{origin}#{i}" for i in bad]
    for reject, index in zip(rejects, bad, strict=True):
        assert reject.reason.startswith(f"{origin}: alert {index} (")
        assert ("neither a diaObjectId nor an ssObjectId" if kinds[index] == "no id" else "unknown band 'q'") in reject.reason


records_of_kinds = st.lists(st.sampled_from(KINDS), min_size=2, max_size=7)
null_chance = st.sampled_from([0.0, 0.3, 1.0])  # none, some, every nullable field


@SETTINGS
@given(st.sampled_from(avro_schemas.SHIPPED_SCHEMAS), records_of_kinds, null_chance, st.randoms(use_true_random=False))
def test_containers_decode_good_records_and_reject_bad_ones_alone(
    real_records: dict[str, dict[str, Any]], name: str, kinds: list[str], chance: float, rng: random.Random,
) -> None:
    if name.startswith("elasticc"):  # ELAsTiCC has no solar-system objects
        kinds = [k if k != "sso" else "object" for k in kinds]
    records = [make_record(real_records[name], name, kind, i, chance, rng) for i, kind in enumerate(kinds)]
    payload = container(records, name)
    alerts, rejects = decode_all(payload, "batch.avro")
    check_outcome(alerts, rejects, records, kinds, "batch.avro")
    assert all(a.extra["schema"] == name for a in alerts)
    for reject in rejects:  # the reject holds that record alone, readable on its own
        index = int(reject.origin.rpartition("#")[2])
        assert list(fastavro.reader(io.BytesIO(reject.payload))) == [roundtrip(records[index], name)]
        with pytest.raises(AlertDecodeError, match=r"^one: alert 0 ") as error:
            FORMAT.decode(reject.payload, "one")
        assert not isinstance(error.value, PartialDecodeError)
    assert decode_all(gzip.compress(payload), "batch.avro")[0] == alerts


@SETTINGS
@given(st.sampled_from(avro_schemas.SHIPPED_SCHEMAS), records_of_kinds, null_chance, st.randoms(use_true_random=False))
def test_parquet_rows_decode_like_the_container_and_reject_bad_rows_alone(
    real_records: dict[str, dict[str, Any]], name: str, kinds: list[str], chance: float, rng: random.Random,
) -> None:
    parquet_module = pytest.importorskip("pyarrow.parquet")
    if name.startswith("elasticc"):
        kinds = [k if k != "sso" else "object" for k in kinds]
    records = [roundtrip(make_record(real_records[name], name, kind, i, chance, rng), name)
               for i, kind in enumerate(kinds)]
    alerts, rejects = decode_all(parquet(records), "batch.parquet")
    check_outcome(alerts, rejects, records, kinds, "batch.parquet")
    from_avro, _ = decode_all(container(records, name), "batch.avro")
    assert [a.datapoints for a in alerts] == [a.datapoints for a in from_avro]
    rows = parquet_module.read_table(io.BytesIO(parquet(records))).to_pylist()
    for reject in rejects:
        index = int(reject.origin.rpartition("#")[2])
        assert parquet_module.read_table(io.BytesIO(reject.payload)).to_pylist() == [rows[index]]


@SETTINGS
@given(st.sampled_from(avro_schemas.SHIPPED_SCHEMAS), st.sampled_from(KINDS), null_chance,
       st.randoms(use_true_random=False))
def test_wire_format_messages_with_nulls_and_solar_system_objects(
    real_records: dict[str, dict[str, Any]], name: str, kind: str, chance: float, rng: random.Random,
) -> None:
    if name.startswith("elasticc") and kind == "sso":
        kind = "object"
    record = make_record(real_records[name], name, kind, 0, chance, rng)
    if kind in ("object", "sso"):
        alerts = FORMAT.decode(wire(record, name), "kafka")
        check_outcome(alerts, [], [record], [kind], "kafka")
        assert alerts[0].extra["schema"] == name
    else:  # one message is one record: it fails whole, as before
        with pytest.raises(AlertDecodeError) as error:
            FORMAT.decode(wire(record, name), "kafka")
        assert not isinstance(error.value, PartialDecodeError)
        assert str(error.value).startswith("kafka: alert 0 (")


@pytest.mark.parametrize("name", avro_schemas.SHIPPED_SCHEMAS)
def test_every_schema_with_every_nullable_field_null(real_records: dict[str, dict[str, Any]], name: str) -> None:
    kinds = ["object", "no id", "object"] if name.startswith("elasticc") else ["sso", "object", "no id", "sso"]
    rng = random.Random(0)
    records = [roundtrip(make_record(real_records[name], name, kind, i, 1.0, rng), name) for i, kind in enumerate(kinds)]
    for origin, payload in (("all.avro", container(records, name)), ("all.parquet", parquet(records))):
        check_outcome(*decode_all(payload, origin), records, kinds, origin)
    for record, kind in zip(records, kinds, strict=True):
        if kind != "no id":
            check_outcome(FORMAT.decode(wire(record, name), "kafka"), [], [record], [kind], "kafka")


# the reported container, and one with bad records ----------------------------------------------


def v10_export(real_records: dict[str, dict[str, Any]], kinds: list[str]) -> list[dict[str, Any]]:
    """Rubin v10 records of ``kinds``, solar-system ones with every nullable field null."""
    rng = random.Random(18)
    return [make_record(real_records["lsst.v10_0"], "lsst.v10_0", kind, i, 1.0 if kind == "sso" else 0.0, rng)
            for i, kind in enumerate(kinds)]


def spark_schema(schema: Any, seen: set[str]) -> Any:
    """``schema`` as a Spark export writes it: every field nullable, records renamed, the top one
    ``topLevelRecord`` (so the container's schema is not a shipped one)."""
    if isinstance(schema, list):
        return [spark_schema(branch, seen) for branch in schema]
    if isinstance(schema, dict) and schema["type"] == "array":
        return {"type": "array", "items": spark_schema(schema["items"], seen)}
    if isinstance(schema, dict) and schema["type"] == "record":
        name = "topLevelRecord" if not seen else schema["name"].rpartition(".")[2] + "_spark"
        if name in seen:
            return name
        seen.add(name)
        fields = []
        for field in schema["fields"]:
            kind = spark_schema(field["type"], seen)
            fields.append({"name": field["name"], "type": kind if isinstance(kind, list) and "null" in kind
                           else ["null", kind]})
        return {"type": "record", "name": name, "fields": fields}
    return schema


def test_the_reported_v10_container_with_two_solar_system_alerts_ingests_whole(
        real_records: dict[str, dict[str, Any]]) -> None:
    kinds = ["object", "object", "sso", "object", "sso", "object", "object"]
    records = v10_export(real_records, kinds)
    for i in (2, 4):  # as reported: every other nullable field null (null bands: see below)
        records[i]["diaSource"]["band"] = "g"
    alerts = FORMAT.decode(container(records, "lsst.v10_0"), "export.avro")
    check_outcome(alerts, [], records, kinds, "export.avro")
    # as the broker exported it: a Spark schema, the SSO alerts' diaObject a record of nulls
    for i in (2, 4):
        records[i]["diaObject"] = dict.fromkeys(real_records["lsst.v10_0"]["diaObject"])
    out = io.BytesIO()
    fastavro.writer(out, spark_schema(schema_of("lsst.v10_0"), set()), records)
    alerts = FORMAT.decode(out.getvalue(), "export.avro")  # was: alert 2 (unknown schema): TypeError: int() ...
    check_outcome(alerts, [], records, kinds, "export.avro")
    assert [a.extra["schema"] for a in alerts] == [None] * 7  # not a shipped schema's name
    assert [len(a.datapoints) for a in alerts] == [6, 6, 1, 6, 1, 6, 6]  # trigger, 2 prv, 2 forced, diaObject


def test_two_bad_records_of_seven_are_quarantined_alone(real_records: dict[str, dict[str, Any]]) -> None:
    kinds = ["object", "sso", "object", "no id", "sso", "bad band", "object"]
    records = v10_export(real_records, kinds)
    with pytest.raises(PartialDecodeError) as raised:
        FORMAT.decode(container(records, "lsst.v10_0"), "export.avro")
    error = raised.value
    assert (len(error.alerts), [r.origin for r in error.rejects]) == (5, ["export.avro#3", "export.avro#5"])
    check_outcome(error.alerts, error.rejects, records, kinds, "export.avro")
    # a runtime that does not know the subclass quarantines the whole container with both reasons
    assert str(error).startswith("export.avro: 2 record(s) could not be decoded, 5 alert(s) could: export.avro: alert 3 ")
    assert "alert 5 (lsst.v10_0): ValueError: unknown band 'q'" in str(error)
    copy_ = pickle.loads(pickle.dumps(error))  # worker processes send it back
    assert (str(copy_), copy_.rejects, [a.id for a in copy_.alerts]) == (str(error), error.rejects, [a.id for a in error.alerts])


def test_one_record_container_still_fails_whole(real_records: dict[str, dict[str, Any]]) -> None:
    payload = container(v10_export(real_records, ["no id"]), "lsst.v10_0")
    with pytest.raises(AlertDecodeError, match=r"^one\.avro: alert 0 .*neither a diaObjectId") as error:
        FORMAT.decode(payload, "one.avro")
    assert not isinstance(error.value, PartialDecodeError)


def test_a_bad_record_among_real_elasticc_alerts() -> None:
    records = list(fastavro.reader(io.BytesIO((DATA / "ampel-lsst_11290844.avro").read_bytes())))
    records[1]["diaSource"]["filterName"] = "q"
    with pytest.raises(PartialDecodeError) as error:
        FORMAT.decode(container(records, "elasticc.v0_9"), "ampel-lsst_11290844.avro")
    assert [a.id for a in error.value.alerts] == [records[0]["diaSource"]["diaSourceId"], records[2]["diaSource"]["diaSourceId"]]
    (reject,) = error.value.rejects
    assert reject.origin == "ampel-lsst_11290844.avro#1" and "unknown band 'q'" in reject.reason
    assert list(fastavro.reader(io.BytesIO(reject.payload))) == [records[1]]


def test_null_band_is_kept_without_a_band() -> None:
    record = next(fastavro.reader(io.BytesIO((DATA / "lsst.v11_1.fakeAlert.avro").read_bytes())))
    record["diaSource"]["band"] = None
    out = io.BytesIO()
    fastavro.schemaless_writer(out, avro_schemas.load("lsst.v11_1"), record)
    alert = FORMAT.decode(out.getvalue(), "nullband")[0]
    assert alert.trigger.band == "" and not alert.trigger.is_detection
    assert all(dp.band == "lsstr" for dp in alert.datapoints[1:3])  # prvDiaSources keep theirs


@pytest.mark.parametrize("workers", [1, 2])
def test_a_job_ingests_the_good_records_and_quarantines_each_bad_one(
        real_records: dict[str, dict[str, Any]], tmp_path: Path, workers: int) -> None:
    from ampel_core.drivers import run_job
    from ampel_core.jobs import load_job
    from ampel_core.store import open_store

    kinds = ["object", "sso", "object", "no id", "sso", "bad band", "object"]
    records = v10_export(real_records, kinds)
    (tmp_path / "export.avro").write_bytes(container(records, "lsst.v10_0"))
    store = f"sqlite:///{tmp_path / 'store.db'}"
    summary = run_job(load_job({"store": store, "channels": [{"name": "ALL"}], "tasks": [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(tmp_path / "export.avro")]}},
         "format": {"name": "lsst"}}]}), workers=workers)
    assert (summary.records, summary.alerts, summary.quarantined, summary.accepted["ALL"]) == (1, 5, 2, 5)
    opened = open_store(store)
    quarantined = [(q.origin, q.reason, q.payload) for q in opened.quarantined()]
    assert [origin for origin, _, _ in quarantined] == [f"{tmp_path / 'export.avro'}#3", f"{tmp_path / 'export.avro'}#5"]
    assert opened.counts()["alerts"] == 5
    for origin, _, payload in quarantined:  # each bad record's own bytes
        with pytest.raises(AlertDecodeError):
            FORMAT.decode(payload, origin)
    opened.close()
