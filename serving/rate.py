"""Token buckets, sans-IO: the time is an argument (``now``, in seconds on any
monotonic clock), so the same code serves trio's clock, ``time.monotonic`` and a
test's hand-moved clock.

A bucket holds up to ``burst`` tokens and gains ``per_s`` tokens a second. Taking
a token succeeds while one is there; :meth:`TokenBucket.charge` may take more
than is there and leaves a debt that :meth:`TokenBucket.seconds_until_paid`
prices (the relay's byte budget reads slower instead of refusing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """How fast a bucket refills (``per_s`` tokens a second) and how much it holds."""

    per_s: float
    burst: float

    @classmethod
    def per_minute(cls, count: int) -> Rate:
        """*count* a minute, holding as many (the Commons hub's limits)."""
        return cls(count / 60.0, float(count))

    def __post_init__(self) -> None:
        if not (self.per_s > 0 and self.burst > 0):
            raise ValueError(f"a rate needs positive per_s and burst (got {self})")


class TokenBucket:
    """One bucket, full when made at *now*. Small (three slots): one per connection."""

    __slots__ = ("rate", "tokens", "updated_at")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = rate.burst
        self.updated_at = now

    def available(self, now: float) -> float:
        """Tokens at *now* (negative while a debt is unpaid)."""
        elapsed = max(0.0, now - self.updated_at)
        return min(self.rate.burst, self.tokens + elapsed * self.rate.per_s)

    def take(self, now: float, count: float = 1.0) -> bool:
        """Take *count* tokens if they are there; False (and nothing taken) if not."""
        self.tokens = self.available(now)
        self.updated_at = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True

    def charge(self, now: float, count: float) -> None:
        """Take *count* tokens whatever is there: what is missing becomes a debt."""
        self.tokens = self.available(now) - count
        self.updated_at = now

    def seconds_until_paid(self) -> float:
        """How long, from the last take or charge, until the debt is paid (0 if none)."""
        return max(0.0, -self.tokens / self.rate.per_s)


class TokenBuckets:
    """One bucket per key (a client address, an author key), at most *max_keys*
    of them: beyond that the least recently used are forgotten, which can only
    give a forgotten key a full bucket again."""

    def __init__(self, rate: Rate, clock: Callable[[], float], *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def available(self, key: str) -> float:
        """Tokens *key* has now."""
        bucket = self._buckets.get(key)
        return self.rate.burst if bucket is None else bucket.available(self.clock())

    def take(self, key: str, count: float = 1.0) -> bool:
        """Take *count* of *key*'s tokens if it has them."""
        now = self.clock()
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, now)
        self._buckets[key] = bucket  # most recently used last
        taken = bucket.take(now, count)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return taken

    def __len__(self) -> int:
        return len(self._buckets)
