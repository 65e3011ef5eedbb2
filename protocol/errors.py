"""Errors raised by the wire protocol.

Everything the protocol raises on purpose derives from :class:`ProtocolError`::

    ProtocolError                 base; carries a CloseCode hint for the Close frame
    ├── LocalProtocolError        *we* asked for something the protocol forbids
    │                             (sending out of order, a ``local`` document,
    │                             a value over a limit); our state is unchanged
    └── RemoteProtocolError       the *peer* sent something invalid: garbage, a
        │                         bad MAC or signature, a replayed or reflected
        │                         frame, a frame over a limit, an unknown version;
        │                         the connection is now in the ERROR state
        ├── PairingCodeMismatch   pairing: the two sides used different codes
        └── PeerIsThisDevice      handshake: the peer proved this device's own key
                                  (a node that reached itself, e.g. through its
                                  own advertisement or its own relay room)

Third-party exceptions (``nacl.exceptions``, ``ValueError`` from ``spake2``) are
translated where they enter; callers of :mod:`protocol` never see them.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """Reason codes carried by a ``Close`` message and hinted by errors."""

    NORMAL = 0
    GOING_AWAY = 1
    PROTOCOL_ERROR = 2
    UNSUPPORTED_VERSION = 3
    NOT_AUTHORISED = 4
    EPOCH_MISMATCH = 5
    TIMEOUT = 6
    TOO_LARGE = 7
    INTERNAL_ERROR = 8


class ProtocolError(Exception):
    """Base of every error the protocol raises on purpose.

    ``close_code`` says which :class:`CloseCode` a node should report (in a
    ``Close`` message if the session is still usable, or in its log).
    """

    def __init__(self, msg: str, close_code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(msg)
        self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids; nothing was sent or changed."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; the connection has entered the ERROR state."""


class PeerIsThisDevice(RemoteProtocolError):
    """The handshake's peer holds this device's own key: the node reached itself."""

    def __init__(self, msg: str = "peer presented this device's own key") -> None:
        super().__init__(msg, CloseCode.NOT_AUTHORISED)


class PairingCodeMismatch(RemoteProtocolError):
    """Pairing failed because the two devices did not use the same code."""

    def __init__(self, msg: str = "the pairing code did not match") -> None:
        super().__init__(msg, CloseCode.NOT_AUTHORISED)
