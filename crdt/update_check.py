"""Check an incoming Yjs update before pycrdt applies it: every root must be a map.

notes/pycrdt.md, trap 11: a root has whatever type the update gave it, and
reading a root as the wrong type can make pycrdt misbehave (a Text root holding
an emoji read as an Array looped forever). Every Mirror document kind keeps
only maps at its roots, so an update that puts *sequence* content (text, array,
XML) directly into a root is refused before it reaches a document.

Theory of operation: the update (Yjs v1 encoding, lib0 varints) is walked
struct by struct. An item that names its parent explicitly — no left or right
origin — and whose parent is a root (a name, not an item id) must carry a
``parentSub`` (a map key); without one it is a sequence item of that root.
Items with an origin inherit their parent from it, so they cannot create a
root of a new type. Content is skipped according to its type ref; anything
that does not parse is refused too (pycrdt would refuse it anyway).
"""

from __future__ import annotations

from .errors import DocumentError

MAX_ANY_DEPTH = 64

_BITS5 = 0x1F
_ORIGIN = 0x80
_RIGHT_ORIGIN = 0x40
_PARENT_SUB = 0x20


class UpdateRejected(DocumentError):
    """The update would give a document a root that is not a map, or is malformed."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise UpdateRejected("truncated update")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varuint(self) -> int:
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 70:
                raise UpdateRejected("varint too long")

    def varint(self) -> None:
        byte = self.u8()
        shift = 6
        while byte & 0x80:
            byte = self.u8()
            shift += 7
            if shift > 70:
                raise UpdateRejected("varint too long")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise UpdateRejected("truncated update")
        self.pos += n

    def buf(self) -> bytes:
        n = self.varuint()
        start = self.pos
        self.skip(n)
        return self.data[start : self.pos]

    def string(self) -> str:
        try:
            return self.buf().decode("utf-8")
        except UnicodeDecodeError:
            raise UpdateRejected("invalid UTF-8 in update") from None

    def any(self, depth: int = 0) -> None:
        if depth > MAX_ANY_DEPTH:
            raise UpdateRejected("value nested too deep")
        kind = self.u8()
        if kind in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if kind == 125:
            self.varint()
        elif kind == 124:
            self.skip(4)
        elif kind in (123, 122):
            self.skip(8)
        elif kind in (119, 116):
            self.buf()
        elif kind == 118:
            for _ in range(self.varuint()):
                self.buf()
                self.any(depth + 1)
        elif kind == 117:
            for _ in range(self.varuint()):
                self.any(depth + 1)
        else:
            raise UpdateRejected(f"unknown value type {kind}")


def _skip_content(r: _Reader, ref: int) -> None:
    if ref == 1:  # deleted
        r.varuint()
    elif ref == 2:  # JSON
        for _ in range(r.varuint()):
            r.buf()
    elif ref in (3, 4, 5):  # binary, string, embed
        r.buf()
    elif ref == 6:  # format
        r.buf()
        r.buf()
    elif ref == 7:  # a type
        type_ref = r.varuint()
        if type_ref in (3, 5):  # XmlElement, XmlHook carry a name
            r.buf()
    elif ref == 8:  # any
        for _ in range(r.varuint()):
            r.any()
    elif ref == 9:  # subdocument
        r.buf()
        r.any()
    else:
        raise UpdateRejected(f"unknown content type {ref}")


def check_map_roots(update: bytes) -> None:
    """Raise :class:`UpdateRejected` unless *update* only puts map entries in roots."""
    r = _Reader(update)
    for _ in range(r.varuint()):  # clients
        structs = r.varuint()
        r.varuint()  # client
        r.varuint()  # first clock
        for _ in range(structs):
            info = r.u8()
            ref = info & _BITS5
            if ref in (0, 10):  # GC, Skip
                r.varuint()
                continue
            if info & _ORIGIN:
                r.varuint()
                r.varuint()
            if info & _RIGHT_ORIGIN:
                r.varuint()
                r.varuint()
            if not info & (_ORIGIN | _RIGHT_ORIGIN):
                root: str | None = None
                if r.varuint() == 1:
                    root = r.string()
                else:
                    r.varuint()
                    r.varuint()
                if info & _PARENT_SUB:
                    r.buf()
                elif root is not None:
                    raise UpdateRejected(
                        f"the update makes root {root[:40]!r} a sequence, not a map"
                    )
            _skip_content(r, ref)
    for _ in range(r.varuint()):  # delete set
        r.varuint()
        for _ in range(r.varuint()):
            r.varuint()
            r.varuint()
    if r.pos != len(update):
        raise UpdateRejected("trailing bytes after the update")
