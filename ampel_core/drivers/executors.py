"""Where work functions run: in this process, in forked processes, or on a Dask cluster.

A work function is called as ``function(registry, *args, report)``: ``registry`` is this
process's registry when it runs here (`InlineExecutor`), else None (the worker uses its own
process-wide one); ``report(tier, counts)`` carries each finished batch back to the driver's
`ampel_core.runtime.Observer`, whichever process or host the function runs in. It returns a
JSON-able dict (a `RunSummary` as a dict).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.registry import Registry
from ampel_core.runtime import Report

__all__ = ["DaskExecutor", "Executor", "InlineExecutor", "LocalExecutor", "WorkFunction"]

WorkFunction = Callable[..., dict[str, Any]]


class Executor:
    """Runs one work function over argument tuples, in parallel where it can."""

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], report: Report) -> list[dict[str, Any]]:
        raise NotImplementedError

    def slots(self) -> int:
        """How many functions it runs at once: the default number of partitions."""
        return 1

    def close(self) -> None:
        return None


class InlineExecutor(Executor):
    """Calls the function in this process, one argument tuple after the other; errors propagate."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], report: Report) -> list[dict[str, Any]]:
        return [function(self.registry, *args, report) for args in arguments]


class LocalExecutor(Executor):
    """Runs each call in its own process on this machine (fork where available: the children
    inherit this process's plugin manager; elsewhere they are spawned and see installed plugins).
    SIGINT / SIGTERM received here while they run are passed on to them as SIGTERM, so T2 workers
    finish their ticket and hand the rest back; the run then counts as interrupted."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self.context: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.processes: list[Any] = []  # of the current `run`
        self.signalled = False

    def slots(self) -> int:
        return os.cpu_count() or 1

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], report: Report) -> list[dict[str, Any]]:
        """Returns the functions' results in order; AmpelError when one failed (the others are
        stopped), KeyboardInterrupt when a signal stopped them."""
        messages = self.context.Queue()
        self.processes = [self.context.Process(target=_local_call, args=(function, args, number, messages), daemon=True)
                          for number, args in enumerate(arguments)]
        results: dict[int, dict[str, Any]] = {}
        failures: dict[int, str] = {}
        previous = self._forward_signals()
        try:
            for process in self.processes:
                process.start()
            while len(results) + len(failures) < len(self.processes):
                try:
                    kind, number, value = messages.get(timeout=0.5)
                except queue_module.Empty:
                    self._reap(messages, results, failures)
                    continue
                if kind == "report":
                    report(*value)
                elif kind == "done":
                    results[number] = value
                else:
                    failures[number] = value
                    self._stop_others(number)  # fail fast; T2 workers finish their current ticket
        except BaseException:
            self._stop_others(-1)
            raise
        finally:
            for process in self.processes:
                process.join(10.0)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if failures and self.signalled:
            raise KeyboardInterrupt
        if failures:
            number, error = next(iter(failures.items()))  # the first to fail; the others were stopped
            raise AmpelError(f"worker {number + 1} of {len(self.processes)} failed: {error}")
        return [results[number] for number in range(len(self.processes))]

    def _forward_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def forward(signum: int, frame: Any) -> None:
            self.signalled = True
            self._stop_others(-1)

        return {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}

    def _reap(self, messages: Any, results: dict[int, dict[str, Any]], failures: dict[int, str]) -> None:
        for number, process in enumerate(self.processes):
            if not process.is_alive() and number not in results and number not in failures:
                process.join(1.0)  # its last message may still be in the pipe
                if messages.empty():
                    failures[number] = f"process exited with code {process.exitcode} before reporting"
                    self._stop_others(number)

    def _stop_others(self, failed: int) -> None:
        for number, process in enumerate(self.processes):
            if number != failed and process.pid and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)


def _local_call(function: WorkFunction, args: tuple[Any, ...], number: int, messages: Any) -> None:
    try:
        result = function(None, *args, lambda tier, counts: messages.put(("report", number, (tier, counts))))
        messages.put(("done", number, result))
    except BaseException as error:
        messages.put(("error", number, f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class DaskExecutor(Executor):
    """Runs each call as a Dask task (a ``LocalCluster`` of ``workers`` single-threaded processes
    when no scheduler address is given); reports travel through a Dask queue. Dask workers run
    installed plugins only."""

    def __init__(self, scheduler: str | None, workers: int | None) -> None:
        try:
            self.distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise AmpelError("--executor dask needs Dask: pip install 'dask[distributed]'") from None
        self.cluster = None if scheduler else self.distributed.LocalCluster(
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = self.distributed.Client(scheduler or self.cluster)

    def slots(self) -> int:
        return max(1, int(sum(self.client.nthreads().values())))

    def run(self, function: WorkFunction, arguments: list[tuple[Any, ...]], report: Report) -> list[dict[str, Any]]:
        messages = self.distributed.Queue(f"ampel-reports-{os.getpid()}-{time.time_ns()}", client=self.client)
        futures = [self.client.submit(_dask_call, function, args, messages.name, pure=False) for args in arguments]
        try:
            while not all(future.done() for future in futures):
                self._forward(messages, report)
                time.sleep(0.2)
        except BaseException:
            self.client.cancel(futures)
            raise
        self._forward(messages, report)
        failed = [(number, f) for number, f in enumerate(futures) if f.status != "finished"]
        if failed:
            number, future = failed[0]
            error = future.exception()
            raise AmpelError(f"Dask task {number + 1} of {len(futures)} failed: {type(error).__name__}: {error}")
        return [f.result() for f in futures]

    @staticmethod
    def _forward(messages: Any, report: Report) -> None:
        for tier, counts in messages.get(batch=True):  # everything queued so far, in order
            report(tier, counts)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _dask_call(function: WorkFunction, args: tuple[Any, ...], queue_name: str) -> dict[str, Any]:
    messages = importlib.import_module("distributed").Queue(queue_name)
    return function(None, *args, lambda tier, counts: messages.put((tier, counts)))
