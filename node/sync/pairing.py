"""Pairing over a byte stream: the node's side of ``protocol.pairing``.

The pairer shows a code and waits; the joiner types it. Both run SPAKE2 with
key confirmation; a wrong code fails on both sides and leaves nothing behind.
What the joiner gets is the group secret of the current epoch and the group's
devices; what the pairer gets is the joiner's device key and name, which it
adds to the membership document.

Theory of operation (the pairer)
--------------------------------
Every attempt on a code, from the LAN listener or a relay's rendezvous room,
goes through one :class:`PairerState`:

* it reads the joiner's PAIR_START first (within ``PAIRING_START_TIMEOUT_S``), then
  waits for its turn: attempts are served one at a time, so no two exchanges
  on a code are ever in flight together (at most ``MAX_WAITING_PAIRING_ATTEMPTS`` wait;
  more are hung up on);
* every exchange that got past the pairer's PAIR_REPLY gave the joiner one
  guess of the code, however it ends (a wrong code, a joiner that checks the
  reply itself and hangs up, a timeout): each such exchange that did not admit
  a device counts, and the code is given up after ``MAX_PAIRING_ATTEMPTS``. So
  a code answers at most MAX_PAIRING_ATTEMPTS guesses while it can admit a
  device: the chance that an online attacker gets in is at most
  ``MAX_PAIRING_ATTEMPTS / 2**40`` per code shown;
* a code admits one device, ever. An exchange after that (a racing joiner that
  also knew the code) is still run to its confirmation, so the pairer learns
  who else knew the code, and is refused: no welcome, no group secret;
* every attempt is recorded (:attr:`PairerState.tried`), so the pairer shows
  every device that tried, not only the one that joined.

Discovery of a pairing device uses a hint derived from the first two
characters of the code only (10 bits): enough to find the right device on a
busy LAN, too little to help anyone guess the rest of the code offline.
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass, field

import trio

from protocol import LocalProtocolError, PairingCodeMismatch, ProtocolError
from protocol.events import NEED_DATA, ConnectionClosed
from protocol.limits import FRAME_HEADER_BYTES, MAX_PAIRING_ATTEMPTS, PAIRING_TIMEOUT_S
from protocol.pairing import (
    JOINER,
    PAIRER,
    SPAKE2_MESSAGE_BYTES,
    CodeNoLongerValid,
    DeviceInfo,
    DeviceJoined,
    DeviceRefused,
    GroupSnapshot,
    JoinedGroup,
    Pairing,
    normalize_pairing_code,
    pairing_hint,
)

from ..errors import MirrorError
from ..identity import device_id_for
from .group import Group
from .limits import (
    MAX_WAITING_PAIRING_ATTEMPTS,
    PAIRING_EXCHANGE_TIMEOUT_S,
    PAIRING_START_TIMEOUT_S,
)

log = logging.getLogger("mirror.pairing")

START_FRAME_BYTES = FRAME_HEADER_BYTES + SPAKE2_MESSAGE_BYTES


class PairingFailed(MirrorError):
    """Pairing did not happen; nothing was changed."""


class AttemptOutcome(enum.Enum):
    """How one attempt on a code ended (as the pairer shows it)."""

    JOINED = "joined"
    WRONG_CODE = "wrong code"
    GAVE_UP = "stopped after the pairer's reply (a guess of the code, counted)"
    REFUSED = "knew the code, refused: the code had already admitted a device"
    CODE_VOID = "refused: the code no longer admits anyone"
    NO_PAIRING = "sent no pairing request"


@dataclass(frozen=True)
class PairingAttempt:
    """One attempt on a code: where it came from, how it ended, and which device
    it was when it proved the code (``device``: joined or refused)."""

    where: str
    outcome: AttemptOutcome
    device: DeviceInfo | None = None
    counted: bool = False
    """It used up one of the code's MAX_PAIRING_ATTEMPTS."""

    def describe(self) -> str:
        who = ""
        if self.device is not None:
            name = self.device.name or "unnamed device"
            who = f" {name!r} ({device_id_for(self.device.device_key)})"
        return f"{self.where or 'unknown address'}{who}: {self.outcome.value}"


@dataclass
class PairerState:
    """One shown code and every attempt on it (see the module docstring)."""

    code: str
    attempts: int = 0
    """Guesses answered that admitted nobody (they count against the limit)."""
    joined: DeviceInfo | None = None
    done: trio.Event | None = None
    failure: str | None = None
    tried: list[PairingAttempt] = field(default_factory=list)
    guesses_answered: int = 0
    """PAIR_REPLYs sent while the code could still admit a device."""
    waiting: int = 0
    busy: bool = False
    _turn: trio.Lock = field(default_factory=trio.Lock, repr=False)
    _idle: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def open(self) -> bool:
        """The code can still admit a device."""
        return self.joined is None and self.failure is None

    async def wait_idle(self) -> None:
        """Until no attempt is waiting or being served."""
        while self.waiting or self.busy:
            self._idle = trio.Event()
            await self._idle.wait()

    def _record(self, attempt: PairingAttempt) -> None:
        self.tried.append(attempt)
        log.info("pairing attempt from %s", attempt.describe())

    def _settle(self) -> None:
        if not (self.waiting or self.busy):
            self._idle.set()


async def _drive(machine: Pairing, stream: trio.abc.Stream) -> object:
    """Run *machine* over *stream* until it yields its result event (bytes it
    holds already are handled first)."""
    while True:
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
        data = await stream.receive_some(65536)
        machine.receive_data(bytes(data))


async def _read_start(stream: trio.abc.Stream, opening: bytes) -> bytes:
    """The joiner's first bytes, at least a whole PAIR_START's worth (b"" if it
    hung up or took longer than PAIRING_START_TIMEOUT_S)."""
    data = bytearray(opening)
    with trio.move_on_after(PAIRING_START_TIMEOUT_S):
        while len(data) < START_FRAME_BYTES:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return b""
            data += chunk
        return bytes(data)
    return b""


async def serve_pairing_attempt(
    group: Group, state: PairerState, stream: trio.abc.Stream, opening: bytes = b"",
    *, where: str = "",
) -> None:
    """Pairer: answer one joiner on *stream* (whose first bytes may be *opening*;
    *where* names it for the person: an address, or ``relay``)."""
    try:
        if state.waiting >= MAX_WAITING_PAIRING_ATTEMPTS:
            log.info("pairing: %d attempts waiting already; hung up on %s",
                     state.waiting, where or "a joiner")
            return
        state.waiting += 1
        try:
            try:
                start = await _read_start(stream, opening)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                start = b""
            if not start:
                state._record(PairingAttempt(where, AttemptOutcome.NO_PAIRING))
                return
            await state._turn.acquire()
        finally:
            state.waiting -= 1
        try:
            state.busy = True
            await _serve_turn(group, state, stream, start, where)
        finally:
            state.busy = False
            state._turn.release()
    finally:
        state._settle()
        with trio.move_on_after(1):
            await stream.aclose()


async def _serve_turn(
    group: Group, state: PairerState, stream: trio.abc.Stream, start: bytes, where: str
) -> None:
    """One exchange, alone on the code (the caller holds its turn)."""
    admit = state.open
    ring = group.keyring
    devices = tuple(DeviceInfo(r.public_key, r.name) for r in group.active())
    snapshot = GroupSnapshot(ring.group_secret, ring.epoch, devices)
    machine = Pairing(PAIRER, state.code, ring.device_seed, os.urandom, group=snapshot,
                      admit=admit)
    if state.joined is None and not admit:
        # Given up after failed attempts: answer no more guesses, say why.
        machine.refuse()
        with trio.move_on_after(1):
            try:
                await stream.send_all(machine.data_to_send())
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        state._record(PairingAttempt(where, AttemptOutcome.CODE_VOID))
        return
    event: object = None
    outcome = AttemptOutcome.GAVE_UP
    try:
        machine.receive_data(start)
        with trio.fail_after(PAIRING_EXCHANGE_TIMEOUT_S):
            event = await _drive(machine, stream)
    except PairingCodeMismatch:
        outcome = AttemptOutcome.WRONG_CODE
    except (ProtocolError, PairingFailed, trio.TooSlowError, trio.BrokenResourceError,
            trio.ClosedResourceError, OSError) as exc:
        log.info("pairing attempt from %s failed: %s", where or "a joiner", exc)
        if not machine.replied:
            outcome = AttemptOutcome.NO_PAIRING
    if admit and machine.replied:
        state.guesses_answered += 1
    device: DeviceInfo | None = None
    if isinstance(event, DeviceJoined):
        device = event.device
        outcome = AttemptOutcome.JOINED
        group.add_device(device.device_key, device.name or "new device")
        state.joined = device
    elif isinstance(event, DeviceRefused):
        device = event.device
        outcome = AttemptOutcome.REFUSED
    counted = admit and machine.replied and outcome is not AttemptOutcome.JOINED
    if counted:
        state.attempts += 1
    state._record(PairingAttempt(where, outcome, device, counted))
    if counted and state.attempts >= MAX_PAIRING_ATTEMPTS:
        state.failure = (f"{state.attempts} failed attempts: pairing cancelled, "
                         "the code is void")
    if state.done is not None and not state.open:
        state.done.set()


async def join(group: Group, code: str, stream: trio.abc.Stream, name: str) -> JoinedGroup:
    """Joiner: pair over *stream*; on success this device adopts the group."""
    try:
        normalize_pairing_code(code)
    except LocalProtocolError as exc:
        raise PairingFailed(str(exc)) from None
    ring = group.keyring
    machine = Pairing(JOINER, code, ring.device_seed, os.urandom, device_name=name)
    try:
        with trio.fail_after(PAIRING_EXCHANGE_TIMEOUT_S):
            event = await _drive(machine, stream)
    except PairingCodeMismatch:
        raise PairingFailed("the code did not match; nothing was changed") from None
    except CodeNoLongerValid:
        raise PairingFailed("the pairing device no longer accepts this code (another device "
                            "used it, or it was given up); nothing was changed: ask for a "
                            "new code") from None
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
    "AttemptOutcome",
    "PairerState",
    "PairingAttempt",
    "PairingFailed",
    "join",
    "pairing_hint",
    "serve_pairing_attempt",
]
