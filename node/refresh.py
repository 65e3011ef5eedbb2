"""One look at what other processes wrote, for everyone in this process who needs it.

Theory of operation. Several tasks of one node want to know what other
processes wrote to the home: the REPL's watch (to say "1 reflection arrived"),
the sync service (to push new updates and offer new documents to its peers).
:meth:`DocStore.refresh` reads from one cursor per store and hands its result to
its caller only, so two pollers would each see part of what arrived.
:class:`RefreshPublisher` is the one poller: every subscriber hears every
refresh (what changed, what is new), merged if it was busy meanwhile.

Whoever needs refreshes runs :meth:`RefreshPublisher.run` in its own nursery;
the runs share one lock, so one loop polls at a time and another takes over
when its runner stops (the REPL closes while ``mirror serve`` keeps going).
Each subscriber may give a ``before`` callback, called (synchronously) right
before each refresh: the watch notes there what this process wrote itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from crdt import DocInfo, DocStore, RefreshResult

REFRESH_INTERVAL_S = 0.25


class RefreshSubscription:
    """What the refreshes found since this subscriber last asked (see :meth:`wait`)."""

    def __init__(self, before: Callable[[], None] | None) -> None:
        self.before = before
        self._changed: dict[str, None] = {}
        self._new: dict[str, DocInfo] = {}
        self._refreshes = 0
        self._event = trio.Event()

    def _deliver(self, result: RefreshResult) -> None:
        self._changed.update(dict.fromkeys(result.changed))
        self._new.update((info.doc_id, info) for info in result.new_documents)
        self._refreshes += 1
        self._event.set()

    async def wait(self) -> RefreshResult:
        """Wait for the next refresh (unless one happened since the last call); what all
        the refreshes since then found, merged."""
        await self._event.wait()
        self._event = trio.Event()
        result = RefreshResult(tuple(self._changed), tuple(self._new.values()))
        self._changed.clear()
        self._new.clear()
        return result

    def statistics(self) -> int:
        """How many refreshes this subscriber has heard of."""
        return self._refreshes


class RefreshPublisher:
    """The one refresh loop of a store; see the module docstring."""

    def __init__(self, store: DocStore, *, interval_s: float = REFRESH_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._subscribers: list[RefreshSubscription] = []
        self._running = trio.Lock()

    @contextmanager
    def subscribe(self, before: Callable[[], None] | None = None
                  ) -> Iterator[RefreshSubscription]:
        subscription = RefreshSubscription(before)
        self._subscribers.append(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.remove(subscription)

    async def refresh_now(self) -> RefreshResult:
        """One refresh, told to every subscriber."""
        for subscription in list(self._subscribers):
            if subscription.before is not None:
                subscription.before()
        result = await self.store.refresh()
        for subscription in list(self._subscribers):
            subscription._deliver(result)
        return result

    async def run(self, interval_s: float | None = None) -> None:
        """Refresh every *interval_s* (default: the publisher's) until cancelled; while
        another task runs the loop, wait to take over from it."""
        async with self._running:
            while True:
                await trio.sleep(self.interval_s if interval_s is None else interval_s)
                await self.refresh_now()
