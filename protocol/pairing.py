"""Pairing: a new device joins the person's group with a short code.

Theory of operation
-------------------
The *pairer* (a device already in the group) shows a code; the *joiner* (the
new device) connects to it and the user types the code there. SPAKE2 turns the
low-entropy code into a strong shared key K; an attacker gets one online guess
per attempt and learns nothing offline. SPAKE2 with a wrong code succeeds
silently with different keys, so both sides prove K with a MAC before anything
secret is sent::

    joiner                                          pairer
    PAIR_START    X* (SPAKE2 side A)      ------>
                                          <------   PAIR_REPLY    Y* (side B), conf_p
    PAIR_CONFIRM  conf_j, seal_jp(joiner key, sig_j, name) -->
                                          <------   PAIR_WELCOME  seal_pj(pairer key, sig_p,
                                                                  epoch, group secret, devices)

    th     = H_pair(PAIR_START frame || PAIR_REPLY header || Y*)
    conf_x = KDF(K, "mirror/pr-conf-x", th); seal keys KDF(K, "mirror/pr-key-jp" / "-pj", th)
    sig_x  = Ed25519(device key x, "Mirror v1 pairing: x signs\\0" || th)

A side whose check of the other's confirmation fails queues a PAIR_ABORT (so
the other side fails at once instead of timing out), enters ERROR and raises
:class:`PairingCodeMismatch`; the node writes ``data_to_send()`` and closes.
Nothing secret is sent before the confirmation checked out.

Each PAIR_REPLY answers one guess of the code (:attr:`Pairing.replied`): the
node counts every exchange that got that far, however it ended, against
MAX_PAIRING_ATTEMPTS. A code admits one device, ever: a pairer built with
``admit=False`` (its code already admitted a device) checks a confirmation as
usual, so the node learns who else knew the code (:class:`DeviceRefused`), but
answers it with PAIR_ABORT(GOING_AWAY) instead of the welcome; the joiner then
raises :class:`CodeNoLongerValid`.

States, keyed by role, in the one table :data:`PAIRING_TRANSITIONS`::

    joiner: AWAIT_REPLY --PAIR_REPLY--> AWAIT_WELCOME --PAIR_WELCOME--> DONE
    pairer: AWAIT_START --PAIR_START--> AWAIT_CONFIRM --PAIR_CONFIRM--> DONE
            (admit=False: a valid PAIR_CONFIRM is answered with PAIR_ABORT, then DONE)
    any state but DONE --PAIR_ABORT or error--> ERROR

Randomness: the caller's *rng* feeds SPAKE2 (through its ``entropy_f``) and the
code generator. The ``spake2`` package would fall back to ``os.urandom`` only
if no rng were given; this module always passes one.
"""

from __future__ import annotations

import enum
import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import nacl.exceptions
import nacl.signing

from . import keys
from ._codec import Reader, Writer
from .errors import CloseCode, LocalProtocolError, PairingCodeMismatch, RemoteProtocolError
from .events import ConnectionClosed, NeedData
from .frames import (
    PAIRING_KINDS,
    Frame,
    FrameBuffer,
    FrameKind,
    check_version,
    encode_frame,
    frame_header,
    next_event_from,
)
from .keys import DIGEST_BYTES, KEY_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Purpose
from .limits import (
    MAX_DEVICE_NAME_BYTES,
    MAX_EPOCH,
    MAX_GROUP_DEVICES,
    MAX_PAIRING_FRAME_BYTES,
    PAIRING_CODE_CHARS,
)

SPAKE2_ID_JOINER: Final = b"mirror-pair/joiner"
SPAKE2_ID_PAIRER: Final = b"mirror-pair/pairer"
SPAKE2_MESSAGE_BYTES: Final = 33
CODE_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32
_CODE_ALIASES: Final = {"i": "1", "l": "1", "o": "0"}


class PairingRole(enum.Enum):
    """Which device a pairing runs on: the one joining the group, or the one already in it."""

    JOINER = "joiner"
    PAIRER = "pairer"


JOINER: Final = PairingRole.JOINER
PAIRER: Final = PairingRole.PAIRER


class PairingState(enum.Enum):
    """Where a pairing exchange is (one side's view)."""

    AWAIT_START = "await-start"
    AWAIT_REPLY = "await-reply"
    AWAIT_CONFIRM = "await-confirm"
    AWAIT_WELCOME = "await-welcome"
    DONE = "done"
    ERROR = "error"


PAIRING_TRANSITIONS: Final[dict[tuple[PairingRole, PairingState, FrameKind], PairingState]] = {
    (JOINER, PairingState.AWAIT_REPLY, FrameKind.PAIR_REPLY): PairingState.AWAIT_WELCOME,
    (JOINER, PairingState.AWAIT_WELCOME, FrameKind.PAIR_WELCOME): PairingState.DONE,
    (PAIRER, PairingState.AWAIT_START, FrameKind.PAIR_START): PairingState.AWAIT_CONFIRM,
    (PAIRER, PairingState.AWAIT_CONFIRM, FrameKind.PAIR_CONFIRM): PairingState.DONE,
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device of the group: its Ed25519 public key and the name it gave itself."""

    device_key: bytes
    name: str


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """What the pairer hands over: the group secret of ``epoch`` and its devices."""

    group_secret: bytes
    epoch: int
    devices: tuple[DeviceInfo, ...]


@dataclass(frozen=True, slots=True)
class DeviceJoined:
    """Pairer side: this device proved the code and its key; add it to the group."""

    device: DeviceInfo


@dataclass(frozen=True, slots=True)
class DeviceRefused:
    """Pairer side, ``admit=False``: this device knew the code and proved its key,
    but the code had already admitted a device; it was sent PAIR_ABORT, no welcome."""

    device: DeviceInfo


@dataclass(frozen=True, slots=True)
class JoinedGroup:
    """Joiner side: we are now in the group (``group.devices`` includes us)."""

    group: GroupSnapshot
    pairer_device_key: bytes


PairingEvent = DeviceJoined | DeviceRefused | JoinedGroup | ConnectionClosed


class CodeNoLongerValid(RemoteProtocolError):
    """Joiner side: the pairer no longer admits a device with this code (it admitted
    one already, or gave the code up)."""

    def __init__(self) -> None:
        super().__init__("the pairing device no longer accepts this code: it was already "
                         "used by another device, or given up", CloseCode.GOING_AWAY)


def new_pairing_code(rng: Callable[[int], bytes]) -> str:
    """A fresh code of PAIRING_CODE_CHARS characters (40 bits), shown as ``xxxx-xxxx``."""
    value = int.from_bytes(rng(PAIRING_CODE_CHARS * 5 // 8), "big")
    chars = [CODE_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(PAIRING_CODE_CHARS))]
    half = PAIRING_CODE_CHARS // 2
    return "".join(chars[:half]) + "-" + "".join(chars[half:])


def normalize_pairing_code(text: str) -> bytes:
    """The canonical form of a typed code; LocalProtocolError if it cannot be one.

    Case, spaces and dashes are ignored; i/l read as 1 and o as 0.
    """
    chars = [_CODE_ALIASES.get(c, c) for c in text.strip().lower() if c not in " -"]
    if len(chars) != PAIRING_CODE_CHARS or any(c not in CODE_ALPHABET for c in chars):
        raise LocalProtocolError(f"not a pairing code: expected {PAIRING_CODE_CHARS} characters")
    return "".join(chars).encode("ascii")


PAIRING_HINT_CHARS: Final = 2
"""Characters of the code a hint is made of: 10 of its 40 bits."""
PAIRING_HINT_BYTES: Final = 16


def pairing_hint(code: str) -> bytes:
    """The hint that lets a joiner find the pairer (LAN discovery, relay rendezvous
    room): a hash of the first PAIRING_HINT_CHARS characters of the normalised code.

    Anyone who sees a hint can test guesses of those 10 bits offline and nothing
    more: the other 30 bits are only ever tested by SPAKE2, one guess per attempt.
    """
    canonical = normalize_pairing_code(code)
    return keys.digest(
        canonical[:PAIRING_HINT_CHARS], Purpose.PAIR_HINT, size=PAIRING_HINT_BYTES
    )


def _spake2(role: PairingRole, code: bytes, rng: Callable[[int], bytes]) -> Any:
    import spake2  # pure Python; loaded only when pairing

    cls = spake2.SPAKE2_A if role is JOINER else spake2.SPAKE2_B
    return cls(code, idA=SPAKE2_ID_JOINER, idB=SPAKE2_ID_PAIRER, entropy_f=rng)


def _write_device(writer: Writer, device: DeviceInfo) -> None:
    writer.fixed(device.device_key, PUBLIC_KEY_BYTES)
    writer.text(device.name, MAX_DEVICE_NAME_BYTES, "device name")


def _read_device(reader: Reader) -> DeviceInfo:
    key = reader.fixed(PUBLIC_KEY_BYTES)
    return DeviceInfo(key, reader.text(MAX_DEVICE_NAME_BYTES, "device name"))


def _verify(device_key: bytes, message: bytes, signature: bytes, what: str) -> None:
    try:
        nacl.signing.VerifyKey(device_key).verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(
            f"{what} signature is invalid", CloseCode.NOT_AUTHORISED
        ) from None


class Pairing:
    """One side of a pairing exchange over any reliable byte stream.

    Joiner: ``Pairing(JOINER, code, device_seed, rng, device_name=...)``.
    Pairer: ``Pairing(PAIRER, code, device_seed, rng, group=GroupSnapshot(...))``
    (``group.devices`` must include the pairer itself); ``admit=False`` refuses
    a valid confirmation (:class:`DeviceRefused`). Drive it like a
    Connection: ``receive_data`` / ``next_event`` until NEED_DATA, then write
    ``data_to_send()`` — also after an error, to deliver the PAIR_ABORT.
    """

    def __init__(
        self,
        role: PairingRole,
        code: str,
        device_seed: bytes,
        rng: Callable[[int], bytes],
        *,
        device_name: str = "",
        group: GroupSnapshot | None = None,
        admit: bool = True,
    ) -> None:
        if len(device_seed) != KEY_BYTES:
            raise LocalProtocolError("device seed must be 32 bytes")
        self._role = role
        self._signing = nacl.signing.SigningKey(device_seed)
        self._device_key = bytes(self._signing.verify_key)
        if len(device_name.encode("utf-8")) > MAX_DEVICE_NAME_BYTES:
            raise LocalProtocolError("device name is too long")
        self._name = device_name
        if role is PAIRER:
            if group is None:
                raise LocalProtocolError("the pairer must hand over a GroupSnapshot")
            self._check_group(group)
        self._group = group
        self._admit = admit
        self._replied = False
        self._spake = _spake2(role, normalize_pairing_code(code), rng)
        self._buffer = FrameBuffer(PAIRING_KINDS, MAX_PAIRING_FRAME_BYTES)
        self._outbox = bytearray()
        self._events: deque[PairingEvent] = deque()
        self._key: bytes | None = None
        self._transcript: bytes | None = None
        self._peer_aborted = False
        if role is JOINER:
            message = self._spake.start()
            self._start_frame: bytes = encode_frame(
                FrameKind.PAIR_START, message, MAX_PAIRING_FRAME_BYTES
            )
            self._outbox += self._start_frame
            self._state = PairingState.AWAIT_REPLY
        else:
            self._state = PairingState.AWAIT_START

    def _check_group(self, group: GroupSnapshot) -> None:
        if len(group.group_secret) != KEY_BYTES or not 0 <= group.epoch <= MAX_EPOCH:
            raise LocalProtocolError("group secret must be 32 bytes and the epoch in range")
        if len(group.devices) + 1 > MAX_GROUP_DEVICES:
            raise LocalProtocolError("the group is full")
        if self._device_key not in {d.device_key for d in group.devices}:
            raise LocalProtocolError("the pairer must list itself among the group's devices")

    @property
    def role(self) -> PairingRole:
        return self._role

    @property
    def state(self) -> PairingState:
        return self._state

    @property
    def replied(self) -> bool:
        """Pairer: a PAIR_REPLY was queued, i.e. the joiner got to test one guess of
        the code against it (whatever happens next)."""
        return self._replied

    def refuse(self) -> None:
        """Pairer, before any reply: answer the joiner with PAIR_ABORT(GOING_AWAY)
        (its code no longer admits a device) without running SPAKE2: no guess is
        answered. The machine is then in the ERROR state."""
        if self._role is not PAIRER or self._state is not PairingState.AWAIT_START:
            raise LocalProtocolError("only a pairer that has not replied can refuse")
        self._abort(CloseCode.GOING_AWAY)

    def receive_data(self, data: bytes) -> None:
        if self._state is PairingState.ERROR:
            raise LocalProtocolError("pairing is in the ERROR state")
        self._buffer.feed(data)

    def data_to_send(self) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def next_event(self) -> PairingEvent | NeedData:
        if self._state is PairingState.ERROR:
            raise RemoteProtocolError("pairing is in the ERROR state")
        try:
            event = next_event_from(self._buffer, self._events, self._handle)
        except RemoteProtocolError as exc:
            self._abort(exc.close_code)
            raise
        return ConnectionClosed() if event is None else event

    def _abort(self, code: CloseCode) -> None:
        self._state = PairingState.ERROR
        self._events.clear()
        if self._peer_aborted:
            return
        self._outbox += encode_frame(
            FrameKind.PAIR_ABORT, Writer().varint(code).getvalue(), MAX_PAIRING_FRAME_BYTES
        )

    def _handle(self, frame: Frame) -> None:
        if frame.kind is FrameKind.PAIR_ABORT:
            reader = Reader(frame.body, "PAIR_ABORT")
            code = reader.varint()
            reader.done()
            self._peer_aborted = True
            if code == CloseCode.NOT_AUTHORISED:
                raise PairingCodeMismatch("the other device says the pairing code did not match")
            if code == CloseCode.GOING_AWAY and self._role is JOINER:
                raise CodeNoLongerValid()
            raise RemoteProtocolError(f"the other device aborted pairing (code {code})")
        next_state = PAIRING_TRANSITIONS.get((self._role, self._state, frame.kind))
        if next_state is None:
            raise RemoteProtocolError(
                f"unexpected {frame.kind.name} frame in pairing state {self._state.value}"
            )
        if frame.kind is FrameKind.PAIR_START:
            self._on_start(frame)
        elif frame.kind is FrameKind.PAIR_REPLY:
            self._on_reply(frame)
        elif frame.kind is FrameKind.PAIR_CONFIRM:
            self._on_confirm(frame)
        else:
            self._on_welcome(frame)
        self._state = next_state

    def _finish_spake(self, message: bytes) -> bytes:
        try:
            key = self._spake.finish(message)
        except Exception:  # spake2 raises ValueError and its own SPAKEError family
            raise RemoteProtocolError("peer sent an invalid SPAKE2 message") from None
        if not isinstance(key, bytes):
            raise RemoteProtocolError("peer sent an invalid SPAKE2 message")
        return key

    # pairer ------------------------------------------------------------------

    def _on_start(self, frame: Frame) -> None:
        if len(frame.body) != SPAKE2_MESSAGE_BYTES:
            raise RemoteProtocolError(f"PAIR_START must be {SPAKE2_MESSAGE_BYTES} bytes")
        own = self._spake.start()
        key = self._finish_spake(frame.body)
        header = frame_header(FrameKind.PAIR_REPLY, SPAKE2_MESSAGE_BYTES + DIGEST_BYTES)
        transcript = _transcript(frame.header + frame.body, header, own)
        confirm = keys.kdf(key, Purpose.PAIR_CONFIRM_P, transcript)
        self._key, self._transcript = key, transcript
        self._outbox += header + own + confirm
        self._replied = True

    def _on_confirm(self, frame: Frame) -> None:
        # The transition table admits PAIR_CONFIRM only after PAIR_START; restated
        # without an assert (remote input must never reach one).
        if self._key is None or self._transcript is None or self._group is None:
            raise RemoteProtocolError("PAIR_CONFIRM before PAIR_START")
        key, transcript = self._key, self._transcript
        reader = Reader(frame.body, "PAIR_CONFIRM")
        confirm = reader.fixed(DIGEST_BYTES)
        if not hmac.compare_digest(confirm, keys.kdf(key, Purpose.PAIR_CONFIRM_J, transcript)):
            raise PairingCodeMismatch()
        sealed = reader.fixed(reader.remaining)
        plain = keys.open_sealed(
            keys.kdf(key, Purpose.PAIR_KEY_J2P, transcript), 0, sealed, transcript, "PAIR_CONFIRM"
        )
        inner = Reader(plain, "joiner information")
        device = _read_device(inner)
        signature = inner.fixed(SIGNATURE_BYTES)
        inner.done()
        _verify(device.device_key, keys.SIG_CONTEXT_PAIR_JOINER + transcript, signature, "joiner")
        if device.device_key in {d.device_key for d in self._group.devices}:
            raise RemoteProtocolError(
                "the joining device is already in the group", CloseCode.NOT_AUTHORISED
            )
        if not self._admit:
            # The code admitted a device already: say so, hand over nothing.
            self._outbox += encode_frame(
                FrameKind.PAIR_ABORT, Writer().varint(CloseCode.GOING_AWAY).getvalue(),
                MAX_PAIRING_FRAME_BYTES,
            )
            self._events.append(DeviceRefused(device))
            return
        group = GroupSnapshot(
            self._group.group_secret, self._group.epoch, (*self._group.devices, device)
        )
        writer = Writer().fixed(self._device_key, PUBLIC_KEY_BYTES)
        writer.fixed(
            self._signing.sign(keys.SIG_CONTEXT_PAIR_PAIRER + transcript).signature, SIGNATURE_BYTES
        )
        writer.varint(group.epoch).fixed(group.group_secret, KEY_BYTES)
        writer.varint(len(group.devices))
        for member in group.devices:
            _write_device(writer, member)
        sealed_welcome = keys.seal(
            keys.kdf(key, Purpose.PAIR_KEY_P2J, transcript), 0, writer.getvalue(), transcript
        )
        self._outbox += encode_frame(
            FrameKind.PAIR_WELCOME, sealed_welcome, MAX_PAIRING_FRAME_BYTES
        )
        self._events.append(DeviceJoined(device))

    # joiner ------------------------------------------------------------------

    def _on_reply(self, frame: Frame) -> None:
        if len(frame.body) != SPAKE2_MESSAGE_BYTES + DIGEST_BYTES:
            raise RemoteProtocolError("PAIR_REPLY has the wrong length")
        theirs = frame.body[:SPAKE2_MESSAGE_BYTES]
        key = self._finish_spake(theirs)
        transcript = _transcript(self._start_frame, frame.header, theirs)
        expected = keys.kdf(key, Purpose.PAIR_CONFIRM_P, transcript)
        if not hmac.compare_digest(frame.body[SPAKE2_MESSAGE_BYTES:], expected):
            raise PairingCodeMismatch()
        inner = Writer()
        _write_device(inner, DeviceInfo(self._device_key, self._name))
        inner.fixed(
            self._signing.sign(keys.SIG_CONTEXT_PAIR_JOINER + transcript).signature, SIGNATURE_BYTES
        )
        sealed = keys.seal(
            keys.kdf(key, Purpose.PAIR_KEY_J2P, transcript), 0, inner.getvalue(), transcript
        )
        body = keys.kdf(key, Purpose.PAIR_CONFIRM_J, transcript) + sealed
        self._key, self._transcript = key, transcript
        self._outbox += encode_frame(FrameKind.PAIR_CONFIRM, body, MAX_PAIRING_FRAME_BYTES)

    def _on_welcome(self, frame: Frame) -> None:
        if self._key is None or self._transcript is None:
            raise RemoteProtocolError("PAIR_WELCOME before PAIR_REPLY")
        key, transcript = self._key, self._transcript
        plain = keys.open_sealed(
            keys.kdf(key, Purpose.PAIR_KEY_P2J, transcript),
            0,
            frame.body,
            transcript,
            "PAIR_WELCOME",
        )
        reader = Reader(plain, "PAIR_WELCOME")
        pairer = reader.fixed(PUBLIC_KEY_BYTES)
        signature = reader.fixed(SIGNATURE_BYTES)
        epoch = reader.varint(MAX_EPOCH)
        secret = reader.fixed(KEY_BYTES)
        count = reader.varint(MAX_GROUP_DEVICES)
        devices = tuple(_read_device(reader) for _ in range(count))
        reader.done()
        _verify(pairer, keys.SIG_CONTEXT_PAIR_PAIRER + transcript, signature, "pairer")
        members = [d.device_key for d in devices]
        if len(set(members)) != len(members):
            raise RemoteProtocolError("the group lists a device twice")
        if pairer not in members or DeviceInfo(self._device_key, self._name) not in devices:
            raise RemoteProtocolError("the group does not list the pairer and this device")
        self._events.append(JoinedGroup(GroupSnapshot(secret, epoch, devices), pairer))


def _transcript(start_frame: bytes, reply_header: bytes, reply_message: bytes) -> bytes:
    return keys.digest(
        keys.PAIRING_LABEL + start_frame + reply_header + reply_message, Purpose.PAIR_HASH
    )


def classify_opening(data: bytes) -> str | None:
    """``"session"`` or ``"pairing"`` from the first bytes a listener received.

    None if fewer than two bytes are there yet; RemoteProtocolError for anything
    that starts neither a session (HELLO) nor a pairing (PAIR_START).
    """
    if not data:
        return None
    check_version(data[0])
    if len(data) < 2:
        return None
    if data[1] == FrameKind.HELLO:
        return "session"
    if data[1] == FrameKind.PAIR_START:
        return "pairing"
    raise RemoteProtocolError(f"a connection cannot open with frame kind 0x{data[1]:02x}")
