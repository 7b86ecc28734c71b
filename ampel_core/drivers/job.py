"""``ampel job``: run a job's tasks in order, recorded as one run, in one process or in several.

- One process (the default): each task runs here, in order.
- ``workers`` processes (``executor="local"``) or Dask tasks (``executor="dask"``):
  T0 in ``workers`` partitions. Every partition reads the whole alert source, but filters and
  ingests only the alerts of its own stocks (the stock id hashed onto the partitions; see
  `ampel_core.runtime.StockPartition`). So all alerts of one stock are ingested by one partition, in
  source order, and every state, ticket and result is the one a one-process run makes (only row
  ids and times differ). Partitioning by record or by file would not: two alerts of one stock in
  two processes can be ingested in either order, and the intermediate states would differ. The
  price is that each partition reads the whole source, and decodes the records whose stocks its
  format cannot tell without decoding them. The source must yield the same records each time it
  is read (files, directories, archives; not Kafka).
  T2 in ``workers`` processes claiming tickets from the store (leases); T3 in this process.
- A T0 task whose source is an archive (``archive``, `ampel_core.archive`) is partitioned by the
  archive's own partitions instead: every alert of a stock is in one partition file, so each task
  reads only its own files and the archive is read once in all (``partition_bytes`` in the
  summary). On Dask, one task per archive partition (the scheduler places them on the workers as
  they free up); in local processes, ``workers`` processes each taking every ``workers``-th
  partition.

Stores: PostgreSQL serves any number of processes and hosts. A SQLite file serves a few processes
on one machine (their writes take turns on the file's lock): up to `SQLITE_MAX_WORKERS`, not an
in-memory database, and not Dask workers on other hosts; `check_store` says which.

Every piece of work runs the shared runtime (`ampel_core.runtime`); this module only decides where.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ampel_core.drivers.executors import DaskExecutor, Executor, InlineExecutor, LocalExecutor
from ampel_core.errors import AmpelError
from ampel_core.jobs import ComponentSpec, Job, T0Task, T2Task, T3Task
from ampel_core.registry import Registry, get_registry
from ampel_core.runtime import (
    Channel, Observer, Progress, Report, RunSummary, recorded_run, run_t0, run_t2, run_t3, stop_on_signals,
)
from ampel_core.store import open_store

__all__ = ["EXECUTORS", "SQLITE_MAX_WORKERS", "check_store", "run_job", "t0_work", "t2_work"]

SQLITE_MAX_WORKERS = 8
EXECUTORS = ("local", "dask")


def check_store(url: str, workers: int, executor: str = "local", scheduler: str | None = None) -> str | None:
    """Whether the store at ``url`` can serve ``workers`` processes: AmpelError saying why not and
    what to use instead, or a note for the user (None: nothing to say)."""
    scheme = url.partition(":")[0].partition("+")[0]
    if scheme != "sqlite":
        return None
    advice = "use a PostgreSQL store (pip install ampel-plugin-postgres; --store postgresql://...)"
    if url.removeprefix("sqlite:///") in (":memory:", ""):
        raise AmpelError(f"an in-memory SQLite store cannot be shared by {workers} processes: {advice}")
    if executor == "dask" and scheduler:
        raise AmpelError(f"Dask workers on other hosts cannot share the SQLite file {url}: {advice}")
    if workers > SQLITE_MAX_WORKERS:
        raise AmpelError(f"SQLite cannot serve {workers} worker processes (its writers take turns on one lock; "
                         f"at most {SQLITE_MAX_WORKERS}): {advice}, or use --workers {SQLITE_MAX_WORKERS}")
    return (f"SQLite store: {workers} processes on this machine share {url}; their writes take turns on the "
            f"file's lock (PostgreSQL scales further and across hosts)")


# work functions (see `ampel_core.drivers.executors`) ---------------------------------------------


def t0_work(registry: Registry | None, job: Job, task_index: int, run: int, partition: tuple[int, int],
            channels: list[Channel] | None, archive_partitions: list[int] | None, report: Report) -> dict[str, Any]:
    """Partition ``(index, count)`` of the job's T0 task number ``task_index``, or, for an archive
    source, its ``archive_partitions``; its counters. ``channels`` are built here when not given
    (in another process)."""
    registry = registry or get_registry()
    task = job.tasks[task_index]
    assert isinstance(task, T0Task)
    if archive_partitions is not None:
        source = ComponentSpec(name=task.source.name, config={**task.source.config, "partitions": archive_partitions})
        task = task.model_copy(update={"source": source})
    if channels is None:
        built = {config.name: Channel.build(registry, config) for config in job.channels}
        channels = [built[name] for name in task.channels] if task.channels else list(built.values())
    summary = RunSummary(run=run)
    store = open_store(job.store)
    try:
        run_t0(store, registry, task, channels, run, summary, report, partition)
    finally:
        store.close()
    return summary.as_dict()


def t2_work(registry: Registry | None, store_url: str, task: T2Task, run: int, poll: float | None, workers: int,
            report: Report) -> dict[str, Any]:
    """Run T2 tickets until none is left (``poll`` None) or, polling every ``poll`` seconds, until
    SIGTERM / SIGINT, which finish the current ticket and hand back the others (status 'stopped').
    ``workers``: how many run at once (sizes the claims, `ampel_core.runtime.t2.claim_size`)."""
    summary = RunSummary(run=run)
    store = open_store(store_url)
    try:
        with stop_on_signals() as should_stop:
            run_t2(store, registry or get_registry(), task, run, summary, report, should_stop, poll, workers)
            summary.status = "stopped" if should_stop() else "ok"
    finally:
        store.close()
    return summary.as_dict()


# the driver ---------------------------------------------------------------------------------------


def run_job(job: Job, progress: Progress | None = None, registry: Registry | None = None, workers: int | None = None,
            executor: str = "local", scheduler: str | None = None) -> RunSummary:
    """Run every task of ``job`` against its store, in order, recorded as one run; return its summary.

    One process unless ``workers`` > 1 or ``executor`` is "dask" (``workers`` then defaults to the
    CPU count, or to the Dask cluster's worker threads). Units are configured (and their config
    validated) before anything is written. AmpelError before anything runs when the store cannot
    serve that many processes (`check_store`) or the T0 source cannot be read by several.
    A stopped T2 (SIGINT / SIGTERM) ends the run as interrupted (KeyboardInterrupt).
    """
    if workers is not None and workers < 1:
        raise AmpelError(f"--workers must be at least 1, got {workers}")
    if executor not in EXECUTORS:
        raise AmpelError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    registry = registry or get_registry()
    parallel = executor == "dask" or (workers or 1) > 1
    if parallel:
        if not (executor == "dask" and scheduler and workers is None):
            workers = workers or os.cpu_count() or 1
        check_store(job.store, workers or 1, executor, scheduler)
        for task in job.tasks:
            if isinstance(task, T0Task):
                _check_replayable(registry, task)
                if task.source.name == "archive" and task.limit is not None:  # per task it would take other alerts
                    raise AmpelError(f"a T0 task over an archive with a limit ({task.limit}) runs in one process: "
                                     "leave out --workers / --executor, or choose partitions in the source's config")
    channels = {config.name: Channel.build(registry, config) for config in job.channels}
    traces = [trace for channel in channels.values() for trace in channel.traces()]
    with recorded_run(job.store, job.model_dump(mode="json"), registry, traces) as summary:
        observer = Observer(registry, summary, progress)  # the summary is the sum of the batches reported
        pool: Executor = InlineExecutor(registry)
        try:
            if parallel:
                pool = DaskExecutor(scheduler, workers) if executor == "dask" else LocalExecutor()
            count = (workers or pool.slots()) if parallel else 1  # partitions of T0, processes of T2
            for number, task in enumerate(job.tasks):
                if isinstance(task, T0Task):
                    _t0(pool, job, number, task, channels, summary, observer, count)
                elif isinstance(task, T2Task):
                    parts = pool.run(t2_work, [(job.store, task, summary.run, None, count)] * count, observer)
                    if any(part["status"] == "stopped" for part in parts):
                        raise KeyboardInterrupt
                else:
                    _t3(registry, job, task, channels, summary, observer)
        finally:
            pool.close()
    return summary


def _t0(pool: Executor, job: Job, number: int, task: T0Task, channels: dict[str, Channel], summary: RunSummary,
        observer: Observer, count: int) -> None:
    selected = [channels[name] for name in task.channels] if task.channels else list(channels.values())
    given = selected if isinstance(pool, InlineExecutor) else None  # other processes build their own
    started = time.perf_counter()
    shares = _archive_shares(pool, task, count)
    arguments: list[tuple[Any, ...]]
    if shares is not None:
        arguments = [(job, number, summary.run, (0, 1), given, share) for share in shares]
    else:
        arguments = [(job, number, summary.run, (index, count), given, None) for index in range(count)]
    parts = pool.run(t0_work, arguments, observer)
    summary.t0_seconds += parts[0]["t0_seconds"] if len(parts) == 1 else time.perf_counter() - started
    for part in parts:
        for name, size in part["partition_bytes"].items():
            summary.partition_bytes[name] = summary.partition_bytes.get(name, 0) + size


def _archive_shares(pool: Executor, task: T0Task, count: int) -> list[list[int]] | None:
    """For an archive source, the archive partitions of each T0 work function: one each on Dask, every
    ``count``-th in ``count`` local processes, all of the task's in one process; None for other sources."""
    from ampel_core.archive import ArchiveSource

    if task.source.name != "archive":
        return None
    source = ArchiveSource(**task.source.config)
    wanted = source.partitions if source.partitions is not None else list(range(source.info.partitions))
    if isinstance(pool, InlineExecutor):
        return [wanted]
    if isinstance(pool, DaskExecutor):
        return [[partition] for partition in wanted]
    return [share for index in range(count) if (share := wanted[index::count])]


def _t3(registry: Registry, job: Job, task: T3Task, channels: dict[str, Channel], summary: RunSummary,
        observer: Observer) -> None:
    store = open_store(job.store)
    try:
        run_t3(store, registry, task, channels, summary.run, observer)
    finally:
        store.close()


def _check_replayable(registry: Registry, task: T0Task) -> None:
    component = registry.sources.get(task.source.name)
    if component is None:
        return  # build_component names the problem
    replayable = component.import_path != "ampel_core.kafka:KafkaSource" and getattr(component.load(), "replayable", True)
    if not replayable:
        raise AmpelError(f"alert source '{task.source.name}' cannot be read by several workers (each partition reads "
                         "the whole source): run it with one worker, or start several `ampel job` processes")
