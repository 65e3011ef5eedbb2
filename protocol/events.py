"""Events a :class:`~protocol.Connection` returns from ``next_event()``.

Besides these, ``next_event()`` returns the received :class:`~protocol.Update`,
:class:`~protocol.Heartbeat`, :class:`~protocol.HeartbeatAck`,
:class:`~protocol.Close` and :class:`~protocol.CatchUpDone` messages as they
are, and :data:`NEED_DATA` when it needs more bytes. All are frozen
dataclasses with no behaviour.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from .messages import CatalogueEntry, CatchUpDone, Close, Heartbeat, HeartbeatAck, Update


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _Sentinel.NEED_DATA
"""``next_event()`` needs more bytes: call ``receive_data()`` first."""

NeedData = Literal[_Sentinel.NEED_DATA]


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The peer is a known device of this person's group at ``epoch``.

    ``session_id`` is the same on both sides and unique to this session (log it,
    bind to it); it reveals nothing about the keys.
    """

    peer_device_key: bytes
    epoch: int
    session_id: bytes


@dataclass(frozen=True, slots=True)
class CatalogueReceived:
    """The peer's full catalogue (sent because the catalogue digests differed).

    ``differing`` lists, in wire order, the ids of the peer's documents that we
    did not list or listed with another state-vector digest: the candidates for
    the ``DeltaRequest`` the node must now send (possibly empty).
    """

    entries: tuple[CatalogueEntry, ...]
    differing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StateVectorReceived:
    """The peer wants what it lacks of ``doc_id``; answer with ``send(Update(...))``.

    The update must be the delta of the document against ``state_vector``
    (pycrdt: ``doc.get_update(state_vector)``).
    """

    doc_id: str
    sync_class: str
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The byte stream ended (``receive_data(b"")``) at a frame boundary."""


Event = (
    HandshakeComplete
    | CatalogueReceived
    | StateVectorReceived
    | Update
    | CatchUpDone
    | Heartbeat
    | HeartbeatAck
    | Close
    | ConnectionClosed
)
