"""The key schedule: every key Mirror derives, with its purpose string.

All derivations are keyed BLAKE2b-256 with a distinct *purpose* in BLAKE2b's
``person`` field (at most 16 bytes, zero-padded)::

    KDF(key, purpose, data) = BLAKE2b(data, digest_size=32, key=key, person=purpose)
    H(data)                 = BLAKE2b(data, digest_size=32, person="mirror/hash")

``spec/crypto.md`` lists every purpose, its inputs and what it protects;
``spec/vectors/keys.json`` holds known answers. The AEAD is ChaCha20-Poly1305
(IETF, RFC 8439) with a 96-bit nonce of four zero bytes and the 64-bit
big-endian sequence number of the frame in its direction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions

from ._codec import Reader, encode_varint
from .errors import LocalProtocolError, RemoteProtocolError
from .limits import MAX_EPOCH, MAX_SEQUENCE

KEY_BYTES: Final = 32
DIGEST_BYTES: Final = 32
PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64


class Purpose:
    """BLAKE2b ``person`` strings; one per derived value, never reused."""

    HASH: Final = b"mirror/hash"
    HS_GROUP: Final = b"mirror/hs-group"
    HS_HELLO: Final = b"mirror/hs-hello"
    HS_SECRET: Final = b"mirror/hs-secret"
    HS_KEY_I: Final = b"mirror/hs-key-i"
    HS_KEY_R: Final = b"mirror/hs-key-r"
    HS_CONFIRM_I: Final = b"mirror/hs-conf-i"
    HS_CONFIRM_R: Final = b"mirror/hs-conf-r"
    SESSION: Final = b"mirror/session"
    KEY_I2R: Final = b"mirror/key-i2r"
    KEY_R2I: Final = b"mirror/key-r2i"
    SESSION_ID: Final = b"mirror/sess-id"
    SV_DIGEST: Final = b"mirror/sv-digest"
    CATALOGUE: Final = b"mirror/catalogue"
    ROOM: Final = b"mirror/room"
    DISCOVERY: Final = b"mirror/discovery"
    DOC_KEY: Final = b"mirror/doc-key"
    PAIR_HASH: Final = b"mirror/pr-hash"
    PAIR_CONFIRM_J: Final = b"mirror/pr-conf-j"
    PAIR_CONFIRM_P: Final = b"mirror/pr-conf-p"
    PAIR_KEY_J2P: Final = b"mirror/pr-key-jp"
    PAIR_KEY_P2J: Final = b"mirror/pr-key-pj"
    STORE_TOKEN: Final = b"mirror/store-tok"
    STORE_GROUP: Final = b"mirror/store-grp"
    STORE_NAME_KEY: Final = b"mirror/store-nam"
    PAIR_HINT: Final = b"mirror/pair-hint"
    PAIR_ROOM: Final = b"mirror/pair-room"
    RENDEZVOUS_ROOM: Final = b"mirror/rdv-room"
    RELAY_RANK: Final = b"mirror/relay-hrw"
    DEVICE_ID: Final = b"mirror/device-id"


# Signatures are over a context string and a transcript hash, so a signature made
# for one role, protocol or purpose is never valid for another.
SIG_CONTEXT_INITIATOR: Final = b"Mirror v1 handshake: initiator signs\x00"
SIG_CONTEXT_RESPONDER: Final = b"Mirror v1 handshake: responder signs\x00"
SIG_CONTEXT_PAIR_JOINER: Final = b"Mirror v1 pairing: joiner signs\x00"
SIG_CONTEXT_PAIR_PAIRER: Final = b"Mirror v1 pairing: pairer signs\x00"
SIG_CONTEXT_STORE_ENVELOPE: Final = b"Mirror v1 blind store: envelope\x00"
HANDSHAKE_LABEL: Final = b"Mirror v1 handshake"
PAIRING_LABEL: Final = b"Mirror v1 pairing"


def kdf(key: bytes, purpose: bytes, data: bytes = b"") -> bytes:
    """Keyed BLAKE2b-256 of *data* under *key* for *purpose*."""
    return hashlib.blake2b(data, digest_size=32, key=key, person=purpose).digest()


def digest(data: bytes, purpose: bytes = Purpose.HASH, *, size: int = DIGEST_BYTES) -> bytes:
    """Unkeyed BLAKE2b for *purpose*, *size* bytes long (a BLAKE2b of that output
    size, not a truncation: the size is a parameter of the hash)."""
    return hashlib.blake2b(data, digest_size=size, person=purpose).digest()


def chain(previous: bytes, data: bytes) -> bytes:
    """Transcript hash step: ``H(previous || data)``."""
    return digest(previous + data)


def _epoch_bytes(epoch: int) -> bytes:
    if not 0 <= epoch <= MAX_EPOCH:
        raise LocalProtocolError(f"epoch {epoch} out of range")
    return epoch.to_bytes(8, "big")


# --- group-derived values ------------------------------------------------------


def group_handshake_key(group_secret: bytes, epoch: int) -> bytes:
    """K_grp: proves membership of the group at *epoch* during the handshake."""
    return kdf(_check_key(group_secret), Purpose.HS_GROUP, _epoch_bytes(epoch))


def relay_room_id(group_secret: bytes, epoch: int) -> bytes:
    """The relay room of the group at *epoch*; reveals nothing about the group."""
    return kdf(_check_key(group_secret), Purpose.ROOM, _epoch_bytes(epoch))


def discovery_tag(group_secret: bytes, epoch: int, hour: int) -> bytes:
    """The 16-byte LAN discovery tag for the hour *hour* (Unix time // 3600).

    Time is passed in: the protocol has no clock.
    """
    if hour < 0:
        raise LocalProtocolError("hour must not be negative")
    data = _epoch_bytes(epoch) + hour.to_bytes(8, "big")
    return kdf(_check_key(group_secret), Purpose.DISCOVERY, data)[:16]


def document_key(group_secret: bytes, epoch: int, doc_id: str) -> bytes:
    """Key for encrypting *doc_id*'s data at rest elsewhere (the blind store)."""
    data = _epoch_bytes(epoch) + doc_id.encode("utf-8")
    return kdf(_check_key(group_secret), Purpose.DOC_KEY, data)


def store_token(group_secret: bytes, epoch: int) -> bytes:
    """The bearer token of the group's blind-store log at *epoch*.

    Every device of the epoch derives it; the store keeps only
    :func:`store_group_id` of it, so a copy of the store's database opens nothing.
    """
    return kdf(_check_key(group_secret), Purpose.STORE_TOKEN, _epoch_bytes(epoch))


def store_group_id(token: bytes) -> bytes:
    """The id under which the blind store files a log: a one-way hash of its token.

    The store computes it from the presented token; knowing the id does not give
    the token, and ids of two epochs cannot be linked without the group secret.
    """
    return digest(_check_key(token), Purpose.STORE_GROUP)


def store_name_key(group_secret: bytes, epoch: int) -> bytes:
    """Seals the document id inside each blind-store envelope of *epoch*.

    The store must not see document ids; a reader (a new device) does not know
    them in advance, so they travel sealed under this epoch-wide key while the
    content is sealed under :func:`document_key` of that id.
    """
    return kdf(_check_key(group_secret), Purpose.STORE_NAME_KEY, _epoch_bytes(epoch))


DEVICE_ID_BYTES: Final = 8


def device_id(device_key: bytes) -> str:
    """The short printable id of a device: 16 lowercase hex digits of an 8-byte
    BLAKE2b of its Ed25519 public key. Not secret and not a name; the membership
    document is keyed by it."""
    if len(device_key) != PUBLIC_KEY_BYTES:
        raise LocalProtocolError(f"a device key is {PUBLIC_KEY_BYTES} bytes")
    return digest(device_key, Purpose.DEVICE_ID, size=DEVICE_ID_BYTES).hex()


def _check_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise LocalProtocolError(f"expected a {KEY_BYTES}-byte secret, got {len(key)} bytes")
    return key


# --- handshake -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """What a completed handshake yields (both sides compute the same values)."""

    initiator_to_responder: bytes
    responder_to_initiator: bytes
    session_id: bytes


def handshake_secret(group_key: bytes, dh: bytes, h2: bytes) -> bytes:
    """K_hs: needs both the ephemeral DH and the group (forward secrecy + membership)."""
    return kdf(group_key, Purpose.HS_SECRET, dh + h2)


def confirmation(
    handshake_key: bytes, purpose: bytes, transcript: bytes, device_key: bytes, signature: bytes
) -> bytes:
    """Key confirmation MAC over the transcript and the sender's identity."""
    return kdf(handshake_key, purpose, transcript + device_key + signature)


def session_keys(handshake_key: bytes, h4: bytes) -> SessionKeys:
    session = kdf(handshake_key, Purpose.SESSION, h4)
    return SessionKeys(
        initiator_to_responder=kdf(session, Purpose.KEY_I2R),
        responder_to_initiator=kdf(session, Purpose.KEY_R2I),
        session_id=kdf(session, Purpose.SESSION_ID),
    )


def x25519(private: bytes, public: bytes) -> bytes:
    """X25519; a low-order peer key (all-zero result) is a RemoteProtocolError."""
    try:
        shared = nacl.bindings.crypto_scalarmult(private, public)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError("peer sent an invalid ephemeral key") from None
    if shared == bytes(32):
        raise RemoteProtocolError("peer sent a low-order ephemeral key")
    return shared


def x25519_public(private: bytes) -> bytes:
    return nacl.bindings.crypto_scalarmult_base(private)


# --- AEAD ------------------------------------------------------------------------


def nonce(sequence: int) -> bytes:
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise LocalProtocolError("sequence number exhausted; start a new session")
    return bytes(4) + sequence.to_bytes(8, "big")


def seal(key: bytes, sequence: int, plaintext: bytes, associated: bytes) -> bytes:
    return nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
        plaintext, associated, nonce(sequence), key
    )


def open_sealed(
    key: bytes, sequence: int, ciphertext: bytes, associated: bytes, what: str
) -> bytes:
    """Decrypt or raise RemoteProtocolError (tampered, replayed, reordered, reflected)."""
    try:
        return nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
            ciphertext, associated, nonce(sequence), key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(
            f"{what} failed authentication (tampered, replayed, reordered or reflected)"
        ) from None


# --- sync digests ------------------------------------------------------------------


def state_vector_digest(state_vector: bytes) -> bytes:
    """Digest of a Yjs/lib0 state vector, independent of its entry order.

    The vector (``count, (client, clock)*`` as varuints) is parsed, sorted by
    client and re-encoded before hashing, so two replicas with the same state
    always agree. Raises LocalProtocolError for bytes that are not a state vector.
    """
    try:
        reader = Reader(state_vector, "state vector")
        count = reader.varint()
        pairs: dict[int, int] = {}
        for _ in range(count):
            client = reader.varint()
            clock = reader.varint()
            if client in pairs:
                raise RemoteProtocolError("duplicate client")
            pairs[client] = clock
        reader.done()
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"not a state vector: {exc}") from None
    canonical = [encode_varint(len(pairs))]
    for client in sorted(pairs):
        canonical.append(encode_varint(client))
        canonical.append(encode_varint(pairs[client]))
    return digest(b"".join(canonical), Purpose.SV_DIGEST)


def catalogue_digest(encoded_entries: Iterable[bytes]) -> bytes:
    """Digest over the canonical encoding of a catalogue's sorted entries."""
    return digest(b"".join(encoded_entries), Purpose.CATALOGUE)
