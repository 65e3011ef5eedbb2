-- The Mirror store on SQLite: one file per node home (a device keeps this engine).
--
-- Layout of this file, shared with postgres.sql beside it (crdt/schema_files.py reads
-- both): "-- @base N" starts the statements that build a store of version N; each
-- "-- @migrate K" starts the statements that take a store from version K to K + 1, run
-- in one transaction. A new store is the base followed by every migration, so a new
-- store and a migrated one are the same. Both engines reach the same version: a
-- version is one logical format (the same tables, the same meaning), whatever the
-- engine; a change adds a "@migrate" step to both files. Statements end with ";" and
-- lines starting with "--" are dropped before they run.
--
-- The version lives in PRAGMA user_version, the owner in PRAGMA application_id
-- (crdt/schema.py sets and checks both).

-- @base 1
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE documents (
    doc_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    sync_class   TEXT NOT NULL CHECK (sync_class IN ('local', 'devices', 'commons')),
    created_at   TEXT NOT NULL,
    snapshot     BLOB,
    snapshot_seq INTEGER NOT NULL DEFAULT 0,
    compacted_at TEXT
) STRICT;

-- AUTOINCREMENT: a seq is never reused, even after compaction deletes the
-- newest rows, so "everything after seq N" stays a correct question.
CREATE TABLE updates (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    writer INTEGER NOT NULL,
    data   BLOB NOT NULL
) STRICT;

CREATE INDEX updates_by_doc ON updates(doc_id, seq);

-- pycrdt client ids of this device. One process holds an id at a time
-- (guarded by a lock file); an id whose holder died without closing is
-- retired, never reused, in case its unsaved updates reached a peer.
CREATE TABLE client_ids (
    client_id INTEGER PRIMARY KEY,
    state     TEXT NOT NULL CHECK (state IN ('free', 'in_use', 'retired')),
    since     TEXT NOT NULL
) STRICT;

-- @migrate 1
-- 2: blobs may be sealed (crdt/crypto_at_rest.py); meta.encryption says how.
-- The version bump is the point: a Mirror that cannot open sealed blobs
-- refuses the file instead of mixing plain updates into an encrypted store.
INSERT OR IGNORE INTO meta(key, value) VALUES ('encryption', 'none');

-- @migrate 2
-- 3: the signed envelopes some updates arrived in (Commons documents: the
-- author's signature must reach every reader, so a host keeps the envelopes,
-- not only the merged state). Deleting a document deletes its envelopes.
CREATE TABLE envelopes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    digest BLOB NOT NULL,
    data   BLOB NOT NULL,
    UNIQUE (doc_id, digest)
) STRICT;
