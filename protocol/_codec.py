"""Canonical primitive encodings: LEB128 varints, length-prefixed bytes and text.

Every value has exactly one encoding. The reader rejects non-minimal varints,
varints over 64 bits, lengths that run past the end or over their limit,
invalid UTF-8 and trailing bytes, always with :class:`RemoteProtocolError`.
Lengths are compared with what remains *before* anything is sliced.
"""

from __future__ import annotations

from .errors import LocalProtocolError, RemoteProtocolError
from .limits import MAX_VARINT_BYTES

_U64_MAX = 2**64 - 1


def encode_varint(value: int) -> bytes:
    """Minimal unsigned LEB128 of *value* (0 <= value < 2**64)."""
    if not 0 <= value <= _U64_MAX:
        raise LocalProtocolError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Writer:
    """Builds one canonical encoding; the mirror image of :class:`Reader`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        if not 0 <= value <= 0xFF:
            raise LocalProtocolError(f"byte out of range: {value}")
        self._parts.append(bytes((value,)))
        return self

    def varint(self, value: int) -> Writer:
        self._parts.append(encode_varint(value))
        return self

    def fixed(self, data: bytes, size: int) -> Writer:
        if len(data) != size:
            raise LocalProtocolError(f"expected {size} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def raw(self, data: bytes) -> Writer:
        self._parts.append(bytes(data))
        return self

    def blob(self, data: bytes, limit: int, what: str) -> Writer:
        if len(data) > limit:
            raise LocalProtocolError(f"{what} is {len(data)} bytes; the limit is {limit}")
        self._parts.append(encode_varint(len(data)))
        self._parts.append(bytes(data))
        return self

    def text(self, value: str, limit: int, what: str, *, allow_empty: bool = True) -> Writer:
        if not allow_empty and not value:
            raise LocalProtocolError(f"{what} must not be empty")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{what} is not encodable as UTF-8") from None
        return self.blob(data, limit, what)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads one canonical encoding from *data*; call :meth:`done` at the end."""

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._what = what

    def _fail(self, msg: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"malformed {self._what}: {msg}")

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def u8(self) -> int:
        if self.remaining < 1:
            raise self._fail("truncated")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def varint(self, limit: int = _U64_MAX) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and byte == 0:
                    raise self._fail("non-minimal varint")
                if value > _U64_MAX:
                    raise self._fail("varint over 64 bits")
                if value > limit:
                    raise self._fail(f"value {value} over its limit {limit}")
                return value
        raise self._fail("varint longer than 10 bytes")

    def fixed(self, size: int) -> bytes:
        if self.remaining < size:
            raise self._fail("truncated")
        out = bytes(self._data[self._pos : self._pos + size])
        self._pos += size
        return out

    def blob(self, limit: int, what: str) -> bytes:
        size = self.varint()
        if size > limit:
            raise self._fail(f"{what} of {size} bytes is over the limit of {limit}")
        return self.fixed(size)

    def text(self, limit: int, what: str, *, allow_empty: bool = True) -> str:
        data = self.blob(limit, what)
        if not allow_empty and not data:
            raise self._fail(f"empty {what}")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"{what} is not valid UTF-8") from None

    def done(self) -> None:
        if self.remaining:
            raise self._fail(f"{self.remaining} trailing bytes")
