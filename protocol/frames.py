"""Framing: every byte on the wire belongs to a frame.

    frame  = version:u8  kind:u8  length:u32be  body[length]

``version`` is :data:`PROTOCOL_VERSION` on every frame; anything else is refused
with a clear :class:`RemoteProtocolError` (close code UNSUPPORTED_VERSION) as
soon as the first byte arrives. ``kind`` says how to read the body and must be
one of :class:`FrameKind`. ``length`` is checked against the limit of the
connection as soon as the six header bytes are buffered, so a header claiming
4 GiB fails at once, without waiting for or allocating its body. After the
handshake the six header bytes are the associated data of the frame's AEAD.

:class:`FrameBuffer` is the receive buffer: bytes in, whole frames out, O(bytes
read) — it keeps an offset and compacts lazily instead of shifting the buffer
on every frame.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .events import NEED_DATA, NeedData
from .limits import FRAME_HEADER_BYTES

PROTOCOL_VERSION: Final = 1
"""The only version this implementation speaks."""

_COMPACT_AFTER_BYTES: Final = 64 * 1024


class FrameKind(enum.IntEnum):
    """The second byte of every frame."""

    HELLO = 0x01  # handshake 1: initiator -> responder, plaintext
    REPLY = 0x02  # handshake 2: responder -> initiator, identity sealed
    FINISH = 0x03  # handshake 3: initiator -> responder, identity sealed
    SEALED = 0x10  # one AEAD-sealed message, after the handshake
    PAIR_START = 0x20  # pairing 1: joiner -> pairer, SPAKE2 message
    PAIR_REPLY = 0x21  # pairing 2: pairer -> joiner, SPAKE2 message + confirmation
    PAIR_CONFIRM = 0x22  # pairing 3: joiner -> pairer, confirmation + sealed joiner info
    PAIR_WELCOME = 0x23  # pairing 4: pairer -> joiner, sealed group secret and devices
    PAIR_ABORT = 0x2F  # pairing: either side gives up (wrong code)


SESSION_KINDS: Final = frozenset(
    {FrameKind.HELLO, FrameKind.REPLY, FrameKind.FINISH, FrameKind.SEALED}
)
PAIRING_KINDS: Final = frozenset(
    {
        FrameKind.PAIR_START,
        FrameKind.PAIR_REPLY,
        FrameKind.PAIR_CONFIRM,
        FrameKind.PAIR_WELCOME,
        FrameKind.PAIR_ABORT,
    }
)
_KIND_VALUES: Final = frozenset(int(k) for k in FrameKind)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as received: its header (the AEAD associated data) and body."""

    kind: FrameKind
    header: bytes
    body: bytes


def frame_header(kind: FrameKind, body_length: int) -> bytes:
    """The six header bytes of a frame of *kind* with a body of *body_length*."""
    if not 0 <= body_length <= 0xFFFFFFFF:
        raise LocalProtocolError(f"frame body of {body_length} bytes cannot be framed")
    return bytes((PROTOCOL_VERSION, int(kind))) + body_length.to_bytes(4, "big")


def encode_frame(kind: FrameKind, body: bytes, max_body_bytes: int) -> bytes:
    """A whole frame; :class:`LocalProtocolError` if *body* is over *max_body_bytes*."""
    if len(body) > max_body_bytes:
        raise LocalProtocolError(
            f"frame body of {len(body)} bytes is over the limit of {max_body_bytes}",
            CloseCode.TOO_LARGE,
        )
    return frame_header(kind, len(body)) + body


def check_version(version: int) -> None:
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"peer speaks protocol version {version}; this implementation speaks only "
            f"version {PROTOCOL_VERSION}",
            CloseCode.UNSUPPORTED_VERSION,
        )


def parse_header(
    header: bytes | bytearray | memoryview, allowed: frozenset[FrameKind], max_body_bytes: int
) -> tuple[FrameKind, int]:
    """Validate six header bytes; returns (kind, body length)."""
    check_version(header[0])
    if header[1] not in _KIND_VALUES:
        raise RemoteProtocolError(f"unknown frame kind 0x{header[1]:02x}")
    kind = FrameKind(header[1])
    if kind not in allowed:
        raise RemoteProtocolError(f"frame kind {kind.name} is not valid on this connection")
    length = int.from_bytes(header[2:6], "big")
    if length > max_body_bytes:
        raise RemoteProtocolError(
            f"peer announced a frame of {length} bytes; the limit is {max_body_bytes}",
            CloseCode.TOO_LARGE,
        )
    return kind, length


class FrameBuffer:
    """Receive buffer that yields whole, header-checked frames."""

    def __init__(self, allowed: frozenset[FrameKind], max_body_bytes: int) -> None:
        self._buf = bytearray()
        self._start = 0
        self._allowed = allowed
        self._max_body_bytes = max_body_bytes
        self.eof = False

    def restrict(self, allowed: frozenset[FrameKind], max_body_bytes: int) -> None:
        """Change the accepted kinds and size for the frames not yet parsed."""
        self._allowed = allowed
        self._max_body_bytes = max_body_bytes

    def __len__(self) -> int:
        return len(self._buf) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (b"" marks end of stream)."""
        if not data:
            self.eof = True
            return
        if self.eof:
            raise LocalProtocolError("received data after end of stream")
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None if more bytes are needed.

        Raises :class:`RemoteProtocolError` as soon as the buffered bytes can no
        longer start a valid frame (first byte for the version, six for the rest).
        """
        available = len(self)
        if available >= 1:
            check_version(self._buf[self._start])
        if available < FRAME_HEADER_BYTES:
            return None
        start = self._start
        header = bytes(self._buf[start : start + FRAME_HEADER_BYTES])
        kind, length = parse_header(header, self._allowed, self._max_body_bytes)
        end = start + FRAME_HEADER_BYTES + length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[start + FRAME_HEADER_BYTES : end])
        self._start = end
        if self._start == len(self._buf):
            self._buf.clear()
            self._start = 0
        elif self._start > _COMPACT_AFTER_BYTES and self._start * 2 > len(self._buf):
            del self._buf[: self._start]
            self._start = 0
        return Frame(kind, header, body)


E = TypeVar("E")


def next_event_from(
    buffer: FrameBuffer, events: deque[E], handle: Callable[[Frame], None]
) -> E | NeedData | None:
    """The ``next_event`` loop of every protocol object: the oldest queued event, else
    whole frames from *buffer* fed to *handle* (which queues events in *events*)
    until one queues an event. NEED_DATA when the buffered bytes hold no whole
    frame; None once the stream has ended cleanly between frames.

    Raises RemoteProtocolError for a frame cut by the end of the stream, and lets
    through what *handle* or the buffer raise: the caller moves to its ERROR state.
    """
    if events:
        return events.popleft()
    while True:
        frame = buffer.next_frame()
        if frame is None:
            if not buffer.eof:
                return NEED_DATA
            if len(buffer):
                raise RemoteProtocolError("the stream ended in the middle of a frame")
            return None
        handle(frame)
        if events:
            return events.popleft()
