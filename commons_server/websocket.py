"""An accepted ASGI WebSocket as a ``trio.abc.Stream`` of protocol bytes.

Theory of operation
-------------------
Each binary message from the client is the next chunk of the protocol byte
stream; the client's disconnect is the end of the stream, and a text or empty
message breaks it (neither has a place on a protocol session). What the
session writes leaves as binary messages of at most ``CHUNK_BYTES``.

Writing goes through :meth:`AsgiWebSocketStream.send_messages`, the only
caller of the ASGI ``send``, fed by a channel of ``OUTBOX_MESSAGES``. The
indirection is what keeps a client that stops reading from holding anything
but that task: hypercorn shields its socket writes from cancellation, so a
``send`` to such a client cannot be interrupted, while ``send_all`` here waits
on a channel, where the session's write deadline and its bounded queue still
end the session (and :meth:`aclose` returns at once). The memory held for such
a client is the session's queue plus this channel, both bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import trio

from node.sync.message_stream import MessageStream

log = logging.getLogger("mirror.commons.session")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHUNK_BYTES: Final = 256 * 1024
"""Largest binary message sent (nodes accept 2 MiB)."""
OUTBOX_MESSAGES: Final = 4
"""Messages handed to the ASGI server but not yet written."""


class AsgiWebSocketStream(MessageStream):
    """Protocol bytes over one accepted ASGI WebSocket; run :meth:`send_messages` beside it."""

    chunk_bytes = CHUNK_BYTES

    def __init__(self, receive: Receive, send: Send) -> None:
        super().__init__()
        self._receive = receive
        self._send = send
        self._outbox, self._outgoing = trio.open_memory_channel[bytes](OUTBOX_MESSAGES)
        self._ended = False
        self.messages_sent = 0
        self.bytes_sent = 0

    async def _next_message(self) -> bytes | None:
        while not self._ended:
            message = await self._receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                break
            if kind != "websocket.receive":
                continue
            data = message.get("bytes")
            if not isinstance(data, bytes | bytearray) or not data:
                self._ended = True
                raise trio.BrokenResourceError("a text or empty message on a protocol session")
            return bytes(data)
        self._ended = True
        return None

    async def _send_message(self, data: bytes) -> None:
        try:
            await self._outbox.send(data)
        except trio.BrokenResourceError:
            raise trio.BrokenResourceError("the client has gone") from None

    async def aclose(self) -> None:
        """No more writes: :meth:`send_messages` sends what is queued, then the close."""
        if not self._closed:
            self._closed = True
            self._outbox.close()
        await trio.lowlevel.checkpoint()

    async def send_messages(self) -> None:
        """Send what :meth:`send_all` queued until :meth:`aclose`, then close the WebSocket."""
        async with self._outgoing:
            try:
                async for data in self._outgoing:
                    await self._send({"type": "websocket.send", "bytes": data})
                    self.messages_sent += 1
                    self.bytes_sent += len(data)
                await self._send({"type": "websocket.close", "code": 1000})
            except Exception as exc:  # the ASGI server's own "client gone" errors
                log.debug("client gone while sending: %s", exc)


__all__ = ["CHUNK_BYTES", "OUTBOX_MESSAGES", "AsgiWebSocketStream"]
