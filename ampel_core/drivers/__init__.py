"""Drivers: where and in which process the shared runtime (`ampel_core.runtime`) runs.

- `run_job`: ``ampel job`` — one process, ``workers`` local processes, or Dask tasks;
- `serve_t2`: ``ampel worker t2`` — a long-lived T2 worker;
- ``ampel unit check`` (`ampel_core.unit_check`) and `ampel_core.testing.run_unit` call units
  through `ampel_core.runtime.call_unit`.
"""

from ampel_core.drivers.executors import DaskExecutor, Executor, InlineExecutor, LocalExecutor, WorkFunction
from ampel_core.drivers.job import EXECUTORS, SQLITE_MAX_WORKERS, check_store, run_job, t0_work, t2_work
from ampel_core.drivers.worker import serve_t2

__all__ = ["EXECUTORS", "SQLITE_MAX_WORKERS", "DaskExecutor", "Executor", "InlineExecutor", "LocalExecutor",
           "WorkFunction", "check_store", "run_job", "serve_t2", "t0_work", "t2_work"]
