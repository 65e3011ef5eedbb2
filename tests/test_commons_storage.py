"""The Commons server stores in the node's DocStore: envelopes, restarts, deletion, memory."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from pycrdt import Doc

from commons_server import hub as hub_module
from commons_server import limits as L
from commons_server.hub import Blocked, Gone, Hub, Refused
from commons_server.server import DB_NAME, SetupError, load_or_create_seed, open_hub
from crdt import open_store
from crdt.commons import (
    MODERATION_CONTEXT,
    AuthorKey,
    doc_from_envelopes,
    encode_bundle,
    make_doc_id,
    moderation_digest,
    verify_bundle,
    write_item,
)

FROZEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AT = FROZEN.strftime("%Y-%m-%dT%H:%M:%SZ")


def server_key_for(home: Path) -> bytes:
    """The key of the server whose home is *home* (made now if it has none yet), so
    envelopes can be signed for it before it starts."""
    return bytes(nacl.signing.SigningKey(load_or_create_seed(home)).verify_key)


def _post(author: AuthorKey, title: str, body: str = "body", *,
          server: bytes) -> tuple[str, bytes]:
    doc_id = make_doc_id("post", author.public, os.urandom(8))
    doc: Doc[Any] = Doc()
    write_item(doc, "post", {"title": title, "body": body, "created_at": AT})
    return doc_id, author.envelope(doc_id, doc.get_update(), server)


async def _moderate(hub: Hub, op: AuthorKey, action: str, target: str) -> None:
    fields = {"action": action, "target": target, "reason": "r", "at": AT}
    sig = op.sign(MODERATION_CONTEXT, moderation_digest(fields))
    await hub.moderate(action, target, "r", AT, op.public, sig)


def _holds(home: Path, database: str | None, canary: str,
           request: pytest.FixtureRequest) -> bool:
    """Whether the server's store holds *canary* in any byte it keeps: its files, or
    every file of its PostgreSQL database after a CHECKPOINT (tests/store_targets.py)."""
    if database is None:
        return canary.encode() in _home_bytes(home)
    from tests.store_targets import StoreTarget

    server = request.getfixturevalue("postgres_server")
    return canary.encode() in StoreTarget("postgres", database, server).stored_bytes()


def _home_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


async def test_documents_and_their_envelopes_live_in_the_node_document_store(
    tmp_path: Path, database: str | None,
) -> None:
    home = tmp_path / "server"
    key = server_key_for(home)
    alice = AuthorKey(os.urandom(32))
    posts = [_post(alice, f"title {i}", server=key) for i in range(3)]
    async with open_hub(home, database=database) as hub:
        for doc_id, envelope in posts:
            assert await hub.accept(doc_id, encode_bundle([envelope]), "t") == 1
        # The same bundle again changes nothing.
        assert await hub.accept(posts[0][0], encode_bundle([posts[0][1]]), "t") == 0
    in_home = [DB_NAME, "server.key"] if database is None else ["server.key"]
    assert sorted(p.name for p in home.iterdir() if p.is_file()) == in_home
    async with open_store(database or home / DB_NAME, create=False) as store:
        assert {i.doc_id for i in store.documents(kind="commons")} == {d for d, _ in posts}
        for doc_id, envelope in posts:
            kept = await store.envelopes(doc_id)
            assert kept == [envelope]
            verify_bundle(doc_id, encode_bundle(kept), key)  # the owner's own signature


async def test_a_restarted_server_keeps_order_moderation_and_tombstones(
    tmp_path: Path, database: str | None
) -> None:
    home = tmp_path / "server"
    key = server_key_for(home)
    op, alice, bob = (AuthorKey(os.urandom(32)) for _ in range(3))
    first, second, third = (_post(alice, t, server=key) for t in ("first", "second", "third"))
    hidden = _post(alice, "hidden", server=key)
    withdrawn = _post(alice, "withdrawn", server=key)
    options: dict[str, Any] = {"operator_key": op.public, "wall_clock": lambda: FROZEN}
    async with open_hub(home, database=database, **options) as hub:
        for doc_id, envelope in (first, second, hidden, withdrawn, third):
            await hub.accept(doc_id, encode_bundle([envelope]), "t")
        await _moderate(hub, op, "hide", hidden[0])
        await _moderate(hub, op, "block", bob.public_hex)
        await hub.withdraw(withdrawn[0], alice.withdrawal(withdrawn[0]))
        before_threads = await hub.threads(1)
        before_log = await hub.moderation_log()
    assert [t["title"] for t in before_threads] == ["third", "second", "first"]
    async with open_hub(home, database=database, **options) as hub:
        assert await hub.threads(1) == before_threads
        assert await hub.moderation_log() == before_log
        assert await hub.thread(hidden[0]) is None
        assert hub.docs[hidden[0]].hidden
        assert withdrawn[0] not in hub.docs
        with pytest.raises(Gone):
            await hub.accept(withdrawn[0], encode_bundle([withdrawn[1]]), "t")
        with pytest.raises(Blocked):
            await hub.accept(*_bundle(_post(bob, "from bob", server=key)), "t")
        with pytest.raises(Refused, match="replayed"):
            await _moderate(hub, op, "hide", hidden[0])
        # Arrival order continues after the restart.
        fourth = _post(alice, "fourth", server=key)
        await hub.accept(*_bundle(fourth), "t")
        assert [t["title"] for t in await hub.threads(1)] == ["fourth", "third", "second",
                                                               "first"]


def _bundle(post: tuple[str, bytes]) -> tuple[str, bytes]:
    return post[0], encode_bundle([post[1]])


async def test_a_withdrawal_cut_short_by_a_crash_is_finished_at_start(
    tmp_path: Path, database: str | None, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "server"
    key = server_key_for(home)
    alice = AuthorKey(os.urandom(32))
    canary = "CANARY-half-withdrawn-41d2"
    post = _post(alice, "title", canary, server=key)
    async with open_hub(home, database=database) as hub:
        await hub.accept(*_bundle(post), "t")
        # The tombstone is written, then the process dies before the deletion.
        hub.moderation.withdraw(post[0], AT, "owner")
        await hub.store.wait_durable()
    assert _holds(home, database, canary, request)
    async with open_hub(home, database=database) as hub:
        assert post[0] not in hub.docs
        assert hub.store.info(post[0]) is None
    assert not _holds(home, database, canary, request)


def _comment(author: AuthorKey, thread: str, body: str, *,
             server: bytes) -> tuple[str, bytes]:
    doc_id = make_doc_id("comment", author.public, os.urandom(8))
    doc: Doc[Any] = Doc()
    write_item(doc, "comment", {"body": body, "thread": thread, "created_at": AT})
    return doc_id, author.envelope(doc_id, doc.get_update(), server)


async def test_comments_a_thread_withdrawal_left_behind_are_deleted_at_start(
        tmp_path: Path, database: str | None, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "server"
    key = server_key_for(home)
    alice, bob = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    canary = "CANARY-orphan-comment-c51e"
    thread = _post(alice, "thread", server=key)
    comment = _comment(bob, thread[0], canary, server=key)
    async with open_hub(home, database=database) as hub:
        await hub.accept(*_bundle(thread), "t")
        await hub.accept(*_bundle(comment), "t")
        # Only the thread went: a crash before its comments' tombstones, or a store
        # written by a build from before threads took their comments with them.
        hub.moderation.withdraw(thread[0], AT, "owner")
        await hub.store.delete_doc(thread[0], scrub_file=True)
    assert _holds(home, database, canary, request)
    async with open_hub(home, database=database) as hub:
        assert comment[0] not in hub.docs
        assert hub.store.info(comment[0]) is None
        assert hub.moderated_lists()["withdrawn"] == [thread[0]]  # the thread only
        with pytest.raises(Gone, match="the thread this comment belongs to"):
            await hub.accept(*_bundle(comment), "t")
    assert not _holds(home, database, canary, request)


async def test_a_database_of_an_earlier_build_is_not_silently_ignored(tmp_path: Path) -> None:
    home = tmp_path / "server"
    home.mkdir()
    (home / "commons.db").write_bytes(b"SQLite format 3\x00")
    with pytest.raises(SetupError, match="earlier development build"):
        async with open_hub(home):
            pass
    assert (home / "commons.db").read_bytes() == b"SQLite format 3\x00"
    assert not (home / DB_NAME).exists()


async def test_memory_holds_a_bounded_number_of_documents(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(L, "DOC_CACHE_ENTRIES", 2)
    assert hub_module.L is L
    alice = AuthorKey(os.urandom(32))
    key = server_key_for(tmp_path / "server")
    posts = [_post(alice, f"post {i}", server=key) for i in range(6)]
    async with open_hub(tmp_path / "server", database=database) as hub:
        for post in posts:
            await hub.accept(*_bundle(post), "t")
            assert hub.store.statistics().loaded <= 3  # two Commons docs + moderation
        # An evicted document is loaded again when it changes.
        doc_id = posts[0][0]
        assert hub.store.loaded(doc_id) is None
        doc = doc_from_envelopes([posts[0][1]])
        before = doc.get_state()
        write_item(doc, "post", {"title": "post 0", "body": "edited", "created_at": AT})
        edit = alice.envelope(doc_id, doc.get_update(before), hub.server_key)
        await hub.accept(doc_id, encode_bundle([edit]), "t")
        thread = await hub.thread(doc_id)
        assert thread is not None and thread["body"] == "edited"
        assert len(await hub.store.envelopes(doc_id)) == 2
