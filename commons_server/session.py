"""One Commons session: the node's sans-IO protocol Connection over an ASGI WebSocket.

Theory of operation
-------------------
The server is a responder sharing only the ``commons`` class. Each binary
WebSocket message is a chunk of the protocol byte stream (framing and AEAD are
the protocol's). One reader task feeds the Connection and handles its events
one at a time — an Update is verified and committed before the next frame is
even decoded, so a HeartbeatAck the client receives proves every earlier
update of its was accepted. One writer task is the only one that sends,
from a bounded queue; a client that stops reading is dropped, not buffered.

After the handshake the server offers its catalogue (visible documents),
answers each requested document with the owner-signed envelopes it stored,
asks the client for the documents it offers that differ, and from then on
forwards each newly accepted update. A forged or malformed update ends the
session with a Close (PROTOCOL_ERROR); a refused one (rate limit, blocked,
withdrawn) with a Close (NOT_AUTHORISED) whose reason the client shows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from crdt.commons import CommonsError
from protocol import (
    COMMONS,
    NEED_DATA,
    RESPONDER,
    Catalogue,
    CatalogueReceived,
    Close,
    CloseCode,
    Connection,
    ConnectionClosed,
    DeltaRequest,
    HandshakeComplete,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StateVector,
    StateVectorReceived,
    Update,
)
from protocol.limits import HANDSHAKE_TIMEOUT_S

from . import limits as L
from .hub import Hub, Refused

log = logging.getLogger("mirror.commons.session")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CommonsSession:
    def __init__(self, hub: Hub, address: str) -> None:
        self.hub = hub
        self.address = address
        self.conn = Connection(
            RESPONDER, hub.credentials(), os.urandom, shareable=[COMMONS],
            max_frame_bytes=L.MAX_COMMONS_FRAME_BYTES,
        )
        self._out_send, self._out_receive = trio.open_memory_channel[bytes | None](
            L.SESSION_QUEUE_MESSAGES)
        self._ready = False
        self.ended_by = ""
        self.last_received = 0.0

    # Hub listener: a newly accepted update for live readers.
    def deliver(self, doc_id: str, bundle: bytes) -> None:
        if not self._ready:
            return
        try:
            self._queue(self.conn.send(Update(doc_id, COMMONS, bundle)))
        except LocalProtocolError as exc:
            log.debug("live update not sent: %s", exc)

    def _queue(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._out_send.send_nowait(data)
        except trio.WouldBlock:
            self.ended_by = "client too slow"
            self._out_send.close()
        except trio.ClosedResourceError:
            pass

    async def run(self, receive: Receive, send: Send) -> None:
        self.hub.subscribe(self)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, send, nursery.cancel_scope)
                going = False
                with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as handshake:
                    going = await self._read_until_handshake(receive)
                if handshake.cancelled_caught:
                    self.ended_by = "handshake timed out"
                elif going:
                    await self._reader(receive)
                self._out_send.close()
        finally:
            self.hub.unsubscribe(self)

    async def _read_until_handshake(self, receive: Receive) -> bool:
        """Feed messages until the handshake completes (True) or the session ends (False)."""
        while not self._ready:
            if not await self._feed(receive):
                return False
        return True

    async def _reader(self, receive: Receive) -> None:
        while True:
            with trio.move_on_after(L.IDLE_TIMEOUT_S) as idle:
                more = await self._feed(receive)
            if idle.cancelled_caught:
                self.ended_by = "idle"
                return
            if not more:
                return

    async def _feed(self, receive: Receive) -> bool:
        """Read one WebSocket message and handle its events; False when the session ends."""
        message = await receive()
        kind = message.get("type")
        if kind == "websocket.disconnect":
            return False
        if kind != "websocket.receive":
            return True
        data = message.get("bytes")
        if not isinstance(data, bytes | bytearray) or not data:
            self.ended_by = "text or empty message on a protocol session"
            return False
        try:
            self.conn.receive_data(bytes(data))
            while (event := self.conn.next_event()) is not NEED_DATA:
                self.hub.observe(self.address, event)
                if isinstance(event, ConnectionClosed | Close):
                    return False
                await self._handle(event)
            self._queue(self.conn.data_to_send())
        except ProtocolError as exc:
            self._close(exc.close_code, str(exc))
            return False
        except Refused as exc:
            self._close(CloseCode.NOT_AUTHORISED, str(exc))
            return False
        except CommonsError as exc:
            self._close(CloseCode.PROTOCOL_ERROR, str(exc))
            return False
        return True

    async def _handle(self, event: object) -> None:
        hub = self.hub
        if isinstance(event, HandshakeComplete):
            self._ready = True
            self._queue(self.conn.send(Catalogue(tuple(hub.catalogue()))))
        elif isinstance(event, CatalogueReceived):
            wanted = []
            for doc_id in event.differing:
                sv = hub.state_vector(doc_id)
                if sv is not None:
                    wanted.append(StateVector(doc_id, COMMONS, sv))
            self._queue(self.conn.send(DeltaRequest(tuple(wanted))))
        elif isinstance(event, StateVectorReceived):
            bundle = await hub.bundle(event.doc_id)
            self._queue(self.conn.send(Update(event.doc_id, COMMONS, bundle)))
        elif isinstance(event, Update):
            try:
                await hub.accept(event.doc_id, event.update, self.address, source=self)
            except CommonsError as exc:
                raise RemoteProtocolError(f"refused update for {event.doc_id}: {exc}") from None

    def _close(self, code: int, reason: str) -> None:
        self.ended_by = reason
        log.info("closing session from %s: %s", self.address, reason)
        try:
            self._queue(self.conn.send(Close(int(code), reason[:200])))
        except ProtocolError:
            pass

    async def _writer(self, send: Send, scope: trio.CancelScope) -> None:
        async with self._out_receive:
            async for first in self._out_receive:
                if first is None:
                    break
                chunks = [first]
                while len(chunks) < 256:
                    try:
                        item = self._out_receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if item is None:
                        break
                    chunks.append(item)
                try:
                    await send({"type": "websocket.send", "bytes": b"".join(chunks)})
                except Exception:  # the client went away (hypercorn's own error types)
                    log.debug("client %s gone while sending", self.address)
                    return
        try:
            await send({"type": "websocket.close", "code": 1000})
        except Exception:
            log.debug("client %s gone before the close", self.address)
