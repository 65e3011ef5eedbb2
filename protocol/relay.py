"""The relay's wire contract, sans-IO: rooms, their paths, presence texts, the size cap.

A relay (``relay/``) forwards the binary WebSocket messages of a connection to
the other connections of its *room* and keeps nothing; the devices' own session
or pairing bytes run inside, so the relay sees ciphertext only. Both ends of
that contract live here, so the relay and the node cannot drift apart
(``spec/relay.md`` is the normative text, ``spec/vectors/relay.json`` the
known answers):

- the path of a room: ``/v1/rooms/`` + the 32-byte room id as 64 lowercase hex
  digits (:func:`room_path`, :func:`room_from_path`);
- the presence texts the relay sends, the only text messages on a connection
  (:class:`Presence`): ``present N`` first, then ``joined N`` / ``left N``, N
  being how many *other* connections the room holds;
- the cap on one message, either direction: :data:`MAX_RELAY_MESSAGE_BYTES`;
- the rooms devices meet in: a *pair room* per two devices of a group and
  epoch (:func:`pair_room`), a *rendezvous room* per pairing code
  (:func:`rendezvous_room`), and the rendezvous-hashing weight that ranks
  several relays for a room (:func:`relay_rank`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from . import keys
from .errors import LocalProtocolError
from .keys import PUBLIC_KEY_BYTES, Purpose
from .limits import MAX_RELAY_MESSAGE_BYTES
from .pairing import pairing_hint

ROOM_ID_BYTES: Final = 32
ROOM_PATH_PREFIX: Final = "/v1/rooms/"
RELAY_RANK_BYTES: Final = 16
MAX_PRESENCE_DIGITS: Final = 9
"""Digits of the count in a presence text (rooms hold a handful of connections)."""
_HEX_DIGITS: Final = frozenset("0123456789abcdef")

__all__ = [
    "MAX_RELAY_MESSAGE_BYTES",
    "ROOM_ID_BYTES",
    "ROOM_PATH_PREFIX",
    "Presence",
    "PresenceKind",
    "pair_room",
    "parse_presence",
    "relay_rank",
    "rendezvous_room",
    "room_from_path",
    "room_path",
]


# --- paths --------------------------------------------------------------------


def room_path(room: bytes) -> str:
    """The HTTP path of *room* on a relay (relative to the relay's base URL)."""
    if len(room) != ROOM_ID_BYTES:
        raise LocalProtocolError(f"a room id is {ROOM_ID_BYTES} bytes")
    return ROOM_PATH_PREFIX + room.hex()


def room_from_path(path: str) -> bytes | None:
    """The room id a request path names, or None if it is not a room's path.

    Exactly ``/v1/rooms/`` and 64 *lowercase* hex digits: one spelling per room,
    so two devices can never reach one room by two paths (nor a proxy hash them
    to two instances)."""
    if not path.startswith(ROOM_PATH_PREFIX):
        return None
    digits = path[len(ROOM_PATH_PREFIX):]
    if len(digits) != 2 * ROOM_ID_BYTES or not set(digits) <= _HEX_DIGITS:
        return None
    return bytes.fromhex(digits)


# --- presence -------------------------------------------------------------------


class PresenceKind(enum.Enum):
    """What a presence text says happened."""

    PRESENT = "present"
    """The first message on a connection: N others are in the room."""
    JOINED = "joined"
    """Another connection entered the room; N others are there now."""
    LEFT = "left"
    """Another connection left the room; N others remain."""


@dataclass(frozen=True, slots=True)
class Presence:
    """One presence text: who is in the room besides the connection it is sent to."""

    kind: PresenceKind
    others: int

    def __post_init__(self) -> None:
        if not 0 <= self.others < 10**MAX_PRESENCE_DIGITS:
            raise LocalProtocolError(f"presence count {self.others} out of range")

    def text(self) -> str:
        """The text message the relay sends: ``"<kind> <others>"``."""
        return f"{self.kind.value} {self.others}"


def parse_presence(text: str) -> Presence | None:
    """The presence a relay's text message states; None for any other text.

    The form is exact: a kind, one space, a decimal count without sign or
    leading zeros. A client ignores a text it does not know (a later relay may
    say more), so None is not an error."""
    word, space, count = text.partition(" ")
    if not space or not count.isascii() or not count.isdigit():
        return None
    if len(count) > MAX_PRESENCE_DIGITS or (len(count) > 1 and count[0] == "0"):
        return None
    try:
        kind = PresenceKind(word)
    except ValueError:
        return None
    return Presence(kind, int(count))


# --- rooms ----------------------------------------------------------------------


def pair_room(group_secret: bytes, epoch: int, key_a: bytes, key_b: bytes) -> bytes:
    """The room where two devices of a group meet at *epoch* (the same for both).

    ``KDF(relay_room_id(group_secret, epoch), "mirror/pair-room", lower key ||
    higher key)``: only members of the group at that epoch can compute it, and
    each pair of devices has its own room, so a room is a point-to-point link."""
    if len(key_a) != PUBLIC_KEY_BYTES or len(key_b) != PUBLIC_KEY_BYTES:
        raise LocalProtocolError(f"device keys are {PUBLIC_KEY_BYTES} bytes")
    first, second = sorted((key_a, key_b))
    return keys.kdf(keys.relay_room_id(group_secret, epoch), Purpose.PAIR_ROOM, first + second)


def rendezvous_room(code: str) -> bytes:
    """The room where a joining device meets the device showing *code*.

    Made from :func:`~protocol.pairing.pairing_hint`, i.e. from two characters
    (10 bits) of the code only: whoever sees the room id (the relay operator)
    must not be able to test guesses of the whole code offline."""
    return keys.digest(pairing_hint(code), Purpose.RENDEZVOUS_ROOM)


def relay_rank(room: bytes, relay_url: str) -> bytes:
    """The rendezvous-hashing weight of *relay_url* for *room*; devices use the
    relay of the highest weight that accepts, so devices with the same list of
    relays meet without talking. *relay_url* is the normalised base URL (the
    node's ``normalize_relay_url``: scheme and host lower case, no trailing ``/``)."""
    if len(room) != ROOM_ID_BYTES:
        raise LocalProtocolError(f"a room id is {ROOM_ID_BYTES} bytes")
    return keys.digest(room + relay_url.encode("utf-8"), Purpose.RELAY_RANK,
                       size=RELAY_RANK_BYTES)
