"""Server push: what changed in the home, sent to every open page as server-sent events.

One task follows the store (:func:`follow_store`): a listener notes the kinds of the
documents that change — whether this process wrote them, another process on the same
home (the REPL, ``mirror serve``, a CLI call: picked up by ``store.refresh()``) or a
peer — and each pass publishes one ``changed`` event naming them. Pages then fetch
again what they show. Subscribers have bounded queues; a page too slow to read misses
events and is told to fetch everything (``resync``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import trio

REFRESH_INTERVAL_S = 0.25
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


async def follow_store(
    store: Any,
    feed: ChangeFeed,
    *,
    on_change: Callable[[str, str], None] | None = None,
    interval_s: float = REFRESH_INTERVAL_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forever: refresh *store* from other processes and publish the kinds that changed.

    *on_change(doc_id, kind)* is called inside the store's commit for each changed
    document (a cache marks itself stale there; it must not read the document)."""
    changed: dict[str, str] = {}  # kind -> the last source ("local", "external", a peer)

    def listener(stored: Any, update: bytes, source: str) -> None:
        changed[stored.kind] = source
        if on_change is not None:
            on_change(stored.doc_id, stored.kind)

    store.add_listener(listener)
    try:
        task_status.started()
        while True:
            with suppress(Exception):  # a refresh that fails is tried again next pass
                await store.refresh()
            if changed:
                kinds = sorted(changed)
                changed.clear()
                feed.publish({"type": "changed", "kinds": kinds})
            await trio.sleep(interval_s)
    finally:
        store.remove_listener(listener)
