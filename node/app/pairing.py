"""Pairing a new device, as operations: offer a code and wait, or join with one.

The same steps as ``mirror pair`` / ``mirror join`` (node/cli/sync.py), for a front end
that shows them instead of printing them (the web interface): :func:`offer_pairing`
listens, reports the code and address once ready, waits for one device (on the LAN,
announced by discovery when it is on, or through the person's relays), and returns
who joined and every other attempt; :func:`join_device` joins another device's group.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import trio

from crdt.devices import clean_name

from ..config import parse_host_port
from ..errors import ConfigError, MirrorError, UsageError
from .mirror import Mirror

log = logging.getLogger("mirror.app")

LATE_ATTEMPTS_GRACE_S = 5.0
JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PairingOffer:
    code: str
    address: str  # host:port the other device can dial (mirror join CODE --address …)
    timeout_s: float


@dataclass(frozen=True)
class PairingOutcome:
    joined_name: str | None
    joined_id: str | None
    attempts: tuple[str, ...]  # every other attempt, described
    failure: str | None  # why no device joined (None when one did)


@dataclass(frozen=True)
class JoinOutcome:
    devices: int  # the size of the group this device is now in


async def offer_pairing(
    mirror: Mirror,
    on_offer: Callable[[PairingOffer], None],
    *,
    timeout_s: float | None = None,
) -> PairingOutcome:
    """Show a code (through *on_offer*) and wait for one device to join with it."""
    from protocol.pairing import new_pairing_code

    from ..identity import device_id_for
    from ..sync.pairing import (
        PAIRING_TIMEOUT_S,
        AttemptOutcome,
        PairerState,
        pairing_hint,
        serve_pairing_attempt,
    )
    from ..sync.relay import usable_relays
    from ..sync.runner import open_group

    core = mirror.core
    group = await open_group(core)
    state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
    host, port = _address(core.config.sync_listen, "sync_listen")
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    port = listeners[0].socket.getsockname()[1]
    timeout = timeout_s if timeout_s is not None else PAIRING_TIMEOUT_S
    on_offer(PairingOffer(state.code, f"{host}:{port}", timeout))

    async def handle(stream: trio.SocketStream) -> None:
        try:
            where = "{}:{}".format(*stream.socket.getpeername()[:2])
        except OSError:
            where = "?"
        await serve_pairing_attempt(group, state, stream, where=where)

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            if core.config.discovery:
                from ..discovery.lan import advertise_pairing

                async def advertise() -> None:
                    interfaces = list(core.config.discovery_interfaces)
                    async with advertise_pairing(interfaces=interfaces or None, port=port,
                                                 pairing_tag=pairing_hint(state.code)):
                        await trio.sleep_forever()

                nursery.start_soon(advertise)
            relays = usable_relays(core.config)
            if relays:
                from ..sync.relay import serve_pairing_through_relays

                nursery.start_soon(serve_pairing_through_relays, group, state, relays)
            assert state.done is not None
            await state.done.wait()
            with trio.move_on_after(LATE_ATTEMPTS_GRACE_S):
                await state.wait_idle()
            nursery.cancel_scope.cancel()
    joined = state.joined
    if joined is not None:
        await core.store.wait_durable()
    others = tuple(a.describe() for a in state.tried if a.outcome is not AttemptOutcome.JOINED)
    failure = None
    if joined is None:
        failure = state.failure or "no device joined in time; the code is void"
    return PairingOutcome(
        joined.name or "a new device" if joined is not None else None,
        device_id_for(joined.device_key) if joined is not None else None,
        others, failure)


async def join_device(
    mirror: Mirror,
    code: str,
    *,
    address: str | None = None,
    name: str | None = None,
    timeout_s: float = JOIN_TIMEOUT_S,
    leave_group: bool = False,
) -> JoinOutcome:
    """Join the group of the device showing *code* (at *address*, or found on the LAN
    or through a relay); with *leave_group*, even if this device is in a group now."""
    from protocol import LocalProtocolError
    from protocol.pairing import normalize_pairing_code

    from ..sync.dialing import connect_first
    from ..sync.pairing import PairingFailed, join, pairing_hint
    from ..sync.relay import usable_relays
    from ..sync.runner import open_group

    core = mirror.core
    try:
        normalize_pairing_code(code)
    except LocalProtocolError as exc:
        raise UsageError(f"{code!r} is {exc}") from None
    if name:
        try:
            clean_name(name)
        except ValueError as exc:
            raise UsageError(f"name: {exc}") from None
    group = await open_group(core)
    others = [r for r in group.active() if r.device_id != group.keyring.device_id]
    if others and not leave_group:
        raise MirrorError(f"this device is already in a group with {len(others)} other "
                          "device(s); leave it to join another")
    relays = usable_relays(core.config)
    try:
        if not address and not core.config.discovery and relays:
            from ..sync.relay import join_through_relays

            if name:
                group.rename_self(name)
            with trio.fail_after(timeout_s):
                result = await join_through_relays(group, code, group.keyring.device_name,
                                                   relays)
        else:
            if address:
                candidates = [_address(address, "address")]
            elif not core.config.discovery:
                raise UsageError("discovery is off: give the pairing device's address")
            else:
                from ..discovery.lan import find_pairing

                interfaces = list(core.config.discovery_interfaces)
                peer = await find_pairing(interfaces or None, pairing_hint(code),
                                          timeout_s=timeout_s)
                candidates = peer.candidates()
            try:
                with trio.fail_after(timeout_s):
                    stream, _ = await connect_first(candidates)
            except (OSError, trio.TooSlowError) as exc:
                where = ", ".join(f"{h}:{p}" for h, p in candidates)
                raise MirrorError(f"cannot reach the pairing device at {where} ({exc})") from None
            if name:
                group.rename_self(name)
            result = await join(group, code, stream, group.keyring.device_name)
    except trio.TooSlowError:
        raise MirrorError("the pairing device did not answer in time") from None
    except PairingFailed as exc:
        raise MirrorError(f"pairing failed: {exc}") from None
    await core.store.wait_durable()
    return JoinOutcome(len(result.group.devices))


def _address(text: str, what: str) -> tuple[str, int]:
    try:
        return parse_host_port(text, what=what)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
