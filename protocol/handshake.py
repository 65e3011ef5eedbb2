"""The session handshake: three frames, pure functions, no state of its own.

    initiator                                   responder
    HELLO   epoch, E_i, tag            ------>
            tag = KDF(K_grp, "mirror/hs-hello", header1 || epoch || E_i)
                                       <------  REPLY  E_r, seal_r(pk_r || sig_r || conf_r)
    FINISH  seal_i(pk_i || sig_i || conf_i) -->

    h0 = H("Mirror v1 handshake")           K_grp = KDF(group_secret, "mirror/hs-group", epoch)
    h1 = H(h0 || HELLO frame)               dh    = X25519(e_i, E_r) = X25519(e_r, E_i)
    h2 = H(h1 || REPLY header || E_r)       K_hs  = KDF(K_grp, "mirror/hs-secret", dh || h2)
    h3 = H(h2 || REPLY sealed || FINISH header)
    h4 = H(h3 || FINISH sealed)

    sig_r  = Ed25519(device key r, "...responder signs\\0" || h2)
    conf_r = KDF(K_hs, "mirror/hs-conf-r", h2 || pk_r || sig_r)
    seal_r = ChaCha20-Poly1305(KDF(K_hs, "mirror/hs-key-r"), nonce 0, aad h2)
    sig_i, conf_i, seal_i: the same with "i" purposes and h3.
    session keys: KDF(K_hs, "mirror/session", h4) -> i2r, r2i, session id.

Ephemeral X25519 keys give forward secrecy; the device signatures over the
transcript authenticate each device; K_grp (inside K_hs, the sealing keys and
the confirmations) proves both know the group secret of the epoch, so nobody
outside the group even learns which devices are talking; the confirmations
prove both derived the same keys. The node's ``known_devices`` decides whether
a device key still belongs to the group (a removed device is refused even if it
knows the secret). Nothing here touches a transport, so the same frames run
over TCP or through a relay.
"""

from __future__ import annotations

import hmac
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

import nacl.exceptions
import nacl.signing

from . import keys
from ._codec import Reader, Writer
from .errors import CloseCode, LocalProtocolError, PeerIsThisDevice, RemoteProtocolError
from .frames import Frame, FrameKind, frame_header
from .keys import DIGEST_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Purpose, SessionKeys
from .limits import AEAD_TAG_BYTES, MAX_EPOCH

IDENTITY_BYTES: Final = PUBLIC_KEY_BYTES + SIGNATURE_BYTES + DIGEST_BYTES
SEALED_IDENTITY_BYTES: Final = IDENTITY_BYTES + AEAD_TAG_BYTES
REPLY_BODY_BYTES: Final = PUBLIC_KEY_BYTES + SEALED_IDENTITY_BYTES
FINISH_BODY_BYTES: Final = SEALED_IDENTITY_BYTES
MAX_HANDSHAKE_FRAME_BYTES: Final = REPLY_BODY_BYTES


@dataclass(frozen=True)
class Credentials:
    """What a device brings to a handshake; the node builds it from its keys.

    ``device_seed`` is the 32-byte Ed25519 seed of this device's key.
    ``group_secret`` is the 32-byte group secret of ``epoch``. ``known_devices``
    holds the Ed25519 public keys of the group's current devices; any
    ``Container`` works (a frozenset, or a live view over the devices document),
    and it is consulted during each handshake.
    """

    device_seed: bytes
    group_secret: bytes
    epoch: int
    known_devices: Container[bytes]
    earlier_epochs: Mapping[int, bytes] = field(default_factory=dict)
    """Secrets of earlier epochs that a *responder* still accepts, so a device
    that missed a removal (and its new epoch) can connect and catch up. The
    device key is checked against ``known_devices`` all the same: a removed
    device is refused whatever epoch it uses."""

    def __post_init__(self) -> None:
        if len(self.device_seed) != 32 or len(self.group_secret) != 32:
            raise LocalProtocolError("device seed and group secret must be 32 bytes each")
        if not 0 <= self.epoch <= MAX_EPOCH:
            raise LocalProtocolError(f"epoch {self.epoch} out of range")
        for epoch, secret in self.earlier_epochs.items():
            if not 0 <= epoch < self.epoch or len(secret) != 32:
                raise LocalProtocolError("earlier epochs must be older, with 32-byte secrets")

    def secret_for(self, epoch: int) -> bytes | None:
        """The group secret of *epoch* if this device answers at it."""
        if epoch == self.epoch:
            return self.group_secret
        return self.earlier_epochs.get(epoch)

    @cached_property
    def device_key(self) -> bytes:
        """This device's Ed25519 public key."""
        return bytes(nacl.signing.SigningKey(self.device_seed).verify_key)


@dataclass(frozen=True)
class InitiatorPending:
    """Initiator after HELLO: what it needs to read the REPLY."""

    ephemeral_private: bytes
    group_key: bytes
    h1: bytes


@dataclass(frozen=True)
class ResponderPending:
    """Responder after REPLY: what it needs to read the FINISH."""

    handshake_key: bytes
    h3: bytes
    epoch: int


@dataclass(frozen=True)
class HandshakeResult:
    """What a completed handshake established: the peer's device key, the epoch and the
    session keys."""

    peer_device_key: bytes
    epoch: int
    keys: SessionKeys


def initial_hash() -> bytes:
    return keys.digest(keys.HANDSHAKE_LABEL)


def make_hello(creds: Credentials, ephemeral_private: bytes) -> tuple[bytes, InitiatorPending]:
    """The HELLO frame and the initiator's pending state."""
    group_key = keys.group_handshake_key(creds.group_secret, creds.epoch)
    public = keys.x25519_public(ephemeral_private)
    fields = Writer().varint(creds.epoch).fixed(public, PUBLIC_KEY_BYTES).getvalue()
    header = frame_header(FrameKind.HELLO, len(fields) + DIGEST_BYTES)
    tag = keys.kdf(group_key, Purpose.HS_HELLO, header + fields)
    frame = header + fields + tag
    return frame, InitiatorPending(ephemeral_private, group_key, keys.chain(initial_hash(), frame))


def make_reply(
    creds: Credentials, frame: Frame, ephemeral_private: bytes
) -> tuple[bytes, ResponderPending]:
    """Check a HELLO and answer it with the REPLY frame."""
    reader = Reader(frame.body, "HELLO")
    epoch = reader.varint(MAX_EPOCH)  # 1..5 bytes: a body of 65..69 bytes
    initiator_ephemeral = reader.fixed(PUBLIC_KEY_BYTES)
    tag = reader.fixed(DIGEST_BYTES)
    reader.done()
    secret = creds.secret_for(epoch)
    if secret is None:
        raise RemoteProtocolError(
            f"peer uses group epoch {epoch}; this device is at epoch {creds.epoch}",
            CloseCode.EPOCH_MISMATCH,
        )
    group_key = keys.group_handshake_key(secret, epoch)
    fields_end = len(frame.body) - DIGEST_BYTES
    expected = keys.kdf(group_key, Purpose.HS_HELLO, frame.header + frame.body[:fields_end])
    if not hmac.compare_digest(tag, expected):
        raise RemoteProtocolError(
            "peer does not know this group's secret", CloseCode.NOT_AUTHORISED
        )
    h1 = keys.chain(initial_hash(), frame.header + frame.body)
    public = keys.x25519_public(ephemeral_private)
    header2 = frame_header(FrameKind.REPLY, REPLY_BODY_BYTES)
    h2 = keys.chain(h1, header2 + public)
    dh = keys.x25519(ephemeral_private, initiator_ephemeral)
    handshake_key = keys.handshake_secret(group_key, dh, h2)
    sealed = _seal_identity(
        creds, handshake_key, Purpose.HS_KEY_R, Purpose.HS_CONFIRM_R, keys.SIG_CONTEXT_RESPONDER, h2
    )
    header3 = frame_header(FrameKind.FINISH, FINISH_BODY_BYTES)
    h3 = keys.chain(h2, sealed + header3)
    return header2 + public + sealed, ResponderPending(handshake_key, h3, epoch)


def read_reply(
    creds: Credentials, pending: InitiatorPending, frame: Frame
) -> tuple[bytes, HandshakeResult]:
    """Check a REPLY; returns the FINISH frame and the session."""
    if len(frame.body) != REPLY_BODY_BYTES:
        raise RemoteProtocolError(f"REPLY must be {REPLY_BODY_BYTES} bytes")
    responder_ephemeral = frame.body[:PUBLIC_KEY_BYTES]
    sealed = frame.body[PUBLIC_KEY_BYTES:]
    h2 = keys.chain(pending.h1, frame.header + responder_ephemeral)
    dh = keys.x25519(pending.ephemeral_private, responder_ephemeral)
    handshake_key = keys.handshake_secret(pending.group_key, dh, h2)
    peer = _open_identity(
        creds,
        handshake_key,
        Purpose.HS_KEY_R,
        Purpose.HS_CONFIRM_R,
        keys.SIG_CONTEXT_RESPONDER,
        h2,
        sealed,
        "REPLY",
    )
    header3 = frame_header(FrameKind.FINISH, FINISH_BODY_BYTES)
    h3 = keys.chain(h2, sealed + header3)
    sealed3 = _seal_identity(
        creds, handshake_key, Purpose.HS_KEY_I, Purpose.HS_CONFIRM_I, keys.SIG_CONTEXT_INITIATOR, h3
    )
    h4 = keys.chain(h3, sealed3)
    result = HandshakeResult(peer, creds.epoch, keys.session_keys(handshake_key, h4))
    return header3 + sealed3, result


def read_finish(creds: Credentials, pending: ResponderPending, frame: Frame) -> HandshakeResult:
    """Check a FINISH; returns the session."""
    if len(frame.body) != FINISH_BODY_BYTES:
        raise RemoteProtocolError(f"FINISH must be {FINISH_BODY_BYTES} bytes")
    peer = _open_identity(
        creds,
        pending.handshake_key,
        Purpose.HS_KEY_I,
        Purpose.HS_CONFIRM_I,
        keys.SIG_CONTEXT_INITIATOR,
        pending.h3,
        frame.body,
        "FINISH",
    )
    h4 = keys.chain(pending.h3, frame.body)
    return HandshakeResult(peer, pending.epoch, keys.session_keys(pending.handshake_key, h4))


def _seal_identity(
    creds: Credentials,
    handshake_key: bytes,
    key_purpose: bytes,
    confirm_purpose: bytes,
    sig_context: bytes,
    transcript: bytes,
) -> bytes:
    signing = nacl.signing.SigningKey(creds.device_seed)
    public = bytes(signing.verify_key)
    signature = signing.sign(sig_context + transcript).signature
    confirm = keys.confirmation(handshake_key, confirm_purpose, transcript, public, signature)
    seal_key = keys.kdf(handshake_key, key_purpose)
    return keys.seal(seal_key, 0, public + signature + confirm, transcript)


def _open_identity(
    creds: Credentials,
    handshake_key: bytes,
    key_purpose: bytes,
    confirm_purpose: bytes,
    sig_context: bytes,
    transcript: bytes,
    sealed: bytes,
    what: str,
) -> bytes:
    seal_key = keys.kdf(handshake_key, key_purpose)
    plain = keys.open_sealed(seal_key, 0, sealed, transcript, what)
    public = plain[:PUBLIC_KEY_BYTES]
    signature = plain[PUBLIC_KEY_BYTES : PUBLIC_KEY_BYTES + SIGNATURE_BYTES]
    confirm = plain[PUBLIC_KEY_BYTES + SIGNATURE_BYTES :]
    expected = keys.confirmation(handshake_key, confirm_purpose, transcript, public, signature)
    if not hmac.compare_digest(confirm, expected):
        raise RemoteProtocolError(f"{what} key confirmation failed", CloseCode.NOT_AUTHORISED)
    if public == creds.device_key:
        raise PeerIsThisDevice()
    if public not in creds.known_devices:
        raise RemoteProtocolError(
            f"device {public.hex()[:16]} is not a member of this group (removed?)",
            CloseCode.NOT_AUTHORISED,
        )
    try:
        nacl.signing.VerifyKey(public).verify(sig_context + transcript, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(
            f"{what} signature is invalid", CloseCode.NOT_AUTHORISED
        ) from None
    return public
