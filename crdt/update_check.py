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


def _item_header(r: _Reader, info: int) -> tuple[str | None, bool]:
    """Read an item's origins and parent (after its info byte). Returns the root
    name when the item names a root as its parent, and whether it has a map key."""
    if info & _ORIGIN:
        r.varuint()
        r.varuint()
    if info & _RIGHT_ORIGIN:
        r.varuint()
        r.varuint()
    if info & (_ORIGIN | _RIGHT_ORIGIN):
        return None, False  # the parent comes from the origin
    root: str | None = None
    if r.varuint() == 1:
        root = r.string()
    else:
        r.varuint()
        r.varuint()
    keyed = bool(info & _PARENT_SUB)
    if keyed:
        r.buf()
    return root, keyed


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
            root, keyed = _item_header(r, info)
            if root is not None and not keyed:
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


# --------------------------------------------------------------------------- canonical form


def _varuint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _canonical_any(r: _Reader, depth: int = 0) -> bytes:
    """One ``Any`` value, its object keys sorted (recursively)."""
    if depth > MAX_ANY_DEPTH:
        raise UpdateRejected("value nested too deep")
    start = r.pos
    kind = r.u8()
    if kind == 118:  # object: the part yrs writes in hash-map order
        entries = []
        for _ in range(r.varuint()):
            key = r.buf()
            entries.append((key, _canonical_any(r, depth + 1)))
        entries.sort()
        return b"".join(
            [bytes([118]), _varuint_bytes(len(entries))]
            + [_varuint_bytes(len(k)) + k + v for k, v in entries]
        )
    if kind == 117:
        items = [_canonical_any(r, depth + 1) for _ in range(r.varuint())]
        return b"".join([bytes([117]), _varuint_bytes(len(items)), *items])
    r.pos = start
    r.any(depth)
    return r.data[start : r.pos]


def _walk(update: bytes) -> tuple[list[tuple[int, bytes]], dict[int, list[tuple[int, int]]]]:
    """The client blocks of *update* (dict keys sorted) and its delete set, merged."""
    r = _Reader(update)
    blocks: list[tuple[int, bytes]] = []
    for _ in range(r.varuint()):  # clients
        structs = r.varuint()
        client = r.varuint()
        clock = r.varuint()
        out = [_varuint_bytes(structs), _varuint_bytes(client), _varuint_bytes(clock)]
        for _ in range(structs):
            start = r.pos
            info = r.u8()
            ref = info & _BITS5
            if ref in (0, 10):  # GC, Skip
                r.varuint()
                out.append(r.data[start : r.pos])
                continue
            _item_header(r, info)
            out.append(r.data[start : r.pos])
            if ref == 8:  # any
                count = r.varuint()
                out.append(_varuint_bytes(count))
                out.extend(_canonical_any(r) for _ in range(count))
            elif ref == 9:  # subdocument: guid, then options (an Any)
                start = r.pos
                r.buf()
                out.append(r.data[start : r.pos])
                out.append(_canonical_any(r))
            else:
                start = r.pos
                _skip_content(r, ref)
                out.append(r.data[start : r.pos])
        blocks.append((client, b"".join(out)))
    ranges: dict[int, list[tuple[int, int]]] = {}
    for _ in range(r.varuint()):
        client = r.varuint()
        for _ in range(r.varuint()):
            clock = r.varuint()
            length = r.varuint()
            ranges.setdefault(client, []).append((clock, clock + length))
    if r.pos != len(update):
        raise UpdateRejected("trailing bytes after the update")
    merged: dict[int, list[tuple[int, int]]] = {}
    for client, spans in ranges.items():
        spans.sort()
        out_spans: list[tuple[int, int]] = []
        for lo, hi in spans:
            if out_spans and lo <= out_spans[-1][1]:
                out_spans[-1] = (out_spans[-1][0], max(out_spans[-1][1], hi))
            elif hi > lo:
                out_spans.append((lo, hi))
        if out_spans:
            merged[client] = out_spans
    return sorted(blocks), merged


def delete_set(update: bytes) -> dict[int, list[tuple[int, int]]]:
    """What *update* deletes: per client, sorted and merged ``[start, end)`` clock ranges."""
    return _walk(update)[1]


def canonical_update(update: bytes) -> bytes:
    """*update* (Yjs v1) re-encoded in one canonical order.

    yrs writes the keys of a map value (``ContentAny`` holding a dict), and may
    write clients and delete-set entries, in hash-map order, so two encodings of
    one document can differ byte for byte (measured: re-encoding a decoded
    engine document reorders the keys of its evidence dicts). Here clients are
    sorted by id, object keys by their bytes, and the delete set is sorted and
    its ranges merged; everything else is copied as it is. Equal canonical forms
    mean equal documents; compaction compares these instead of raw bytes.
    """
    blocks, deletes = _walk(update)
    out = [_varuint_bytes(len(blocks)), *(b for _, b in blocks), _varuint_bytes(len(deletes))]
    for client in sorted(deletes):
        spans = deletes[client]
        out += [_varuint_bytes(client), _varuint_bytes(len(spans))]
        out += [_varuint_bytes(lo) + _varuint_bytes(hi - lo) for lo, hi in spans]
    return b"".join(out)


def state_vector(encoded: bytes) -> dict[int, int]:
    """A v1 state vector (``count, (client, clock)*``) as a mapping of client to clock.

    yrs writes a state vector in hash-map order, which depends on how the map
    grew: a document rebuilt update by update and the same document decoded
    from one update may list their clients in different orders. Compare state
    vectors through this, never as bytes."""
    r = _Reader(encoded)
    clocks: dict[int, int] = {}
    for _ in range(r.varuint()):
        client = r.varuint()
        if client in clocks:
            raise UpdateRejected(f"client {client} twice in a state vector")
        clocks[client] = r.varuint()
    if r.pos != len(encoded):
        raise UpdateRejected("trailing bytes after the state vector")
    return clocks


def same_state(a: bytes, b: bytes) -> bool:
    """Whether two encoded state vectors say the same (see :func:`state_vector`)."""
    return a == b or state_vector(a) == state_vector(b)


def covers(state: bytes, deletes: bytes, other_state: bytes, other_deletes: bytes) -> bool:
    """Whether a replica (*state*, and an update carrying its *deletes*) holds
    everything another one (*other_state*, *other_deletes*) holds: every client's
    clock at least as far, every deleted range deleted too. A replica that
    other processes have written to since the other one looked covers it."""
    mine, theirs = state_vector(state), state_vector(other_state)
    if any(mine.get(client, 0) < clock for client, clock in theirs.items()):
        return False
    have = delete_set(deletes)
    for client, spans in delete_set(other_deletes).items():
        ours = have.get(client, [])
        for lo, hi in spans:  # both sides are merged: a span lies within one of ours
            if not any(a <= lo and hi <= b for a, b in ours):
                return False
    return True


def same_document(a: bytes, b: bytes) -> bool:
    """Whether two v1 updates encode the same document (see :func:`canonical_update`)."""
    return a == b or canonical_update(a) == canonical_update(b)
