"""A trio byte stream over a message transport (a WebSocket, a relay room).

The sync protocol reads and writes a byte stream; WebSockets carry messages.
:class:`MessageStream` does the translation once: a write is cut into messages
of at most ``chunk_bytes``; reads hand out the bytes of each incoming message
in order. A subclass says how one message comes in (:meth:`_next_message`,
``None`` at the end of the stream) and goes out (:meth:`_send_message`).
Used by the relay client, the node's Commons client and the Commons server.
"""

from __future__ import annotations

import trio


class MessageStream(trio.abc.Stream):
    """A trio byte stream over a message transport (a WebSocket): writes are cut into
    messages of at most ``chunk_bytes``, reads hand out what messages bring."""

    chunk_bytes = 64 * 1024
    """Largest message a write is cut into."""

    def __init__(self) -> None:
        self._pending = b""
        self._closed = False

    async def _next_message(self) -> bytes | None:
        """The next incoming message's bytes; None once the stream has ended."""
        raise NotImplementedError

    async def _send_message(self, data: bytes) -> None:
        """Send one message of at most :attr:`chunk_bytes`."""
        raise NotImplementedError

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        if not self._pending:
            message = await self._next_message()
            if not message:
                return b""
            self._pending = message
        if max_bytes is None or max_bytes >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        view = memoryview(data)
        for start in range(0, len(view), self.chunk_bytes):
            await self._send_message(bytes(view[start:start + self.chunk_bytes]))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()
