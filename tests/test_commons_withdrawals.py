"""Withdrawals a reader cannot miss, and withdrawals that cost nothing (issue 15, item 7).

The attack: 10,050 self-withdrawals of ids that never existed (free author
keys) pushed a real withdrawal out of the 10,000-entry ``/api/v1/withdrawn``
list, so a reader kept showing the withdrawn post after a successful sync; and
each of them left a tombstone for good. Now a reader asks the server about the
ids it holds, so it learns of every withdrawal of an item it holds however many
others happened, and a withdrawal of an id the server never held is answered
and forgotten. A Commons server on 127.0.0.1 port 0 in the test's trio run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from commons_server import limits as L
from commons_server.hub import Gone
from crdt import open_store
from crdt.commons import AuthorKey, make_doc_id
from tests.commons_helpers import mirror, running_commons
from tests.test_commons_security import _post, _setup

FLOOD = 10_050  # the report's count: more than the 10,000 ids the list holds


def never_existing(rng_bytes: int = 8) -> tuple[str, bytes]:
    """A withdrawal anyone can make: a fresh author key withdrawing a fresh id."""
    key = AuthorKey(os.urandom(32))
    doc_id = make_doc_id("post", key.public, os.urandom(rng_bytes))
    return doc_id, key.withdrawal(doc_id)


def moderation_bytes(server_home: Path, database: str | None = None) -> int:
    """Bytes the server keeps for its moderation document (tombstones and all)."""
    import sqlite3

    if database is not None:
        return _moderation_bytes_postgres(database)

    with sqlite3.connect(server_home / "mirror.db") as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        total = 0
        for (table,) in rows:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            if "doc_id" not in columns:
                continue
            for column in columns:
                if column == "doc_id":
                    continue
                total += db.execute(
                    f"SELECT COALESCE(SUM(LENGTH({column})), 0) FROM {table} "
                    "WHERE doc_id = 'commons-server/moderation'").fetchone()[0] or 0
    return int(total)


def _moderation_bytes_postgres(database: str) -> int:
    import psycopg

    total = 0
    with psycopg.connect(database) as conn:
        tables = [str(r[0]) for r in conn.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'doc_id'")]
        for table in tables:
            row = conn.execute(f"SELECT COALESCE(SUM(octet_length(t::text)), 0) FROM {table} t "
                               "WHERE doc_id = 'commons-server/moderation'").fetchone()
            total += int(row[0]) if row else 0
    return total


async def test_a_reader_learns_of_a_withdrawal_however_many_others_happen(
    tmp_path: Path, database: str | None,
) -> None:
    canary = "CANARY-withdrawn-under-flood-7f1e"
    async with running_commons(tmp_path / "server", database=database) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        doc_id = await _post(alice, f"Title {canary}", "body")
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary in out, out
        status, out = await mirror(alice, "unpublish", doc_id.rsplit("/", 1)[-1], "--yes")
        assert status == 0, out
        # The flood: withdrawals of ids that never existed, each with its own key...
        for _ in range(FLOOD):
            await server.hub.withdraw(*never_existing())
        # ...and as many real withdrawals after this one (say, over months: other
        # people's items, withdrawn after alice's), newer than it in every list.
        with server.hub.moderation.change():
            for i in range(FLOOD):
                later = f"2999-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"
                server.hub.moderation.withdraw(never_existing()[0], later, "owner")
        await server.hub.store.wait_durable()
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert canary not in out
        assert "1 withdrawn or moderated item(s) deleted" in out
        async with open_store(bob / "mirror.db") as store:
            assert store.info(doc_id) is None


async def test_withdrawing_ids_that_never_existed_costs_the_server_nothing(
    tmp_path: Path, database: str | None,
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server:
        (alice,) = await _setup(tmp_path, server.url, "alice")
        real = await _post(alice, "a real post")
        await server.hub.store.wait_durable()
        tombstones = set(server.hub.withdrawn)
        kept = moderation_bytes(server.home, database)
        assert kept > 0  # the measure sees the moderation document at all
        for _ in range(FLOOD):
            await server.hub.withdraw(*never_existing())
        async with httpx.AsyncClient() as client:
            for _ in range(20):  # and through the API, one request each
                doc_id, signature = never_existing()
                answer = await client.post(server.url + "/api/v1/withdraw", json={
                    "doc_id": doc_id, "signature": signature.hex()})
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"withdrawn": doc_id, "held": False}
        await server.hub.store.wait_durable()
        assert server.hub.withdrawn == tombstones
        assert moderation_bytes(server.home, database) == kept
        # A real withdrawal still leaves its tombstone, and refuses the id for good.
        status, out = await mirror(alice, "unpublish", real.rsplit("/", 1)[-1], "--yes")
        assert status == 0, out
        assert server.hub.withdrawn == tombstones | {real}
        with pytest.raises(Gone):
            await server.hub.accept(real, b"\x00\x00\x00\x00", "t")


async def test_a_reader_asks_about_the_ids_it_holds(
    tmp_path: Path, database: str | None
) -> None:
    """POST /api/v1/withdrawn {"ids": [...]}: what the server says about those ids only."""
    async with running_commons(tmp_path / "server", database=database) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        gone = await _post(alice, "to be withdrawn")
        kept = await _post(alice, "kept")
        status, out = await mirror(alice, "unpublish", gone.rsplit("/", 1)[-1], "--yes")
        assert status == 0, out
        stranger = never_existing()[0]
        async with httpx.AsyncClient() as client:
            answer = await client.post(server.url + "/api/v1/withdrawn",
                                       json={"ids": [gone, kept, stranger, "not an id"]})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"withdrawn": [gone], "hidden": [], "blocked": []}
            too_many = [stranger] * (L.MAX_CHECK_IDS + 1)
            answer = await client.post(server.url + "/api/v1/withdrawn", json={"ids": too_many})
            assert answer.status_code in (400, 413)
            answer = await client.post(server.url + "/api/v1/withdrawn", json={"ids": "all"})
            assert answer.status_code == 400
            assert "'ids'" in json.loads(answer.text)["error"]


async def test_late_comments_on_a_gone_thread_leave_no_lasting_tombstones(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can write comments (free author keys) on a withdrawn thread: each is
    refused, remembered for a while in memory only (bounded), never tombstoned."""
    from commons_server.server import open_hub
    from tests.test_commons_storage import _bundle, _comment, server_key_for
    from tests.test_commons_storage import _post as post_envelope

    monkeypatch.setattr(L, "MAX_REMEMBERED_REFUSALS", 5)
    alice = AuthorKey(os.urandom(32))
    key = server_key_for(tmp_path / "server")
    async with open_hub(tmp_path / "server", database=database) as hub:
        thread = post_envelope(alice, "a thread", server=key)
        await hub.accept(*_bundle(thread), "t")
        assert await hub.withdraw(thread[0], alice.withdrawal(thread[0]))
        tombstones = set(hub.withdrawn)
        late = [_comment(AuthorKey(os.urandom(32)), thread[0], f"late {i}", server=key)
                for i in range(8)]
        for comment in late:
            with pytest.raises(Gone, match="the thread this comment belongs to"):
                await hub.accept(*_bundle(comment), "t")
        assert hub.withdrawn == tombstones == {thread[0]}
        # The newest few are remembered: their authors' nodes are not asked again...
        assert hub.state_vector(late[-1][0]) is None
        assert hub.moderation_of([late[-1][0]])["withdrawn"] == [late[-1][0]]
        # ...the oldest were forgotten: asked again, refused again, nothing kept.
        assert hub.state_vector(late[0][0]) is not None
        with pytest.raises(Gone):
            await hub.accept(*_bundle(late[0]), "t")
        assert hub.withdrawn == tombstones
