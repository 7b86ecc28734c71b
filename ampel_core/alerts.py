"""Alert sources and alert formats: how bytes arrive and how they become `Alert`s.

A *source* yields `SourceRecord`s (an origin string naming where the bytes came from, and the bytes).
An *alert format* decodes one record's bytes into alerts; it raises `AlertDecodeError` with a reason
for bytes it cannot read, and the runtime quarantines the record with that reason and its bytes.
A record that holds several alerts (an Avro container, a Parquet file) of which only some cannot be
decoded raises `PartialDecodeError` instead: the runtime ingests its good alerts and quarantines
each bad one alone (a `RejectedRecord`).
Sources that need acknowledgement (Kafka) get `commit()` once everything yielded so far is durably
ingested.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict

from ampel_core.errors import AmpelError
from ampel_core.models import Alert, DataPoint, content_id

__all__ = ["GZIP_MAGIC", "TAR_SUFFIXES", "AlertDecodeError", "AlertFormat", "AlertSource", "FileSource",
           "JsonAlertFormat", "PartialDecodeError", "RejectedRecord", "SourceRecord"]


class AlertDecodeError(AmpelError, ValueError):
    """Bytes that are not a readable alert; the message is the reason stored with the quarantine."""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One record inside a payload that could not be decoded, to be quarantined on its own.

    ``origin`` is the payload's origin plus ``#<index>``, the record's position in the payload
    (from 0); ``payload`` is that record's own bytes where the format can cut them out (e.g. a
    one-record Avro container), else the whole payload's bytes.
    """

    origin: str
    reason: str
    payload: bytes


class PartialDecodeError(AlertDecodeError):
    """Some records of a multi-record payload could not be decoded, the others could.

    ``alerts`` are the decoded alerts (to be ingested as if `decode` had returned them),
    ``rejects`` one `RejectedRecord` per failing record (to be quarantined). A runtime that does
    not know this subclass quarantines the whole payload with the message, which lists every
    reject's reason, exactly as for any AlertDecodeError: nothing is lost either way.
    """

    def __init__(self, origin: str, alerts: list[Alert], rejects: list[RejectedRecord]) -> None:
        self.origin, self.alerts, self.rejects = origin, alerts, rejects
        super().__init__(f"{origin}: {len(rejects)} record(s) could not be decoded, {len(alerts)} alert(s) could: "
                         + "; ".join(reject.reason for reject in rejects))

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes despite the extra arguments
        return (type(self), (self.origin, self.alerts, self.rejects))


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of an alert source. ``error`` says why a record could not be read whole (a
    truncated archive): the runtime then quarantines ``payload`` (the bytes read) with it,
    undecoded, and the run is incomplete."""

    origin: str
    payload: bytes
    error: str | None = None


@runtime_checkable
class AlertFormat(Protocol):
    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        """All alerts in ``payload``.

        Raises AlertDecodeError with a reason if it cannot be read; PartialDecodeError (a subclass)
        carrying the good alerts and the rejected records when only some records of it can.
        """
        ...


@runtime_checkable
class AlertSource(Protocol):
    def __iter__(self) -> Iterator[SourceRecord]: ...

    def commit(self) -> None:
        """Everything yielded so far is durably stored (acknowledge it upstream)."""
        ...

    def close(self) -> None:
        """Release connections (e.g. leave a Kafka consumer group); called once, also on errors."""
        ...


GZIP_MAGIC = b"\x1f\x8b"


def _maybe_gunzip(payload: bytes, origin: str) -> bytes:
    if payload[:2] != GZIP_MAGIC:
        return payload
    try:
        return gzip.decompress(payload)
    except (OSError, EOFError) as error:
        raise AlertDecodeError(f"{origin}: corrupt gzip data: {error}") from None


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _is_tar(path: Path) -> bool:
    """Tar archives by name, or uncompressed ones by their ``ustar`` magic (cheaper than
    `tarfile.is_tarfile`, which tries every compression on every file)."""
    if path.name.endswith(TAR_SUFFIXES):
        return True
    with open(path, "rb") as handle:
        return handle.read(263)[257:262] == b"ustar"


class FileSource(BaseModel):
    """Alerts from files, directories (walked in sorted order) and tar / tar.gz archives (read as
    streams, never unpacked to disk). Gzipped files are decompressed. Config: ``paths`` and a
    ``pattern`` for file names (fnmatch) inside directories and archives."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str]
    pattern: str = "*"
    partition: tuple[int, int] = (0, 1)  # (index, count): take every count-th record from index

    def _files(self) -> Iterator[Path]:
        for raw in self.paths:
            path = Path(raw).expanduser()
            if path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs.sort()
                    for name in sorted(files):
                        if fnmatch.fnmatch(name, self.pattern):
                            yield Path(root, name)
            elif path.exists():
                yield path
            else:
                raise FileNotFoundError(f"alert source: no such file or directory: {path}")

    def records(self) -> Iterator[SourceRecord]:
        """Every record, unpartitioned (tar members in archive order)."""
        for path in self._files():
            if _is_tar(path):
                yield from self._tar_records(path)
            else:
                yield SourceRecord(str(path), path.read_bytes())

    def _tar_records(self, path: Path) -> Iterator[SourceRecord]:
        """The archive's members; where it ends before its end (a truncated download), one record
        with the ``error`` "unexpected end of archive at byte N" and the bytes of the member that
        was cut short: what was read stays, the rest is reported, never silently lost."""
        last = "its first member"
        with path.open("rb") as raw:
            try:
                with tarfile.open(fileobj=raw, mode="r|*") as archive:
                    for member in archive:
                        last = member.name
                        if not (member.isfile() and fnmatch.fnmatch(Path(member.name).name, self.pattern)):
                            continue
                        handle = archive.extractfile(member)
                        data = handle.read() if handle is not None else b""
                        if len(data) < member.size:
                            raise EOFError(f"member {member.name} cut short ({len(data)} of {member.size} bytes)")
                        yield SourceRecord(f"{path}::{member.name}", data)
            except (tarfile.TarError, OSError, EOFError) as error:
                at = raw.tell()
                yield SourceRecord(f"{path}::<rest of archive after {last}>", b"",
                                   f"{path}: unexpected end of archive at byte {at} (of {path.stat().st_size}), in or "
                                   f"after {last}: {error or type(error).__name__}; the members after it are missing")

    def __iter__(self) -> Iterator[SourceRecord]:  # type: ignore[override]  # not pydantic's field iteration
        index, count = self.partition
        for position, record in enumerate(self.records()):
            if position % count == index:
                yield record

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


class JsonAlertFormat(BaseModel):
    """The survey-neutral format: newline-delimited JSON, one alert per line (see docs/alert-format.md).

    ``{"stock": "SN2024abc", "id": 17, "extra": {...}, "datapoints": [{"id": 1, "time": 60000.1,
    "band": "ztfg", "flux": 1200.0, "flux_err": 30.0, "zp": 25.0, "zpsys": "ab", "mag": 17.3,
    "mag_err": 0.03, "upper_limit": false, "tags": ["MY_SURVEY"], "extra": {...}}, ...]}``

    ``stock`` is the object's name; its stock id is derived from it. Optional alert ``tags`` are added
    to the stock's tags. Datapoint ``id`` and alert
    ``id`` are optional: missing ones are content hashes. The first datapoint triggered the alert.
    """

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = []  # added to every datapoint

    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        """The alerts of every line. A line that is not an alert is rejected alone (`PartialDecodeError`,
        origin ``FILE#LINE``, its own bytes) and the other lines' alerts are kept; a payload of one
        line that is not an alert raises `AlertDecodeError`."""
        payload = _maybe_gunzip(payload, origin)
        alerts: list[Alert] = []
        rejects: list[RejectedRecord] = []
        lines = [(number, line) for number, line in enumerate(payload.splitlines(), 1) if line.strip()]
        for number, line in lines:
            try:
                alerts.append(self._alert(orjson.loads(line)))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
                kind = "missing field" if isinstance(error, KeyError) else type(error).__name__
                rejects.append(RejectedRecord(f"{origin}#{number}", f"{origin} line {number}: {kind}: {error}", line))
        if len(lines) == 1 and rejects:
            raise AlertDecodeError(rejects[0].reason)
        if rejects:
            raise PartialDecodeError(origin, alerts, rejects)
        if not alerts:
            raise AlertDecodeError(f"{origin}: no alert in {len(payload)} bytes")
        return alerts

    def _alert(self, doc: dict[str, Any]) -> Alert:
        name = str(doc["stock"])
        stock = content_id("stock", name)
        datapoints = []
        for raw in doc["datapoints"]:
            fields = {key: raw[key] for key in ("zp", "zpsys", "mag", "mag_err", "upper_limit") if key in raw}
            upper_limit = bool(fields.get("upper_limit", False))
            datapoints.append(DataPoint(
                id=int(raw["id"]) if "id" in raw else content_id(name, raw["time"], raw["band"], raw.get("flux"), upper_limit),
                stock=stock, time=float(raw["time"]), band=str(raw["band"]),
                flux=None if raw.get("flux") is None else float(raw["flux"]),
                flux_err=None if raw.get("flux_err") is None else float(raw["flux_err"]),
                tags=tuple(raw.get("tags", ())) + tuple(self.tags), extra=raw.get("extra", {}), **fields))
        if not datapoints:
            raise ValueError("alert has no datapoints")
        alert_id = int(doc["id"]) if "id" in doc else content_id(name, datapoints[0].id)
        return Alert(id=alert_id, stock=stock, stock_name=name, datapoints=datapoints, extra=doc.get("extra", {}),
                     tags=tuple(doc.get("tags", ())))
