"""``ampel serve`` (the live instance, and its teams) and ``ampel submit`` (upload a job to one)."""

from __future__ import annotations

import json
import signal

import urllib.error
import urllib.request
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from ampel_core.errors import AmpelError

__all__ = ["request_json", "serve", "submit"]

_STORE = click.option("--store", default="sqlite:///ampel.db", show_default=True, envvar="AMPEL_STORE",
                      help="Store URL (sqlite:///file.db or postgresql://...); $AMPEL_STORE.")
_TO = click.option("--to", "url", required=True, envvar="AMPEL_SERVER", help="The server's URL; $AMPEL_SERVER.")
_TOKEN = click.option("--token", required=True, envvar="AMPEL_TOKEN", help="Your team's token; $AMPEL_TOKEN.")


@click.group(invoke_without_command=True)
@_STORE
@click.option("--watch", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Ingest alert files and tar archives dropped into this directory.")
@click.option("--source", default=None, help="Ingest from Kafka: kafka://host:port/topic[,topic][?group=ID].")
@click.option("--format", "alert_format", default="ztf", show_default=True, help="Alert format of the stream.")
@click.option("--pattern", default="*", show_default=True, help="File names to ingest from --watch (fnmatch).")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(min=1),
              help="Alerts per ingest transaction, and files per T0 pass from --watch.")
@click.option("--settle", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a dropped file must be unchanged before it is ingested.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between looks for new files, tickets and job changes.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ampel-data"),
              show_default=True, help="The only directory paths in uploaded jobs may point into.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--t2-workers", default=1, show_default=True, type=click.IntRange(0, 64), help="T2 worker processes.")
@click.option("--threads", is_flag=True, help="Ingest and run T2 in threads of this process, not in processes of "
                                              "their own (one core for everything).")
@click.option("--t3-interval", default=300.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between runs of the jobs' T3 tasks.")
@click.option("--max-upload", "max_upload_bytes", default=256 * 1024, show_default=True, type=click.IntRange(min=1),
              help="Largest job upload in bytes.")
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Run the live instance: ingest, run the teams' jobs, serve the API (see docs/serve.md)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from ampel_serve.app import ServeSettings, create_app

    settings = ServeSettings(**options)
    _check_port(settings.host, settings.port)
    app = create_app(settings, service=True)
    click.echo(f"ampel serve: store {settings.store}, "
               f"{'watching ' + str(settings.watch) if settings.watch else settings.source or 'not ingesting'}, "
               f"http://{settings.host}:{settings.port} (SIGTERM or Ctrl-C stops after in-flight work)", err=True)
    # uvicorn turns SIGTERM / SIGINT into a graceful shutdown, whose last step stops the service, and
    # then raises the signal again for the handler it found: for SIGTERM, let that be "exit 0"
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_port(host: str, port: int) -> None:
    """AmpelError when ``host:port`` cannot be listened on (before anything starts)."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise AmpelError(f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port or "
                         "stop what uses it") from None


@serve.command("ingest")
@_STORE
@click.option("--watch", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Ingest alert files and tar archives dropped into this directory.")
@click.option("--source", default=None, help="Ingest from Kafka: kafka://host:port/topic[,topic][?group=ID].")
@click.option("--format", "alert_format", default="ztf", show_default=True, help="Alert format of the stream.")
@click.option("--pattern", default="*", show_default=True, help="File names to ingest from --watch (fnmatch).")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--settle", default=1.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ampel-data"),
              show_default=True, help="The server's data directory (its lock file is there).")
@click.option("--parent", type=int, default=None, hidden=True, help="Stop when this process (ampel serve) is gone.")
def ingest(parent: int | None, **options: Any) -> None:
    """Only the ingestion of `ampel serve`, until SIGTERM or Ctrl-C (`ampel serve` starts one of
    these; run it alone on another host against PostgreSQL)."""
    from ampel_serve.app import ServeSettings
    from ampel_serve.jobs import JobBook
    from ampel_serve.service import Service
    from ampel_serve.teams import TeamBook

    settings = ServeSettings(**options)
    if settings.watch is None and settings.source is None:
        raise AmpelError("ampel serve ingest needs --watch DIR or --source kafka://...")
    teams = TeamBook(settings.store)
    jobs = JobBook(settings.store, settings.data_dir, teams)
    try:
        Service(settings, jobs).run_ingest(parent)
    finally:
        jobs.close()
        teams.close()


@serve.command("t2")
@_STORE
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between looks for new tickets.")
@click.option("--parent", type=int, default=None, hidden=True, help="Stop when this process (ampel serve) is gone.")
def t2(store: str, poll: float, parent: int | None) -> None:
    """One T2 worker of `ampel serve`, until SIGTERM or Ctrl-C (like `ampel worker t2`; `ampel
    serve` starts --t2-workers of these)."""
    from ampel_serve.app import ServeSettings
    from ampel_serve.jobs import JobBook
    from ampel_serve.service import Service
    from ampel_serve.teams import TeamBook

    settings = ServeSettings(store=store, poll=poll)
    teams = TeamBook(settings.store)
    jobs = JobBook(settings.store, settings.data_dir, teams)
    try:
        Service(settings, jobs).run_t2_worker(parent)
    finally:
        jobs.close()
        teams.close()


@serve.group()
def team() -> None:
    """Add, list and remove teams and their tokens (in the store)."""


def _rights(value: str) -> list[str]:
    return [right.strip() for right in value.split(",") if right.strip()]


@team.command("add")
@click.argument("name")
@click.option("--rights", required=True, help="Datapoint tags the team may see, comma-separated (ZTF_PUB,ZTF_PRIV).")
@click.option("--expires-days", type=float, default=None, help="The token's lifetime in days (default: none).")
@click.option("--rate-limit", type=click.IntRange(min=1), default=600, show_default=True,
              help="Requests per minute for the token.")
@_STORE
def team_add(name: str, rights: str, expires_days: float | None, rate_limit: int, store: str) -> None:
    """Add team NAME; print its token (shown this once, kept only hashed)."""
    from ampel_serve.teams import TeamBook

    with closing(TeamBook(store)) as book:
        token = book.add_team(name, _rights(rights), expires_days, rate_limit)
    click.echo(token)
    click.echo(f"team {name} added; its token is printed above, once: keep it (it is stored only hashed)", err=True)


@team.command("token")
@click.argument("name")
@click.option("--expires-days", type=float, default=None, help="The token's lifetime in days (default: none).")
@click.option("--rate-limit", type=click.IntRange(min=1), default=600, show_default=True,
              help="Requests per minute for the token.")
@_STORE
def team_token(name: str, expires_days: float | None, rate_limit: int, store: str) -> None:
    """Make another token for team NAME and print it (once)."""
    from ampel_serve.teams import TeamBook

    with closing(TeamBook(store)) as book:
        click.echo(book.new_token(name, expires_days, rate_limit))


@team.command("revoke")
@click.argument("token_id")
@_STORE
def team_revoke(token_id: str, store: str) -> None:
    """Revoke the token with id TOKEN_ID (the part before its dot; see `team list`)."""
    from ampel_serve.teams import TeamBook

    with closing(TeamBook(store)) as book:
        book.revoke(token_id)
    click.echo(f"token {token_id} revoked", err=True)


@team.command("list")
@_STORE
def team_list(store: str) -> None:
    """List teams: rights, channels and tokens (ids, expiry, rate limit; never the tokens)."""
    from ampel_serve.teams import TeamBook

    with closing(TeamBook(store)) as book:
        teams = book.teams()
    if not teams:
        click.echo("no teams; add one with `ampel serve team add NAME --rights ...`", err=True)
    for info in teams:
        click.echo(f"{info.name}  rights: {','.join(info.rights) or '-'}  channels: {','.join(info.channels) or '-'}")
        for token_id, expires, limit, revoked in info.tokens:
            until = "never" if expires is None else datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
            click.echo(f"  token {token_id}  expires {until}  {limit}/min{'  REVOKED' if revoked else ''}")


@team.command("remove")
@click.argument("name")
@_STORE
def team_remove(name: str, store: str) -> None:
    """Remove team NAME and its tokens (refused while it has jobs)."""
    from ampel_serve.teams import TeamBook

    with closing(TeamBook(store)) as book:
        book.remove_team(name)
    click.echo(f"team {name} removed", err=True)


# the client side ----------------------------------------------------------------------------------


def request_json(method: str, url: str, token: str, body: bytes | None = None, timeout: float = 120.0) -> Any:
    """One request to a server; its JSON answer, or AmpelError with the server's reason."""
    request = urllib.request.Request(url, data=body, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/yaml", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("detail", error.reason)
        except (ValueError, AttributeError):
            detail = error.reason
        raise AmpelError(f"{url}: {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise AmpelError(f"cannot reach {url}: {reason}") from None


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@_TO
@_TOKEN
def submit(job_file: Path, url: str, token: str) -> None:
    """Upload JOB_FILE to the server at --to: validated there, stored as a new version, activated."""
    if not job_file.is_file():
        raise AmpelError(f"job file not found: {job_file}")
    answer = request_json("POST", f"{url.rstrip('/')}/jobs", token, job_file.read_bytes())
    state = "uploaded" if answer.get("new") else "unchanged (same content as the current version)"
    click.echo(f"job {answer['name']} version {answer['version']} {state}: {answer['status']}, channels "
               f"{', '.join(answer['channels'])}, digest {answer['digest']}")


@serve.group()
def job() -> None:
    """List, pause, resume, remove or replay your team's jobs on a server."""


@job.command("list")
@_TO
@_TOKEN
def job_list(url: str, token: str) -> None:
    """List your team's jobs and their versions."""
    for version in request_json("GET", f"{url.rstrip('/')}/jobs", token):
        click.echo(f"{version['name']}  v{version['version']}  {version['status']}  "
                   f"{','.join(version['channels'])}  {version['digest'][:16]}")


def _job_action(action: str, method: str = "POST") -> click.Command:
    @click.command(action)
    @click.argument("name")
    @_TO
    @_TOKEN
    def command(name: str, url: str, token: str) -> None:
        path = f"{url.rstrip('/')}/jobs/{name}" + ("" if method == "DELETE" else f"/{action}")
        # a replay answers when it is done: over a large store that takes a while
        click.echo(json.dumps(request_json(method, path, token, timeout=3600 if action == "replay" else 120), indent=1))

    command.help = f"{action.capitalize()} job NAME of your team."
    return command


for _action in ("pause", "resume", "replay"):
    job.add_command(_job_action(_action))
job.add_command(_job_action("remove", "DELETE"))

