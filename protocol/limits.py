"""Every limit of the wire protocol, with its unit in its name.

Limits are checked *before* allocating: a frame header is rejected as soon as its
six bytes are buffered, and every length field is compared with what remains in
the frame and with its limit before anything is sliced or decoded. The timeouts
are enforced by the node (the protocol has no clock); they live here so that
every implementation reads the same numbers.
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

# --- framing -----------------------------------------------------------------
FRAME_HEADER_BYTES: Final = 6
"""version (1) + kind (1) + body length (4, big-endian)."""

MAX_FRAME_BYTES: Final = 16 * MIB
"""Largest frame *body* (the value of the length field) of a session frame."""

MAX_PAIRING_FRAME_BYTES: Final = 64 * KIB
"""Largest frame body during pairing."""

AEAD_TAG_BYTES: Final = 16
MAX_MESSAGE_BYTES: Final = MAX_FRAME_BYTES - AEAD_TAG_BYTES
"""Largest plaintext message inside one sealed frame."""

MAX_VARINT_BYTES: Final = 10
"""A LEB128 varint encodes at most 64 bits."""

# --- messages ----------------------------------------------------------------
MAX_DOC_ID_BYTES: Final = 255
"""Document ids are non-empty UTF-8 strings of at most this many bytes: one limit
for the wire, the node's store and a blind store's name box (64 x 4 bytes, less
the length byte). Was 256 on the wire until every id had to fit all three."""

MAX_CATALOGUE_ENTRIES: Final = 16_384
"""Entries in one Catalogue, and state vectors in one DeltaRequest."""

MAX_STATE_VECTOR_BYTES: Final = 256 * KIB
"""One encoded state vector."""

MAX_CLOSE_REASON_BYTES: Final = 256
"""UTF-8 text of a Close message."""

MAX_OUTSTANDING_HEARTBEATS: Final = 4
"""Heartbeats sent and not yet acknowledged; one more is a LocalProtocolError."""

MAX_EPOCH: Final = 2**32 - 1
"""Group epochs are counted from 0 and never exceed this."""

MAX_SEQUENCE: Final = 2**64 - 1
"""Per-direction frame counter; a session must be re-established before it wraps."""

# --- pairing -----------------------------------------------------------------
MAX_DEVICE_NAME_BYTES: Final = 128
"""UTF-8 name a device gives itself."""

MAX_GROUP_DEVICES: Final = 256
"""Devices listed in a pairing Welcome."""

PAIRING_CODE_CHARS: Final = 8
"""Characters of a pairing code (5 bits each: 40 bits, one online guess per attempt)."""

MAX_PAIRING_ATTEMPTS: Final = 3
"""Failed pairing attempts a node accepts before it discards the code."""

# --- relay --------------------------------------------------------------------
MAX_RELAY_MESSAGE_BYTES: Final = 256 * KIB
"""Largest WebSocket message on a relay connection, in either direction: a relay
refuses a bigger one from a client (close 1009) and never merges chunks for a
reader beyond it; a client refuses a bigger one from the relay."""

# --- timeouts (enforced by the node) -----------------------------------------
HANDSHAKE_TIMEOUT_S: Final = 10.0
"""From connect to HandshakeComplete."""

HEARTBEAT_INTERVAL_S: Final = 15.0
"""A node sends a Heartbeat after this long without sending anything."""

IDLE_TIMEOUT_S: Final = 45.0
"""A node closes a session after this long without receiving anything."""

PAIRING_TIMEOUT_S: Final = 300.0
"""How long a shown pairing code stays valid."""
