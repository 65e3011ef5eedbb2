"""Commons sessions run on the node's SyncSession: refusals, order, slow and silent clients.

The server side is ``hub_session`` (a SyncSession with HubDocuments); the node
side is a SyncSession with ``node.commons.CommonsSync``. Most tests join the two
over in-memory streams; the slow and silent clients drive the ASGI app itself
in-process, as hypercorn would, with a client that stops reading.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import commons_server.limits as L
from commons_server.app import CommonsApp
from commons_server.hub import Hub
from commons_server.hub_documents import HubDocuments, hub_session
from commons_server.limits import CommonsLimits
from commons_server.server import open_hub
from crdt import DocStore, open_store
from crdt.commons import (
    BOUND_UPDATE_CONTEXT,
    AuthorKey,
    encode_bundle,
    make_doc_id,
    public_group_secret,
    update_hash,
    write_item,
)
from node.commons import sync as node_commons
from node.commons.home import AuthorKeys, CommonsServer, create_item
from node.commons.sync import CommonsSync
from node.sync.session import SessionError, SyncSession
from protocol import (
    COMMONS,
    INITIATOR,
    NEED_DATA,
    RESPONDER,
    CatalogueEntry,
    CloseCode,
    Connection,
    Credentials,
    HandshakeComplete,
    StateVectorReceived,
)
from protocol.limits import HANDSHAKE_TIMEOUT_S, HEARTBEAT_INTERVAL_S
from tests.commons_helpers import mirror, running_commons
from tests.sync_helpers import wait_for

BIG = CommonsLimits(author_updates_per_minute=10**6, address_updates_per_minute=10**6,
                    address_requests_per_minute=10**6)


@dataclass
class Node:
    store: DocStore
    keys: AuthorKeys
    author: AuthorKey


@asynccontextmanager
async def node_home(path: Path) -> AsyncIterator[Node]:
    await trio.Path(path).mkdir(parents=True)
    keys = AuthorKeys(path)
    author = keys.create()
    async with open_store(path / "mirror.db") as store:
        yield Node(store, keys, author)


def client_session(node: Node, hub: Hub, stream: trio.abc.Stream,
                   documents: CommonsSync | None = None) -> SyncSession:
    documents = documents or CommonsSync(
        node.store, CommonsServer("http://commons.test", hub.server_key), node.keys, set())
    return SyncSession(None, None, stream, INITIATOR, documents=documents)


async def run_both(client: SyncSession, server: SyncSession) -> dict[str, str]:
    """Run a client and a server session to their ends; how each one failed, if it did."""
    failures: dict[str, str] = {}

    async def run(name: str, session: SyncSession) -> None:
        try:
            await session.run()
        except SessionError as exc:
            failures[name] = str(exc)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "client", client)
            nursery.start_soon(run, "server", server)
    return failures


def forged_bundle(doc_id: str, owner: AuthorKey, forger: AuthorKey, server_key: bytes) -> bytes:
    """An envelope for *server_key* that names *owner* but carries *forger*'s signature."""
    from pycrdt import Doc

    doc: Doc[Any] = Doc()
    write_item(doc, "post", {"title": "FORGED", "body": "forged", "created_at": "2026"})
    update = doc.get_update()
    sig = forger.sign(BOUND_UPDATE_CONTEXT, update_hash(doc_id, update, server_key))
    return encode_bundle([bytes([2]) + owner.public + sig + update])


# --------------------------------------------------------------------------- the session code


async def test_server_and_node_run_the_node_session_code(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import commons_server

    # One session driver: the Commons server's own one is gone.
    assert not (Path(commons_server.__file__).parent / "session.py").exists()
    clients: list[SyncSession] = []

    class Recording(SyncSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(node_commons, "SyncSession", Recording)
    async with running_commons(tmp_path / "server", database=database) as server:
        servers: list[SyncSession] = []
        server.hub.observers.append(lambda _a, _e: servers.extend(server.app.sessions))
        alice = tmp_path / "alice"
        assert (await mirror(alice, "commons", "add", server.url))[0] == 0
        status, out = await mirror(alice, "commons", "post", "--title", "t", "--body", "b",
                                   "--yes")
        assert status == 0, out
    assert servers and {type(s) for s in servers} == {SyncSession}
    assert all(isinstance(s.documents, HubDocuments) for s in servers)
    assert [type(c.documents) for c in clients] == [CommonsSync]
    assert clients[0].role is INITIATOR and clients[0].stats.updates_out == 1


# --------------------------------------------------------------------------- refusals and order


async def test_a_refused_update_is_closed_with_not_authorised_and_the_reason(
    tmp_path: Path, database: str | None,
) -> None:
    limits = CommonsLimits(author_updates_per_minute=1)
    async with open_hub(tmp_path / "server", database=database, limits=limits,
                        clock=lambda: 100.0) as hub, \
            node_home(tmp_path / "alice") as alice:
        for title in ("one", "two"):
            await create_item(alice.store, alice.author, "post", {"title": title, "body": "b"})
        left, right = trio.testing.memory_stream_pair()
        client = client_session(alice, hub, left)
        failures = await run_both(client, hub_session(hub, "192.0.2.7", right))
        reason = "rate limit: 1 updates per minute per author"
        assert client.peer_close is not None
        assert client.peer_close.code == CloseCode.NOT_AUTHORISED
        assert client.peer_close.reason == reason
        assert failures == {"server": f"protocol: {reason}"}
        assert len(hub.catalogue()) == 1  # the first was accepted, the second changed nothing
        assert hub.stats.refusals == {"RateLimited": 1}


async def test_a_heartbeat_ack_proves_every_earlier_update_was_accepted(
    tmp_path: Path, database: str | None
) -> None:
    async with open_hub(tmp_path / "server", database=database, limits=BIG) as hub, \
            node_home(tmp_path / "alice") as alice:
        posts = {(await create_item(alice.store, alice.author, "post",
                                    {"title": f"post {i}", "body": "b"})).doc_id
                 for i in range(30)}
        left, right = trio.testing.memory_stream_pair()
        client, server = client_session(alice, hub, left), hub_session(hub, "a", right)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            nursery.start_soon(server.run)
            with trio.fail_after(20):
                await client.caught_up.wait()
                assert await client.wait_acknowledged()
            # Checked at once, with no other wait: the answer came after the server
            # had accepted (and committed) every update sent before the heartbeat.
            assert {e.doc_id for e in hub.catalogue()} == posts
            client.close_soon("done", CloseCode.NORMAL)
        assert client.peer_close is None


async def test_a_forged_update_is_refused_by_the_server_session(
    tmp_path: Path, database: str | None
) -> None:
    async with open_hub(tmp_path / "server", database=database, limits=BIG) as hub, \
            node_home(tmp_path / "mallory") as mallory:
        alice = AuthorKey(os.urandom(32))
        doc_id = make_doc_id("post", alice.public, os.urandom(8))

        class Forging(CommonsSync):
            async def catalogue(self) -> list[CatalogueEntry]:
                return [CatalogueEntry(doc_id, COMMONS, bytes(32))]

            async def answer(self, request: StateVectorReceived) -> bytes:
                return forged_bundle(doc_id, alice, mallory.author, hub.server_key)

        left, right = trio.testing.memory_stream_pair()
        documents = Forging(mallory.store, CommonsServer("http://x", hub.server_key),
                            mallory.keys, set())
        client = client_session(mallory, hub, left, documents)
        failures = await run_both(client, hub_session(hub, "a", right))
        assert client.peer_close is not None
        assert client.peer_close.code == CloseCode.PROTOCOL_ERROR
        assert "signature does not verify" in client.peer_close.reason
        assert "signature does not verify" in failures["server"]
        assert hub.catalogue() == [] and hub.stats.accepted_updates == 0


async def test_a_forged_update_from_the_server_is_refused_by_the_node_session(
    tmp_path: Path, database: str | None,
) -> None:
    async with open_hub(tmp_path / "server", database=database, limits=BIG) as hub, \
            node_home(tmp_path / "bob") as bob:
        alice, forger = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
        doc_id = make_doc_id("post", alice.public, os.urandom(8))

        class LyingHub(HubDocuments):
            async def catalogue(self) -> list[CatalogueEntry]:
                return [CatalogueEntry(doc_id, COMMONS, bytes(32))]

            async def answer(self, request: StateVectorReceived) -> bytes:
                return forged_bundle(doc_id, alice, forger, hub.server_key)

        left, right = trio.testing.memory_stream_pair()
        client = client_session(bob, hub, left)
        server = SyncSession(None, None, right, RESPONDER, documents=LyingHub(hub, "a"))
        failures = await run_both(client, server)
        assert "signature does not verify" in failures["client"]
        assert server.peer_close is not None
        assert server.peer_close.code == CloseCode.PROTOCOL_ERROR
        assert bob.store.info(doc_id) is None


# --------------------------------------------------------------------------- over ASGI


class InProcessClient:
    """A WebSocket client of :class:`CommonsApp` in-process, as hypercorn would run it.

    It completes the protocol handshake (unless told not to), then never writes
    again. With ``stall_after_handshake`` it also stops reading: every later
    ``send`` of the app blocks and, like hypercorn's socket writes, cannot be
    cancelled (until :attr:`release` is set).
    """

    def __init__(self, app: CommonsApp, server_key: bytes, *, handshake: bool = True,
                 stall_after_handshake: bool = False) -> None:
        self.app = app
        self.conn = Connection(INITIATOR, Credentials(
            device_seed=os.urandom(32), group_secret=public_group_secret(server_key),
            epoch=0, known_devices=frozenset({server_key})), os.urandom, shareable=[COMMONS])
        self.handshake = handshake
        self.stall = stall_after_handshake
        self.to_app, self._from_client = trio.open_memory_channel[dict[str, Any]](64)
        self.release = trio.Event()
        self.closed = trio.Event()
        self.handshake_done = False
        self.messages_taken = 0
        self.bytes_taken = 0
        self.stalled_sends = 0

    async def run(self) -> None:
        scope = {"type": "websocket", "path": "/v1/commons", "client": ("192.0.2.9", 4000)}
        self.to_app.send_nowait({"type": "websocket.connect"})
        await self.app(scope, self._from_client.receive, self._send)

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if self.handshake:
                self.to_app.send_nowait({"type": "websocket.receive",
                                         "bytes": self.conn.data_to_send()})
            return
        if kind == "websocket.close":
            self.closed.set()
            return
        if self.stall and self.handshake_done:
            self.stalled_sends += 1
            with trio.CancelScope(shield=True):
                await self.release.wait()
            return
        self.messages_taken += 1
        self.bytes_taken += len(message["bytes"])
        was_done = self.handshake_done
        self.conn.receive_data(message["bytes"])
        while (event := self.conn.next_event()) is not NEED_DATA:
            if isinstance(event, HandshakeComplete):
                self.handshake_done = True
        out = self.conn.data_to_send()  # FINISH; later only heartbeat answers, never sent
        if self.handshake and not was_done and out:
            self.to_app.send_nowait({"type": "websocket.receive", "bytes": out})


async def _accept_post(hub: Hub, author: AuthorKey, i: int) -> None:
    from pycrdt import Doc

    doc_id = make_doc_id("post", author.public, os.urandom(8))
    doc: Doc[Any] = Doc()
    write_item(doc, "post", {"title": f"live {i}", "body": "x" * 500,
                             "created_at": "2026-03-01T12:00:00Z"})
    await hub.accept(doc_id, encode_bundle([author.envelope(doc_id, doc.get_update(),
                                                            hub.server_key)]),
                     "198.51.100.1")


async def test_a_client_that_stops_reading_is_dropped_with_bounded_memory(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mirror.commons.http")
    monkeypatch.setattr(L, "SESSION_QUEUE_MESSAGES", 8)
    async with open_hub(tmp_path / "server", database=database, limits=BIG) as hub:
        app = CommonsApp(hub)
        client = InProcessClient(app, hub.server_key, stall_after_handshake=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            await wait_for(lambda: bool(app.sessions)
                           and all(s.handshake_done.is_set() for s in app.sessions))
            (session,) = app.sessions
            assert hub.stats.sessions == 1
            author = AuthorKey(os.urandom(32))
            for i in range(40):  # far more live updates than the session may queue
                await _accept_post(hub, author, i)
            await wait_for(lambda: not app.sessions)
            # Dropped: no longer a hub listener, its queue never beyond its bound, and
            # the ASGI server holds one write (the stalled one) besides the outbox.
            assert hub.stats.sessions == 0
            assert client.stalled_sends == 1
            held = (session.pending(), session.stats.frames_out, session.stats.bytes_out)
            assert held[0] <= L.SESSION_QUEUE_MESSAGES
            for i in range(40, 60):  # nothing more is sealed or queued for it
                await _accept_post(hub, author, i)
            assert (session.pending(), session.stats.frames_out,
                    session.stats.bytes_out) == held
            assert session.stats.updates_out < 40
            client.release.set()  # the stalled write returns; the app then ends
            with trio.fail_after(5):
                await client.closed.wait()
    assert "session from 192.0.2.9 ended: peer too slow: send queue full" in caplog.text


async def test_a_client_that_never_completes_the_handshake_is_dropped(
    tmp_path: Path, database: str | None, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_hub(tmp_path / "server", database=database) as hub:
        app = CommonsApp(hub)
        client = InProcessClient(app, hub.server_key, handshake=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            start = trio.current_time()
            with trio.fail_after(10 * HANDSHAKE_TIMEOUT_S):
                await client.closed.wait()
            elapsed = trio.current_time() - start
        assert elapsed == pytest.approx(HANDSHAKE_TIMEOUT_S, abs=1)
        assert not app.sessions and hub.stats.sessions == 0


async def test_a_silent_client_is_closed_after_the_idle_timeout(
    tmp_path: Path, database: str | None, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_hub(tmp_path / "server", database=database) as hub:
        app = CommonsApp(hub)
        client = InProcessClient(app, hub.server_key)  # reads all, but never writes again
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            await wait_for(lambda: client.handshake_done)
            start = trio.current_time()
            with trio.fail_after(10 * L.IDLE_TIMEOUT_S):
                await client.closed.wait()
            elapsed = trio.current_time() - start
        assert L.IDLE_TIMEOUT_S <= elapsed <= L.IDLE_TIMEOUT_S + 2 * HEARTBEAT_INTERVAL_S
        assert not app.sessions and hub.stats.sessions == 0



class GatedStream(trio.abc.Stream):
    """A stream whose reader can be stopped and started (a reader slower than the server)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.reading = trio.Event()
        self.reading.set()

    def stop(self) -> None:
        self.reading = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await self.reading.wait()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_catch_up_larger_than_the_send_queue_is_paced_not_dropped(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new reader asks for five times more documents than the server may queue for
    it, then stops reading: the server waits for it instead of dropping it, and when
    it reads again every document arrives."""
    monkeypatch.setattr(L, "SESSION_QUEUE_MESSAGES", 8)
    async with open_hub(tmp_path / "server", database=database, limits=BIG) as hub, \
            node_home(tmp_path / "bob") as bob:
        author = AuthorKey(os.urandom(32))
        for i in range(40):
            await _accept_post(hub, author, i)
        # Lockstep: the server's writes wait for the reader, as on a slow link.
        left, right = trio.testing.lockstep_stream_pair()
        stream = GatedStream(left)
        server_key = hub.server_key

        class AsksThenStops(CommonsSync):
            async def wanted(self, offered: Any) -> Any:
                stream.stop()  # after this the reader reads nothing until told
                return await super().wanted(offered)

        documents = AsksThenStops(bob.store, CommonsServer("http://commons.test", server_key),
                                  bob.keys, set())
        client = client_session(bob, hub, stream, documents)
        server = hub_session(hub, "198.51.100.2", right)
        ended: list[str] = []

        async def run_server() -> None:
            try:
                await server.run()
            except SessionError as exc:
                ended.append(str(exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            nursery.start_soon(run_server)
            # The server fills what it may queue (or, without pacing, overflows and ends).
            await wait_for(lambda: server.pending() >= L.SESSION_QUEUE_MESSAGES // 2
                           or bool(ended))
            assert not ended
            assert server.stats.updates_out < 40  # it is waiting, not answering ahead
            stream.reading.set()
            with trio.fail_after(20):
                await client.caught_up.wait()
                assert await client.wait_acknowledged()
            client.close_soon("done", CloseCode.NORMAL)
        assert ended == []
        assert len(bob.store.documents("commons")) == 40
