"""Running a job in several processes, or on a Dask cluster, against one store.

`run_job_parallel` runs a job's tasks in order like `ampel_core.engine.run_job`, recorded as one
run with one merged `RunSummary`:

- T0 in ``workers`` partitions. Every partition reads the whole alert source, but filters and
  ingests only the alerts of its own stocks (the stock id hashed onto the partitions). So all
  alerts of one stock are ingested by one partition, in source order, and every state, ticket and
  result is the one a single-process run makes: **a partitioned run gives the same state ids and
  result bodies as a one-process run** (only row ids and times differ). Partitioning by record or
  by file would not: two alerts of one stock in two processes can be ingested in either order,
  and the intermediate states would differ. The price is that each partition reads the whole
  source, and decodes the records whose stocks its format cannot tell without decoding them (see
  `StockPartition`; the ZTF format reads the objectIds of its records undecoded).
  The source must yield the same records each time it is read (files, directories, archives;
  not Kafka).
- T2 in ``workers`` processes claiming tickets from the store (leases; see `T2Runtime`).
- T3 in this process.

Executors: ``local`` forks processes on this machine (they inherit this process's plugin manager;
where fork is unavailable they are spawned and see only installed plugins); ``dask`` submits the
partitions to a Dask cluster (a ``LocalCluster`` with ``workers`` single-threaded worker processes
when no scheduler address is given). Dask workers run installed plugins only.

Stores: PostgreSQL serves any number of processes and hosts. A SQLite file serves a few processes
on one machine (their writes take turns on the file's lock): up to `SQLITE_MAX_WORKERS`, not an
in-memory database, and not Dask workers on other hosts; `check_store` says which.

`serve_t2` is the loop of ``ampel worker t2`` (``--concurrency N`` forks N processes).
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ampel_core.alerts import SourceRecord
from ampel_core.engine import (
    Channel, Progress, RunSummary, T0Runtime, T2Runtime, build_component, environment, recorded_run, run_t3,
)
from ampel_core.errors import AmpelError
from ampel_core.jobs import Job, T0Task, T2Task
from ampel_core.models import Alert
from ampel_core.provenance import digest
from ampel_core.registry import Registry, get_registry
from ampel_core.store import open_store

SQLITE_MAX_WORKERS = 8
EXECUTORS = ("local", "dask")


# partitions -------------------------------------------------------------------------------------


def partition_of(stock: int, count: int) -> int:
    """The partition (0 .. count-1) that ingests ``stock``; uniform even for structured ids."""
    hashed = hashlib.blake2b(stock.to_bytes(8, "big", signed=True), digest_size=8).digest()
    return int.from_bytes(hashed, "big") % count


class StockPartition:
    """An alert format that keeps only the alerts of partition ``index`` of ``count``.

    Every record that cannot be decoded is quarantined (and counted) by exactly one partition.
    A format may offer ``stocks(payload, origin) -> set[int]``: the stock ids in a record, found
    more cheaply than by decoding it; partitions then skip, undecoded, the records of other
    partitions' stocks.
    """

    def __init__(self, alert_format: Any, index: int, count: int) -> None:
        self.alert_format, self.index, self.count = alert_format, index, count
        self._peek: Callable[[bytes, str], set[int]] | None = getattr(alert_format, "stocks", None)

    def decode(self, payload: bytes, origin: str) -> list[Alert]:
        stocks: set[int] = set()
        if self._peek is not None and self.count > 1:
            try:
                stocks = set(self._peek(payload, origin))
            except Exception:
                stocks = set()  # decoding says what is wrong
            if stocks and all(partition_of(stock, self.count) != self.index for stock in stocks):
                return []
        try:
            alerts: list[Alert] = self.alert_format.decode(payload, origin)
        except Exception:
            if self.index == (partition_of(min(stocks), self.count) if stocks else 0):
                raise
            return []
        return [alert for alert in alerts if partition_of(alert.stock, self.count) == self.index]


def run_t0_partition(store: Any, registry: Registry, task: T0Task, channels: Sequence[Channel], run: int,
                     summary: RunSummary, index: int, count: int, progress: Progress | None = None) -> None:
    """`ampel_core.engine.run_t0` for partition ``index`` of ``count``; progress counts alerts."""
    source = build_component(registry, "sources", task.source.name, task.source.config)
    alert_format = StockPartition(build_component(registry, "formats", task.format.name, task.format.config), index, count)
    runtime = T0Runtime(store, channels, run, summary, task.keep_blobs)
    started = time.perf_counter()
    batch: list[SourceRecord] = []
    for read, record in enumerate(source, 1):
        batch.append(record)
        if len(batch) >= task.batch_size:
            _flush(runtime, batch, alert_format, source, summary, progress)
        if task.limit is not None and read >= task.limit:
            break
    _flush(runtime, batch, alert_format, source, summary, progress)
    summary.t0_seconds += time.perf_counter() - started


def _flush(runtime: T0Runtime, batch: list[SourceRecord], alert_format: StockPartition, source: Any,
           summary: RunSummary, progress: Progress | None) -> None:
    if not batch:
        return
    alerts_before = summary.alerts
    runtime.process(batch, alert_format.decode)
    source.commit()
    if progress:
        progress("T0 alerts", summary.alerts - alerts_before)
    batch.clear()


# stores -----------------------------------------------------------------------------------------


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


# executors --------------------------------------------------------------------------------------

WorkFunction = Callable[..., dict[str, Any]]


class LocalExecutor:
    """Runs work functions in processes on this machine (fork where available)."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self.context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.processes: list[Any] = []  # of the current `run`

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], progress: Progress | None) -> list[dict[str, Any]]:
        """``function(*args, report)`` for each args, each in its own process; ``report(label, n)``
        forwards progress. Returns the functions' results in order; AmpelError if one failed."""
        messages = self.context.Queue()
        self.processes = [self.context.Process(target=_local_call, args=(function, args, number, messages), daemon=True)
                          for number, args in enumerate(arguments)]
        processes = self.processes
        for process in processes:
            process.start()
        results: dict[int, dict[str, Any]] = {}
        failures: dict[int, str] = {}
        try:
            while len(results) + len(failures) < len(processes):
                try:
                    kind, number, value = messages.get(timeout=0.5)
                except queue_module.Empty:
                    for number, process in enumerate(processes):
                        if not process.is_alive() and number not in results and number not in failures:
                            process.join(1.0)  # its last message may still be in the pipe
                            if messages.empty():
                                failures[number] = f"process exited with code {process.exitcode} before reporting"
                                self._stop_others(number)
                    continue
                if kind == "progress" and progress:
                    progress(*value)
                elif kind == "done":
                    results[number] = value
                elif kind == "error":
                    failures[number] = value
                    self._stop_others(number)  # fail fast; T2 workers finish their current ticket
        except BaseException:
            for process in processes:
                if process.is_alive():
                    process.terminate()
            raise
        finally:
            for process in processes:
                process.join(10.0)
        if failures:
            number, error = next(iter(failures.items()))  # the first to fail; the others were stopped
            raise AmpelError(f"worker {number + 1} of {len(processes)} failed: {error}")
        return [results[number] for number in range(len(processes))]


    def _stop_others(self, failed: int) -> None:
        for number, process in enumerate(self.processes):
            if number != failed and process.is_alive():
                process.terminate()


def _local_call(function: WorkFunction, args: tuple[Any, ...], number: int, messages: Any) -> None:
    try:
        result = function(*args, lambda label, done: messages.put(("progress", number, (label, done))))
        messages.put(("done", number, result))
    except BaseException as error:
        messages.put(("error", number, f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class DaskExecutor:
    """Runs work functions as Dask tasks; progress travels through a Dask queue."""

    def __init__(self, scheduler: str | None, workers: int | None) -> None:
        try:
            self.distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise AmpelError("--executor dask needs Dask: pip install 'dask[distributed]'") from None
        self.cluster = None if scheduler else self.distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                           processes=True, dashboard_address=None)
        self.client = self.distributed.Client(scheduler or self.cluster)

    def slots(self) -> int:
        """Worker threads in the cluster: the default number of partitions."""
        return max(1, int(sum(self.client.nthreads().values())))

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], progress: Progress | None) -> list[dict[str, Any]]:
        messages = self.distributed.Queue(f"ampel-progress-{os.getpid()}-{time.time_ns()}", client=self.client)
        futures = [self.client.submit(_dask_call, function, args, messages.name, pure=False) for args in arguments]
        try:
            while not all(future.done() for future in futures):
                self._forward(messages, progress)
                time.sleep(0.2)
        except BaseException:
            self.client.cancel(futures)
            raise
        self._forward(messages, progress)
        failed = [(number, f) for number, f in enumerate(futures) if f.status != "finished"]
        if failed:
            number, future = failed[0]
            error = future.exception()
            raise AmpelError(f"Dask task {number + 1} of {len(futures)} failed: {type(error).__name__}: {error}")
        return [f.result() for f in futures]

    @staticmethod
    def _forward(messages: Any, progress: Progress | None) -> None:
        for label, count in messages.get(batch=True):  # everything queued so far
            if progress:
                progress(label, count)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _dask_call(function: WorkFunction, args: tuple[Any, ...], queue_name: str) -> dict[str, Any]:
    messages = importlib.import_module("distributed").Queue(queue_name)
    return function(*args, lambda label, done: messages.put((label, done)))


# work functions (run in worker processes) -------------------------------------------------------


def _channels_for(job: Job, registry: Registry, names: list[str] | None) -> list[Channel]:
    built = {config.name: Channel.build(registry, config) for config in job.channels}
    return [built[name] for name in names] if names else list(built.values())


def t0_work(job_document: dict[str, Any], task_index: int, run: int, index: int, count: int,
            report: Progress) -> dict[str, Any]:
    """Partition ``index`` of ``count`` of the job's T0 task number ``task_index``; its counters."""
    job = Job.model_validate(job_document)
    registry = get_registry()
    task = job.tasks[task_index]
    assert isinstance(task, T0Task)
    summary = RunSummary(run=run)
    store = open_store(job.store)
    try:
        run_t0_partition(store, registry, task, _channels_for(job, registry, task.channels), run, summary,
                         index, count, report)
    finally:
        store.close()
    return summary.as_dict()


def t2_work(store_url: str, task_document: dict[str, Any], run: int, idle_exit: bool, poll: float,
            report: Progress) -> dict[str, Any]:
    """Run T2 tickets until idle (``idle_exit``) or until SIGTERM / SIGINT, which finish the
    current ticket first; return the counters."""
    task = T2Task.model_validate(task_document)
    stop = threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    summary = RunSummary(run=run)
    store = open_store(store_url)
    try:
        runtime = T2Runtime(store, get_registry(), task, run, summary)
        while not stop.is_set():
            runtime.run_until_idle(report, should_stop=stop.is_set)
            if idle_exit:
                break
            stop.wait(poll)
    finally:
        store.close()
    summary.status = "stopped" if stop.is_set() else "ok"
    return summary.as_dict()


# merging ----------------------------------------------------------------------------------------

_COUNTERS = ("alerts", "quarantined", "ingested", "unaccepted", "tickets_done", "tickets_failed", "tickets_retried")


def merge(summary: RunSummary, part: dict[str, Any], *, records: bool) -> None:
    """Add the counters of one worker's summary (``records``: take its count of records read,
    which every T0 partition counts in full)."""
    for name in _COUNTERS:
        setattr(summary, name, getattr(summary, name) + part[name])
    for name in ("accepted", "rejected", "failed"):
        getattr(summary, name).update(part[name])
    if records:
        summary.records += part["records"]


# jobs -------------------------------------------------------------------------------------------


def run_job_parallel(job: Job, workers: int | None = None, executor: str = "local", scheduler: str | None = None,
                     progress: Progress | None = None, registry: Registry | None = None) -> RunSummary:
    """Run ``job`` with T0 and T2 in ``workers`` processes (or Dask tasks), T3 here; one run record.

    ``workers`` defaults to the CPU count (local) or the Dask cluster's worker threads. Raises
    AmpelError before anything runs when the store cannot serve that many processes (see
    `check_store`) or the T0 source cannot be read by several processes.
    """
    if workers is not None and workers < 1:
        raise AmpelError(f"--workers must be at least 1, got {workers}")
    if executor not in EXECUTORS:
        raise AmpelError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    registry = registry or get_registry()
    if not (executor == "dask" and scheduler and workers is None):
        workers = workers or os.cpu_count() or 1
        check_store(job.store, workers, executor, scheduler)
    else:
        check_store(job.store, 1, executor, scheduler)
    for task in job.tasks:
        if isinstance(task, T0Task):
            _check_replayable(registry, task)
    channels = {config.name: Channel.build(registry, config) for config in job.channels}
    document = job.model_dump(mode="json")
    with recorded_run(job, registry, channels) as summary:  # the workers open their own connections
        run = summary.run
        pool: LocalExecutor | DaskExecutor | None = None
        try:
            pool = DaskExecutor(scheduler, workers) if executor == "dask" else LocalExecutor()
            if workers is None:
                workers = pool.slots()  # type: ignore[union-attr]
            for number, task in enumerate(job.tasks):
                if isinstance(task, T0Task):
                    t0_started = time.perf_counter()
                    parts = pool.run(t0_work, [(document, number, run, index, workers) for index in range(workers)], progress)
                    for index, part in enumerate(parts):
                        merge(summary, part, records=index == 0)
                    summary.t0_seconds += time.perf_counter() - t0_started
                elif isinstance(task, T2Task):
                    task_document = task.model_dump(mode="json")
                    parts = pool.run(t2_work, [(job.store, task_document, run, True, 0.0)] * workers, progress)
                    for part in parts:
                        merge(summary, part, records=False)
                else:
                    store = open_store(job.store)
                    try:
                        run_t3(store, registry, task, channels, run, summary)
                    finally:
                        store.close()
        finally:
            if isinstance(pool, DaskExecutor):
                pool.close()
    return summary


def _check_replayable(registry: Registry, task: T0Task) -> None:
    component = registry.sources.get(task.source.name)
    if component is None:
        return  # build_component names the problem
    replayable = component.import_path != "ampel_core.kafka:KafkaSource" and getattr(component.load(), "replayable", True)
    if not replayable:
        raise AmpelError(f"alert source '{task.source.name}' cannot be read by several workers (each partition reads "
                         "the whole source): run it with one worker, or start several `ampel job` processes")


# ampel worker t2 --------------------------------------------------------------------------------


def serve_t2(store_url: str, task: T2Task, concurrency: int = 1, idle_exit: bool = False, poll: float = 2.0,
             registry: Registry | None = None) -> RunSummary:
    """The loop of ``ampel worker t2``: ``concurrency`` processes run tickets until idle
    (``idle_exit``) or until SIGTERM / Ctrl-C, on which each finishes its current ticket and stops.
    One run record; returns the merged summary."""
    if concurrency < 1:
        raise AmpelError(f"--concurrency must be at least 1, got {concurrency}")
    registry = registry or get_registry()
    if concurrency > 1:
        check_store(store_url, concurrency)
    store = open_store(store_url)
    document = {"worker": "t2", "concurrency": concurrency, **task.model_dump(mode="json")}
    run = store.start_run(digest(document), document, environment(registry))
    store.close()
    summary = RunSummary(run=run)
    started = time.perf_counter()
    task_document = task.model_dump(mode="json")
    try:
        if concurrency == 1:
            parts = [t2_work(store_url, task_document, run, idle_exit, poll, lambda *_: None)]
        else:
            parts = _serve_processes(store_url, task_document, run, concurrency, idle_exit, poll)
        for part in parts:
            merge(summary, part, records=False)
        stopped = any(part["status"] == "stopped" for part in parts)
        summary.status = "stopped" if stopped else "ok"
    except BaseException:
        summary.status = "failed"
        raise
    finally:
        summary.wall_seconds = time.perf_counter() - started
        store = open_store(store_url)
        store.end_run(run, summary.status, summary.as_dict())
        store.close()
    return summary


def _serve_processes(store_url: str, task_document: dict[str, Any], run: int, concurrency: int,
                     idle_exit: bool, poll: float) -> list[dict[str, Any]]:
    """Fork ``concurrency`` T2 workers; SIGTERM / SIGINT here are passed on to them as SIGTERM."""
    executor = LocalExecutor()

    def forward(signum: int, frame: Any) -> None:
        for child in executor.processes:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return executor.run(t2_work, [(store_url, task_document, run, idle_exit, poll)] * concurrency, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
