"""Blind-store envelopes and the record framing of its HTTP bodies, sans-IO.

A blind store keeps a person's encrypted ``devices`` updates so that devices
that are never online together still sync. It can neither read nor merge what
it keeps. ``spec/protocol.md`` §12 is the normative text; this module is the
reference implementation. Randomness (the nonce) is passed in.

Envelope (every length fixed or sealed; the total is a bucket size)::

    offset  size          field
    0       1             version (1)
    1       1             kind: 1 update, 2 snapshot part
    2       1             n: the sealed name holds n * 64 bytes of plaintext (1..4)
    3       32            sender's Ed25519 device key
    35      24            nonce (random; XChaCha20-Poly1305)
    59      n*64 + 16     name box: AEAD(name key, nonce, u8 len || doc id || zeros,
                                         ad = header || group id)
    ...     rest - 64     body box: AEAD(document key(doc id), nonce,
                                         u32 len || update || u32 len || state vector
                                         || zeros, ad = header || group id || doc id)
    end-64  64            Ed25519(device, "Mirror v1 blind store: envelope\\0"
                                          || group id || every byte before)

The state vector is the sender's for that document once the update is in the
store (so readers know what the store holds without decoding deltas, whose
own state vector pycrdt cannot tell). The two boxes use different keys, so
sharing the nonce is safe. The zeros pad
the envelope to :func:`bucket` of its size, so the store sees sizes in buckets
only; a reader checks that the padding is zero (canonical encoding).

Records (the bodies of uploads and pulls)::

    upload: (u32 length || envelope)*
    pull:   (u64 seq || u32 length || envelope)*

All integers are big-endian. Anything malformed is a RemoteProtocolError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.signing

from .errors import LocalProtocolError, RemoteProtocolError
from .keys import SIG_CONTEXT_STORE_ENVELOPE, document_key, store_name_key

KIB: Final = 1024
MIB: Final = 1024 * KIB

ENVELOPE_VERSION: Final = 1
KIND_UPDATE: Final = 1
KIND_SNAPSHOT: Final = 2
KINDS: Final = frozenset({KIND_UPDATE, KIND_SNAPSHOT})

HEADER_BYTES: Final = 59
NAME_BLOCK_BYTES: Final = 64
MAX_NAME_BLOCKS: Final = 4
MAX_STORE_DOC_ID_BYTES: Final = MAX_NAME_BLOCKS * NAME_BLOCK_BYTES - 1
"""255 (the length byte and the id fill the name blocks): the same as the wire's
``MAX_DOC_ID_BYTES``, so every document that can sync can be stored blind."""
NONCE_BYTES: Final = 24
TAG_BYTES: Final = 16
SIGNATURE_BYTES: Final = 64
GROUP_ID_BYTES: Final = 32
MIN_ENVELOPE_BYTES: Final = (
    HEADER_BYTES + NAME_BLOCK_BYTES + TAG_BYTES + 8 + TAG_BYTES + SIGNATURE_BYTES
)
"""227: an empty update and state vector with a short document id."""

SMALLEST_BUCKET_BYTES: Final = 256
POWER_OF_TWO_BUCKETS_UP_TO_BYTES: Final = 64 * KIB
"""Up to this size buckets are powers of two; above, eight steps per doubling."""
MAX_ENVELOPE_BYTES: Final = 32 * MIB
"""The largest envelope (a bucket size); a single document's snapshot must fit."""

SEQ_BYTES: Final = 8
LENGTH_BYTES: Final = 4


def bucket(size: int) -> int:
    """The padded size of an envelope of *size* bytes.

    Powers of two from 256 B to 64 KiB; above that the next multiple of an
    eighth of the power of two below (so padding costs at most 12.5 %, and a
    size leaks about three bits above 64 KiB).
    """
    if size <= SMALLEST_BUCKET_BYTES:
        return SMALLEST_BUCKET_BYTES
    if size <= POWER_OF_TWO_BUCKETS_UP_TO_BYTES:
        return 1 << (size - 1).bit_length()
    below = 1 << ((size - 1).bit_length() - 1)
    step = below // 8
    return -(-size // step) * step


def is_bucket(size: int) -> bool:
    return SMALLEST_BUCKET_BYTES <= size <= MAX_ENVELOPE_BYTES and bucket(size) == size


@dataclass(frozen=True, slots=True)
class EnvelopeShape:
    """What anyone (the store) can read of an envelope without keys."""

    kind: int
    name_blocks: int
    device_key: bytes
    size: int


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """A verified and decrypted envelope."""

    kind: int
    doc_id: str
    payload: bytes
    state_vector: bytes
    device_key: bytes


def envelope_shape(envelope: bytes) -> EnvelopeShape:
    """Check what can be checked without keys; RemoteProtocolError otherwise."""
    size = len(envelope)
    if size > MAX_ENVELOPE_BYTES:
        raise RemoteProtocolError(f"envelope of {size} bytes is over {MAX_ENVELOPE_BYTES}")
    if size < MIN_ENVELOPE_BYTES:
        raise RemoteProtocolError(f"envelope of {size} bytes is too short")
    if envelope[0] != ENVELOPE_VERSION:
        raise RemoteProtocolError(f"unknown envelope version {envelope[0]}")
    kind, blocks = envelope[1], envelope[2]
    if kind not in KINDS:
        raise RemoteProtocolError(f"unknown envelope kind {kind}")
    if not 1 <= blocks <= MAX_NAME_BLOCKS:
        raise RemoteProtocolError(f"name blocks {blocks} out of range")
    if size < _fixed_bytes(blocks) + 8 + TAG_BYTES:
        raise RemoteProtocolError("envelope too short for its name")
    if not is_bucket(size):
        raise RemoteProtocolError(f"envelope size {size} is not a bucket size")
    return EnvelopeShape(kind, blocks, bytes(envelope[3:35]), size)


def _fixed_bytes(blocks: int) -> int:
    return HEADER_BYTES + blocks * NAME_BLOCK_BYTES + TAG_BYTES + SIGNATURE_BYTES


def seal_envelope(
    *,
    kind: int,
    doc_id: str,
    payload: bytes,
    state_vector: bytes,
    group_secret: bytes,
    epoch: int,
    group_id: bytes,
    device_seed: bytes,
    nonce: bytes,
) -> bytes:
    """Encrypt, pad and sign *payload* (a CRDT update) of *doc_id* for the log *group_id*.

    *state_vector*: the sender's state vector of the document with the update in."""
    if kind not in KINDS:
        raise LocalProtocolError(f"unknown envelope kind {kind}")
    if len(nonce) != NONCE_BYTES or len(group_id) != GROUP_ID_BYTES:
        raise LocalProtocolError("nonce must be 24 bytes and the group id 32")
    name = doc_id.encode("utf-8")
    if not name or len(name) > MAX_STORE_DOC_ID_BYTES:
        raise LocalProtocolError(f"document id of {len(name)} bytes cannot go to a blind store")
    blocks = len(name) // NAME_BLOCK_BYTES + 1
    body_plain_min = 8 + len(payload) + len(state_vector)
    size = bucket(_fixed_bytes(blocks) + body_plain_min + TAG_BYTES)
    if size > MAX_ENVELOPE_BYTES:
        raise LocalProtocolError(f"an update of {len(payload)} bytes is too large for an envelope")
    signing = nacl.signing.SigningKey(device_seed)
    header = bytes((ENVELOPE_VERSION, kind, blocks)) + bytes(signing.verify_key) + nonce
    name_plain = bytes((len(name),)) + name
    name_plain += bytes(blocks * NAME_BLOCK_BYTES - len(name_plain))
    name_box = _encrypt(store_name_key(group_secret, epoch), nonce, name_plain, header + group_id)
    body_plain_len = size - _fixed_bytes(blocks) - TAG_BYTES
    body_plain = (struct.pack(">I", len(payload)) + payload
                  + struct.pack(">I", len(state_vector)) + state_vector)
    body_plain += bytes(body_plain_len - len(body_plain))
    body_box = _encrypt(
        document_key(group_secret, epoch, doc_id), nonce, body_plain, header + group_id + name
    )
    signed = header + name_box + body_box
    signature = signing.sign(SIG_CONTEXT_STORE_ENVELOPE + group_id + signed).signature
    envelope = signed + signature
    if len(envelope) != size:  # our own arithmetic, not remote input; never an assert
        raise LocalProtocolError(f"envelope of {len(envelope)} bytes, not {size}")
    return envelope


def open_envelope(
    envelope: bytes,
    *,
    group_secret: bytes,
    epoch: int,
    group_id: bytes,
    is_member: Callable[[bytes], bool],
) -> OpenedEnvelope:
    """Verify the signature (by a device *is_member* accepts), decrypt, unpad.

    Raises RemoteProtocolError for anything tampered, foreign or malformed.
    """
    shape = envelope_shape(envelope)
    if not is_member(shape.device_key):
        raise RemoteProtocolError("envelope signed by a device that is not in the group")
    signed, signature = envelope[:-SIGNATURE_BYTES], envelope[-SIGNATURE_BYTES:]
    try:
        nacl.signing.VerifyKey(shape.device_key).verify(
            SIG_CONTEXT_STORE_ENVELOPE + group_id + signed, signature
        )
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        raise RemoteProtocolError("envelope signature does not verify") from None
    header = signed[:HEADER_BYTES]
    nonce = header[35:HEADER_BYTES]
    name_end = HEADER_BYTES + shape.name_blocks * NAME_BLOCK_BYTES + TAG_BYTES
    name_plain = _decrypt(
        store_name_key(group_secret, epoch), nonce, signed[HEADER_BYTES:name_end],
        header + group_id, "envelope name",
    )
    length = name_plain[0]
    name = name_plain[1 : 1 + length]
    if not length or 1 + length > len(name_plain) or any(name_plain[1 + length :]):
        raise RemoteProtocolError("envelope name is not canonical")
    try:
        doc_id = name.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("envelope name is not UTF-8") from None
    body = _decrypt(
        document_key(group_secret, epoch, doc_id), nonce, signed[name_end:],
        header + group_id + name, "envelope body",
    )
    (size,) = struct.unpack_from(">I", body)
    if size > len(body) - 8:
        raise RemoteProtocolError("envelope body is not canonical")
    (sv_size,) = struct.unpack_from(">I", body, 4 + size)
    end = 8 + size + sv_size
    if end > len(body) or any(body[end:]):
        raise RemoteProtocolError("envelope body is not canonical")
    return OpenedEnvelope(
        shape.kind, doc_id, bytes(body[4 : 4 + size]), bytes(body[8 + size : end]),
        shape.device_key,
    )


def _encrypt(key: bytes, nonce: bytes, plain: bytes, ad: bytes) -> bytes:
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, nonce, key)


def _decrypt(key: bytes, nonce: bytes, box: bytes, ad: bytes, what: str) -> bytes:
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(box, ad, nonce, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(f"{what} failed authentication") from None


# --- records ----------------------------------------------------------------------


def encode_upload(envelopes: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(e)) + e for e in envelopes)


def decode_upload(body: bytes | bytearray, *, max_records: int) -> list[bytes]:
    """Split an upload body; every record must be a well-shaped envelope."""
    out: list[bytes] = []
    view = memoryview(body)
    at = 0
    while at < len(body):
        if len(out) >= max_records:
            raise RemoteProtocolError(f"more than {max_records} envelopes in one request")
        if len(body) - at < LENGTH_BYTES:
            raise RemoteProtocolError("truncated record length")
        (size,) = struct.unpack_from(">I", body, at)
        at += LENGTH_BYTES
        if size > len(body) - at:
            raise RemoteProtocolError("record runs past the end of the body")
        envelope = bytes(view[at : at + size])
        envelope_shape(envelope)
        out.append(envelope)
        at += size
    return out


def encode_pull(records: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack(">QI", seq, len(e)) + e for seq, e in records)


def decode_pull(body: bytes) -> list[tuple[int, bytes]]:
    """Split a pull body into ``(seq, envelope)``; shapes are checked, not signatures."""
    out: list[tuple[int, bytes]] = []
    view = memoryview(body)
    at = 0
    while at < len(body):
        if len(body) - at < SEQ_BYTES + LENGTH_BYTES:
            raise RemoteProtocolError("truncated record header")
        seq, size = struct.unpack_from(">QI", body, at)
        at += SEQ_BYTES + LENGTH_BYTES
        if size > len(body) - at:
            raise RemoteProtocolError("record runs past the end of the body")
        envelope = bytes(view[at : at + size])
        envelope_shape(envelope)
        out.append((seq, envelope))
        at += size
    return out
