"""The store contract: one pytest suite every store backend must pass.

A backend's test module subclasses `StoreContract` (any backend) or
`ampel_core.sql_store_contract.SqlStoreContract` (backends built on `ampel_core.sql_store.SqlStore`)
and supplies a ``store_url`` fixture that gives the URL of a
fresh, empty store for each test (and removes it afterwards)::

    from ampel_core.sql_store_contract import SqlStoreContract

    class TestMyStore(SqlStoreContract):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"sqlite:///{tmp_path}/store.db"

`StoreContract` covers every method of the `ampel_core.store.Store` protocol through the protocol
alone, against the real database: idempotent and atomic ingest, ticket claim / lease / expiry /
retry / finish, runs, traces, ordering of channel states, results and the journal, stock
selection, quarantine, blobs and reports. `SqlStoreContract` adds what only SQL can show: the
database itself refuses changes to immutable rows, the schema version policy (newer refused, older
upgraded by `ampel_core.sql_schema.MIGRATIONS` or refused), and readers that never wait for a writer.
Raw SQL goes through ``store.execute`` with ``?`` placeholders, as `SqlStore` provides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ampel_core.models import DataPoint, JournalEntry, Result, State, Trace, content_id
from ampel_core.provenance import make_trace, state_id
from ampel_core.store import IngestBatch, Store, Ticket, TicketSpec, open_store

__all__ = ["OWNER_A", "OWNER_B", "StoreContract", "alert_batch", "datapoint", "ok_result", "trace"]

OWNER_A, OWNER_B = "host-a:1", "host-b:2"


def datapoint(name: str, index: int, *, upper_limit: bool = False, tags: tuple[str, ...] = ("ZTF", "ZTF_PUB")) -> DataPoint:
    """The ``index``-th measurement of the object ``name`` (ZTF-like values)."""
    stock = content_id("stock", name)
    flux = None if upper_limit else 1200.0 + 35.5 * index
    return DataPoint(id=content_id(name, index), stock=stock, time=59396.404 + index, band=("ztfg", "ztfr")[index % 2],
                     flux=flux, flux_err=30.0 + index, mag=None if upper_limit else 17.3 - 0.01 * index,
                     mag_err=None if upper_limit else 0.03, upper_limit=upper_limit, tags=tags,
                     extra={"rb": 0.85, "programid": 1, "index": index})


def alert_batch(run: int, name: str, alert: int, points: list[DataPoint], known: list[DataPoint] = (),  # type: ignore[assignment]
                channels: tuple[str, ...] = ("CH",), trace: str = "t" * 64, blobs: dict[str, bytes] | None = None) -> IngestBatch:
    """What T0 writes for one alert of ``name`` accepted by ``channels``: the stock, the alert, its
    new datapoints, the state of all datapoints so far, one state ticket per channel, journal lines."""
    stock = points[0].stock
    now = time.time()
    visible = sorted({dp.id for dp in [*known, *points]})
    sid = state_id(visible)
    batch = IngestBatch(run)
    batch.stocks[stock] = now
    batch.names.add((stock, name))
    batch.alerts.append((alert, stock, f"file.jsonl::{alert}"))
    batch.blobs.extend((alert, key, value) for key, value in (blobs or {}).items())
    batch.datapoints.extend((dp, alert) for dp in points)
    batch.states[sid] = State(sid, stock, tuple(visible))
    for channel in channels:
        batch.channels.add((stock, channel))
        batch.channel_states.append((stock, channel, sid, alert))
        batch.tickets.append(TicketSpec("T2Unit", trace, "state", sid, stock, channel))
        batch.journal.append(JournalEntry(stock, 0, "accepted", channel, trace, run, alert, {"code": 1}, now))
        batch.journal.append(JournalEntry(stock, 1, "state", channel, None, run, alert, {"state": sid}, now))
    return batch


def trace(config: dict[str, Any] | None = None) -> Trace:
    return make_trace("T2Unit", "ampel-core", "0.1.0", "c" * 64, {}, config or {"a": 1})


def ok_result(ticket: Ticket, run: int | None, body: dict[str, Any] | None = None) -> Result:
    return Result(ticket.unit, ticket.trace, ticket.link_kind, ticket.link, ticket.stock,  # type: ignore[arg-type]
                  body if body is not None else {"ticket": ticket.id, "value": [1.5, None, "x"]}, "ok", run)


class StoreContract:
    """The tests; subclass with a ``store_url`` fixture (see the module docstring)."""

    @pytest.fixture
    def open_extra(self, store_url: str) -> Iterator[Callable[[], Store]]:
        """Open more connections to the same store (closed after the test)."""
        opened: list[Store] = []

        def opener() -> Store:
            opened.append(open_store(store_url))
            return opened[-1]

        yield opener
        for store in opened:
            store.close()

    @pytest.fixture
    def store(self, open_extra: Callable[[], Store]) -> Store:
        return open_extra()

    def run_id(self, store: Store) -> int:
        return store.start_run("d" * 64, {"name": "contract"}, {"python": "3"})

    def ingest_tickets(self, store: Store, run: int, n: int, channels: tuple[str, ...] = ("CH",)) -> list[str]:
        """n stocks with one alert each (one state ticket per channel); return the state ids."""
        states: list[str] = []
        for i in range(n):
            batch = alert_batch(run, f"ZTF24obj{i:05d}", 10_000 + i, [datapoint(f"ZTF24obj{i:05d}", 0)], channels=channels)
            store.ingest(batch)
            states.extend(batch.states)
        return states

    # --- opening ---------------------------------------------------------------------------
    def test_new_store_is_empty(self, store: Store) -> None:
        assert set(store.counts().values()) == {0}
        assert store.runs() == []
        assert store.ticket_status() == {}
        assert store.next_ticket_time() is None

    def test_reopening_keeps_the_data(self, store: Store, open_extra: Callable[[], Store]) -> None:
        run = self.run_id(store)
        store.ingest(alert_batch(run, "ZTF24aaa", 1, [datapoint("ZTF24aaa", 0)]))
        again = open_extra()
        assert again.counts() == store.counts()
        assert again.counts()["datapoints"] == 1

    # --- runs and traces -------------------------------------------------------------------
    def test_runs(self, store: Store) -> None:
        first = store.start_run("a" * 64, {"name": "one", "tasks": [1]}, {"python": "3.11"})
        second = store.start_run("b" * 64, {"name": "two"}, {})
        assert second > first
        run = store.get_run(first)
        assert run is not None
        assert (run.job_digest, run.job, run.environment, run.status, run.ended) == (
            "a" * 64, {"name": "one", "tasks": [1]}, {"python": "3.11"}, "running", None)
        store.end_run(first, "ok", {"alerts": 3, "accepted": {"CH": 2}})
        run = store.get_run(first)
        assert run is not None and run.status == "ok" and run.summary == {"alerts": 3, "accepted": {"CH": 2}}
        assert run.ended is not None and run.ended >= run.started
        assert [r.id for r in store.runs()] == [first, second]
        assert store.get_run(second + 100) is None

    def test_traces_are_idempotent(self, store: Store) -> None:
        one, two = trace({"a": 1}), trace({"a": 2, "nested": {"x": [1, 2]}})
        store.add_traces([one, two])
        store.add_traces([one])
        assert store.get_trace(one.id) == one
        assert store.get_trace(two.id) == two
        assert store.get_trace("0" * 64) is None
        assert store.counts()["runs"] == 0

    # --- T0 ingest and reading -------------------------------------------------------------
    def test_ingest_and_read_back(self, store: Store) -> None:
        run = self.run_id(store)
        points = [datapoint("ZTF24abc", 0), datapoint("ZTF24abc", 1, upper_limit=True), datapoint("ZTF24abc", 2)]
        batch = alert_batch(run, "ZTF24abc", 77, points, blobs={"cutout": b"\x00\x01binary\xff"})
        batch.quarantined.append(("bad.avro", "not avro", b"\x00garbage"))
        batch.rejected.append((78, "CH", points[0].stock, "t" * 64, -1, "too faint"))
        batch.failed.append((79, "CH", points[0].stock, "t" * 64, "ValueError: boom"))
        store.ingest(batch)
        stock = points[0].stock
        assert store.stored_datapoints([stock, 12345]) == {stock: {dp.id: dp.tags for dp in points}}
        assert store.get_datapoints(stock, [points[2].id, 999, points[0].id]) == [points[2], points[0]]
        assert store.get_datapoints(stock, [points[1].id])[0].extra == points[1].extra
        assert store.get_datapoints(stock + 1, [points[1].id]) == []  # a datapoint belongs to its stock
        assert store.stock_datapoints(stock) == sorted(points, key=lambda dp: dp.id)
        (sid,) = batch.states
        assert store.get_state(sid) == State(sid, stock, tuple(sorted(dp.id for dp in points)))
        assert store.get_state("f" * 64) is None
        info = store.get_stock(stock)
        assert info is not None and info.names == ("ZTF24abc",) and info.channels == ("CH",)
        assert info.created == pytest.approx(batch.stocks[stock]) and info.updated >= info.created
        assert store.get_stock(stock + 1) is None
        assert store.find_stock("ZTF24abc") == stock
        assert store.find_stock(str(stock)) == stock
        assert store.find_stock("ZTF99zzz") is None
        assert store.find_stock("123456789012345678901234567890") is None
        assert store.find_stock("²") is None and store.find_stock("-") is None  # '²'.isdigit(), int('²') fails
        assert store.datapoint_origin(stock, points[1].id) == (77, run)
        assert store.datapoint_origin(stock, 1) == (None, None)
        assert store.alert_origin(77) == ("file.jsonl::77", run)
        assert store.alert_origin(78) is None
        assert store.alert_blobs(77) == {"cutout": b"\x00\x01binary\xff"}
        assert store.alert_blobs(78) == {}
        [quarantined] = store.quarantined()
        assert (quarantined.origin, quarantined.reason, quarantined.payload, quarantined.run) == (
            "bad.avro", "not avro", b"\x00garbage", run)
        assert len(quarantined.id) == 64 and store.quarantined(run) == [quarantined] and store.quarantined(run + 1) == []
        counts = store.counts()
        assert {k: counts[k] for k in ("stocks", "alerts", "datapoints", "states", "channel_states", "tickets",
                                       "journal", "rejected", "failed_alerts", "quarantine", "runs")} == {
            "stocks": 1, "alerts": 1, "datapoints": 3, "states": 1, "channel_states": 1, "tickets": 1,
            "journal": 2, "rejected": 1, "failed_alerts": 1, "quarantine": 1, "runs": 1}

    def test_ingest_is_idempotent(self, store: Store) -> None:
        run = self.run_id(store)
        points = [datapoint("ZTF24idem", i) for i in range(4)]
        batch = alert_batch(run, "ZTF24idem", 5, points, channels=("A", "B"), blobs={"b": b"1"})
        batch.quarantined.append(("x", "bad", b"x"))
        batch.rejected.append((6, "A", points[0].stock, None, 0, ""))
        store.ingest(batch)
        before = store.counts()
        journal = store.journal(points[0].stock)
        store.ingest(batch)
        store.ingest(alert_batch(run, "ZTF24idem", 5, points, channels=("A", "B"), blobs={"b": b"1"}))
        assert store.counts() == before
        assert store.journal(points[0].stock) == journal
        assert len(store.channel_states(points[0].stock)) == 2

    def test_t0_decisions_of_earlier_runs(self, store: Store) -> None:
        run = self.run_id(store)
        points = [datapoint("ZTF24dec", 0)]
        batch = alert_batch(run, "ZTF24dec", 5, points, channels=("A", "B"), trace="f" * 64)
        batch.rejected.append((5, "C", points[0].stock, "r" * 64, -1, "faint"))
        batch.failed.append((5, "D", points[0].stock, "e" * 64, "ValueError"))
        batch.rejected.append((6, "A", points[0].stock, "f" * 64, 0, ""))  # alert 6 is not stored: not looked up
        (sid,) = batch.states
        for entry in batch.journal:
            entry.detail["state"] = sid if entry.action == "accepted" else entry.detail.get("state")
        store.ingest(batch)
        assert store.t0_decisions([5, 6, 7], ["A", "B", "C", "D", "E"]) == {
            (5, "A"): ("accepted", "f" * 64, sid), (5, "B"): ("accepted", "f" * 64, sid),
            (5, "C"): ("rejected", "r" * 64, None), (5, "D"): ("failed", "e" * 64, None)}
        assert store.t0_decisions([], ["A"]) == {} and store.t0_decisions([5], ["E"]) == {
            (5, "C"): ("rejected", "r" * 64, None), (5, "D"): ("failed", "e" * 64, None)}

    def test_large_batch(self, store: Store) -> None:
        """One batch of many alerts (backends may write big batches differently): every row,
        in order, and idempotent."""
        run = self.run_id(store)
        batch = IngestBatch(run)
        names = [f"ZTF24big{i:03d}" for i in range(60)]
        for number, name in enumerate(names):
            part = alert_batch(run, name, 5000 + number, [datapoint(name, i, upper_limit=i == 2) for i in range(5)],
                               channels=("B", "A"), blobs={"cutout": bytes([number, 0, 255])})
            batch.stocks.update(part.stocks)
            batch.names |= part.names
            batch.channels |= part.channels
            batch.alerts += part.alerts
            batch.blobs += part.blobs
            batch.datapoints += part.datapoints
            batch.states.update(part.states)
            batch.channel_states += part.channel_states
            batch.tickets += part.tickets
            batch.journal += part.journal
            batch.rejected.append((9000 + number, "C", next(iter(part.stocks)), None, -1, "faint"))
            batch.quarantined.append((f"bad-{number}.avro", "not avro", bytes([number]) * 3))
        store.ingest(batch)
        counts = store.counts()
        assert {k: counts[k] for k in ("stocks", "alerts", "datapoints", "states", "channel_states", "tickets", "journal",
                                       "rejected", "quarantine")} == {
            "stocks": 60, "alerts": 60, "datapoints": 300, "states": 60, "channel_states": 120, "tickets": 60,
            "journal": 240, "rejected": 60, "quarantine": 60}
        stock = datapoint(names[7], 0).stock
        assert [c for c, _, _, _ in store.channel_states(stock)] == ["B", "A"]
        assert [(e.action, e.channel) for e in store.journal(stock)] == [
            ("accepted", "B"), ("state", "B"), ("accepted", "A"), ("state", "A")]
        assert store.get_datapoints(stock, [datapoint(names[7], 2).id]) == [datapoint(names[7], 2, upper_limit=True)]
        assert store.alert_blobs(5007) == {"cutout": bytes([7, 0, 255])}
        tickets = store.claim_tickets(OWNER_A, 100, 60)
        assert [t.link for t in tickets] == list(batch.states)  # in batch order
        store.ingest(batch)
        assert store.counts() == counts

    def test_ingest_is_atomic(self, store: Store) -> None:
        run = self.run_id(store)
        batch = alert_batch(run, "ZTF24atom", 5, [datapoint("ZTF24atom", 0)])
        batch.tickets.append(TicketSpec(None, "t" * 64, "state", "s", 1, "CH"))  # type: ignore[arg-type]  # NOT NULL
        with pytest.raises(Exception):  # noqa: B017 - each driver has its own integrity error
            store.ingest(batch)
        counts = store.counts()
        assert counts["runs"] == 1 and sum(counts.values()) == 1
        store.ingest(alert_batch(run, "ZTF24atom", 5, [datapoint("ZTF24atom", 0)]))  # still usable
        assert store.counts()["datapoints"] == 1

    def test_channel_states_oldest_first(self, store: Store) -> None:
        run = self.run_id(store)
        points = [datapoint("ZTF24ord", i) for i in range(3)]
        stock = points[0].stock
        sids: list[str] = []
        for i in range(3):
            batch = alert_batch(run, "ZTF24ord", 100 + i, [points[i]], known=points[:i], channels=("B", "A"))
            store.ingest(batch)
            sids.extend(batch.states)
        states = store.channel_states(stock)
        assert [(c, s, a) for c, s, a, _ in states] == [
            ("B", sids[0], 100), ("A", sids[0], 100), ("B", sids[1], 101), ("A", sids[1], 101),
            ("B", sids[2], 102), ("A", sids[2], 102)]
        times = [t for *_, t in states]
        assert times == sorted(times)
        assert [s for _, s, _, _ in store.channel_states(stock, "A")] == sids
        assert store.channel_states(stock, "C") == []
        assert store.channel_states(stock + 1) == []

    def test_journal_oldest_first(self, store: Store) -> None:
        run = self.run_id(store)
        dp = datapoint("ZTF24jour", 0)
        store.ingest(alert_batch(run, "ZTF24jour", 1, [dp], channels=("A", "B")))
        (ticket,) = store.claim_tickets(OWNER_A, 10, 60)  # one ticket: both channels share the state
        store.finish_ticket(ticket, ok_result(ticket, run), OWNER_A)
        entries = store.journal(dp.stock)
        assert [(e.tier, e.action, e.channel) for e in entries] == [
            (0, "accepted", "A"), (1, "state", "A"), (0, "accepted", "B"), (1, "state", "B"), (2, "t2 done", "A")]
        assert entries[0].detail == {"code": 1} and entries[0].alert == 1 and entries[0].run == run
        assert entries[-1].trace == ticket.trace and entries[-1].detail["link"] == ticket.link

    def test_select_stocks(self, store: Store) -> None:
        run = self.run_id(store)
        names = ["ZTF24sel0", "ZTF24sel1", "ZTF24sel2"]
        stocks: list[int] = []
        for i, name in enumerate(names):
            batch = alert_batch(run, name, 200 + i, [datapoint(name, 0)], channels=("A",) if i < 2 else ("B",))
            batch.stocks = {stock: 1000.0 + 100 * i for stock in batch.stocks}
            store.ingest(batch)
            stocks.extend(batch.stocks)
        tagged = IngestBatch(run)
        tagged.tags |= {(stocks[1], "SN"), (stocks[2], "SN"), (stocks[2], "Ia")}
        store.ingest(tagged)
        assert store.select_stocks() == sorted(stocks)
        assert store.select_stocks("A") == sorted(stocks[:2])
        assert store.select_stocks("C") == []
        assert store.select_stocks(tags=["SN"]) == sorted(stocks[1:])
        assert store.select_stocks(tags=["SN", "Ia"]) == [stocks[2]]
        assert store.select_stocks("A", tags=["SN"]) == [stocks[1]]
        assert store.select_stocks(updated_after=1100.0) == sorted(stocks[1:])
        assert store.select_stocks(updated_before=1100.0) == [stocks[0]]
        assert store.select_stocks(updated_after=1050.0, updated_before=1150.0) == [stocks[1]]
        assert store.get_stock(stocks[2]).tags == ("Ia", "SN")  # type: ignore[union-attr]

    # --- the read API ----------------------------------------------------------------------
    def test_positions_follow_the_latest_alert(self, store: Store) -> None:
        run = self.run_id(store)
        batch = alert_batch(run, "ZTF24pos", 300, [datapoint("ZTF24pos", 0)])
        stock = next(iter(batch.stocks))
        batch.positions[stock] = (150.0, 2.5)
        store.ingest(batch)
        assert store.positions([stock, 12345]) == {stock: (150.0, 2.5)}
        moved = alert_batch(run, "ZTF24pos", 301, [datapoint("ZTF24pos", 1)])
        moved.positions[stock] = (150.0001, 2.5001)
        store.ingest(moved)
        assert store.positions([stock]) == {stock: (150.0001, 2.5001)}

    def test_cone_search(self, store: Store) -> None:
        from ampel_core.sky import angular_distance

        run = self.run_id(store)
        # around (359.9, -0.5): across ra = 0 and a HEALPix base-pixel edge; some in channel B only
        offsets = [(0.0, 0.0), (0.15, 0.0), (0.0, -0.3), (0.5, 0.5), (1.2, 0.0), (-0.05, 0.02), (3.0, 3.0)]
        stocks: dict[int, tuple[float, float]] = {}
        for i, (dra, ddec) in enumerate(offsets):
            name = f"ZTF24cone{i}"
            batch = alert_batch(run, name, 400 + i, [datapoint(name, 0)], channels=("A",) if i % 3 else ("B",))
            stock = next(iter(batch.stocks))
            stocks[stock] = batch.positions[stock] = ((359.9 + dra) % 360, -0.5 + ddec)
            store.ingest(batch)
        for radius in (0.0, 0.1, 0.2, 0.8, 1.0, 5.0):
            expected = sorted((angular_distance(359.9, -0.5, *where), stock) for stock, where in stocks.items()
                              if angular_distance(359.9, -0.5, *where) <= radius)
            found = store.cone_search(359.9, -0.5, radius)
            assert [(stock, round(distance, 9)) for stock, _, _, distance in found] == [
                (stock, round(distance, 9)) for distance, stock in expected]
        assert [row[0] for row in store.cone_search(-0.1, -0.5, 1.0)] == [row[0] for row in store.cone_search(359.9, -0.5, 1.0)]
        in_a = [stock for stock, _, _, _ in store.cone_search(359.9, -0.5, 5.0, channels=["A"])]
        assert in_a and all(store.get_stock(stock).channels == ("A",) for stock in in_a)  # type: ignore[union-attr]
        assert store.cone_search(359.9, -0.5, 5.0, channels=[]) == []
        assert len(store.cone_search(359.9, -0.5, 5.0, limit=2)) == 2
        with pytest.raises(ValueError, match="radius"):
            store.cone_search(0.0, 0.0, 5.5)

    def test_latest_stocks(self, store: Store) -> None:
        run = self.run_id(store)
        stocks: list[int] = []
        for i in range(5):
            name = f"ZTF24new{i}"
            batch = alert_batch(run, name, 500 + i, [datapoint(name, 0)], channels=("A",) if i != 2 else ("B",))
            batch.stocks = {stock: 2000.0 + i for stock in batch.stocks}
            store.ingest(batch)
            stocks.extend(batch.stocks)
        newest_first = [stocks[i] for i in (4, 3, 1, 0)]
        assert store.latest_stocks(["A"]) == [(stock, 2000.0 + stocks.index(stock)) for stock in newest_first]
        assert [s for s, _ in store.latest_stocks(["A"], limit=2, offset=1)] == newest_first[1:3]
        assert [s for s, _ in store.latest_stocks(["A", "B"], limit=3)] == [stocks[4], stocks[3], stocks[2]]
        assert store.latest_stocks([]) == [] and store.latest_stocks(["C"]) == []

    # --- T2 tickets ------------------------------------------------------------------------
    def test_claim_order_limit_and_channels(self, store: Store) -> None:
        run = self.run_id(store)
        self.ingest_tickets(store, run, 5, channels=("A",))
        store.ingest(alert_batch(run, "ZTF24b", 99, [datapoint("ZTF24b", 0)], channels=("B",)))
        first = store.claim_tickets(OWNER_A, 2, 60)
        assert [t.attempts for t in first] == [1, 1] and {t.status for t in first} == {"running"}
        second = store.claim_tickets(OWNER_A, 10, 60, ["B"])
        assert [t.channel for t in second] == ["B"]
        assert store.next_ticket_time(["B"]) == pytest.approx(time.time() + 60, abs=5)  # B's only ticket is leased
        assert store.next_ticket_time(["C"]) is None
        assert store.next_ticket_time(["A", "B"]) <= time.time()  # type: ignore[operator]  # A's pending are due
        rest = store.claim_tickets(OWNER_B, 10, 60, ["A", "C"])
        ids = [t.id for t in first + rest]
        assert ids == sorted(ids) and len(set(ids)) == 5 and {t.channel for t in rest} == {"A"}
        assert store.claim_tickets(OWNER_B, 10, 60) == []
        assert store.ticket_status() == {"running": 6}

    def test_finish_ok_and_error(self, store: Store) -> None:
        run = self.run_id(store)
        states = self.ingest_tickets(store, run, 2)
        good, bad = store.claim_tickets(OWNER_A, 10, 60)
        assert store.finish_ticket(good, ok_result(good, run, {"ndet": 3}), OWNER_A)
        error = Result(bad.unit, bad.trace, "state", bad.link, bad.stock, {"exception": "ValueError"}, "error", run)
        assert store.finish_ticket(bad, error, OWNER_A)
        assert store.ticket_status() == {"done": 1, "failed": 1}
        assert store.ticket_states(good.trace, "state", states[0]) == ["done"]
        assert store.ticket_states(good.trace, "state", "nope") == []
        assert not store.finish_ticket(good, ok_result(good, run), OWNER_A)  # already finished
        results = store.results()
        assert [(r.link, r.status, r.body) for _, r in results] == [
            (states[0], "ok", {"ndet": 3}), (states[1], "error", {"exception": "ValueError"})]
        assert store.next_ticket_time() is None

    def test_results_order_and_filters(self, store: Store) -> None:
        run = self.run_id(store)
        other_run = self.run_id(store)
        states = self.ingest_tickets(store, run, 3)
        tickets = store.claim_tickets(OWNER_A, 10, 60)
        for ticket in reversed(tickets):
            store.finish_ticket(ticket, ok_result(ticket, other_run if ticket is tickets[0] else run), OWNER_A)
        results = store.results()
        ids = [i for i, _ in results]
        assert ids == sorted(ids) and [r.link for _, r in results] == list(reversed(states))
        assert all(r.created > 0 and r.trace == "t" * 64 and r.link_kind == "state" for _, r in results)
        assert [r.link for _, r in store.results(stock=tickets[1].stock)] == [states[1]]
        assert [r.link for _, r in store.results(link=states[2])] == [states[2]]
        assert [r.link for _, r in store.results(run=other_run)] == [states[0]]
        assert len(store.results(unit="T2Unit", run=run)) == 2
        assert store.results(unit="Other") == []
        assert store.get_result(ids[0]) == results[0][1]
        assert store.get_result(ids[-1] + 1000) is None

    def test_leases_and_releasing_a_gone_workers_tickets(self, store: Store) -> None:
        run = self.run_id(store)
        self.ingest_tickets(store, run, 5)
        assert store.leases() == []
        mine = store.claim_tickets(OWNER_A, 2, 60)
        theirs = store.claim_tickets(OWNER_B, 2, 120)
        leases = store.leases()
        assert [(owner, count) for owner, count, _ in leases] == [(OWNER_A, 2), (OWNER_B, 2)]
        assert leases[0][2] == pytest.approx(time.time() + 60, abs=5)
        assert store.release_tickets(OWNER_A) == 2 and store.release_tickets("host-c:3") == 0
        assert [owner for owner, _, _ in store.leases()] == [OWNER_B]
        pending = [row[0] for row in store.tickets("pending")]
        assert sorted(pending) == sorted([t.id for t in mine] + [pending[-1]]) and len(pending) == 3
        again = store.claim_tickets(OWNER_B, 10, 60)
        assert sorted(t.id for t in again) == sorted(pending)
        assert {t.attempts for t in again if t.id in {m.id for m in mine}} == {1}  # as if never claimed
        assert not store.finish_ticket(mine[0], ok_result(mine[0], run), OWNER_A)
        assert store.finish_ticket(theirs[0], ok_result(theirs[0], run), OWNER_B)

    def test_lease_expiry_and_lost_lease(self, store: Store) -> None:
        run = self.run_id(store)
        self.ingest_tickets(store, run, 1)
        (mine,) = store.claim_tickets(OWNER_A, 10, 0.3)
        assert store.claim_tickets(OWNER_B, 10, 60) == []  # leased
        due = store.next_ticket_time()
        assert due is not None and due == pytest.approx(time.time() + 0.3, abs=0.3)
        time.sleep(0.4)
        (theirs,) = store.claim_tickets(OWNER_B, 10, 60)
        assert (theirs.id, theirs.attempts) == (mine.id, 2)
        assert not store.finish_ticket(mine, ok_result(mine, run), OWNER_A)  # the lease was lost: nothing written
        assert store.results() == []
        store.retry_ticket(mine, "late", 0.0, OWNER_A)  # not the owner any more: no effect
        assert store.ticket_status() == {"running": 1}
        assert store.finish_ticket(theirs, ok_result(theirs, run), OWNER_B)
        assert len(store.results()) == 1 and store.ticket_status() == {"done": 1}

    def test_retry_and_backoff(self, store: Store) -> None:
        run = self.run_id(store)
        self.ingest_tickets(store, run, 1)
        (ticket,) = store.claim_tickets(OWNER_A, 10, 60)
        store.retry_ticket(ticket, "Traceback: ValueError", time.time() + 0.3, OWNER_A)
        assert store.claim_tickets(OWNER_A, 10, 60) == []  # not due yet
        assert store.ticket_status() == {"pending": 1}
        assert store.tickets("pending")[0][3:] == ("pending", 1, "Traceback: ValueError")
        due = store.next_ticket_time()
        assert due is not None and due > time.time()
        time.sleep(0.35)
        (again,) = store.claim_tickets(OWNER_B, 10, 60)
        assert again.attempts == 2
        store.retry_ticket(again, "waiting for dependencies", 0.0, OWNER_B, counts=False)
        (third,) = store.claim_tickets(OWNER_A, 10, 60)
        assert third.attempts == 2  # a hand-back without counting
        assert store.finish_ticket(third, ok_result(third, run), OWNER_A)

    def test_concurrent_claims_are_disjoint(self, store: Store, open_extra: Callable[[], Store]) -> None:
        run = self.run_id(store)
        self.ingest_tickets(store, run, 120)
        claimed: dict[str, list[int]] = {}
        stores = [open_extra() for _ in range(4)]

        def claim(worker: int) -> None:
            owner = f"worker-{worker}"
            got = claimed.setdefault(owner, [])
            while tickets := stores[worker].claim_tickets(owner, 7, 60):
                for ticket in tickets:
                    assert stores[worker].finish_ticket(ticket, ok_result(ticket, run), owner)
                    got.append(ticket.id)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [i for ids in claimed.values() for i in ids]
        assert len(everything) == len(set(everything)) == 120
        assert len(store.results()) == 120 and store.ticket_status() == {"done": 120}

    # --- T3 --------------------------------------------------------------------------------
    def test_reports(self, store: Store) -> None:
        run = self.run_id(store)
        store.add_report(run, "CH", "T3TableReport", "t" * 64, {"rows": 2, "table": [{"a": 1}, {"a": None}]})
        store.add_report(run, None, "T3JsonExport", "u" * 64, {"written": "x.json"})
        assert store.reports(run) == [
            ("CH", "T3TableReport", {"rows": 2, "table": [{"a": 1}, {"a": None}]}),
            (None, "T3JsonExport", {"written": "x.json"})]
        assert store.counts()["reports"] == 2
        assert store.reports(run + 1) == []

    def test_a_report_journals_its_stocks_once_per_state(self, store: Store) -> None:
        run = self.run_id(store)

        def lines(stock: int, state: str) -> list[JournalEntry]:
            return [JournalEntry(stock=stock, tier=3, action="reported", channel="CH", trace="t" * 64, run=run,
                                 detail={"unit": "Push", "state": state})]
        store.add_report(run, "CH", "Push", "t" * 64, {"sent": 1}, lines(1, "a" * 64))
        store.add_report(run, "CH", "Push", "t" * 64, {"sent": 1}, lines(1, "a" * 64))  # the same state again
        store.add_report(run, "CH", "Push", "t" * 64, {"sent": 1}, lines(1, "b" * 64))
        assert [(e.tier, e.action, e.run, e.detail["state"]) for e in store.journal(1)] == [
            (3, "reported", run, "a" * 64), (3, "reported", run, "b" * 64)]
        assert store.counts()["reports"] == 3
