"""What the web interface can do, as JSON-ready results: its one seam to the node.

Every route of :mod:`node.ui.server` calls a method here and nothing else of the node;
each method is one operation a person can do (write, list, search, edit, delete, look
at tensions, …) and returns plain data. The operations themselves are the node's
(:class:`node.core.MirrorCore`, its journal and understanding): this module only
shapes their typed results for the browser.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crdt.journal import KIND as JOURNAL_KIND
from crdt.journal import Reflection, read_reflections

from ..core import MirrorCore
from ..engine.base import EngineNotice
from ..errors import UsageError
from .journal_view import JournalQuery, JournalView, snippet

log = logging.getLogger("mirror.ui")

MOOD_WEEKS = 26


def reflection_row(r: Reflection, words: list[str] | None = None,
                   starred: set[str] | None = None) -> dict[str, Any]:
    """A reflection as a line of the timeline."""
    return {
        "id": r.id,
        "created_at": r.created_at.isoformat(),
        "day": r.created_at.astimezone().date().isoformat(),
        "snippet": snippet(r.text, words or []),
        "tags": list(r.tags),
        "private": r.private,
        "starred": bool(starred and r.id in starred),
        "has_mirrorback": r.mirrorback is not None,
    }


def reflection_full(r: Reflection, starred: set[str] | None = None) -> dict[str, Any]:
    mb = r.mirrorback
    return {
        **reflection_row(r, starred=starred),
        "text": r.text,
        "edited_at": r.edited_at.isoformat() if r.edited_at else None,
        "mirrorback": None if mb is None else {
            "text": mb.text, "engine": mb.engine, "model": mb.model,
            "created_at": mb.created_at.isoformat(),
        },
    }


def parse_day(text: str, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: expected a date like 2026-11-01") from None


class UiBackend:
    """The operations of the web interface over one open node."""

    def __init__(self, core: MirrorCore) -> None:
        self.core = core
        self.journal_view = JournalView(self._read_all_shards, self._read_shard,
                                        self.starred_ids)

    # ------------------------------------------------------------------ plumbing

    def on_store_change(self, doc_id: str, kind: str) -> None:
        """The store's listener (inside its commit: note only)."""
        if kind == JOURNAL_KIND:
            self.journal_view.mark_stale(doc_id)

    async def _read_all_shards(self) -> dict[str, list[Reflection]]:
        return {s.doc_id: read_reflections(s.doc) for s in await self.core.journal.shards()}

    async def _read_shard(self, doc_id: str) -> list[Reflection]:
        if self.core.store.info(doc_id) is None:
            return []
        stored = await self.core.store.open_doc(doc_id, kind=JOURNAL_KIND, create=False)
        return read_reflections(stored.doc)

    async def starred_ids(self) -> set[str]:
        raw = self.core.settings.get("ui_starred", "[]")
        try:
            value = json.loads(str(raw))
        except json.JSONDecodeError:
            return set()
        return {str(v) for v in value} if isinstance(value, list) else set()

    # ------------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        config = self.core.config
        counts = await self.core.counts()
        return {
            "home": str(self.core.home.path),
            "mirror_mode": config.mirror_mode,
            "engine_mode": config.engine_mode,
            "engine": self.core.engine.name,
            "model": self.core.engine.model,
            "reflections": counts.reflections,
            "private": counts.private,
            "config_problem": None if self.core.config_problem is None
            else str(self.core.config_problem.error),
        }

    # ------------------------------------------------------------------ journal

    async def journal(self, q: JournalQuery) -> dict[str, Any]:
        page = await self.journal_view.query(q)
        starred = await self.starred_ids()
        words = q.text.split()
        return {
            "total": page.total, "everything": page.everything,
            "page": page.page, "per_page": page.per_page,
            "pages": max(1, -(-page.total // page.per_page)),
            "items": [reflection_row(r, words, starred) for r in page.items],
            "tags": [{"tag": t, "count": n} for t, n in page.tags],
        }

    async def reflection(self, rid: str) -> dict[str, Any]:
        _, r = await self.core.journal.find(rid)
        starred = await self.starred_ids()
        related = await self.core.understanding.related(r, limit=5, include_private=True)
        found = await self._findings(r)
        return {
            **reflection_full(r, starred),
            "related": [{**reflection_row(i.reflection, starred=starred),
                         "shared": list(i.related.shared)} for i in related],
            "found": found,
        }

    async def _findings(self, r: Reflection) -> list[dict[str, Any]]:
        from ..engine.extract import from_json

        raw = (await self.core.understanding.index()).get(r.id)
        if not raw:
            return []
        x = from_json(r.id, raw)
        return [{"kind": i.kind, "key": i.key, "label": i.label,
                 "poles": list(i.poles) if i.poles else None,
                 "intensity": i.intensity} for i in x.items]

    async def write(self, text: str, tags: list[str], private: bool) -> AsyncIterator[bytes]:
        """Save a reflection, then stream its mirrorback: NDJSON lines
        ``{"saved": …}``, ``{"chunk": "…"}``…, ``{"notice": "…"}``, ``{"done": …}``."""
        from ..engine.safety import assess

        reflection = await self.core.reflect(text, tags=tags, private=private)
        tier = assess(reflection.text).tier
        yield _line({"saved": reflection_full(reflection),
                     "crisis": tier})
        async for chunk in self.core.stream_mirrorback(reflection):
            if isinstance(chunk, EngineNotice):
                yield _line({"notice": chunk.text})
            else:
                yield _line({"chunk": chunk})
        _, saved = await self.core.journal.find(reflection.id)
        yield _line({"done": reflection_full(saved)})

    async def edit(self, rid: str, text: str | None, tags: list[str] | None) -> dict[str, Any]:
        updated = await self.core.edit(rid, text=text, tags=tags)
        return reflection_full(updated, await self.starred_ids())

    async def star(self, rid: str, starred: bool) -> dict[str, Any]:
        _, r = await self.core.journal.find(rid)
        ids = await self.starred_ids()
        if starred:
            ids.add(r.id)
        else:
            ids.discard(r.id)
        self.core.settings.set("ui_starred", json.dumps(sorted(ids)))
        await self.core.store.wait_durable()
        return {"id": r.id, "starred": starred}

    async def delete_preview(self, rid: str) -> dict[str, Any]:
        _, r = await self.core.journal.find(rid)
        found = await self._findings(r)
        return {
            "id": r.id, "created_at": r.created_at.isoformat(),
            "words": len(r.text.split()), "has_mirrorback": r.mirrorback is not None,
            "tags": list(r.tags), "findings": len(found),
            "removes": [
                "the reflection's text and tags",
                *(["its mirrorback"] if r.mirrorback else []),
                f"what the engine learned from it ({len(found)} findings: their counts "
                "and quotes in patterns, tensions and the graph)",
                "its words from this device's database file",
            ],
        }

    async def delete(self, rid: str) -> dict[str, Any]:
        r = await self.core.delete(rid)
        return {"id": r.id, "deleted": True}

    async def on_this_day(self) -> dict[str, Any]:
        today = datetime.now(UTC).astimezone()
        items = await self.journal_view.on_day(today.month, today.day)
        return {"date": today.date().isoformat(),
                "items": [reflection_row(r) for r in items[:20]]}

    # ------------------------------------------------------------------ understand

    async def tensions(self) -> dict[str, Any]:
        found = await self.core.understanding.tensions(everything=True)
        return {"tensions": [{
            "key": t.key, "poles": list(t.poles), "occurrences": t.occurrences,
            "intensity": t.intensity, "max_intensity": t.max_intensity, "status": t.status,
            "episodes": t.episodes, "first_seen": t.first_seen, "last_seen": t.last_seen,
            "weekly": list(t.weekly), "evidence": list(t.evidence)[:5],
        } for t in found]}

    async def patterns(self) -> dict[str, Any]:
        u = self.core.understanding
        patterns = await u.patterns(minimum=2)
        loops = await u.loops(minimum=2)
        return {
            "patterns": [asdict(p) | {"evidence": list(p.evidence)[:5]} for p in patterns],
            "loops": [{"key": lp.key, "label": lp.label, "count": lp.count,
                       "first_seen": lp.first_seen, "last_seen": lp.last_seen,
                       "dates": list(lp.dates), "evidence": list(lp.evidence)[:5]}
                      for lp in loops],
        }

    async def mood(self) -> dict[str, Any]:
        from ..cli_mood import mood_points
        from ..engine.mood import mood_weeks

        weeks = mood_weeks(await mood_points(self.core), weeks=MOOD_WEEKS, until=None)
        return {"weeks": [{"week": w.week, "start": w.start.isoformat(),
                           "reflections": w.reflections, "valence": w.valence,
                           "lowest": w.lowest, "at_risk": w.at_risk,
                           "feelings": list(w.feelings)} for w in weeks]}

    async def graph(self) -> dict[str, Any]:
        view = await self.core.understanding.graph()
        nodes = sorted(view.nodes.values(), key=lambda n: (-n.weight, n.id))
        return {
            "nodes": [{"id": n.id, "type": n.type, "label": n.label, "weight": n.weight,
                       "first_seen": n.first_seen, "last_seen": n.last_seen,
                       "edited": n.edited, "merged": list(n.merged),
                       "evidence": n.evidence[:3]} for n in nodes],
            "edges": [{"a": e.a, "b": e.b, "weight": e.weight} for e in view.edges.values()],
        }

    async def graph_edit(self, op: str, node: str, *, label: str = "",
                         into: str = "") -> dict[str, Any]:
        if op not in ("rename", "merge", "delete", "add"):
            raise UsageError(f"unknown graph edit {op!r}")
        edit = await self.core.understanding.edit_graph(op, node, label=label, into=into)
        return {"op": edit.op, "node": edit.node, "into": edit.into, "label": edit.label}

    async def evolution(self) -> dict[str, Any]:
        notes = await self.core.understanding.notes()
        return {"notes": [{"id": n["id"], "created_at": n.get("created_at", ""),
                           "since": n.get("since", ""), "until": n.get("until", ""),
                           "text": n.get("text", ""), "cites": list(n.get("cites", []))}
                          for n in reversed(notes)]}

    async def evolve(self, days: int) -> dict[str, Any]:
        since = datetime.now(UTC) - timedelta(days=max(1, min(days, 3650)))
        evolution = await self.core.understanding.evolve(since=since)
        return {"id": evolution.note_id, "text": evolution.text,
                "cites": list(evolution.note.cites)}

    # ------------------------------------------------------------------ data

    async def export(self, fmt: str) -> tuple[str, bytes]:
        """(file name, bytes) of an export of everything."""
        from crdt.export import export_json, export_markdown

        if fmt == "json":
            data = await export_json(self.core.store)
            return "mirror-export.json", json.dumps(data, ensure_ascii=False,
                                                    indent=1).encode()
        if fmt == "markdown":
            files = await export_markdown(self.core.store)
            text = "\n\n".join(files[name] for name in sorted(files))
            return "mirror-export.md", text.encode()
        raise UsageError("export format: json or markdown")

    async def settings(self) -> dict[str, Any]:
        from ..config import ENGINE_MODES, MIRROR_MODES

        c = self.core.config
        return {"mirror_mode": c.mirror_mode, "engine_mode": c.engine_mode,
                "model": c.effective_model, "api_base": c.effective_api_base,
                "mirror_modes": list(MIRROR_MODES), "engine_modes": list(ENGINE_MODES),
                "journal_sync_class": self.core.journal.share_class.value}

    async def set_mode(self, mode: str) -> dict[str, Any]:
        from ..config import MIRROR_MODES

        if mode not in MIRROR_MODES:
            raise UsageError(f"mode: one of {', '.join(MIRROR_MODES)}")
        self.core.save_config(self.core.config_to_change().with_changes(mirror_mode=mode))
        return await self.settings()

    async def test_model(self) -> dict[str, Any]:
        """Ask the engine for one mirrorback of a fixed sentence; nothing is saved."""
        from ..engine.base import MirrorbackRequest, complete_with_notices

        probe = Reflection("probe", datetime.now(UTC), "Today I went for a walk and "
                           "felt calmer afterwards.")
        text, notices = await complete_with_notices(self.core.engine,
                                                    MirrorbackRequest(probe))
        return {"engine": self.core.engine.name, "model": self.core.engine.model,
                "ok": bool(text) and not notices, "reply": text,
                "notices": [n.text for n in notices]}


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"
