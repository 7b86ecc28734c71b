"""T3 push units: send what a T3 selection found to the outside world.

- `WebhookPublisher`: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Discord's
  ``/slack`` endpoint): JSON ``{"text": ..., "blocks": [...]}``, up to ``stocks_per_message`` stocks
  per message.
- `TNSReporter`: AT reports in the Transient Name Server's bulk-report JSON (TNS 2.0 field names),
  written to a file and/or posted to the TNS bulk-report endpoint (or a sandbox).
- `KafkaPublisher`: one JSON message per stock to a Kafka topic per channel (confluent-kafka, the
  core's ``kafka`` extra).

Each is a `ReactUnit` configured in a job's T3 task. Its report (stored with the run) records what
it sent — for every stock its id, name and state id; the webhook messages' text; each AT report
with the ids of the datapoints behind every number in it — and where (scheme, host and port only:
the path of a webhook URL is its secret). Delivery: a request is retried with exponential backoff
(``backoff``, doubled after each try, at most ``max_backoff``; a server's ``Retry-After`` is
honoured up to that) on a transport error, a timeout, HTTP 408, 425, 429 or 5xx; other answers
(4xx, and redirects, which are never followed) are final. When anything is not delivered the unit
raises `PushError`, whose message holds the whole report (what was sent and what was not, and
why): the runtime stores it as the report's error and counts it in the run summary's
``reports_failed``. Nothing is dropped silently: a stock an AT report cannot be made for is listed
under ``skipped`` with the reason.

Secrets never go into a unit's config, which is part of its trace and so of the store and the read
API: a webhook URL (which carries its token), a TNS API key and a Kafka broker list may be given
as the name of an environment variable, which must start with ``AMPEL_PUSH_``, so that an uploaded
job cannot read the server's other settings. Where ``AMPEL_PUSH_ALLOWED_HOSTS`` is set
(comma-separated host names, ``host:port`` entries allowed) the units send only to those hosts.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ampel_core.errors import AmpelError
from ampel_core.models import DataPoint
from ampel_core.units import JSON, ReactUnit
from ampel_core.views import StockView, lookup

__all__ = ["ALLOWED_HOSTS_ENV", "SECRET_PREFIX", "ZTF_TNS_FILTERS", "Delivery", "KafkaPublisher", "PushError",
           "PushUnit", "TNSFilter", "TNSReporter", "WebhookPublisher", "at_report", "mjd_to_utc", "post",
           "read_secret", "stock_position"]

SECRET_PREFIX = "AMPEL_PUSH_"
ALLOWED_HOSTS_ENV = "AMPEL_PUSH_ALLOWED_HOSTS"
_ENV_NAME = re.compile(rf"{SECRET_PREFIX}[A-Z0-9_]+")
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class PushError(AmpelError):
    """Something a push unit should have sent was not delivered; ``report`` is the unit's whole
    report (what was sent, what was not and why), also in the message so that the stored report
    keeps it."""

    def __init__(self, summary: str, report: JSON) -> None:
        self.report = report
        super().__init__(f"{summary}; report: {json.dumps(report, sort_keys=True, default=str)}")


@contextmanager
def _before_sending(views: Sequence[StockView]) -> Iterator[None]:
    """Turn an error before anything was sent (a missing secret, a host not allowed, a bad
    producer setting) into a `PushError` that lists every stock as undelivered."""
    try:
        yield
    except PushError:
        raise
    except Exception as error:
        report = {"sent": 0, "failed": len(views), "undelivered": [_stock_record(v) for v in views]}
        raise PushError(f"nothing sent: {type(error).__name__}: {error}", report) from error


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new target: following it could lead past the allowed hosts."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def read_secret(name: str) -> str:
    """The value of environment variable ``name`` (which must start with ``AMPEL_PUSH_``);
    AmpelError when it is not set."""
    if not _ENV_NAME.fullmatch(name):
        raise AmpelError(f"environment variable '{name}': push units read only variables named AMPEL_PUSH_[A-Z0-9_]+")
    value = os.environ.get(name)
    if not value:
        raise AmpelError(f"environment variable {name} is not set (it should hold the push target's secret)")
    return value


def _target(url: str) -> str:
    """Where ``url`` points, without path or query (a webhook's path is its secret)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AmpelError(f"push target {_target(url)!r}: only http:// and https:// URLs with a host are allowed")
    _check_host(parts.hostname, parts.port)


def _check_host(host: str, port: int | None) -> None:
    allowed = os.environ.get(ALLOWED_HOSTS_ENV)
    if allowed is None:
        return
    entries = {entry.strip().lower() for entry in allowed.split(",") if entry.strip()}
    if host.lower() not in entries and f"{host.lower()}:{port}" not in entries:
        raise AmpelError(f"push target host {host}{f':{port}' if port else ''} is not in {ALLOWED_HOSTS_ENV}")


@dataclass(frozen=True)
class Delivery:
    """The outcome of one request: ``ok``, the last HTTP ``status`` (None without an answer), the
    number of ``attempts``, the last ``error``, the answer's ``body``, and whether the failure was
    ``retryable`` (the target looked down rather than refusing the message)."""

    ok: bool
    status: int | None
    attempts: int
    error: str | None = None
    body: bytes = b""
    retryable: bool = False

    def record(self) -> JSON:
        record: JSON = {"status": self.status, "attempts": self.attempts}
        if self.error:
            record["error"] = self.error
        return record


def post(url: str, data: bytes, headers: Mapping[str, str], *, timeout: float, retries: int, backoff: float,
         max_backoff: float, sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST ``data`` to ``url``; retry up to ``retries`` times with exponential backoff on a transport
    error, a timeout, HTTP 408/425/429 or 5xx (honouring ``Retry-After`` up to ``max_backoff``)."""
    attempt, wait = 0, backoff
    while True:
        attempt += 1
        request = urllib.request.Request(url, data=data, headers=dict(headers), method="POST")
        retry_after: float | None = None
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return Delivery(True, response.status, attempt, body=response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            status, message = error.code, f"HTTP {error.code} {error.reason}: {body[:200].decode(errors='replace')}"
            retryable = status in _RETRYABLE_STATUS
            retry_after = _retry_after(error.headers.get("Retry-After"))
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            status, body, message, retryable = None, b"", f"{type(error).__name__}: {reason}", True
        if not retryable or attempt > retries:
            return Delivery(False, status, attempt, message, body, retryable)
        sleep(min(max_backoff, retry_after if retry_after is not None else wait))
        wait = min(max_backoff, wait * 2)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class PushUnit(ReactUnit):
    """Common configuration of push units: how a failed request is retried."""

    retries: int = Field(3, ge=0, le=10, description="Retries of a failed request (so at most retries+1 attempts).")
    backoff: float = Field(1.0, ge=0, le=600, description="Seconds before the first retry; doubled after each.")
    max_backoff: float = Field(60.0, ge=0, le=3600, description="The longest wait between tries (seconds).")
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds to wait for an answer to one request.")

    def _post(self, url: str, data: bytes, headers: Mapping[str, str]) -> Delivery:
        return post(url, data, headers, timeout=self.timeout, retries=self.retries, backoff=self.backoff,
                    max_backoff=self.max_backoff)


def _url_or_env(url: str | None, url_env: str | None, what: str) -> None:
    if (url is None) == (url_env is None):
        raise ValueError(f"give exactly one of {what} and {what}_env")
    if url_env is not None and not _ENV_NAME.fullmatch(url_env):
        raise ValueError(f"{what}_env must name a variable AMPEL_PUSH_[A-Z0-9_]+ (got {url_env!r})")
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{what} must be an http:// or https:// URL")


def _stock_record(view: StockView) -> JSON:
    return {"id": view.id, "name": view.name, "state": view.latest_state}


# Webhook (Slack-compatible) ------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookPublisher(PushUnit):
    """Post the selected stocks to a Slack-compatible incoming webhook: one message per
    ``stocks_per_message`` stocks, each a line with the stock's name (a link when ``link`` is set)
    and its ``columns``. The report lists every message with its stocks (id, name, state id), its
    text, the HTTP status and the attempts it took."""

    url: str | None = Field(None, description="The webhook URL (prefer url_env: a webhook URL is a secret).")
    url_env: str | None = Field(None, description="Environment variable (AMPEL_PUSH_...) holding the webhook URL.")
    title: str = Field("AMPEL: {count} stocks in {channel}",
                       description="First line of each message; {count}, {channel}, {part} and {parts} are filled in.")
    columns: dict[str, str] = Field(
        default_factory=lambda: {"ndet": "T2LightCurveSummary.ndet"},
        description="Label -> value path ('name', 'id', 'tags' or '<Unit>.<key>...') shown for each stock.")
    link: str | None = Field(None, description="Link of a stock's name, e.g. 'https://ampel.example.org/stocks/{name}' "
                                               "({name} and {id} are filled in).")
    stocks_per_message: int = Field(20, ge=1, le=45, description="Stocks per message (Slack takes 50 blocks).")
    send_empty: bool = Field(False, description="Send a message when nothing was selected.")

    @model_validator(mode="after")
    def _one_url(self) -> WebhookPublisher:
        _url_or_env(self.url, self.url_env, "url")
        return self

    def message(self, views: Sequence[StockView], part: int = 1, parts: int = 1) -> JSON:
        """The JSON body of one message about ``views`` (Slack's ``text`` and ``blocks``)."""
        channel = next((v.channel for v in views if v.channel), None) or "all channels"
        title = self.title.format(count=len(views), channel=channel, part=part, parts=parts)
        lines = [self._line(view) for view in views]
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(title)}*"}}]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": line}} for line in lines]
        return {"text": "\n".join([f"*{_mrkdwn(title)}*", *lines]), "blocks": blocks}

    def _line(self, view: StockView) -> str:
        name = _mrkdwn(view.name)
        if self.link:
            name = f"<{self.link.format(name=urllib.parse.quote(view.name), id=view.id)}|{name}>"
        values = [f"{_mrkdwn(label)}: {_mrkdwn(_show(lookup(view, path)))}" for label, path in self.columns.items()]
        return " · ".join([f"*{name}*", *values])

    def process(self, views: Sequence[StockView]) -> JSON:
        with _before_sending(views):
            url = self.url if self.url is not None else read_secret(self.url_env or "")
            _check_url(url)
        batches = [list(views[i:i + self.stocks_per_message]) for i in range(0, len(views), self.stocks_per_message)]
        if not batches and self.send_empty:
            batches = [[]]
        report: JSON = {"target": _target(url), "messages": [], "sent": 0, "failed": 0}
        down: Delivery | None = None
        for part, batch in enumerate(batches, 1):
            message = self.message(batch, part, len(batches))
            record: JSON = {"stocks": [_stock_record(v) for v in batch], "text": message["text"]}
            if down is None:
                delivery = self._post(url, json.dumps(message).encode(), {"Content-Type": "application/json"})
                record.update(delivery.record())
                if not delivery.ok and delivery.retryable:
                    down = delivery
            else:
                delivery = down
                record.update(status=None, attempts=0, error=f"not attempted: the target was down ({down.error})")
            report["sent" if delivery.ok else "failed"] += len(batch)
            record["delivered"] = delivery.ok
            report["messages"].append(record)
        undelivered = [m for m in report["messages"] if not m["delivered"]]
        if undelivered:
            raise PushError(f"{len(undelivered)} of {len(batches)} webhook messages ({report['failed']} stocks) "
                            f"not delivered to {report['target']}: {undelivered[0]['error']}", report)
        return report


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# TNS AT reports ------------------------------------------------------------------------------


class TNSFilter(BaseModel):
    """The TNS ids of a band: its filter and the instrument that observed it (ids of TNS's value
    tables, https://www.wis-tns.org/api/get/values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filterid: int
    instrumentid: int


ZTF_TNS_FILTERS: dict[str, TNSFilter] = {
    "ztfg": TNSFilter(filterid=110, instrumentid=196),  # ZTF-Cam g, r, i
    "ztfr": TNSFilter(filterid=111, instrumentid=196),
    "ztfi": TNSFilter(filterid=112, instrumentid=196),
}

_MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mjd_to_utc(mjd: float) -> str:
    """A Modified Julian Date as TNS wants a date: 'YYYY-MM-DD HH:MM:SS.sss' (UTC, to the nearest
    millisecond)."""
    return (_MJD_EPOCH + timedelta(milliseconds=round(mjd * 86_400_000))).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def stock_position(datapoints: Sequence[DataPoint]) -> tuple[float, float, float, list[int]] | None:
    """(ra, dec in degrees, error in arcsec, ids of the datapoints used): the mean position of the
    detections with a positive flux and a finite ``ra`` and ``dec`` (within ±90°) among their survey
    fields (the error: the scatter of those positions, at least 0.1 arcsec); None where there are none."""
    used = [dp for dp in datapoints if dp.is_detection and (dp.flux or 0) > 0
            and _finite(dp.extra.get("ra")) and _finite(dp.extra.get("dec")) and abs(dp.extra["dec"]) <= 90]
    if not used:
        return None
    ras = [math.radians(dp.extra["ra"] % 360.0) for dp in used]
    decs = [dp.extra["dec"] for dp in used]
    ra = math.degrees(math.atan2(sum(map(math.sin, ras)), sum(map(math.cos, ras)))) % 360.0  # wraps at 0/360
    dec = sum(decs) / len(decs)
    scatter = [((((math.degrees(r) - ra + 180) % 360) - 180) * math.cos(math.radians(dec)), d - dec)
               for r, d in zip(ras, decs, strict=True)]
    error = 3600 * math.sqrt(sum(x * x + y * y for x, y in scatter) / len(used))
    return ra, dec, max(0.1, round(error, 3)), sorted(dp.id for dp in used)


def at_report(view: StockView, filters: Mapping[str, TNSFilter], *, reporting_groupid: int, data_source_groupid: int,
              reporter: str, at_type: int = 1, remarks: str = "", photometry_points: int = 3,
              limit_field: str = "diffmaglim") -> tuple[JSON, JSON]:
    """One TNS AT report of a stock and the provenance behind it: ``(report, provenance)``.

    The discovery is the first detection with a positive flux in a band of ``filters``; the last
    non-detection is the latest upper limit (any mapped band) before it; the photometry is the
    discovery and up to ``photometry_points - 1`` later positive detections in mapped bands
    (magnitudes, AB: TNS flux unit 1); the position is `stock_position`. The provenance names the
    stock, its state and the id of every datapoint used. AmpelError (with the reason) when the
    stock cannot be reported: TNS refuses a report without a position, a discovery photometry
    point or a last non-detection.
    """
    detections = sorted((dp for dp in view.datapoints if dp.is_detection and (dp.flux or 0) > 0 and _finite(dp.mag)),
                        key=lambda dp: (dp.time, dp.id))
    if not detections:
        raise AmpelError("no detection with a positive flux")
    discovery = detections[0]
    if discovery.band not in filters:
        raise AmpelError(f"the discovery's band {discovery.band!r} has no TNS filter id (set 'filters')")
    limits = [dp for dp in view.datapoints if dp.upper_limit and dp.time < discovery.time and dp.band in filters
              and _finite(dp.mag)]
    if not limits:
        raise AmpelError("no upper limit before the first detection (TNS requires the last non-detection)")
    last_limit = max(limits, key=lambda dp: (dp.time, dp.id))
    position = stock_position(view.datapoints)
    if position is None:
        raise AmpelError("no detection with a position (ra/dec)")
    ra, dec, error, position_ids = position
    photometry = [discovery, *[dp for dp in detections[1:] if dp.band in filters][: photometry_points - 1]]

    def point(dp: DataPoint) -> JSON:
        limit = dp.extra.get(limit_field)
        return {"obsdate": mjd_to_utc(dp.time), "flux": f"{dp.mag:.3f}",
                "flux_error": f"{dp.mag_err:.3f}" if _finite(dp.mag_err) else "",
                "limiting_flux": f"{limit:.3f}" if _finite(limit) else "", "flux_unitid": "1",
                "filterid": str(filters[dp.band].filterid), "instrumentid": str(filters[dp.band].instrumentid),
                "exptime": _text(dp.extra.get("exptime")), "observer": "Robot", "comments": ""}

    band = filters[last_limit.band]
    report: JSON = {
        "ra": {"value": f"{round(ra, 6) % 360.0:.6f}", "error": f"{error:.3f}", "units": "arcsec"},
        "dec": {"value": f"{dec:+.6f}", "error": f"{error:.3f}", "units": "arcsec"},
        "reporting_groupid": str(reporting_groupid), "data_source_groupid": str(data_source_groupid),
        "reporter": reporter, "discovery_datetime": mjd_to_utc(discovery.time), "at_type": str(at_type),
        "internal_name": view.name, "remarks": remarks,
        "non_detection": {"obsdate": mjd_to_utc(last_limit.time), "limiting_flux": f"{last_limit.mag:.3f}",
                          "flux_unitid": "1", "filterid": str(band.filterid), "instrumentid": str(band.instrumentid),
                          "exptime": "", "observer": "Robot", "comments": "", "archiveid": "", "archival_remarks": ""},
        "photometry": {str(i): point(dp) for i, dp in enumerate(photometry)},
    }
    provenance: JSON = {**_stock_record(view), "discovery": discovery.id, "non_detection": last_limit.id,
                        "photometry": [dp.id for dp in photometry], "position": position_ids}
    return report, provenance


class TNSReporter(PushUnit):
    """AT reports of the selected stocks in TNS bulk-report JSON (``{"at_report": {"0": {...}}}``,
    TNS 2.0 field names; see `at_report`), written to ``output`` and/or posted to ``url`` (the TNS
    bulk-report endpoint, e.g. https://sandbox.wis-tns.org/api/set/bulk-report) as the form fields
    ``api_key`` (from ``api_key_env``) and ``data``, with the bot's ``tns_marker`` as User-Agent, at
    most ``reports_per_request`` reports per request. The report lists every AT report as sent,
    with its provenance (stock, state, the datapoint ids of discovery, last non-detection,
    photometry and position), the stocks skipped with the reason, the file written, and each
    request's status and TNS report id.
    """

    output: str | None = Field(None, description="JSON file to write the bulk report to (none: no file); {utc} "
                                                 "becomes the time of writing, e.g. tns/at_{utc}.json.")
    url: str | None = Field(None, description="TNS bulk-report endpoint to post to (none: do not post).")
    api_key_env: str = Field("AMPEL_PUSH_TNS_API_KEY", description="Environment variable holding the bot's API key.")
    bot_id: int | None = Field(None, description="The TNS bot's id (for the tns_marker User-Agent).")
    bot_name: str | None = Field(None, description="The TNS bot's name (for the tns_marker User-Agent).")
    reporting_groupid: int = Field(description="TNS id of the reporting group.")
    data_source_groupid: int = Field(description="TNS id of the group whose data it is (e.g. 48: ZTF).")
    reporter: str = Field(description="Reporters, as TNS shows them ('A. Author, B. Author on behalf of ...').")
    at_type: int = Field(1, description="TNS AT type id (1: PSN, possible supernova).")
    remarks: str = Field("", description="Remarks sent with every report.")
    filters: dict[str, TNSFilter] = Field(default_factory=lambda: dict(ZTF_TNS_FILTERS),
                                          description="Band (sncosmo name) -> TNS filter and instrument ids.")
    photometry_points: int = Field(3, ge=1, le=10, description="Photometry points per report, the discovery first.")
    limit_field: str = Field("diffmaglim", description="Survey field of a detection's limiting magnitude.")
    reports_per_request: int = Field(50, ge=1, le=100, description="AT reports per request (TNS takes 100).")

    @model_validator(mode="after")
    def _somewhere(self) -> TNSReporter:
        if self.output is None and self.url is None:
            raise ValueError("give output (a file), url (the TNS endpoint) or both")
        try:
            (self.output or "").format(utc="")
        except (KeyError, IndexError, ValueError):
            raise ValueError("output may contain {utc} and no other {...} field") from None
        if self.url is not None:
            _url_or_env(self.url, None, "url")
            if self.bot_id is None or not self.bot_name:
                raise ValueError("posting to TNS needs bot_id and bot_name (the tns_marker User-Agent)")
        if not _ENV_NAME.fullmatch(self.api_key_env):
            raise ValueError(f"api_key_env must name a variable AMPEL_PUSH_[A-Z0-9_]+ (got {self.api_key_env!r})")
        return self

    def reports(self, views: Sequence[StockView]) -> tuple[list[JSON], list[JSON], list[JSON]]:
        """(AT reports, their provenance, skipped stocks with the reason)."""
        reports, provenance, skipped = [], [], []
        for view in views:
            try:
                report, origin = at_report(view, self.filters, reporting_groupid=self.reporting_groupid,
                                           data_source_groupid=self.data_source_groupid, reporter=self.reporter,
                                           at_type=self.at_type, remarks=self.remarks,
                                           photometry_points=self.photometry_points, limit_field=self.limit_field)
            except AmpelError as error:
                skipped.append({**_stock_record(view), "reason": str(error)})
                continue
            reports.append(report)
            provenance.append(origin)
        return reports, provenance, skipped

    def process(self, views: Sequence[StockView]) -> JSON:
        reports, provenance, skipped = self.reports(views)
        result: JSON = {"reports": [{**origin, "at_report": report} for origin, report in zip(provenance, reports,
                                                                                               strict=True)],
                        "skipped": skipped}
        if self.output is not None:
            path = Path(self.output.format(utc=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"at_report": {str(i): r for i, r in enumerate(reports)}}, indent=2) + "\n")
            result["output"] = str(path)
        if self.url is not None and reports:
            result["target"] = _target(self.url)
            with _before_sending(views):
                _check_url(self.url)
                api_key = read_secret(self.api_key_env)
            result["requests"] = self._send(reports, provenance, api_key)
            failed = [r for r in result["requests"] if not r["delivered"]]
            if failed:
                stocks = sum(len(r["stocks"]) for r in failed)
                raise PushError(f"{len(failed)} of {len(result['requests'])} TNS requests ({stocks} AT reports) "
                                f"not accepted by {result['target']}: {failed[0]['error']}", result)
        return result

    def _send(self, reports: list[JSON], provenance: list[JSON], api_key: str) -> list[JSON]:
        assert self.url is not None
        marker = "tns_marker" + json.dumps({"tns_id": self.bot_id, "type": "bot", "name": self.bot_name})
        headers = {"User-Agent": marker, "Content-Type": "application/x-www-form-urlencoded"}
        requests: list[JSON] = []
        down: Delivery | None = None
        for start in range(0, len(reports), self.reports_per_request):
            chunk = reports[start:start + self.reports_per_request]
            record: JSON = {"stocks": [p["id"] for p in provenance[start:start + self.reports_per_request]]}
            if down is not None:
                record.update(delivered=False, status=None, attempts=0,
                              error=f"not attempted: the target was down ({down.error})")
                requests.append(record)
                continue
            data = json.dumps({"at_report": {str(i): r for i, r in enumerate(chunk)}})
            delivery = self._post(self.url, urllib.parse.urlencode({"api_key": api_key, "data": data}).encode(), headers)
            record.update(delivery.record())
            record["delivered"] = delivery.ok
            if delivery.ok:
                reply = _tns_reply(delivery.body)
                record.update(reply)
                record["delivered"] = reply.get("id_code") == 200
                if not record["delivered"]:
                    record["error"] = f"TNS answered {reply.get('id_code')}: {reply.get('id_message')}"
            elif delivery.retryable:
                down = delivery
            requests.append(record)
        return requests


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _tns_reply(body: bytes) -> JSON:
    """id_code, id_message and report_id of a TNS bulk-report answer."""
    try:
        reply = json.loads(body)
    except ValueError:
        return {"id_code": None, "id_message": f"not JSON: {body[:200].decode(errors='replace')}"}
    if not isinstance(reply, dict):
        return {"id_code": None, "id_message": "not a JSON object"}
    data = reply.get("data")
    report_id = data.get("report_id") if isinstance(data, dict) else None
    return {"id_code": reply.get("id_code"), "id_message": reply.get("id_message"), "report_id": report_id}


# Kafka ---------------------------------------------------------------------------------------

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class KafkaPublisher(PushUnit):
    """One JSON message per selected stock to the Kafka topic ``topic`` (``{channel}`` is the
    selection's channel, so a topic per channel), keyed by the stock's name: the stock id, name,
    channel, state id, tags, datapoint ids, position and its latest results. Delivery is
    idempotent (librdkafka retries ``retries`` times with the unit's backoff); a message not
    acknowledged by the broker within ``timeout * (retries + 1)`` seconds is reported undelivered.
    """

    bootstrap: str | None = Field(None, description="Kafka bootstrap servers, 'host:port,...'.")
    bootstrap_env: str | None = Field(None, description="Environment variable (AMPEL_PUSH_...) holding them instead.")
    topic: str = Field("ampel.{channel}", description="Topic; {channel} is the selected channel ('all' without one).")
    results: bool = Field(True, description="Include the stock's latest T2 results.")
    producer: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="More librdkafka producer settings (no secrets: they go into the trace).")

    @model_validator(mode="after")
    def _one_bootstrap(self) -> KafkaPublisher:
        if (self.bootstrap is None) == (self.bootstrap_env is None):
            raise ValueError("give exactly one of bootstrap and bootstrap_env")
        if self.bootstrap_env is not None and not _ENV_NAME.fullmatch(self.bootstrap_env):
            raise ValueError(f"bootstrap_env must name a variable AMPEL_PUSH_[A-Z0-9_]+ (got {self.bootstrap_env!r})")
        return self

    def topic_of(self, channel: str | None) -> str:
        """The topic of ``channel``; AmpelError when it is not a valid Kafka topic name."""
        topic = self.topic.format(channel=channel or "all")
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise AmpelError(f"'{topic}' is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
        return topic

    def message(self, view: StockView) -> JSON:
        position = stock_position(view.datapoints)
        message: JSON = {**_stock_record(view), "channel": view.channel, "tags": list(view.tags),
                         "datapoints": sorted(dp.id for dp in view.datapoints),
                         "ra": position[0] if position else None, "dec": position[1] if position else None}
        if self.results:
            message["results"] = dict(view.results)
        return message

    def process(self, views: Sequence[StockView]) -> JSON:
        from ampel_core.errors import optional_import

        budget_ms = int(1000 * self.timeout * (self.retries + 1))
        with _before_sending(views):
            kafka = optional_import("confluent_kafka", "kafka")
            bootstrap = self.bootstrap if self.bootstrap is not None else read_secret(self.bootstrap_env or "")
            for server in bootstrap.split(","):
                host, _, port = server.strip().rpartition(":")
                _check_host(host.strip("[]"), int(port) if port.isdecimal() else None)
            topic = self.topic_of(next((v.channel for v in views if v.channel), None))
            producer = kafka.Producer({
                "bootstrap.servers": bootstrap, "enable.idempotence": self.retries > 0, "acks": "all",
                "retries": self.retries, "retry.backoff.ms": max(1, int(1000 * self.backoff)),
                "retry.backoff.max.ms": max(1, int(1000 * self.max_backoff)), "message.timeout.ms": budget_ms,
                "socket.timeout.ms": max(10, int(1000 * self.timeout)), **self.producer})
        outcome: dict[int, str | None] = {}

        def delivered(stock: int) -> Callable[[Any, Any], None]:
            def callback(error: Any, message: Any) -> None:
                outcome[stock] = str(error) if error is not None else None
            return callback

        for view in views:
            value = json.dumps(self.message(view), sort_keys=True, default=str).encode()
            producer.produce(topic, value=value, key=view.name.encode(), on_delivery=delivered(view.id))
            producer.poll(0)
        left = producer.flush(budget_ms / 1000 + 5)
        messages = [{**_stock_record(v), "delivered": v.id in outcome and outcome[v.id] is None,
                     **({"error": outcome.get(v.id) or "no acknowledgement from the broker in time"}
                        if outcome.get(v.id, "missing") is not None else {})} for v in views]
        report: JSON = {"topic": topic, "messages": messages, "sent": sum(m["delivered"] for m in messages),
                        "failed": sum(not m["delivered"] for m in messages), "in_queue": left}
        if report["failed"]:
            first = next(m["error"] for m in messages if not m["delivered"])
            raise PushError(f"{report['failed']} of {len(messages)} Kafka messages to topic {topic} not delivered: "
                            f"{first}", report)
        return report
