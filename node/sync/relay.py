"""Sessions and pairing through a relay: the node's client side of ``relay/``.

Theory of operation
-------------------
A relay forwards the binary messages of a WebSocket connection to the other
connections of the same *room* and tells each connection who is there
(``present N`` on arrival, ``joined N``, ``left N``). Binary messages are
chunks of the ordinary byte stream of the sync protocol, so a
:class:`RelayStream` is just a ``trio.abc.HalfCloseableStream`` that a
:class:`~node.sync.session.SyncSession` drives exactly as it drives TCP; the
device handshake runs inside and the relay sees ciphertext only.

Rooms. Two devices of a person meet in a *pair room*:
``KDF(relay_room_id(group secret, epoch), sorted device keys)`` — only devices of
the group can compute it, and each pair has its own room, so a room holds two
parties and the relay's broadcast is a point-to-point link. A new epoch
(after a removal) gives new rooms; a peer that was offline then still waits in
its epoch's room, so a device also keeps the pair rooms of a few earlier epochs
the peer belonged to, runs the session there at that epoch (the peer learns the
new epoch from the membership document and moves), and leaves them once the
peer has synced at the current epoch (see :class:`RelayLinks`). A removed
device knows the old rooms but is refused by its key, as on the LAN. A joining
device meets the pairing device in a *rendezvous room* derived from 10 bits of
the code (see :func:`~protocol.relay.rendezvous_room`).

Who speaks first. A connection that finds the room occupied (``present N``,
N >= 1) is the initiator and sends at once; a connection already in the room
becomes the responder when ``joined`` arrives. The relay queues ``joined`` to
the members before the newcomer can send, so a member switches to a fresh
session exactly before the newcomer's first bytes. A ``joined`` during a
session means the other device came back (its old connection is stale): the
member ends the old session and answers the new one on the same connection.
A ``left 0`` ends the session's stream (the peer is gone). Any other end of a
session closes the connection; the client reconnects with backoff, finds the
peer present and initiates.

Placement. With several relays, every device ranks them for a room by
rendezvous hashing (highest ``BLAKE2b(room || url)`` first) and uses the first
that accepts; devices with the same relay list meet without talking. Behind
one URL a proxy may hash rooms to instances instead (docs/relay.md). Either
way a room's place can change under a device that waits alone (its instance
died, the device moved to the next, the instance came back and a peer arriving
now goes there), so a connection alone in its room for
:data:`REJOIN_ALONE_AFTER_S` is reopened and finds the room where it is now.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import trio
import wsproto.events
import wsproto.utilities
from httpx_ws import (
    WebSocketDisconnect,
    WebSocketUpgradeError,
    aconnect_ws,
)

from protocol import INITIATOR, RESPONDER, Role
from protocol.relay import (
    PresenceKind,
    pair_room,
    parse_presence,
    relay_rank,
    rendezvous_room,
    room_path,
)

from ..config import Config, is_loopback_or_lan, normalize_relay_url
from ..errors import MirrorError
from ..identity import device_id_for
from .backoff import Backoff, jittered
from .boundary import NETWORK_ERRORS, STREAM_ERRORS, map_exceptions
from .limits import (
    CONNECT_TIMEOUT_S,
    MAX_EARLIER_EPOCH_ROOMS,
    MAX_RECEIVE_MESSAGE_BYTES,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    RECEIVE_QUEUE_MESSAGES,
    REJOIN_ALONE_AFTER_S,
    RELAY_BACKOFF_MAX_S,
    RELAY_BACKOFF_MIN_S,
    RELAY_CHUNK_BYTES,
)
from .message_stream import MessageStream
from .pairing import PairingFailed, join, serve_pairing_attempt

if TYPE_CHECKING:
    from protocol.pairing import JoinedGroup

    from .group import Group
    from .pairing import PairerState
    from .service import SyncService

log = logging.getLogger("mirror.relay")


class RelayUnavailable(MirrorError):
    """No configured relay accepted the connection."""


# --------------------------------------------------------------------------- rooms and URLs
# The rooms (pair_room, rendezvous_room), their paths and the presence texts are
# the relay's wire contract: protocol.relay owns them, spec/relay.md states them.


def room_url(relay: str, room: bytes) -> str:
    """The WebSocket URL of *room* on *relay*."""
    base = normalize_relay_url(relay)
    scheme = "wss" if base.startswith("https:") else "ws"
    return scheme + base[base.index(":"):] + room_path(room)


def rank_relays(relays: Sequence[str], room: bytes) -> list[str]:
    """*relays* in rendezvous-hashing order for *room* (best first); a relay written
    twice (``https://r.example/`` and ``https://r.example``) is tried once."""
    distinct: dict[str, str] = {}
    for url in relays:
        distinct.setdefault(normalize_relay_url(url), url)
    ranked = sorted(distinct, key=lambda normal: relay_rank(room, normal), reverse=True)
    return [distinct[normal] for normal in ranked]


# --------------------------------------------------------------------------- the stream


@dataclass
class RelayClientStatistics:
    """This node's counters for its relay connections (the relay server has its own,
    ``relay.RelayStatistics``)."""

    connects: int = 0
    connect_failures: int = 0
    sessions: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class RelayStream(MessageStream, trio.abc.HalfCloseableStream):
    """One session's view of a room connection: bytes to and from the peer.

    Reading returns the peer's bytes in order, then ``b""`` when the peer left,
    the relay connection ended, or a newer session replaced this one. Writing
    after that raises ``trio.BrokenResourceError``.
    """

    chunk_bytes = RELAY_CHUNK_BYTES

    def __init__(self, room: RoomConnection, role: Role) -> None:
        super().__init__()
        self.role = role
        self._room = room
        self._send, self._receive = trio.open_memory_channel[bytes](RECEIVE_QUEUE_MESSAGES)
        self.superseded = False
        self._ended = False  # no more input (peer left / replaced / connection lost)

    @property
    def relay(self) -> str:
        return self._room.relay

    def _feed_nowait(self) -> None:
        """Make readers see end of stream."""
        if not self._ended:
            self._ended = True
            self._send.close()

    async def _feed(self, data: bytes) -> None:
        if self._ended or self._closed:
            return
        try:
            await self._send.send(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _next_message(self) -> bytes | None:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return None

    async def _send_message(self, data: bytes) -> None:
        if self._ended:
            raise trio.BrokenResourceError("the peer left the relay room")
        await self._room.send_bytes(data)

    async def send_eof(self) -> None:
        # A WebSocket cannot half-close; the protocol's Close message and the
        # relay's "left" tell the peer the session is over.
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        self._feed_nowait()
        self._receive.close()
        await trio.lowlevel.checkpoint()


# --------------------------------------------------------------------------- one connection


class RoomConnection:
    """An open WebSocket connection to one room of one relay."""

    def __init__(self, ws: Any, relay: str, stats: RelayClientStatistics) -> None:
        self._ws = ws
        self.relay = relay
        self.stats = stats
        self.current: RelayStream | None = None
        self._offers, self._offered = trio.open_memory_channel[RelayStream](4)
        self._rejoin_after_s = math.inf
        self._alone = trio.CancelScope()  # its deadline: when to give up waiting alone
        self.rejoined = False
        """The connection ended because nobody came (see REJOIN_ALONE_AFTER_S)."""

    async def send_bytes(self, data: bytes) -> None:
        with map_exceptions({STREAM_ERRORS: _lost}):
            await self._ws.send_bytes(data)
        self.stats.messages_out += 1
        self.stats.bytes_out += len(data)

    def _offer(self, role: Role) -> None:
        if self.current is not None:
            self.current.superseded = True
            self.current._feed_nowait()
        self.current = RelayStream(self, role)
        try:
            self._offers.send_nowait(self.current)
        except trio.WouldBlock:  # a relay announcing arrivals faster than sessions start
            self.current._feed_nowait()

    async def _pump(self) -> None:
        """Read the connection: presence messages start sessions, bytes feed them."""
        try:
            while True:
                event = await self._ws.receive()
                if isinstance(event, wsproto.events.BytesMessage):
                    data = bytes(event.data)
                    self.stats.messages_in += 1
                    self.stats.bytes_in += len(data)
                    if self.current is not None:
                        await self.current._feed(data)
                elif isinstance(event, wsproto.events.TextMessage):
                    self._presence(str(event.data))
        except WebSocketDisconnect as exc:
            log.info("relay %s closed the connection (%s %s)", self.relay, exc.code, exc.reason)
        except NETWORK_ERRORS as exc:
            log.info("relay %s: connection lost (%s)", self.relay, type(exc).__name__)
        finally:
            if self.current is not None:
                self.current._feed_nowait()
            self._offers.close()

    def _presence(self, text: str) -> None:
        presence = parse_presence(text)
        if presence is None:
            log.debug("relay %s sent an unknown message", self.relay)
            return
        what, others = presence.kind, presence.others
        if what in (PresenceKind.PRESENT, PresenceKind.LEFT):
            self._alone.deadline = (trio.current_time() + self._rejoin_after_s if others == 0
                                    else math.inf)
        elif what is PresenceKind.JOINED:
            self._alone.deadline = math.inf
        if what is PresenceKind.PRESENT and others >= 1 and self.current is None:
            self._offer(INITIATOR)
        elif what is PresenceKind.JOINED:
            self._offer(RESPONDER)
        elif what is PresenceKind.LEFT and others == 0 and self.current is not None:
            self.current._feed_nowait()

    async def _rejoin_when_alone(self, connection: trio.CancelScope) -> None:
        with self._alone:
            await trio.sleep_forever()
        # Only our own deadline gets here (any outer cancellation propagates).
        log.debug("relay %s: alone in the room for %.0f s, reopening it",
                  self.relay, self._rejoin_after_s)
        self.rejoined = True
        connection.cancel()

    async def serve(
        self,
        on_session: Callable[[RelayStream], Awaitable[None]],
        *,
        rejoin_alone_after_s: float = math.inf,
    ) -> None:
        """Run sessions until one ends other than by being replaced, or until the
        connection has been alone in the room for *rejoin_alone_after_s*."""
        self._rejoin_after_s = rejoin_alone_after_s
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump)
            nursery.start_soon(self._rejoin_when_alone, nursery.cancel_scope)

            async def one(stream: RelayStream) -> None:
                self.stats.sessions += 1
                try:
                    await on_session(stream)
                finally:
                    await stream.aclose()
                if not stream.superseded:
                    nursery.cancel_scope.cancel()

            async for stream in self._offered:
                nursery.start_soon(one, stream)
            # The connection ended; sessions finish on their end of stream.


@asynccontextmanager
async def open_room(
    relays: Sequence[str],
    room: bytes,
    *,
    client: httpx.AsyncClient | None = None,
    stats: RelayClientStatistics | None = None,
) -> AsyncIterator[RoomConnection]:
    """Connect to *room* on the first relay, in rendezvous order, that accepts."""
    stats = stats or RelayClientStatistics()
    if not relays:
        raise RelayUnavailable("no relay is configured (mirror relay add URL)")
    async with _client(client) as http:
        failures = []
        for relay in rank_relays(relays, room):
            # No trio.fail_after here: the session opens a task group that outlives
            # this statement; the client's own timeouts bound the handshake.
            ws_cm: Any = aconnect_ws(
                room_url(relay, room), http,
                max_message_size_bytes=MAX_RECEIVE_MESSAGE_BYTES,
                keepalive_ping_interval_seconds=PING_INTERVAL_S,
                keepalive_ping_timeout_seconds=PING_TIMEOUT_S,
            )
            try:
                ws = await ws_cm.__aenter__()
            except NETWORK_ERRORS as exc:
                stats.connect_failures += 1
                failures.append(f"{relay}: {_describe(exc)}")
                continue
            stats.connects += 1
            connection = RoomConnection(ws, normalize_relay_url(relay), stats)
            # The session's task group was opened above, in this frame; its exit
            # (which also closes the WebSocket) must run here too, with the outcome.
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_exit(ws_cm)
                yield connection
            return
        raise RelayUnavailable("no relay accepted the connection: " + "; ".join(failures))


@asynccontextmanager
async def _client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_S) as fresh:
        yield fresh


def _lost(exc: BaseException) -> trio.BrokenResourceError:
    return trio.BrokenResourceError(f"relay connection lost: {exc}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, WebSocketUpgradeError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- staying in a room


async def stay_in_room(
    relays: Sequence[str],
    room: Callable[[], bytes],
    on_session: Callable[[RelayStream], Awaitable[None]],
    *,
    stats: RelayClientStatistics | None = None,
    rng: random.Random | None = None,
    rejoin_alone_after_s: float = REJOIN_ALONE_AFTER_S,
) -> None:
    """Keep a connection to a room (reconnecting with backoff) until cancelled.

    *room* is called before each connection (the group's epoch may change).
    Each session runs ``on_session(stream)`` with ``stream.role`` telling who
    speaks first. A connection alone in the room for *rejoin_alone_after_s*
    (jittered) is reopened: see :data:`REJOIN_ALONE_AFTER_S`.
    """
    stats = stats or RelayClientStatistics()
    rng = rng or random.Random()
    backoff = Backoff(RELAY_BACKOFF_MIN_S, RELAY_BACKOFF_MAX_S, rng)
    async with httpx.AsyncClient(timeout=CONNECT_TIMEOUT_S) as http:
        while True:
            started = trio.current_time()
            rejoined = False
            try:
                async with open_room(relays, room(), client=http, stats=stats) as connection:
                    await connection.serve(
                        on_session,
                        rejoin_alone_after_s=jittered(rejoin_alone_after_s, rng))
                    rejoined = connection.rejoined
            except RelayUnavailable as exc:
                log.debug("%s", exc)
            if rejoined or trio.current_time() - started > RELAY_BACKOFF_MAX_S:
                backoff.reset()  # not a failure: start again from the shortest wait
            await backoff.wait()


# --------------------------------------------------------------------------- sessions of a node


def usable_relays(config: Config) -> tuple[str, ...]:
    """The configured relays this node may reach in its mode.

    In ``local`` mode a node talks to nothing beyond the LAN, so only relays on
    this machine or the LAN count; ``hybrid`` and ``cloud`` use them all.
    """
    relays = tuple(config.relays)
    if config.mirror_mode == "local":
        return tuple(r for r in relays if is_loopback_or_lan(r))
    return relays


class RelayLinks:
    """Keep a relay room open with each other device of the group while no
    direct (LAN) session with it exists; sessions run in the SyncService.

    Each link is a (peer, epoch) pair room. The current epoch's room is always
    kept. After a removal (a new epoch), a peer that was offline still waits in
    the room of the epoch it knows, so this device also keeps the rooms of up to
    ``MAX_EARLIER_EPOCH_ROOMS`` earlier epochs in which the peer was a member,
    and runs sessions there at that epoch; the peer learns the new epoch from
    the membership document and moves. Once the peer has completed a handshake
    at the current epoch (``SyncService.peer_epochs``) the older rooms are left.
    Without any epoch change there is one room per peer.
    """

    REFRESH_S = 1.0

    def __init__(self, service: SyncService, relays: Sequence[str]) -> None:
        self.service = service
        self.relays = tuple(normalize_relay_url(r) for r in relays)
        self.stats = RelayClientStatistics()
        self.rooms: set[tuple[str, int]] = set()
        """The links held now: (peer device id, epoch)."""

    def wanted(self) -> set[tuple[bytes, int]]:
        """The (peer key, epoch) rooms to hold now."""
        group = self.service.group
        ring = group.keyring
        links: set[tuple[bytes, int]] = set()
        if group.excluded:
            return links  # this device was removed: no room would admit it
        for record in group.active():
            if record.public_key == ring.device_public:
                continue
            links.add((record.public_key, ring.epoch))
            known = self.service.peer_epochs.get(record.device_id, -1)
            if known >= ring.epoch:
                continue  # it has the current epoch: no older room is needed
            earlier = [e for e in group.epochs_shared_with(record.device_id)
                       if known <= e < ring.epoch]
            links.update((record.public_key, e) for e in earlier[:MAX_EARLIER_EPOCH_ROOMS])
        return links

    async def run(self) -> None:
        running: dict[tuple[bytes, int], trio.CancelScope] = {}
        async with trio.open_nursery() as nursery:
            while True:
                changed = self.service.changed
                wanted = self.wanted()
                for link in wanted - running.keys():
                    running[link] = await nursery.start(self._peer, *link)
                for link in running.keys() - wanted:
                    running.pop(link).cancel()
                # A session at a new epoch (or the group's own changes) can drop a link.
                with trio.move_on_after(self.REFRESH_S):
                    await changed.wait()

    def _direct(self, peer_id: str) -> bool:
        session = self.service.sessions.get(peer_id)
        return session is not None and not session.stats.address.startswith("relay:")

    async def _peer(
        self,
        key: bytes,
        epoch: int,
        *,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        peer_id = device_id_for(key)
        ring = self.service.group.keyring
        room = pair_room(ring.epochs[epoch], epoch, ring.device_public, key)
        with trio.CancelScope() as scope:
            task_status.started(scope)
            self.rooms.add((peer_id, epoch))
            try:
                while True:
                    while self._direct(peer_id):
                        await self.service.changed.wait()
                    async with trio.open_nursery() as nursery:

                        async def leave_when_direct() -> None:
                            while not self._direct(peer_id):
                                await self.service.changed.wait()
                            log.debug("direct session with %s: leaving the relay room", peer_id)
                            nursery.cancel_scope.cancel()

                        async def session(stream: RelayStream) -> None:
                            await self.service.run_session(
                                stream, stream.role, f"relay:{stream.relay}", epoch=epoch)

                        nursery.start_soon(leave_when_direct)
                        nursery.start_soon(
                            functools.partial(stay_in_room, self.relays, lambda: room, session,
                                              stats=self.stats)
                        )
            finally:
                self.rooms.discard((peer_id, epoch))


# --------------------------------------------------------------------------- pairing


async def serve_pairing_through_relays(
    group: Group, state: PairerState, relays: Sequence[str]
) -> None:
    """Pairer: wait in the code's rendezvous room and answer each joiner there."""

    room = rendezvous_room(state.code)

    async def attempt(stream: RelayStream) -> None:
        await serve_pairing_attempt(group, state, stream, where=f"relay {stream.relay}")

    await stay_in_room(relays, lambda: room, attempt)


async def join_through_relays(
    group: Group, code: str, name: str, relays: Sequence[str]
) -> JoinedGroup:
    """Joiner: meet the pairer in the code's rendezvous room and pair there."""

    async with open_room(relays, rendezvous_room(code)) as connection:
        result: list[JoinedGroup] = []
        failure: list[BaseException] = []

        async def attempt(stream: RelayStream) -> None:
            try:
                result.append(await join(group, code, stream, name))
            except PairingFailed as exc:
                failure.append(exc)

        await connection.serve(attempt)
    if result:
        return result[0]
    if failure:
        raise failure[0]
    raise PairingFailed("the relay connection ended before pairing finished")
