"""The export schema: everything in a store, as JSON or as readable Markdown.

JSON (``format: "mirror-export"``, ``version: 1``) carries each reflection in
readable form *and* every document's full CRDT state (base64), so an export
loses nothing and can be imported back. Markdown is for people: one file per
month.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from .journal import Journal, Reflection
from .store import DocStore
from .values import format_timestamp, utc_now

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
        "mirrorback": None
        if r.mirrorback is None
        else {
            "text": r.mirrorback.text,
            "engine": r.mirrorback.engine,
            "model": r.mirrorback.model,
            "created_at": format_timestamp(r.mirrorback.created_at),
        },
    }


async def export_json(store: DocStore) -> dict[str, Any]:
    """Everything in *store*: reflections, plus every document's CRDT state."""
    await store.wait_durable()
    journal = Journal(store)
    reflections = await journal.all()
    documents = []
    for info in store.documents():
        stored = await store.open_doc(info.doc_id, kind=info.kind, create=False)
        documents.append(
            {
                "doc_id": info.doc_id,
                "kind": info.kind,
                "sync_class": info.sync_class.value,
                "state": base64.b64encode(stored.doc.get_update()).decode("ascii"),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": format_timestamp(utc_now()),
        "reflections": [reflection_to_json(r) for r in reflections],
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
