"""The schema of the SQL stores, in one place for every SQL backend: its version, its tables in
SQL that SQLite and PostgreSQL share, the tables the database keeps immutable, and the migrations
that take an older store to this version (see `ampel_core.sql_store.SqlStore.create_schema` for the
policy: older stores are upgraded when opened, newer ones refused).
"""

from __future__ import annotations

__all__ = ["IMMUTABLE_TABLES", "MIGRATIONS", "SCHEMA_VERSION", "TABLES"]

SCHEMA_VERSION = 3  # 2: datapoints keyed by (stock, id); a SQLite store keeps alert blobs in a pack file
#                    3: stock positions with a HEALPix index (cone search), indexes for the newest stocks of a channel

# MIGRATIONS[n]: the statements that take a schema from version n to n + 1, in the shared SQL of
# `TABLES` ({serial} and {blob} are filled in per backend). Version 1 stores (before the datapoint
# key changed) have no upgrade path: re-ingest them.
MIGRATIONS: dict[int, list[str]] = {}

# a stock's position: the latest ingested alert's (`ampel_core.sky`), with its nested HEALPix index
# of order `ampel_core.sky.ORDER`; stocks ingested before version 3 get one with their next alert
_POSITIONS = """
CREATE TABLE IF NOT EXISTS stock_positions (stock BIGINT PRIMARY KEY, ra DOUBLE PRECISION NOT NULL,
    dec DOUBLE PRECISION NOT NULL, healpix BIGINT NOT NULL, updated DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS stock_positions_healpix ON stock_positions (healpix);
CREATE INDEX IF NOT EXISTS stocks_updated ON stocks (updated);
CREATE INDEX IF NOT EXISTS stock_channels_channel ON stock_channels (channel, stock)"""

MIGRATIONS[2] = [statement.strip() for statement in _POSITIONS.split(";")]


TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (id {serial}, job_digest TEXT NOT NULL, job TEXT NOT NULL, environment TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION, status TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS traces (id TEXT PRIMARY KEY, unit TEXT NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stocks (id BIGINT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS stock_names (stock BIGINT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (stock, name));
CREATE INDEX IF NOT EXISTS stock_names_name ON stock_names (name);
CREATE TABLE IF NOT EXISTS stock_channels (stock BIGINT NOT NULL, channel TEXT NOT NULL, PRIMARY KEY (stock, channel));
CREATE TABLE IF NOT EXISTS stock_tags (stock BIGINT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (stock, tag));
CREATE TABLE IF NOT EXISTS alerts (id BIGINT PRIMARY KEY, stock BIGINT NOT NULL, run BIGINT NOT NULL, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_blobs (alert BIGINT NOT NULL, name TEXT NOT NULL, data {blob} NOT NULL, PRIMARY KEY (alert, name));
CREATE TABLE IF NOT EXISTS datapoints (id BIGINT NOT NULL, stock BIGINT NOT NULL, tags TEXT NOT NULL, body TEXT NOT NULL,
    alert BIGINT, run BIGINT, PRIMARY KEY (stock, id));
CREATE TABLE IF NOT EXISTS states (id TEXT PRIMARY KEY, stock BIGINT NOT NULL, datapoints TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channel_states (seq {serial}, stock BIGINT NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL,
    alert BIGINT, run BIGINT, created DOUBLE PRECISION NOT NULL, UNIQUE (channel, state));
CREATE INDEX IF NOT EXISTS channel_states_stock ON channel_states (stock, channel);
CREATE TABLE IF NOT EXISTS tickets (id {serial}, unit TEXT NOT NULL, trace TEXT NOT NULL, link_kind TEXT NOT NULL,
    link TEXT NOT NULL, version TEXT NOT NULL, stock BIGINT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, not_before DOUBLE PRECISION NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION,
    owner TEXT, error TEXT, run BIGINT, created DOUBLE PRECISION NOT NULL, UNIQUE (trace, link_kind, link, version));
CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status, not_before);
CREATE TABLE IF NOT EXISTS results (id {serial}, ticket BIGINT, unit TEXT NOT NULL, trace TEXT NOT NULL,
    link_kind TEXT NOT NULL, link TEXT NOT NULL, stock BIGINT NOT NULL, status TEXT NOT NULL, body TEXT,
    run BIGINT, created DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS results_link ON results (link, trace);
CREATE INDEX IF NOT EXISTS results_stock ON results (stock);
CREATE TABLE IF NOT EXISTS journal (id {serial}, stock BIGINT NOT NULL, tier INTEGER NOT NULL, action TEXT NOT NULL,
    channel TEXT, trace TEXT, run BIGINT, alert BIGINT, detail TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
    dedup TEXT UNIQUE);
CREATE INDEX IF NOT EXISTS journal_stock ON journal (stock);
CREATE TABLE IF NOT EXISTS rejected (alert BIGINT NOT NULL, channel TEXT NOT NULL, stock BIGINT NOT NULL, trace TEXT,
    code INTEGER NOT NULL, reason TEXT NOT NULL, run BIGINT, PRIMARY KEY (alert, channel));
CREATE TABLE IF NOT EXISTS failed_alerts (alert BIGINT NOT NULL, channel TEXT NOT NULL, stock BIGINT NOT NULL, trace TEXT,
    error TEXT NOT NULL, run BIGINT, PRIMARY KEY (alert, channel));
CREATE TABLE IF NOT EXISTS quarantine (id TEXT PRIMARY KEY, origin TEXT NOT NULL, reason TEXT NOT NULL,
    payload {blob} NOT NULL, run BIGINT);
CREATE TABLE IF NOT EXISTS reports (id {serial}, run BIGINT NOT NULL, channel TEXT, unit TEXT NOT NULL, trace TEXT NOT NULL,
    body TEXT, created DOUBLE PRECISION NOT NULL);
""" + _POSITIONS + ";\n"

IMMUTABLE_TABLES = ("datapoints", "states", "results", "traces", "alerts", "journal", "channel_states")
