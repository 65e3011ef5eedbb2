"""Mirror's wire protocol, sans-IO: bytes in, events out, bytes out.

No sockets, no event loop, no clock and no global randomness: the node owns
I/O and timeouts and passes randomness in. ``spec/protocol.md`` is the
normative description; ``spec/vectors`` holds known answers.

- :class:`Connection` — a session between two devices of one person
  (handshake, catalogue sync, live updates, heartbeats).
- :class:`Pairing` — joining a device to the group with a short code (SPAKE2).
- :mod:`protocol.keys` — the key schedule and group-derived values.
- :mod:`protocol.relay` — the relay's wire contract (room paths, presence
  texts, the message cap, the rooms devices meet in).
- :mod:`protocol.limits` — every limit, with units.
"""

from __future__ import annotations

from ._state import INITIATOR, RESPONDER, HandshakeState, Role, SideState
from .connection import Connection, ConnectionStatistics
from .errors import (
    CloseCode,
    LocalProtocolError,
    PairingCodeMismatch,
    PeerIsThisDevice,
    ProtocolError,
    RemoteProtocolError,
)
from .events import (
    NEED_DATA,
    CatalogueReceived,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    NeedData,
    StateVectorReceived,
)
from .frames import PROTOCOL_VERSION, FrameKind
from .handshake import Credentials
from .keys import (
    SessionKeys,
    discovery_tag,
    document_key,
    relay_room_id,
    state_vector_digest,
)
from .messages import (
    COMMONS,
    DEVICES,
    LOCAL,
    Catalogue,
    CatalogueDigest,
    CatalogueEntry,
    CatchUpDone,
    Close,
    DeltaRequest,
    Heartbeat,
    HeartbeatAck,
    Message,
    StateVector,
    Update,
)
from .pairing import (
    JOINER,
    PAIRER,
    CodeNoLongerValid,
    DeviceInfo,
    DeviceJoined,
    DeviceRefused,
    GroupSnapshot,
    JoinedGroup,
    Pairing,
    PairingEvent,
    PairingRole,
    PairingState,
    classify_opening,
    new_pairing_code,
    normalize_pairing_code,
    pairing_hint,
)

__all__ = [
    "COMMONS",
    "DEVICES",
    "INITIATOR",
    "JOINER",
    "LOCAL",
    "NEED_DATA",
    "PAIRER",
    "PROTOCOL_VERSION",
    "RESPONDER",
    "Catalogue",
    "CatalogueDigest",
    "CatalogueEntry",
    "CatalogueReceived",
    "CatchUpDone",
    "Close",
    "CloseCode",
    "CodeNoLongerValid",
    "Connection",
    "ConnectionClosed",
    "ConnectionStatistics",
    "Credentials",
    "DeltaRequest",
    "DeviceInfo",
    "DeviceJoined",
    "DeviceRefused",
    "Event",
    "FrameKind",
    "GroupSnapshot",
    "HandshakeComplete",
    "HandshakeState",
    "Heartbeat",
    "HeartbeatAck",
    "JoinedGroup",
    "LocalProtocolError",
    "Message",
    "NeedData",
    "Pairing",
    "PairingCodeMismatch",
    "PairingEvent",
    "PairingRole",
    "PairingState",
    "PeerIsThisDevice",
    "ProtocolError",
    "RemoteProtocolError",
    "Role",
    "SessionKeys",
    "SideState",
    "StateVector",
    "StateVectorReceived",
    "Update",
    "classify_opening",
    "discovery_tag",
    "document_key",
    "new_pairing_code",
    "normalize_pairing_code",
    "pairing_hint",
    "relay_room_id",
    "state_vector_digest",
]
