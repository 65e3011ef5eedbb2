"""The relay as a plain ASGI application: rooms of WebSocket connections.

Theory of operation
-------------------
A client opens ``/v1/rooms/<64 hex digits>``. The room id is derived by the
devices from their group secret; to the relay it is an opaque name. Every
binary message a connection sends is forwarded to the other connections of
its room, in order, and nothing is stored: when the last connection leaves, the
room is gone. Binary messages are chunks of a byte stream (the devices' own
protocol does the framing and the encryption), so the relay may merge chunks
queued for one reader into one message.

The relay also tells each connection who is there, in text messages (the only
text it sends; clients send binary only):

- ``present N`` — the first message on a new connection: N others are in the room;
- ``joined N`` — another connection entered the room (N others now);
- ``left N`` — another connection left (N others remain).

A ``joined`` is queued to the members before the newcomer can send anything,
so members see it before the newcomer's first bytes. Clients use these to
decide who speaks first (see ``docs/relay.md``). The room path, these texts and
the cap on a message are the relay's wire contract: ``protocol.relay`` owns
them and ``spec/relay.md`` states them.

Each connection has a queue bounded in bytes and at most one writer task, the
only task that sends to it. The writer is started by the first chunk queued and
ends once the queue is empty, so an idle connection holds no writer (the relay
holds thousands of idle connections). A sender whose readers' queues are over
the limit waits (backpressure); a reader whose queue went over the limit and is
still over it ``slow_reader_timeout_s`` later is disconnected with
``TOO_SLOW``.

Closing: the session reads its connection until the server reports the client
gone, also after a close (the server queues that report into a bounded channel:
a session that stopped reading would leave it, and a writer blocked in a send,
waiting for good). A connection still open ``close_grace_s`` after its close is
reset through the server's ``abort_transport`` hook, which wakes a send blocked
on a client that reads nothing and brings the report. So a closed connection is
gone within its grace whatever its client does. One timer task per connection
covers both deadlines, and exists only while one is armed.

Fair share: each connection has a byte budget (``max_bytes_per_s`` after a burst
of ``byte_burst``; each message also costs ``MESSAGE_COST_BYTES``). A session
over it pauses reading its connection until the debt is paid, so a few floods
cannot take the relay's time from every other room.

Merging: every write costs a WebSocket frame, a send and several scheduler
turns, so the writer merges the chunks queued for its reader. A writer started
by a lone chunk gives the senders a few scheduler turns (``MERGE_TURNS``) to
queue what they have already received. Once a write has carried more than one
chunk, chunks are arriving faster than they are written: the connection is
streaming, and the writer then holds each write until ``MERGE_HOLD_BYTES`` are
queued or ``MERGE_HOLD_S`` has passed (like TCP's Nagle rule, this adds at most
``MERGE_HOLD_S`` of latency, and only while a stream lasts). A write of a single
chunk ends the streaming state, so isolated messages are never held.

``/healthz`` answers ``ok``; ``/metrics`` gives Prometheus text.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, cast

import trio

from protocol.relay import Presence, PresenceKind, room_from_path

from . import admission
from .limits import MESSAGE_COST_BYTES, RelayCloseCode, RelayLimits

log = logging.getLogger("mirror.relay")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MERGE_TURNS = 16
"""Most scheduler turns a new writer waits for more chunks before it writes."""
MERGE_HOLD_S = 0.001
"""Longest a streaming connection's write is held back to merge more chunks."""
MERGE_HOLD_BYTES = 32 * 1024
"""A held write goes out as soon as this many bytes are queued."""


@dataclass
class RelayStatistics:
    """Counters and gauges of a running relay (what ``/metrics`` reports)."""

    connections: int = 0
    rooms: int = 0
    connections_total: int = 0
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    """Messages written to readers (after merging)."""
    frames_forwarded: int = 0
    """Received messages delivered to a reader's queue, counted once per reader."""
    bytes_out: int = 0
    queued_bytes: int = 0
    """Bytes waiting in all readers' queues now."""
    peak_queued_bytes: int = 0
    """The most bytes one reader's queue ever held."""
    writers: int = 0
    """Writer tasks running now: one per connection with something to send."""
    aborted: int = 0
    """Connections reset because they did not finish closing within the grace."""
    throttled: int = 0
    """Pauses in reading a connection over its byte budget (``max_bytes_per_s``)."""
    drops: dict[str, int] = field(default_factory=dict)
    """Connections the relay closed or refused, by reason."""


class _Room:
    __slots__ = ("key", "members")

    def __init__(self, key: str) -> None:
        self.key = key
        self.members: list[_Member] = []


class _Member:
    __slots__ = (
        "address", "allowance", "byte_allowance", "close_code", "closed", "drained",
        "last_refill",
        "nursery", "parked_writer", "queue", "queued", "room", "send", "streaming",
        "timer", "waiting_for", "writer_done", "writing",
    )

    def __init__(
        self, room: _Room, address: str, burst: int, byte_burst: int, now: float,
        nursery: trio.Nursery, send: Send,
    ) -> None:
        self.room = room
        self.address = address
        # Kept small for idle connections (the relay holds thousands): a list rather
        # than a deque, no writer task unless something is queued, the writer task
        # itself rather than a ParkingLot, and the senders' ParkingLot made only when
        # one of them has to wait.
        self.queue: list[bytes | str] = []
        self.queued = 0
        self.nursery: trio.Nursery | None = nursery  # where its writer runs; None once closed
        self.send = send
        self.writing = False  # a writer task is running
        self.parked_writer: trio.lowlevel.Task | None = None  # the writer, holding a write
        self.streaming = False  # chunks arrive faster than they are written
        self.writer_done: trio.lowlevel.ParkingLot | None = None  # the session waits here
        self.drained: trio.lowlevel.ParkingLot | None = None  # senders wait here for room
        self.close_code: RelayCloseCode | None = None
        self.closed = False  # left the room: nothing more is queued to it
        # Its deadline: while open, the slow-reader deadline (armed while the queue is
        # over its limit); once closed, the end of the grace (see _arm).
        self.timer: trio.CancelScope | None = None
        self.waiting_for: _Member | None = None  # the full reader this sender waits for
        self.allowance = float(burst)  # messages (token bucket)
        self.byte_allowance = float(byte_burst)  # bytes (token bucket; negative: a debt)
        self.last_refill = now


class RelayApp:
    """ASGI application of the relay; one instance per process."""

    def __init__(self, limits: RelayLimits | None = None) -> None:
        self.limits = limits or RelayLimits()
        self.after_accept: Callable[[Send], object] | None = None
        """Called with a WebSocket's ``send`` once it is accepted: the server's hook
        (``relay.server`` trims hypercorn's per-connection state with it)."""
        self.limit_pings: Callable[[Send], bool] | None = None
        """Makes the server hold the WebSocket under ``send`` to ``max_pings_per_s``
        (the server's hook: pings never reach the application); False if it cannot."""
        self.abort_transport: Callable[[Send], bool] | None = None
        """Resets the connection under a WebSocket's ``send`` (the server's hook); False
        if it cannot. Used on connections that have not finished closing in time."""
        self._warned_no_abort = False
        self._rooms: dict[str, _Room] = {}
        self._per_address: dict[str, int] = {}
        self._stats = RelayStatistics()
        self._all: set[_Member] = set()
        self._emptied = trio.lowlevel.ParkingLot()
        self._writers: _Lent | None = None  # the lifespan's nursery, once started
        # A held write goes out at MERGE_HOLD_BYTES, sooner if the limits are smaller.
        self._hold_bytes = min(MERGE_HOLD_BYTES, self.limits.max_merged_bytes,
                               self.limits.max_queue_bytes)

    def statistics(self) -> RelayStatistics:
        """A snapshot of the counters."""
        s = self._stats
        return RelayStatistics(
            connections=len(self._all), rooms=len(self._rooms),
            connections_total=s.connections_total, frames_in=s.frames_in,
            bytes_in=s.bytes_in, frames_out=s.frames_out, frames_forwarded=s.frames_forwarded,
            bytes_out=s.bytes_out, queued_bytes=sum(m.queued for m in self._all),
            peak_queued_bytes=s.peak_queued_bytes, drops=dict(s.drops), aborted=s.aborted,
            throttled=s.throttled,
            writers=sum(m.writing for m in self._all),
        )

    def close_all(self, code: RelayCloseCode = RelayCloseCode.GOING_AWAY,
                  grace_s: float | None = None) -> None:
        """Ask every connection to close with *code* (used on shutdown); each one still
        open *grace_s* later (default ``close_grace_s``) is reset."""
        for member in list(self._all):
            if member.close_code is None:
                self._close(member, code, drop=False, grace_s=grace_s)
            else:
                self._arm(member, self.limits.close_grace_s if grace_s is None else grace_s)

    async def wait_no_connections(self) -> None:
        """Return once no connection is open."""
        while self._all:
            await self._emptied.park()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "websocket":
            # Two steps, so that an open connection holds one coroutine of ours less.
            accepted = await self._accept(scope, receive, send)
            if accepted is not None:
                await self._session(*accepted, receive, send)
        elif kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, send: Send) -> None:
        path, method = scope.get("path"), scope.get("method")
        refused = admission.refusal(scope)
        if refused is not None:
            await _respond(send, *refused, [(b"connection", b"close")])
        elif path not in ("/healthz", "/metrics"):
            await _respond(send, 404, b"not found\n")
        elif method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
        elif path == "/healthz":
            await _respond(send, 200, b"ok\n", head=method == "HEAD")
        else:
            await _respond(send, 200, self.metrics_text().encode(), head=method == "HEAD",
                           content_type=b"text/plain; version=0.0.4; charset=utf-8")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The writers of all connections run in this task's nursery, for as long as
        # the server runs: a nursery per connection would cost each idle connection
        # ~1.3 kB. Without lifespan events each connection opens its own.
        async with trio.open_nursery() as writers:
            while True:
                message = await receive()
                if message.get("type") == "lifespan.startup":
                    self._writers = _Lent(writers)
                    await send({"type": "lifespan.startup.complete"})
                elif message.get("type") == "lifespan.shutdown":
                    self._writers = None
                    writers.cancel_scope.cancel()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def metrics_text(self) -> str:
        s = self.statistics()
        lines = [
            _metric("relay_connections", "gauge", "Open WebSocket connections.", s.connections),
            _metric("relay_rooms", "gauge", "Rooms with at least one connection.", s.rooms),
            _metric("relay_connections_total", "counter", "Connections accepted.",
                    s.connections_total),
            _metric("relay_frames_received_total", "counter", "Messages received.", s.frames_in),
            _metric("relay_bytes_received_total", "counter", "Bytes received.", s.bytes_in),
            _metric("relay_frames_forwarded_total", "counter",
                    "Received messages queued to a reader (once per reader).", s.frames_forwarded),
            _metric("relay_frames_sent_total", "counter", "Messages written (after merging).",
                    s.frames_out),
            _metric("relay_bytes_sent_total", "counter", "Bytes written.", s.bytes_out),
            _metric("relay_queued_bytes", "gauge", "Bytes waiting for readers.", s.queued_bytes),
            _metric("relay_queued_bytes_peak", "gauge",
                    "Most bytes one reader's queue ever held.", s.peak_queued_bytes),
            _metric("relay_throttled_total", "counter",
                    "Pauses in reading a connection over its byte budget.", s.throttled),
            _metric("relay_connections_reset_total", "counter",
                    "Connections reset because they did not finish closing in time.",
                    s.aborted),
            "# HELP relay_drops_total Connections closed or refused by the relay, by reason.\n"
            "# TYPE relay_drops_total counter\n"
            + "".join(
                f'relay_drops_total{{reason="{code.name.lower()}"}} '
                f"{s.drops.get(code.name.lower(), 0)}\n"
                for code in RelayCloseCode
                if code >= 4000 or code in (1003, 1009, 1011)
            ),
        ]
        return "".join(lines)

    # ------------------------------------------------------------------ rooms

    async def _accept(
        self, scope: Scope, receive: Receive, send: Send,
    ) -> tuple[str, str] | None:
        """Accept the upgrade to a room's path: its room key and the client's address."""
        if (await receive()).get("type") != "websocket.connect":
            return None
        refused = admission.refusal(scope)
        if refused is not None:
            await _reject_upgrade(send, *refused)
            return None
        room = room_from_path(str(scope.get("path", "")))
        if room is None:
            await _reject_upgrade(send, 404, b"no such room path: use /v1/rooms/<64 hex digits>\n")
            return None
        client = scope.get("client")
        await send({"type": "websocket.accept"})
        if self.after_accept is not None:
            self.after_accept(send)
        if self.limit_pings is not None:
            self.limit_pings(send)
        return room.hex(), admission.address_key(str(client[0])) if client else "?"

    async def _session(self, room_key: str, address: str, receive: Receive, send: Send) -> None:
        refusal = self._admission(room_key, address)
        if refusal is not None:
            self._count_drop(refusal)
            log.info("refused a connection from %s: %s", address, refusal.name)
            await send({"type": "websocket.close", "code": int(refusal)})
            await self._finish_refused(receive, send, address)
            return
        member: _Member | None = None
        try:
            async with self._writers or trio.open_nursery() as nursery:
                # No await from admission to here: the checks still hold.
                member = self._join(room_key, address, nursery, send)
                # The reader is inline rather than a coroutine of its own: one frame
                # less on each of the thousands of idle connections. It reads until
                # the server says the client is gone, also after a close: the server
                # queues that news into a bounded channel, and a session that stopped
                # reading would leave it (and a writer blocked in its send) waiting
                # for good. A connection that does not finish closing within the
                # grace is reset (_arm), which brings the news.
                limits, stats = self.limits, self._stats
                while True:
                    message = await receive()
                    if message.get("type") != "websocket.receive":
                        break
                    if member.close_code is not None:
                        continue  # closed: discard until the client's close
                    data = message.get("bytes")
                    if not isinstance(data, bytes):  # a text message: not ours
                        self._close(member, RelayCloseCode.UNSUPPORTED_DATA, drop=True)
                        continue
                    broken = self._broken_limit(member, data)
                    if broken is not None:
                        self._close(member, broken, drop=True)
                        continue
                    stats.frames_in += 1
                    stats.bytes_in += len(data)
                    if data:
                        readers = [m for m in member.room.members if m is not member]
                        for other in readers:
                            self._enqueue(other, data)
                        stats.frames_forwarded += len(readers)
                        for other in readers:
                            if other.queued > limits.max_queue_bytes and member.close_code is None:
                                await self._wait_drained(other, member)
                    if member.byte_allowance < 0 and member.close_code is None:
                        await self._pay_debt(member)
                # The client is gone: the writer sends (to nobody) what is queued.
                if member.close_code is None:
                    self._close(member, RelayCloseCode.NORMAL, drop=False)
                await self._wait_writer_done(member)
                member.nursery = None  # no writer and no timer starts after this
                _disarm(member)
        finally:
            if member is not None:
                member.nursery = None
                _disarm(member)
                self._leave(member)

    async def _finish_refused(self, receive: Receive, send: Send, address: str) -> None:
        """Read until the refused client's close, resetting it after the grace."""
        with trio.move_on_after(self.limits.close_grace_s):
            await _until_disconnect(receive)
            return
        self._abort(send, address)
        await _until_disconnect(receive)

    def _admission(self, room_key: str, address: str) -> RelayCloseCode | None:
        limits = self.limits
        if len(self._all) >= limits.max_connections:
            return RelayCloseCode.AT_CAPACITY
        if self._per_address.get(address, 0) >= limits.max_connections_per_address:
            return RelayCloseCode.TOO_MANY_FROM_ADDRESS
        room = self._rooms.get(room_key)
        if room is not None and len(room.members) >= limits.max_connections_per_room:
            return RelayCloseCode.ROOM_FULL
        return None

    def _join(self, room_key: str, address: str, nursery: trio.Nursery, send: Send) -> _Member:
        room = self._rooms.get(room_key)
        if room is None:
            room = self._rooms[room_key] = _Room(room_key)
        member = _Member(room, address, self.limits.frame_burst, self.limits.byte_burst,
                         trio.current_time(), nursery, send)
        others = list(room.members)
        room.members.append(member)
        self._all.add(member)
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._stats.connections_total += 1
        self._enqueue(member, Presence(PresenceKind.PRESENT, len(others)).text())
        joined = Presence(PresenceKind.JOINED, len(room.members) - 1).text()
        for other in others:
            self._enqueue(other, joined)
        return member

    def _leave(self, member: _Member) -> None:
        if member in self._all:
            self._all.discard(member)
            count = self._per_address.get(member.address, 1) - 1
            if count:
                self._per_address[member.address] = count
            else:
                self._per_address.pop(member.address, None)
            if not self._all:
                self._emptied.unpark_all()
        self._detach(member)
        member.queue.clear()
        member.queued = 0
        _unpark_senders(member)

    def _detach(self, member: _Member) -> None:
        """Take *member* out of its room: it receives nothing more from the others."""
        if member.closed:
            return
        member.closed = True
        room = member.room
        if member in room.members:
            room.members.remove(member)
        if not room.members:
            self._rooms.pop(room.key, None)
            return
        left = Presence(PresenceKind.LEFT, len(room.members) - 1).text()
        for other in room.members:
            self._enqueue(other, left)

    def _close(self, member: _Member, code: RelayCloseCode, *, drop: bool,
               grace_s: float | None = None) -> None:
        if member.close_code is not None:
            return
        member.close_code = code
        if drop:
            self._count_drop(code)
            log.info("closed a connection from %s: %s", member.address, code.name)
        self._detach(member)
        if code is RelayCloseCode.TOO_SLOW:
            member.queue.clear()  # it will not read them anyway; free the memory now
            member.queued = 0
        _unpark_senders(member)  # nobody waits for a closed reader
        if member.waiting_for is not None:  # its session stops waiting and reads again
            _unpark_senders(member.waiting_for)
        self._wake_writer(member)
        _disarm(member)  # the slow-reader deadline, if armed
        self._arm(member, self.limits.close_grace_s if grace_s is None else grace_s)

    # ------------------------------------------------------------------ deadlines

    def _arm(self, member: _Member, after_s: float) -> None:
        """Act on *member* *after_s* from now, unless disarmed before.

        While it is open, that is the slow-reader deadline: armed when its queue goes
        over the limit, disarmed when the writer brings it back under, due: close it
        as too slow. Once closed, it is the end of the grace: due while the session
        still runs, reset the connection. The writer may be blocked in a send to a
        client that reads nothing (the server shields socket writes from
        cancellation), and a client may never answer the close: only a reset ends
        those for sure. An earlier deadline wins over a later one.
        """
        due = trio.current_time() + after_s
        timer = member.timer
        if timer is not None:
            timer.deadline = min(timer.deadline, due)
            return
        if member.nursery is None:
            return  # the session is over
        timer = member.timer = trio.CancelScope(deadline=due)
        try:
            member.nursery.start_soon(self._when_due, member, timer)
        except RuntimeError:  # the lifespan's nursery closed: the server is stopping
            member.timer = None
            if member.close_code is not None:
                self._abort(member.send, member.address)

    async def _when_due(self, member: _Member, timer: trio.CancelScope) -> None:
        with timer:
            await trio.sleep_forever()
        if member.timer is not timer:
            return  # disarmed (a cancellation of the server does not get here)
        member.timer = None
        if member.close_code is None:
            self._close(member, RelayCloseCode.TOO_SLOW, drop=True)
        else:
            self._abort(member.send, member.address)

    def _abort(self, send: Send, who: str) -> None:
        self._stats.aborted += 1
        log.info("reset a connection from %s that did not finish closing in time", who)
        if self.abort_transport is not None and self.abort_transport(send):
            return
        if not self._warned_no_abort:
            self._warned_no_abort = True
            log.warning("this server cannot reset connections: a client that neither "
                        "reads nor closes keeps its slot until the kernel gives up on it")

    def count_drop(self, code: RelayCloseCode) -> None:
        """Count a connection the server closed for the relay (the ping limit)."""
        self._count_drop(code)

    def _count_drop(self, code: RelayCloseCode) -> None:
        reason = code.name.lower()
        self._stats.drops[reason] = self._stats.drops.get(reason, 0) + 1

    # ------------------------------------------------------------------ data path

    def _enqueue(self, member: _Member, item: bytes | str) -> None:
        if member.closed and isinstance(item, bytes):
            return
        member.queue.append(item)
        member.queued += len(item)
        if member.queued > self._stats.peak_queued_bytes:
            self._stats.peak_queued_bytes = member.queued
        if (member.queued > self.limits.max_queue_bytes and member.timer is None
                and member.close_code is None):
            self._arm(member, self.limits.slow_reader_timeout_s)  # the slow-reader deadline
        self._wake_writer(member)

    def _wake_writer(self, member: _Member) -> None:
        """Start *member*'s writer, or wake it if it holds a write that should go now."""
        if not member.writing:
            if member.nursery is not None:
                try:
                    member.nursery.start_soon(self._writer, member)
                except RuntimeError:  # the lifespan's nursery closed: the server is stopping
                    member.nursery = None
                    return
                member.writing = True
        elif member.parked_writer is not None and (
            member.queued >= self._hold_bytes or member.close_code is not None
        ):
            task, member.parked_writer = member.parked_writer, None
            trio.lowlevel.reschedule(task)

    def _broken_limit(self, member: _Member, data: bytes) -> RelayCloseCode | None:
        """The limit a received binary message breaks, if any."""
        if len(data) > self.limits.max_frame_bytes:
            return RelayCloseCode.MESSAGE_TOO_BIG
        if not self._take_token(member, len(data)):
            return RelayCloseCode.RATE_LIMITED
        return None

    def _take_token(self, member: _Member, size: int) -> bool:
        """Charge a message of *size* bytes to both budgets; False if it breaks the
        message rate (the byte budget goes into debt instead: see ``_pay_debt``)."""
        now = trio.current_time()
        limits = self.limits
        elapsed = now - member.last_refill
        member.last_refill = now
        member.allowance = min(float(limits.frame_burst),
                               member.allowance + elapsed * limits.max_frames_per_s)
        member.byte_allowance = min(float(limits.byte_burst),
                                    member.byte_allowance + elapsed * limits.max_bytes_per_s)
        if member.allowance < 1.0:
            return False
        member.allowance -= 1.0
        member.byte_allowance -= size + MESSAGE_COST_BYTES
        return True

    async def _pay_debt(self, member: _Member) -> None:
        """Read nothing more from *member* until its byte budget is back to zero.

        Meanwhile the server's queue of its messages fills and TCP pushes back on
        its client; the relay's time goes to the other connections. At most
        (max_frame_bytes + MESSAGE_COST_BYTES) / max_bytes_per_s, so a close is
        noticed soon after."""
        self._stats.throttled += 1
        await trio.sleep(-member.byte_allowance / self.limits.max_bytes_per_s)

    async def _wait_drained(self, reader: _Member, sender: _Member) -> None:
        """Backpressure: the sender waits for a full reader (which has a deadline, armed
        by ``_enqueue``). The wait also ends when the sender itself is closed: its
        session must go back to reading (see ``_session``)."""
        sender.waiting_for = reader
        try:
            while (reader.queued > self.limits.max_queue_bytes and not reader.closed
                   and sender.close_code is None):
                if reader.drained is None:
                    reader.drained = trio.lowlevel.ParkingLot()
                await reader.drained.park()
        finally:
            sender.waiting_for = None

    async def _writer(self, member: _Member) -> None:
        """Send *member*'s queue, merging chunks; return once it is empty and not streaming."""
        try:
            await self._write_queue(member)
        except Exception:
            # A bug, not the network (hypercorn absorbs those): end this connection
            # alone (writers may share a nursery).
            log.exception("writing to a connection from %s failed", member.address)
            self._close(member, RelayCloseCode.INTERNAL_ERROR, drop=True)
            with contextlib.suppress(Exception):
                await member.send({"type": "websocket.close",
                                   "code": int(RelayCloseCode.INTERNAL_ERROR)})
        finally:
            member.writing = False
            member.parked_writer = None
            if member.writer_done is not None:
                member.writer_done.unpark_all()

    async def _wait_writer_done(self, member: _Member) -> None:
        while member.writing:
            if member.writer_done is None:
                member.writer_done = trio.lowlevel.ParkingLot()
            await member.writer_done.park()

    async def _write_queue(self, member: _Member) -> None:
        limits, stats, send, queue = self.limits, self._stats, member.send, member.queue
        while True:
            if member.close_code is None:
                if member.streaming:
                    await self._hold(member)
                else:
                    await _merge_turns(member, limits.max_merged_bytes)
            if not queue:
                member.streaming = False
                if member.close_code is None:
                    return  # idle: the next chunk queued starts a new writer
                break
            while queue:
                item = queue[0]
                taken = 1
                if isinstance(item, bytes):
                    size, end = len(item), len(queue)
                    while taken < end:
                        nxt = queue[taken]
                        if not isinstance(nxt, bytes) or size + len(nxt) > limits.max_merged_bytes:
                            break
                        size += len(nxt)
                        taken += 1
                    if taken > 1:
                        item = b"".join(cast("list[bytes]", queue[:taken]))
                    member.streaming = taken > 1
                del queue[:taken]
                member.queued = max(0, member.queued - len(item))
                if member.queued <= limits.max_queue_bytes:
                    _unpark_senders(member)
                    if member.timer is not None and member.close_code is None:
                        _disarm(member)  # the reader keeps up again
                if isinstance(item, bytes):
                    await send({"type": "websocket.send", "bytes": item})
                    stats.bytes_out += len(item)
                else:
                    await send({"type": "websocket.send", "text": item})
                stats.frames_out += 1
                if member.close_code is None and member.streaming:
                    break  # hold the next write until more is queued
        assert member.close_code is not None
        await send({"type": "websocket.close", "code": int(member.close_code)})

    async def _hold(self, member: _Member) -> None:
        """Wait until enough is queued to merge, or ``MERGE_HOLD_S``, or a close."""
        def abort(_: object) -> trio.lowlevel.Abort:
            member.parked_writer = None
            return trio.lowlevel.Abort.SUCCEEDED

        if member.queued >= self._hold_bytes:
            return  # enough already: no timer to set up
        with trio.move_on_after(MERGE_HOLD_S):
            while member.queued < self._hold_bytes and member.close_code is None:
                member.parked_writer = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(abort)


async def _merge_turns(member: _Member, max_bytes: int) -> None:
    """Give the senders a few scheduler turns to queue what they already received.

    trio runs a turn's tasks in random order, so stop after two quiet turns: an
    idle relay pays two turns, a busy one stops once nothing new comes.
    """
    quiet = 0
    for _ in range(MERGE_TURNS):
        before = member.queued
        await trio.lowlevel.checkpoint()
        if member.queued >= max_bytes or member.close_code is not None:
            return
        quiet = quiet + 1 if member.queued == before else 0
        if quiet == 2:
            return


def _unpark_senders(member: _Member) -> None:
    if member.drained is not None:
        member.drained.unpark_all()


def _disarm(member: _Member) -> None:
    timer, member.timer = member.timer, None
    if timer is not None:
        timer.cancel()


async def _until_disconnect(receive: Receive) -> None:
    """Read and discard until the server reports the client gone."""
    while (await receive()).get("type") != "websocket.disconnect":
        pass


async def _reject_upgrade(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class _Lent:
    """A nursery lent to every connection (``async with`` it does nothing)."""

    __slots__ = ("nursery",)

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def __aenter__(self) -> trio.Nursery:
        return self.nursery

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _metric(name: str, kind: str, help_text: str, value: int) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"
