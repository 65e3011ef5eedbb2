"""A session's catch-up repairs what live pushes missed (issue 14, the safety net).

In a three-device partition test 125 of A's acknowledged writes never reached
B and C: another process on A had written them to A's file, A's ``serve``
process never applied them (its refresh cursor had moved past the rows), so no
live push carried them, and every new session's catch-up compared catalogues
built from the same incomplete documents. Whatever the cause of such a gap, a
session now reconciles its documents with the file before its catch-up.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from crdt import SyncClass, open_store
from crdt.journal import Journal
from tests.sync_helpers import connected, open_devices, wait_for


def newest_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT MAX(seq) FROM updates").fetchone()[0])
    finally:
        conn.close()


async def texts(device: object) -> set[str]:
    return {r.text for r in await device.journal.all()}  # type: ignore[attr-defined]


async def test_catch_up_carries_a_write_this_process_never_applied(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        await a.journal.add("seen by a's process")
        db = a.path / "mirror.db"
        async with open_store(db) as other_process:
            await Journal(other_process, share_class=SyncClass.DEVICES).add(
                "written by another process on a")
        # a's process passes over that row, as the two-SELECT refresh did: its
        # cursor moves past a row it never read.
        a.store._last_seen_seq = newest_seq(db)
        await a.store.refresh()
        assert await texts(a) == {"seen by a's process"}

        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()

            async def b_has_both() -> bool:
                await b.store.refresh()
                return await texts(b) == {"seen by a's process",
                                          "written by another process on a"}

            await wait_for(b_has_both)
        assert "written by another process on a" in await texts(a)


async def test_reconcile_is_a_no_op_when_the_file_holds_nothing_new(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with open_store(db) as store:
        journal = Journal(store)
        await journal.add("one")
        (shard,) = await journal.shards()
        assert await store.reconcile([shard.doc_id]) == ()
        async with open_store(db) as other:
            await Journal(other).add("two")
        store._last_seen_seq = newest_seq(db)  # passed over, as above
        assert await store.reconcile([shard.doc_id]) == (shard.doc_id,)
        assert {r.text for r in await journal.all()} == {"one", "two"}
        assert await store.reconcile([shard.doc_id]) == ()


async def test_a_new_document_found_by_anothers_refresh_is_still_pushed_live(
    tmp_path: Path,
) -> None:
    # The service pushes a document another process created once a refresh finds
    # it; a refresh by another task of the same process (the REPL's watcher, an
    # open, a compaction) used to keep that news to itself.
    from datetime import UTC, datetime

    from node.sync.session import SyncSession
    from protocol import INITIATOR
    from tests.sync_helpers import run_recording
    from tests.test_sync_session_failures import service_for

    async with open_devices(tmp_path, ["a", "b"]) as (a, b), trio.open_nursery() as nursery:
        service = service_for(a)
        port = await nursery.start(service.run)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        session = SyncSession(b.store, b.group, stream, INITIATOR, address="a")
        nursery.start_soon(run_recording, session, [])
        with trio.fail_after(10):
            await session.caught_up.wait()
        async with open_store(a.path / "mirror.db") as other_process:
            written = await Journal(other_process, share_class=SyncClass.DEVICES).add(
                "in a month nobody wrote before", created_at=datetime(2024, 2, 3, tzinfo=UTC))
        found = await a.store.refresh()  # not the service's refresh
        assert [i.doc_id for i in found.new_documents] == [written.shard]

        async def b_has_it() -> bool:
            await b.store.refresh()
            return "in a month nobody wrote before" in await texts(b)

        await wait_for(b_has_it)
        nursery.cancel_scope.cancel()
