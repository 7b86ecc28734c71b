"""``ampel worker t2``: a long-lived T2 worker (``concurrency`` processes) against a store."""

from __future__ import annotations

from ampel_core.drivers.executors import Executor, InlineExecutor, LocalExecutor
from ampel_core.drivers.job import check_store, t2_work
from ampel_core.errors import AmpelError
from ampel_core.jobs import T2Task
from ampel_core.registry import Registry, get_registry
from ampel_core.runtime import Observer, RunSummary, recorded_run

__all__ = ["serve_t2"]


def serve_t2(store_url: str, task: T2Task, concurrency: int = 1, idle_exit: bool = False, poll: float = 2.0,
             registry: Registry | None = None) -> RunSummary:
    """Run tickets in ``concurrency`` processes until idle (``idle_exit``) or until SIGTERM / Ctrl-C,
    on which each finishes its current ticket, hands back the others and stops (status 'stopped').
    One run record; observers see it like a job's run. Returns the merged summary."""
    if concurrency < 1:
        raise AmpelError(f"--concurrency must be at least 1, got {concurrency}")
    registry = registry or get_registry()
    if concurrency > 1:
        check_store(store_url, concurrency)
    document = {"worker": "t2", "concurrency": concurrency, **task.model_dump(mode="json")}
    with recorded_run(store_url, document, registry) as summary:
        pool: Executor = InlineExecutor(registry) if concurrency == 1 else LocalExecutor()
        arguments = [(store_url, task, summary.run, None if idle_exit else poll, concurrency)] * concurrency
        parts = pool.run(t2_work, arguments, Observer(registry, summary))
        summary.status = "stopped" if any(part["status"] == "stopped" for part in parts) else "ok"
    return summary
