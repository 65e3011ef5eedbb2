"""Deleting or editing a reflection takes what the engine learned from it back out.

Counts, evidence, first/last seen and statuses a reflection contributed leave
the derived documents at once (no ``mirror reindex``), and what is left equals
what a reindex would write. The oracle for "what a reindex would write" is
``derive_all`` over a fresh offline extraction of the journal — exactly what
``Understanding.rebuild`` writes — and ``rebuild`` itself where the store may
be rewritten.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crdt.graph import EDGES, EDITS, NODES
from crdt.insights import GRAPH_KIND, INDEX_DOC_ID, PATTERNS_KIND, TENSIONS_KIND, Scope
from crdt.journal import Reflection
from node.core import MirrorCore, open_core
from node.engine.derive import Touched, derive_all
from node.engine.extract import extract, to_json
from node.engine.understanding import LOOPS_ROOT, RECURRING_ROOT, TENSIONS_ROOT
from node.home import Home
from tests.helpers import run_mirror
from tests.test_engine_understanding import fixture_reflections

CANARY = "Quillfeather"
DAY0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
ROOTS = {
    NODES: (GRAPH_KIND, "nodes"),
    EDGES: (GRAPH_KIND, "edges"),
    TENSIONS_ROOT: (TENSIONS_KIND, "tensions"),
    RECURRING_ROOT: (PATTERNS_KIND, "recurring"),
    LOOPS_ROOT: (PATTERNS_KIND, "loops"),
}


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[MirrorCore]:
    home = Home(tmp_path / "home")
    home.ensure()
    async with open_core(home) as c:
        yield c


async def derived(core: MirrorCore, scope: Scope) -> dict[str, Any]:
    """Every extracted record of *scope* as stored, and the newest date seen."""
    u = core.understanding
    out: dict[str, Any] = {}
    for root, (kind, field) in ROOTS.items():
        out[field] = dict((await u.doc(kind, scope)).records(root))
    out["latest"] = {kind: (await u.doc(kind, scope)).meta("latest", "")
                     for kind in (GRAPH_KIND, TENSIONS_KIND, PATTERNS_KIND)}
    return out


def reindexed(reflections: list[Reflection], scope: Scope) -> dict[str, Any]:
    """What ``mirror reindex`` writes for *scope* from these reflections."""
    state = derive_all(
        [extract(r) for r in reflections if scope is Scope.LOCAL or not r.private]
    )
    return {
        "nodes": state.nodes, "edges": state.edges, "tensions": state.tensions,
        "recurring": state.recurring, "loops": state.loops,
        "latest": dict.fromkeys((GRAPH_KIND, TENSIONS_KIND, PATTERNS_KIND), state.latest),
    }


async def assert_as_reindexed(core: MirrorCore) -> None:
    journal = await core.journal.all()
    for scope in Scope:
        assert await derived(core, scope) == reindexed(journal, scope), scope
    assert (await core.understanding.index()).ids() == {r.id for r in journal}


async def derived_bytes(core: MirrorCore) -> list[tuple[str, bytes]]:
    """The full state of the index and of every derived document, as pycrdt encodes it.
    A deleted record's content is gone from it; its key stays as a map tombstone."""
    out = []
    for doc_id in [INDEX_DOC_ID, *(f"{p}{k}" for p in ("", "local/")
                                   for k in (GRAPH_KIND, TENSIONS_KIND, PATTERNS_KIND))]:
        info = core.store.info(doc_id)
        assert info is not None, doc_id
        stored = await core.store.open_doc(doc_id, kind=info.kind, create=False)
        out.append((doc_id, stored.doc.get_update()))
    return out


async def reflect_days(core: MirrorCore, texts: list[str], **kw: Any) -> list[Reflection]:
    return [await core.reflect(t, at=DAY0 + timedelta(days=i), **kw) for i, t in enumerate(texts)]


# --------------------------------------------------------------------------- deleting


async def test_deleting_the_only_reflection_about_someone_forgets_them(
    core: MirrorCore,
) -> None:
    u = core.understanding
    kept = await reflect_days(core, [
        "My boss moved the deadline and I feel anxious about work.",
        "I went for a long walk in the park and felt calm.",
    ])
    gone = await core.reflect(
        f"Lunch with {CANARY}; my boss moved the deadline and I feel angry.",
        at=DAY0 + timedelta(days=5),
    )
    assert "person:quillfeather" in (await u.graph()).nodes
    await core.delete(gone.id)
    view = await u.graph()
    assert "person:quillfeather" not in view.nodes and "emotion:anger" not in view.nodes
    assert all("person:quillfeather" not in (e.a, e.b) for e in view.edges.values())
    patterns = {p.key: p for p in await u.patterns(minimum=1)}
    assert "person:quillfeather" not in patterns
    assert "person:quillfeather -> emotion:anger" not in patterns
    boss = patterns["person:my boss"]
    assert boss.count == 1 and [e["rid"] for e in boss.evidence] == [kept[0].id]
    assert boss.last_seen == boss.first_seen  # it was last seen in the deleted one
    for doc_id, data in await derived_bytes(core):  # the quote and the label, as bytes
        assert CANARY.encode() not in data, doc_id
    await assert_as_reindexed(core)


async def test_deleting_one_of_several_drops_its_count_and_its_quote(core: MirrorCore) -> None:
    u = core.understanding
    texts = [
        "My boss moved the deadline again and I feel anxious. I want to quit, but I have "
        "to pay the rent.",
        f"My boss called about the {CANARY} report and I feel anxious. I want to quit, but "
        "I have to pay the rent.",
        "My boss was short with me and I feel anxious. I want to quit, but I have to pay "
        "the rent.",
    ]
    r = await reflect_days(core, texts)
    before = {p.key: p for p in await u.patterns(minimum=1) if p.count == 3}
    tensions = {t.key: t for t in await u.tensions()}
    assert "person:my boss" in before and len(before) >= 3
    tension = next(k for k, t in tensions.items() if t.occurrences == 3)
    edge = next(k for k, e in (await u.graph()).edges.items() if e.weight == 3)

    await core.delete(r[1].id[:6])
    after = {p.key: p for p in await u.patterns(minimum=1)}
    for key, p in before.items():
        assert after[key].count == p.count - 1, key
        assert r[1].id not in {e["rid"] for e in after[key].evidence}, key
    t = {t.key: t for t in await u.tensions()}[tension]
    assert t.occurrences == 2 and r[1].id not in {e["rid"] for e in t.evidence}
    view = await u.graph()
    assert view.edges[edge].weight == 2 and r[1].id not in view.edges[edge].evidence
    assert all(r[1].id not in {e["rid"] for e in n.evidence} for n in view.nodes.values())
    for doc_id, data in await derived_bytes(core):
        assert CANARY.encode() not in data, doc_id
    await assert_as_reindexed(core)

    await core.delete(r[2].id)  # the newest: last seen and the tension's status move back
    boss = {p.key: p for p in await u.patterns(minimum=1)}["person:my boss"]
    assert boss.count == 1 and boss.last_seen == boss.first_seen
    await assert_as_reindexed(core)


async def test_a_private_reflection_is_forgotten_and_the_shared_scope_is_left_alone(
    core: MirrorCore,
) -> None:
    u = core.understanding
    await reflect_days(core, ["Work again and I feel tired.", "Work, and my sister called."])
    shared_before = await derived(core, Scope.SHARED)
    secret = await core.reflect(f"Lunch with {CANARY} and I feel ashamed.", private=True,
                                at=DAY0 + timedelta(days=9))
    assert any(CANARY.lower() in p.key for p in await u.patterns(minimum=1))
    await core.delete(secret.id)
    assert not any(CANARY.lower() in p.key for p in await u.patterns(minimum=1))
    assert await derived(core, Scope.SHARED) == shared_before
    await assert_as_reindexed(core)


# --------------------------------------------------------------------------- editing


async def test_editing_a_theme_out_moves_its_count_to_the_new_one(core: MirrorCore) -> None:
    u = core.understanding
    r = await reflect_days(core, [
        "Money is tight and I keep checking my bank account.",
        "Money again: the rent went up and I feel anxious.",
        "Money, money. I skipped lunch to save and I feel anxious.",
    ])
    assert {p.key: p.count for p in await u.patterns()}["theme:money"] == 3
    graph_before = await u.graph()
    await core.edit(r[1].id, text="I went for a long walk in the park and felt calm.")
    patterns = {p.key: p for p in await u.patterns(minimum=1)}
    assert patterns["theme:money"].count == 2
    assert r[1].id not in {e["rid"] for e in patterns["theme:money"].evidence}
    assert patterns["theme:nature"].count == 1
    assert patterns["theme:nature"].evidence[0]["rid"] == r[1].id
    assert patterns["theme:nature"].first_seen == patterns["theme:nature"].last_seen
    assert "theme:money" not in {p.key for p in await u.patterns()}  # below three now
    assert graph_before.nodes["theme:money"].weight == 3
    assert (await u.graph()).nodes["theme:money"].weight == 2
    index_entry = (await u.index()).get(r[1].id)
    assert index_entry is not None and "rent" not in index_entry and "park" in index_entry
    await assert_as_reindexed(core)
    await core.edit(r[1].id, tags=["walks"])  # tags only: the findings stay the same
    await assert_as_reindexed(core)


# --------------------------------------------------------------------------- equal to a reindex


async def test_any_mix_of_deletes_and_edits_equals_a_reindex(core: MirrorCore) -> None:
    """The fixture journal (private reflections included), learned by a reindex, then
    seeded deletes and edits: after each, every derived record of both scopes is what
    a reindex would write. The person's graph edits stay, and survive a real reindex."""
    u = core.understanding
    await core.journal.add_many(fixture_reflections())
    await u.rebuild()
    await u.edit_graph("rename", "work", label="the job")
    edits = dict((await u.doc(GRAPH_KIND, Scope.LOCAL)).records(EDITS))
    texts = [r.text for r in fixture_reflections()]
    rng = random.Random(11)
    for _ in range(12):
        victim = rng.choice(await core.journal.all())
        if rng.random() < 0.5:
            await core.delete(victim.id)
        else:
            await core.edit(victim.id, text=rng.choice(texts))
        await assert_as_reindexed(core)
    assert dict((await u.doc(GRAPH_KIND, Scope.LOCAL)).records(EDITS)) == edits
    assert (await u.graph()).nodes["theme:work"].label == "the job"
    evolve_from_index = await u.extractions()
    assert [x.rid for x in evolve_from_index] == [r.id for r in await core.journal.all()]
    snapshot = {scope: await derived(core, scope) for scope in Scope}
    await u.rebuild()
    assert {scope: await derived(core, scope) for scope in Scope} == snapshot
    assert dict((await u.doc(GRAPH_KIND, Scope.LOCAL)).records(EDITS)) == edits


def test_a_record_depends_only_on_the_reflections_that_touch_it() -> None:
    """``derive_all(..., only=...)`` over just the extractions that meet those records
    equals deriving everything, for those records."""
    items = [extract(r) for r in fixture_reflections()]
    full = derive_all(items)
    for x in items[::3]:
        only = Touched.of(x)
        part = derive_all([y for y in items if only.meets(y)], only=only)
        assert part.nodes == {k: full.nodes[k] for k in only.nodes}
        assert part.edges == {k: full.edges[k] for k in only.edges}
        assert part.tensions == {k: full.tensions[k] for k in only.tensions}
        assert part.recurring == {k: full.recurring[k] for k in only.recurring}
        assert part.loops == {k: full.loops[k] for k in only.loops}


# --------------------------------------------------------------------------- behind its back


async def test_a_reflection_deleted_behind_the_engines_back_goes_with_the_next_delete(
    core: MirrorCore,
) -> None:
    """Deleted by another device, or a crash between the journal's delete and the
    engine's: its index entry and its share go with the next delete or edit."""
    r = await reflect_days(core, [
        f"{CANARY} moved the deadline and I feel anxious.",
        "Work again and I feel tired.",
        "Work, and my sister called.",
    ])
    await core.journal.delete(r[0].id)  # the journal only
    await core.delete(r[2].id)
    assert "person:quillfeather" not in (await core.understanding.graph()).nodes
    await assert_as_reindexed(core)


async def test_reflections_the_index_never_held_count_as_a_reindex_counts_them(
    core: MirrorCore,
) -> None:
    """Reflections that arrived from another device or an import (not learned here):
    the records a delete derives again include them, as a reindex would, and a
    reflection never learned here is still taken out of what it touched."""
    learned = await reflect_days(core, ["Work again and I feel tired.",
                                        "Work, and my sister called."])
    arrived = [Reflection(f"zz{i:010d}", DAY0 + timedelta(days=3 + i),
                          f"Work at night. {CANARY} called and I feel tired.")
               for i in range(3)]
    await core.journal.add_many(arrived)
    await core.delete(learned[0].id)
    work = {p.key: p for p in await core.understanding.patterns(minimum=1)}["theme:work"]
    assert work.count == 4
    assert "person:quillfeather" not in (await core.understanding.graph()).nodes  # untouched
    await core.delete(arrived[0].id)  # never in the index: extracted to find what it touched
    work = {p.key: p for p in await core.understanding.patterns(minimum=1)}["theme:work"]
    assert work.count == 3 and arrived[0].id not in {e["rid"] for e in work.evidence}


async def test_its_evidence_goes_even_where_its_index_entry_does_not_name_the_record(
    core: MirrorCore,
) -> None:
    """A record can quote a reflection its index entry no longer names (an entry
    written by another engine, a record folded on another device): every record
    quoting it is derived again too."""
    u = core.understanding
    kept = await core.reflect("Work again and I feel tired.", at=DAY0)
    gone = await core.reflect(f"Lunch with {CANARY}; work again and I feel tired.",
                              at=DAY0 + timedelta(days=1))
    index = await u.index()
    x = extract(gone)
    index.put(gone.id, to_json(replace(x, items=x.items[:1], loops=())))
    await core.delete(gone.id)
    view = await u.graph()
    assert "person:quillfeather" not in view.nodes
    assert all(gone.id not in {e["rid"] for e in n.evidence} for n in view.nodes.values())
    assert view.nodes["theme:work"].weight == 1
    assert [e["rid"] for e in view.nodes["theme:work"].evidence] == [kept.id]
    for doc_id, data in await derived_bytes(core):
        assert CANARY.encode() not in data, doc_id
    await assert_as_reindexed(core)


# --------------------------------------------------------------------------- the commands


def test_mirror_delete_and_edit_take_effect_without_reindex(tmp_path: Path) -> None:
    home = tmp_path / "home"
    texts = ["My boss moved the deadline and I feel anxious.",
             f"My boss and {CANARY} argued and I feel anxious.",
             "My boss praised me and I feel anxious anyway."]
    for day, text in enumerate(texts, start=2):
        out = run_mirror(home, "reflect", "--no-mirrorback", "--at", f"2026-03-0{day}", text)
        assert out.returncode == 0, out.stderr
    listed = json.loads(run_mirror(home, "list", "--json").stdout)
    ids = [r["id"] for r in listed]

    def patterns() -> dict[str, Any]:
        out = run_mirror(home, "patterns", "--min", "1", "--json")
        assert out.returncode == 0, out.stderr
        return {p["key"]: p for p in json.loads(out.stdout)}

    assert patterns()["person:my boss"]["count"] == 3
    out = run_mirror(home, "delete", ids[1][:6], "--yes")
    assert out.returncode == 0 and out.stdout.strip() == f"deleted {ids[1]}", out.stderr
    found = patterns()
    assert found["person:my boss"]["count"] == 2 and "person:quillfeather" not in found
    assert CANARY not in run_mirror(home, "graph", "--json").stdout
    out = run_mirror(home, "edit", ids[2][:6], "--text", "A long walk in the park; calm.")
    assert out.returncode == 0, out.stderr
    found = patterns()
    assert found["person:my boss"]["count"] == 1 and found["theme:nature"]["count"] == 1
    assert "deletes and edits need none" in run_mirror(home, "reindex", "--help").stdout


# --------------------------------------------------------------------------- the file


def _home_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def test_deleted_and_edited_words_leave_the_database_file(
        core: MirrorCore, tmp_path: Path) -> None:
    # A CRDT delete is one more update; without compaction and a scrub, the
    # text, its mirrorback and the engine's evidence quotes stay in the file.
    gone, edited, kept = "Saffronwick-7", "Tamberlyne-3", "Oakhollow-5"
    doomed = await core.reflect(f"My boss said {gone} and I feel anxious about money.")
    await core.mirror(doomed)
    changed = await core.reflect(f"Work again, {edited}; I feel anxious and tired.")
    await core.mirror(changed)
    await core.reflect(f"A calm walk, {kept}, with my sister.")
    await core.store.wait_durable()
    files = tmp_path / "home"
    before = _home_bytes(files)
    assert gone.encode() in before and edited.encode() in before
    await core.delete(doomed.id)
    await core.edit(changed.id, text="Work again; I feel anxious and tired.")
    after = _home_bytes(files)
    assert gone.encode() not in after
    assert edited.encode() not in after
    assert kept.encode() in after  # what was not deleted is still there
    assert (await core.journal.find(changed.id))[1].text.startswith("Work again;")


async def test_an_evolution_note_is_told_again_without_what_was_deleted(core: MirrorCore) -> None:
    kept = await core.reflect("Work was heavy today and I feel anxious.")
    doomed = await core.reflect("Quendolyn visited; I feel anxious and tired of work.")
    await core.understanding.evolve()
    (before,) = await core.understanding.notes()
    assert doomed.id in before["cites"]
    await core.delete(doomed.id)
    (after,) = await core.understanding.notes()
    assert after["id"] == before["id"] and after["since"] == before["since"]
    assert doomed.id not in after["cites"] and kept.id in after["cites"]
    assert "quendolyn" not in after["text"].lower() and after["revised_at"]
    shared = await core.understanding.notes(Scope.SHARED)
    assert all(doomed.id not in n["cites"] for n in shared)


async def test_a_forgotten_name_leaves_no_key_behind_in_any_case(
        core: MirrorCore, tmp_path: Path) -> None:
    # A CRDT map keeps the key of a deleted entry as a tombstone, and compaction
    # cannot drop it: records keyed by a name ("person:quendolyn") kept the
    # lower-cased name in the file after its content was scrubbed.
    name = "Quendolyn"
    first = await core.reflect(f"I met {name} at the lighthouse and felt anxious about money.")
    await core.mirror(first)
    second = await core.reflect(f"{name} called again; I said yes and I'm exhausted.")
    await core.reflect("A calm walk with my sister; I feel grateful.")
    await core.store.wait_durable()
    view = await core.understanding.graph()
    assert any(name.lower() in n for n in view.nodes)  # the engine did learn the name
    await core.understanding.evolve()
    files = tmp_path / "home"
    assert name.lower().encode() in _home_bytes(files).lower()
    await core.delete(first.id)
    await core.edit(second.id, text="My sister called again; I said yes and I'm exhausted.")
    after = _home_bytes(files).lower()
    assert name.lower().encode() not in after
    assert b"sister" in after  # what was not deleted is still there
