"""Bytes the blind store holds for requests in flight, bounded across all requests.

An upload's body is read whole (its envelopes are checked before anything is
stored) and a pull's answer is built whole: each is up to tens of MiB, so many
at once would take the server's memory (30 concurrent 33 MiB uploads: +2.4 GiB).
Each request first reserves what it will hold from one :class:`ByteBudget`;
requests that do not fit wait, first come first served, and the bytes of their
bodies wait in the network (TCP pushes back on the clients).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio


class BudgetTimeout(Exception):
    """A request waited longer than allowed for its share."""


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of a :class:`ByteBudget` (``statistics()``)."""

    capacity: int
    reserved: int
    """Bytes reserved now."""
    peak: int
    """The most bytes ever reserved at once."""
    waiting: int
    """Requests waiting for their share now."""


class ByteBudget:
    """A first-come-first-served byte semaphore (trio)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a budget needs at least one byte")
        self.capacity = capacity
        self._reserved = 0
        self._peak = 0
        self._waiters: deque[tuple[int, trio.Event]] = deque()

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(self.capacity, self._reserved, self._peak, len(self._waiters))

    @asynccontextmanager
    async def reserve(self, size: int, timeout_s: float) -> AsyncIterator[int]:
        """Hold *size* bytes (at most the capacity) for the block; yields what is held.

        Raises :class:`BudgetTimeout` after *timeout_s* without a share."""
        size = max(0, min(size, self.capacity))
        if self._waiters or self._reserved + size > self.capacity:
            ticket = (size, trio.Event())
            self._waiters.append(ticket)
            try:
                with trio.move_on_after(timeout_s):
                    await ticket[1].wait()
            except BaseException:
                self._give_up(ticket)  # cancelled, perhaps just after being let in
                raise
            if not ticket[1].is_set():
                self._give_up(ticket)
                raise BudgetTimeout(f"waited {timeout_s:g} s for {size} bytes")
        else:
            self._take(size)
        try:
            yield size
        finally:
            self._reserved -= size
            self._admit()

    def _give_up(self, ticket: tuple[int, trio.Event]) -> None:
        if ticket[1].is_set():
            self._reserved -= ticket[0]
        else:
            self._waiters.remove(ticket)
        self._admit()  # those behind it may fit now

    def _take(self, size: int) -> None:
        self._reserved += size
        self._peak = max(self._peak, self._reserved)

    def _admit(self) -> None:
        """Let waiters in, in order, while the first of them fits."""
        while self._waiters and self._reserved + self._waiters[0][0] <= self.capacity:
            size, admitted = self._waiters.popleft()
            self._take(size)
            admitted.set()
