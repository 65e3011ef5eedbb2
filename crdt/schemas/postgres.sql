-- The Mirror store on PostgreSQL: the platform's engine (a Commons server, a blind
-- store), several instances over one database. A device never uses it.
--
-- Same layout as sqlite.sql (see its header): "-- @base N", then "-- @migrate K" steps.
-- PostgreSQL stores began at version 3, the SQLite format of the time; the tables
-- mean exactly what they mean there (crdt/storage_pg.py).
--
-- What differs, and why:
-- * mirror_store marks the database as a Mirror store and holds its version (SQLite
--   has application_id and user_version in the file header), and a change counter
--   every write transaction bumps: "has anyone written since I looked?" is one
--   cheap query, as PRAGMA data_version is in SQLite.
-- * seq columns are identity columns: a sequence never hands a value out twice, so a
--   seq is never reused (SQLite's AUTOINCREMENT). Writers also take one advisory lock
--   per transaction (crdt/storage_pg.py), so seqs become visible in order and
--   "everything after seq N" never skips a row committed late.
-- * client ids are leased with session advisory locks, not lock files.

-- @base 3
CREATE TABLE mirror_store (
    singleton   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    application BIGINT NOT NULL,
    version     INTEGER NOT NULL,
    changes     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE documents (
    doc_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    sync_class   TEXT NOT NULL CHECK (sync_class IN ('local', 'devices', 'commons')),
    created_at   TEXT NOT NULL,
    snapshot     BYTEA,
    snapshot_seq BIGINT NOT NULL DEFAULT 0,
    compacted_at TEXT
);

CREATE TABLE updates (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    writer BIGINT NOT NULL,
    data   BYTEA NOT NULL
);

CREATE INDEX updates_by_doc ON updates(doc_id, seq);

-- Updates are already compact binary: do not spend CPU trying to compress them.
ALTER TABLE updates ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE client_ids (
    client_id BIGINT PRIMARY KEY,
    state     TEXT NOT NULL CHECK (state IN ('free', 'in_use', 'retired')),
    since     TEXT NOT NULL
);

CREATE TABLE envelopes (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    digest BYTEA NOT NULL,
    data   BYTEA NOT NULL,
    UNIQUE (doc_id, digest)
);

CREATE INDEX envelopes_by_doc ON envelopes(doc_id, seq);

-- No planner statistics on content or document ids: ANALYZE would copy sampled
-- values into pg_statistic, where a scrub (VACUUM FULL of these tables) never
-- reaches. Lookups go by primary key or index either way.
ALTER TABLE documents ALTER COLUMN doc_id SET STATISTICS 0;
ALTER TABLE documents ALTER COLUMN snapshot SET STATISTICS 0;
ALTER TABLE updates ALTER COLUMN doc_id SET STATISTICS 0;
ALTER TABLE updates ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE envelopes ALTER COLUMN doc_id SET STATISTICS 0;
ALTER TABLE envelopes ALTER COLUMN digest SET STATISTICS 0;
ALTER TABLE envelopes ALTER COLUMN data SET STATISTICS 0;

INSERT INTO meta(key, value) VALUES ('encryption', 'none');
