"""The format readers of an import: Day One (JSON or zip), jrnl JSON, Markdown, Mirror's export.

Each reader checks its whole input and fills an :class:`~crdt.import_plan.ImportPlan`,
or raises :class:`~crdt.import_plan.ImportFileError`; :func:`crdt.importers.read_source`
picks the reader (its module docstring has the theory of operation).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pycrdt import Doc, Map

from .export import EXPORT_FORMAT, EXPORT_VERSION, reflection_from_json
from .import_plan import (
    DocumentState,
    ImportFileError,
    ImportLimits,
    ImportPlan,
    Skipped,
    _checked,
    _dated,
    _jtype,
    _opt,
    _parse_datetime,
    _parse_json,
    _read_capped,
    _req,
    _tag_list,
    _text_identity,
    stable_reflection_id,
)
from .journal import KIND, PRIVATE_PREFIX, ROOT, Reflection, is_journal_shard, read_reflection
from .sync_class import SyncClass
from .update_check import UpdateRejected, check_map_roots
from .values import is_valid_doc_id

log = logging.getLogger("mirror.import")

JOURNAL_KIND, JOURNAL_ROOT = KIND, ROOT

LOCAL_DOC_PREFIX = "local/"


# --------------------------------------------------------------------------- Day One


_DAYONE_MOMENT = re.compile(r"!\[[^\]]*\]\(dayone-moment:/+[^)]*\)")
_DAYONE_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|~])")


def _dayone_text(raw: str) -> tuple[str, int]:
    """Day One's Markdown with its backslash escapes undone and photo links removed."""
    text, photos = _DAYONE_MOMENT.subn("", raw)
    return _DAYONE_ESCAPE.sub(r"\1", text), photos


def _entries(value: Any, where: str, limits: ImportLimits) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects of *value*'s ``entries`` list, each with where it is (Day One, jrnl)."""
    entries = _req(value, "entries", list, where)
    if len(entries) > limits.max_entries:
        raise ImportFileError(f"{where}: more than {limits.max_entries} entries")
    for i, entry in enumerate(entries):
        at = f"{where} entry {i + 1}"
        if not isinstance(entry, dict):
            raise ImportFileError(f"{at}: expected an object, found {_jtype(entry)}")
        yield at, entry


def _dayone_journal(plan: ImportPlan, value: Any, where: str, limits: ImportLimits) -> None:
    for at, entry in _entries(value, where, limits):
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
            starred=entry.get("starred") is True,  # Day One and jrnl both call it so
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
        entries = 0  # read, not accepted: skipped entries count against the limit too
        for info in journals:
            raw = _read_member(archive, info, path, limits, total)
            total += len(raw)
            value = _parse_json(raw, info.filename)
            entries += len(_req(value, "entries", list, info.filename))
            if entries > limits.max_entries:
                raise ImportFileError(
                    f"{path}: more than {limits.max_entries} entries in its journals together"
                )
            _dayone_journal(plan, value, info.filename, limits)
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
    for at, entry in _entries(value, where, limits):
        day = _req(entry, "date", str, at)
        clock = _opt(entry, "time", str, at) or "00:00"
        try:
            moment = datetime.combine(date.fromisoformat(day.strip()),
                                      time.fromisoformat(clock.strip()))
        except ValueError:
            raise ImportFileError(f"{at}: cannot read the date {day[:20]!r} {clock[:10]!r}")\
                from None
        created = _dated(moment, day, at, default_tz)
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
            starred=entry.get("starred") is True,  # Day One and jrnl both call it so
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
        try:
            size = path.stat().st_size
        except OSError as exc:  # removed or unreadable since the folder was listed
            raise ImportFileError(f"{path}: cannot read ({exc.strerror})") from None
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
                named = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0))
            except ValueError:
                named = None  # not a date after all
            if named is not None:
                try:
                    moment = _dated(named, match.group(0), rel, default_tz)
                except ImportFileError as exc:
                    plan.skipped.append(Skipped(rel, str(exc).removeprefix(f"{rel}: ")))
                    return
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


def _read_mirror(value: Any, where: str, limits: ImportLimits) -> ImportPlan:
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
        items = _req(value, "reflections", list, where)
        if len(items) > limits.max_entries:
            raise ImportFileError(f"{where}: more than {limits.max_entries} reflections")
        for i, item in enumerate(items):
            at = f"{where} reflection {i + 1}"
            try:
                reflection = reflection_from_json(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise ImportFileError(f"{at}: CRDT state refused ({exc})") from None
            _checked(plan, at, reflection)
        return plan
    if not isinstance(documents, list):
        raise ImportFileError(f"{where}: 'documents' is {_jtype(documents)}, not a list")
    if len(documents) > limits.max_documents:
        raise ImportFileError(f"{where}: more than {limits.max_documents} documents")
    seen: set[str] = set()
    reflections = 0
    for i, item in enumerate(documents):
        at = f"{where} document {i + 1}"
        doc_id = _req(item, "doc_id", str, at)
        at = f"{where} document {doc_id[:60]!r}"
        if not is_valid_doc_id(doc_id):
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
        reflections += len(ids)
        if reflections > limits.max_entries:  # as for every other format
            raise ImportFileError(f"{where}: more than {limits.max_entries} reflections")
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
