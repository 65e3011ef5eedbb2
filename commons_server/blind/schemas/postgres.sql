-- The blind store on PostgreSQL, schema version 2: the tables of sqlite.sql, in
-- their own schema (namespace) "blind_store" so they sit beside the Commons
-- document store in one database. BYTEA for BLOB, BIGINT where sums of bytes
-- outgrow 32 bits. A PostgreSQL store starts at version 2; a later version adds
-- postgres-N.sql (run in order by postgres.py), as sqlite.sql's change would add a
-- step to quotas.py / storage.py.
CREATE SCHEMA IF NOT EXISTS blind_store;
CREATE TABLE IF NOT EXISTS blind_store.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blind_store.logs (
    group_id  BYTEA PRIMARY KEY,
    last_seq  BIGINT NOT NULL DEFAULT 0,
    covers    BIGINT NOT NULL DEFAULT 0,
    bytes     BIGINT NOT NULL DEFAULT 0,
    envelopes BIGINT NOT NULL DEFAULT 0,
    retired   INTEGER NOT NULL DEFAULT 0,
    forward   BYTEA,
    owner     BYTEA,
    retired_day INTEGER
);
CREATE TABLE IF NOT EXISTS blind_store.envelopes (
    group_id BYTEA NOT NULL, seq BIGINT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (group_id, seq)
);
CREATE TABLE IF NOT EXISTS blind_store.snapshot_parts (
    group_id BYTEA NOT NULL, part INTEGER NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (group_id, part)
);
CREATE TABLE IF NOT EXISTS blind_store.charges (
    owner BYTEA PRIMARY KEY,
    bytes BIGINT NOT NULL DEFAULT 0,
    logs  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS logs_retired_day ON blind_store.logs (retired_day);
