"""Recording a run: its counters (`RunSummary`), the run record in the store, and the observer
hooks.

The runtime never fires hooks itself. Each tier's loop calls a `Report` with the counts of every
batch it finished; the driver relays those reports, from whichever process or host ran the batch,
to an `Observer` in the driver's own process, which fires ``ampel_batch_done`` and advances the
progress bars. So observers see the same calls under every driver: one ``ampel_run_started``,
the batches, one ``ampel_run_finished`` — all in the process that recorded the run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ampel_core.models import Run, Trace
from ampel_core.provenance import digest
from ampel_core.registry import Registry
from ampel_core.store import Store, open_store

__all__ = ["COUNTERS", "ENDED", "Observer", "Progress", "Report", "RunSummary", "batch_counts", "environment",
           "mark_killed_runs", "merge",
           "process_alive", "recorded_run", "run_status"]

ENDED = ("ok", "incomplete", "interrupted", "failed", "stopped", "killed")
"""Statuses of runs that have ended (a run in progress is 'running')."""

Progress = Callable[[str, int], None]
"""A progress display: (task label, items done since the last call)."""

Report = Callable[[int, dict[str, int]], None]
"""Where a tier's loop reports each finished batch: (tier, the batch's counts)."""

COUNTERS = ("records", "alerts", "quarantined", "unreadable", "ingested", "unaccepted", "tickets_done", "tickets_failed",
            "tickets_retried", "reports", "reports_failed")


@dataclass
class RunSummary:
    """Counters of one run; ``alerts == sum over outcomes`` for every channel."""

    run: int = 0
    records: int = 0
    alerts: int = 0
    quarantined: int = 0
    unreadable: int = 0  # source records that could not be read whole (a truncated archive): the run is incomplete
    ingested: int = 0  # alerts taken by at least one channel
    unaccepted: int = 0  # alerts no channel took (rejected or failed everywhere)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    tickets_done: int = 0
    tickets_failed: int = 0
    tickets_retried: int = 0
    reports: int = 0
    reports_failed: int = 0
    # bytes of each archive partition file read (`ampel_core.archive.ArchiveSource`): a job over an
    # archive reads each partition once, whatever the number of workers
    partition_bytes: dict[str, int] = field(default_factory=dict)
    t0_seconds: float = 0.0
    wall_seconds: float = 0.0
    status: str = "running"
    error: str | None = None  # why a failed run failed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("accepted", "rejected", "failed"):
            data[key] = dict(sorted(getattr(self, key).items()))
        data["partition_bytes"] = dict(sorted(self.partition_bytes.items()))
        data["bytes_read"] = sum(self.partition_bytes.values())
        data["alerts_per_second"] = round(self.alerts / self.t0_seconds, 1) if self.t0_seconds else None
        return data


def batch_counts(batch: RunSummary, counters: Iterable[str]) -> dict[str, int]:
    """The counts a batch reports: the named ``counters`` and, per channel, ``accepted.<channel>``,
    ``rejected.<channel>`` and ``failed.<channel>`` (`Observer` adds them up into the run's summary)."""
    counts = {name: getattr(batch, name) for name in counters}
    for kind in ("accepted", "rejected", "failed"):
        counts.update((f"{kind}.{channel}", n) for channel, n in getattr(batch, kind).items() if n)
    return counts


def merge(summary: RunSummary, part: dict[str, Any]) -> None:
    """Add the counters of one worker's summary (`RunSummary.as_dict`) to ``summary``."""
    for name in COUNTERS:
        setattr(summary, name, getattr(summary, name) + part[name])
    for name in ("accepted", "rejected", "failed"):
        getattr(summary, name).update(part[name])
    for name, size in part.get("partition_bytes", {}).items():
        summary.partition_bytes[name] = summary.partition_bytes.get(name, 0) + size


def environment(registry: Registry) -> dict[str, Any]:
    """What a run ran on: Python, platform, every plugin distribution and key libraries."""
    from importlib import metadata

    libraries = {}
    for name in ("numpy", "astropy", "pydantic", "fastavro", "cavro", "sncosmo", "iminuit", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libraries[name] = metadata.version(name)
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "host": socket.gethostname(), "pid": os.getpid(),
            "plugins": {name: version for name, version, _ in registry.plugins()}, "libraries": libraries}


def process_alive(host: str | None, pid: int | None) -> bool | None:
    """Whether process ``pid`` on ``host`` runs: True or False on this host, None (cannot tell)
    for another host or an unknown pid."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run: Run) -> str:
    """The status of a recorded run as it is now: a run still marked 'running' whose process on
    this host is gone was killed (SIGKILL, a crash of the machine's process) and is shown 'killed'."""
    if run.status == "running" and process_alive(run.environment.get("host"), run.environment.get("pid")) is False:
        return "killed"
    return run.status


def mark_killed_runs(store: Store) -> list[int]:
    """Record as 'killed' every run marked 'running' whose process on this host is gone; their ids."""
    killed = [run for run in store.runs() if run.status == "running" and run_status(run) == "killed"]
    for run in killed:
        store.end_run(run.id, "killed", {**run.summary, "status": "killed",
                                          "error": "the process ended without recording its end (killed)"})
    return [run.id for run in killed]


_PROGRESS = {0: ("T0 alerts", "alerts"), 2: ("T2 tickets", "tickets"), 3: ("T3 reports", "reports")}


class Observer:
    """The driver's end of the batch reports: adds each batch's counts to the run's ``summary`` (so
    it holds what was committed, whichever process did the work and however the run ends), fires
    ``ampel_batch_done`` and advances ``progress``."""

    def __init__(self, registry: Registry, summary: RunSummary, progress: Progress | None = None) -> None:
        self.hook, self.summary, self.progress = registry.manager.hook, summary, progress

    def __call__(self, tier: int, counts: dict[str, int]) -> None:
        for key, count in counts.items():
            kind, _, channel = key.partition(".")
            if channel and kind in ("accepted", "rejected", "failed"):
                getattr(self.summary, kind)[channel] += count
            elif key in COUNTERS:
                setattr(self.summary, key, getattr(self.summary, key) + count)
        self.hook.ampel_batch_done(run_id=self.summary.run, tier=tier, counts=counts)
        if self.progress and tier in _PROGRESS:
            label, key = _PROGRESS[tier]
            self.progress(label, counts.get(key, 0))


@contextlib.contextmanager
def recorded_run(store_url: str, document: dict[str, Any], registry: Registry,
                 traces: Iterable[Trace] = ()) -> Iterator[RunSummary]:
    """Record one run of ``document`` (a job, or a worker's settings): record as killed the runs of
    this host whose process is gone, start this one (its digest, the environment, the unit
    ``traces`` it will use), fire ``ampel_run_started``, yield its summary, and end it with its
    status (ok; incomplete when source records could not be read whole; interrupted; failed, with
    its error) and counts however the body exits, then fire ``ampel_run_finished``. The store is
    open only to record: the body opens its own connections."""
    summary = RunSummary()
    started = time.perf_counter()
    store = open_store(store_url)
    try:
        mark_killed_runs(store)
        summary.run = store.start_run(digest(document), document, environment(registry))
        store.add_traces(traces)
    finally:
        store.close()
    registry.manager.hook.ampel_run_started(run_id=summary.run, job=document)
    try:
        yield summary
        if summary.status == "running":
            summary.status = "incomplete" if summary.unreadable else "ok"
    except KeyboardInterrupt:
        summary.status = "interrupted"
        raise
    except BaseException as error:
        summary.status, summary.error = "failed", f"{type(error).__name__}: {error}"
        raise
    finally:
        summary.wall_seconds = time.perf_counter() - started
        store = open_store(store_url)
        try:
            store.end_run(summary.run, summary.status, summary.as_dict())
        finally:
            store.close()
        registry.manager.hook.ampel_run_finished(run_id=summary.run, summary=summary.as_dict())
