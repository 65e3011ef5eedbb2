"""Vectors of spec/documents.md (``documents.json``).

A journal shard with two reflections (one with tags and a mirrorback, one
edited) and the three derived documents of two hand-made extractions (graph
with one of the person's edits, tensions, patterns) plus an evolution note. Each
document is given as JSON (what a Yjs library shows for its roots) and as a
Yjs v1 update written with a pinned client id, with what a reader derives from
it. The records come from the reference's own writers (``crdt.journal``,
``node.engine.derive``), so a change to a schema changes these vectors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pycrdt import Doc, Map

from crdt.graph import EDGES, EDITS, NODES, GraphEdit, graph_view
from crdt.insights import ID_FIELD, record_slot
from crdt.journal import (
    ROOT,
    Mirrorback,
    Reflection,
    read_reflections,
    replace_text,
    write_reflection,
)
from crdt.values import format_timestamp
from node.engine.derive import derive_all
from node.engine.extract import Evidence, Extraction, Item, Loop, from_json, to_json
from node.engine.lived import lived_loops, summarize_patterns, summarize_tension

CLIENT_ID = 0x6A6F75
FIRST_TEXT = "Work felt heavy today; I wanted rest but kept going."
SECOND_TEXT = "Calmer about work now. 🌿 A long walk helped."


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def sorted_json(value: Any) -> Any:
    """JSON with object keys sorted (a Yjs map has no order)."""
    if isinstance(value, dict):
        return {k: sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_json(v) for v in value]
    return value


def _view(doc: Doc[Any], roots: tuple[str, ...]) -> dict[str, Any]:
    return sorted_json({root: doc.get(root, type=Map).to_py() for root in roots})


class Stable:
    """Keeps the update bytes of the previous vectors where they still decode to the
    same document: pycrdt encodes the keys of a plain (Any) object in a random order
    per process, so equal documents need not give equal bytes, and vectors should
    not change when nothing did."""

    def __init__(self, previous: dict[str, Any] | None) -> None:
        self.previous = previous or {}

    def update(self, doc: Doc[Any], roots: tuple[str, ...], *path: str) -> str:
        old: Any = self.previous
        for step in path:
            old = old.get(step, {}) if isinstance(old, dict) else {}
        fresh = doc.get_update().hex()
        if isinstance(old, str) and old != fresh:
            copy: Doc[Any] = Doc()
            copy.apply_update(bytes.fromhex(old))
            if _view(copy, roots) == _view(doc, roots):
                return old
        return fresh


def journal_shard(stable: Stable) -> dict[str, Any]:
    doc: Doc[Any] = Doc(client_id=CLIENT_ID)
    first = Reflection(
        id="7k2m9xdq4r1a", created_at=_at("2024-05-03T08:15:00.123Z"),
        text=FIRST_TEXT, tags=("work", "rest"),
        mirrorback=Mirrorback("You kept going while part of you asked for rest.", "offline",
                              "", _at("2024-05-03T08:15:02.000Z")),
    )
    second = Reflection(
        id="h3n8p0wz6c2e", created_at=_at("2024-05-20T19:40:00.000Z"),
        text="Calmer about work now. A walk helped.",
    )
    write_reflection(doc, first)
    write_reflection(doc, second)
    with doc.transaction():  # an edit, as Journal.edit makes it
        entry = doc.get(ROOT, type=Map)[second.id]
        replace_text(entry["text"], SECOND_TEXT)
        entry["edited_at"] = "2024-05-21T07:00:00.000Z"
    reflections = sorted(read_reflections(doc), key=lambda r: r.id)
    return {
        "doc_id": first.shard, "kind": "journal", "client_id": CLIENT_ID,
        "json": _view(doc, (ROOT,)),
        "update": stable.update(doc, (ROOT,), "journal", "update"),
        "reflections": [
            {"id": r.id, "created_at": format_timestamp(r.created_at), "text": r.text,
             "tags": list(r.tags), "private": r.private,
             "edited_at": format_timestamp(r.edited_at) if r.edited_at else None,
             "mirrorback": r.mirrorback.text if r.mirrorback else None}
            for r in reflections
        ],
    }


def extractions() -> list[Extraction]:
    one, two = "7k2m9xdq4r1a", "h3n8p0wz6c2e"

    def ev(rid: str, text: str, words: str, quote: str) -> Evidence:
        """Evidence for *words* (offsets in code points into *text*), quoting *quote*."""
        start = text.index(words)
        return Evidence(rid, quote, start, start + len(words))

    q2a, q2b = "Calmer about work now.", "🌿 A long walk helped."
    return [
        Extraction(
            one, _at("2024-05-03T08:15:00.123Z"), False,
            items=(
                Item("theme", "work", "work", ev(one, FIRST_TEXT, "Work", FIRST_TEXT)),
                Item("emotion", "tired", "tired", ev(one, FIRST_TEXT, "heavy", FIRST_TEXT)),
                Item("tension", "rest vs duty", "rest vs duty",
                     ev(one, FIRST_TEXT, "rest but kept going", FIRST_TEXT),
                     poles=("rest", "duty"), intensity=3),
            ),
            loops=(Loop("theme:work", "emotion:tired",
                        ev(one, FIRST_TEXT, "Work felt heavy", FIRST_TEXT)),),
            terms=("work", "heavy", "rest"),
        ),
        Extraction(
            two, _at("2024-05-20T19:40:00.000Z"), False,
            items=(
                Item("theme", "work", "work", ev(two, SECOND_TEXT, "work", q2a)),
                Item("emotion", "calm", "calm", ev(two, SECOND_TEXT, "Calmer", q2a)),
            ),
            loops=(Loop("theme:work", "behaviour:walk", ev(two, SECOND_TEXT, "walk", q2b)),),
            terms=("calm", "work", "walk"),
        ),
    ]


def derived_documents(stable: Stable) -> dict[str, Any]:
    state = derive_all(extractions())
    # What the index keeps is enough to derive the same records again.
    again = derive_all([from_json(x.rid, to_json(x)) for x in extractions()])
    assert (again.nodes, again.edges, again.tensions, again.recurring, again.loops) == (
        state.nodes, state.edges, state.tensions, state.recurring, state.loops)
    edit = GraphEdit("rename", "theme:work", "2024-06-01T12:00:00.000Z", label="my work")
    out: dict[str, Any] = {}
    for kind, roots in (
        ("identity-graph", {NODES: state.nodes, EDGES: state.edges,
                            EDITS: {"a1b2c3d4e5f6": edit.record()}}),
        ("tensions", {"tensions": state.tensions}),
        ("patterns", {"recurring": state.recurring, "loops": state.loops}),
    ):
        doc: Doc[Any] = Doc(client_id=CLIENT_ID)
        with doc.transaction():
            for root, records in roots.items():
                target = doc.get(root, type=Map)
                for key, record in records.items():  # keyed by digest, named inside
                    target[record_slot(key)] = Map({**dict(record), ID_FIELD: key})
            doc.get("meta", type=Map)["latest"] = state.latest
        names = (*roots, "meta")
        out[kind] = {"doc_id": kind, "local_scope_id": f"local/{kind}", "client_id": CLIENT_ID,
                     "json": _view(doc, names),
                     "update": stable.update(doc, names, "derived", kind, "update")}
    view = graph_view(state.nodes.items(), state.edges.items(),
                      [("a1b2c3d4e5f6", edit.record())])
    out["identity-graph"]["view"] = {
        "nodes": {n.id: {"label": n.label, "weight": n.weight} for n in view.nodes.values()},
        "edges": {k: e.weight for k, e in view.edges.items()},
    }
    tension = summarize_tension(state.tensions["rest vs duty"], state.latest)
    out["tensions"]["summary"] = {"key": tension.key, "status": tension.status,
                                  "episodes": tension.episodes,
                                  "intensity": tension.intensity}
    out["patterns"]["summary"] = [
        {"kind": p.kind, "key": p.key, "label": p.label, "count": p.count}
        for p in summarize_patterns(state.recurring.items(),
                                     lived_loops(state.loops.items(), minimum=2), minimum=2)
    ]
    note: Doc[Any] = Doc(client_id=CLIENT_ID)
    with note.transaction():
        note_id = "2024-06-01T12:00:00.000Z-0a1b2c3d4e5f"
        note.get("notes", type=Map)[record_slot(note_id)] = Map({"id": note_id,
            "created_at": "2024-06-01T12:00:00.000Z", "since": "2024-05-02T19:40:01.000Z",
            "until": "2024-06-01T19:40:01.000Z", "text": "Work came up in 2 reflections.",
            "narrated": False, "cites": ["7k2m9xdq4r1a", "h3n8p0wz6c2e"]})
    out["evolution"] = {"doc_id": "evolution", "local_scope_id": "local/evolution",
                        "client_id": CLIENT_ID, "json": _view(note, ("notes",)),
                        "update": stable.update(note, ("notes",), "derived", "evolution",
                                                "update")}
    return out


def document_vectors(previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The vectors; *previous* (the file as it was) keeps update bytes stable. The
    derived documents are what the engine derives from 'engine_index' (the index
    entries of the journal's two reflections)."""
    stable = Stable(previous)
    return {
        "description": "Document schemas (spec/documents.md): a journal shard and derived "
        "documents as JSON and as Yjs v1 updates (pinned client id), with what a reader "
        "derives. Numbers come back from pycrdt as floats (3 reads 3.0).",
        "journal": journal_shard(stable),
        "derived": derived_documents(stable),
        "engine_index": {"doc_id": "local/engine-index", "root": "entries",
                         "entries": {x.rid: to_json(x) for x in extractions()}},
    }
