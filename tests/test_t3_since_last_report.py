"""`Selection.since_last_report`: a react unit gets each state of a stock once — not again on the
next run, again once the stock has a new state, and again after a report that failed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.store import open_store
from ampel_core.units import JSON, ReactUnit
from ampel_core.views import StockView


class Announce(ReactUnit):
    """Reports the names it is given; raises while ``down`` (a push target that is unreachable)."""

    down: ClassVar[bool] = False

    def process(self, views: Sequence[StockView]) -> JSON:
        if Announce.down:
            raise ConnectionError("target unreachable")
        return {"stocks": sorted(v.name for v in views)}


def test_each_state_is_reported_once(tmp_path: Path, sample_copies, register_units) -> None:
    register_units(Announce)
    files = sorted(sample_copies(tmp_path / "alerts", 3).iterdir())  # 3 objects, 46 alerts each, in object order
    url = f"sqlite:///{tmp_path / 'store.db'}"

    def run(paths: list[Path]) -> tuple[Any, Any]:
        summary = run_job(load_job({
            "name": "announce", "store": url, "channels": [{"name": "ALL"}],
            "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(p) for p in paths]}},
                       "format": {"name": "json"}},
                      {"tier": 3, "select": {"channel": "ALL", "since_last_report": True},
                       "react": [{"unit": "Announce"}]}]}))
        store = open_store(url, read_only=True)
        [(_, _, body)] = store.reports(summary.run)
        store.close()
        return summary, body

    def latest_states() -> dict[str, str]:
        store = open_store(url, read_only=True)
        states = {}
        for stock in store.select_stocks("ALL"):
            info = store.get_stock(stock)
            assert info is not None
            states[info.names[0]] = store.channel_states(stock, "ALL")[-1][1]
        store.close()
        return states

    _, first = run(files[:60])
    before = latest_states()
    assert first["stocks"] == sorted(before) and len(before) > 1
    _, again = run(files[:60])  # nothing new: nothing to announce
    assert again == {"stocks": []}

    Announce.down = True
    try:
        failed, body = run(files)  # new alerts, but the target is down: nothing counts as reported
    finally:
        Announce.down = False
    assert failed.reports_failed == 1 and body["exception"] == "ConnectionError"
    after = latest_states()
    changed = sorted(name for name, state in after.items() if before.get(name) != state)
    assert changed and len(changed) < len(after)  # some stocks got a new state, some did not

    _, retried = run(files)  # the target is back: every state not yet reported, once
    assert retried["stocks"] == changed
    _, last = run(files)
    assert last == {"stocks": []}

    store = open_store(url, read_only=True)
    lines = [e for s in store.select_stocks("ALL") for e in store.journal(s) if e.tier == 3]
    assert len(lines) == len(before) + len(changed)  # one line per state reported, none for the failed report
    assert {e.action for e in lines} == {"reported"} and all(e.detail["unit"] == "Announce" for e in lines)
    store.close()
