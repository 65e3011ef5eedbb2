"""Server push: what changed in the home, sent to every open page as server-sent events.

The application layer's :func:`node.app.browse.follow_changes` says which kinds of
documents changed — written by this process, another process on the same home (the
REPL, ``mirror serve``, a CLI call) or a peer — and :meth:`ChangeFeed.publish` sends one
``changed`` event naming them. Pages then fetch again what they show. Subscribers have
bounded queues; a page too slow to read misses events and is told to fetch everything
(``resync``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import trio

QUEUE_EVENTS = 32
KEEPALIVE_S = 15.0


class ChangeFeed:
    """Fan-out of events (small JSON objects) to the pages that listen."""

    def __init__(self) -> None:
        self._subscribers: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._lagging: set[int] = set()
        self._next = 0
        self.published = 0

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        for key, channel in self._subscribers.items():
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self._lagging.add(key)

    def statistics(self) -> dict[str, int]:
        return {"subscribers": len(self._subscribers), "published": self.published}

    async def events(self) -> AsyncIterator[bytes]:
        """The SSE byte stream of one page, until it is cancelled."""
        send, receive = trio.open_memory_channel[dict[str, Any]](QUEUE_EVENTS)
        key = self._next
        self._next += 1
        self._subscribers[key] = send
        try:
            yield b"retry: 1000\n\n" + _sse({"type": "hello"})
            while True:
                event: dict[str, Any] | None = None
                with trio.move_on_after(KEEPALIVE_S):
                    event = await receive.receive()
                if key in self._lagging:
                    self._lagging.discard(key)
                    yield _sse({"type": "resync"})
                elif event is None:
                    yield b": keep-alive\n\n"
                else:
                    yield _sse(event)
        finally:
            del self._subscribers[key]
            self._lagging.discard(key)


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
