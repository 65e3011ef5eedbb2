"""Every limit of the blind store, with its unit in its name.

Quotas are per group log (one log per group and epoch). They bound what one
person can make the operator keep: a log that reaches its quota must be
compacted (a device uploads a snapshot that lets the store drop the envelopes
it covers) before it takes more.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from protocol.store import MAX_ENVELOPE_BYTES

KIB: Final = 1024
MIB: Final = 1024 * KIB

MAX_REQUEST_BYTES: Final = MAX_ENVELOPE_BYTES + 1 * MIB
"""Body of one upload, snapshot or retirement; checked before it is buffered."""

MAX_ENVELOPES_PER_REQUEST: Final = 4_096
"""Envelopes (or snapshot parts) in one request body."""

MAX_GROUP_BYTES: Final = 256 * MIB
"""Envelope and snapshot bytes one log may hold."""

MAX_GROUP_ENVELOPES: Final = 50_000
"""Envelopes one log may hold beyond its snapshot (compaction frees them)."""

MAX_SNAPSHOT_PARTS: Final = 4_096
"""Parts (one per document) of one snapshot."""

MAX_GROUPS: Final = 100_000
"""Logs one store keeps (live or retired)."""

MAX_FORWARD_BYTES: Final = 1 * MIB
"""The notice a retired log keeps for devices that missed the new epoch."""

MAX_PULL_BYTES: Final = 8 * MIB
"""A pull answer stops after the record that crosses this (a snapshot comes whole)."""

MAX_WAIT_S: Final = 30.0
"""Longest a pull with ``wait`` is held open for news."""

REQUESTS_PER_S: Final = 50.0
"""Sustained requests per client address (token bucket)."""

REQUEST_BURST: Final = 400
"""Requests a client address may make at once before the rate applies."""

MAX_TRACKED_ADDRESSES: Final = 10_000
"""Rate-limit buckets kept; the oldest are forgotten beyond this."""


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """The limits in force (defaults: the constants above)."""

    max_request_bytes: int = MAX_REQUEST_BYTES
    max_envelopes_per_request: int = MAX_ENVELOPES_PER_REQUEST
    max_group_bytes: int = MAX_GROUP_BYTES
    max_group_envelopes: int = MAX_GROUP_ENVELOPES
    max_snapshot_parts: int = MAX_SNAPSHOT_PARTS
    max_groups: int = MAX_GROUPS
    max_forward_bytes: int = MAX_FORWARD_BYTES
    max_pull_bytes: int = MAX_PULL_BYTES
    max_wait_s: float = MAX_WAIT_S
    requests_per_s: float = REQUESTS_PER_S
    request_burst: int = REQUEST_BURST

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number (got {value!r})")
