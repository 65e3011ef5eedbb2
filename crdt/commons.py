"""Commons documents: ids, author keys, signed update envelopes, and reading them.

Shared by the Commons server and every node, so that both check exactly the
same things (``spec/commons.md`` is the normative text).

Theory of operation
-------------------
A Commons document has exactly one owner, named in its id::

    commons/<kind>/<author key: 64 lowercase hex>/<item: 16 lowercase hex>

Every update to it travels in an *envelope* signed by that owner's Ed25519
author key (pseudonymous, unrelated to device keys), for one server: the key
of the server it is published on is part of what is signed, so an envelope is
valid on that server only (a post withdrawn there cannot be republished, under
its owner's signature, anywhere else; docs/decisions/0002)::

    envelope  = 0x02 || author_key (32) || signature (64) || update
    signature = Ed25519(author, BOUND_UPDATE_CONTEXT
                        || H(len(doc_id):u16 || doc_id || server_key (32) || update))
    H = BLAKE2b-256 with person "mirror/commons"

Envelopes of version 0x01, from before the binding, sign ``UPDATE_CONTEXT ||
H(len(doc_id):u16 || doc_id || update)``. No server accepts them any more; a
reader still verifies those a server kept from then (``legacy=True``).

A protocol ``Update`` of the ``commons`` class carries a *bundle* of envelopes
(``count:u32`` then ``len:u32 || envelope`` each; nothing may follow). A
receiver checks every envelope before applying any: a bundle with one bad
signature, a key that is not the owner's, or a non-canonical encoding is
refused whole (:class:`ForgedUpdate` / :class:`MalformedEnvelope`).

Withdrawal requests and moderation actions are signed the same way with their
own context strings, so no signature made for one purpose is valid for another.
A withdrawal names no server: it is the owner's wish that the item be gone, so
wherever it is replayed it can only delete the owner's own item.

Errors::

    CommonsError
    ├── InvalidCommonsId      not a well-formed Commons document id
    ├── MalformedEnvelope     bytes that are not a canonical envelope or bundle
    ├── ForgedUpdate          a signature that does not verify, or not the owner's
    └── InvalidItem           a document whose content is not a valid item
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import nacl.exceptions
import nacl.signing
from pycrdt import Doc, Map

from .update_check import UpdateRejected, check_map_roots

# --- limits (units in names) ----------------------------------------------------
MAX_UPDATE_BYTES: Final = 64 * 1024
"""One signed CRDT update inside an envelope."""
MAX_ENVELOPES_PER_BUNDLE: Final = 4096
"""Envelopes in one protocol Update."""
MAX_TITLE_CHARS: Final = 200
MAX_BODY_CHARS: Final = 20_000
MAX_REACTION_CHARS: Final = 16
MAX_FIELD_CHARS: Final = 2_000
"""Any other text field of an item (reason, summary line)."""

KINDS: Final = ("post", "comment", "reaction", "insight")
THREAD_KINDS: Final = ("post", "insight")
"""Kinds that start a thread; comments and reactions point at one."""
ITEM_ROOT: Final = "item"
DOC_KIND: Final = "commons"
"""The DocStore kind of every Commons document on a node."""

ENVELOPE_VERSION: Final = 0x02
"""Envelopes bound to one server (the only version written)."""
LEGACY_ENVELOPE_VERSION: Final = 0x01
"""Unbound envelopes from before: readers verify the ones servers kept; no server takes new ones."""
KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
ENVELOPE_HEADER_BYTES: Final = 1 + KEY_BYTES + SIGNATURE_BYTES
HASH_PERSON: Final = b"mirror/commons"
UPDATE_CONTEXT: Final = b"Mirror v1 commons update\x00"
"""Context of a legacy (version 0x01, unbound) envelope's signature."""
BOUND_UPDATE_CONTEXT: Final = b"Mirror v1 commons update for one server\x00"
WITHDRAW_CONTEXT: Final = b"Mirror v1 commons withdraw\x00"
MODERATION_CONTEXT: Final = b"Mirror v1 commons moderation\x00"
PUBLIC_GROUP_PURPOSE: Final = b"mirror/commons-g"

_ID = re.compile(r"commons/(post|comment|reaction|insight)/([0-9a-f]{64})/([0-9a-f]{16})")


class CommonsError(Exception):
    """Base of every Commons error::

        CommonsError
        ├── InvalidCommonsId     not a Commons document id
        ├── MalformedEnvelope    a signed envelope that does not decode
        ├── ForgedUpdate         signed by a key that does not own the document
        │   └── BadSignature     a signature that does not verify (or has the wrong size)
        └── InvalidItem          a post, comment, reaction or insight out of shape
    """


class InvalidCommonsId(CommonsError):
    """Not a Commons document id (``commons/<kind>/<author>/<nonce>``)."""


class MalformedEnvelope(CommonsError):
    """A signed envelope that does not decode."""


class ForgedUpdate(CommonsError):
    """An update or withdrawal not signed by the document's owner."""


class BadSignature(ForgedUpdate):
    """A signature that does not verify for its key, context and digest."""


class InvalidItem(CommonsError):
    """A Commons item whose fields are out of shape."""


# --------------------------------------------------------------------------- ids


@dataclass(frozen=True, slots=True)
class CommonsId:
    """A Commons document id, parsed: its kind, its owner's key and the item's nonce."""

    kind: str
    owner: bytes
    item: str

    @property
    def doc_id(self) -> str:
        return f"commons/{self.kind}/{self.owner.hex()}/{self.item}"

    @property
    def owner_hex(self) -> str:
        return self.owner.hex()


def parse_doc_id(doc_id: str) -> CommonsId:
    """Split a Commons id; InvalidCommonsId for anything else (exact grammar, no slack)."""
    match = _ID.fullmatch(doc_id) if isinstance(doc_id, str) else None
    if match is None:
        raise InvalidCommonsId(f"not a Commons document id: {str(doc_id)[:80]!r}")
    return CommonsId(match.group(1), bytes.fromhex(match.group(2)), match.group(3))


def is_commons_id(doc_id: str) -> bool:
    return _ID.fullmatch(doc_id) is not None


def make_doc_id(kind: str, owner: bytes, item: bytes) -> str:
    if kind not in KINDS or len(owner) != KEY_BYTES or len(item) != 8:
        raise InvalidCommonsId("kind, 32-byte owner key and 8-byte item id needed")
    return f"commons/{kind}/{owner.hex()}/{item.hex()}"


# --------------------------------------------------------------------------- keys


class AuthorKey:
    """An Ed25519 author key: pseudonymous, separate from any device key."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an author key seed is 32 bytes")
        self._signing = nacl.signing.SigningKey(seed)
        self.seed = seed
        self.public = bytes(self._signing.verify_key)

    @property
    def public_hex(self) -> str:
        return self.public.hex()

    def sign(self, context: bytes, digest: bytes) -> bytes:
        return bytes(self._signing.sign(context + digest).signature)

    def envelope(self, doc_id: str, update: bytes, server_key: bytes) -> bytes:
        """Sign *update* to *doc_id* for the server of *server_key*: only the owner's
        envelopes are accepted, and only by that server and its readers."""
        owner = parse_doc_id(doc_id).owner
        if owner != self.public:
            raise ForgedUpdate(f"this author key does not own {doc_id}")
        if not update or len(update) > MAX_UPDATE_BYTES:
            raise MalformedEnvelope(f"an update must be 1..{MAX_UPDATE_BYTES} bytes")
        sig = self.sign(BOUND_UPDATE_CONTEXT, update_hash(doc_id, update, server_key))
        return bytes([ENVELOPE_VERSION]) + self.public + sig + update

    def withdrawal(self, doc_id: str) -> bytes:
        """Signature of a request to delete *doc_id* (see :func:`verify_withdrawal`)."""
        return self.sign(WITHDRAW_CONTEXT, _hash(_id_bytes(doc_id)))


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=HASH_PERSON).digest()


def _id_bytes(doc_id: str) -> bytes:
    raw = doc_id.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def update_hash(doc_id: str, update: bytes, server_key: bytes | None = None) -> bytes:
    """What an envelope's signature covers: for *server_key* (version 0x02), or
    unbound (None: a legacy version 0x01 envelope)."""
    if server_key is None:
        return _hash(_id_bytes(doc_id) + update)
    if len(server_key) != KEY_BYTES:
        raise ValueError("a server key is 32 bytes")
    return _hash(_id_bytes(doc_id) + server_key + update)


def verify_signature(key: bytes, context: bytes, digest: bytes, signature: bytes) -> None:
    if len(key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature("wrong key or signature length")
    try:
        nacl.signing.VerifyKey(key).verify(context + digest, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError) as exc:
        raise BadSignature("the signature does not verify") from exc


def public_group_secret(server_key: bytes) -> bytes:
    """The Commons handshake "group secret": public, derived from the server's key.

    It proves nothing but that both sides mean this server; what keeps the
    session honest is the server's device key (pinned by readers) and the
    signatures on every document.
    """
    if len(server_key) != KEY_BYTES:
        raise ValueError("a server key is 32 bytes")
    return hashlib.blake2b(server_key, digest_size=32, person=PUBLIC_GROUP_PURPOSE).digest()


class AnyKey:
    """``known_devices`` for Commons sessions: readers need no identity."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and len(key) == KEY_BYTES


# --------------------------------------------------------------------------- envelopes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A signed Commons update: the author's key, the signature, the pycrdt update and the
    raw bytes it was decoded from."""

    author: bytes
    signature: bytes
    update: bytes
    raw: bytes
    version: int = ENVELOPE_VERSION


def decode_envelope(raw: bytes) -> Envelope:
    if len(raw) <= ENVELOPE_HEADER_BYTES:
        raise MalformedEnvelope("envelope too short")
    if raw[0] not in (ENVELOPE_VERSION, LEGACY_ENVELOPE_VERSION):
        raise MalformedEnvelope(f"unknown envelope version {raw[0]}")
    update = raw[ENVELOPE_HEADER_BYTES:]
    if len(update) > MAX_UPDATE_BYTES:
        raise MalformedEnvelope(f"update over {MAX_UPDATE_BYTES} bytes")
    return Envelope(raw[1:33], raw[33:ENVELOPE_HEADER_BYTES], update, bytes(raw), raw[0])


def verify_envelope(doc_id: str, raw: bytes, server_key: bytes, *,
                    legacy: bool = False) -> Envelope:
    """The envelope, if it is canonical, signed by the owner named in *doc_id*, and
    signed for the server of *server_key*. A legacy unbound envelope (version
    0x01) passes only with *legacy* (a reader, for what a server kept from before
    the binding); a server never takes one."""
    owner = parse_doc_id(doc_id).owner
    env = decode_envelope(raw)
    if env.author != owner:
        raise ForgedUpdate(f"signed by {env.author.hex()[:16]}…, not by the owner of {doc_id}")
    if env.version == LEGACY_ENVELOPE_VERSION:
        if not legacy:
            raise ForgedUpdate("an envelope of version 1 is not bound to a server: this server "
                               "takes version 2 only (update the node)")
        verify_signature(env.author, UPDATE_CONTEXT, update_hash(doc_id, env.update),
                         env.signature)
        return env
    try:
        verify_signature(env.author, BOUND_UPDATE_CONTEXT,
                         update_hash(doc_id, env.update, server_key), env.signature)
    except BadSignature:
        raise BadSignature("the signature does not verify for this server (an envelope is "
                           "valid only on the server it was published on)") from None
    return env


def encode_bundle(envelopes: Iterable[bytes]) -> bytes:
    items = list(envelopes)
    if len(items) > MAX_ENVELOPES_PER_BUNDLE:
        raise MalformedEnvelope(f"more than {MAX_ENVELOPES_PER_BUNDLE} envelopes")
    out = bytearray(struct.pack(">I", len(items)))
    for item in items:
        out += struct.pack(">I", len(item))
        out += item
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """Split a bundle; every length is checked against what remains before slicing."""
    if len(data) < 4:
        raise MalformedEnvelope("bundle too short")
    (count,) = struct.unpack_from(">I", data, 0)
    if count > MAX_ENVELOPES_PER_BUNDLE:
        raise MalformedEnvelope(f"bundle claims {count} envelopes")
    pos, out = 4, []
    for _ in range(count):
        if len(data) - pos < 4:
            raise MalformedEnvelope("bundle truncated")
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if size > ENVELOPE_HEADER_BYTES + MAX_UPDATE_BYTES or size > len(data) - pos:
            raise MalformedEnvelope("envelope length out of range")
        out.append(bytes(data[pos:pos + size]))
        pos += size
    if pos != len(data):
        raise MalformedEnvelope("trailing bytes after the bundle")
    return out


def verify_bundle(doc_id: str, data: bytes, server_key: bytes, *,
                  legacy: bool = False) -> list[Envelope]:
    """Every envelope of *data*, verified for the server of *server_key* (see
    :func:`verify_envelope`); raises before returning any if one is bad."""
    parse_doc_id(doc_id)
    return [verify_envelope(doc_id, raw, server_key, legacy=legacy)
            for raw in decode_bundle(data)]


def verify_withdrawal(doc_id: str, signature: bytes) -> bytes:
    """The owner key if *signature* is the owner's request to delete *doc_id*."""
    owner = parse_doc_id(doc_id).owner
    verify_signature(owner, WITHDRAW_CONTEXT, _hash(_id_bytes(doc_id)), signature)
    return owner


def moderation_digest(fields: Mapping[str, str]) -> bytes:
    """Hash of an operator action: its fields in a canonical order, length-prefixed."""
    out = bytearray()
    for name in sorted(fields):
        for part in (name, fields[name]):
            raw = part.encode("utf-8")
            out += struct.pack(">I", len(raw)) + raw
    return _hash(bytes(out))


# --------------------------------------------------------------------------- items


@dataclass(frozen=True, slots=True)
class CommonsItem:
    """What a Commons document says, validated: every value is plain text."""

    doc_id: str
    kind: str
    author: str
    created_at: str
    title: str = ""
    body: str = ""
    thread: str = ""
    reaction: str = ""


_FIELD_LIMITS: Final = {
    "title": MAX_TITLE_CHARS,
    "body": MAX_BODY_CHARS,
    "thread": 200,
    "reaction": MAX_REACTION_CHARS,
    "created_at": 40,
}


def check_fields(kind: str, fields: Mapping[str, Any]) -> dict[str, str]:
    """Validate an item's fields before writing or after reading (InvalidItem)."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        limit = _FIELD_LIMITS.get(name)
        if limit is None:
            raise InvalidItem(f"unknown field {name!r}")
        if not isinstance(value, str):
            raise InvalidItem(f"field {name!r} must be text")
        if len(value) > limit:
            raise InvalidItem(f"{name} is longer than {limit} characters")
        out[name] = value
    if kind in ("comment", "reaction"):
        thread = out.get("thread", "")
        if not is_commons_id(thread) or parse_doc_id(thread).kind not in THREAD_KINDS:
            raise InvalidItem(f"a {kind} must point at a post or insight")
    if kind == "reaction" and not out.get("reaction"):
        raise InvalidItem("a reaction needs its reaction text")
    if kind in ("post", "insight") and not out.get("title", "").strip():
        raise InvalidItem(f"a {kind} needs a title")
    return out


def write_item(doc: Doc[Any], kind: str, fields: Mapping[str, str]) -> None:
    """Set the item's fields (only those that changed) in one transaction."""
    values = check_fields(kind, fields)
    with doc.transaction():
        root = doc.get(ITEM_ROOT, type=Map)
        for name, value in values.items():
            if root.get(name) != value:
                root[name] = value


def read_item(doc_id: str, doc: Doc[Any]) -> CommonsItem:
    """The validated item of *doc*; InvalidItem if its roots or values are not an item's.

    Root kinds are checked before reading (notes/pycrdt.md, trap 11): a document
    may only hold the one ``item`` map.
    """
    cid = parse_doc_id(doc_id)
    keys = list(doc.keys())
    if keys != [ITEM_ROOT] and keys:
        raise InvalidItem(f"unexpected roots {keys[:4]!r}")
    if not keys:
        raise InvalidItem("empty document")
    # Reading any root as a map is safe; reading a Text as an Array is not (trap 11).
    root: Map[Any] = doc.get(ITEM_ROOT, type=Map)
    values = check_fields(cid.kind, dict(root.items()))
    return CommonsItem(
        doc_id=doc_id,
        kind=cid.kind,
        author=cid.owner_hex,
        created_at=values.get("created_at", ""),
        title=values.get("title", ""),
        body=values.get("body", ""),
        thread=values.get("thread", ""),
        reaction=values.get("reaction", ""),
    )


def doc_from_envelopes(envelopes: Iterable[Envelope | bytes]) -> Doc[Any]:
    """A fresh Doc holding every update of *envelopes* (already verified)."""
    doc: Doc[Any] = Doc()
    for env in envelopes:
        apply_update(doc, env.update if isinstance(env, Envelope) else decode_envelope(env).update)
    return doc


def apply_update(doc: Doc[Any], update: bytes, origin: object = None) -> None:
    """Apply a verified update; MalformedEnvelope if pycrdt cannot decode it.

    pycrdt raises ValueError for garbage and, for some inputs, pyo3's
    PanicException, which is not an Exception (notes/pycrdt.md, trap 1).
    """
    try:
        check_map_roots(update)  # pycrdt trap 11: roots stay maps
    except UpdateRejected as exc:
        raise MalformedEnvelope(str(exc)) from None
    try:
        if origin is None:
            doc.apply_update(update)
        else:
            with doc.transaction(origin=origin):
                doc.apply_update(update)
    except ValueError as exc:
        raise MalformedEnvelope("an update that is not a CRDT update") from exc
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            raise MalformedEnvelope("an update that crashed the CRDT decoder") from None
        raise


__all__ = [
    "DOC_KIND",
    "KINDS",
    "MAX_BODY_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_UPDATE_BYTES",
    "AnyKey",
    "AuthorKey",
    "CommonsError",
    "CommonsId",
    "CommonsItem",
    "Envelope",
    "ForgedUpdate",
    "InvalidCommonsId",
    "InvalidItem",
    "MalformedEnvelope",
    "apply_update",
    "check_fields",
    "decode_bundle",
    "decode_envelope",
    "doc_from_envelopes",
    "encode_bundle",
    "is_commons_id",
    "make_doc_id",
    "moderation_digest",
    "parse_doc_id",
    "public_group_secret",
    "read_item",
    "verify_bundle",
    "verify_envelope",
    "verify_withdrawal",
    "write_item",
]
