"""``ampel job`` and ``ampel worker``: running work, with progress bars and a summary."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ampel_core.tables import Format, format_option, print_table


def print_summary(summary: dict[str, Any], title: str = "run summary", output_format: Format = "table") -> None:
    """Print a run summary to standard error (standard output belongs to T3 reports): as a table
    of (what, count) rows, as CSV of those rows, or as the summary's JSON (``--summary-json``)."""
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2), err=True)
        return
    rows: list[list[Any]] = [
        ["source records read", summary["records"]], ["alerts decoded", summary["alerts"]],
        ["quarantined (undecodable records)", summary["quarantined"]],
        ["  of which unreadable (source cut short)", summary["unreadable"]],
        ["alerts ingested (taken by >= 1 channel)", summary["ingested"]],
        ["alerts taken by no channel", summary["unaccepted"]]]
    channels = sorted(set(summary["accepted"]) | set(summary["rejected"]) | set(summary["failed"]))
    for channel in channels:
        rows.append([f"  {channel}: accepted / rejected / failed",
                     f"{summary['accepted'].get(channel, 0)} / {summary['rejected'].get(channel, 0)} / "
                     f"{summary['failed'].get(channel, 0)}"])
    rows += [["T2 tickets done / failed / retried",
              f"{summary['tickets_done']} / {summary['tickets_failed']} / {summary['tickets_retried']}"],
             ["T3 reports (failed)", f"{summary['reports']} ({summary['reports_failed']})"],
             ["T0 time (s) / alerts per second", f"{summary['t0_seconds']:.2f} / {summary['alerts_per_second'] or '-'}"],
             ["wall time (s)", f"{summary['wall_seconds']:.2f}"]]
    if summary.get("bytes_read"):  # a job over an archive: each partition file read once in all
        rows.insert(-2, ["archive bytes read (partitions)", f"{summary['bytes_read']} ({len(summary['partition_bytes'])})"])
    if output_format == "csv":
        rows = [[what.strip(), count] for what, count in rows]
    print_table(f"{title} (run {summary['run']}, {summary['status']})", ["what", "count"], rows, output_format,
                file=sys.stderr, key_columns=["what", "count"], show_header=False)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--store", help="Store URL, overriding the job's (e.g. sqlite:///other.db).")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help="Override a job parameter.")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write the summary as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars (also when not on a terminal).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run T0 and T2 in N processes (default 1; with --executor dask: the cluster's worker threads).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Where the worker processes run: this machine, or a Dask cluster.")
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: a LocalCluster on this machine).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="AMPEL_CONFIG",
              help="A built config (`ampel config build`) to hold the installation to: refuse to run when it is stale. "
                   "Default: $AMPEL_CONFIG; none: no check.")
@format_option
def job(job_file: Path, store: str | None, overrides: tuple[str, ...], summary_json: Path | None, no_progress: bool,
        workers: int | None, executor: str, scheduler: str | None, config_path: Path | None,
        output_format: Format) -> None:
    """Run JOB_FILE: its T0, T2 and T3 tasks in order, recorded as one run.

    With --workers N or --executor dask, T0 and T2 run in parallel into one store (see
    docs/scaling.md); the results are the same as a one-process run's.

    The summary goes to standard error in --format (table, csv or json); T3 reports print to
    standard output in their own ``format``.

    Exit 0 when the job ran (bad alerts and failing units are counted, not fatal), 2 when it could
    not run (invalid job, unknown unit, bad config, unreachable store).
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ampel_core.drivers import check_store, run_job
    from ampel_core.jobs import load_job, parse_overrides

    parsed = load_job(job_file, parse_overrides(list(overrides)), store)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the batch in flight rolls back, the run is recorded
    if config_path:
        from ampel_core.registry import require_current_config

        require_current_config(config_path)
    parallel = executor == "dask" or (workers or 1) > 1
    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    if parallel:
        note = check_store(parsed.store, workers or os.cpu_count() or 1, executor, scheduler)
        if note:
            click.echo(note, err=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed}"),
                  TimeElapsedColumn(), disable=no_progress, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def progress(label: str, done: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=None)
            bars.advance(tasks[label], done)

        summary = run_job(parsed, progress, workers=workers, executor=executor, scheduler=scheduler).as_dict()
    print_summary(summary, parsed.name, output_format)
    if summary_json:
        summary_json.write_text(json.dumps(summary, indent=2))
    if summary["quarantined"] and summary["status"] != "incomplete":
        click.echo(f"note: {summary['quarantined']} record(s) quarantined; why: `ampel quarantine list --store "
                   f"{parsed.store} --run {summary['run']}`", err=True)
    if summary["status"] == "incomplete":
        click.echo(f"warning: run {summary['run']} is incomplete: {summary['unreadable']} source record(s) could not be "
                   f"read whole (`ampel quarantine list --store {parsed.store} --run {summary['run']}` says why)", err=True)
        sys.exit(3)


@click.command()
@click.argument("tier", type=click.Choice(["t2"]))
@click.option("--store", "store_url", required=True, help="Store URL (postgresql://... for many hosts).")
@click.option("--channel", "channels", multiple=True, help="Only tickets of these channels.")
@click.option("--batch-size", default=10, show_default=True, help="Tickets claimed at a time.")
@click.option("--lease", default=300.0, show_default=True, help="Seconds a claimed ticket is leased.")
@click.option("--max-attempts", default=3, show_default=True, help="Tries per ticket before it fails for good.")
@click.option("--idle-exit", is_flag=True, help="Exit when no ticket is left instead of waiting for more.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between polls when idle.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this host.")
def worker(tier: str, store_url: str, channels: tuple[str, ...], batch_size: int, lease: float, max_attempts: int,
           idle_exit: bool, poll: float, concurrency: int) -> None:
    """Run T2 tickets from a store until stopped. On SIGTERM or Ctrl-C the current ticket is
    finished and the worker exits cleanly; a killed worker's tickets return when their lease ends.
    Any number of workers on any number of hosts may share one PostgreSQL store."""
    from ampel_core.jobs import T2Task
    from ampel_core.drivers import check_store, serve_t2

    task = T2Task(tier=2, channels=list(channels) or None, batch_size=batch_size, lease=lease, max_attempts=max_attempts)
    if concurrency > 1 and (note := check_store(store_url, concurrency)):
        click.echo(note, err=True)
    summary = serve_t2(store_url, task, concurrency, idle_exit, poll)
    click.echo(f"worker run {summary.run}: {summary.tickets_done} done, {summary.tickets_failed} failed, "
               f"{summary.tickets_retried} retried ({summary.status})", err=True)
