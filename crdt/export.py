"""The export schema: everything in a store, as JSON or as readable Markdown.

JSON (``format: "mirror-export"``, ``version: 1``) carries each reflection in
readable form, the settings, *and* every document — journal shards, the
engine's derived documents (identity graph, tensions, patterns, evolution
notes), settings, membership — with its id, kind, sync class, a readable view
of its content and its full CRDT state (base64). The CRDT state is what an
import uses, so an export loses nothing and imports back exactly; the readable
parts are for people and other programs. Export does not need to know the
kinds: every document in the store is carried the same way. Markdown is for
people: one file per month.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from pycrdt import Doc, Map

from .journal import Journal, Mirrorback, Reflection
from .store import DocStore
from .values import format_timestamp, parse_timestamp, utc_now

EXPORT_FORMAT = "mirror-export"
EXPORT_VERSION = 1


def reflection_to_json(r: Reflection) -> dict[str, Any]:
    return {
        "id": r.id,
        "created_at": format_timestamp(r.created_at),
        "text": r.text,
        "tags": list(r.tags),
        "private": r.private,
        "edited_at": format_timestamp(r.edited_at) if r.edited_at else None,
        "starred": r.starred,
        "mirrorback": None
        if r.mirrorback is None
        else {
            "text": r.mirrorback.text,
            "engine": r.mirrorback.engine,
            "model": r.mirrorback.model,
            "created_at": format_timestamp(r.mirrorback.created_at),
        },
    }


def reflection_from_json(data: Any) -> Reflection:
    """The inverse of :func:`reflection_to_json`.

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` for data that does not fit."""
    if not isinstance(data, dict):
        raise TypeError("a reflection must be an object")
    text, rid = data["text"], data["id"]
    if not isinstance(text, str) or not isinstance(rid, str) or not rid:
        raise TypeError("'id' and 'text' must be text")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TypeError("'tags' must be a list of text")
    mb = data.get("mirrorback")
    mirrorback = None
    if mb is not None:
        if not isinstance(mb, dict) or not isinstance(mb.get("text"), str):
            raise TypeError("'mirrorback' must be an object with text")
        mirrorback = Mirrorback(
            text=mb["text"],
            engine=str(mb.get("engine", "")),
            model=str(mb.get("model", "")),
            created_at=parse_timestamp(str(mb["created_at"])),
        )
    edited = data.get("edited_at")
    return Reflection(
        id=rid,
        created_at=parse_timestamp(str(data["created_at"])),
        text=text,
        tags=tuple(tags),
        private=bool(data.get("private", False)),
        mirrorback=mirrorback,
        edited_at=parse_timestamp(edited) if isinstance(edited, str) else None,
        starred=data.get("starred") is True,
    )


def readable_content(state: bytes) -> dict[str, Any]:
    """Each root of a document as plain JSON values.

    Read from a scratch copy, each root as a map: the roots of an update carry
    no type until read, every Mirror document kind uses map roots, and reading
    another type as a map is safe (reading it as an array is not, notes/pycrdt.md
    trap 11). The CRDT state stays the authority; this view is for people.
    """
    scratch: Doc[Any] = Doc()
    scratch.apply_update(state)
    out: dict[str, Any] = {}
    for name in sorted(scratch.keys()):
        out[name] = scratch.get(name, type=Map).to_py()
    return out


async def export_json(store: DocStore) -> dict[str, Any]:
    """Everything in *store*: reflections, settings, and every document with its CRDT state."""
    await store.wait_durable()
    journal = Journal(store)
    reflections = await journal.all()
    documents = []
    settings: dict[str, Any] = {}
    for info in store.documents():
        stored = await store.open_doc(info.doc_id, kind=info.kind, create=False)
        state = stored.doc.get_update()
        content = readable_content(state)
        if info.kind == "settings":
            settings.update(content.get("settings") or {})
        documents.append(
            {
                "doc_id": info.doc_id,
                "kind": info.kind,
                "sync_class": info.sync_class.value,
                "content": content,
                "state": base64.b64encode(state).decode("ascii"),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": format_timestamp(utc_now()),
        "reflections": [reflection_to_json(r) for r in reflections],
        "settings": settings,
        "documents": documents,
    }


def _markdown_entry(r: Reflection) -> str:
    lines = [f"## {r.created_at:%Y-%m-%d %H:%M} UTC · `{r.id}`", ""]
    meta = []
    if r.tags:
        meta.append("tags: " + ", ".join(f"#{t}" for t in r.tags))
    if r.private:
        meta.append("private")
    if r.edited_at:
        meta.append(f"edited {r.edited_at:%Y-%m-%d %H:%M} UTC")
    if meta:
        lines += ["*" + " · ".join(meta) + "*", ""]
    lines += [r.text, ""]
    if r.mirrorback is not None:
        quoted = "\n".join(f"> {ln}" if ln else ">" for ln in r.mirrorback.text.splitlines())
        lines += [f"**Mirrorback** ({r.mirrorback.engine}):", "", quoted, ""]
    return "\n".join(lines)


async def export_markdown(store: DocStore) -> dict[str, str]:
    """File name → Markdown text, one file per month, oldest entry first."""
    await store.wait_durable()
    by_month: dict[str, list[Reflection]] = defaultdict(list)
    for r in await Journal(store).all():
        by_month[f"{r.created_at:%Y-%m}"].append(r)
    files = {}
    for month, items in sorted(by_month.items()):
        body = "\n".join(_markdown_entry(r) for r in items)
        files[f"{month}.md"] = f"# Reflections · {month}\n\n{body}"
    return files
