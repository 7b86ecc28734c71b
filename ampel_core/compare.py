"""Re-running and comparing runs: `replay` a recorded run into a scratch store, `diff` two runs."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.store import Store, open_store

__all__ = ["Comparison", "Key", "compare", "diff", "flatten", "replay"]

Key = tuple[str, ...]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys (lists stay values)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@dataclass
class Comparison:
    """Results of two runs matched by key: same body, different body, or present on one side only."""

    identical: int = 0
    different: list[tuple[Key, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    only_first: list[Key] = field(default_factory=list)
    only_second: list[Key] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.different or self.only_first or self.only_second)


def _results_of_run(store: Store, run: int, key_fields: tuple[str, ...]) -> dict[Key, Any]:
    """The newest successful result body per key, among the results a run produced."""
    found: dict[Key, Any] = {}
    for _, result in store.results(run=run):
        if result.status == "ok":
            found[tuple(str(getattr(result, f)) for f in key_fields)] = result.body
    return found


def _differences(first: Any, second: Any, rel_tol: float) -> dict[str, tuple[Any, Any]]:
    a, b = flatten(first or {}), flatten(second or {})
    changed = {}
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if math.isclose(x, y, rel_tol=rel_tol, abs_tol=0.0):
                continue
        elif x == y:
            continue
        changed[key] = (x, y)
    return changed


def compare(first: dict[Key, Any], second: dict[Key, Any], rel_tol: float = 0.0) -> Comparison:
    comparison = Comparison()
    for key in sorted(first.keys() | second.keys()):
        if key not in second:
            comparison.only_first.append(key)
        elif key not in first:
            comparison.only_second.append(key)
        elif changed := _differences(first[key], second[key], rel_tol):
            comparison.different.append((key, changed))
        else:
            comparison.identical += 1
    return comparison


def replay(store_url: str, run: int, scratch_url: str | None = None) -> tuple[int, Comparison]:
    """Re-run the T0 and T2 tasks of a recorded run into a scratch store and compare every result
    (same unit trace, same link) bit for bit. T3 tasks are not replayed: they react (write files,
    notify), they do not produce results. Without ``scratch_url`` the replay goes to a temporary
    SQLite file, deleted afterwards. Returns (replay run id, comparison)."""
    from ampel_core.drivers import run_job
    from ampel_core.jobs import Job

    store = open_store(store_url, read_only=True)
    recorded = store.get_run(run)
    if recorded is None:
        raise AmpelError(f"no run {run} in {store_url}; `ampel runs --store {store_url}` lists them")
    if "tasks" not in recorded.job:
        raise AmpelError(f"run {run} is a worker run, not a job: replay the job run that made its tickets")
    original = _results_of_run(store, run, ("unit", "trace", "link_kind", "link"))
    store.close()
    with tempfile.TemporaryDirectory(prefix="ampel-replay-") as folder:  # the default scratch store, deleted after
        url = scratch_url or f"sqlite:///{Path(folder) / 'replay.db'}"
        document = {**recorded.job, "store": url, "tasks": [t for t in recorded.job["tasks"] if t["tier"] != 3]}
        summary = run_job(Job.model_validate(document))
        scratch = open_store(url)
        replayed = _results_of_run(scratch, summary.run, ("unit", "trace", "link_kind", "link"))
        scratch.close()
    return summary.run, compare(original, replayed)


def diff(store_url: str, first: int, second: int, rel_tol: float = 0.0, second_store_url: str | None = None) -> Comparison:
    """Compare the newest result per (unit, stock) of two runs — of one store, or of two when
    ``second_store_url`` is given (e.g. a variant with recalibrated datapoints run into its own
    store); numbers within ``rel_tol`` count as equal."""
    found = []
    for url, run in ((store_url, first), (second_store_url or store_url, second)):
        store = open_store(url, read_only=True)
        if store.get_run(run) is None:
            raise AmpelError(f"no run {run} in {url}")
        found.append(_results_of_run(store, run, ("unit", "stock")))
        store.close()
    return compare(found[0], found[1], rel_tol)
