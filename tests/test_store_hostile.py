"""Hostile and damaged files (TESTPLAN T5): a clear one-line error, the file untouched."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from crdt import (
    CorruptStoreError,
    NewerSchemaError,
    NotAStoreError,
    StoreOpenError,
    open_store,
)
from crdt.journal import Journal
from tests.helpers import file_fingerprint, run_mirror


async def make_store(path: Path, n: int = 50) -> None:
    async with open_store(path) as store:
        journal = Journal(store)
        for i in range(n):
            await journal.add(f"reflection number {i} " + "words " * 40, durable=False)
        await store.wait_durable()
        await store.compact()


async def assert_refused(path: Path, error: type[Exception], match: str) -> None:
    before = file_fingerprint(path)
    with pytest.raises(error, match=match) as info:
        async with open_store(path):
            pass
    assert "\n" not in str(info.value), "the message is one line"
    assert file_fingerprint(path) == before, "the file was not modified"


async def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    path.write_bytes(random.Random(7).randbytes(8192))
    await assert_refused(path, NotAStoreError, "not an SQLite database")


async def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    path.write_text("dear diary\n")
    await assert_refused(path, NotAStoreError, "not a Mirror store")


async def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    path.write_bytes(b"")
    await assert_refused(path, NotAStoreError, "empty file")


async def test_sqlite_database_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '555')")
    conn.commit()
    conn.close()
    await assert_refused(path, NotAStoreError, "another application")


async def test_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    await make_store(path, 3)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    await assert_refused(path, NewerSchemaError, "newer Mirror")


@pytest.mark.parametrize("keep", [50, 100, 4096, 8192, 12000])
async def test_truncated_store(tmp_path: Path, keep: int) -> None:
    good = tmp_path / "good.db"
    await make_store(good)
    assert good.stat().st_size > keep
    path = tmp_path / "mirror.db"
    path.write_bytes(good.read_bytes()[:keep])
    await assert_refused(path, StoreOpenError, "damaged|not a Mirror store|cannot open")


async def test_page_damage_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    await make_store(good, 200)
    path = tmp_path / "mirror.db"
    data = bytearray(good.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(page, len(data), page):  # wreck every b-tree page header
        data[start] = 0x55
    path.write_bytes(bytes(data))
    await assert_refused(path, CorruptStoreError, "damaged")


async def test_garbage_update_row_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    async with open_store(path) as store:
        r = await Journal(store).add("fine")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO updates(doc_id, writer, data) VALUES (?, 1, x'00ff17')", (r.shard,))
    conn.commit()
    conn.close()
    with pytest.raises(CorruptStoreError, match="cannot be decoded"):
        async with open_store(path) as store:
            await Journal(store).all()


def test_cli_refuses_foreign_file_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "mirror.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = file_fingerprint(db)
    shutil.copy(db, tmp_path / "copy.db")
    result = run_mirror(home, "list")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "another application" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert file_fingerprint(db) == before
