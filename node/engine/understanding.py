"""Understanding: the per-reflection pipeline and the views over what it learned.

``Understanding.on_reflection(reflection)`` runs once per saved reflection:
extract (offline rules, optionally enriched by an LLM), record the extraction
in the local index, and fold it into the derived documents — the local scope
always, the shared scope only for a reflection that is not private
(``crdt.insights``: nothing learned from a private reflection may reach a
document that can sync). One transaction per document, one wait for disk.

The views (``patterns``, ``tensions``, ``graph``, ``related``, ``evolve``)
read the derived documents or the index, never the journal's texts in bulk
(reading every reflection through pycrdt costs ~0.2 s per 10,000). ``rebuild``
derives everything again from the journal, keeping the person's graph edits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crdt import DocStore, StoreError
from crdt.errors import DocumentError, ValueRangeError
from crdt.graph import EDGES, EDITS, NODES, GraphEdit, GraphView, graph_view, new_edit_id
from crdt.insights import (
    EVOLUTION_KIND,
    GRAPH_KIND,
    PATTERNS_KIND,
    TENSIONS_KIND,
    DerivedDoc,
    EngineIndex,
    Scope,
    open_derived,
)
from crdt.journal import KIND as JOURNAL_KIND
from crdt.journal import Journal, Reflection, read_one, shard_id, shard_ids
from crdt.values import format_timestamp, utc_now

from .derive import (
    DerivedState,
    PatternSummary,
    TensionSummary,
    derive_all,
    fold,
    summarize_patterns,
    summarize_tension,
)
from .evolution import EvolutionNote, compare, note_text
from .extract import Extraction, extract, from_json, slug, to_json
from .related import Related, RelatedIndex

log = logging.getLogger("mirror.engine.understanding")

TENSIONS_ROOT = "tensions"
RECURRING_ROOT = "recurring"
LOOPS_ROOT = "loops"
NOTES_ROOT = "notes"
MAX_NOTES = 100
DEFAULT_RELATED = 5

Enricher = Callable[[Reflection, Extraction], Awaitable[Extraction]]
Narrator = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class RelatedReflection:
    related: Related
    reflection: Reflection


@dataclass(frozen=True)
class Evolution:
    note: EvolutionNote
    text: str
    narrated: bool
    note_id: str


class Understanding:
    """The engine's memory of a journal. Create one per :class:`MirrorCore`."""

    def __init__(self, store: DocStore, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self.enricher: Enricher | None = None  # an LLM extraction, when configured
        self._index: EngineIndex | None = None
        self._parsed: dict[str, tuple[str, Extraction]] = {}
        self._related: RelatedIndex | None = None

    # ------------------------------------------------------------------ documents

    async def index(self) -> EngineIndex:
        if self._index is None:
            self._index = await EngineIndex.open(self.store)
        return self._index

    async def doc(self, kind: str, scope: Scope) -> DerivedDoc:
        return await open_derived(self.store, kind, scope, share_class=self.journal.share_class)

    def scopes_for(self, x: Extraction) -> tuple[Scope, ...]:
        return (Scope.LOCAL,) if x.private else (Scope.LOCAL, Scope.SHARED)

    # ------------------------------------------------------------------ per reflection

    async def on_reflection(self, reflection: Reflection) -> Extraction:
        """Learn from a newly saved reflection; durable when this returns."""
        x = extract(reflection)
        if self.enricher is not None:
            try:
                x = await self.enricher(reflection, x)
            except Exception as exc:  # the offline findings stand on their own
                log.warning("LLM extraction failed, keeping the offline one: %s", exc)
        try:
            await self.learn(x)
        except StoreError:
            raise
        except Exception:  # the reflection is saved; what was learned can be rebuilt
            log.exception("learning from reflection %s failed", reflection.id)
        return x

    async def learn(self, x: Extraction) -> None:
        index = await self.index()
        if x.rid in index:
            return  # already folded in: never count a reflection twice
        self.store.ensure_writable()
        raw = to_json(x)
        index.put(x.rid, raw)
        self._parsed[x.rid] = (raw, x)
        for scope in self.scopes_for(x):
            await self._fold(scope, x)
        if self._related is not None:
            self._related.add(x)
        await self.store.wait_durable()

    async def _fold(self, scope: Scope, x: Extraction) -> None:
        graph = await self.doc(GRAPH_KIND, scope)
        tensions = await self.doc(TENSIONS_KIND, scope)
        patterns = await self.doc(PATTERNS_KIND, scope)
        f = fold(
            x,
            node=lambda k: graph.get(NODES, k),
            edge=lambda k: graph.get(EDGES, k),
            tension=lambda k: tensions.get(TENSIONS_ROOT, k),
            recurring=lambda k: patterns.get(RECURRING_ROOT, k),
            loop=lambda k: patterns.get(LOOPS_ROOT, k),
        )
        at = format_timestamp(x.created_at)
        with graph.stored.doc.transaction():
            for k, v in f.graph_nodes.items():
                graph.put(NODES, k, v)
            for k, v in f.graph_edges.items():
                graph.put(EDGES, k, v)
            _bump_latest(graph, at)
        with tensions.stored.doc.transaction():
            for k, v in f.tensions.items():
                tensions.put(TENSIONS_ROOT, k, v)
            _bump_latest(tensions, at)
        with patterns.stored.doc.transaction():
            for k, v in f.recurring.items():
                patterns.put(RECURRING_ROOT, k, v)
            for k, v in f.loops.items():
                patterns.put(LOOPS_ROOT, k, v)
            _bump_latest(patterns, at)

    # ------------------------------------------------------------------ rebuilding

    async def rebuild(self) -> int:
        """Derive everything again from the journal (the person's edits are kept)."""
        reflections = await self.journal.all()
        extractions = [extract(r) for r in reflections]
        index = await self.index()
        self.store.ensure_writable()
        with index.stored.doc.transaction():
            for rid in index.ids():
                index.remove(rid)
            for x in extractions:
                index.put(x.rid, to_json(x))
        self._parsed.clear()
        self._related = None
        for scope in (Scope.LOCAL, Scope.SHARED):
            chosen = [x for x in extractions if scope is Scope.LOCAL or not x.private]
            await self._write_state(scope, derive_all(chosen))
        await self.store.wait_durable()
        return len(extractions)

    async def _write_state(self, scope: Scope, state: DerivedState) -> None:
        graph = await self.doc(GRAPH_KIND, scope)
        tensions = await self.doc(TENSIONS_KIND, scope)
        patterns = await self.doc(PATTERNS_KIND, scope)
        for doc, roots in (
            (graph, ((NODES, state.nodes), (EDGES, state.edges))),
            (tensions, ((TENSIONS_ROOT, state.tensions),)),
            (patterns, ((RECURRING_ROOT, state.recurring), (LOOPS_ROOT, state.loops))),
        ):
            with doc.stored.doc.transaction():
                for root, records in roots:
                    doc.clear(root)
                    for k, v in records.items():
                        doc.put(root, k, v)
                doc.set_meta("latest", state.latest)

    # ------------------------------------------------------------------ the index

    async def extractions(self, scope: Scope = Scope.LOCAL) -> list[Extraction]:
        """What the index holds for reflections still in the journal, oldest first."""
        index = await self.index()
        alive: set[str] = set()
        for shard in await self.journal.shards():
            alive |= shard_ids(shard.doc)
        out = []
        for rid, raw in index.items():
            if rid not in alive:
                continue
            cached = self._parsed.get(rid)
            if cached is None or cached[0] != raw:
                try:
                    cached = (raw, from_json(rid, raw))
                except ValueError as exc:
                    log.warning("%s", exc)
                    continue
                self._parsed[rid] = cached
            x = cached[1]
            if scope is Scope.LOCAL or not x.private:
                out.append(x)
        out.sort(key=lambda e: (e.created_at, e.rid))
        return out

    async def related_index(self) -> RelatedIndex:
        if self._related is None:
            self._related = RelatedIndex.build(await self.extractions(Scope.LOCAL))
        return self._related

    # ------------------------------------------------------------------ views

    async def patterns(
        self, scope: Scope = Scope.LOCAL, *, minimum: int = 3
    ) -> list[PatternSummary]:
        doc = await self.doc(PATTERNS_KIND, scope)
        return summarize_patterns(
            doc.records(RECURRING_ROOT), doc.records(LOOPS_ROOT), minimum=minimum
        )

    async def tensions(self, scope: Scope = Scope.LOCAL) -> list[TensionSummary]:
        doc = await self.doc(TENSIONS_KIND, scope)
        as_of = str(doc.meta("latest", "") or format_timestamp(utc_now()))
        out = [summarize_tension(r, as_of) for _, r in doc.records(TENSIONS_ROOT)]
        rank = {"recurring": 0, "emerging": 1, "fading": 2, "resolved": 3}
        out.sort(key=lambda t: (rank[t.status], -t.occurrences, t.key))
        return out

    async def graph(self, scope: Scope = Scope.LOCAL) -> GraphView:
        doc = await self.doc(GRAPH_KIND, scope)
        return graph_view(doc.records(NODES), doc.records(EDGES), doc.records(EDITS))

    async def related(
        self,
        reflection: Reflection,
        *,
        limit: int = DEFAULT_RELATED,
        include_private: bool | None = None,
    ) -> list[RelatedReflection]:
        """Past reflections most like *reflection*. A shared reflection is compared with
        shared ones only unless *include_private* says otherwise."""
        if include_private is None:
            include_private = reflection.private
        index = await self.related_index()
        raw = (await self.index()).get(reflection.id)
        x = from_json(reflection.id, raw) if raw else extract(reflection)
        out = []
        for r in index.query(x, limit=limit + 5, include_private=include_private):
            past = await self._read(r.rid)
            if past is not None and past.id != reflection.id:
                out.append(RelatedReflection(r, past))
            if len(out) >= limit:
                break
        return out

    async def _read(self, rid: str) -> Reflection | None:
        """One reflection, from the shard its index entry names (no scan of the journal)."""
        cached = self._parsed.get(rid)
        if cached is not None:
            doc_id = shard_id(cached[1].created_at, private=cached[1].private)
            if self.store.info(doc_id) is not None:
                stored = await self.store.open_doc(doc_id, kind=JOURNAL_KIND, create=False)
                found = read_one(stored.doc, rid)
                if found is not None:
                    return found
        try:
            return (await self.journal.find(rid))[1]
        except DocumentError:
            return None  # deleted since it was indexed

    async def evolve(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        narrator: Narrator | None = None,
        narrator_sees_private: bool = True,
    ) -> Evolution:
        """Compare the period from *since* with the one before; save and return the note.

        The local note may be narrated by an LLM (one that may not see private
        reflections — a remote API — is given the note of shared ones only);
        the shared scope gets a structured note computed from shared
        reflections only."""
        note = compare(await self.extractions(Scope.LOCAL), since=since, until=until)
        text, narrated = note_text(note), False
        if narrator is not None and not narrator_sees_private:
            note = compare(await self.extractions(Scope.SHARED), since=since, until=until)
            text = note_text(note)
        if narrator is not None and (note.reflections or note.previous_reflections):
            try:
                text, narrated = await narrator(text), True
            except Exception as exc:
                log.warning("narrating the evolution note failed: %s", exc)
        note_id = f"{format_timestamp(utc_now())}-{new_edit_id()}"
        await self._save_note(Scope.LOCAL, note_id, note, text, narrated)
        shared = compare(
            await self.extractions(Scope.SHARED), since=note.since, until=note.until
        )
        await self._save_note(Scope.SHARED, note_id, shared, note_text(shared), False)
        await self.store.wait_durable()
        return Evolution(note, text, narrated, note_id)

    async def _save_note(
        self, scope: Scope, note_id: str, note: EvolutionNote, text: str, narrated: bool
    ) -> None:
        doc = await self.doc(EVOLUTION_KIND, scope)
        record: dict[str, Any] = {
            "created_at": format_timestamp(utc_now()),
            "since": format_timestamp(note.since),
            "until": format_timestamp(note.until),
            "text": text,
            "narrated": narrated,
            "cites": list(note.cites),
        }
        with doc.stored.doc.transaction():
            doc.put(NOTES_ROOT, note_id, record)
            keys = sorted(k for k, _ in doc.records(NOTES_ROOT))
            for old in keys[:-MAX_NOTES]:
                doc.delete(NOTES_ROOT, old)

    async def notes(self, scope: Scope = Scope.LOCAL) -> list[dict[str, Any]]:
        doc = await self.doc(EVOLUTION_KIND, scope)
        return [{"id": k, **r} for k, r in sorted(doc.records(NOTES_ROOT))]

    # ------------------------------------------------------------------ the person's edits

    async def edit_graph(
        self, op: str, node: str, *, into: str = "", label: str = "", type: str = ""
    ) -> GraphEdit:
        """Record the person's edit of their graph. Extraction never overwrites it."""
        local = await self.graph(Scope.LOCAL)
        at = format_timestamp(utc_now())
        if op == "add":
            if not label.strip():
                raise ValueRangeError("a new node needs a label")
            kind = slug(type or "user").replace(" ", "-") or "user"
            node_id = f"{kind}:{slug(label)}"
            edit = GraphEdit("add", node_id, at, label=label.strip(), type=kind)
        else:
            node_id = resolve_node(local, node)
            if op == "rename":
                if not label.strip():
                    raise ValueRangeError("rename needs the new label")
                edit = GraphEdit("rename", node_id, at, label=label.strip())
            elif op == "merge":
                target = resolve_node(local, into)
                if target == node_id:
                    raise ValueRangeError("a node cannot be merged into itself")
                edit = GraphEdit("merge", node_id, at, into=target)
            elif op == "delete":
                edit = GraphEdit("delete", node_id, at)
            else:
                raise ValueRangeError(f"unknown graph edit {op!r}")
        edit_id = new_edit_id()
        self.store.ensure_writable()
        (await self.doc(GRAPH_KIND, Scope.LOCAL)).put(EDITS, edit_id, edit.record())
        # The shared graph gets the edit only when what it names is already there:
        # an edit of a node learned from a private reflection stays home.
        shared = await self.graph(Scope.SHARED)
        needed = [edit.node] if edit.op != "merge" else [edit.node, edit.into]
        if edit.op == "add" or all(n in shared.nodes for n in needed):
            (await self.doc(GRAPH_KIND, Scope.SHARED)).put(EDITS, edit_id, edit.record())
        await self.store.wait_durable()
        return edit


def resolve_node(view: GraphView, ref: str) -> str:
    """A node by id (``theme:work``), by label or key (case-insensitive), unique."""
    ref = ref.strip()
    if ref in view.nodes:
        return ref
    low = ref.lower()
    hits = [n.id for n in view.nodes.values() if n.label.lower() == low]
    if not hits:
        hits = [n.id for n in view.nodes.values() if n.id.split(":", 1)[-1] == low]
    if not hits:
        raise DocumentError(f"no node {ref!r} in the graph (see: mirror graph)")
    if len(hits) > 1:
        raise DocumentError(f"{ref!r} names {len(hits)} nodes ({', '.join(sorted(hits))}); "
                            "give the full id")
    return hits[0]


def _bump_latest(doc: DerivedDoc, at: str) -> None:
    current = doc.meta("latest", "")
    if not isinstance(current, str) or at > current:
        doc.set_meta("latest", at)


def scope_of(private: bool) -> Scope:
    return Scope.LOCAL if private else Scope.SHARED


__all__: Sequence[str] = (
    "Evolution",
    "RelatedReflection",
    "Understanding",
    "resolve_node",
)
