"""pytest plugin for unit and plugin authors (registered through the ``pytest11`` entry point).

Fixtures:
- ``ampel_manager``: a plugin manager with discovery blocked and only the core's built-ins
  registered; it is the process-wide manager for the duration of the test.
- ``register_units``: ``register_units(MyFilter, MyT2)`` makes classes defined in a test usable by
  name (jobs, registry) without installing a distribution.
- ``register_plugin``: ``register_plugin(module_or_object, name)`` registers hook implementations.
- ``ampel_config``: a function that builds the config of the current manager into a temporary file
  and returns its path.
- ``shared_data``: the project's ``../shared/data`` folder (or ``$AMPEL_SHARED_DATA``); the test is
  skipped, with the reason, where it is absent.

Function ``renamed_copies(sample, folder, copies)`` writes copies of a JSON-lines alert file as new
objects (for tests that need many stocks). Function ``run_unit(unit, value, **config)`` runs any unit on one input (an Alert for filters, a
list of DataPoints for state/combiner units, a DataPoint for point units, StockViews for react
units) and checks that T2 output is JSON-able.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pluggy
import pytest

from ampel_core import _core_plugin, plugins
from ampel_core.models import DataPoint
from ampel_core.registry import Component, Registry, build_config, dump_yaml, get_registry
from ampel_core.units import StateUnit, T2Unit, TiedStateUnit, Unit, build_unit
from ampel_core.views import StateView, StockView

__all__ = ["FINGERPRINT_QUERIES", "TEST_DISTRIBUTION", "ampel_config", "ampel_manager", "register_plugin", "register_units",
           "renamed_copies", "run_unit", "shared_data", "shared_data_dir", "state_view", "stock_view", "store_fingerprint"]


TEST_DISTRIBUTION = "local-test"


def renamed_copies(sample: Path, folder: Path, copies: int, one_per_file: bool = True) -> Path:
    """``copies`` renamed copies of the alerts of ``sample`` (the core's JSON-lines format: new stock
    names and ids) in ``folder``: one alert per file, or one file per copy."""
    folder.mkdir(exist_ok=True)
    lines = sample.read_text().splitlines()
    for copy in range(copies):
        renamed = []
        for line in lines:
            alert = json.loads(line)
            alert["stock"] = f"{alert['stock']}_{copy}"
            alert["id"] += copy * 10**15
            for point in alert["datapoints"]:
                if "id" in point:
                    point["id"] += copy * 10**15
            renamed.append(json.dumps(alert))
        if one_per_file:
            for number, text in enumerate(renamed):
                (folder / f"{copy:03d}_{number:03d}.json").write_text(text)
        else:
            (folder / f"copy-{copy:03d}.jsonl").write_text("\n".join(renamed) + "\n")
    return folder


@pytest.fixture
def ampel_manager() -> Iterator[pluggy.PluginManager]:
    previous = plugins._manager
    manager = plugins.new_manager()
    plugins.register(manager, _core_plugin, plugins.CORE_DISTRIBUTION)
    plugins.set_manager(manager)
    try:
        yield manager
    finally:
        plugins.set_manager(previous)


@pytest.fixture
def register_units(ampel_manager: pluggy.PluginManager) -> Callable[..., Registry]:
    def register(*classes: type[Unit]) -> Registry:
        registry = get_registry(ampel_manager)
        for cls in classes:
            name = cls.__name__
            registry.units[name] = Component(name, f"{cls.__module__}:{cls.__qualname__}", TEST_DISTRIBUTION, "0+local")
            registry._classes[name] = cls
        return registry

    return register


@pytest.fixture
def register_plugin(ampel_manager: pluggy.PluginManager) -> Callable[[object, str], Registry]:
    def register(module: object, name: str) -> Registry:
        plugins.register(ampel_manager, module, name)
        if hasattr(ampel_manager, "_ampel_registry"):
            del ampel_manager._ampel_registry
        return get_registry(ampel_manager)

    return register


@pytest.fixture
def ampel_config(ampel_manager: pluggy.PluginManager, tmp_path: Path) -> Callable[[], Path]:
    def build() -> Path:
        document, _ = build_config(get_registry(ampel_manager))
        path = tmp_path / "ampel_conf.yaml"
        path.write_text(dump_yaml(document))
        return path

    return build


def shared_data_dir(start: Path) -> Path | None:
    """``$AMPEL_SHARED_DATA`` or the first ``shared/data`` beside ``start`` or one of its parents."""
    if os.environ.get("AMPEL_SHARED_DATA"):
        return Path(os.environ["AMPEL_SHARED_DATA"])
    for folder in (start, *start.parents):
        candidate = folder.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data(request: pytest.FixtureRequest) -> Path:
    path = shared_data_dir(request.config.rootpath)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing, but CI must have it")
        pytest.skip("needs the large data set in ../shared/data (absent here; CI has it)")
    return path


def run_unit(unit: Unit | type[Unit], value: Any, dependencies: dict[str, Any] | None = None, **config: Any) -> Any:
    """Run ``unit`` (an instance, or a class built with ``config``) on one input; see module doc.
    A tied unit receives ``dependencies`` (result bodies by unit name)."""
    from ampel_core.runtime.configured import call_unit, t2_body

    instance = build_unit(unit, config) if isinstance(unit, type) else unit
    if isinstance(instance, (StateUnit, TiedStateUnit)) and not isinstance(value, StateView):
        value = state_view(value)
    output = call_unit(instance, value, dependencies)
    if isinstance(instance, T2Unit):
        t2_body(type(instance).__name__, output)  # TypeError unless a JSON-able dict
    return output


FINGERPRINT_QUERIES = {
    "stocks": "SELECT id FROM stocks", "names": "SELECT stock, name FROM stock_names",
    "stock_channels": "SELECT stock, channel FROM stock_channels", "tags": "SELECT stock, tag FROM stock_tags",
    "alerts": "SELECT id, stock, origin FROM alerts", "datapoints": "SELECT id, stock, tags, body, alert FROM datapoints",
    "states": "SELECT id, stock, datapoints FROM states",
    "channel_states": "SELECT stock, channel, state, alert FROM channel_states",
    "tickets": "SELECT unit, trace, link_kind, link, version, stock, channel, status, attempts FROM tickets",
    "results": "SELECT unit, trace, link_kind, link, stock, status, body FROM results",
    "journal": "SELECT stock, tier, action, channel, trace, alert, detail FROM journal WHERE tier < 2",
    "t2 journal": "SELECT stock, action, channel, trace FROM journal WHERE tier = 2",
    "rejected": "SELECT alert, channel, stock, trace, code, reason FROM rejected",
    "failed": "SELECT alert, channel, stock, trace FROM failed_alerts",
    "quarantine": "SELECT id, origin, reason, payload FROM quarantine",
    "traces": "SELECT id, document FROM traces",
}


def store_fingerprint(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the runs of a SQL store produced, sorted, without what differs between two equal
    runs (row ids, times, run ids, run records, T3 reports): two stores that ingested the same
    alerts with the same job, however often interrupted and rerun, have equal fingerprints."""
    from ampel_core.sql_store import SqlStore
    from ampel_core.store import open_store

    store = open_store(url, read_only=True)
    assert isinstance(store, SqlStore), "store_fingerprint reads SQL stores"
    try:
        found = {name: sorted(store.execute(query), key=repr) for name, query in FINGERPRINT_QUERIES.items()}
        # the order in which each channel saw each stock's states
        sequences = store.execute("SELECT stock, channel, state FROM channel_states ORDER BY stock, channel, seq")
        found["state sequences"] = [tuple(row) for row in sequences]
        return found
    finally:
        store.close()


def state_view(datapoints: Sequence[DataPoint], channel: str = "TEST", name: str = "test") -> StateView:
    """A StateView of these datapoints (as the runtime would build it)."""
    from ampel_core.provenance import state_id

    stock = datapoints[0].stock if datapoints else 0
    return StateView(id=state_id(dp.id for dp in datapoints), stock=stock, stock_name=name,
                     channel=channel, datapoints=tuple(datapoints))


def stock_view(datapoints: Sequence[DataPoint], results: dict[str, Any] | None = None, name: str = "test") -> StockView:
    stock = datapoints[0].stock if datapoints else 0
    return StockView(id=stock, names=(name,), channels=("TEST",), tags=(), datapoints=tuple(datapoints),
                     results=results or {})
