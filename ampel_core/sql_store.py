"""`SqlStore`: the public base of SQL store backends, and the schema they share.

`SqlStore` implements the `ampel_core.store.Store` protocol over a DB-API connection in SQL that
SQLite and PostgreSQL share; a backend supplies the connection, the schema dialect, ticket
claiming and schema locking (see the class). Immutable tables (datapoints, states, results,
traces, alerts, journal, channel states) refuse UPDATE and DELETE in the database itself
(triggers). Every write of a T0 batch happens in one transaction; inserts are idempotent (``ON
CONFLICT DO NOTHING``), so re-ingesting an alert creates nothing new.

The schema (`ampel_core.sql_schema`: its version, recorded in the ``meta`` table, its tables and
its migrations) is the same for every SQL backend, with one policy: a store older than the code is upgraded when it is opened, by the
statements in `MIGRATIONS` (under the backend's schema lock, so concurrent openers upgrade it once),
or refused with a `StoreError` when no path is known; a store newer than the code is refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from ampel_core import sky, sql_schema
from ampel_core.models import DataPoint, JournalEntry, Result, Run, State, Stock, Trace
from ampel_core.store import IngestBatch, Quarantined, StoreError, Ticket, dumps, dumps_fast

__all__ = ["SqlStore", "journal_key"]

_INTEGER = re.compile(r"-?[0-9]{1,20}")

class SqlStore:
    """The public base of SQL store backends: the whole `Store` protocol in SQL that SQLite and
    PostgreSQL share, and the schema's creation and upgrades (`create_schema`).

    A backend sets ``placeholder`` (its DB-API parameter style) and ``claim_lock`` (appended to the
    ticket-claiming SELECT), and implements `connect`, `dialect`, `schema_statements` and
    `tables`; it may override `transaction` and `execute` (how statements run on its
    connection), `lock_schema` and `label`.
    """

    placeholder = "?"
    claim_lock = ""  # appended to the ticket-claiming SELECT (PostgreSQL: skip rows others are claiming)
    write_behind = False  # T0 writes a batch in a writer thread while it decodes the next (`run_t0`)

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.url, self.read_only = url, read_only
        self.conn = self.connect()
        try:
            self.check_schema() if read_only else self.create_schema()
        except BaseException:
            self.conn.close()
            raise

    # --- backend-specific ------------------------------------------------------------------
    def connect(self) -> Any:
        raise NotImplementedError

    def schema_statements(self) -> list[str]:
        """Every statement that creates the schema (tables, indexes, immutability triggers)."""
        raise NotImplementedError

    def dialect(self, statement: str) -> str:
        """A statement of the shared SQL with this backend's types filled in."""
        raise NotImplementedError

    def label(self) -> str:
        """The store's URL for messages (without secrets)."""
        return self.url

    def tables(self, cursor: Any) -> set[str]:
        """The names of the tables in the store's database (PostgreSQL: in its schema)."""
        raise NotImplementedError

    def refuse_foreign(self, tables: set[str]) -> None:
        """StoreError when a database without AMPEL's schema holds tables: AMPEL never spreads its
        tables into another application's database."""
        if tables and "meta" not in tables:
            foreign = sorted(tables)
            raise StoreError(f"{self.label()} is not an AMPEL store and not empty (it holds the tables "
                             f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}): use an empty database "
                             "(or schema) or a new file for the store")

    def lock_schema(self, cursor: Any) -> None:
        """Inside the schema transaction: keep other openers out until it commits (when the
        transaction itself does not)."""

    # --- plumbing --------------------------------------------------------------------------
    def sql(self, query: str) -> str:
        return query if self.placeholder == "?" else query.replace("?", self.placeholder)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        cursor = self.conn.cursor()
        try:
            yield cursor
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            cursor.close()

    def execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as cursor:
            cursor.execute(self.sql(query), params)
            return list(cursor.fetchall()) if cursor.description else []

    def stored_version(self, cursor: Any) -> int:
        """The schema version recorded in ``meta``; 0 for an empty database."""
        if "meta" not in self.tables(cursor):
            return 0
        cursor.execute(self.sql("SELECT value FROM meta WHERE key = ?"), ("schema_version",))
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def check_schema(self) -> None:
        """For a read-only store: StoreError unless it is an AMPEL store of this schema version."""
        cursor = self.conn.cursor()
        try:
            version = self.stored_version(cursor)
        finally:
            cursor.close()
        if version == 0:
            raise StoreError(f"{self.label()} is not an AMPEL store (it holds no AMPEL schema): check the URL")
        if version != sql_schema.SCHEMA_VERSION:
            relation = "newer" if version > sql_schema.SCHEMA_VERSION else "older"
            raise StoreError(f"{self.label()} has store schema version {version}, {relation} than this ampel-core's "
                             f"({sql_schema.SCHEMA_VERSION}): open it once with a writing command (`ampel job`) to upgrade it, or "
                             "upgrade ampel-core")

    def create_schema(self) -> None:
        """Create the schema in an empty database, upgrade an older one, refuse a newer one (see
        the module docstring). A store at the current version is only read, never written."""
        cursor = self.conn.cursor()
        try:
            version = self.stored_version(cursor)
        finally:
            cursor.close()
        if version == sql_schema.SCHEMA_VERSION:
            return
        with self.transaction() as cursor:
            self.lock_schema(cursor)
            version = self.stored_version(cursor)  # another opener may have got here first
            if version > sql_schema.SCHEMA_VERSION:
                raise StoreError(f"{self.label()} has store schema version {version}, newer than this ampel-core "
                                 f"understands ({sql_schema.SCHEMA_VERSION}): upgrade ampel-core (and the store's plugin)")
            if version == sql_schema.SCHEMA_VERSION:
                return
            if version == 0:
                self.refuse_foreign(self.tables(cursor))
                statements = self.schema_statements()
            else:
                missing = [step for step in range(version, sql_schema.SCHEMA_VERSION) if step not in sql_schema.MIGRATIONS]
                if missing:
                    raise StoreError(f"{self.label()} has store schema version {version}, older than this ampel-core's "
                                     f"({sql_schema.SCHEMA_VERSION}), and no upgrade path is known (no migration from version "
                                     f"{missing[0]}): ingest into a new store")
                statements = [self.dialect(statement) for step in range(version, sql_schema.SCHEMA_VERSION)
                              for statement in sql_schema.MIGRATIONS[step]]
            for statement in statements:
                cursor.execute(statement)
            cursor.execute(self.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                                    "SET value = excluded.value"), ("schema_version", str(sql_schema.SCHEMA_VERSION)))

    def close(self) -> None:
        self.conn.close()

    # --- runs and traces -------------------------------------------------------------------
    def start_run(self, job_digest: str, job: dict[str, Any], environment: dict[str, Any]) -> int:
        rows = self.execute("INSERT INTO runs (job_digest, job, environment, started, status) VALUES (?, ?, ?, ?, ?) "
                            "RETURNING id", (job_digest, dumps(job), dumps(environment), time.time(), "running"))
        return int(rows[0][0])

    def end_run(self, run: int, status: str, summary: dict[str, Any]) -> None:
        self.execute("UPDATE runs SET ended = ?, status = ?, summary = ? WHERE id = ?",
                     (time.time(), status, dumps(summary), run))

    def _run(self, row: tuple[Any, ...]) -> Run:
        return Run(id=row[0], job_digest=row[1], job=orjson.loads(row[2]), environment=orjson.loads(row[3]),
                   started=row[4], ended=row[5], status=row[6], summary=orjson.loads(row[7]) if row[7] else {})

    def get_run(self, run: int) -> Run | None:
        rows = self.execute("SELECT id, job_digest, job, environment, started, ended, status, summary FROM runs WHERE id = ?", (run,))
        return self._run(rows[0]) if rows else None

    def runs(self) -> list[Run]:
        rows = self.execute("SELECT id, job_digest, job, environment, started, ended, status, summary FROM runs ORDER BY id")
        return [self._run(row) for row in rows]

    def add_traces(self, traces: Iterable[Trace]) -> None:
        with self.transaction() as cursor:
            cursor.executemany(self.sql("INSERT INTO traces (id, unit, document) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                               [(t.id, t.unit, dumps(t.document())) for t in traces])

    def get_trace(self, trace: str) -> Trace | None:
        rows = self.execute("SELECT id, document FROM traces WHERE id = ?", (trace,))
        return Trace(id=rows[0][0], **orjson.loads(rows[0][1])) if rows else None

    # --- T0 --------------------------------------------------------------------------------
    def stored_datapoints(self, stocks: Iterable[int]) -> dict[int, dict[int, tuple[str, ...]]]:
        """The ids and tags of the stored datapoints of these stocks."""
        found: dict[int, dict[int, tuple[str, ...]]] = {}
        stocks = list(stocks)
        with self.transaction() as cursor:
            for start in range(0, len(stocks), 500):
                chunk = stocks[start:start + 500]
                cursor.execute(self.sql(f"SELECT stock, id, tags FROM datapoints WHERE stock IN ({','.join('?' * len(chunk))})"), chunk)
                decoded: dict[str, tuple[str, ...]] = {}
                for stock, dp, tags in cursor.fetchall():
                    found.setdefault(stock, {})[dp] = decoded.get(tags) or decoded.setdefault(tags, tuple(orjson.loads(tags)))
        return found

    def t0_decisions(self, alerts: Sequence[int], channels: Sequence[str]
                     ) -> dict[tuple[int, str], tuple[str, str | None, str | None]]:
        """What earlier runs decided for these alerts in these channels: (alert, channel) ->
        ('accepted' | 'rejected' | 'failed', the filter's trace, the state it made when accepted).
        Only alerts already stored are looked up further, so a batch of new alerts costs one query."""
        found: dict[tuple[int, str], tuple[str, str | None, str | None]] = {}
        with self.transaction() as cursor:
            for start in range(0, len(alerts), 500):
                chunk = list(alerts[start:start + 500])
                marks = ",".join("?" * len(chunk))
                cursor.execute(self.sql(f"SELECT id FROM alerts WHERE id IN ({marks})"), chunk)
                known = [row[0] for row in cursor.fetchall()]
                if not known:
                    continue
                marks = ",".join("?" * len(known))
                for table, kind in (("rejected", "rejected"), ("failed_alerts", "failed")):
                    cursor.execute(self.sql(f"SELECT alert, channel, trace FROM {table} WHERE alert IN ({marks})"), known)
                    found.update(((alert, channel), (kind, trace, None)) for alert, channel, trace in cursor.fetchall())
                keys = {f"t0:{alert}:{channel}:accepted": (alert, channel) for alert in known for channel in channels}
                names = list(keys)
                for begin in range(0, len(names), 500):
                    part = names[begin:begin + 500]
                    cursor.execute(self.sql(f"SELECT dedup, trace, detail FROM journal WHERE dedup IN "
                                            f"({','.join('?' * len(part))})"), part)
                    found.update((keys[key], ("accepted", trace, orjson.loads(detail).get("state")))
                                 for key, trace, detail in cursor.fetchall())
        return found

    def insert_rows(self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    conflict: str = "ON CONFLICT DO NOTHING") -> None:
        """Insert ``rows`` (values of ``columns``, in order) into ``table`` on ``cursor``'s
        transaction, with the ``conflict`` clause. Here: one prepared statement executed per row
        (``executemany``: SQLite runs it in-process, with no round trips). A backend may send the
        rows in fewer statements (PostgreSQL: one per table, the columns as arrays), with the same
        result: rows inserted in their order, conflicts resolved as the clause says."""
        if rows:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(self.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}"), rows)

    def ingest(self, batch: IngestBatch, new_datapoints: bool = False) -> None:
        """Write one T0 batch in one transaction (idempotent). ``new_datapoints``: the datapoint
        rows go in without ``ON CONFLICT DO NOTHING``, so that a row already stored is an error
        (the backend's unique violation) that rolls the batch back. The runtime sends only
        datapoints its store did not hold when the batch began, so this holds unless another writer
        stored the same ones meanwhile; a backend whose conflict clause costs (PostgreSQL's
        speculative insertion) writes them so first and, on that error, the whole batch again with
        the clause."""
        with self.transaction() as cursor:
            def many(table: str, columns: str, rows: Sequence[Sequence[Any]], conflict: str = "ON CONFLICT DO NOTHING") -> None:
                if rows:
                    self.insert_rows(cursor, table, columns.split(), rows, conflict)

            many("quarantine", "id origin reason payload run",
                 [(canonical_sha(origin, payload), origin, reason, payload, batch.run)
                  for origin, reason, payload in batch.quarantined])
            many("rejected", "alert channel stock trace code reason run", [(*row, batch.run) for row in batch.rejected])
            many("failed_alerts", "alert channel stock trace error run", [(*row, batch.run) for row in batch.failed])
            many("stocks", "id created updated", [(stock, now, now) for stock, now in batch.stocks.items()],
                 "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated")
            if batch.positions:
                stocks = sorted(batch.positions)
                ra, dec = [batch.positions[s][0] for s in stocks], [batch.positions[s][1] for s in stocks]
                many("stock_positions", "stock ra dec healpix updated",
                     [(stock, r, d, pixel, batch.stocks.get(stock) or time.time()) for stock, r, d, pixel
                      in zip(stocks, ra, dec, sky.healpix_indexes(ra, dec), strict=True)],
                     "ON CONFLICT (stock) DO UPDATE SET ra = excluded.ra, dec = excluded.dec, healpix = excluded.healpix, "
                     "updated = excluded.updated")
            many("stock_names", "stock name", sorted(batch.names))
            many("stock_channels", "stock channel", sorted(batch.channels))
            many("stock_tags", "stock tag", sorted(batch.tags))
            many("alerts", "id stock run origin", [(alert, stock, batch.run, origin) for alert, stock, origin in batch.alerts])
            self._store_blobs(cursor, batch.blobs)
            tags: dict[tuple[str, ...], str] = {}  # formats reuse a few tag tuples: encode each once
            many("datapoints", "id stock tags body alert run",
                 [(dp.id, dp.stock, tags.get(dp.tags) or tags.setdefault(dp.tags, dumps(dp.tags)), dumps_fast(dp.body()),
                   alert, batch.run) for dp, alert in batch.datapoints], "" if new_datapoints else "ON CONFLICT DO NOTHING")
            many("states", "id stock datapoints", [(s.id, s.stock, dumps(s.datapoints)) for s in batch.states.values()])
            now = time.time()
            many("channel_states", "stock channel state alert run created",
                 [(stock, channel, state, alert, batch.run, now) for stock, channel, state, alert in batch.channel_states])
            many("tickets", "unit trace link_kind link version stock channel status run created",
                 [(t.unit, t.trace, t.link_kind, t.link, t.version, t.stock, t.channel, "pending", batch.run, now)
                  for t in batch.tickets])
            self._journal(cursor, batch.journal)

    def _store_blobs(self, cursor: Any, blobs: Sequence[tuple[int, str, bytes]]) -> None:
        if blobs:
            self.insert_rows(cursor, "alert_blobs", ("alert", "name", "data"), blobs)

    def _journal(self, cursor: Any, entries: Sequence[JournalEntry], dedup: Sequence[str | None] | None = None) -> None:
        if not entries:
            return
        keys = dedup or [journal_key(e) for e in entries]
        self.insert_rows(cursor, "journal", ("stock", "tier", "action", "channel", "trace", "run", "alert", "detail", "time", "dedup"),
                         [(e.stock, e.tier, e.action, e.channel, e.trace, e.run, e.alert, dumps(e.detail), e.time or time.time(), key)
                          for e, key in zip(entries, keys, strict=True)])

    # --- reading ---------------------------------------------------------------------------
    def _datapoints(self, rows: Iterable[tuple[Any, ...]]) -> list[DataPoint]:
        decoded: dict[str, tuple[str, ...]] = {}  # a stock's datapoints share a few tag lists: decode each once
        return [DataPoint.from_body(dp, stock, decoded.get(tags) or decoded.setdefault(tags, tuple(orjson.loads(tags))),
                                    orjson.loads(body)) for dp, stock, tags, body in rows]

    def get_datapoints(self, stock: int, ids: Iterable[int]) -> list[DataPoint]:
        """The datapoints of ``stock`` with these ids, in the order of ``ids`` (unknown ids left out)."""
        ids = list(ids)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows += self.execute("SELECT id, stock, tags, body FROM datapoints WHERE stock = ? AND id IN "
                                 f"({','.join('?' * len(chunk))})", [stock, *chunk])
        by_id = {dp.id: dp for dp in self._datapoints(rows)}
        return [by_id[i] for i in ids if i in by_id]

    def stock_datapoints(self, stock: int) -> list[DataPoint]:
        return self._datapoints(self.execute("SELECT id, stock, tags, body FROM datapoints WHERE stock = ? ORDER BY id", (stock,)))

    def get_state(self, state: str) -> State | None:
        rows = self.execute("SELECT id, stock, datapoints FROM states WHERE id = ?", (state,))
        return State(rows[0][0], rows[0][1], tuple(orjson.loads(rows[0][2]))) if rows else None

    def get_stock(self, stock: int) -> Stock | None:
        rows = self.execute("SELECT id, created, updated FROM stocks WHERE id = ?", (stock,))
        if not rows:
            return None
        names = tuple(r[0] for r in self.execute("SELECT name FROM stock_names WHERE stock = ? ORDER BY name", (stock,)))
        channels = tuple(r[0] for r in self.execute("SELECT channel FROM stock_channels WHERE stock = ? ORDER BY channel", (stock,)))
        tags = tuple(r[0] for r in self.execute("SELECT tag FROM stock_tags WHERE stock = ? ORDER BY tag", (stock,)))
        return Stock(id=stock, names=names, channels=channels, tags=tags, created=rows[0][1], updated=rows[0][2])

    def find_stock(self, name: str) -> int | None:
        rows = self.execute("SELECT stock FROM stock_names WHERE name = ?", (name,))
        if rows:
            return int(rows[0][0])
        # a 64-bit id in ASCII digits, else no stock (and no driver error); str.isdigit() holds
        # for '²', which int() refuses
        if (_INTEGER.fullmatch(name) and -2**63 <= int(name) < 2**63
                and self.execute("SELECT id FROM stocks WHERE id = ?", (int(name),))):
            return int(name)
        return None

    def channel_states(self, stock: int, channel: str | None = None) -> list[tuple[str, str, int | None, float]]:
        """(channel, state id, alert, time) of each state a channel saw, oldest first."""
        query = "SELECT channel, state, alert, created FROM channel_states WHERE stock = ?"
        params: list[Any] = [stock]
        if channel:
            query += " AND channel = ?"
            params.append(channel)
        return [tuple(row) for row in self.execute(query + " ORDER BY seq", params)]

    def _result(self, row: tuple[Any, ...]) -> tuple[int, Result]:
        return row[0], Result(unit=row[1], trace=row[2], link_kind=row[3], link=row[4], stock=row[5], status=row[6],
                              body=orjson.loads(row[7]) if row[7] is not None else None, run=row[8], created=row[9])

    def results(self, stock: int | None = None, link: str | None = None, run: int | None = None,
                unit: str | None = None) -> list[tuple[int, Result]]:
        """(result id, result) matching all given criteria, oldest first."""
        conditions, params = [], []
        for column, value in (("stock", stock), ("link", link), ("run", run), ("unit", unit)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self.execute("SELECT id, unit, trace, link_kind, link, stock, status, body, run, created FROM results"
                            f"{where} ORDER BY id", params)
        return [self._result(row) for row in rows]

    def get_result(self, result_id: int) -> Result | None:
        rows = self.execute("SELECT id, unit, trace, link_kind, link, stock, status, body, run, created FROM results "
                            "WHERE id = ?", (result_id,))
        return self._result(rows[0])[1] if rows else None

    def journal(self, stock: int) -> list[JournalEntry]:
        rows = self.execute("SELECT stock, tier, action, channel, trace, run, alert, detail, time FROM journal "
                            "WHERE stock = ? ORDER BY id", (stock,))
        return [JournalEntry(stock=r[0], tier=r[1], action=r[2], channel=r[3], trace=r[4], run=r[5], alert=r[6],
                             detail=orjson.loads(r[7]), time=r[8]) for r in rows]

    def select_stocks(self, channel: str | None = None, tags: Sequence[str] = (),
                      updated_after: float | None = None, updated_before: float | None = None) -> list[int]:
        query, params = "SELECT s.id FROM stocks s", list[Any]()
        conditions = []
        if channel:
            conditions.append("EXISTS (SELECT 1 FROM stock_channels c WHERE c.stock = s.id AND c.channel = ?)")
            params.append(channel)
        for tag in tags:
            conditions.append("EXISTS (SELECT 1 FROM stock_tags t WHERE t.stock = s.id AND t.tag = ?)")
            params.append(tag)
        if updated_after is not None:
            conditions.append("s.updated >= ?")
            params.append(updated_after)
        if updated_before is not None:
            conditions.append("s.updated < ?")
            params.append(updated_before)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return [row[0] for row in self.execute(query + where + " ORDER BY s.id", params)]

    def datapoint_origin(self, stock: int, datapoint: int) -> tuple[int | None, int | None]:
        """(alert, run) that first stored this datapoint."""
        rows = self.execute("SELECT alert, run FROM datapoints WHERE stock = ? AND id = ?", (stock, datapoint))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def alert_origin(self, alert: int) -> tuple[str, int] | None:
        rows = self.execute("SELECT origin, run FROM alerts WHERE id = ?", (alert,))
        return (rows[0][0], rows[0][1]) if rows else None

    def quarantined(self, run: int | None = None) -> list[Quarantined]:
        """The quarantined records (of ``run``), by run and origin."""
        where, params = (" WHERE run = ?", (run,)) if run is not None else ("", ())
        rows = self.execute(f"SELECT id, origin, reason, payload, run FROM quarantine{where} ORDER BY run, origin", params)
        return [Quarantined(i, o, r, bytes(p), run) for i, o, r, p, run in rows]

    def alert_blobs(self, alert: int) -> dict[str, bytes]:
        """The binary parts (e.g. image cutouts) kept for an alert."""
        return {name: bytes(data) for name, data in self.execute("SELECT name, data FROM alert_blobs WHERE alert = ?", (alert,))}

    # --- the read API ----------------------------------------------------------------------
    def positions(self, stocks: Iterable[int]) -> dict[int, tuple[float, float]]:
        """(ra, dec) in degrees of those of ``stocks`` that have a position (`ampel_core.sky`)."""
        stocks, found = list(stocks), dict[int, tuple[float, float]]()
        for start in range(0, len(stocks), 500):
            chunk = stocks[start:start + 500]
            found.update((stock, (ra, dec)) for stock, ra, dec in self.execute(
                f"SELECT stock, ra, dec FROM stock_positions WHERE stock IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def cone_search(self, ra: float, dec: float, radius: float, channels: Sequence[str] | None = None,
                    limit: int = 1000) -> list[tuple[int, float, float, float]]:
        """(stock, ra, dec, distance) of the stocks within ``radius`` degrees (at most
        `ampel_core.sky.MAX_CONE_RADIUS`) of (ra, dec), nearest first (then by id), at most
        ``limit``; only stocks of ``channels`` when given (an empty list finds none). The HEALPix
        index narrows the rows read to a few index ranges; distances are measured here."""
        if channels is not None and not channels:
            return []
        ranges = sky.cone_ranges(ra, dec, radius)
        query = ("SELECT p.stock, p.ra, p.dec FROM stock_positions p WHERE ("
                 + " OR ".join("p.healpix BETWEEN ? AND ?" for _ in ranges) + ")")
        params: list[Any] = [bound for start, end in ranges for bound in (start, end - 1)]
        if channels is not None:
            query += (" AND EXISTS (SELECT 1 FROM stock_channels c WHERE c.stock = p.stock AND c.channel IN "
                      f"({','.join('?' * len(channels))}))")
            params += list(channels)
        found = [(stock, r, d, sky.angular_distance(ra, dec, r, d)) for stock, r, d in self.execute(query, params)]
        return sorted((row for row in found if row[3] <= radius), key=lambda row: (row[3], row[0]))[:limit]

    def latest_stocks(self, channels: Sequence[str], limit: int = 100, offset: int = 0) -> list[tuple[int, float]]:
        """(stock, time it was last updated) of the stocks of ``channels``, newest first (then by
        descending id), the page of ``limit`` rows after ``offset``."""
        if not channels:
            return []
        rows = self.execute("SELECT s.id, s.updated FROM stocks s WHERE EXISTS (SELECT 1 FROM stock_channels c WHERE "
                            f"c.stock = s.id AND c.channel IN ({','.join('?' * len(channels))})) "
                            "ORDER BY s.updated DESC, s.id DESC LIMIT ? OFFSET ?", (*channels, limit, offset))
        return [(int(stock), float(updated)) for stock, updated in rows]

    def counts(self) -> dict[str, int]:
        tables = ("stocks", "alerts", "datapoints", "states", "channel_states", "tickets", "results", "journal",
                  "rejected", "failed_alerts", "quarantine", "reports", "runs")
        return {table: int(self.execute(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in tables}

    # --- T2 --------------------------------------------------------------------------------
    def claim_tickets(self, owner: str, limit: int, lease: float, channels: Sequence[str] | None = None) -> list[Ticket]:
        """Lease up to ``limit`` claimable tickets (pending and due, or with an expired lease) in one
        statement, so that each ticket goes to one claimer."""
        now = time.time()
        channel_clause = f" AND channel IN ({','.join('?' * len(channels))})" if channels else ""
        rows = self.execute(
            "UPDATE tickets SET status = 'running', owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id IN "
            "(SELECT id FROM tickets WHERE ((status = 'pending' AND not_before <= ?) OR (status = 'running' AND lease_until < ?))"
            f"{channel_clause} ORDER BY id LIMIT ?{self.claim_lock}) "
            "RETURNING id, unit, trace, link_kind, link, version, stock, channel, attempts, status",
            (owner, now + lease, now, now, *(channels or ()), limit))
        return sorted((Ticket(*row) for row in rows), key=lambda t: t.id)

    def finish_ticket(self, ticket: Ticket, result: Result, owner: str) -> bool:
        """Store the result and close the ticket, unless the lease was lost to another worker
        (then nothing is written and False is returned)."""
        now = time.time()
        status = "done" if result.status == "ok" else "failed"
        with self.transaction() as cursor:
            cursor.execute(self.sql("UPDATE tickets SET status = ?, lease_until = NULL, error = ? WHERE id = ? AND owner = ? "
                                    "AND status = 'running'"),
                           (status, None if status == "done" else dumps(result.body), ticket.id, owner))
            if cursor.rowcount != 1:
                return False
            cursor.execute(self.sql("INSERT INTO results (ticket, unit, trace, link_kind, link, stock, status, body, run, created) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                           (ticket.id, result.unit, result.trace, result.link_kind, result.link, result.stock,
                            result.status, None if result.body is None else dumps(result.body), result.run, now))
            self._journal(cursor, [JournalEntry(stock=ticket.stock, tier=2, action=f"t2 {status}", channel=ticket.channel,
                                                trace=ticket.trace, run=result.run, detail={"unit": ticket.unit,
                                                "link": ticket.link, "attempt": ticket.attempts}, time=now)],
                          [f"t2:{ticket.id}:{status}"])
        return True

    def retry_ticket(self, ticket: Ticket, error: str, not_before: float, owner: str, counts: bool = True) -> None:
        """Put a claimed ticket back (after an error, or to wait for dependencies when not ``counts``)."""
        self.execute("UPDATE tickets SET status = 'pending', owner = NULL, lease_until = NULL, error = ?, not_before = ?, "
                     "attempts = attempts - ? WHERE id = ? AND owner = ?", (error, not_before, 0 if counts else 1, ticket.id, owner))

    def ticket_states(self, trace: str, link_kind: str, link: str) -> list[str]:
        """Statuses of the tickets of one unit instance on one link (any version)."""
        return [row[0] for row in self.execute("SELECT status FROM tickets WHERE trace = ? AND link_kind = ? AND link = ?",
                                               (trace, link_kind, link))]

    def ticket_status(self) -> dict[str, int]:
        return {status: int(n) for status, n in self.execute("SELECT status, COUNT(*) FROM tickets GROUP BY status")}

    def tickets(self, status: str | None = None) -> list[tuple[int, str, str, str, int, str | None]]:
        """(id, unit, link, status, attempts, error) of the tickets, in id order."""
        query = "SELECT id, unit, link, status, attempts, error FROM tickets"
        rows = self.execute(query + (" WHERE status = ? ORDER BY id" if status else " ORDER BY id"), (status,) if status else ())
        return [tuple(row) for row in rows]

    def next_ticket_time(self, channels: Sequence[str] | None = None) -> float | None:
        """When the next pending or leased ticket (of ``channels``, default all) becomes claimable
        (None: no open ticket)."""
        channel_clause = f" AND channel IN ({','.join('?' * len(channels))})" if channels else ""
        rows = self.execute("SELECT MIN(CASE WHEN status = 'pending' THEN not_before ELSE lease_until END) FROM tickets "
                            f"WHERE status IN ('pending', 'running'){channel_clause}", tuple(channels or ()))
        return rows[0][0] if rows and rows[0][0] is not None else None

    def leases(self) -> list[tuple[str, int, float]]:
        """(owner, tickets, when the last lease ends) of every worker holding leased tickets."""
        rows = self.execute("SELECT owner, COUNT(*), MAX(lease_until) FROM tickets WHERE status = 'running' "
                            "GROUP BY owner ORDER BY owner")
        return [(owner, int(count), float(until)) for owner, count, until in rows]

    def release_tickets(self, owner: str) -> int:
        """Hand back every ticket leased to ``owner`` (a worker known to be gone) as if it had never
        been claimed; how many."""
        return len(self.execute("UPDATE tickets SET status = 'pending', owner = NULL, lease_until = NULL, "
                                "attempts = attempts - 1 WHERE status = 'running' AND owner = ? RETURNING id", (owner,)))

    # --- T3 --------------------------------------------------------------------------------
    def add_report(self, run: int, channel: str | None, unit: str, trace: str, body: Any,
                   journal: Sequence[JournalEntry] = ()) -> None:
        """Store a T3 report and, in the same transaction, its stocks' ``journal`` lines (those of
        a stock and state already journaled by this unit configuration on this channel are kept once)."""
        with self.transaction() as cursor:
            cursor.execute(self.sql("INSERT INTO reports (run, channel, unit, trace, body, created) VALUES (?, ?, ?, ?, ?, ?)"),
                           (run, channel, unit, trace, dumps(body), time.time()))
            self._journal(cursor, journal, [f"t3:{e.trace}:{e.channel}:{e.stock}:{e.detail.get('state')}" for e in journal])

    def reports(self, run: int) -> list[tuple[str | None, str, Any]]:
        return [(c, u, orjson.loads(b)) for c, u, b in self.execute("SELECT channel, unit, body FROM reports WHERE run = ? ORDER BY id", (run,))]


def canonical_sha(origin: str, payload: bytes) -> str:
    import hashlib

    return hashlib.sha256(origin.encode() + b"\0" + payload).hexdigest()


def journal_key(entry: JournalEntry) -> str | None:
    """Deduplication key of T0/T1 journal entries, so re-ingesting an alert adds no line."""
    if entry.alert is None:
        return None
    return f"t{entry.tier}:{entry.alert}:{entry.channel}:{entry.action}"
