"""The relay's wire contract has one owner, ``protocol.relay`` (spec/relay.md): the
room path, the presence texts, the message cap and the room derivations are
written there and nowhere else, and both ends use them."""

from __future__ import annotations

import re

import pytest

from protocol import LocalProtocolError, keys
from protocol.limits import MAX_RELAY_MESSAGE_BYTES
from protocol.relay import Presence, PresenceKind, parse_presence
from relay.limits import MAX_FRAME_BYTES, MAX_MERGED_BYTES, RelayLimits
from tests.helpers import REPO

OWNER = REPO / "protocol" / "relay.py"
PACKAGES = ("node", "relay", "crdt", "commons_server", "protocol")


def sources() -> list[tuple[str, str]]:
    return [(str(path.relative_to(REPO)), path.read_text(encoding="utf-8"))
            for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))]


def test_the_room_path_and_presence_texts_are_written_in_one_place() -> None:
    path_literal = re.compile(r"[\"']/v1/rooms")
    presence_literal = re.compile(r"f?[\"'](present|joined|left) [{0-9]")
    offenders = [name for name, text in sources()
                 if name != str(OWNER.relative_to(REPO))
                 and (path_literal.search(text) or presence_literal.search(text))]
    assert offenders == []


@pytest.mark.parametrize("purpose", ["mirror/pair-room", "mirror/rdv-room", "mirror/pair-hint",
                                     "mirror/relay-hrw", "mirror/device-id"])
def test_room_derivations_are_purposes_of_the_key_schedule(purpose: str) -> None:
    assert purpose.encode() in vars(keys.Purpose).values()
    # crdt/devices.py repeats the device id (crdt imports nothing of protocol's;
    # tests/test_spec_vectors.py checks that the two agree).
    allowed = {"crdt/devices.py"} if purpose.endswith("device-id") else set()
    users = {name for name, text in sources() if f'"{purpose}"' in text}
    assert "protocol/keys.py" in users
    assert {u for u in users if not u.startswith("protocol/")} == allowed


def test_purposes_are_distinct_and_fit_blake2b() -> None:
    values = [v for k, v in vars(keys.Purpose).items() if not k.startswith("_")]
    assert len(values) == len(set(values))
    assert all(isinstance(v, bytes) and 0 < len(v) <= 16 for v in values)


def test_the_relay_never_merges_past_what_clients_accept() -> None:
    assert MAX_FRAME_BYTES == MAX_MERGED_BYTES == MAX_RELAY_MESSAGE_BYTES
    with pytest.raises(ValueError, match="clients refuse"):
        RelayLimits(max_frame_bytes=MAX_RELAY_MESSAGE_BYTES + 1,
                    max_merged_bytes=MAX_RELAY_MESSAGE_BYTES + 1)


def test_presence_counts_are_checked() -> None:
    assert parse_presence("joined 3") == Presence(PresenceKind.JOINED, 3)
    with pytest.raises(LocalProtocolError):
        Presence(PresenceKind.LEFT, -1)
