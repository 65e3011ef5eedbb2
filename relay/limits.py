"""Every limit of the relay, with its unit in its name, and its close codes.

The defaults suit a relay serving people's own devices: a room holds the two
devices of a pair (plus room for a reconnect racing a stale connection). An
operator can change each limit with a ``mirror-relay`` flag or an environment
variable (see ``relay.server``); :class:`RelayLimits` carries the values in
force.

Memory per connection is bounded by ``MAX_QUEUE_BYTES`` (forwarded data waiting
for a reader) plus hypercorn's incoming queue (``APP_QUEUE_MESSAGES`` messages
of at most ``MAX_FRAME_BYTES``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from protocol.limits import MAX_RELAY_MESSAGE_BYTES

KIB: Final = 1024
MIB: Final = 1024 * KIB

MAX_FRAME_BYTES: Final = MAX_RELAY_MESSAGE_BYTES
"""Largest WebSocket message a client may send (clients send chunks of at most 64 KiB)."""

MAX_MERGED_BYTES: Final = MAX_RELAY_MESSAGE_BYTES
"""The relay merges queued chunks for one reader into messages of at most this size
(never above the contract's cap, which clients enforce)."""

MAX_QUEUE_BYTES: Final = 1 * MIB
"""Forwarded bytes waiting for one reader; above this its senders wait."""

SLOW_READER_TIMEOUT_S: Final = 10.0
"""How long senders wait for a reader over its queue limit before it is disconnected."""

CLOSE_GRACE_S: Final = 5.0
"""How long a connection the relay closes (or whose client left) has to finish: the
queue and the close frame written, the client's close read. Then the relay aborts
the transport, so the slot and the socket are free whatever the client does."""

SEND_STALL_TIMEOUT_S: Final = 30.0
"""TCP_USER_TIMEOUT on accepted sockets: a peer that acknowledges nothing (or keeps a
zero window) this long is cut off by the kernel, even while a write is blocked."""

MAX_CONNECTIONS_PER_ROOM: Final = 4
MAX_CONNECTIONS_PER_ADDRESS: Final = 32
MAX_CONNECTIONS: Final = 10_000

MAX_FRAMES_PER_S: Final = 2_000.0
"""Sustained rate of messages per connection (token bucket)."""

FRAME_BURST: Final = 4_000
"""Messages a connection may send at once before the rate applies."""

MAX_PINGS_PER_S: Final = 1.0
"""Sustained WebSocket pings (and unsolicited pongs) per connection; the server
answers each ping, so beyond this (after ``PING_BURST``) the relay closes with
``RATE_LIMITED``. Clients ping every 20 s."""

PING_BURST: Final = 16

MAX_BYTES_PER_S: Final = 4.0 * MIB
"""Sustained bytes per second one connection may send (token bucket): above it the
relay reads from it more slowly (backpressure, not a close). Each message also
costs ``MESSAGE_COST_BYTES``. This bounds what any one connection can take of the
relay's time, so a few flooding connections cannot slow everyone else's rooms."""

BYTE_BURST: Final = 8 * MIB
"""Bytes a connection may send at full speed before ``MAX_BYTES_PER_S`` applies (a
device catching up after a while away sends a few MiB at once)."""

MESSAGE_COST_BYTES: Final = 4 * KIB
"""What one message costs in the byte budget beyond its bytes: the relay spends
~22 µs on each message whatever its size and ~4 ns on each byte (measured,
docs/benchmarks.md), so a message costs about as much as 4-5 KiB of payload."""

APP_QUEUE_MESSAGES: Final = 8
"""hypercorn's per-connection queue of received messages (``max_app_queue_size``)."""

MAX_HTTP_HEADER_BYTES: Final = 8 * KIB
"""Largest request head: hypercorn answers 431/400 to an incomplete one over this,
the relay 431 to a complete one (``relay.admission``)."""

IPV6_PREFIX_BITS: Final = 64
"""Per-address limits count an IPv6 client by this prefix (its /64)."""

KEEPALIVE_IDLE_S: Final = 60
KEEPALIVE_INTERVAL_S: Final = 10
KEEPALIVE_PROBES: Final = 3
"""TCP keepalive on accepted sockets: a vanished idle peer is noticed in ~90 s."""

SHUTDOWN_GRACE_S: Final = 2.0


class RelayCloseCode(enum.IntEnum):
    """WebSocket close codes the relay sends (RFC 6455 §7.4; 4000-4999 are ours)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The relay is shutting down; reconnect (to another instance) with backoff."""
    UNSUPPORTED_DATA = 1003
    """A text message: clients send binary messages only."""
    MESSAGE_TOO_BIG = 1009
    """A message over ``MAX_FRAME_BYTES``."""
    INTERNAL_ERROR = 1011
    """The relay failed to write to this connection (a bug; the relay logs it)."""
    ROOM_FULL = 4001
    """``MAX_CONNECTIONS_PER_ROOM`` connections are already in the room."""
    TOO_MANY_FROM_ADDRESS = 4002
    """``MAX_CONNECTIONS_PER_ADDRESS`` connections already come from this address."""
    RATE_LIMITED = 4003
    """More messages than ``MAX_FRAMES_PER_S`` (after a burst of ``FRAME_BURST``), or
    more pings than ``MAX_PINGS_PER_S`` (after ``PING_BURST``)."""
    TOO_SLOW = 4004
    """This connection read too slowly: its queue stayed full ``SLOW_READER_TIMEOUT_S``."""
    AT_CAPACITY = 4005
    """The relay holds ``MAX_CONNECTIONS`` connections."""


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The limits in force (defaults: the constants above)."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_merged_bytes: int = MAX_MERGED_BYTES
    max_queue_bytes: int = MAX_QUEUE_BYTES
    slow_reader_timeout_s: float = SLOW_READER_TIMEOUT_S
    send_stall_timeout_s: float = SEND_STALL_TIMEOUT_S
    close_grace_s: float = CLOSE_GRACE_S
    max_connections_per_room: int = MAX_CONNECTIONS_PER_ROOM
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    max_connections: int = MAX_CONNECTIONS
    max_frames_per_s: float = MAX_FRAMES_PER_S
    frame_burst: int = FRAME_BURST
    max_bytes_per_s: float = MAX_BYTES_PER_S
    byte_burst: int = BYTE_BURST
    max_pings_per_s: float = MAX_PINGS_PER_S
    ping_burst: int = PING_BURST

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes", "max_merged_bytes", "max_queue_bytes",
            "max_connections_per_room", "max_connections_per_address", "max_connections",
            "frame_burst", "byte_burst", "ping_burst",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number (got {value!r})")
        for name in ("slow_reader_timeout_s", "send_stall_timeout_s", "close_grace_s",
                     "max_frames_per_s", "max_bytes_per_s", "max_pings_per_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number (got {value!r})")
        if self.max_merged_bytes < self.max_frame_bytes:
            raise ValueError("max_merged_bytes must be at least max_frame_bytes")
        if self.max_merged_bytes > MAX_RELAY_MESSAGE_BYTES:
            raise ValueError(f"max_merged_bytes must be at most {MAX_RELAY_MESSAGE_BYTES}: "
                             "clients refuse bigger messages")
        if self.byte_burst < self.max_frame_bytes + MESSAGE_COST_BYTES:
            raise ValueError("byte_burst must hold at least one message of max_frame_bytes")
