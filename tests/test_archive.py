"""Alert archives (`ampel_core.archive`): built from alert files, JSON lines, tar archives, Avro
containers of several alerts and brokers' Parquet exports; partitioned by stock, time-ordered within
a stock; every archived record decodes to what its source decoded to; `ArchiveSource` reads only
the partitions it is given; ``ampel archive build|info`` on the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampel_core.alerts import FileSource, JsonAlertFormat
from ampel_core.archive import ArchiveSource, build_archive, parquet_records, parquet_rows, partition_file, read_info
from ampel_core.errors import AmpelError
from ampel_core.runtime import partition_of

pq = pytest.importorskip("pyarrow.parquet")
fastavro = pytest.importorskip("fastavro")

REPOSITORY = Path(__file__).resolve().parents[1]
ZTF_SAMPLE = REPOSITORY / "docs" / "examples" / "data" / "ztf"  # 62 real ZTF alerts, shipped


def rows(archive: Path) -> list[dict[str, Any]]:
    info = read_info(archive)
    found = []
    for index in range(info.partitions):
        for row in pq.read_table(archive / partition_file(index)).to_pylist():
            found.append({**row, "partition": index})
    return found


def comparable(alert: Any) -> tuple[Any, ...]:
    points = [(p.id, p.time, p.band, p.flux, p.flux_err, p.upper_limit, p.tags, json.dumps(p.extra, sort_keys=True,
                                                                                         default=str))
              for p in alert.datapoints]
    return (alert.id, alert.stock, alert.stock_name, points, json.dumps(alert.extra, sort_keys=True, default=str),
            sorted(alert.blobs.items()), alert.tags)


def check_layout(archive: Path) -> list[dict[str, Any]]:
    """Every stock in one partition, the one `partition_of` names; rows in (stock, time, alert) order."""
    info = read_info(archive)
    found = rows(archive)
    partitions_of: dict[int, set[int]] = defaultdict(set)
    for row in found:
        partitions_of[row["stock"]].add(row["partition"])
    assert all(parts == {partition_of(stock, info.partitions)} for stock, parts in partitions_of.items())
    for index in range(info.partitions):
        keys = [(r["stock"], r["time"], r["alert"]) for r in found if r["partition"] == index]
        assert keys == sorted(keys)
    assert info.alerts == len(found) and info.stocks == len(partitions_of)
    assert info.bytes == sum((archive / partition_file(i)).stat().st_size for i in range(info.partitions))
    return found


def test_json_lines_are_cut_per_alert_and_decode_as_before(tmp_path: Path, sample_copies: Any) -> None:
    source = sample_copies(tmp_path / "alerts", 3, one_per_file=False)  # 3 files of 46 alerts of many stocks
    form = JsonAlertFormat()
    info = build_archive([str(source)], tmp_path / "archive", form, {"name": "json", "config": {}}, 4)
    assert info.alerts == 3 * 46 and info.quarantined == 0 and info.partitions == 4
    found = check_layout(tmp_path / "archive")
    originals = {alert.id: alert for record in FileSource(paths=[str(source)]).records()
                 for alert in form.decode(record.payload, record.origin)}
    archived = [alert for row in found for alert in form.decode(row["payload"], row["origin"])]
    assert sorted(comparable(a) for a in archived) == sorted(comparable(a) for a in originals.values())
    assert all("#" in row["origin"] for row in found)  # FILE#LINE: where each line came from


@pytest.fixture
def ztf_format() -> Any:
    alerts = pytest.importorskip("ampel_ztf.alerts")
    return alerts.ZTFAlertFormat()


def test_ztf_files_tar_and_containers_round_trip(tmp_path: Path, ztf_format: Any) -> None:
    """Files and a tar of them; a container of several alerts (written here from the sample's
    records with fastavro) is cut into one-record containers; a broken file is kept in the quarantine."""
    files = sorted(ZTF_SAMPLE.rglob("*.avro"))
    with tarfile.open(tmp_path / "night.tar.gz", "w:gz") as archive:
        for path in files[:20]:
            archive.add(path, arcname=path.name)
    records = []
    for path in files[20:30]:
        reader = fastavro.reader(io.BytesIO(path.read_bytes()))
        schema = reader.writer_schema
        records.extend(reader)
    container = tmp_path / "many.avro"
    with open(container, "wb") as handle:
        fastavro.writer(handle, schema, records)
    (tmp_path / "broken.avro").write_bytes(b"Obj\x01 truncated")
    sources = [str(tmp_path / "night.tar.gz"), str(container), str(tmp_path / "broken.avro"), *map(str, files[30:])]
    info = build_archive(sources, tmp_path / "archive", ztf_format, {"name": "ztf", "config": {}}, 3)
    assert info.quarantined == 1
    quarantine = pq.read_table(tmp_path / "archive" / "quarantine.parquet").to_pylist()
    assert quarantine[0]["origin"].endswith("broken.avro") and quarantine[0]["payload"] == b"Obj\x01 truncated"
    found = check_layout(tmp_path / "archive")
    expected = [comparable(a) for s in sources[:2] + sources[3:] for r in FileSource(paths=[s]).records()
                for a in ztf_format.decode(r.payload, r.origin)]
    archived = [comparable(a) for row in found for a in ztf_format.decode(row["payload"], row["origin"])]
    assert sorted(archived, key=repr) == sorted(expected, key=repr)
    by_origin = {row["origin"]: row["payload"] for row in found}
    for path in files[30:]:  # a one-alert file keeps its original bytes
        assert by_origin[str(path)] == path.read_bytes()
    assert sum(1 for origin in by_origin if origin.startswith(f"{container}#")) == len(records)


def test_parquet_exports_round_trip(tmp_path: Path, shared_data: Path, ztf_format: Any) -> None:
    """Fink's Parquet exports: every row becomes a one-record Avro container whose decoded record
    equals the row, and whose Alert equals the ZTF format's Alert of the row."""
    exports = sorted((shared_data / "ztf_alerts_parquet" / "fink-science").rglob("*.parquet"))
    for path in exports:
        _, expected = parquet_rows(str(path))
        for row, record in zip(expected, parquet_records(str(path)), strict=True):
            assert record.error is None
            [decoded] = list(fastavro.reader(io.BytesIO(record.payload)))
            assert decoded == row
            [alert] = ztf_format.decode(record.payload, record.origin)
            assert comparable(alert) == comparable(ztf_format.alert(row))
    info = build_archive([str(p) for p in exports], tmp_path / "archive", ztf_format, {"name": "ztf", "config": {}}, 2)
    assert info.quarantined == 0 and info.alerts == sum(pq.ParquetFile(p).metadata.num_rows for p in exports) == 249
    check_layout(tmp_path / "archive")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({
    "name": st.text(min_size=1, max_size=8), "flag": st.none() | st.booleans(), "count": st.none() | st.integers(-2**40, 2**40),
    "scores": st.none() | st.lists(st.none() | st.floats(allow_nan=False), max_size=4),
    "inner": st.none() | st.fixed_dictionaries({"a": st.none() | st.integers(-5, 5), "b": st.binary(max_size=6)})}),
    min_size=1, max_size=6))
def test_any_parquet_rows_round_trip_through_avro(tmp_path: Path, table_rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(table_rows), path)
    decoded = [next(iter(fastavro.reader(io.BytesIO(record.payload)))) for record in parquet_records(str(path))]
    assert decoded == pa.Table.from_pylist(table_rows).to_pylist()


def test_archive_source_reads_only_its_partitions(tmp_path: Path, sample_copies: Any) -> None:
    source = sample_copies(tmp_path / "alerts", 2, one_per_file=False)
    info = build_archive([str(source)], tmp_path / "archive", JsonAlertFormat(), {"name": "json", "config": {}}, 5)
    everything = [(r.origin, r.payload) for r in ArchiveSource(path=str(tmp_path / "archive"))]
    assert len(everything) == info.alerts
    shares = []
    for part in range(5):
        reader = ArchiveSource(path=str(tmp_path / "archive"), partitions=[part])
        shares.append([(r.origin, r.payload) for r in reader])
        assert reader.bytes_read == {partition_file(part): (tmp_path / "archive" / partition_file(part)).stat().st_size}
        stocks = {a.stock for _, payload in shares[-1] for a in JsonAlertFormat().decode(payload, "x")}
        assert all(partition_of(stock, 5) == part for stock in stocks)
    assert [record for share in shares for record in share] == everything
    with pytest.raises(AmpelError, match=r"partitions 0..4, not \[7\]"):
        ArchiveSource(path=str(tmp_path / "archive"), partitions=[7])
    with pytest.raises(AmpelError, match="not an AMPEL archive"):
        ArchiveSource(path=str(tmp_path))


def test_cli_archive_build_and_info(tmp_path: Path, sample_alerts: Path) -> None:
    def ampel(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ampel_core.cli", *arguments], capture_output=True, text=True,
                              timeout=120, cwd=REPOSITORY)

    out = tmp_path / "archive"
    done = ampel("archive", "build", str(sample_alerts), str(out), "--format", "json", "--partitions", "3")
    assert done.returncode == 0, done.stderr
    assert "46 alerts of" in done.stderr and "3 partitions" in done.stderr
    shown = ampel("archive", "info", str(out), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    table = json.loads(shown.stdout)
    assert [row["partition"] for row in table] == [partition_file(i) for i in range(3)]
    assert sum(row["alerts"] for row in table) == 46
    again = ampel("archive", "build", str(sample_alerts), str(out), "--format", "json")
    assert again.returncode == 2 and again.stderr.startswith("error:") and "not an empty folder" in again.stderr
    missing = ampel("archive", "info", str(tmp_path))
    assert missing.returncode == 2 and "not an AMPEL archive" in missing.stderr and "Traceback" not in missing.stderr
