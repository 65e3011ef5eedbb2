"""DocStore: persistence, durability, client ids, refresh across processes, values."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
from pycrdt import Map

from crdt import (
    DocumentError,
    StoreClosedError,
    StoreWriteError,
    SyncClass,
    ValueRangeError,
    open_store,
)
from crdt.journal import Journal, Reflection, new_reflection_id, replace_text
from crdt.schema import SCHEMA_VERSION
from crdt.settings import Settings
from crdt.values import check_value, read_int
from tests.store_targets import StoreTarget


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_reflections_survive_reopen(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as store:
        journal = Journal(store)
        a = await journal.add("First thought, with é and 😀", tags=["#Work", "work", "sleep"])
        b = await journal.add("A quiet one", private=True)
        client_id = store.client_id
    async with open_store(db) as store:
        journal = Journal(store)
        got = {r.id: r for r in await journal.all()}
        assert got[a.id].text == "First thought, with é and 😀"
        assert got[a.id].tags == ("work", "sleep")
        assert got[b.id].private
        assert store.client_id == client_id, "a cleanly closed client id is reused"
        assert store.info(b.shard) is not None
        assert store.info(b.shard).sync_class is SyncClass.LOCAL  # type: ignore[union-attr]


async def test_store_file_is_wal_full_and_versioned(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with open_store(db) as store:
        await Journal(store).add("hello")
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x4D495252
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        finally:
            conn.close()
    assert rows(db, "SELECT kind, sync_class FROM documents") == [("journal", "local")]


async def test_private_reflections_live_in_local_shards_whatever_is_shared(
    store_target: StoreTarget,
) -> None:
    async with open_store(store_target.location) as store:
        journal = Journal(store, share_class=SyncClass.DEVICES)
        shared = await journal.add("shared thought")
        private = await journal.add("private thought", private=True)
        assert store.info(shared.shard).sync_class is SyncClass.DEVICES  # type: ignore[union-attr]
        assert store.info(private.shard).sync_class is SyncClass.LOCAL  # type: ignore[union-attr]
        assert private.shard.startswith("journal-private/")


async def test_two_live_stores_never_share_a_client_id(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as a, open_store(db) as b:
        assert a.client_id != b.client_id
        assert 0 < a.client_id < 2**32 and 0 < b.client_id < 2**32


async def test_a_second_store_sees_what_the_first_wrote(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as a, open_store(db) as b:
        ja, jb = Journal(a), Journal(b)
        first = await ja.add("written by a")
        assert await jb.all() == []  # b has not looked yet
        found = await b.refresh()
        assert [i.doc_id for i in found.new_documents] == [first.shard]
        assert [r.text for r in await jb.all()] == ["written by a"]
        second = await ja.add("a again")
        result = await b.refresh()
        assert result.changed == (first.shard,)
        assert {r.id for r in await jb.all()} == {first.id, second.id}
        # Compaction by a folds the log into a snapshot; b still converges.
        third = await ja.add("after compaction")
        await a.compact()
        await b.refresh()
        assert {r.id for r in await jb.all()} == {first.id, second.id, third.id}
        # And b's writes reach a.
        fourth = await jb.add("written by b")
        await a.refresh()
        assert fourth.id in {r.id for r in await ja.all()}
        assert (await b.refresh()).changed == ()  # nothing new: nothing applied


async def test_refresh_is_cheap_when_nothing_changed(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        await Journal(store).add("x")
        await store.refresh()
        result = await store.refresh()
        assert result.changed == () and result.new_documents == ()


async def test_wait_durable_returns_only_after_commit(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as store:
        journal = Journal(store)
        r = await journal.add("must be on disk", durable=True)
        # a separate connection sees it: it was committed before add() returned
        found = store_target.rows("SELECT COUNT(*) FROM updates")
        assert found[0][0] >= 1
        assert r.id


async def test_failed_commit_is_not_acknowledged_and_store_refuses_more(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    async with open_store(db) as store:
        await Journal(store).add("kept")
    before = store_target.rows("SELECT seq, data FROM updates")

    def fail_at_commit(step: str) -> None:
        if step == "commit":
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(StoreWriteError, match="disk I/O error"):
        async with open_store(db, fault=fail_at_commit) as store:
            await Journal(store).add("lost, and never acknowledged")
    assert store_target.rows("SELECT seq, data FROM updates") == before
    async with open_store(db) as store:
        assert [r.text for r in await Journal(store).all()] == ["kept"]


async def test_store_refuses_writes_after_a_failure(store_target: StoreTarget) -> None:
    calls = 0

    def fail_once(step: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("disk full")

    async with open_store(store_target.location, fault=fail_once) as store:
        journal = Journal(store)
        with pytest.raises(StoreWriteError):
            await journal.add("first")
        with pytest.raises(StoreClosedError, match="earlier write failed"):
            await journal.add("second")


async def test_kind_mismatch_and_unknown_documents(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        await store.open_doc("notes", kind="notes")
        with pytest.raises(DocumentError, match="is a 'notes'"):
            await store.open_doc("notes", kind="journal")
        with pytest.raises(DocumentError, match="no document"):
            await store.open_doc("missing", kind="notes", create=False)
        with pytest.raises(DocumentError, match="invalid document id"):
            await store.open_doc("", kind="notes")


async def test_sync_class_change_is_durable(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as store:
        await store.open_doc("d", kind="notes")
        await store.set_sync_class("d", SyncClass.DEVICES)
    async with open_store(db) as store:
        assert store.info("d").sync_class is SyncClass.DEVICES  # type: ignore[union-attr]


async def test_settings_refuse_values_pycrdt_cannot_hold(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        settings = await Settings.open(store)
        settings.set("count", 2**53 - 1)
        for bad in (2**64, 2**53, -(2**60), float("nan"), float("inf"), {"a": {1: 2}}, b"x"):
            with pytest.raises(ValueRangeError):
                settings.set("bad", bad)
        assert "bad" not in settings.as_dict()
        settings.set("timestamp_ms", 1_764_000_000_000)
        await store.wait_durable()
    async with open_store(store_target.location) as store:
        settings = await Settings.open(store)
        assert read_int(settings.get("count")) == 2**53 - 1
        assert read_int(settings.get("timestamp_ms")) == 1_764_000_000_000


def test_value_checks() -> None:
    check_value({"a": [1, 2.5, "x", None, True, {"b": -(2**53 - 1)}]})
    with pytest.raises(ValueRangeError, match="outside"):
        check_value([1, 2**53])
    with pytest.raises(ValueRangeError, match="lone surrogate"):
        check_value("\udc80")
    assert read_int(5.0) == 5
    assert read_int(5.5, default=-1) == -1


async def test_journal_rejects_bad_input(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        journal = Journal(store)
        with pytest.raises(ValueRangeError, match="needs some text"):
            await journal.add("   ")
        with pytest.raises(ValueRangeError, match="time zone"):
            await journal.add("x", created_at=datetime(2026, 1, 1))
        with pytest.raises(ValueRangeError, match="tag"):
            await journal.add("x", tags=["t" * 100])
        assert await journal.count() == 0


async def test_backdated_reflection_goes_to_its_month(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        journal = Journal(store)
        r = await journal.add("on paper", created_at=datetime(2025, 3, 9, 21, 0, tzinfo=UTC))
        assert r.shard == "journal/2025-03"
        assert (await journal.find(r.id[:6]))[1].created_at == r.created_at


async def test_find_edit_delete(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        journal = Journal(store)
        r = await journal.add("Sam said 😀 and I felt seen")
        with pytest.raises(DocumentError, match="at least 4"):
            await journal.find(r.id[:3])
        edited = await journal.edit(r.id[:5], text="Sam said 😀😀 and I felt truly seen")
        assert edited.text == "Sam said 😀😀 and I felt truly seen"
        assert edited.edited_at is not None
        retagged = await journal.edit(r.id, tags=["friends"])
        assert retagged.tags == ("friends",)
        await journal.delete(r.id)
        with pytest.raises(DocumentError, match="no reflection"):
            await journal.find(r.id)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("héllo 😀 world", "héllo 😀😀 world"),
        ("😀😀😀", "😀x😀"),
        ("abc", ""),
        ("", "é"),
        ("naïve café", "naive cafe"),
        ("a😀b", "a😁b"),  # same first UTF-8 bytes: must split at character, not byte
    ],
)
async def test_replace_text_edits_at_character_boundaries(old: str, new: str) -> None:
    from pycrdt import Doc, Text

    doc = Doc()
    doc["t"] = text = Text(old)
    replace_text(text, new)
    assert str(text) == new


async def test_batch_import_is_one_transaction_per_shard(store_target: StoreTarget) -> None:
    db = store_target.location
    when = datetime(2026, 5, 1, tzinfo=UTC)
    items = [Reflection(new_reflection_id(), when, f"entry {i}") for i in range(500)]
    async with open_store(db) as store:
        assert await Journal(store).add_many(items) == 500
        assert store.statistics().committed_tickets == store.statistics().enqueued_tickets
    assert store_target.rows("SELECT COUNT(*) FROM updates")[0][0] == 1
    async with open_store(db) as store:
        assert await Journal(store).count() == 500


async def test_automatic_compaction_past_threshold(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db, compact_after_updates=20) as store:
        stored = await store.open_doc("counter", kind="notes")
        root = stored.doc.get("n", type=Map)
        for i in range(50):
            root[f"k{i}"] = i
            await store.wait_durable()
        expected = root.to_py()
        assert store.statistics().auto_compactions >= 1
    assert store_target.rows("SELECT COUNT(*) FROM updates")[0][0] <= 20
    async with open_store(db) as store:
        stored = await store.open_doc("counter", kind="notes")
        assert stored.doc.get("n", type=Map).to_py() == expected


async def test_closing_flushes_pending_writes(store_target: StoreTarget) -> None:
    db = store_target.location
    async with open_store(db) as store:
        stored = await store.open_doc("d", kind="notes")
        root = stored.doc.get("m", type=Map)
        for i in range(100):
            root[str(i)] = i  # no wait_durable: closing must flush
    async with open_store(db) as store:
        stored = await store.open_doc("d", kind="notes")
        assert len(stored.doc.get("m", type=Map)) == 100


async def test_listeners_hear_local_and_external_changes(store_target: StoreTarget) -> None:
    db = store_target.location
    heard: list[tuple[str, str]] = []
    async with open_store(db) as a, open_store(db) as b:
        ra = await Journal(a).add("one")
        await b.refresh()
        assert len(await Journal(b).all()) == 1
        b.add_listener(lambda doc, update, source: heard.append((doc.doc_id, source)))
        await Journal(a).add("two")
        await b.refresh()
        await Journal(b).add("three")
        assert (ra.shard, "external") in heard
        assert (ra.shard, "local") in heard


async def test_cancelled_caller_leaves_store_usable(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        journal = Journal(store)
        with trio.move_on_after(0):
            await journal.add("maybe")
        await journal.add("surely")
        texts = [r.text for r in await journal.all()]
        assert "surely" in texts


async def test_concurrent_opens_of_a_new_document_share_one_doc(store_target: StoreTarget) -> None:
    async with open_store(store_target.location) as store:
        opened: list[object] = []

        async def open_it() -> None:
            opened.append(await store.open_doc("fresh", kind="notes"))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(open_it)
        assert len({id(o) for o in opened}) == 1


async def test_an_unexpected_error_on_the_storage_thread_fails_waiters_instead_of_hanging(
    store_target: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An exception that escaped the storage thread's loop (here from automatic
    # compaction, after a batch committed) used to end the thread silently: the next
    # wait_durable or refresh then waited forever for an answer nobody would send.
    import crdt.storage

    def broken_compaction(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: compaction crashed")

    monkeypatch.setattr(crdt.storage, "compact_document", broken_compaction)
    with trio.fail_after(60):
        async with open_store(store_target.location, compact_after_updates=1) as store:
            journal = Journal(store)
            kept = await journal.add("first", durable=True)
            stored = await store.open_doc(kept.shard, kind="journal")
            stored.doc.get("extra", type=Map)["x"] = 1  # the log now has two updates
            await store.wait_durable()  # committed; the compaction after it crashes
            with pytest.raises((StoreClosedError, StoreWriteError),
                               match="storage thread stopped: injected"):
                await journal.add("second", durable=True)
            with pytest.raises(StoreClosedError):
                await store.refresh()
    async with open_store(store_target.location) as store:
        assert [r.text for r in await Journal(store).all()] == ["first"]
