"""What the web interface can do, as JSON-ready results: its one seam to the node.

Every route of :mod:`node.ui.server` calls a method here, and this module calls only
the application layer (:class:`node.app.Mirror`, :class:`node.app.browse.Browse`) —
the same operations the CLI and the REPL use. It only shapes their typed results for
the browser.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crdt.journal import Reflection

from ..app import Mirror, PairingOffer
from ..app.browse import Browse
from ..app.timeline import JournalQuery, snippet
from ..config import ENGINE_MODES, MIRROR_MODES, parse_host_port
from ..engine.base import EngineNotice
from ..errors import UsageError

log = logging.getLogger("mirror.ui")

MOOD_WEEKS = 26
EVIDENCE_SHOWN = 5


def reflection_row(r: Reflection, words: list[str] | None = None) -> dict[str, Any]:
    """A reflection as a line of the timeline."""
    return {
        "id": r.id,
        "created_at": r.created_at.isoformat(),
        "day": r.created_at.astimezone().date().isoformat(),
        "snippet": snippet(r.text, words or []),
        "tags": list(r.tags),
        "private": r.private,
        "starred": r.starred,
        "has_mirrorback": r.mirrorback is not None,
    }


def reflection_full(r: Reflection) -> dict[str, Any]:
    mb = r.mirrorback
    return {
        **reflection_row(r),
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


def _evidence(items: Any) -> list[dict[str, Any]]:
    return [dict(e) for e in list(items)[:EVIDENCE_SHOWN]]


class UiBackend:
    """The operations of the web interface over one open home."""

    def __init__(self, mirror: Mirror,
                 publish: Callable[[dict[str, Any]], None] = lambda event: None) -> None:
        self.mirror = mirror
        self.browse = Browse(mirror)
        self.publish = publish
        self.pairing: dict[str, Any] = {"state": "idle"}

    def on_store_change(self, doc_id: str, kind: str) -> None:
        """The store's listener (inside its commit: note only)."""
        self.browse.on_change(doc_id, kind)

    # ------------------------------------------------------------------ status

    async def status(self) -> dict[str, Any]:
        s = await self.mirror.status()
        return {
            "home": str(s.home), "mirror_mode": s.mirror_mode, "engine_mode": s.engine_mode,
            "engine": s.engine, "reflections": s.reflections, "private": s.private_reflections,
            "config_problem": None if s.config_problem is None else str(s.config_problem.error),
        }

    # ------------------------------------------------------------------ journal

    async def journal(self, q: JournalQuery) -> dict[str, Any]:
        page = await self.browse.timeline.query(q)
        words = q.text.split()
        return {
            "total": page.total, "everything": page.everything,
            "page": page.page, "per_page": page.per_page,
            "pages": max(1, -(-page.total // page.per_page)),
            "items": [reflection_row(r, words) for r in page.items],
            "tags": [{"tag": t, "count": n} for t, n in page.tags],
        }

    async def reflection(self, rid: str) -> dict[str, Any]:
        r = await self.mirror.find(rid)
        related = await self.mirror.related(r.id, limit=5)
        found = await self.browse.findings(r)
        return {
            **reflection_full(r),
            "related": [{**reflection_row(i.reflection),
                         "shared": list(i.related.shared)} for i in related.items],
            "found": [{"kind": f.kind, "key": f.key, "label": f.label,
                       "poles": list(f.poles) if f.poles else None,
                       "intensity": f.intensity} for f in found],
        }

    async def write(self, text: str, tags: list[str], private: bool) -> AsyncIterator[bytes]:
        """Save a reflection, then stream its mirrorback: NDJSON lines
        ``{"saved": …, "crisis": tier}``, ``{"chunk": "…"}``…, ``{"notice": "…"}``,
        ``{"done": …}``."""
        reflection = await self.mirror.save(text, tags=tags, private=private)
        safety = self.mirror.safety(reflection.text)
        yield _line({"saved": reflection_full(reflection),
                     "crisis": None if safety is None else safety.tier})
        async for chunk in self.mirror.stream_mirrorback(reflection):
            if isinstance(chunk, EngineNotice):
                yield _line({"notice": chunk.text})
            else:
                yield _line({"chunk": chunk})
        saved = await self.mirror.find(reflection.id)
        yield _line({"done": reflection_full(saved)})

    async def edit(self, rid: str, text: str | None, tags: list[str] | None) -> dict[str, Any]:
        result = await self.mirror.edit(rid, text=text, tags=tags)
        out = reflection_full(result.after)
        out["scrub_problem"] = None if result.scrub is None else result.scrub.problem
        return out

    async def star(self, rid: str, starred: bool) -> dict[str, Any]:
        r = await self.mirror.star(rid, starred)
        return {"id": r.id, "starred": r.starred}

    async def delete_preview(self, rid: str) -> dict[str, Any]:
        p = await self.browse.delete_preview(rid)
        r = p.reflection
        return {"id": r.id, "created_at": r.created_at.isoformat(),
                "words": len(r.text.split()), "has_mirrorback": r.mirrorback is not None,
                "tags": list(r.tags), "findings": p.findings, "removes": list(p.removes)}

    async def delete(self, rid: str) -> dict[str, Any]:
        result = await self.mirror.delete(rid)
        return {"id": result.reflection.id, "deleted": True,
                "scrub_problem": result.scrub.problem}

    async def on_this_day(self) -> dict[str, Any]:
        items = await self.browse.on_this_day()
        return {"date": datetime.now(UTC).astimezone().date().isoformat(),
                "items": [reflection_row(r) for r in items[:20]]}

    # ------------------------------------------------------------------ understand

    async def tensions(self) -> dict[str, Any]:
        found = await self.mirror.tensions(everything=True)
        return {"tensions": [{
            "key": t.key, "poles": list(t.poles), "occurrences": t.occurrences,
            "intensity": t.intensity, "max_intensity": t.max_intensity, "status": t.status,
            "episodes": t.episodes, "first_seen": t.first_seen, "last_seen": t.last_seen,
            "weekly": list(t.weekly), "evidence": _evidence(t.evidence),
        } for t in found]}

    async def patterns(self) -> dict[str, Any]:
        patterns = await self.mirror.patterns(minimum=2)
        loops = await self.mirror.loops(minimum=2)
        return {
            "patterns": [{"kind": p.kind, "key": p.key, "label": p.label, "count": p.count,
                          "first_seen": p.first_seen, "last_seen": p.last_seen,
                          "evidence": _evidence(p.evidence)} for p in patterns],
            "loops": [{"key": lp.key, "label": lp.label, "count": lp.count,
                       "first_seen": lp.first_seen, "last_seen": lp.last_seen,
                       "dates": list(lp.dates), "evidence": _evidence(lp.evidence)}
                      for lp in loops],
        }

    async def mood(self) -> dict[str, Any]:
        weeks = await self.browse.mood(MOOD_WEEKS)
        return {"weeks": [{"week": w.week, "start": w.start.isoformat(),
                           "reflections": w.reflections, "valence": w.valence,
                           "lowest": w.lowest, "at_risk": w.at_risk,
                           "feelings": list(w.feelings)} for w in weeks]}

    async def graph(self) -> dict[str, Any]:
        view = await self.mirror.graph()
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
        edit = await self.mirror.edit_graph(op, node, label=label, into=into)
        return {"op": edit.op, "node": edit.node, "into": edit.into, "label": edit.label}

    async def evolution(self) -> dict[str, Any]:
        notes = await self.browse.evolution_notes()
        return {"notes": [{"id": n["id"], "created_at": n.get("created_at", ""),
                           "since": n.get("since", ""), "until": n.get("until", ""),
                           "text": n.get("text", ""), "cites": list(n.get("cites", []))}
                          for n in notes]}

    async def evolve(self, days: int) -> dict[str, Any]:
        since = datetime.now(UTC) - timedelta(days=max(1, min(days, 3650)))
        result = await self.mirror.evolve(since=since)
        evolution = result.evolution
        return {"id": evolution.note_id, "text": evolution.text,
                "cites": list(evolution.note.cites)}

    # ------------------------------------------------------------------ devices and sync

    async def devices(self) -> dict[str, Any]:
        devices = await self.mirror.devices()
        sync = await self.mirror.sync_status()
        return {
            "devices": [asdict(d) for d in devices],
            "sync": {"enabled": sync.sync_enabled, "serving": sync.serving,
                     "listening": sync.listening, "pending": sync.pending,
                     "peers": [dict(p) for p in sync.peers],
                     "shared_documents": list(sync.shared_documents)},
            "journal_shared": self.mirror.core.journal.share_class.value == "devices",
            "pairing": dict(self.pairing),
        }

    async def remove_device(self, ref: str) -> dict[str, Any]:
        removed = await self.mirror.remove_device(ref)
        return {"device_id": removed.device_id, "name": removed.name, "epoch": removed.epoch}

    async def share_journal(self, shared: bool) -> dict[str, Any]:
        result = await self.mirror.share("journal", "devices" if shared else "local")
        return {"what": result.what, "sync_class": result.sync_class,
                "changed": list(result.changed)}

    def _pairing_update(self, **state: Any) -> None:
        self.pairing = state
        self.publish({"type": "pairing", **state})

    async def offer_pairing(self, on_shown: Callable[[dict[str, Any]], None]) -> None:
        """Run one pairing offer (in the server's nursery); *on_shown* gets the code."""

        def shown(offer: PairingOffer) -> None:
            self._pairing_update(state="waiting", code=offer.code, address=offer.address,
                                 timeout_s=offer.timeout_s)
            on_shown(dict(self.pairing))

        try:
            outcome = await self.mirror.pair(shown)
        except Exception as exc:
            self._pairing_update(state="failed", failure=str(exc))
            raise
        if outcome.joined_id is not None:
            self._pairing_update(state="joined", name=outcome.joined_name,
                                 device_id=outcome.joined_id,
                                 attempts=[a.description for a in outcome.others])
        else:
            self._pairing_update(state="failed",
                                 failure=outcome.failure or "no device joined in time; "
                                 "the code is void", attempts=[a.description
                                                               for a in outcome.others])

    async def join(self, code: str, address: str, name: str) -> dict[str, Any]:

        where = parse_host_port(address, what="address") if address else None
        outcome = await self.mirror.join(code, address=where, name=name or None)
        return {"devices": outcome.devices, "through_relay": outcome.through_relay}

    # ------------------------------------------------------------------ commons

    async def commons(self) -> dict[str, Any]:
        items, published = await self.browse.commons()
        return {
            "items": [asdict(i) for i in items],
            "published": [asdict(e) for e in published],
        }

    # ------------------------------------------------------------------ data

    async def import_preview(self, data: bytes, name: str, fmt: str) -> dict[str, Any]:
        upload, report = await self.browse.import_preview(data, name, fmt)
        return {"upload": upload, **report.as_json()}

    async def import_upload(self, upload: str, fmt: str, private: bool) -> dict[str, Any]:
        report = await self.browse.import_upload(upload, fmt, private)
        return dict(report.as_json())

    async def export(self, fmt: str) -> tuple[str, bytes]:
        return await self.browse.export_bytes(fmt)

    async def settings(self) -> dict[str, Any]:

        c = self.mirror.settings().config
        return {"mirror_mode": c.mirror_mode, "engine_mode": c.engine_mode,
                "model": c.effective_model if c.engine_mode != "offline" else "",
                "api_base": c.effective_api_base if c.engine_mode != "offline" else "",
                "mirror_modes": list(MIRROR_MODES), "engine_modes": list(ENGINE_MODES)}

    async def set_mode(self, mode: str) -> dict[str, Any]:
        await self.mirror.set_mode(mode)
        return await self.settings()

    async def test_model(self) -> dict[str, Any]:
        t = await self.browse.test_model()
        return {"engine": t.engine, "model": t.model, "ok": t.ok, "reply": t.reply,
                "notices": list(t.notices)}


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"
