"""The store's schemas as files, one per engine, and stores made before (issue 19; T9).

crdt/schemas/sqlite.sql and postgres.sql each hold a base and forward migrations; both
must end at the same version. A home made by the SQLite schema of the time (schema 3,
kept as tests/fixtures/stores/schema-v3.db) still opens, reads and writes, and a new
store has exactly that file's schema: moving the statements into a file changed none.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from pycrdt import Map

from crdt import open_store, schema, schema_files
from crdt.journal import Journal
from tests.helpers import REPO

FIXTURE = REPO / "tests" / "fixtures" / "stores" / "schema-v3.db"


def master(db: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def test_both_engines_reach_the_same_version() -> None:
    sqlite, postgres = schema_files.load("sqlite"), schema_files.load("postgres")
    assert sqlite.version == postgres.version == schema.SCHEMA_VERSION
    assert sqlite.base_version == 1 and sorted(sqlite.migrations) == [1, 2]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("CREATE TABLE t (x int);", "no @base"),
        ("-- @migrate 1\nSELECT 1;\n-- @base 1\nSELECT 1;", "before @base"),
        ("-- @base 1\nSELECT 1;\n-- @migrate 2\nSELECT 1;", "@migrate 1 was expected"),
        ("-- @base 1\nSELECT 1;\n-- @base 2\nSELECT 1;", "one @base"),
    ],
)
def test_a_malformed_schema_file_is_refused(text: str, problem: str) -> None:
    with pytest.raises(schema_files.SchemaFileError, match=problem):
        schema_files.parse("test", text)


def test_schemas_are_package_data() -> None:
    files = schema_files.resources.files("crdt") / "schemas"
    assert {p.name for p in files.iterdir() if p.name.endswith(".sql")} >= {
        "sqlite.sql", "postgres.sql"
    }
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"crdt" = ["schemas/*.sql"]' in pyproject


async def test_a_new_store_has_the_schema_of_a_store_made_before_the_files(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "new.db"):
        pass
    assert master(tmp_path / "new.db") == master(FIXTURE)


async def test_a_schema_3_home_opens_reads_and_writes(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    shutil.copy(FIXTURE, db)
    async with open_store(db) as store:
        texts = sorted(r.text for r in await Journal(store).all())
        assert texts == ["A private one", "A reflection written by schema 3"]
        notes = await store.open_doc("notes", kind="notes")
        assert notes.doc.get("root", type=Map).to_py() == {"k": "v", "k2": "after compaction"}
        await Journal(store).add("written after the schema moved into files", durable=True)
    async with open_store(db) as store:
        assert len(await Journal(store).all()) == 3


async def test_a_schema_1_home_migrates_forward_to_the_files_version(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in schema_files.split_sql(schema.SCHEMA_V1):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()
    async with open_store(db) as store:
        await Journal(store).add("after migrating", durable=True)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    finally:
        conn.close()
    # the migrated file is the new file, table for table
    async with open_store(tmp_path / "new.db"):
        pass
    assert [r[:2] for r in master(db)] == [r[:2] for r in master(tmp_path / "new.db")]
