"""The runtime every driver shares: per tier, build the configured unit, call it, and record
everything (datapoints, states, tickets, results, journal, the run record, observer reports).

- `ampel_core.runtime.configured`: configured units and channels, and `call_unit`, the one place
  where a unit of each tier is called;
- `ampel_core.runtime.t0`, `.t2`, `.t3`: each tier's loop (`run_t0`, `run_t2`, `run_t3`);
- `ampel_core.runtime.run`: the run record (`recorded_run`), its counters (`RunSummary`) and the
  batch reports that become observer hooks (`Observer`).

Drivers (`ampel_core.drivers`: one process, local partitions, Dask, ``ampel worker t2``; and
``ampel unit check``, `ampel_core.testing.run_unit`) only decide where and in which process the
runtime runs.
"""

from ampel_core.runtime.configured import (
    Channel, ConfiguredUnit, DependencyFailed, build_component, call_unit, configure, configure_dependencies, t2_body,
    verdict,
)
from ampel_core.runtime.run import (
    COUNTERS, ENDED, Observer, Progress, Report, RunSummary, environment, mark_killed_runs, merge, process_alive,
    recorded_run, run_status,
)
from ampel_core.runtime.t0 import StockPartition, T0Runtime, partition_of, run_t0
from ampel_core.runtime.t2 import T2Runtime, release_gone_workers, run_t2, stop_on_signals
from ampel_core.runtime.t3 import matches, run_t3, select_views, stock_view

__all__ = [
    "COUNTERS",
    "ENDED",
    "Channel",
    "ConfiguredUnit",
    "DependencyFailed",
    "Observer",
    "Progress",
    "Report",
    "RunSummary",
    "StockPartition",
    "T0Runtime",
    "T2Runtime",
    "build_component",
    "call_unit",
    "configure",
    "configure_dependencies",
    "environment",
    "mark_killed_runs",
    "matches",
    "merge",
    "partition_of",
    "process_alive",
    "recorded_run",
    "release_gone_workers",
    "run_status",
    "run_t0",
    "run_t2",
    "run_t3",
    "select_views",
    "stock_view",
    "stop_on_signals",
    "t2_body",
    "verdict",
]
