"""WebSocket client sessions whose incoming messages have a size limit.

httpx-ws reads the network in chunks of ``max_message_size_bytes`` but joins
the fragments of one message with no limit at all: a hostile relay or Commons
server could send one endless fragmented message and grow the node's memory
until it dies. :func:`bounded_session` gives a session class that counts the
bytes of the message being received and ends the connection when it passes
the limit, the way the background reader ends it on a network error: the
caller sees the connection lost and reconnects (with backoff) like after any
other failure.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import httpcore
import wsproto.events
from httpx_ws import AsyncWebSocketSession


class MessageTooLarge(httpcore.ReadError):
    """The peer sent a message larger than this client accepts.

    A :class:`httpcore.ReadError` because that is what httpx-ws's reader treats
    as "the stream is unusable": it closes the WebSocket and reports a network
    error to whoever waits for a message.
    """


class _BoundedConnection:
    """A wsproto connection whose ``events()`` refuses oversized messages."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._received = 0  # bytes of the message being received so far

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def events(self) -> Iterator[wsproto.events.Event]:
        for event in self._inner.events():
            if isinstance(event, wsproto.events.Message):
                self._received += len(event.data)
                if self._received > self._limit:
                    raise MessageTooLarge(
                        f"the peer sent a message over {self._limit} bytes")
                if event.message_finished:
                    self._received = 0
            yield event


class _BoundedSession(AsyncWebSocketSession):
    max_incoming_message_bytes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection = _BoundedConnection(  # type: ignore[assignment]
            self.connection, self.max_incoming_message_bytes)


@functools.cache
def bounded_session(max_message_bytes: int) -> type[AsyncWebSocketSession]:
    """A session class for ``aconnect_ws(session_class=...)`` that ends the
    connection when one incoming message passes *max_message_bytes*."""
    if max_message_bytes <= 0:
        raise ValueError("max_message_bytes must be positive")
    return type(f"BoundedSession{max_message_bytes}", (_BoundedSession,),
                {"max_incoming_message_bytes": max_message_bytes})
