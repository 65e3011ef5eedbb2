"""Pairing over a byte stream: the node's side of ``protocol.pairing``.

The pairer shows a code and waits; the joiner types it. Both run SPAKE2 with
key confirmation; a wrong code fails on both sides and leaves nothing behind.
The pairer counts failed attempts and gives the code up after
``MAX_PAIRING_ATTEMPTS``. What the joiner gets is the group secret of the
current epoch and the group's devices; what the pairer gets is the joiner's
device key and name, which it adds to the membership document.

Discovery of a pairing device uses a hint derived from the first two
characters of the code only (10 bits): enough to find the right device on a
busy LAN, too little to help anyone guess the rest of the code offline.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import trio

from protocol import LocalProtocolError, PairingCodeMismatch, ProtocolError
from protocol.events import NEED_DATA, ConnectionClosed
from protocol.limits import MAX_PAIRING_ATTEMPTS, PAIRING_TIMEOUT_S
from protocol.pairing import (
    JOINER,
    PAIRER,
    DeviceInfo,
    DeviceJoined,
    GroupSnapshot,
    JoinedGroup,
    Pairing,
    normalize_pairing_code,
)

from ..errors import MirrorError
from .group import Group

log = logging.getLogger("mirror.pairing")

EXCHANGE_TIMEOUT_S = 30.0


class PairingFailed(MirrorError):
    """Pairing did not happen; nothing was changed."""


def pairing_hint(code: str) -> bytes:
    """The discovery / rendezvous hint of a code: 10 bits of it, hashed."""
    canonical = normalize_pairing_code(code)
    return hashlib.blake2b(canonical[:2], digest_size=16, person=b"mirror/pair-hint").digest()


@dataclass
class PairerState:
    code: str
    attempts: int = 0
    joined: DeviceInfo | None = None
    done: trio.Event | None = None
    failure: str | None = None


async def _drive(machine: Pairing, stream: trio.abc.Stream) -> object:
    """Run *machine* over *stream* until it yields its result event."""
    out = machine.data_to_send()
    if out:
        await stream.send_all(out)
    while True:
        data = await stream.receive_some(65536)
        machine.receive_data(bytes(data))
        while True:
            try:
                event = machine.next_event()
            finally:
                out = machine.data_to_send()  # also delivers a PAIR_ABORT after an error
                if out:
                    try:
                        await stream.send_all(out)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            if event is NEED_DATA:
                break
            if isinstance(event, ConnectionClosed):
                raise PairingFailed("the other device hung up before pairing finished")
            return event
        if not data:
            raise PairingFailed("the other device hung up before pairing finished")


async def serve_pairing_attempt(
    group: Group, state: PairerState, stream: trio.abc.Stream, opening: bytes = b""
) -> None:
    """Pairer: answer one joiner on *stream* (whose first bytes may be *opening*)."""
    ring = group.keyring
    devices = tuple(DeviceInfo(r.public_key, r.name) for r in group.active())
    snapshot = GroupSnapshot(ring.group_secret, ring.epoch, devices)
    machine = Pairing(PAIRER, state.code, ring.device_seed, os.urandom, group=snapshot)
    if opening:
        machine.receive_data(opening)
    try:
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            event = await _drive_with_opening(machine, stream, bool(opening))
    except PairingCodeMismatch:
        state.attempts += 1
        log.info("pairing: wrong code (attempt %d)", state.attempts)
        if state.attempts >= MAX_PAIRING_ATTEMPTS and state.done is not None:
            state.failure = f"{state.attempts} wrong codes: pairing cancelled, the code is void"
            state.done.set()
        return
    except (ProtocolError, PairingFailed, trio.TooSlowError, trio.BrokenResourceError) as exc:
        log.info("pairing attempt failed: %s", exc)
        return
    finally:
        with trio.move_on_after(1):
            await stream.aclose()
    if isinstance(event, DeviceJoined) and state.joined is None:
        group.add_device(event.device.device_key, event.device.name or "new device")
        state.joined = event.device
        if state.done is not None:
            state.done.set()


async def _drive_with_opening(machine: Pairing, stream: trio.abc.Stream, primed: bool) -> object:
    if primed:
        # The opening bytes were read by the listener: process them before reading more.
        while True:
            event = machine.next_event()
            out = machine.data_to_send()
            if out:
                await stream.send_all(out)
            if event is NEED_DATA:
                break
            return event
    return await _drive(machine, stream)


async def join(group: Group, code: str, stream: trio.abc.Stream, name: str) -> JoinedGroup:
    """Joiner: pair over *stream*; on success this device adopts the group."""
    try:
        normalize_pairing_code(code)
    except LocalProtocolError as exc:
        raise PairingFailed(str(exc)) from None
    ring = group.keyring
    machine = Pairing(JOINER, code, ring.device_seed, os.urandom, device_name=name)
    try:
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            event = await _drive(machine, stream)
    except PairingCodeMismatch:
        raise PairingFailed("the code did not match; nothing was changed") from None
    except trio.TooSlowError:
        raise PairingFailed("the other device did not answer in time") from None
    except ProtocolError as exc:
        raise PairingFailed(f"pairing failed: {exc}") from None
    finally:
        with trio.move_on_after(1):
            await stream.aclose()
    if not isinstance(event, JoinedGroup):
        raise PairingFailed("unexpected answer from the other device")
    ring.adopt_group({event.group.epoch: event.group.group_secret})
    known = {r.public_key for r in group.active()}
    for device in event.group.devices:
        if device.device_key not in known:
            group.add_device(device.device_key, device.name or "device")
    group.refresh()
    return event


__all__ = [
    "PAIRING_TIMEOUT_S",
    "PairerState",
    "PairingFailed",
    "join",
    "pairing_hint",
    "serve_pairing_attempt",
]
