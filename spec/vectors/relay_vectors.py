"""Vectors of spec/relay.md and spec/discovery.md (``relay.json``, ``discovery.json``).

Each value is computed twice: by the reference (``protocol.relay``,
``node.discovery.tags``) and straight from the spec's formulas with hashlib,
and the two must agree before anything is written.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import nacl.signing

from node.config import normalize_relay_url
from node.discovery.tags import _group_classifier, _group_properties, order_addresses
from protocol import discovery_tag, pairing_hint
from protocol.relay import (
    Presence,
    PresenceKind,
    pair_room,
    parse_presence,
    relay_rank,
    rendezvous_room,
    room_from_path,
    room_path,
)


def _public(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def _kdf(key: bytes, purpose: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, key=key, person=purpose).digest()


def relay_vectors(group_secret: bytes, epoch: int) -> dict[str, Any]:
    key_a, key_b, key_c = (_public(bytes([b]) * 32) for b in (0xA1, 0xB2, 0xC3))
    room_id = _kdf(group_secret, b"mirror/room", epoch.to_bytes(8, "big"))
    pair_rooms = []
    for one, two in ((key_a, key_b), (key_b, key_a), (key_a, key_c)):
        expected = _kdf(room_id, b"mirror/pair-room", min(one, two) + max(one, two))
        assert pair_room(group_secret, epoch, one, two) == expected
        pair_rooms.append({"key_a": one.hex(), "key_b": two.hex(), "room": expected.hex()})
    rendezvous = []
    for code in ("7kq2-m9xd", "7KQ2 zzzz", "7kq3-m9xd"):
        normalised = code.replace(" ", "").replace("-", "").lower()
        hint = hashlib.blake2b(normalised[:2].encode(), digest_size=16,
                               person=b"mirror/pair-hint").digest()
        room = hashlib.blake2b(hint, digest_size=32, person=b"mirror/rdv-room").digest()
        assert pairing_hint(code) == hint and rendezvous_room(code) == room
        rendezvous.append({"code": code, "hint": hint.hex(), "room": room.hex()})
    room = bytes.fromhex(pair_rooms[0]["room"])
    written = ["https://relay-b.example/", "wss://Relay-A.example:443", "http://[::1]:8765",
               "https://relay-b.example"]
    relays = []
    for url in written:
        normal = normalize_relay_url(url)
        weight = hashlib.blake2b(room + normal.encode(), digest_size=16,
                                 person=b"mirror/relay-hrw").digest()
        assert relay_rank(room, normal) == weight
        relays.append({"written": url, "normalised": normal, "weight": weight.hex()})
    ranked = sorted({r["normalised"]: r for r in relays}.values(),
                    key=lambda r: bytes.fromhex(r["weight"]), reverse=True)
    paths = [{"room": room.hex(), "path": room_path(room)}]
    assert room_from_path(paths[0]["path"]) == room
    invalid_paths = [
        "/v1/rooms/" + room.hex().upper(), "/v1/rooms/" + room.hex()[:-1],
        "/v1/rooms/" + room.hex() + "/", "/v1/room/" + room.hex(), "/v1/rooms/" + "g" * 64,
    ]
    assert all(room_from_path(p) is None for p in invalid_paths)
    presence = [{"text": Presence(kind, n).text(), "kind": kind.value, "others": n}
                for kind, n in ((PresenceKind.PRESENT, 0), (PresenceKind.PRESENT, 1),
                                (PresenceKind.JOINED, 1), (PresenceKind.LEFT, 0),
                                (PresenceKind.LEFT, 12))]
    assert all(parse_presence(p["text"]) == Presence(PresenceKind(p["kind"]), p["others"])
               for p in presence)
    not_presence = ["present", "present -1", "present +1", "present 01", "Present 1",
                    "joined  1", "left 1 ", "gone 1", "present 1234567890", "present ١"]
    assert all(parse_presence(t) is None for t in not_presence)
    return {
        "description": "The relay's wire contract (spec/relay.md): room paths, presence "
        "texts, pair and rendezvous rooms, relay ranking. 'relays' lists URLs as written, "
        "normalised, with their weight for the first pair room; 'ranked' is the order a "
        "client tries them in.",
        "max_message_bytes": 262_144,
        "group_secret": group_secret.hex(),
        "epoch": epoch,
        "relay_room_id": room_id.hex(),
        "pair_rooms": pair_rooms,
        "rendezvous_rooms": rendezvous,
        "room_paths": paths,
        "invalid_room_paths": invalid_paths,
        "presence": presence,
        "not_presence": not_presence,
        "relays": relays,
        "ranked": [r["normalised"] for r in ranked],
    }


def discovery_vectors(group_secret: bytes, epoch: int) -> dict[str, Any]:
    now = 1_706_745_600 + 1_234  # 2024-02-01T00:20:34Z
    hour = now // 3600
    earlier_secret = bytes(range(32, 64))

    def tag(secret: bytes, ep: int, h: int) -> bytes:
        data = ep.to_bytes(8, "big") + h.to_bytes(8, "big")
        expected = _kdf(secret, b"mirror/discovery", data)[:16]
        assert discovery_tag(secret, ep, h) == expected
        return expected

    properties = _group_properties(tag(group_secret, epoch, hour))
    assert properties == {"v": "1", "tag": tag(group_secret, epoch, hour).hex()}

    def current(h: int) -> bytes:
        return tag(group_secret, epoch, h)

    def earlier(h: int) -> list[tuple[int, bytes]]:
        return [(epoch - 1, tag(earlier_secret, epoch - 1, h))]

    classify = _group_classifier(current, lambda: float(now), earlier)
    cases = []
    for label, secret, ep, h in (
        ("current epoch, this hour", group_secret, epoch, hour),
        ("current epoch, previous hour", group_secret, epoch, hour - 1),
        ("current epoch, next hour", group_secret, epoch, hour + 1),
        ("current epoch, two hours ahead", group_secret, epoch, hour + 2),
        ("earlier epoch, this hour: dial at that epoch", earlier_secret, epoch - 1, hour),
        ("another group", bytes(32), epoch, hour),
    ):
        advertised = {"v": "1", "tag": tag(secret, ep, h).hex()}
        match = classify(dict(advertised))
        cases.append({
            "why": label, "txt": advertised,
            "accepted": match is not None,
            "matched_hour": None if match is None else match.tag_hour,
            "dial_at_epoch": None if match is None else match.epoch,
        })
    assert classify({"v": "2", "tag": properties["tag"]}) is None
    code = "7kq2-m9xd"
    networks = [ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd00::/64")]
    advertised_addresses = ["10.8.0.5", "fd00::20", "192.168.1.20", "fe80::1", "224.0.0.251",
                            "0.0.0.0", "not-an-address", "192.168.1.20", "2001:db8::7"]
    return {
        "description": "LAN discovery (spec/discovery.md): the TXT record of a group "
        "advertisement at 'unix_time', which advertised tags a browser whose clock reads "
        "'unix_time' accepts (it also holds the secret of epoch 'epoch' - 1), a pairing "
        "advertisement, and how advertised addresses are ordered for dialling.",
        "service_type": "_mirror._tcp.local.",
        "group_secret": group_secret.hex(),
        "epoch": epoch,
        "earlier_epoch_secret": earlier_secret.hex(),
        "unix_time": now,
        "hour": hour,
        "txt": properties,
        "browser": cases,
        "pairing": {"code": code, "txt": {"v": "1", "pairing": pairing_hint(code).hex()}},
        "addresses": {
            "advertised": advertised_addresses,
            "browser_networks": [str(n) for n in networks],
            "dial_order": list(order_addresses(advertised_addresses, networks)),
        },
    }
