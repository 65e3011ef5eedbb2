"""Every limit and interval of node sync, with its unit in its name.

One module so that a reader sees them side by side: three reconnect loops once
each had their own ``BACKOFF_MIN_S`` (0.5, 0.25 and 0.5 s). Those of the wire
protocol itself are in :mod:`protocol.limits`; those of the servers in
``relay.limits`` and ``commons_server.limits``.
"""

from __future__ import annotations

from typing import Final

from protocol.limits import MAX_RELAY_MESSAGE_BYTES

KIB: Final = 1024
MIB: Final = 1024 * KIB

# --------------------------------------------------------------------------- connecting

CONNECT_TIMEOUT_S: Final = 10.0
"""To open a TCP connection to a peer, a relay or a blind store."""

MAX_DIAL_ADDRESSES: Final = 8
"""Addresses one dialer tries (discovery already caps a device's addresses; this
bounds every other caller too)."""

NEXT_ADDRESS_DELAY_S: Final = 0.25
"""Start the next address when the current one has not answered by then. A LAN
peer answers (or refuses) in milliseconds."""

DIAL_BACKOFF_MIN_S: Final = 0.5
DIAL_BACKOFF_MAX_S: Final = 60.0
"""The sync service's redial of a LAN peer: from the first wait up to the longest."""

RELAY_BACKOFF_MIN_S: Final = 0.25
RELAY_BACKOFF_MAX_S: Final = 30.0
"""Reconnecting to a relay room (a relay restart should be crossed quickly)."""

BLIND_STORE_BACKOFF_MIN_S: Final = 0.5
BLIND_STORE_BACKOFF_MAX_S: Final = 60.0
"""Retrying a blind store that failed."""

# --------------------------------------------------------------------------- sessions

READ_BYTES: Final = 256 * KIB
"""Bytes asked of the stream by one read of a session."""

MAX_QUEUED_WRITES: Final = 100_000
"""Sealed frames waiting for the writer; beyond: resync instead."""

WRITE_TIMEOUT_S: Final = 30.0
"""A write the peer does not take in this long ends the session."""

CLOSE_GRACE_S: Final = 1.0
"""For the writer to deliver a Close after an error."""

OPENING_TIMEOUT_S: Final = 10.0
"""For an accepted connection to send its first bytes (session or pairing)."""

REFRESH_INTERVAL_S: Final = 0.25
"""How often the sync service picks up what other processes wrote."""

STATUS_INTERVAL_S: Final = 1.0
"""How often the sync service rewrites its status file."""

# --------------------------------------------------------------------------- relay

RELAY_CHUNK_BYTES: Final = 64 * KIB
"""Largest message we send through a relay (the contract allows 256 KiB)."""

MAX_RECEIVE_MESSAGE_BYTES: Final = MAX_RELAY_MESSAGE_BYTES
"""Largest message (and read size) accepted from a relay: httpx-ws joins a fragmented
message up to this many bytes and ends the connection (1009) past it, so a hostile
relay cannot grow our memory with one endless message. The relay's merged messages
are at most this."""

RECEIVE_QUEUE_MESSAGES: Final = 64
"""Relay chunks buffered for a session that reads slowly."""

PING_INTERVAL_S: Final = 20.0
PING_TIMEOUT_S: Final = 20.0
"""WebSocket keepalive with the relay."""

REJOIN_ALONE_AFTER_S: Final = 120.0
"""A connection alone in its room this long (jittered +-25 %) is reopened. Where a
room goes can change under a waiting device: its relay or proxy instance died and
came back, so the room's own instance serves it again while the device still
waits on the fallback it moved to; a peer arriving now goes to the room's own
instance. Reopening finds the room where it is now. It costs a waiting device one
reconnection per interval, and a device in session nothing."""

MAX_EARLIER_EPOCH_ROOMS: Final = 2
"""After a removal, how many earlier epochs' pair rooms a device keeps per peer
(those in which the peer was a member, newest first) until the peer has synced
at the current epoch. A peer that missed more removals than this catches up on
the LAN (discovery recognises earlier epochs' tags), through a blind store (the
retired log's forwarding notice), or by pairing again."""

# --------------------------------------------------------------------------- blind store

BLIND_STORE_REQUEST_TIMEOUT_S: Final = 60.0
"""One request to a blind store (a held pull is shorter: ``PULL_WAIT_S``)."""

PULL_WAIT_S: Final = 25.0
"""How long one pull may be held open by the store waiting for news."""

COMPACT_AFTER_ENVELOPES: Final = 256
"""Envelopes beyond the snapshot after which a caught-up device compacts."""

SCAN_INTERVAL_S: Final = 1.0
"""How often the blind-store pusher re-checks documents other processes may have created."""

MAX_UPLOAD_BYTES: Final = 8 * MIB
"""Envelopes are sent to a blind store in requests of about this size."""

# --------------------------------------------------------------------------- pairing

PAIRING_EXCHANGE_TIMEOUT_S: Final = 30.0
"""One exchange, from the joiner's PAIR_START to the welcome."""

PAIRING_START_TIMEOUT_S: Final = 10.0
"""For a connection to send its PAIR_START (before it waits for its turn)."""

MAX_WAITING_PAIRING_ATTEMPTS: Final = 8
"""Attempts holding a PAIR_START and waiting for their turn; more are hung up on."""
