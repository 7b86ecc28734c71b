"""docs/examples/elasticc.yml end to end: light curves accumulate correctly in a real SQLite store.

For every object, checked from the store: its states (in the order the job recorded them) follow
the alert order, each state strictly grows and equals the union of the visible datapoints of the
object's alerts read so far, and the final state holds each source exactly once.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ampel_core.alerts import FileSource
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.models import Alert
from ampel_core.registry import Registry
from ampel_core.store import Store, open_store
from ampel_lsst.format import ElasticcAlertFormat

JOB = Path(__file__).resolve().parents[3] / "docs/examples/elasticc.yml"
DATA = Path(__file__).parent / "data"
ELASTICC_SAMPLES = ("ampel-lsst_11290844.avro", "fink-client_alert_mjd60674.0512_obj747_src1494043.avro.gz",
                    "ampel-lsst_schemaless_alert_mjd60563.1120_obj104044681_src208089362038.avro.gz")

pytestmark = pytest.mark.skipif(not JOB.exists(), reason="needs the monorepo's docs/examples/elasticc.yml")


def run_example(alerts: Path, tmp_path: Path, registry: Registry) -> tuple[Store, list[Alert], dict[str, set[str]]]:
    """Run the example job on ``alerts`` into a fresh store; return the store, the alerts in the
    order the job read them (decoded independently) and each channel's access tags."""
    job = load_job(JOB, {"alerts": str(alerts)}, store=f"sqlite:///{tmp_path / 'elasticc.db'}")
    summary = run_job(job, registry=registry)
    assert summary.status == "ok" and summary.quarantined == 0
    source = job.tasks[0].source.config  # type: ignore[union-attr]
    alert_format = ElasticcAlertFormat()
    alerts = [a for r in FileSource(**source) for a in alert_format.decode(r.payload, r.origin)]
    assert summary.alerts == len(alerts)
    return open_store(job.store), alerts, {c.name: set(c.access) for c in job.channels}


def source_key(extra: dict[str, object]) -> tuple[str, object]:
    return ("forced", extra["diaForcedSourceId"]) if "diaForcedSourceId" in extra else ("source", extra["diaSourceId"])


def check_accumulation(store: Store, alerts: list[Alert], channel: str, access: set[str]) -> None:
    order = {alert.id: position for position, alert in enumerate(alerts)}
    by_stock: dict[int, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_stock[alert.stock].append(alert)
    for stock, its_alerts in by_stock.items():
        union: set[int] = set()
        sources: set[tuple[str, object]] = set()
        so_far: dict[int, frozenset[int]] = {}
        for alert in its_alerts:
            visible = [dp for dp in alert.datapoints if access & set(dp.tags)]
            union |= {dp.id for dp in visible}
            sources |= {source_key(dp.extra) for dp in visible}
            so_far[alert.id] = frozenset(union)
        previous: set[int] = set()
        last = -1
        states = store.channel_states(stock, channel)
        assert states, f"stock {stock}: no state"
        for _, state_id, alert_id, _ in states:
            state = store.get_state(state_id)
            assert state is not None and alert_id is not None
            assert order[alert_id] > last, f"stock {stock}: states out of alert order"
            assert set(state.datapoints) > previous, f"stock {stock}: state {state_id} does not grow"
            assert set(state.datapoints) == so_far[alert_id], f"stock {stock}: state != alerts read so far"
            last, previous = order[alert_id], set(state.datapoints)
        assert previous == union
        final = Counter(source_key(dp.extra) for dp in store.get_datapoints(stock, sorted(previous)))
        assert set(final) == sources and set(final.values()) == {1}, f"stock {stock}: a source twice or missing"


def test_example_job_on_the_shipped_samples(tmp_path: Path, lsst_registry: Registry) -> None:
    alerts_dir = tmp_path / "alerts"
    alerts_dir.mkdir()
    for name in ELASTICC_SAMPLES:
        shutil.copy(DATA / name, alerts_dir / name)
    store, alerts, access = run_example(alerts_dir, tmp_path, lsst_registry)
    assert len(alerts) == 5 and len({a.stock for a in alerts}) == 3
    check_accumulation(store, alerts, "ELASTICC_ALL", access["ELASTICC_ALL"])
    assert store.counts()["alerts"] == 5


def test_light_curves_of_all_5689_elasticc_alerts(shared_data: Path, tmp_path: Path, lsst_registry: Registry) -> None:
    store, alerts, access = run_example(shared_data / "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz",
                                        tmp_path, lsst_registry)
    counts = store.counts()
    assert (len(alerts), counts["alerts"], counts["stocks"], counts["quarantine"]) == (5689, 5689, 518, 0)
    check_accumulation(store, alerts, "ELASTICC_ALL", access["ELASTICC_ALL"])
    # the filtered channel (a combiner without diaObject datapoints) only grows too, also when the
    # datapoints it combines came with earlier alerts of the same, not yet committed, T0 batch
    for stock in sorted({a.stock for a in alerts}):
        rows = store.channel_states(stock, "ELASTICC_SIGNIFICANT")
        states = [set(store.get_state(s).datapoints) for _, s, _, _ in rows]  # type: ignore[union-attr]
        assert all(a < b for a, b in pairwise(states)), f"stock {stock}: a combined state shrinks"
