"""What an import reader produces (:class:`ImportPlan`) and the checks every reader shares.

The readers in :mod:`crdt.import_formats` build a plan with these; :mod:`crdt.importers`
reads a source into one and applies it (its docstring has the theory of operation).
Every check raises :class:`ImportFileError` with a one-line message, or records a
:class:`Skipped` entry with its reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from .journal import ID_ALPHABET, ID_LENGTH, MAX_TEXT_CHARS, Reflection, normalize_tags
from .sync_class import SyncClass
from .values import check_value


class ImportFileError(ValueError):
    """The input cannot be imported; nothing was written. The message is one line."""


@dataclass(frozen=True)
class ImportLimits:
    """Bounds checked before reading; tests pass small ones."""

    max_file_bytes: int = 256 * 1024 * 1024
    max_zip_members: int = 10_000
    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_compression_ratio: int = 200
    max_markdown_files: int = 100_000
    max_markdown_file_bytes: int = 10 * 1024 * 1024
    max_entries: int = 1_000_000
    max_documents: int = 100_000  # in one Mirror export (a shard a month, plus a few)


@dataclass(frozen=True)
class Skipped:
    """Something an import left out: where it was in the source and why."""

    where: str
    reason: str


@dataclass(frozen=True)
class DocumentState:
    """One document of a Mirror export, checked: its CRDT state decodes."""

    doc_id: str
    kind: str
    sync_class: SyncClass
    state: bytes
    reflection_ids: frozenset[str] = frozenset()


@dataclass
class ImportPlan:
    """What an import source holds, read and checked, before anything is written."""

    format: str
    reflections: list[Reflection] = field(default_factory=list)
    documents: list[DocumentState] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    """What applying an :class:`ImportPlan` did."""

    format: str
    imported: int
    already_present: int
    skipped: tuple[Skipped, ...]
    documents: int = 0
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "imported": self.imported,
            "already_present": self.already_present,
            "documents": self.documents,
            "dry_run": self.dry_run,
            "skipped": [{"where": s.where, "reason": s.reason} for s in self.skipped],
        }


# --------------------------------------------------------------------------- ids


def stable_reflection_id(source: str, identity: str) -> str:
    """A reflection id derived from the source entry's identity (same entry, same id)."""
    digest = hashlib.blake2b(
        f"{source}\x00{identity}".encode(), digest_size=8, person=b"mirror/import"
    ).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(ID_ALPHABET[number & 31])
        number >>= 5
    return "".join(chars)


def _text_identity(moment: datetime, text: str) -> str:
    return f"{moment.astimezone(UTC).isoformat()}\x00{' '.join(text.split())}"


# --------------------------------------------------------------------------- reading


def _read_capped(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        raise ImportFileError(f"{path}: larger than the {limit} bytes this imports")
    return data


def _parse_json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        ) from None
    except RecursionError:
        raise ImportFileError(f"{where}: JSON nested too deeply") from None


# --------------------------------------------------------------------------- checks


def _req(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise ImportFileError(f"{where}: expected an object, found {_jtype(obj)}")
    if key not in obj:
        raise ImportFileError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ImportFileError(f"{where}: {key!r} is {_jtype(value)}, not {_names(kind)}")
    return value


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ImportFileError(f"{where}: {key!r} is {_jtype(value)}, not {_names(kind)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", list: "a list", dict: "an object", bool: "true/false", int: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", list: "a list", dict: "an object", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _tag_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ImportFileError(f"{where}: tags must be a list of text")
    try:
        return normalize_tags(t.lstrip("@") for t in value)
    except ValueError as exc:
        raise ImportFileError(f"{where}: {exc}") from None


def _checked(plan: ImportPlan, where: str, reflection: Reflection) -> None:
    """Add *reflection* to the plan, or skip it with a reason it cannot be stored."""
    text = reflection.text.strip()
    if not text:
        plan.skipped.append(Skipped(where, "no text"))
        return
    if len(text) > MAX_TEXT_CHARS:
        plan.skipped.append(Skipped(where, f"longer than {MAX_TEXT_CHARS} characters"))
        return
    try:
        check_value(text, path="text")
    except ValueError as exc:
        plan.skipped.append(Skipped(where, str(exc)))
        return
    plan.reflections.append(replace(reflection, text=text))


def _aware(moment: datetime, default_tz: tzinfo) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz)
    return moment.astimezone(UTC)


def _parse_datetime(text: str, where: str, default_tz: tzinfo) -> datetime:
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ImportFileError(f"{where}: cannot read the date {raw[:40]!r}") from None
    return _dated(moment, raw, where, default_tz)


def _dated(moment: datetime, raw: str, where: str, default_tz: tzinfo) -> datetime:
    """*moment* (read from *raw*) in UTC, or refused if before 1900.

    The Day One, jrnl and Markdown readers all date entries through here, so they
    refuse the same dates (near year 1, converting to UTC would also overflow).
    """
    if moment.year < 1900:
        raise ImportFileError(f"{where}: date {raw.strip()[:40]!r} is before 1900")
    return _aware(moment, default_tz)
