"""Every limit of the blind store, with its unit in its name.

Quotas per group log (one log per group and epoch) bound what one person can
make the operator keep: a log that reaches its quota must be compacted (a device
uploads a snapshot that lets the store drop the envelopes it covers) before it
takes more. Tokens are anonymous, so quotas per log alone let anyone open logs
without end; the store's policy (docs/security.md) adds:

- a total: ``max_store_bytes`` of logs and forwarding notices, ``max_groups`` logs;
- per address: each log is charged to the address that created it (an IPv4
  address, an IPv6 /64), which may hold ``max_address_bytes`` and
  ``max_address_logs`` (live or retired). Filling the store takes
  max_store_bytes / max_address_bytes = 128 addresses, its log count 1,563;
- a retired log keeps its forwarding notice, and its charges, for
  ``retired_keep_days``; then a tombstone without charges refuses its token
  (``max_tombstones`` of them, oldest forgotten first);
- bytes held for requests in flight (bodies read, answers built) are bounded by
  ``max_buffered_bytes`` across all requests: a request waits for its share
  (up to ``buffer_wait_s``, then 503), so concurrent uploads cannot take the
  server's memory.
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

GIB: Final = 1024 * MIB

MAX_STORE_BYTES: Final = 64 * GIB
"""Bytes of all logs and forwarding notices together; beyond it, 507 for growth."""

MAX_ADDRESS_BYTES: Final = 512 * MIB
"""Bytes of the logs (and notices) created from one address (IPv4, or IPv6 /64)."""

MAX_ADDRESS_LOGS: Final = 64
"""Logs, live or retired, created from one address."""

RETIRED_KEEP_DAYS: Final = 180
"""Days a retired log keeps its forwarding notice and its charges; then only a
tombstone refuses its token. A device away longer catches up on the LAN, through
a relay, or by pairing again."""

MAX_TOMBSTONES: Final = 1_000_000
"""Tombstones kept (about 100 bytes each); beyond, the oldest are forgotten."""

MAX_BUFFERED_BYTES: Final = 160 * MIB
"""Bytes held for requests in flight, all requests together (bodies read and
split, pull answers built: twice the body or the answer, for the copy)."""

BUFFER_WAIT_S: Final = 30.0
"""Longest a request waits for its share of ``MAX_BUFFERED_BYTES``; then 503."""

BODY_TIMEOUT_S: Final = 30.0
MIN_BODY_BYTES_PER_S: Final = 32 * KIB
"""A body holding its share must arrive within BODY_TIMEOUT_S plus its length at
this rate (a 256 kbit/s uplink), else 408: a client that announces a large body
and sends nothing gives its share back."""

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
    max_store_bytes: int = MAX_STORE_BYTES
    max_address_bytes: int = MAX_ADDRESS_BYTES
    max_address_logs: int = MAX_ADDRESS_LOGS
    retired_keep_days: int = RETIRED_KEEP_DAYS
    max_tombstones: int = MAX_TOMBSTONES
    max_buffered_bytes: int = MAX_BUFFERED_BYTES
    buffer_wait_s: float = BUFFER_WAIT_S

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number (got {value!r})")
        if self.max_buffered_bytes < 2 * self.max_request_bytes:
            raise ValueError("max_buffered_bytes must hold two bodies of max_request_bytes "
                             "(a body and its envelopes)")
