"""The one reconnect backoff of node sync: exponential, capped and jittered.

Each wait is the current delay jittered by +-25 % (so devices that lost the
same relay or peer do not all come back at the same instant); after each wait
the delay doubles, up to the maximum. A success (or a connection that lasted)
starts again from the minimum. The delays are computed without I/O
(:meth:`Backoff.next_delay_s`); :meth:`Backoff.wait` sleeps them under trio.
"""

from __future__ import annotations

import random

import trio

JITTER = 0.25
"""Each wait is the delay times a factor drawn from [1 - JITTER, 1 + JITTER]."""


def jittered(seconds: float, rng: random.Random) -> float:
    """*seconds* times a factor drawn uniformly from [0.75, 1.25)."""
    return seconds * (1 - JITTER + rng.random() * 2 * JITTER)


class Backoff:
    """Delays between attempts, from *min_s* doubling up to *max_s*."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"a backoff needs 0 < min_s <= max_s (got {min_s}, {max_s})")
        self.min_s = min_s
        self.max_s = max_s
        self.rng = rng or random.Random()
        self.delay_s = min_s
        """The delay (before jitter) of the next wait."""

    def reset(self) -> None:
        """Start again from the shortest wait (after a success)."""
        self.delay_s = self.min_s

    def set_delay(self, seconds: float) -> None:
        """Make the next wait about *seconds* (kept within min_s and max_s)."""
        self.delay_s = min(max(seconds, self.min_s), self.max_s)

    def next_delay_s(self) -> float:
        """The next wait, jittered; the one after it is twice as long (up to max_s)."""
        delay = jittered(self.delay_s, self.rng)
        self.delay_s = min(self.delay_s * 2, self.max_s)
        return delay

    async def wait(self) -> None:
        """Sleep the next wait."""
        await trio.sleep(self.next_delay_s())
