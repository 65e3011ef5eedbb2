"""Values that may enter a CRDT document, checked before pycrdt sees them.

pycrdt stores numbers as JavaScript doubles: integers come back as floats,
integers beyond 2**53 drift, and ``2**64`` raises a ``PanicException`` that
is not an ``Exception`` at all (notes/pycrdt.md, trap 1). Everything written
through our document kinds passes :func:`check_value` first, and integers are
read back through :func:`read_int`.

Timestamps are stored as ISO-8601 strings in UTC (``2026-11-24T08:01:06.123Z``),
so they never meet floating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ValueRangeError

MAX_SAFE_INT = 2**53 - 1
MAX_STRING_CHARS = 10_000_000
MAX_DEPTH = 32
MAX_DOC_ID_BYTES = 255
"""A document id is 1..255 bytes of printable UTF-8: what the wire carries
(``protocol.limits.MAX_DOC_ID_BYTES``) and what a blind store's name box holds.
(crdt imports nothing of protocol's; a test checks that the two agree.)"""


def is_valid_doc_id(doc_id: str) -> bool:
    """Whether *doc_id* can name a document: non-empty, printable, at most
    MAX_DOC_ID_BYTES in UTF-8 (so every document can sync and be stored blind)."""
    if not doc_id or not doc_id.isprintable():
        return False
    try:
        return len(doc_id.encode("utf-8")) <= MAX_DOC_ID_BYTES
    except UnicodeEncodeError:
        return False


def check_value(value: Any, *, path: str = "value", _depth: int = 0) -> None:
    """Raise :class:`ValueRangeError` unless *value* survives a CRDT round trip."""
    if _depth > MAX_DEPTH:
        raise ValueRangeError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise ValueRangeError(
                f"{path}: integer {value} is outside ±(2**53 - 1) and cannot be stored exactly"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueRangeError(f"{path}: {value} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise ValueRangeError(f"{path}: text longer than {MAX_STRING_CHARS} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueRangeError(f"{path}: text holds a lone surrogate") from None
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_value(item, path=f"{path}[{i}]", _depth=_depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueRangeError(f"{path}: map keys must be text, not {type(key).__name__}")
            check_value(item, path=f"{path}.{key}", _depth=_depth + 1)
        return
    raise ValueRangeError(f"{path}: {type(value).__name__} cannot be stored in a document")


def read_int(value: Any, *, default: int = 0) -> int:
    """Read back an integer that pycrdt may return as a float."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    return default


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueRangeError("timestamps must carry a time zone")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp written by :func:`format_timestamp` (or any ISO-8601 with zone)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
