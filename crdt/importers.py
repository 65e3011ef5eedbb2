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

import stat
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from .import_formats import (
    _dayone_journal,
    _markdown_file,
    _read_dayone_zip,
    _read_jrnl,
    _read_markdown_folder,
    _read_mirror,
)
from .import_plan import (
    ImportFileError,
    ImportLimits,
    ImportPlan,
    ImportReport,
    _parse_json,
    _read_capped,
)
from .journal import KIND, PRIVATE_PREFIX, Reflection, shard_ids, write_reflection
from .store import DocStore, StoredDoc
from .sync_class import SyncClass

JOURNAL_KIND = KIND

FORMATS = ("dayone", "jrnl", "markdown", "mirror")


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
        if len(data) > limits.max_markdown_file_bytes:  # as for each file of a folder
            raise ImportFileError(
                f"{path}: {len(data)} bytes is more than the "
                f"{limits.max_markdown_file_bytes} a Markdown file may have"
            )
        plan = ImportPlan("markdown")
        _markdown_file(plan, path.name, data, default_tz)
        return plan
    value = _parse_json(data, path.name)
    if fmt == "auto":
        fmt = _detect_json(value, path.name)
    if fmt == "mirror":
        return _read_mirror(value, path.name, limits)
    if fmt == "dayone":
        plan = ImportPlan("dayone")
        _dayone_journal(plan, value, path.name, limits)
        return plan
    if fmt == "jrnl":
        return _read_jrnl(value, path.name, default_tz, limits)
    raise ImportFileError(f"{path}: a {fmt} import reads a folder or a .md file")


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
