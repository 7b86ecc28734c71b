"""What ``ampel serve`` runs beside the API: ingestion, T2 workers and T3 schedules, in threads.

All of it is the core's runtime (`run_t0`, `run_t2`, `run_t3`, each inside a `recorded_run`); this
module only decides when it runs and with which channels.

- **Ingestion** runs every active channel's T0 on the stream: files dropped into the watched
  directory (alert files or tar archives; write them under a name starting with ``.`` or ending
  in ``.part`` and rename them when complete; a file is also left alone until it has been unchanged
  for ``settle`` seconds), up to ``batch_size`` files per T0 pass, in name order; or Kafka
  (offsets committed after each durable batch; each pass of at most ten batches joins the consumer
  group anew, so a stop waits for the pass to end). A file is recorded as ingested only once all
  its alerts are committed, so a restart resumes with the first file not done (re-ingesting part of a
  file is idempotent: the core decides each alert and channel once). One run is recorded per
  session of unchanged jobs: when a job is uploaded, paused, resumed or removed, the run ends and
  a new one starts with the new set of channels, so each run's document names the job versions it ran.
- **T2 workers** (threads) claim the store's tickets with leases, like ``ampel worker t2``.
- **T3**: every ``t3_interval`` seconds, each active job's T3 tasks, one recorded run per job.

`Service.stop` (the app's shutdown, on SIGTERM) finishes in-flight work: the file or Kafka batch
being ingested is committed, the T2 ticket running is finished (the others claimed are handed
back), the T3 task running completes; then the runs are recorded as ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ampel_core.errors import AmpelError
from ampel_core.jobs import ChannelConfig, ComponentSpec, T0Task, T2Task, T3Task
from ampel_core.registry import Registry, get_registry
from ampel_core.runtime import Channel, Observer, RunSummary, recorded_run, run_t0, run_t2, run_t3
from ampel_core.store import Store, open_store

from ampel_serve.app import ServeSettings
from ampel_serve.jobs import JobBook, JobVersion

__all__ = ["Service", "kafka_source"]

_log = logging.getLogger("ampel.serve")


def kafka_source(url: str, poll: float, batch_size: int) -> ComponentSpec:
    """The Kafka source of ``kafka://host:port[,host:port]/topic[,topic]?group=ID``."""
    parts = urlsplit(url)
    topics = [t for t in parts.path.strip("/").split(",") if t]
    if parts.scheme != "kafka" or not parts.netloc or not topics:
        raise AmpelError(f"--source {url!r}: expected kafka://host:port/topic[,topic][?group=ID]")
    group = parse_qs(parts.query).get("group", ["ampel-serve"])[0]
    # each pass joins the group anew, which takes seconds: a pass ends after 10 batches or 5 idle seconds
    return ComponentSpec(name="kafka", config={"bootstrap_servers": parts.netloc, "topics": topics, "group_id": group,
                                               "max_idle": max(5.0, poll), "max_messages": batch_size * 10})


def _spawn(arguments: list[str]) -> subprocess.Popen[bytes]:
    """``ampel ARGUMENTS`` in a process of its own (its output goes where this process's goes)."""
    return subprocess.Popen([sys.executable, "-m", "ampel_core.cli", *arguments])


class _FileLock:
    """A lock shared by the processes of this host: ``flock`` on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()  # flock is per open file: threads take turns here first
        self._handle: Any = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a")  # closed in __exit__
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._thread_lock.release()


def _waiting(name: str) -> bool:
    """A file still being written by the dropper's convention."""
    return name.startswith(".") or name.endswith((".part", ".tmp"))


class Service:
    """Ingestion, T2 workers and T3 schedules of ``settings``, for the jobs of ``jobs``."""

    def __init__(self, settings: ServeSettings, jobs: JobBook, registry: Registry | None = None) -> None:
        if settings.watch is not None and settings.source is not None:
            raise AmpelError("give either --watch DIR or --source kafka://..., not both")
        if settings.watch is not None and not settings.watch.is_dir():
            raise AmpelError(f"--watch {settings.watch}: no such directory")
        self.settings, self.jobs = settings, jobs
        self.registry = registry or get_registry()
        self.format = ComponentSpec(name=settings.alert_format)
        self.source = kafka_source(settings.source, settings.poll, settings.batch_size) if settings.source else None
        self._stop = threading.Event()
        self._ingest_lock = _FileLock(settings.data_dir / ".ingest.lock")  # live ingestion and replays take turns
        self._threads: list[threading.Thread] = []
        self._commands: list[list[str]] = []  # of the child processes
        self._children: list[subprocess.Popen[bytes]] = []
        self._t3_due = threading.Event()
        self.errors: list[str] = []  # what made a thread pause and try again (also logged)
        self._t3_seen: dict[tuple[str, str, int], int] = {}  # job version -> activity at its last T3

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the ingestion and T2 workers (processes, or threads of this process with
        ``settings.threads``) and the T3 schedule (a thread)."""
        self._stop.clear()
        targets: list[tuple[str, Any]] = []
        ingests = self.settings.watch is not None or self.source is not None
        if self.settings.threads:
            targets += [("ingest", self._ingest_loop)] if ingests else []
            targets += [(f"t2-{n}", self._t2_loop) for n in range(self.settings.t2_workers)]
        else:
            if ingests:
                self._commands.append(self._ingest_command())
            self._commands += [["serve", "t2", "--store", self.settings.store, "--poll", str(self.settings.poll),
                                "--parent", str(os.getpid())]] * self.settings.t2_workers
            self._children = [_spawn(command) for command in self._commands]
            targets.append(("supervisor", self._supervise))
        targets.append(("t3", self._t3_loop))
        for name, target in targets:
            thread = threading.Thread(target=self._guarded, args=(name, target), name=f"ampel-serve-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _ingest_command(self) -> list[str]:
        settings = self.settings
        command = ["serve", "ingest", "--store", settings.store, "--format", settings.alert_format, "--pattern",
                   settings.pattern, "--batch-size", str(settings.batch_size), "--poll", str(settings.poll),
                   "--settle", str(settings.settle), "--data-dir", str(settings.data_dir), "--parent", str(os.getpid())]
        if settings.watch is not None:
            command += ["--watch", str(settings.watch)]
        if settings.source is not None:
            command += ["--source", settings.source]
        return command

    def _supervise(self) -> None:
        """Start again a child process that ended while the server runs (it crashed or was killed)."""
        while not self._stop.wait(self.settings.poll):
            for index, child in enumerate(self._children):
                if child.poll() is not None and not self._stop.is_set():
                    message = f"`ampel {' '.join(self._commands[index][:2])}` ended with status {child.returncode}"
                    self.errors.append(message)
                    _log.error("ampel serve: %s; starting it again", message)
                    self._children[index] = _spawn(self._commands[index])

    def stop(self, timeout: float | None = None) -> None:
        """Finish in-flight work and stop every thread and process."""
        self._stop.set()
        self._t3_due.set()
        for thread in self._threads:  # the supervisor first: it must not start a stopping child again
            if thread.name == "ampel-serve-supervisor":
                thread.join(timeout)
        for child in self._children:  # each finishes its work in flight, records its run and exits
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self._children:
            child.wait(timeout)
        self._children.clear()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def run_ingest(self, parent: int | None = None) -> None:
        """Ingest in this thread until SIGTERM or SIGINT (``ampel serve ingest``), or, given the
        ``parent`` process that started this one (``ampel serve``), until that one is gone."""
        self._run_here("ingest", self._ingest_loop, parent)

    def run_t2_worker(self, parent: int | None = None) -> None:
        """Run T2 tickets in this thread until SIGTERM or SIGINT (``ampel serve t2``), or until
        the ``parent`` process is gone."""
        self._run_here("t2", self._t2_loop, parent)

    def _run_here(self, name: str, target: Any, parent: int | None) -> None:

        def handle(signum: int, frame: Any) -> None:
            self._stop.set()

        previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
        if parent is not None:
            threading.Thread(target=self._watch_parent, args=(parent,), daemon=True).start()
        try:
            self._guarded(name, target)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch_parent(self, parent: int) -> None:
        while not self._stop.wait(1.0):
            if os.getppid() != parent:  # orphaned: the server was killed
                self._stop.set()

    def _guarded(self, name: str, target: Any) -> None:
        while not self._stop.is_set():
            try:
                target()
                return
            except Exception as error:  # keep serving; say why, try again after a pause
                message = f"{name}: {type(error).__name__}: {error}"
                self.errors.append(message)
                _log.error("ampel serve %s (retrying in %.0f s)", message, 5 * self.settings.poll)
                self._stop.wait(5 * self.settings.poll)

    # channels -------------------------------------------------------------------------------------
    def _channels(self, versions: list[JobVersion]) -> list[Channel]:
        return [Channel.build(self.registry, ChannelConfig.model_validate(config))
                for version in versions for config in version.job["channels"]]

    @staticmethod
    def _document(kind: str, versions: list[JobVersion], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"name": f"serve-{kind}", "serve": kind, **(extra or {}),
                "jobs": [{"team": v.team, "name": v.name, "version": v.version, "digest": v.digest} for v in versions]}

    # ingestion ------------------------------------------------------------------------------------
    def _ingest_loop(self) -> None:
        while not self._stop.is_set():
            generation = self.jobs.generation()
            versions = self.jobs.active()
            channels = self._channels(versions)
            if not channels:  # nothing would take the alerts: leave them for when a job is active
                self._stop.wait(self.settings.poll)
                continue
            traces = [trace for channel in channels for trace in channel.traces()]
            document = self._document("ingest", versions, {"source": self.settings.source or str(self.settings.watch)})
            with recorded_run(self.settings.store, document, self.registry, traces) as summary:
                observer = Observer(self.registry, summary)
                store = open_store(self.settings.store)
                try:
                    while not self._stop.is_set() and self.jobs.generation() == generation:
                        with self._ingest_lock:
                            worked = self._ingest_once(store, channels, summary, observer)
                        if not worked:
                            self._stop.wait(self.settings.poll)
                finally:
                    store.close()

    def _ingest_once(self, store: Store, channels: list[Channel], summary: RunSummary, observer: Observer) -> bool:
        """Ingest what is waiting (the next new file, or one Kafka cycle); whether there was any."""
        if self.source is not None:
            task = T0Task(tier=0, source=self.source, format=self.format, batch_size=self.settings.batch_size)
            return self._t0(store, task, channels, summary, observer) > 0
        new = self._new_files()
        if not new:
            return False
        # up to a batch of alert files in one T0 pass (one file per alert is the usual drop)
        self._ingest_files(store, new[:self.settings.batch_size], channels, summary, observer)
        return True

    def _t0(self, store: Store, task: T0Task, channels: list[Channel], summary: RunSummary, observer: Observer) -> int:
        """Run ``task`` in the run of ``summary`` (whose counts the observer adds up); records read."""
        part = RunSummary(run=summary.run)
        run_t0(store, self.registry, task, channels, summary.run, part, observer)
        summary.t0_seconds += part.t0_seconds
        return part.records

    def _new_files(self) -> list[Path]:
        assert self.settings.watch is not None
        root = self.settings.watch
        if not root.is_dir():
            raise AmpelError(f"the watched directory {root} does not exist")
        found: list[Path] = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(folder, name) for name in sorted(files)
                         if not _waiting(name) and fnmatch.fnmatch(name, self.settings.pattern))
        done = {(row[0], int(row[1]), int(row[2])) for row in self.jobs.db.execute(
            "SELECT path, size, mtime FROM serve_ingested")}
        new = []
        for path in found:
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                settled = time.time() - stat.st_mtime >= self.settings.settle  # not still being written
                if settled and (str(path), stat.st_size, stat.st_mtime_ns) not in done:
                    new.append(path)
        return new

    def _ingest_files(self, store: Store, paths: list[Path], channels: list[Channel], summary: RunSummary,
                      observer: Observer) -> None:
        stats = [path.stat() for path in paths]
        task = T0Task(tier=0, source=ComponentSpec(name="files", config={"paths": [str(p) for p in paths]}),
                      format=self.format, batch_size=self.settings.batch_size)
        self._t0(store, task, channels, summary, observer)
        with self.jobs.db.transaction() as cursor:  # all their alerts are committed: they are done
            for path, stat in zip(paths, stats, strict=True):
                cursor.execute("INSERT INTO serve_ingested (path, size, mtime, run, done) VALUES (?, ?, ?, ?, ?) "
                               "ON CONFLICT DO NOTHING", (str(path), stat.st_size, stat.st_mtime_ns, summary.run,
                                                          time.time()))

    def ingested_files(self) -> list[Path]:
        """The files ingested so far, in the order they were."""
        rows = self.jobs.db.execute("SELECT path, MIN(done) FROM serve_ingested GROUP BY path ORDER BY MIN(done), path")
        return [Path(row[0]) for row in rows]

    def replay(self, version: JobVersion) -> dict[str, Any]:
        """Run the channels of job ``version`` over every file ingested so far (live ingestion
        waits meanwhile); the run's summary. Alerts the channels decided before stay decided."""
        if self.source is not None:
            raise AmpelError("alerts ingested from Kafka cannot be read again: a replay needs a watched directory")
        channels = self._channels([version])
        files = [path for path in self.ingested_files() if path.exists()]
        missing = len(self.ingested_files()) - len(files)
        traces = [trace for channel in channels for trace in channel.traces()]
        with self._ingest_lock, recorded_run(self.settings.store, self._document("replay", [version]), self.registry,
                                             traces) as summary:
            if files:
                task = T0Task(tier=0, source=ComponentSpec(name="files", config={"paths": [str(f) for f in files]}),
                              format=self.format, batch_size=self.settings.batch_size)
                store = open_store(self.settings.store)
                try:
                    self._t0(store, task, channels, summary, Observer(self.registry, summary))
                finally:
                    store.close()
        return {**summary.as_dict(), "files": len(files), "files_missing": missing}

    # T2 -------------------------------------------------------------------------------------------
    def _t2_loop(self) -> None:
        task = T2Task(tier=2)
        with recorded_run(self.settings.store, {"serve": "t2", **task.model_dump(mode="json")}, self.registry) as summary:
            store = open_store(self.settings.store)
            try:
                observer = Observer(self.registry, summary)

                # the runtime counts into its own summary; the run's is the sum of what it reports
                run_t2(store, self.registry, task, summary.run, RunSummary(run=summary.run), observer,
                       self._stop.is_set, self.settings.poll)
            finally:
                store.close()
            if self._stop.is_set():
                summary.status = "stopped"

    # T3 -------------------------------------------------------------------------------------------
    def run_t3_now(self) -> None:
        """Run the T3 tasks of every active job at once (instead of waiting for the schedule)."""
        self._t3_due.set()

    def _t3_loop(self) -> None:
        while not self._stop.is_set():
            self._t3_due.wait(self.settings.t3_interval)
            self._t3_due.clear()
            if self._stop.is_set():
                return
            for version in self.jobs.active():
                if self._stop.is_set():
                    return
                key, activity = (version.team, version.name, version.version), self._activity()
                if self._t3_seen.get(key) != activity:  # nothing new since its last T3: nothing to report
                    self.run_t3(version)
                    self._t3_seen[key] = activity

    def _activity(self) -> int:
        """The newest journal entry of T0-T2: T3 runs only when something was ingested or computed."""
        rows = self.jobs.db.execute("SELECT MAX(id) FROM journal WHERE tier < 3")
        return int(rows[0][0] or 0)

    def run_t3(self, version: JobVersion) -> dict[str, int]:
        """Run the T3 tasks of job ``version`` as one recorded run; their counts added up."""
        tasks = [T3Task.model_validate(t) for t in version.job["tasks"] if t["tier"] == 3]
        counts = {"stocks": 0, "reports": 0, "reports_failed": 0}
        if not tasks:
            return counts
        channels = {channel.name: channel for channel in self._channels([version])}
        with recorded_run(self.settings.store, self._document("t3", [version]), self.registry) as summary:
            store = open_store(self.settings.store)
            try:
                for task in tasks:  # run_t3 counts only through its report, the observer
                    for key, value in run_t3(store, self.registry, task, channels, summary.run,
                                             Observer(self.registry, summary)).items():
                        counts[key] += value
            finally:
                store.close()
        return counts
