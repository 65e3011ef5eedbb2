"""Fakes for protocol tests: seeded randomness, devices, in-memory byte passing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing

from protocol import (
    INITIATOR,
    NEED_DATA,
    RESPONDER,
    Connection,
    Credentials,
    Event,
    HandshakeComplete,
)

GROUP_SECRET = bytes(range(32))
EPOCH = 7


def seeded_rng(label: str) -> Callable[[int], bytes]:
    """Deterministic stand-in for os.urandom: SHAKE-256 over a label and a counter."""
    calls = 0

    def rng(n: int) -> bytes:
        nonlocal calls
        calls += 1
        return hashlib.shake_256(f"{label}/{calls}".encode()).digest(n)

    return rng


@dataclass(frozen=True)
class Device:
    name: str
    seed: bytes

    @property
    def key(self) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)


def device(name: str) -> Device:
    return Device(name, hashlib.blake2b(name.encode(), digest_size=32).digest())


ALICE_LAPTOP = device("laptop")
ALICE_PHONE = device("phone")


def credentials(
    me: Device,
    known: frozenset[bytes] | None = None,
    *,
    group_secret: bytes = GROUP_SECRET,
    epoch: int = EPOCH,
) -> Credentials:
    if known is None:
        known = frozenset({ALICE_LAPTOP.key, ALICE_PHONE.key})
    return Credentials(me.seed, group_secret, epoch, known)


def connection_pair(
    initiator: Credentials | None = None,
    responder: Credentials | None = None,
    label: str = "pair",
) -> tuple[Connection, Connection]:
    a = Connection(INITIATOR, initiator or credentials(ALICE_LAPTOP), seeded_rng(label + "/i"))
    b = Connection(RESPONDER, responder or credentials(ALICE_PHONE), seeded_rng(label + "/r"))
    return a, b


def deliver(data: bytes, dst: Connection) -> list[Event]:
    """Feed *data* to *dst* and return every event until NEED_DATA."""
    if data:
        dst.receive_data(data)
    events: list[Event] = []
    while (event := dst.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def handshake(a: Connection, b: Connection) -> bytes:
    """Run the handshake; returns every byte that crossed the wire."""
    hello = a.data_to_send()
    assert deliver(hello, b) == []
    reply = b.data_to_send()
    (done_a,) = deliver(reply, a)
    finish = a.data_to_send()
    (done_b,) = deliver(finish, b)
    assert isinstance(done_a, HandshakeComplete) and isinstance(done_b, HandshakeComplete)
    assert done_a.session_id == done_b.session_id
    return hello + reply + finish


def established(label: str = "pair") -> tuple[Connection, Connection]:
    a, b = connection_pair(label=label)
    handshake(a, b)
    return a, b
