"""Commons signatures name the server (issue 15, item 9; docs/decisions/0002).

The attack: a post withdrawn on one server was republished on another, under
its owner's valid signature, by anyone who had fetched its envelopes (any
reader). Now an envelope signs the key of the server it is published on: a
server refuses envelopes signed for another one (or unbound ones), and a reader
refuses them from a server that serves them anyway. Two Commons servers on
127.0.0.1 port 0 in the test's trio run, each on a database of its own, on both
engines (the ``database`` and ``another_database`` fixtures: SQLite files in each
server's home, or a real PostgreSQL database per server).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc

from crdt import SyncClass, open_store
from crdt.commons import (
    UPDATE_CONTEXT,
    AuthorKey,
    ForgedUpdate,
    decode_bundle,
    doc_from_envelopes,
    encode_bundle,
    make_doc_id,
    update_hash,
    verify_bundle,
    write_item,
)
from node.commons import sync as node_commons
from tests.commons_helpers import RunningServer, mirror, running_commons
from tests.test_commons_security import _post, _setup


def legacy_envelope(author: AuthorKey, doc_id: str, update: bytes) -> bytes:
    """A version-1 envelope, as signed before the binding (no server in it)."""
    sig = author.sign(UPDATE_CONTEXT, update_hash(doc_id, update))
    return bytes([1]) + author.public + sig + update


def post_update(title: str) -> bytes:
    doc: Doc[Any] = Doc()
    write_item(doc, "post", {"title": title, "body": "body",
                             "created_at": "2026-03-01T12:00:00Z"})
    return doc.get_update()


async def planted(server: RunningServer, doc_id: str, raw_envelopes: list[bytes]) -> None:
    """A malicious server: envelopes written straight into its store, past its checks."""
    store = server.hub.store
    stored = await store.open_doc(doc_id, kind="commons", sync_class=SyncClass.COMMONS)
    store.apply_enveloped(stored, [doc_from_envelopes(raw_envelopes).get_update()],
                          raw_envelopes, origin="test:malicious")
    await server.hub.load()
    assert doc_id in server.hub.docs


async def test_a_post_withdrawn_on_one_server_cannot_be_republished_on_another(
    tmp_path: Path, database: str | None, another_database: Callable[[], str | None],
) -> None:
    canary = "CANARY-republished-elsewhere-5b07"
    async with running_commons(tmp_path / "x", database=database) as x, running_commons(
        tmp_path / "y", database=another_database()
    ) as y:
        alice, mallory = await _setup(tmp_path, x.url, "alice", "mallory")
        doc_id = await _post(alice, f"Title {canary}")
        # What every reader of x is served: the owner's envelopes (mallory keeps them).
        harvested = await x.hub.bundle(doc_id)
        assert decode_bundle(harvested)
        status, out = await mirror(alice, "unpublish", doc_id.rsplit("/", 1)[-1], "--yes")
        assert status == 0, out
        # Straight to y's hub...
        with pytest.raises(ForgedUpdate, match="valid only on the server it was published on"):
            await y.hub.accept(doc_id, harvested, "203.0.113.7")
        # ...and through a protocol session, as mallory's node would offer it.
        status, out = await mirror(mallory, "commons", "add", y.url)
        assert status == 0, out

        class Republishing(node_commons.CommonsSync):
            async def catalogue(self) -> list[Any]:
                from protocol import COMMONS, CatalogueEntry

                return [CatalogueEntry(doc_id, COMMONS, bytes(32))]

            async def answer(self, request: Any) -> bytes:
                return harvested

        original = node_commons.CommonsSync
        node_commons.CommonsSync = Republishing  # type: ignore[misc]
        try:
            status, out = await mirror(mallory, "commons", "read")
        finally:
            node_commons.CommonsSync = original  # type: ignore[misc]
        assert status != 0 and "signature does not verify for this server" in out, out
        assert doc_id not in y.hub.docs and y.hub.stats.accepted_updates == 0
        assert all(canary not in t["title"] for t in await y.hub.threads(1))


async def test_a_reader_refuses_envelopes_signed_for_another_server(
    tmp_path: Path, database: str | None, another_database: Callable[[], str | None],
) -> None:
    canary = "CANARY-served-by-the-wrong-server-0d3c"
    async with running_commons(tmp_path / "x", database=database) as x, running_commons(
        tmp_path / "y", database=another_database()
    ) as y:
        (alice,) = await _setup(tmp_path, x.url, "alice")
        (bob,) = await _setup(tmp_path, y.url, "bob")
        doc_id = await _post(alice, f"Title {canary}")
        await planted(y, doc_id, decode_bundle(await x.hub.bundle(doc_id)))
        status, out = await mirror(bob, "commons", "read")
        assert status != 0 and "signature does not verify for this server" in out, out
        async with open_store(bob / "mirror.db") as store:
            assert store.info(doc_id) is None


async def test_unbound_envelopes_are_refused_by_servers_and_read_where_kept(
    tmp_path: Path, database: str | None,
) -> None:
    """Version 1 (before the binding): no server takes a new one; a reader still
    reads those a server kept from then."""
    async with running_commons(tmp_path / "server", database=database) as server:
        (bob,) = await _setup(tmp_path, server.url, "bob")
        alice = AuthorKey(os.urandom(32))
        doc_id = make_doc_id("post", alice.public, os.urandom(8))
        old = legacy_envelope(alice, doc_id, post_update("from before the binding"))
        with pytest.raises(ForgedUpdate, match="not bound to a server"):
            await server.hub.accept(doc_id, encode_bundle([old]), "t")
        await planted(server, doc_id, [old])  # kept by a server from before
        status, out = await mirror(bob, "commons", "read")
        assert status == 0 and "from before the binding" in out, out


async def test_an_author_publishes_on_two_servers_with_one_signature_each(
    tmp_path: Path, database: str | None, another_database: Callable[[], str | None],
) -> None:
    """Each server takes the envelope signed for it; a withdrawal names no server, so
    replayed on the other one it deletes the owner's own item there too."""
    async with running_commons(tmp_path / "x", database=database) as x, running_commons(
        tmp_path / "y", database=another_database()
    ) as y:
        alice = AuthorKey(os.urandom(32))
        doc_id = make_doc_id("post", alice.public, os.urandom(8))
        update = post_update("on both servers")
        for_x = alice.envelope(doc_id, update, x.hub.server_key)
        for_y = alice.envelope(doc_id, update, y.hub.server_key)
        assert for_x != for_y
        verify_bundle(doc_id, encode_bundle([for_x]), x.hub.server_key)
        with pytest.raises(ForgedUpdate):
            verify_bundle(doc_id, encode_bundle([for_x]), y.hub.server_key, legacy=True)
        assert await x.hub.accept(doc_id, encode_bundle([for_x]), "t") == 1
        assert await y.hub.accept(doc_id, encode_bundle([for_y]), "t") == 1
        withdrawal = alice.withdrawal(doc_id)
        assert await x.hub.withdraw(doc_id, withdrawal)
        assert await y.hub.withdraw(doc_id, withdrawal)  # replayed: the owner's wish
        assert doc_id not in x.hub.docs and doc_id not in y.hub.docs
