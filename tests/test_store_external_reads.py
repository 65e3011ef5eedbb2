"""What another process commits while this one reads the file is never skipped (issue 14).

``StorageThread.read_external`` used to read the new update rows and then, in a
second statement, ``MAX(seq)``: a row another process committed between the two
was never read, yet the cursor moved past it, so it never reached this process
(nor, through it, any peer) and later updates of the same client id could not
integrate either. The hook below commits exactly there, from another connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from crdt import open_store

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


def commit_row(db: Path, doc_id: str, data: bytes) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("INSERT INTO updates(doc_id, writer, data) VALUES (?, ?, ?)",
                     (doc_id, OTHER_WRITER, data))
    finally:
        conn.close()


async def test_a_row_committed_between_the_reads_of_a_refresh_is_read(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
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
                commit_row(db, "notes", late)
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
        commit_row(db, "notes", replica.get_update(before))
        await reader.refresh()
        assert root.to_py()["d"] == "after"
