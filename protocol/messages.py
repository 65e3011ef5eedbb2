"""Messages exchanged after the handshake, one per sealed frame, and their codec.

Each message is ``type:u8`` followed by its fields in the order declared below;
see ``spec/protocol.md`` for byte layouts. Messages are frozen dataclasses with
no behaviour. The same classes are what :meth:`Connection.send` takes and (for
Update, Heartbeat, HeartbeatAck and Close) what :meth:`Connection.next_event`
returns.

Sync classes travel as one byte: 1 = ``devices``, 2 = ``commons``. ``local``
has no wire code: it can neither be encoded nor decoded.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import Final

from ._codec import Reader, Writer
from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .keys import DIGEST_BYTES
from .limits import (
    MAX_CATALOGUE_ENTRIES,
    MAX_CLOSE_REASON_BYTES,
    MAX_DOC_ID_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_STATE_VECTOR_BYTES,
)

LOCAL: Final = "local"
DEVICES: Final = "devices"
COMMONS: Final = "commons"
SYNC_CLASS_CODES: Final[dict[str, int]] = {DEVICES: 1, COMMONS: 2}
_SYNC_CLASS_NAMES: Final = {code: name for name, code in SYNC_CLASS_CODES.items()}


class MessageType(enum.IntEnum):
    """The type byte of a sealed message (spec/protocol.md, "Messages")."""

    CATALOGUE_DIGEST = 0x01
    CATALOGUE = 0x02
    DELTA_REQUEST = 0x03
    UPDATE = 0x04
    CATCH_UP_DONE = 0x05
    HEARTBEAT = 0x06
    HEARTBEAT_ACK = 0x07
    CLOSE = 0x08


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One shareable document: its id, sync class and state-vector digest."""

    doc_id: str
    sync_class: str
    sv_digest: bytes


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The documents this side may share with the peer (node -> Connection).

    On the wire the Connection first sends only its digest
    (:class:`CatalogueDigest`) and the full list only if the digests differ.
    """

    entries: tuple[CatalogueEntry, ...]


@dataclass(frozen=True, slots=True)
class CatalogueDigest:
    """Digest over a whole catalogue (sent by the Connection itself)."""

    digest: bytes


@dataclass(frozen=True, slots=True)
class StateVector:
    """A document's state vector: "this is what I have of *doc_id*"."""

    doc_id: str
    sync_class: str
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    """State vectors of the documents a side wants to catch up on, in one message.

    Sent once, after the peer's full catalogue arrived; may be empty. The peer
    answers each entry with one Update, then CatchUpDone.
    """

    state_vectors: tuple[StateVector, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """A CRDT update for a document: a catch-up delta or a live change."""

    doc_id: str
    sync_class: str
    update: bytes


@dataclass(frozen=True, slots=True)
class CatchUpDone:
    """Every entry of the peer's DeltaRequest has been answered (sent by the Connection)."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Liveness probe; the receiving Connection acknowledges it by itself."""

    counter: int


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The answer to a :class:`Heartbeat`, carrying its counter."""

    counter: int


@dataclass(frozen=True, slots=True)
class Close:
    """The sender will send nothing more. ``code`` is a :class:`CloseCode` value."""

    code: int
    reason: str = ""


Message = (
    CatalogueDigest
    | Catalogue
    | DeltaRequest
    | Update
    | CatchUpDone
    | Heartbeat
    | HeartbeatAck
    | Close
)


def sync_class_code(sync_class: str) -> int:
    code = SYNC_CLASS_CODES.get(sync_class)
    if code is None:
        if sync_class == LOCAL:
            raise LocalProtocolError("refusing to put a 'local' document on the wire")
        raise LocalProtocolError(f"unknown sync class {sync_class!r}")
    return code


def _read_sync_class(reader: Reader) -> str:
    code = reader.u8()
    name = _SYNC_CLASS_NAMES.get(code)
    if name is None:
        raise RemoteProtocolError(f"unknown or forbidden sync class code {code}")
    return name


def _write_doc_ref(writer: Writer, doc_id: str, sync_class: str) -> None:
    writer.text(doc_id, MAX_DOC_ID_BYTES, "doc id", allow_empty=False)
    writer.u8(sync_class_code(sync_class))


def _read_doc_ref(reader: Reader) -> tuple[str, str]:
    doc_id = reader.text(MAX_DOC_ID_BYTES, "doc id", allow_empty=False)
    return doc_id, _read_sync_class(reader)


def doc_id_key(doc_id: str) -> bytes:
    """The order of documents on the wire: their UTF-8 bytes."""
    return doc_id.encode("utf-8", "surrogatepass")


def encode_catalogue_entry(entry: CatalogueEntry) -> bytes:
    writer = Writer()
    _write_doc_ref(writer, entry.doc_id, entry.sync_class)
    writer.fixed(entry.sv_digest, DIGEST_BYTES)
    return writer.getvalue()


def _check_ascending(keys: list[bytes], what: str, error: type[Exception]) -> None:
    for before, after in itertools.pairwise(keys):
        if not before < after:
            raise error(f"{what} must list each document once, in ascending id order")


def encode_message(message: Message) -> bytes:
    """Canonical encoding; LocalProtocolError if a field is invalid or over a limit."""
    writer = Writer()
    match message:
        case CatalogueDigest(digest=value):
            writer.u8(MessageType.CATALOGUE_DIGEST).fixed(value, DIGEST_BYTES)
        case Catalogue(entries=entries):
            if len(entries) > MAX_CATALOGUE_ENTRIES:
                raise LocalProtocolError(f"catalogue of {len(entries)} entries is over the limit")
            _check_ascending(
                [doc_id_key(e.doc_id) for e in entries], "a catalogue", LocalProtocolError
            )
            writer.u8(MessageType.CATALOGUE).varint(len(entries))
            for entry in entries:
                writer.raw(encode_catalogue_entry(entry))
        case DeltaRequest(state_vectors=items):
            if len(items) > MAX_CATALOGUE_ENTRIES:
                raise LocalProtocolError(f"delta request of {len(items)} entries is over the limit")
            _check_ascending(
                [doc_id_key(i.doc_id) for i in items], "a delta request", LocalProtocolError
            )
            writer.u8(MessageType.DELTA_REQUEST).varint(len(items))
            for item in items:
                _write_doc_ref(writer, item.doc_id, item.sync_class)
                writer.blob(item.state_vector, MAX_STATE_VECTOR_BYTES, "state vector")
        case Update(doc_id=doc_id, sync_class=sync_class, update=update):
            writer.u8(MessageType.UPDATE)
            _write_doc_ref(writer, doc_id, sync_class)
            writer.blob(update, MAX_MESSAGE_BYTES, "update")
        case CatchUpDone():
            writer.u8(MessageType.CATCH_UP_DONE)
        case Heartbeat(counter=counter):
            writer.u8(MessageType.HEARTBEAT).varint(counter)
        case HeartbeatAck(counter=counter):
            writer.u8(MessageType.HEARTBEAT_ACK).varint(counter)
        case Close(code=code, reason=reason):
            writer.u8(MessageType.CLOSE).varint(code)
            writer.text(reason, MAX_CLOSE_REASON_BYTES, "close reason")
        case _:
            raise LocalProtocolError(f"not a message: {message!r}")
    data = writer.getvalue()
    if len(data) > MAX_MESSAGE_BYTES:
        raise LocalProtocolError(
            f"message of {len(data)} bytes does not fit in a frame (limit {MAX_MESSAGE_BYTES})",
            CloseCode.TOO_LARGE,
        )
    return data


def decode_message(data: bytes) -> Message:
    """Parse one plaintext message; RemoteProtocolError for anything non-canonical."""
    reader = Reader(data, "message")
    kind = reader.u8()
    message: Message
    if kind == MessageType.CATALOGUE_DIGEST:
        message = CatalogueDigest(reader.fixed(DIGEST_BYTES))
    elif kind == MessageType.CATALOGUE:
        count = reader.varint(MAX_CATALOGUE_ENTRIES)
        entries = []
        for _ in range(count):
            doc_id, sync_class = _read_doc_ref(reader)
            entries.append(CatalogueEntry(doc_id, sync_class, reader.fixed(DIGEST_BYTES)))
        _check_ascending(
            [doc_id_key(e.doc_id) for e in entries], "a catalogue", RemoteProtocolError
        )
        message = Catalogue(tuple(entries))
    elif kind == MessageType.DELTA_REQUEST:
        count = reader.varint(MAX_CATALOGUE_ENTRIES)
        items = []
        for _ in range(count):
            doc_id, sync_class = _read_doc_ref(reader)
            sv = reader.blob(MAX_STATE_VECTOR_BYTES, "state vector")
            items.append(StateVector(doc_id, sync_class, sv))
        _check_ascending(
            [doc_id_key(i.doc_id) for i in items], "a delta request", RemoteProtocolError
        )
        message = DeltaRequest(tuple(items))
    elif kind == MessageType.UPDATE:
        doc_id, sync_class = _read_doc_ref(reader)
        message = Update(doc_id, sync_class, reader.blob(MAX_MESSAGE_BYTES, "update"))
    elif kind == MessageType.CATCH_UP_DONE:
        message = CatchUpDone()
    elif kind == MessageType.HEARTBEAT:
        message = Heartbeat(reader.varint())
    elif kind == MessageType.HEARTBEAT_ACK:
        message = HeartbeatAck(reader.varint())
    elif kind == MessageType.CLOSE:
        code = reader.varint()
        message = Close(code, reader.text(MAX_CLOSE_REASON_BYTES, "close reason"))
    else:
        raise RemoteProtocolError(f"unknown message type 0x{kind:02x}")
    reader.done()
    return message
