-- The blind store on SQLite, schema version 2 (storage.py SCHEMA_VERSION).
-- Version 1 had no charges table and no logs.owner / logs.retired_day;
-- quotas.migrate_to_2 moves a version 1 file forward. postgres.sql is the same
-- schema for PostgreSQL: change both together, with a migration for each.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    group_id  BLOB PRIMARY KEY,
    last_seq  INTEGER NOT NULL DEFAULT 0,
    covers    INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    envelopes INTEGER NOT NULL DEFAULT 0,
    retired   INTEGER NOT NULL DEFAULT 0,
    forward   BLOB,
    owner     BLOB,
    retired_day INTEGER
);
CREATE TABLE IF NOT EXISTS envelopes (
    group_id BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (group_id, seq)
);
CREATE TABLE IF NOT EXISTS snapshot_parts (
    group_id BLOB NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (group_id, part)
);
CREATE TABLE IF NOT EXISTS charges (
    owner BLOB PRIMARY KEY,
    bytes INTEGER NOT NULL DEFAULT 0,
    logs  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS logs_retired_day ON logs (retired_day);
