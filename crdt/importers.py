"""Import reflections written elsewhere: Day One, jrnl, Markdown folders, Mirror's own export.

Theory of operation: importing is two steps that never mix.

1. :func:`read_source` (blocking, no store) reads and checks the *whole* input
   and returns an :class:`ImportPlan`: the reflections (or, for Mirror's own
   export, the documents) it would write, and what it skips and why. Any
   malformed input raises :class:`ImportFileError` with a one-line message, so
   nothing is written at all. Inputs are hostile until checked: sizes are
   bounded before anything is read into memory (:class:`ImportLimits`), zip
   members are read with a hard cap whatever their headers claim, member names
   that try to leave the archive are refused, and every value is type-checked.
2. :func:`apply_plan` writes the plan into a store: every target document is
   opened first, then all changes are made synchronously, so they reach the
   storage thread together and are committed as one group.

Importing twice creates no duplicates: each reflection's id is derived from the
identity of its source entry (Day One's uuid; otherwise its date and text), and
ids already in the store are skipped. Mirror's own export carries every
document's CRDT state, which merges idempotently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import os
import re
import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pycrdt import Doc, Map

from .journal import (
    ID_ALPHABET,
    ID_LENGTH,
    KIND,
    MAX_TEXT_CHARS,
    PRIVATE_PREFIX,
    ROOT,
    Reflection,
    is_journal_shard,
    normalize_tags,
    read_reflection,
    shard_ids,
    write_reflection,
)
from .store import DocStore, StoredDoc
from .sync_class import SyncClass
from .update_check import UpdateRejected, check_map_roots
from .values import check_value

log = logging.getLogger("mirror.import")

JOURNAL_KIND, JOURNAL_ROOT = KIND, ROOT

FORMATS = ("dayone", "jrnl", "markdown", "mirror")
LOCAL_DOC_PREFIX = "local/"
MAX_DOC_ID_CHARS = 200


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


@dataclass(frozen=True)
class Skipped:
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
    format: str
    reflections: list[Reflection] = field(default_factory=list)
    documents: list[DocumentState] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
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


def read_source(
    path: Path,
    fmt: str = "auto",
    *,
    default_tz: tzinfo = UTC,
    limits: ImportLimits | None = None,
) -> ImportPlan:
    """Read and check everything at *path*; raise :class:`ImportFileError` if anything is wrong.

    *default_tz* is the zone of dates written without one (jrnl, Markdown).
    """
    limits = limits or ImportLimits()
    if fmt != "auto" and fmt not in FORMATS:
        raise ImportFileError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        if fmt not in ("auto", "markdown"):
            raise ImportFileError(f"{path}: is a directory ({fmt} reads a file)")
        return _read_markdown_folder(path, default_tz, limits)
    if not stat.S_ISREG(st.st_mode):
        raise ImportFileError(f"{path}: not a regular file")
    if st.st_size > limits.max_file_bytes:
        raise ImportFileError(
            f"{path}: {st.st_size} bytes is more than the {limits.max_file_bytes} this imports"
        )
    data = _read_capped(path, limits.max_file_bytes)
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        if fmt not in ("auto", "dayone"):
            raise ImportFileError(f"{path}: is a zip archive; only Day One exports come as zip")
        return _read_dayone_zip(path, data, limits)
    if fmt == "markdown" or (fmt == "auto" and path.suffix.lower() in (".md", ".markdown")):
        plan = ImportPlan("markdown")
        _markdown_file(plan, path.name, data, default_tz)
        return plan
    value = _parse_json(data, path.name)
    if fmt == "auto":
        fmt = _detect_json(value, path.name)
    if fmt == "mirror":
        return _read_mirror(value, path.name)
    if fmt == "dayone":
        plan = ImportPlan("dayone")
        _dayone_journal(plan, value, path.name, limits)
        return plan
    if fmt == "jrnl":
        return _read_jrnl(value, path.name, default_tz, limits)
    raise ImportFileError(f"{path}: a {fmt} import reads a folder or a .md file")


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


def _detect_json(value: Any, where: str) -> str:
    if isinstance(value, dict):
        if value.get("format") == "mirror-export":
            return "mirror"
        entries = value.get("entries")
        if "metadata" in value and "entries" in value:
            return "dayone"
        if isinstance(entries, list):
            first = next((e for e in entries if isinstance(e, dict)), None)
            if first is not None and ("uuid" in first or "creationDate" in first):
                return "dayone"
            if first is not None and ("date" in first and ("title" in first or "body" in first)):
                return "jrnl"
            if "tags" in value:
                return "jrnl"
    raise ImportFileError(
        f"{where}: not a Day One, jrnl or Mirror JSON export (give --format to say which)"
    )


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
    if moment.year < 1900:
        raise ImportFileError(f"{where}: date {raw[:40]!r} is before 1900")
    return _aware(moment, default_tz)


# --------------------------------------------------------------------------- Day One


_DAYONE_MOMENT = re.compile(r"!\[[^\]]*\]\(dayone-moment:/+[^)]*\)")
_DAYONE_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|~])")


def _dayone_text(raw: str) -> tuple[str, int]:
    """Day One's Markdown with its backslash escapes undone and photo links removed."""
    text, photos = _DAYONE_MOMENT.subn("", raw)
    return _DAYONE_ESCAPE.sub(r"\1", text), photos


def _dayone_journal(plan: ImportPlan, value: Any, where: str, limits: ImportLimits) -> None:
    entries = _req(value, "entries", list, where)
    if len(plan.reflections) + len(entries) > limits.max_entries:
        raise ImportFileError(f"{where}: more than {limits.max_entries} entries")
    for i, entry in enumerate(entries):
        at = f"{where} entry {i + 1}"
        if not isinstance(entry, dict):
            raise ImportFileError(f"{at}: expected an object, found {_jtype(entry)}")
        uuid = _opt(entry, "uuid", str, at)
        if uuid:
            at = f"{where} entry {uuid}"
        created = _parse_datetime(_req(entry, "creationDate", str, at), at, UTC)
        raw = _opt(entry, "text", str, at) or ""
        tags = _tag_list(entry.get("tags"), at)
        zone = _opt(entry, "timeZone", str, at)
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                log.info("%s: unknown time zone %r ignored", at, zone[:40])
        text, photos = _dayone_text(raw)
        attachments = photos + sum(
            len(entry[k]) for k in ("photos", "videos", "audios", "pdfAttachments")
            if isinstance(entry.get(k), list)
        )
        if not text.strip():
            reason = "photos only, no text" if attachments else "no text"
            plan.skipped.append(Skipped(at, reason))
            continue
        if attachments:
            plan.skipped.append(Skipped(at, f"{attachments} attachment(s) not imported; "
                                            "the text was"))
        identity = f"uuid:{uuid}" if uuid else _text_identity(created, text)
        _checked(plan, at, Reflection(
            id=stable_reflection_id("dayone", identity),
            created_at=created,
            text=text,
            tags=tags,
        ))


def _safe_member_name(name: str) -> bool:
    if not name or "\x00" in name or "\\" in name:
        return False
    pure = PurePosixPath(name)
    return not pure.is_absolute() and ".." not in pure.parts and not re.match(r"^[A-Za-z]:", name)


def _read_dayone_zip(path: Path, data: bytes, limits: ImportLimits) -> ImportPlan:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ImportFileError(f"{path}: damaged zip archive ({exc})") from None
    plan = ImportPlan("dayone")
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members:
            raise ImportFileError(f"{path}: more than {limits.max_zip_members} files in the zip")
        for info in members:
            if not _safe_member_name(info.filename):
                raise ImportFileError(
                    f"{path}: refusing a zip with an unsafe file name {info.filename[:60]!r}"
                )
        journals = [
            m for m in members
            if not m.is_dir() and m.filename.lower().endswith(".json")
            and not PurePosixPath(m.filename).name.startswith(".")
            and "__MACOSX" not in m.filename
        ]
        if not journals:
            raise ImportFileError(f"{path}: no journal JSON in the zip (not a Day One export?)")
        total = 0
        for info in journals:
            raw = _read_member(archive, info, path, limits, total)
            total += len(raw)
            _dayone_journal(plan, _parse_json(raw, info.filename), info.filename, limits)
        others = len([m for m in members if not m.is_dir()]) - len(journals)
        if others:
            plan.skipped.append(Skipped(str(path.name), f"{others} media file(s) in the zip "
                                                        "not imported"))
    return plan


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limits: ImportLimits, total: int
) -> bytes:
    name = info.filename
    cap = min(limits.max_member_bytes, limits.max_total_bytes - total)
    ratio_cap = max(info.compress_size, 1) * limits.max_compression_ratio
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as fh:
            while True:
                chunk = fh.read(1024 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise ImportFileError(f"{path}: {name} unpacks to more than {cap} bytes")
                if size > ratio_cap and size > 1024 * 1024:
                    raise ImportFileError(
                        f"{path}: {name} unpacks more than {limits.max_compression_ratio}x "
                        "its packed size (a zip bomb?)"
                    )
                chunks.append(chunk)
    except ImportFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        raise ImportFileError(f"{path}: damaged zip member {name} ({exc})") from None
    except Exception as exc:  # zlib.error and friends from a crafted stream
        raise ImportFileError(f"{path}: damaged zip member {name} ({exc})") from None
    return b"".join(chunks)


# --------------------------------------------------------------------------- jrnl


def _read_jrnl(value: Any, where: str, default_tz: tzinfo, limits: ImportLimits) -> ImportPlan:
    plan = ImportPlan("jrnl")
    entries = _req(value, "entries", list, where)
    if len(entries) > limits.max_entries:
        raise ImportFileError(f"{where}: more than {limits.max_entries} entries")
    for i, entry in enumerate(entries):
        at = f"{where} entry {i + 1}"
        if not isinstance(entry, dict):
            raise ImportFileError(f"{at}: expected an object, found {_jtype(entry)}")
        day = _req(entry, "date", str, at)
        clock = _opt(entry, "time", str, at) or "00:00"
        try:
            moment = datetime.combine(date.fromisoformat(day.strip()),
                                      time.fromisoformat(clock.strip()))
        except ValueError:
            raise ImportFileError(f"{at}: cannot read the date {day[:20]!r} {clock[:10]!r}")\
                from None
        created = _aware(moment, default_tz)
        title = (_opt(entry, "title", str, at) or "").strip()
        body = (_opt(entry, "body", str, at) or "").strip()
        if title and body:
            joiner = " " if title[-1] in ".?!" else "\n"
            text = f"{title}{joiner}{body}"
        else:
            text = title or body
        tags = _tag_list(entry.get("tags"), at)
        _checked(plan, at, Reflection(
            id=stable_reflection_id("jrnl", _text_identity(created, text)),
            created_at=created,
            text=text,
            tags=tags,
        ))
    return plan


# --------------------------------------------------------------------------- Markdown


_NAME_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[T _-]?(\d{2})[:.h-]?(\d{2}))?(?!\d)")
_MIRROR_MD = re.compile(r"^# Reflections · \d{4}-\d{2}\s*$", re.MULTILINE)
_DATE_KEYS = ("date", "created", "created_at", "creationdate")
_TAG_KEYS = ("tags", "tag", "keywords")


def _read_markdown_folder(root: Path, default_tz: tzinfo, limits: ImportLimits) -> ImportPlan:
    plan = ImportPlan("markdown")
    files = list(_markdown_files(root, plan, limits))
    if not files and not plan.skipped:
        raise ImportFileError(f"{root}: no Markdown files (*.md) in this folder")
    for rel, path in files:
        size = path.stat().st_size
        if size > limits.max_markdown_file_bytes:
            plan.skipped.append(Skipped(rel, f"larger than {limits.max_markdown_file_bytes} bytes"))
            continue
        _markdown_file(plan, rel, _read_capped(path, limits.max_markdown_file_bytes), default_tz)
    return plan


def _markdown_files(
    root: Path, plan: ImportPlan, limits: ImportLimits
) -> Iterator[tuple[str, Path]]:
    found = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith((".md", ".markdown")):
                continue
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink() or not path.is_file():
                plan.skipped.append(Skipped(rel, "not a regular file (links are not followed)"))
                continue
            found += 1
            if found > limits.max_markdown_files:
                raise ImportFileError(f"{root}: more than {limits.max_markdown_files} files")
            yield rel, path


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text
    meta: dict[str, Any] = {}
    key: str | None = None
    for line in lines[1:end]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.match(r"^\s+-\s*(.*)$", line)
        if item and key is not None:
            current = meta.get(key)
            meta[key] = [*(current if isinstance(current, list) else []), _unquote(item.group(1))]
            continue
        pair = re.match(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$", line)
        if not pair:
            continue
        key = pair.group(1).lower()
        raw = pair.group(2).strip()
        if raw.startswith("[") and raw.endswith("]"):
            meta[key] = [_unquote(p) for p in raw[1:-1].split(",") if p.strip()]
        else:
            meta[key] = _unquote(raw)
    return meta, "\n".join(lines[end + 1 :])


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _markdown_file(plan: ImportPlan, rel: str, data: bytes, default_tz: tzinfo) -> None:
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        plan.skipped.append(Skipped(rel, "not UTF-8 text"))
        return
    if _MIRROR_MD.search(text):
        plan.skipped.append(Skipped(rel, "a Mirror Markdown export; import the JSON export "
                                         "instead (it keeps everything)"))
        return
    meta, body = _front_matter(text)
    moment: datetime | None = None
    for key in _DATE_KEYS:
        raw = meta.get(key)
        if isinstance(raw, str) and raw:
            try:
                moment = _parse_datetime(raw, rel, default_tz)
            except ImportFileError:
                plan.skipped.append(Skipped(rel, f"cannot read the date {raw[:40]!r}"))
                return
            break
    if moment is None:
        match = _NAME_DATE.match(PurePosixPath(rel).name)
        if match:
            y, mo, d, h, mi = match.groups()
            try:
                moment = _aware(
                    datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0)), default_tz
                )
            except ValueError:
                moment = None
    if moment is None:
        plan.skipped.append(Skipped(rel, "no date (give one in front matter, e.g. "
                                         "'date: 2024-03-01', or start the file name with it)"))
        return
    tags_raw = next((meta[k] for k in _TAG_KEYS if k in meta), None)
    if isinstance(tags_raw, str):
        tags_raw = [t for t in re.split(r"[,\s]+", tags_raw) if t]
    try:
        tags = _tag_list(tags_raw, rel)
    except ImportFileError as exc:
        plan.skipped.append(Skipped(rel, str(exc).split(": ", 1)[-1]))
        return
    body = body.strip()
    title = meta.get("title")
    if isinstance(title, str) and title and not body.lstrip("# ").startswith(title):
        body = f"{title}\n\n{body}".strip()
    _checked(plan, rel, Reflection(
        id=stable_reflection_id("markdown", _text_identity(moment, body)),
        created_at=moment,
        text=body,
        tags=tags,
    ))


# --------------------------------------------------------------------------- Mirror


def _read_mirror(value: Any, where: str) -> ImportPlan:
    from .export import EXPORT_FORMAT, EXPORT_VERSION, reflection_from_json

    if not isinstance(value, dict) or value.get("format") != EXPORT_FORMAT:
        raise ImportFileError(f"{where}: not a Mirror export")
    version = value.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ImportFileError(f"{where}: export version is missing or invalid")
    if version > EXPORT_VERSION:
        raise ImportFileError(
            f"{where}: written by a newer Mirror (export version {version}); upgrade Mirror"
        )
    plan = ImportPlan("mirror")
    documents = value.get("documents")
    if documents is None:
        # A hand-made or trimmed export: its readable reflections are all there is.
        for i, item in enumerate(_req(value, "reflections", list, where)):
            at = f"{where} reflection {i + 1}"
            try:
                reflection = reflection_from_json(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise ImportFileError(f"{at}: CRDT state refused ({exc})") from None
            _checked(plan, at, reflection)
        return plan
    if not isinstance(documents, list):
        raise ImportFileError(f"{where}: 'documents' is {_jtype(documents)}, not a list")
    seen: set[str] = set()
    for i, item in enumerate(documents):
        at = f"{where} document {i + 1}"
        doc_id = _req(item, "doc_id", str, at)
        at = f"{where} document {doc_id[:60]!r}"
        if not doc_id or len(doc_id) > MAX_DOC_ID_CHARS or not doc_id.isprintable():
            raise ImportFileError(f"{at}: invalid document id")
        if doc_id in seen:
            raise ImportFileError(f"{at}: appears twice")
        seen.add(doc_id)
        kind = _req(item, "kind", str, at)
        if not kind or len(kind) > 64 or not kind.isprintable():
            raise ImportFileError(f"{at}: invalid kind")
        try:
            sync_class = SyncClass(_req(item, "sync_class", str, at))
        except ValueError:
            raise ImportFileError(f"{at}: unknown sync class") from None
        if doc_id.startswith((PRIVATE_PREFIX, LOCAL_DOC_PREFIX)) or kind == "settings":
            sync_class = SyncClass.LOCAL  # never let a file widen what stays on this device
        if is_journal_shard(doc_id) != (kind == JOURNAL_KIND):
            raise ImportFileError(f"{at}: a {kind!r} document cannot have this id")
        try:
            state = base64.b64decode(_req(item, "state", str, at), validate=True)
        except (binascii.Error, ValueError):
            raise ImportFileError(f"{at}: 'state' is not base64") from None
        ids = _check_state(doc_id, kind, state, at)
        plan.documents.append(DocumentState(doc_id, kind, sync_class, state, ids))
    return plan


def _check_state(doc_id: str, kind: str, state: bytes, at: str) -> frozenset[str]:
    """Decode *state* into a scratch document; for a journal, read every reflection."""
    scratch: Doc[Any] = Doc()
    try:
        check_map_roots(state)  # pycrdt trap 11: roots stay maps
        scratch.apply_update(state)
    except UpdateRejected as exc:
        raise ImportFileError(f"{at}: CRDT state refused ({exc})") from None
    except ValueError as exc:
        raise ImportFileError(f"{at}: CRDT state cannot be decoded ({exc})") from None
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":  # pyo3's, not an Exception (pycrdt trap 1)
            raise ImportFileError(f"{at}: CRDT state crashed the decoder") from None
        raise
    if kind != JOURNAL_KIND:
        return frozenset()
    if set(scratch.keys()) - {JOURNAL_ROOT}:
        raise ImportFileError(f"{at}: unexpected roots in a journal document")
    root: Map[Any] = scratch.get(JOURNAL_ROOT, type=Map)
    ids = []
    for rid, entry in root.items():
        if read_reflection(entry, rid) is None:
            raise ImportFileError(f"{at}: reflection {rid[:20]!r} is malformed")
        ids.append(rid)
    return frozenset(ids)


# --------------------------------------------------------------------------- writing


async def existing_reflection_ids(store: DocStore) -> set[str]:
    ids: set[str] = set()
    for info in store.documents(JOURNAL_KIND):
        stored = await store.open_doc(info.doc_id, kind=JOURNAL_KIND, create=False)
        ids |= shard_ids(stored.doc)
    return ids


async def apply_plan(
    store: DocStore,
    plan: ImportPlan,
    *,
    share_class: SyncClass = SyncClass.LOCAL,
    private: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Write *plan* into *store* (or, with *dry_run*, only say what would happen).

    Raises :class:`ImportFileError` before writing anything if a document of the
    plan exists in the store with another kind.
    """
    store.ensure_writable()
    existing = await existing_reflection_ids(store)
    if plan.documents:
        return await _apply_documents(store, plan, existing, dry_run)
    fresh: list[Reflection] = []
    seen: set[str] = set()
    present = 0
    for r in plan.reflections:
        if r.id in existing or r.id in seen:
            present += 1
            continue
        seen.add(r.id)
        fresh.append(replace(r, private=True) if private else r)
    if not dry_run and fresh:
        await _write_reflections(store, fresh, share_class)
    return ImportReport(plan.format, len(fresh), present, tuple(plan.skipped), 0, dry_run)


async def _write_reflections(
    store: DocStore, reflections: Sequence[Reflection], share_class: SyncClass
) -> None:
    by_shard: dict[str, list[Reflection]] = {}
    for r in reflections:
        by_shard.setdefault(r.shard, []).append(r)
    shards: dict[str, StoredDoc] = {}
    for doc_id in sorted(by_shard):
        cls = SyncClass.LOCAL if doc_id.startswith(PRIVATE_PREFIX) else share_class
        shards[doc_id] = await store.open_doc(doc_id, kind=JOURNAL_KIND, sync_class=cls)
    # No await from here to wait_durable: every change reaches the storage
    # thread together and is committed as one group.
    store.ensure_writable()
    for doc_id, items in by_shard.items():
        doc = shards[doc_id].doc
        with doc.transaction():
            for r in items:
                write_reflection(doc, r)
    await store.wait_durable()


async def _apply_documents(
    store: DocStore, plan: ImportPlan, existing: set[str], dry_run: bool
) -> ImportReport:
    for d in plan.documents:
        info = store.info(d.doc_id)
        if info is not None and info.kind != d.kind:
            raise ImportFileError(
                f"document {d.doc_id!r} is a {info.kind!r} here but a {d.kind!r} in the file"
            )
    incoming = set().union(*(d.reflection_ids for d in plan.documents))
    present = len(incoming & existing)
    if not dry_run:
        opened = [
            (await store.open_doc(d.doc_id, kind=d.kind, sync_class=d.sync_class), d)
            for d in plan.documents
        ]
        store.ensure_writable()
        for stored, d in opened:
            stored.doc.apply_update(d.state)
        await store.wait_durable()
    return ImportReport(
        plan.format, len(incoming) - present, present, tuple(plan.skipped),
        len(plan.documents), dry_run,
    )
