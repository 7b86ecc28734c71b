"""Uploaded jobs: validated, stored versioned, activated without a restart, paused, removed, replayed.

A team uploads a job file, the same YAML it runs locally with ``ampel job``. On the server:

- its **channels** run on the live stream (T0 of every active channel, then T1 and T2 tickets);
  its T0 tasks' sources and formats are not used (the stream is the source), nor its ``store``;
- its **T3 tasks** run on the server's schedule (``--t3-interval``), each selecting one of the
  job's own channels;
- T2 tickets are run by the server's workers.

An upload is *data only*: YAML read with the safe loader (no object-constructing tags), a size limit,
a bound on its nodes (aliases cannot blow it up), every unit named must be installed and its config
valid against the unit's schema, every channel's ``access`` must be among the team's rights, channel
names are unique across teams, and every string in its channels and T3 tasks that looks like a file
path (a ``/``, ``~``, ``..``, or any value of a key naming a file: ``output``, ``file``, ``path``,
``dir``...) must lie inside the server's data directory (relative paths are taken from there), and
every ``*_env`` setting of its units (the environment variable a unit reads a secret from, defaults
included) must name a variable of the team's own, ``AMPEL_PUSH_<TEAM>_...`` (`secret_prefix`). Each
upload of a job name is a new version (with its digest and the trace ids of its units); uploading
the same content again is not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from ampel_core.errors import AmpelError
from ampel_core.jobs import Job, T3Task, load_job
from ampel_core.models import Trace
from ampel_core.provenance import digest
from ampel_core.registry import Registry, get_registry
from ampel_core.runtime import Channel, configure
from ampel_core.store import open_store
from ampel_core.units import ReactUnit
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from ampel_serve._db import ServeDB
from ampel_serve.auth import CurrentTeam, Team
from ampel_serve.teams import TeamBook

__all__ = ["MAX_NODES", "JobBook", "JobRefused", "JobVersion", "confine_paths", "load_upload", "prepare", "router",
           "secret_prefix"]

MAX_NODES = 100_000  # values in one uploaded document, aliases counted at each use
STATUSES = ("active", "paused", "superseded", "removed")


class JobRefused(AmpelError):
    """An upload that is not accepted; the message says what is wrong."""


@dataclass(frozen=True)
class JobVersion:
    team: str
    name: str
    version: int
    digest: str
    status: str
    channels: tuple[str, ...]
    traces: tuple[str, ...]
    created: float
    job: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"team": self.team, "name": self.name, "version": self.version, "digest": self.digest,
                "status": self.status, "channels": list(self.channels), "traces": list(self.traces),
                "created": self.created}


def _count_nodes(value: Any, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise JobRefused(f"the job has more than {MAX_NODES} values (are aliases repeating a large part?)")
    if isinstance(value, dict):
        for key, item in value.items():
            _count_nodes(key, budget)
            _count_nodes(item, budget)
    elif isinstance(value, list):
        for item in value:
            _count_nodes(item, budget)


def load_upload(text: bytes, max_bytes: int) -> dict[str, Any]:
    """The YAML document of an upload: a mapping read by the safe loader, at most ``max_bytes``
    bytes and `MAX_NODES` values. JobRefused says what is wrong."""
    import yaml

    if len(text) > max_bytes:
        raise JobRefused(f"the job file has {len(text)} bytes; at most {max_bytes} are accepted")
    try:
        document = yaml.safe_load(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise JobRefused("the job file is not UTF-8 text") from None
    except yaml.YAMLError as error:  # includes python/object tags: the safe loader constructs no objects
        raise JobRefused(f"not a valid job file (YAML, data only): {error}".replace("\n", " ")) from None
    if not isinstance(document, dict):
        raise JobRefused("a job is a YAML mapping (name, channels, tasks)")
    _count_nodes(document, [MAX_NODES])
    return document


_PATH_KEYS = re.compile(r"file|path|output|dir|folder", re.IGNORECASE)


def _looks_like_path(value: str, key: str) -> bool:
    """A string taken for a file path: one with a separator, ``~``, ``.`` or ``..``, or any string
    under a key that names a file (``file``, ``path``, ``output``, ``dir`` ...)."""
    return ("/" in value or "\\" in value or value.startswith("~") or value in (".", "..")
            or bool(_PATH_KEYS.search(key)))


def confine_paths(value: Any, data_dir: Path, where: str = "job", key: str = "") -> Any:
    """``value`` with every path-like string made an absolute path inside ``data_dir`` (relative ones
    are taken from there); JobRefused for one outside it (absolute, ``..``, ``~``, a link leading out)
    or for a URL other than http(s)."""
    if isinstance(value, dict):
        return {name: confine_paths(item, data_dir, f"{where}.{name}", str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [confine_paths(item, data_dir, f"{where}[{index}]", key) for index, item in enumerate(value)]
    if not isinstance(value, str) or not _looks_like_path(value, key):
        return value
    if "://" in value:
        if value.split("://", 1)[0].lower() in ("http", "https"):
            return value
        raise JobRefused(f"{where}: {value!r}: only http(s) URLs may be given, not files or other schemes")
    if "\0" in value or value.startswith("~"):
        raise JobRefused(f"{where}: {value!r} is not a path inside the server's data directory")
    root = data_dir.resolve()
    resolved = (root / value).resolve()
    if resolved != root and root not in resolved.parents:
        raise JobRefused(f"{where}: path {value!r} lies outside the server's data directory; give a path relative "
                         "to it")
    return str(resolved)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def _check_rights(job: Job, team: Team) -> None:
    for kind, name in [("job", job.name)] + [("channel", c.name) for c in job.channels]:
        if not _NAME.fullmatch(name):  # they appear in URLs and file names
            raise JobRefused(f"{kind} name {name!r}: use letters, digits and _.:- (at most 128, starting with a "
                             "letter or digit)")
    for channel in job.channels:
        if not channel.access:
            raise JobRefused(f"channel '{channel.name}': give its access (datapoint tags it may see), a subset of "
                             f"your team's rights {sorted(team.rights)}")
        beyond = set(channel.access) - team.rights
        if beyond:
            raise JobRefused(f"channel '{channel.name}': access {sorted(beyond)} is beyond your team's rights "
                             f"{sorted(team.rights)}")
    for task in job.tasks:
        if isinstance(task, T3Task) and not task.select.channel:
            raise JobRefused("a T3 task on the server must select one of the job's channels (select.channel)")


def secret_prefix(team: str) -> str:
    """The environment variables a team's units may name (``*_env`` settings): ``AMPEL_PUSH_<TEAM>_...``
    with the team's name upper-cased and every other character than A-Z and 0-9 made ``_``."""
    return f"AMPEL_PUSH_{re.sub(r'[^A-Z0-9]', '_', team.upper())}_"


def _check_secrets(value: Any, prefix: str, where: str, key: str = "") -> None:
    """Every ``*_env`` setting (the environment variable a unit reads a secret from) names a
    variable of the team's own: one team's job must not make a unit use another team's secret."""
    if isinstance(value, dict):
        for name, item in value.items():
            _check_secrets(item, prefix, f"{where}.{name}", str(name))
    elif isinstance(value, list):
        for item in value:
            _check_secrets(item, prefix, where, key)
    elif key.endswith("_env") and isinstance(value, str) and not value.startswith(prefix):
        raise JobRefused(f"{where}: {value!r}: a unit of your team may read only environment variables named "
                         f"{prefix}... (ask the server's operator to set one)")


def prepare(document: dict[str, Any], team: Team, data_dir: Path, registry: Registry) -> tuple[Job, list[Trace]]:
    """Validate an uploaded document for ``team``: the job and the traces of its units.
    Units are configured (so their config is checked against their schema) but nothing runs."""
    document = {key: value for key, value in document.items() if key != "store"}
    try:
        job = load_job(document)
    except AmpelError as error:
        raise JobRefused(str(error)) from None
    _check_rights(job, team)
    channels = confine_paths([c.model_dump(mode="json") for c in job.channels], data_dir, "channels")
    tasks = [confine_paths(t.model_dump(mode="json"), data_dir, f"tasks[{i}]") if isinstance(t, T3Task)
             else t.model_dump(mode="json") for i, t in enumerate(job.tasks)]
    job = Job.model_validate({**job.model_dump(mode="json"), "channels": channels, "tasks": tasks})
    traces: list[Trace] = []
    try:
        for config in job.channels:
            traces.extend(Channel.build(registry, config).traces())
        for task in job.tasks:
            if isinstance(task, T3Task):
                for spec in task.react:
                    configured = configure(registry, spec)
                    if not isinstance(configured.unit, ReactUnit):
                        raise AmpelError(f"T3 react unit '{spec.unit}' is not a ReactUnit (T3) unit")
                    traces.append(configured.trace)
    except (AmpelError, ValueError) as error:
        raise JobRefused(str(error)) from None
    for trace in traces:  # the full config, defaults included
        _check_secrets(trace.config, secret_prefix(team.name), trace.unit)
    return job, list({trace.id: trace for trace in traces}.values())


class JobBook:
    """The uploaded jobs of the store at ``url``."""

    def __init__(self, url: str, data_dir: Path, teams: TeamBook) -> None:
        self.url, self.data_dir, self.teams = url, Path(data_dir), teams
        self.db = ServeDB(url)

    def close(self) -> None:
        self.db.close()

    def submit(self, team: Team, text: bytes, max_bytes: int, registry: Registry | None = None) -> tuple[JobVersion, bool]:
        """Validate and store an upload of ``team``; activate it (its previous version, if any, is
        superseded). Returns the version and whether it is new (the same content again is not)."""
        registry = registry or get_registry()
        job, traces = prepare(load_upload(text, max_bytes), team, self.data_dir, registry)
        document = job.model_dump(mode="json")
        job_digest = digest(document)
        names = [c.name for c in job.channels]
        now = time.time()
        with self.db.transaction() as cursor:
            rows = cursor.execute("SELECT version, digest, status FROM serve_jobs WHERE team = ? AND name = ? "
                                  "ORDER BY version DESC", (team.name, job.name))
            latest = next((row for row in rows if row[2] in ("active", "paused")), None)
            if latest is not None and latest[1] == job_digest:
                return self._version(cursor, team.name, job.name, int(latest[0])), False
            for channel in names:
                self._claim(cursor, channel, team.name, job.name)
            version = (int(rows[0][0]) if rows else 0) + 1
            cursor.execute("UPDATE serve_jobs SET status = 'superseded', changed = ? WHERE team = ? AND name = ? "
                           "AND status IN ('active', 'paused')", (now, team.name, job.name))
            cursor.execute("INSERT INTO serve_jobs (team, name, version, digest, document, channels, traces, status, "
                           "created, changed) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                           (team.name, job.name, version, job_digest, orjson.dumps(document).decode(),
                            orjson.dumps(names).decode(), orjson.dumps([t.id for t in traces]).decode(), now, now))
            self._changed(cursor)
            found = self._version(cursor, team.name, job.name, version)
        self._record_traces(traces)
        self.teams.forget_cached()
        return found, True

    @staticmethod
    def _claim(cursor: Any, channel: str, team: str, job: str) -> None:
        """Make ``channel`` one of ``job``'s. A channel name, once used, stays its team's (its
        stocks and results in the store carry the name): another team can never take it; another
        job of the same team can, once the job that has it is removed."""
        owner = cursor.execute("SELECT team, job FROM serve_channels WHERE channel = ?", (channel,))
        if not owner:
            cursor.execute("INSERT INTO serve_channels (channel, team, job) VALUES (?, ?, ?)", (channel, team, job))
            return
        owner_team, owner_job = owner[0]
        if owner_team != team:
            raise JobRefused(f"channel name '{channel}' is another team's; choose another name")
        if owner_job != job:
            running = cursor.execute("SELECT 1 FROM serve_jobs WHERE team = ? AND name = ? AND status IN "
                                     "('active', 'paused')", (team, owner_job))
            if running:
                raise JobRefused(f"channel '{channel}' belongs to your job '{owner_job}'; remove that job first or "
                                 "choose another name")
            cursor.execute("UPDATE serve_channels SET job = ? WHERE channel = ?", (job, channel))

    def _record_traces(self, traces: list[Trace]) -> None:
        """Put the units' traces into the store now, so provenance resolves them before the first run."""
        store = open_store(self.url)
        try:
            store.add_traces(traces)
        finally:
            store.close()

    @staticmethod
    def _changed(cursor: Any) -> None:
        cursor.execute("DELETE FROM serve_state WHERE key = 'jobs'")
        cursor.execute("INSERT INTO serve_state (key, value) VALUES ('jobs', ?)", (repr(time.time()),))

    def generation(self) -> str:
        """Changes whenever a job is added, paused, resumed or removed."""
        rows = self.db.execute("SELECT value FROM serve_state WHERE key = 'jobs'")
        return str(rows[0][0]) if rows else ""

    def _version(self, cursor: Any, team: str, name: str, version: int) -> JobVersion:
        row = cursor.execute("SELECT team, name, version, digest, status, channels, traces, created, document "
                             "FROM serve_jobs WHERE team = ? AND name = ? AND version = ?", (team, name, version))[0]
        return _job_version(row)

    def versions(self, team: str | None = None, name: str | None = None) -> list[JobVersion]:
        """Every version of the jobs of ``team`` (all teams: None), newest last."""
        query = "SELECT team, name, version, digest, status, channels, traces, created, document FROM serve_jobs"
        clauses, params = [], []
        if team is not None:
            clauses.append("team = ?")
            params.append(team)
        if name is not None:
            clauses.append("name = ?")
            params.append(name)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [_job_version(row) for row in self.db.execute(query + " ORDER BY team, name, version", params)]

    def current(self, team: str, name: str) -> JobVersion:
        """The active or paused version of a job; JobRefused (unknown) otherwise."""
        found = [v for v in self.versions(team, name) if v.status in ("active", "paused")]
        if not found:
            raise JobRefused(f"team {team!r} has no job {name!r} (active or paused); see GET /jobs")
        return found[-1]

    def active(self) -> list[JobVersion]:
        """The active version of every job, in upload order."""
        return sorted((v for v in self.versions() if v.status == "active"), key=lambda v: (v.created, v.team, v.name))

    def set_status(self, team: str, name: str, status: str) -> JobVersion:
        """Pause (``paused``), resume (``active``) or remove (``removed``) a team's job."""
        if status not in ("active", "paused", "removed"):
            raise JobRefused(f"unknown job status {status!r}")
        current = self.current(team, name)
        with self.db.transaction() as cursor:
            cursor.execute("UPDATE serve_jobs SET status = ?, changed = ? WHERE team = ? AND name = ? AND version = ?",
                           (status, time.time(), team, name, current.version))
            self._changed(cursor)
            found = self._version(cursor, team, name, current.version)
        self.teams.forget_cached()
        return found


def _job_version(row: tuple[Any, ...]) -> JobVersion:
    team, name, version, job_digest, status, channels, traces, created, document = row
    return JobVersion(team, name, int(version), job_digest, status, tuple(orjson.loads(channels)),
                      tuple(orjson.loads(traces)), float(created), orjson.loads(document))


# HTTP ---------------------------------------------------------------------------------------------

router = APIRouter()


def _book(request: Request) -> JobBook:
    book: JobBook = request.app.state.jobs
    return book


def _refused(error: AmpelError, status: int = 422) -> HTTPException:
    return HTTPException(status, str(error))


@router.post("", status_code=201, summary="Upload a job (YAML), validate it and activate it")
async def upload_job(request: Request, team: CurrentTeam) -> JSONResponse:
    limit: int = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
        raise HTTPException(413, f"the job file has {declared} bytes; at most {limit} are accepted")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the job file is larger than {limit} bytes")
    from starlette.concurrency import run_in_threadpool

    try:
        version, new = await run_in_threadpool(_book(request).submit, team, body, limit)
    except AmpelError as error:
        raise _refused(error) from None
    return JSONResponse({**version.as_dict(), "new": new}, status_code=201 if new else 200)


@router.get("", summary="The team's jobs, every version")
def list_jobs(request: Request, team: CurrentTeam) -> list[dict[str, Any]]:
    return [v.as_dict() for v in _book(request).versions(team.name)]


@router.get("/{name}", summary="One job: its current version with the job document")
def show_job(name: str, request: Request, team: CurrentTeam) -> dict[str, Any]:
    versions = _book(request).versions(team.name, name)
    if not versions:
        raise HTTPException(404, f"no job {name!r}")
    latest = versions[-1]
    return {**latest.as_dict(), "job": latest.job, "versions": [v.as_dict() for v in versions]}


def _status(name: str, request: Request, team: Team, status: str) -> dict[str, Any]:
    try:
        return _book(request).set_status(team.name, name, status).as_dict()
    except JobRefused as error:
        raise HTTPException(404, str(error)) from None


@router.post("/{name}/pause", summary="Pause a job: its channels stop taking alerts")
def pause_job(name: str, request: Request, team: CurrentTeam) -> dict[str, Any]:
    return _status(name, request, team, "paused")


@router.post("/{name}/resume", summary="Resume a paused job")
def resume_job(name: str, request: Request, team: CurrentTeam) -> dict[str, Any]:
    return _status(name, request, team, "active")


@router.delete("/{name}", summary="Remove a job (its results stay in the store)")
def remove_job(name: str, request: Request, team: CurrentTeam) -> dict[str, Any]:
    return _status(name, request, team, "removed")


@router.post("/{name}/replay", summary="Run the job's channels over the alerts the store already holds")
def replay_job(name: str, request: Request, team: CurrentTeam) -> dict[str, Any]:
    service = request.app.state.service
    book = _book(request)
    try:
        version = book.current(team.name, name)
    except JobRefused as error:
        raise HTTPException(404, str(error)) from None
    if service is None:
        raise HTTPException(409, "this server does not ingest (no --watch): there is nothing to replay")
    try:
        summary: dict[str, Any] = service.replay(version)
    except AmpelError as error:
        raise HTTPException(409, str(error)) from None
    return summary
