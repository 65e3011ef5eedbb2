"""Understanding: the per-reflection pipeline and the views over what it learned.

``Understanding.on_reflection(reflection)`` runs once per saved reflection:
extract (offline rules, optionally enriched by an LLM), record the extraction
in the local index, and fold it into the derived documents — the local scope
always, the shared scope only for a reflection that is not private
(``crdt.insights``: nothing learned from a private reflection may reach a
document that can sync). One transaction per document, one wait for disk.

``on_delete`` and ``on_edit`` take a reflection back out at once: its index
entry goes (an edited one gets the current engine's extraction), and every
derived record it touched — named by its stored extraction, or quoting it as
evidence — is derived again from the stored extractions of the reflections
still in the journal (``derive.Touched``), in the scopes it reached. No other
reflection is extracted again and no model is asked, except that a reflection
the index never held (it came from another device or an import) gets an
offline extraction, as ``rebuild`` would give it. So those records equal what
``rebuild`` writes; no other record changes, and the person's graph edits
stay. Index entries of reflections that left the journal another way (deleted
on another device, a crash between the journal's delete and this) go in the
same pass. A deleted record's content (quotes, labels) is gone from the
document's state; its key stays behind as a CRDT map tombstone.

The views (``patterns``, ``tensions``, ``graph``, ``related``, ``evolve``)
read the derived documents or the index, never the journal's texts in bulk
(reading every reflection through pycrdt costs ~0.2 s per 10,000). ``rebuild``
derives everything again from the journal, keeping the person's graph edits.

Two processes (or devices) folding into one record at once can leave its
count short until the record is derived again (a delete or edit that touches
it, or ``rebuild``): the index, one key per reflection, merges without loss;
the records, counters updated in place, do not.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

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
from crdt.journal import (
    Journal,
    Reflection,
    read_one,
    reflection_times,
    shard_id,
    shard_ids,
)
from crdt.store import StoredDoc
from crdt.values import format_timestamp, parse_timestamp, utc_now

from .ask import MAX_RETRIEVED, Retrieved, citations_for, read_question, retrieve
from .derive import DerivedState, Touched, cites, derive_all, fold
from .evidence import cited, extraction_holds, quotes_hold, stale_records
from .evolution import EvolutionNote, compare, note_text
from .extract import Extraction, extract, from_json, slug, to_json
from .lived import (
    LoopSummary,
    PatternSummary,
    TensionSummary,
    lived_loops,
    lived_tensions,
    summarize_patterns,
)
from .loops import MAX_LINK
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
        # learning, forgetting and rebuilding each read records, then write them
        self._lock = trio.Lock()

    # ------------------------------------------------------------------ documents

    async def index(self) -> EngineIndex:
        if self._index is None:
            self._index = await EngineIndex.open(self.store)
        return self._index

    async def doc(self, kind: str, scope: Scope) -> DerivedDoc:
        return await open_derived(self.store, kind, scope, share_class=self.journal.share_class)

    async def _docs(self, scope: Scope) -> tuple[DerivedDoc, DerivedDoc, DerivedDoc]:
        """The graph, tensions and patterns documents of *scope*."""
        return (
            await self.doc(GRAPH_KIND, scope),
            await self.doc(TENSIONS_KIND, scope),
            await self.doc(PATTERNS_KIND, scope),
        )

    def scopes_for(self, x: Extraction) -> tuple[Scope, ...]:
        return (Scope.LOCAL,) if x.private else (Scope.LOCAL, Scope.SHARED)

    # ------------------------------------------------------------------ per reflection

    async def _previous(self, reflection: Reflection) -> Reflection | None:
        """The reflection written just before *reflection*, if within ``loops.MAX_LINK``
        (reads the times of the shards of those days, then that one reflection)."""
        wanted = {shard_id(moment, private=p) for p in (False, True)
                  for moment in (reflection.created_at, reflection.created_at - MAX_LINK)}
        mine = format_timestamp(reflection.created_at)
        earliest = format_timestamp(reflection.created_at - MAX_LINK)
        best: tuple[str, str, StoredDoc] | None = None
        for info in self.store.documents(JOURNAL_KIND):
            if info.doc_id not in wanted:
                continue
            stored = await self.store.open_doc(info.doc_id, kind=JOURNAL_KIND, create=False)
            for rid, at in reflection_times(stored.doc):
                if earliest <= at < mine and rid != reflection.id and (
                    best is None or at > best[0]
                ):
                    best = (at, rid, stored)
        return read_one(best[2].doc, best[1]) if best is not None else None

    async def _extract(self, reflection: Reflection) -> Extraction:
        x = extract(reflection, previous=await self._previous(reflection))
        if self.enricher is not None:
            try:
                x = await self.enricher(reflection, x)
            except Exception as exc:  # the offline findings stand on their own
                log.warning("LLM extraction failed, keeping the offline one: %s", exc)
        return x

    async def on_reflection(self, reflection: Reflection) -> Extraction:
        """Learn from a newly saved reflection; durable when this returns."""
        x = await self._extract(reflection)
        try:
            await self.learn(x)
        except StoreError:
            raise
        except Exception:  # the reflection is saved; what was learned can be rebuilt
            log.exception("learning from reflection %s failed", reflection.id)
        return x

    async def learn(self, x: Extraction) -> None:
        async with self._lock:
            await self._learn(x)

    async def _learn(self, x: Extraction) -> None:
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
        graph, tensions, patterns = await self._docs(scope)
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
        async with self._lock:
            return await self._rebuild()

    async def _rebuild(self) -> int:
        reflections = await self.journal.all()  # oldest first
        extractions = [
            extract(r, previous=reflections[i - 1] if i else None)
            for i, r in enumerate(reflections)
        ]
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
        graph, tensions, patterns = await self._docs(scope)
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

    # ------------------------------------------------------------------ forgetting

    async def on_delete(self, reflection: Reflection) -> None:
        """Forget *reflection*, just deleted from the journal: its index entry, and
        its share of every derived record. Durable when this returns."""
        async with self._lock:
            await self._relearn([reflection], [])

    async def forget_gone(self) -> None:
        """Forget every indexed reflection that is no longer in the journal (deleted
        on another device, say): its index entry and its share of every derived
        record. Durable when this returns."""
        async with self._lock:
            await self._relearn([], [])

    async def on_edit(self, before: Reflection, after: Reflection) -> Extraction:
        """Learn an edited reflection again (*before* is how it read): its old
        findings go, the current engine's come in. Durable when this returns."""
        x = await self._extract(after)
        async with self._lock:
            await self._relearn([before], [x])
        return x

    async def evidence_in(self, only: Mapping[Scope, Touched]) -> set[tuple[str, str | None]]:
        """(reflection id, quote) of the evidence the records of *only* hold here now.

        Read right after this process folded into them, before it looks at the
        file again, this is what it wrote, whichever write the merge keeps."""
        cited_now: set[tuple[str, str | None]] = set()
        for scope, touched in only.items():
            graph, tensions, patterns = await self._docs(scope)
            for doc, root, keys in ((graph, NODES, touched.nodes), (graph, EDGES, touched.edges),
                                    (tensions, TENSIONS_ROOT, touched.tensions),
                                    (patterns, RECURRING_ROOT, touched.recurring),
                                    (patterns, LOOPS_ROOT, touched.loops)):
                for key in keys:
                    value = doc.entry(root, key)
                    if value is not None:
                        cited_now.update(cited(value.get("evidence")))
        return cited_now

    async def evidence_holds(self, evidence: Set[tuple[str, str | None]]) -> bool:
        """Whether every (reflection id, quote) is still in the journal as quoted."""
        alive = {rid: s for s in await self.journal.shards() for rid in shard_ids(s.doc)}

        def text_of(rid: str) -> str | None:
            shard = alive.get(rid)
            found = read_one(shard.doc, rid) if shard is not None else None
            return found.text if found is not None else None

        return all(quotes_hold(rid, quote, text_of) for rid, quote in evidence)

    async def repair_stale(self, only: Mapping[Scope, Touched] | None = None) -> bool:
        """Derive again every record (of *only*, else every one) whose evidence names
        a reflection no longer in the journal or quotes words it no longer has:
        what this or another process or device folded from a journal it had not
        yet seen change (node/engine/evidence.py). An index entry that misquotes
        its reflection is extracted again, offline, as ``rebuild`` would. True if
        anything was written (durable then); the caller scrubs the file."""
        async with self._lock:
            index = await self.index()
            alive = {rid: s for s in await self.journal.shards() for rid in shard_ids(s.doc)}
            texts: dict[str, str | None] = {}

            def text_of(rid: str) -> str | None:
                if rid not in texts:
                    shard = alive.get(rid)
                    found = read_one(shard.doc, rid) if shard is not None else None
                    texts[rid] = found.text if found is not None else None
                return texts[rid]

            stale: dict[Scope, Touched] = {}
            misquoted: set[str] = set()
            for scope in Scope:
                if only is not None and scope not in only:
                    continue
                graph, tensions, patterns = await self._docs(scope)
                roots = {"nodes": (graph, NODES), "edges": (graph, EDGES),
                         "tensions": (tensions, TENSIONS_ROOT),
                         "recurring": (patterns, RECURRING_ROOT),
                         "loops": (patterns, LOOPS_ROOT)}
                wanted = only.get(scope) if only is not None else None
                records = {
                    name: (list(doc.entries(root)) if wanted is None else
                           [(k, doc.entry(root, k)) for k in sorted(getattr(wanted, name))])
                    for name, (doc, root) in roots.items()
                }
                found = stale_records(records, text_of, misquoted)
                if found:
                    stale[scope] = found
            fresh = []
            for rid in sorted(misquoted):
                raw = index.get(rid)
                x = self._parse(rid, raw) if raw is not None else None
                if x is None or not extraction_holds(x, text_of):
                    reflection = read_one(alive[rid].doc, rid)
                    if reflection is not None:
                        fresh.append(extract(reflection))
            if not stale and not fresh:
                return False
            log.info("deriving %d records again: their evidence quoted what the journal "
                     "no longer says", sum(_count(t) for t in stale.values()))
            await self._relearn([], fresh, stale)
            return True

    async def _relearn(
        self,
        leaving: Sequence[Reflection],
        new: Sequence[Extraction],
        stale: Mapping[Scope, Touched] | None = None,
    ) -> None:
        """Take *leaving* (and any indexed reflection no longer in the journal) out of
        the index, put *new* in, and derive every record they touch again (and the
        *stale* ones)."""
        index = await self.index()
        shards = await self.journal.shards()
        docs = {scope: await self._docs(scope) for scope in Scope}
        notes = {scope: await self.doc(EVOLUTION_KIND, scope) for scope in Scope}
        self.store.ensure_writable()
        # Nothing awaits from here to the writes: no other task folds in between.
        alive = {rid: shard for shard in shards for rid in shard_ids(shard.doc)}
        stored = {rid: x for rid, raw in index.items() if (x := self._parse(rid, raw))}
        fresh = {x.rid: x for x in new if x.rid in alive}
        going = {rid for rid in index.ids() if rid not in alive}
        going |= {r.id for r in leaving} | set(fresh)
        old = [stored[rid] for rid in going if rid in stored]
        old += [extract(r) for r in leaving if r.id not in stored]  # never indexed here
        touched: dict[Scope, Touched] = dict(stale or {})
        for x in (*old, *fresh.values()):
            for scope in self.scopes_for(x):
                touched[scope] = touched.get(scope, Touched()) | Touched.of(x)
        for scope, (graph, tensions, patterns) in docs.items():
            quoting = Touched(  # evidence must go even where the extraction missed it
                _citing(graph, NODES, going), _citing(graph, EDGES, going),
                _citing(tensions, TENSIONS_ROOT, going),
                _citing(patterns, RECURRING_ROOT, going), _citing(patterns, LOOPS_ROOT, going),
            )
            if quoting:
                touched[scope] = touched.get(scope, Touched()) | quoting
        remaining = [x for rid, x in stored.items() if rid in alive and rid not in fresh]
        remaining += fresh.values()
        if touched:  # what the index never held is extracted as rebuild would
            for rid, shard in alive.items():
                if rid not in stored and rid not in fresh:
                    r = read_one(shard.doc, rid)
                    if r is not None:
                        remaining.append(extract(r))
        states = {}
        for scope, only in touched.items():
            chosen = [x for x in remaining if scope is Scope.LOCAL or not x.private]
            states[scope] = derive_all([x for x in chosen if only.meets(x)], only=only)
            states[scope].latest = max(
                (format_timestamp(x.created_at) for x in chosen), default=""
            )
        with index.stored.doc.transaction():
            for rid in going:
                index.remove(rid)
            for x in fresh.values():
                index.put(x.rid, to_json(x))
        for scope, state in states.items():
            _write_touched(docs[scope], touched[scope], state)
        if going:  # a note that counted or quoted a reflection now gone is told again
            moments = [x.created_at for x in old]
            for scope, doc in notes.items():
                chosen = [x for x in remaining if scope is Scope.LOCAL or not x.private]
                _revise_notes(doc, going, moments, chosen)
        for rid in going:
            self._parsed.pop(rid, None)
        self._related = None  # rebuilt from the index when next asked
        await self.store.wait_durable()

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
            x = self._parse(rid, raw)
            if x is not None and (scope is Scope.LOCAL or not x.private):
                out.append(x)
        out.sort(key=lambda e: (e.created_at, e.rid))
        return out

    def _parse(self, rid: str, raw: str) -> Extraction | None:
        """An index entry, parsed once per process (None if malformed)."""
        cached = self._parsed.get(rid)
        if cached is None or cached[0] != raw:
            try:
                cached = (raw, from_json(rid, raw))
            except ValueError as exc:
                log.warning("%s", exc)
                return None
            self._parsed[rid] = cached
        return cached[1]

    async def related_index(self) -> RelatedIndex:
        if self._related is None:
            self._related = RelatedIndex.build(await self.extractions(Scope.LOCAL))
        return self._related

    # ------------------------------------------------------------------ views

    async def patterns(
        self, scope: Scope = Scope.LOCAL, *, minimum: int = 3
    ) -> list[PatternSummary]:
        """Recurring themes, feelings, people, values and beliefs, then loops."""
        doc = await self.doc(PATTERNS_KIND, scope)
        loops = lived_loops(doc.records(LOOPS_ROOT), minimum=minimum)
        return summarize_patterns(doc.records(RECURRING_ROOT), loops, minimum=minimum)

    async def loops(self, scope: Scope = Scope.LOCAL, *, minimum: int = 3) -> list[LoopSummary]:
        """trigger → response → consequence loops run at least *minimum* times."""
        doc = await self.doc(PATTERNS_KIND, scope)
        return lived_loops(doc.records(LOOPS_ROOT), minimum=minimum)

    async def tensions(
        self, scope: Scope = Scope.LOCAL, *, everything: bool = False
    ) -> list[TensionSummary]:
        """The tensions lived (``lived``), or with *everything* every one read."""
        doc = await self.doc(TENSIONS_KIND, scope)
        as_of = str(doc.meta("latest", "") or format_timestamp(utc_now()))
        return lived_tensions(doc.records(TENSIONS_ROOT), as_of, everything=everything)

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

    async def ask(
        self, text: str, *, now: datetime | None = None, include_private: bool = True
    ) -> Retrieved:
        """The reflections that answer the question *text* (``ask``), read from the
        index and their shards; *now* places "last week" and the like."""
        q = read_question(text, now=now or utc_now().astimezone())
        found = retrieve(q, await self.extractions(Scope.LOCAL), await self.related_index(),
                         include_private=include_private)
        reflections: dict[str, Reflection] = {}
        for x in found[:MAX_RETRIEVED]:
            r = await self._read(x.rid)
            if r is not None:
                reflections[r.id] = r
        shown = [x for x in found[:MAX_RETRIEVED] if x.rid in reflections]
        cites = citations_for(q, shown, reflections)
        return Retrieved(q, tuple(reflections[x.rid] for x in shown), tuple(cites), len(found))

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


def _citing(doc: DerivedDoc, root: str, rids: Set[str]) -> frozenset[str]:
    """Keys of the records of *root* whose evidence quotes one of *rids*."""
    return frozenset(
        key for key, value in doc.entries(root) if cites(value.get("evidence"), rids)
    )


def _revise_notes(
    doc: DerivedDoc, going: Set[str], moments: Sequence[datetime], remaining: Sequence[Extraction]
) -> int:
    """Tell again, offline, every evolution note whose periods held a reflection of
    *going* (written at one of *moments*) or that cites one: its text (narrated or
    not) may name what was deleted or edited. Returns how many were told again."""
    revised = 0
    with doc.stored.doc.transaction():
        for note_id, record in list(doc.records(NOTES_ROOT)):
            try:
                since = parse_timestamp(str(record["since"]))
                until = parse_timestamp(str(record["until"]))
            except (KeyError, ValueError):
                continue
            earliest = since - (until - since)
            cites = set(record.get("cites") or ())
            if not (cites & going or any(earliest <= m < until for m in moments)):
                continue
            note = compare(remaining, since=since, until=until)
            doc.put(NOTES_ROOT, note_id, {**record, "text": note_text(note), "narrated": False,
                                         "cites": list(note.cites),
                                         "revised_at": format_timestamp(utc_now())})
            revised += 1
    return revised


def _write_touched(
    docs: tuple[DerivedDoc, DerivedDoc, DerivedDoc], only: Touched, state: DerivedState
) -> None:
    """Replace the records named in *only* by those of *state*; one it lacks is gone."""
    graph, tensions, patterns = docs
    for doc, roots in (
        (graph, ((NODES, only.nodes, state.nodes), (EDGES, only.edges, state.edges))),
        (tensions, ((TENSIONS_ROOT, only.tensions, state.tensions),)),
        (patterns, ((RECURRING_ROOT, only.recurring, state.recurring),
                    (LOOPS_ROOT, only.loops, state.loops))),
    ):
        with doc.stored.doc.transaction():
            for root, keys, records in roots:
                for key in sorted(keys):
                    if key in records:
                        doc.put(root, key, records[key])
                    else:
                        doc.delete(root, key)
            doc.set_meta("latest", state.latest)


def _count(touched: Touched) -> int:
    return sum(len(keys) for keys in (touched.nodes, touched.edges, touched.tensions,
                                      touched.recurring, touched.loops))


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
