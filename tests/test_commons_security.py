"""Commons: signatures, revocation, moderation, rate limits, T4 canaries, offline cache."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from commons_server.hub import Gone
from commons_server.limits import CommonsLimits
from crdt import SyncClass, open_store
from crdt.commons import (
    BOUND_UPDATE_CONTEXT,
    MODERATION_CONTEXT,
    AuthorKey,
    ForgedUpdate,
    encode_bundle,
    make_doc_id,
    moderation_digest,
    update_hash,
    write_item,
)
from node.commons import sync as node_commons
from node.commons.home import AuthorKeys, CommonsServer
from tests.commons_helpers import mirror, running_commons

FROZEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _db_bytes(home: Path) -> bytes:
    """Every byte of the server's database files (main file, WAL, shared memory)."""
    out = b""
    for name in ("mirror.db", "mirror.db-wal", "mirror.db-shm"):
        path = home / name
        if path.exists():
            out += path.read_bytes()
    return out


async def _setup(tmp_path: Path, url: str, *names: str) -> list[Path]:
    homes = []
    for name in names:
        home = tmp_path / name
        status, out = await mirror(home, "commons", "add", url)
        assert status == 0, out
        homes.append(home)
    return homes


async def _post(home: Path, title: str, body: str = "body") -> str:
    status, out = await mirror(home, "commons", "post", "--title", title, "--body", body, "--yes")
    assert status == 0, out
    status, out = await mirror(home, "published", "--json")
    return str(json.loads(out)[-1]["doc_id"])


def _forged_bundle(doc_id: str, owner: AuthorKey, forger: AuthorKey, title: str,
                   server_key: bytes) -> bytes:
    """An envelope for *server_key* that names *owner* but carries *forger*'s signature."""
    from pycrdt import Doc

    doc: Doc[Any] = Doc()
    write_item(doc, "post", {"title": title, "body": "forged", "created_at": "2026"})
    update = doc.get_update()
    sig = forger.sign(BOUND_UPDATE_CONTEXT, update_hash(doc_id, update, server_key))
    return encode_bundle([bytes([2]) + owner.public + sig + update])


# --------------------------------------------------------------------------- signatures


async def test_forged_update_is_refused_by_the_server(
    tmp_path: Path, database: str | None
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server:
        (mallory,) = await _setup(tmp_path, server.url, "mallory")
        alice = AuthorKey(os.urandom(32))
        forger = AuthorKeys(mallory).default()
        doc_id = make_doc_id("post", alice.public, os.urandom(8))

        class Forging(node_commons.CommonsSync):
            """Offers Alice's id and answers with an envelope Mallory signed."""

            async def catalogue(self) -> list[Any]:
                from protocol import COMMONS, CatalogueEntry

                return [CatalogueEntry(doc_id, COMMONS, bytes(32))]

            async def answer(self, request: Any) -> bytes:
                return _forged_bundle(doc_id, alice, forger, "Alice says X",
                                      server.hub.server_key)

        original = node_commons.CommonsSync
        node_commons.CommonsSync = Forging  # type: ignore[misc]
        try:
            status, out = await mirror(mallory, "commons", "read")
        finally:
            node_commons.CommonsSync = original  # type: ignore[misc]
        assert status != 0
        assert "signature does not verify" in out
        assert doc_id not in server.hub.docs
        assert server.hub.stats.accepted_updates == 0
        # The hub refuses it directly too, and a wrong owner key as well.
        with pytest.raises(ForgedUpdate):
            await server.hub.accept(
                doc_id, _forged_bundle(doc_id, alice, forger, "x", server.hub.server_key), "t")
        with pytest.raises(ForgedUpdate):
            await server.hub.accept(
                doc_id, _forged_bundle(doc_id, forger, forger, "x", server.hub.server_key), "t")
        assert b"Alice says X" not in _db_bytes(server.home)


async def test_forged_update_from_a_server_is_refused_by_the_node(
    tmp_path: Path, database: str | None
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server:
        (bob,) = await _setup(tmp_path, server.url, "bob")
        alice, forger = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
        doc_id = make_doc_id("post", alice.public, os.urandom(8))
        bundle = _forged_bundle(doc_id, alice, forger, "FORGED-TITLE", server.hub.server_key)
        # A malicious server: the forged envelope written straight into its store.
        from crdt.commons import decode_bundle, doc_from_envelopes

        raw = decode_bundle(bundle)[0]
        store = server.hub.store
        stored = await store.open_doc(doc_id, kind="commons", sync_class=SyncClass.COMMONS)
        store.apply_enveloped(stored, [doc_from_envelopes([raw]).get_update()], [raw],
                              origin="test:malicious")
        await server.hub.load()  # the index is rebuilt from the store
        assert doc_id in server.hub.docs
        status, out = await mirror(bob, "commons", "read")
        assert status != 0
        assert "signature does not verify" in out
        async with open_store(bob / "mirror.db") as store:
            assert store.info(doc_id) is None


# --------------------------------------------------------------------------- revocation


def _holds(home: Path, database: str | None, canary: str,
           request: pytest.FixtureRequest) -> bool:
    """The server's store holds *canary*: in its files, or in its PostgreSQL database's."""
    from tests.test_commons_storage import _holds as store_holds

    return canary.encode() in _db_bytes(home) if database is None else store_holds(
        home, database, canary, request)


async def test_unpublish_deletes_every_byte_from_the_server_database(
    tmp_path: Path, database: str | None, request: pytest.FixtureRequest
) -> None:
    canary = "CANARY-withdraw-7f3a9c"
    async with running_commons(tmp_path / "server", database=database) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        doc_id = await _post(alice, f"Title {canary}", f"Body {canary} " * 20)
        status, out = await mirror(bob, "commons", "read")
        assert canary in out
        assert _holds(server.home, database, canary, request)  # the check can see it
        short = doc_id.rsplit("/", 1)[-1]
        status, out = await mirror(alice, "unpublish", short, "--yes")
        assert status == 0, out
        assert not _holds(server.home, database, canary, request)
        async with httpx.AsyncClient() as client:
            page = await client.get(server.url + "/" + doc_id.removeprefix("commons/"))
        assert page.status_code == 404
        # Never accepted again, and the node never offers it again.
        with pytest.raises(Gone):
            await server.hub.accept(doc_id, b"\x00\x00\x00\x00", "t")
        status, out = await mirror(alice, "commons", "read")
        assert status == 0, out
        assert doc_id not in server.hub.docs
        status, out = await mirror(alice, "published")
        assert "withdrawn" in out


async def test_a_withdrawn_item_leaves_readers_caches_at_their_next_sync(
    tmp_path: Path, database: str | None
) -> None:
    canary = "CANARY-cached-withdraw-2c9e"
    async with running_commons(tmp_path / "server", database=database) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        doc_id = await _post(alice, f"Title {canary}", f"Body {canary}")
        kept = await _post(alice, "still public")
        status, out = await mirror(bob, "commons", "read")
        assert canary in out
        assert canary.encode() in _home_db_bytes(bob)  # the check can see it
        status, out = await mirror(alice, "unpublish", doc_id.rsplit("/", 1)[-1], "--yes")
        assert status == 0, out
        async with httpx.AsyncClient() as client:
            listed = (await client.get(server.url + "/api/v1/withdrawn")).json()
        assert listed == {"withdrawn": [doc_id], "hidden": [], "blocked": []}
        # Offline, bob still reads his cached copy; at his next sync it is deleted.
        status, out = await mirror(bob, "commons", "read", "--offline")
        assert canary in out
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert canary not in out and "still public" in out
        assert "1 withdrawn or moderated item(s) deleted" in out
        assert canary.encode() not in _home_db_bytes(bob)
        async with open_store(bob / "mirror.db") as store:
            assert store.info(doc_id) is None and store.info(kept) is not None
        # The author's own copy is hers: no server list deletes it.
        status, out = await mirror(alice, "commons", "read")
        assert status == 0, out
        async with open_store(alice / "mirror.db") as store:
            assert store.info(doc_id) is not None


def _home_db_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("mirror.db*") if p.is_file())


# --------------------------------------------------------------------------- moderation


def _action(op: AuthorKey, action: str, target: str, reason: str = "spam") -> dict[str, str]:
    at = FROZEN.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"action": action, "target": target, "reason": reason, "at": at}
    sig = op.sign(MODERATION_CONTEXT, moderation_digest(fields))
    return {**fields, "operator": op.public_hex, "signature": sig.hex()}


async def test_moderation_hide_remove_block_and_the_public_log(
    tmp_path: Path, database: str | None
) -> None:
    op, stranger = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        hidden = await _post(alice, "to hide")
        removed = await _post(alice, "to remove REMOVE-CANARY")
        kept = await _post(alice, "kept")
        await _post(bob, "by bob")  # withheld with the block below
        api = server.url + "/api/v1/moderation"
        async with httpx.AsyncClient() as client:
            refused = await client.post(api, json=_action(stranger, "hide", kept))
            assert refused.status_code == 403, refused.text
            forged = _action(op, "hide", kept)
            forged["target"] = hidden  # signature was over another target
            assert (await client.post(api, json=forged)).status_code == 403
            ok = await client.post(api, json=_action(op, "hide", hidden))
            assert ok.status_code == 200, ok.text
            replay = await client.post(api, json=_action(op, "hide", hidden))
            assert replay.status_code == 403 and "replayed" in replay.text
            assert (await client.post(api, json=_action(op, "remove", removed))).status_code == 200
            block = _action(op, "block", AuthorKeys(bob).default().public_hex)
            assert (await client.post(api, json=block)).status_code == 200
            threads = (await client.get(server.url + "/api/v1/threads")).json()["threads"]
            assert [t["title"] for t in threads] == ["kept"]
            page = await client.get(server.url + "/" + hidden.removeprefix("commons/"))
            assert page.status_code == 404
            log = (await client.get(api)).json()["log"]
            assert [e["action"] for e in log] == ["block", "remove", "hide"]
            html = (await client.get(server.url + "/moderation")).text
            assert "remove" in html and "block" in html
        assert b"REMOVE-CANARY" not in _db_bytes(server.home)
        status, out = await mirror(bob, "commons", "post", "--title", "again", "--body", "b",
                                   "--yes")
        assert status != 0 and "blocked" in out
        # The hidden thread is not offered to readers.
        status, out = await mirror(tmp_path / "carol", "commons", "add", server.url)
        status, out = await mirror(tmp_path / "carol", "commons", "read", "--json")
        assert {i["title"] for i in json.loads(out)} == {"kept"}


async def _moderate(server_url: str, op: AuthorKey, action: str, target: str,
                    reason: str = "spam") -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(server_url + "/api/v1/moderation",
                                   json=_action(op, action, target, reason))
    assert answer.status_code == 200, answer.text


async def _cached(home: Path, *doc_ids: str) -> list[bool]:
    async with open_store(home / "mirror.db") as store:
        return [store.info(d) is not None for d in doc_ids]


async def test_a_hidden_post_leaves_readers_caches_and_comes_back_when_unhidden(
        tmp_path: Path, database: str | None) -> None:
    canary = "CANARY-hidden-5e1b"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        hidden = await _post(alice, f"Title {canary}", f"Body {canary}")
        kept = await _post(alice, "still public")
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary in out, out
        await _moderate(server.url, op, "hide", hidden)
        async with httpx.AsyncClient() as client:
            listed = (await client.get(server.url + "/api/v1/withdrawn")).json()
        assert listed == {"withdrawn": [], "hidden": [hidden], "blocked": []}
        # Offline, bob still has his copy; at his next sync it is deleted and scrubbed.
        status, out = await mirror(bob, "commons", "read", "--offline")
        assert canary in out
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert canary not in out and "still public" in out
        assert "1 withdrawn or moderated item(s) deleted" in out
        assert await _cached(bob, hidden, kept) == [False, True]
        assert canary.encode() not in _home_db_bytes(bob)
        # The author's own hidden post stays on her node, and she still syncs.
        status, out = await mirror(alice, "commons", "read")
        assert status == 0 and canary in out, out
        assert await _cached(alice, hidden) == [True]
        # Hiding is reversible: after an unhide, readers get it back at their next sync.
        await _moderate(server.url, op, "unhide", hidden)
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary in out, out
        assert await _cached(bob, hidden) == [True]


async def test_a_removed_post_leaves_readers_caches_but_not_its_authors_node(
        tmp_path: Path, database: str | None) -> None:
    canary = "CANARY-removed-90af"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        removed = await _post(alice, f"Title {canary}", f"Body {canary}")
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary in out, out
        await _moderate(server.url, op, "remove", removed)
        async with httpx.AsyncClient() as client:
            listed = (await client.get(server.url + "/api/v1/withdrawn")).json()
        assert listed == {"withdrawn": [removed], "hidden": [], "blocked": []}
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary not in out, out
        assert await _cached(bob, removed) == [False]
        assert canary.encode() not in _home_db_bytes(bob)
        status, out = await mirror(alice, "commons", "read")
        assert status == 0, out
        assert await _cached(alice, removed) == [True]


async def test_a_blocked_authors_items_leave_readers_caches_until_unblocked(
        tmp_path: Path, database: str | None) -> None:
    canary = "CANARY-blocked-3d77"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob, carol = await _setup(tmp_path, server.url, "alice", "bob", "carol")
        kept = await _post(alice, "alice's thread")
        spam = await _post(bob, f"Title {canary}", f"Body {canary}")
        status, out = await mirror(bob, "commons", "comment", kept.rsplit("/", 1)[-1],
                                   "--body", f"comment {canary}", "--yes")
        assert status == 0, out
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary in out, out
        bob_key = AuthorKeys(bob).default().public_hex
        await _moderate(server.url, op, "block", bob_key)
        async with httpx.AsyncClient() as client:
            listed = (await client.get(server.url + "/api/v1/withdrawn")).json()
            threads = (await client.get(server.url + "/api/v1/threads")).json()["threads"]
        assert listed == {"withdrawn": [], "hidden": [], "blocked": [bob_key]}
        assert [(t["title"], t["comments"]) for t in threads] == [("alice's thread", 0)]
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0, out
        assert canary not in out and "alice's thread" in out
        assert canary.encode() not in _home_db_bytes(carol)
        # Bob's node keeps his own items, and he can still read.
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and canary in out, out
        async with open_store(bob / "mirror.db") as store:
            assert sum(1 for _ in store.documents("commons")) == 3
        # Unblocked, his items come back to readers at their next sync.
        await _moderate(server.url, op, "unblock", bob_key)
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0, out
        assert {i["doc_id"] for i in json.loads(out)} >= {kept, spam}
        assert out.count(canary) == 3  # title, body, comment


# --------------------------------------------------------------------------- a thread's children


async def _respond(home: Path, thread: str, *, comment: str = "", reaction: str = "") -> str:
    """Comment on or react to *thread* from *home*; the new item's id."""
    verb = ("comment", "--body", comment) if comment else ("react",)
    argv = [verb[0], thread.rsplit("/", 1)[-1], *verb[1:]]
    if reaction:
        argv.append(reaction)
    status, out = await mirror(home, "commons", *argv, "--yes")
    assert status == 0, out
    status, out = await mirror(home, "published", "--json")
    return str(json.loads(out)[-1]["doc_id"])


async def _get_json(url: str) -> Any:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).json()


def _thread_api(server_url: str, thread: str) -> str:
    return f"{server_url}/api/v1/threads/{thread.removeprefix('commons/')}"


@pytest.mark.parametrize("how", ["withdraw", "remove"])
async def test_a_withdrawn_or_removed_thread_takes_others_comments_and_reactions_with_it(
        tmp_path: Path, database: str | None, how: str) -> None:
    canary, reaction, late = f"CANARY-child-{how}-61b0", "REACT-61b0", "LATE-CANARY-61b0"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob, carol, dave = await _setup(tmp_path, server.url,
                                               "alice", "bob", "carol", "dave")
        thread = await _post(alice, "doomed thread")
        other = await _post(alice, "other thread")
        comment = await _respond(bob, thread, comment=f"comment {canary}")
        react = await _respond(bob, thread, reaction=reaction)
        kept = await _respond(bob, other, comment="kept comment")
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary in out and reaction in out, out
        status, out = await mirror(dave, "commons", "read")  # dave caches the thread
        assert status == 0, out
        shown = await _get_json(_thread_api(server.url, thread))
        assert [c["body"] for c in shown["comments"]] == [f"comment {canary}"]
        assert shown["reactions"] == {reaction: 1}
        if how == "withdraw":
            status, out = await mirror(alice, "unpublish", thread.rsplit("/", 1)[-1], "--yes")
            assert status == 0, out
        else:
            await _moderate(server.url, op, "remove", thread)
        # The server deleted the children with the thread (every byte) and lists the thread
        # alone: readers find its children themselves.
        assert not {thread, comment, react} & set(server.hub.docs)
        assert canary.encode() not in _db_bytes(server.home)
        assert reaction.encode() not in _db_bytes(server.home)
        listed = await _get_json(server.url + "/api/v1/withdrawn")
        assert listed == {"withdrawn": [thread], "hidden": [], "blocked": []}
        threads = (await _get_json(server.url + "/api/v1/threads"))["threads"]
        assert [(t["title"], t["comments"]) for t in threads] == [("other thread", 1)]
        assert (await _get_json(server.url + "/api/v1/info"))["documents"] == 2
        # A third reader drops the thread and others' comments and reactions on it.
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0, out
        assert canary not in out and reaction not in out and "kept comment" in out
        assert await _cached(carol, thread, comment, react, kept) == [False, False, False, True]
        assert canary.encode() not in _home_db_bytes(carol)
        assert reaction.encode() not in _home_db_bytes(carol)
        # The commenter keeps his own items, and his syncs go on: the server does not
        # ask for them again.
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert await _cached(bob, thread, comment, react) == [False, True, True]
        # A comment that arrives later for the thread is refused, with the reason ...
        status, out = await mirror(dave, "commons", "comment", thread.rsplit("/", 1)[-1],
                                   "--body", late, "--yes")
        assert status != 0, out
        assert "the thread this comment belongs to was withdrawn or removed" in out
        assert late.encode() not in _db_bytes(server.home)
        # ... once: dave's next sync works, drops the thread and keeps his own comment.
        status, out = await mirror(dave, "commons", "read")
        assert status == 0, out
        status, published = await mirror(dave, "published", "--json")
        mine = str(json.loads(published)[-1]["doc_id"])
        assert await _cached(dave, thread, mine) == [False, True]
        assert mine not in server.hub.docs


async def test_a_hidden_threads_comments_and_reactions_are_withheld_until_unhidden(
        tmp_path: Path, database: str | None) -> None:
    canary, reaction, during = "CANARY-child-hidden-0d4e", "REACT-0d4e", "DURING-HIDE-0d4e"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob, carol = await _setup(tmp_path, server.url, "alice", "bob", "carol")
        thread = await _post(alice, "hidden thread")
        comment = await _respond(bob, thread, comment=f"comment {canary}")
        react = await _respond(bob, thread, reaction=reaction)
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary in out and reaction in out, out
        await _moderate(server.url, op, "hide", thread)
        listed = await _get_json(server.url + "/api/v1/withdrawn")
        assert listed == {"withdrawn": [], "hidden": [thread], "blocked": []}
        # Withheld on the server: offered to no reader, served to none.
        assert not {thread, comment, react} & {e.doc_id for e in server.hub.catalogue()}
        assert await server.hub.bundle(comment) == encode_bundle([])
        # A third reader drops them at the next sync.
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0, out
        assert canary not in out and reaction not in out
        assert await _cached(carol, thread, comment, react) == [False, False, False]
        assert canary.encode() not in _home_db_bytes(carol)
        # The commenter keeps his own; the author may still answer on her hidden thread,
        # and that answer is kept but withheld too.
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert await _cached(bob, comment, react) == [True, True]
        answer = await _respond(alice, thread, comment=during)
        assert answer in server.hub.docs and server.hub.docs[answer].hidden
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and during not in out, out
        # Unhidden, the thread comes back with its comments and reactions.
        await _moderate(server.url, op, "unhide", thread)
        shown = await _get_json(_thread_api(server.url, thread))
        assert [c["body"] for c in shown["comments"]] == [f"comment {canary}", during]
        assert shown["reactions"] == {reaction: 1}
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0, out
        assert canary in out and reaction in out and during in out
        assert await _cached(carol, thread, comment, react, answer) == [True] * 4


async def test_comments_on_a_blocked_authors_thread_are_withheld_until_unblocked(
        tmp_path: Path, database: str | None) -> None:
    canary = "CANARY-child-blocked-8a3f"
    op = AuthorKey(os.urandom(32))
    async with running_commons(tmp_path / "server", database=database, operator_key=op.public,
                               wall_clock=lambda: FROZEN) as server:
        alice, bob, carol = await _setup(tmp_path, server.url, "alice", "bob", "carol")
        thread = await _post(bob, "bob's thread")
        comment = await _respond(alice, thread, comment=f"comment {canary}")
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary in out, out
        bob_key = AuthorKeys(bob).default().public_hex
        await _moderate(server.url, op, "block", bob_key)
        assert comment not in {e.doc_id for e in server.hub.catalogue()}
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary not in out, out
        assert await _cached(carol, thread, comment) == [False, False]
        status, out = await mirror(alice, "commons", "read")
        assert status == 0, out
        assert await _cached(alice, comment) == [True]
        await _moderate(server.url, op, "unblock", bob_key)
        status, out = await mirror(carol, "commons", "read", "--json")
        assert status == 0 and canary in out, out
        assert await _cached(carol, thread, comment) == [True, True]


def _hostile_lists(inner: Any, body: bytes) -> Any:
    """The Commons app, except that /api/v1/withdrawn answers *body* in 64 KiB pieces."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v1/withdrawn":
            return await inner(scope, receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        for start in range(0, len(body), 64 * 1024):
            await send({"type": "http.response.body", "body": body[start:start + 64 * 1024],
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return None

    return app


@pytest.mark.parametrize(("body", "error"), [
    (b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
    (b'{"withdrawn": [' + b'"x",' * (2 * 1024 * 1024) + b'"x"]}', "more than"),
    (b'{"withdrawn": [], "hidden": {"a": 1}}', "'hidden' is not a list"),
    (b'{"withdrawn": "all"}', "'withdrawn' is not a list"),
    (b'["withdrawn"]', "not a JSON object"),
])
async def test_a_hostile_list_of_moderated_items_is_a_clear_note(
        tmp_path: Path, database: str | None, body: bytes, error: str) -> None:
    from commons_server.app import CommonsApp
    from commons_server.server import open_hub, serve_commons

    async with open_hub(tmp_path / "server", database=database) as hub, \
            trio.open_nursery() as nursery:
        url = await nursery.start(serve_commons, _hostile_lists(CommonsApp(hub), body),
                                  "127.0.0.1", 0)
        alice, bob = await _setup(tmp_path, url, "alice", "bob")
        doc_id = await _post(alice, "a thread")
        status, out = await mirror(bob, "commons", "read")
        assert status == 0, out
        assert "a thread" in out
        assert "could not check for withdrawn or moderated items" in out and error in out
        server = CommonsServer(url, hub.server_key)
        async with open_store(bob / "mirror.db") as store:
            with pytest.raises(node_commons.CommonsUnavailable, match=error):
                await node_commons.forget_withdrawn(store, server, AuthorKeys(bob))
            assert store.info(doc_id) is not None
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- rate limits


async def test_rate_limits_per_author_and_per_address(
    tmp_path: Path, database: str | None
) -> None:
    frozen: Callable[[], float] = lambda: 100.0  # no refill during the test  # noqa: E731
    limits = CommonsLimits(author_updates_per_minute=2, address_updates_per_minute=3)
    async with running_commons(tmp_path / "server", database=database, limits=limits,
                               clock=frozen) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        await _post(alice, "one")
        await _post(alice, "two")
        status, out = await mirror(alice, "commons", "post", "--title", "three", "--body", "b",
                                   "--yes")
        assert status != 0
        assert "rate limit: 2 updates per minute per author" in out
        await _post(bob, "bob one")  # third update from 127.0.0.1
        status, out = await mirror(bob, "commons", "post", "--title", "bob two", "--body", "b",
                                   "--yes")
        assert status != 0
        assert "rate limit: 3 updates per minute per address" in out
        assert server.hub.stats.refusals["RateLimited"] == 2
        assert sorted(t["title"] for t in await server.hub.threads(1)) == [
            "bob one", "one", "two"]


# --------------------------------------------------------------------------- T4


async def test_t4_local_and_devices_canaries_never_reach_the_commons(
    tmp_path: Path, database: str | None
) -> None:
    local_canary, private_canary, devices_canary = (
        "CANARY-local-c0ffee", "CANARY-private-b16b00", "CANARY-devices-facade")
    alice = tmp_path / "alice"
    status, _ = await mirror(alice, "reflect", f"today {local_canary}")
    assert status == 0
    status, _ = await mirror(alice, "reflect", "--private", f"secret {private_canary}")
    assert status == 0
    async with open_store(alice / "mirror.db") as store:
        from pycrdt import Map

        stored = await store.open_doc("notes/devices-canary", kind="notes",
                                      sync_class=SyncClass.DEVICES)
        stored.doc.get("n", type=Map)["x"] = devices_canary
        # Even a mislabelled commons-class doc named like a local one is never offered.
        bad = await store.open_doc(f"local/{local_canary}", kind="notes",
                                   sync_class=SyncClass.COMMONS)
        bad.doc.get("n", type=Map)["x"] = local_canary
    received: list[bytes] = []
    events: list[str] = []
    async with running_commons(tmp_path / "server", database=database) as server:
        inner = server.hub.observers
        inner.append(lambda address, event: events.append(repr(event)))
        (alice,) = await _setup(tmp_path, server.url, "alice")
        await _post(alice, "a public post")
        status, out = await mirror(alice, "commons", "read")
        assert status == 0, out
        recorded = "\n".join(events)
        for canary in (local_canary, private_canary, devices_canary):
            assert canary not in recorded
            assert canary.encode() not in _db_bytes(server.home)
        assert "a public post" in recorded or "Update" in recorded
        assert not any(d.startswith(("local/", "notes/", "journal")) for d in server.hub.docs)
    del received


# --------------------------------------------------------------------------- offline


async def test_offline_layer1_works_and_read_shows_the_cache(
    tmp_path: Path, database: str | None
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server:
        alice, bob = await _setup(tmp_path, server.url, "alice", "bob")
        await _post(alice, "cached thread")
        status, out = await mirror(bob, "commons", "read")
        assert "cached thread" in out
        server.stop()
    await trio.lowlevel.checkpoint()
    status, out = await mirror(bob, "reflect", "offline but fine", "--json")
    assert status == 0, out
    rid = json.loads(out)["id"]
    status, out = await mirror(bob, "list")
    assert status == 0 and "offline but fine" in out
    status, out = await mirror(bob, "show", rid)
    assert status == 0 and "offline but fine" in out
    status, out = await mirror(bob, "commons", "read")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("(offline: cannot reach")
    assert "cached thread" in out
    status, out = await mirror(bob, "commons", "read", "--json")  # still one JSON value
    assert status == 0, out
    assert [i["title"] for i in json.loads(out)] == ["cached thread"]
