"""What another process commits while this one reads the file is never skipped (issue 14).

``StorageThread.read_external`` used to read the new update rows and then, in a
second statement, ``MAX(seq)``: a row another process committed between the two
was never read, yet the cursor moved past it, so it never reached this process
(nor, through it, any peer) and later updates of the same client id could not
integrate either. The hook below commits exactly there, from another connection.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from crdt import open_store
from crdt.storage_backend import dialect_of
from crdt.storage_calls import apply_all, compact_document, read_doc
from tests.store_targets import StoreTarget

OTHER_WRITER = 4242


def other_process_update(
    base: bytes, key: str, value: str, client_id: int
) -> tuple[Doc[Any], bytes]:
    """A replica of the document, as another process holds it, and its next change."""
    replica: Doc[Any] = Doc(client_id=client_id)
    replica.apply_update(base)
    before = replica.get_state()
    replica.get("root", type=Map)[key] = value
    return replica, replica.get_update(before)


async def test_a_row_committed_between_the_reads_of_a_refresh_is_read(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    async with open_store(db) as reader, open_store(db) as writer:
        ours = await reader.open_doc("notes", kind="notes")
        ours.doc.get("root", type=Map)["a"] = "first"
        await reader.wait_durable()
        theirs = await writer.open_doc("notes", kind="notes")  # another process's store
        theirs.doc.get("root", type=Map)["b"] = "written before the refresh"
        await writer.wait_durable()

        replica, late = other_process_update(ours.doc.get_update(), "c", "between", OTHER_WRITER)
        committed: list[str] = []

        def commit_in_between(step: str) -> None:
            # Runs on the reader's storage thread after it read the new rows.
            if step == "rows-read" and not committed:
                store_target.commit_update("notes", OTHER_WRITER, late)
                committed.append(step)

        reader._storage.between_reads = commit_in_between
        await reader.refresh()
        assert committed  # the hook ran: the row landed between the two reads
        reader._storage.between_reads = None
        await reader.refresh()
        root = ours.doc.get("root", type=Map)
        assert root.to_py() == {"a": "first", "b": "written before the refresh", "c": "between"}

        # The same client id's next update integrates too (nothing is left pending).
        before = replica.get_state()
        replica.get("root", type=Map)["d"] = "after"
        store_target.commit_update("notes", OTHER_WRITER, replica.get_update(before))
        await reader.refresh()
        assert root.to_py()["d"] == "after"


class CompactsAfterFirstRead:
    """A connection whose first SELECT on ``documents`` is followed, at once, by
    another process compacting the document (its rows folded into a snapshot)."""

    def __init__(self, conn: Any, target: StoreTarget, doc_id: str) -> None:
        self.conn = conn
        self.target = target
        self.doc_id = doc_id
        self.compacted = False
        self.dialect = dialect_of(conn)

    @property
    def in_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self.conn.execute(sql, params)
        if "FROM documents" in sql and not self.compacted:
            self.compacted = True
            other = self.target._connect()
            try:
                assert compact_document(other, doc_id=self.doc_id, live=None) is not None
            finally:
                other.close()
        return cursor


async def test_loading_a_document_while_another_process_compacts_it_reads_it_whole(
    store_target: StoreTarget,
) -> None:
    # Loading read the snapshot, then the log in a second statement: a compaction
    # in between folded the log into a snapshot the load had already read past,
    # and the document loaded without those updates.
    db = store_target.location
    async with open_store(db, compact_after_updates=0) as store:
        stored = await store.open_doc("notes", kind="notes")
        for i in range(5):
            stored.doc.get("root", type=Map)[f"k{i}"] = i
        expected = stored.doc.get("root", type=Map).to_py()
    conn = store_target._connect()
    try:
        reader = CompactsAfterFirstRead(conn, store_target, "notes")
        snapshot, updates, _ = read_doc(reader, "notes")  # type: ignore[arg-type]
    finally:
        conn.close()
    assert reader.compacted
    loaded: Doc[Any] = Doc()
    apply_all(loaded, "notes", snapshot, updates, origin="test")
    assert loaded.get("root", type=Map).to_py() == expected
