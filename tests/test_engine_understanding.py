"""Understanding: extraction with evidence, the identity graph and its edits,
tensions over time, patterns, related reflections, evolution notes, and the
rule that nothing learned from a private reflection reaches a syncable document.

Most tests run on ``tests/fixtures/journal.json`` — 43 reflections over three
months written for these tests, with what they contain stated beside them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crdt import SyncClass
from crdt.errors import ValueRangeError
from crdt.graph import NODES
from crdt.insights import GRAPH_KIND, Scope
from crdt.journal import Reflection, new_reflection_id
from crdt.values import parse_timestamp, read_int
from node.core import MirrorCore, open_core
from node.engine.derive import derive_all
from node.engine.extract import ITEM_KINDS, extract, from_json, to_json
from node.engine.lived import episode_count, tension_status
from node.home import Home
from node.views.engine import render_graph, render_tensions, sparkline
from tests.helpers import REPO

FIXTURE = REPO / "tests" / "fixtures" / "journal.json"
CANARY = "Quillfeather"


def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def fixture_reflections() -> list[Reflection]:
    return [
        Reflection(f"fx{i:010d}", parse_timestamp(e["at"]), e["text"], private=e["private"])
        for i, e in enumerate(fixture()["reflections"])
    ]


async def open_home(tmp_path: Path) -> AsyncIterator[MirrorCore]:
    home = Home(tmp_path / "home")
    home.ensure()
    async with open_core(home) as core:
        yield core


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[MirrorCore]:
    async for c in open_home(tmp_path):
        yield c


@pytest.fixture
async def fixture_core(core: MirrorCore) -> MirrorCore:
    await core.journal.add_many(fixture_reflections())
    await core.understanding.rebuild()
    return core


# --------------------------------------------------------------------------- extraction


def test_the_fixture_is_three_months_of_at_least_forty_reflections() -> None:
    items = fixture_reflections()
    assert len(items) >= 40
    assert (items[-1].created_at - items[0].created_at).days >= 89
    assert sum(r.private for r in items) >= 1


def test_every_finding_quotes_its_reflection() -> None:
    kinds: set[str] = set()
    for r in fixture_reflections():
        x = extract(r)
        for item in [*x.items, *x.loops]:
            ev = item.evidence
            assert ev.rid == r.id
            assert ev.quote and " ".join(ev.quote.split()) in " ".join(r.text.split())
            assert r.text[ev.start : ev.end].strip()
        kinds |= {i.kind for i in x.items}
    assert kinds >= {"theme", "emotion", "person", "role", "tension", "value"}


def test_values_beliefs_roles_and_tensions_have_names_and_evidence() -> None:
    text = ("Honesty matters to me. I am not good enough, I think. As a new manager I have to "
            "hold everything together. Part of me wants to quit, but part of me loves my career.")
    x = extract(Reflection("abcdabcdabcd", datetime(2026, 1, 1, tzinfo=UTC), text))
    found = {(i.kind, i.key) for i in x.items}
    assert ("value", "honesty") in found
    assert ("belief", "i am not good enough") in found
    assert ("belief", "i have to hold everything together") in found
    assert ("role", "manager") in found
    assert ("tension", "achievement vs freedom") in found
    tension = next(i for i in x.items if i.kind == "tension")
    assert tension.poles == ("achievement", "freedom") and 1 <= tension.intensity <= 5
    assert "quit" in tension.evidence.quote


def test_extractions_round_trip_through_the_index_form() -> None:
    for r in fixture_reflections()[:10]:
        x = extract(r)
        assert from_json(r.id, to_json(x)) == x
    with pytest.raises(ValueError, match="malformed index entry"):
        from_json("x", '{"t": 1}')


def test_the_offline_extraction_is_deterministic() -> None:
    r = fixture_reflections()[0]
    assert extract(r) == extract(r)
    assert set(ITEM_KINDS) == {"theme", "emotion", "value", "belief", "role", "person", "tension"}


# --------------------------------------------------------------------------- the fixture


async def test_the_offline_engine_finds_what_the_fixture_states(fixture_core: MirrorCore) -> None:
    expected = fixture()["expected"]
    u = fixture_core.understanding
    patterns = await u.patterns()
    keys = {p.key for p in patterns}
    for theme in expected["themes"]:
        assert f"theme:{theme}" in keys, theme
    for person in expected["people"]:
        assert f"person:{person}" in keys, person
    for loop in expected["loops"]:
        assert loop in keys, loop
    work = next(p for p in patterns if p.key == "theme:work")
    assert work.count >= 8 and work.first_seen < work.last_seen
    tensions = {t.key: t for t in await u.tensions()}
    for key, status in expected["tensions"].items():
        assert key in tensions, key
        assert tensions[key].status == status, (key, tensions[key])
    rest = tensions["rest vs connection"]
    assert rest.occurrences >= 4 and rest.episodes >= 1 and sum(rest.weekly) >= 3
    assert all(e["rid"].startswith("fx") for e in rest.evidence)


async def test_evolution_cites_reflections_and_sees_what_moved(fixture_core: MirrorCore) -> None:
    spec = fixture()["expected"]["evolution"]
    ids = {r.id for r in fixture_reflections()}
    since = parse_timestamp(spec["since"] + "T00:00:00Z")
    evolution = await fixture_core.understanding.evolve(since=since)
    moved = {(m.kind, m.key): m for m in evolution.note.movements}
    for theme in spec["new_or_rising_themes"]:
        assert moved[("theme", theme)].direction in ("new", "rising")
    for theme in spec["quiet_or_falling_themes"]:
        assert moved[("theme", theme)].direction in ("quiet", "falling")
    assert evolution.note.cites and set(evolution.note.cites) <= ids
    for rid in evolution.note.cites[:3]:
        assert rid[:8] in evolution.text
    assert not evolution.narrated
    notes = await fixture_core.understanding.notes()
    assert notes[-1]["id"] == evolution.note_id and notes[-1]["cites"]


async def test_related_reflections_rank_offline(fixture_core: MirrorCore) -> None:
    spec = fixture()["expected"]["related"]
    items = fixture_reflections()
    of = next(r for r in items if r.text.startswith(spec["of_text_starting"]))
    found = await fixture_core.understanding.related(of, limit=3)
    assert found and all(f.reflection.id != of.id for f in found)
    assert found[0].reflection.text.startswith(spec["finds_text_starting"])
    assert not any(f.reflection.private for f in found)  # a shared one sees shared ones
    with_private = await fixture_core.understanding.related(of, limit=10, include_private=True)
    assert any(f.reflection.private for f in with_private)


async def test_incremental_learning_equals_a_rebuild(core: MirrorCore) -> None:
    for r in fixture_reflections()[:20]:
        saved = await core.reflect(r.text, private=r.private, at=r.created_at)
        assert saved.id
    u = core.understanding
    before = (await u.patterns(minimum=1), await u.tensions(), (await u.graph()).nodes.keys())
    await u.rebuild()
    after = (await u.patterns(minimum=1), await u.tensions(), (await u.graph()).nodes.keys())
    assert [(p.key, p.count) for p in before[0]] == [(p.key, p.count) for p in after[0]]
    assert [(t.key, t.occurrences, t.status) for t in before[1]] == [
        (t.key, t.occurrences, t.status) for t in after[1]
    ]
    assert set(before[2]) == set(after[2])


async def test_a_reflection_is_never_counted_twice(core: MirrorCore) -> None:
    r = await core.reflect("My boss moved the deadline again and I feel anxious.")
    await core.understanding.on_reflection(r)
    patterns = await core.understanding.patterns(minimum=1)
    assert next(p for p in patterns if p.key == "person:my boss").count == 1


# --------------------------------------------------------------------------- the graph


async def test_the_persons_graph_edits_survive_later_extraction(core: MirrorCore) -> None:
    u = core.understanding
    for text in ("My boss moved the deadline and I feel anxious about work.",
                 "Money is tight and I keep checking my bank account.",
                 "Work again. My sister called and I feel tired."):
        await core.reflect(text)
    await u.edit_graph("rename", "work", label="my job")
    await u.edit_graph("merge", "my boss", into="theme:work")
    await u.edit_graph("delete", "money")
    await u.edit_graph("add", "", label="Learning to say no", type="value")
    for text in ("Work, work, work. My boss yelled and I feel anxious.",
                 "Money again: the rent went up."):
        await core.reflect(text)
    view = await u.graph()
    job = view.nodes["theme:work"]
    assert job.label == "my job" and job.edited and "person:my boss" in job.merged
    assert job.weight == 2 + 1 + 2  # work twice, boss once, then one more of each
    assert "person:my boss" not in view.nodes and "theme:money" not in view.nodes
    assert view.nodes["value:learning to say no"].label == "Learning to say no"
    assert all("theme:money" not in (e.a, e.b) for e in view.edges.values())
    tree = render_graph(view)
    assert "my job" in tree and "Learning to say no" in tree and "money" not in tree
    # the extracted records underneath kept counting; only the view applies the edits
    raw = await u.doc(GRAPH_KIND, Scope.LOCAL)
    money = raw.get(NODES, "theme:money")
    assert money is not None and read_int(money["weight"]) == 2


async def test_graph_numbers_are_ints_within_the_safe_range(core: MirrorCore) -> None:
    await core.reflect("Work again and I feel tired.")
    doc = await core.understanding.doc(GRAPH_KIND, Scope.LOCAL)
    record = doc.get(NODES, "theme:work")
    assert record is not None and read_int(record["weight"]) == 1
    with pytest.raises(ValueRangeError):
        doc.put(NODES, "bad", {"weight": 2**60})


# --------------------------------------------------------------------------- tensions


def _record(first: str, last: str, weeks: dict[str, int], resolved_at: str = "") -> dict[str, Any]:
    return {"first_seen": f"{first}T00:00:00.000Z", "last_seen": f"{last}T00:00:00.000Z",
            "weeks": weeks, "occurrences": sum(weeks.values()),
            "resolved_at": f"{resolved_at}T00:00:00.000Z" if resolved_at else ""}


def test_tension_status_follows_the_arc() -> None:
    asof = "2026-08-31T00:00:00.000Z"
    weekly = {f"2026-W{w:02d}": 1 for w in range(20, 36)}  # every week, May to August
    # new in the last weeks: emerging
    assert tension_status(_record("2026-08-20", "2026-08-30", {"2026-W34": 1, "2026-W35": 1}),
                          asof) == "emerging"
    # every week for months and still there: recurring
    assert tension_status(_record("2026-05-11", "2026-08-30", weekly), asof) == "recurring"
    # came up weekly, quiet for four weeks: easing
    assert tension_status(_record("2026-05-11", "2026-08-01", weekly), asof) == "easing"
    # came up weekly until May, then thirteen quiet weeks: resolved
    spring = {f"2026-W{w:02d}": 1 for w in range(10, 23)}
    assert tension_status(_record("2026-03-02", "2026-05-29", spring), asof) == "resolved"
    # still present, but far less often than in the six weeks before: easing
    fewer = {**{f"2026-W{w:02d}": 2 for w in range(24, 30)}, "2026-W35": 1}
    assert tension_status(_record("2026-06-08", "2026-08-30", fewer), asof) == "easing"
    # it comes back once a month: three quiet weeks are not easing
    monthly = {"2026-W19": 1, "2026-W23": 1, "2026-W27": 1, "2026-W31": 1}
    assert tension_status(_record("2026-05-04", "2026-08-06", monthly), asof) == "recurring"
    # its last mention said the person is through with it: resolved at once
    assert tension_status(_record("2026-05-11", "2026-08-30", weekly, "2026-08-30"),
                          asof) == "resolved"
    assert episode_count({"2026-W01": 1, "2026-W02": 2, "2026-W10": 1, "2026-W11": 0}) == 2
    assert episode_count({}) == 0


def test_sparklines_draw_one_mark_per_week() -> None:
    assert sparkline([0, 1, 2, 4]) == "·▂▄█"
    assert sparkline([0, 0]) == "··"
    assert sparkline([3]) == "█"


async def test_tensions_render_with_a_sparkline_each(fixture_core: MirrorCore) -> None:
    text = render_tensions(await fixture_core.understanding.tensions())
    lines = [ln for ln in text.splitlines() if " vs " in ln]
    assert len(lines) >= 3
    assert all(any(c in ln for c in "▁▂▃▄▅▆▇█·") for ln in lines)


def test_order_of_arrival_does_not_change_what_is_derived() -> None:
    items = [extract(r) for r in fixture_reflections()]
    forward, backward = derive_all(items), derive_all(reversed(items))
    assert forward.tensions == backward.tensions and forward.loops == backward.loops


# --------------------------------------------------------------------------- sync classes


async def test_nothing_learned_from_a_private_reflection_reaches_a_syncable_document(
    core: MirrorCore,
) -> None:
    """A canary name and theme in private reflections: every view is used, then the
    bytes of every document that may leave the device are searched for it."""
    from node.sync.catalogue import offerable

    await core.set_journal_class(SyncClass.DEVICES)
    base = datetime(2026, 5, 1, 9, tzinfo=UTC)
    for i, r in enumerate(fixture_reflections()[:12]):
        await core.reflect(r.text, at=base + timedelta(days=i))
    for i in range(4):
        await core.reflect(
            f"{CANARY} said my work is worthless and I feel ashamed. I want to quit, but I "
            f"have to pay the {CANARY.lower()} rent. Honesty matters to me.",
            private=True,
            at=base + timedelta(days=13 + i),
        )
    u = core.understanding
    await u.evolve(since=base)
    assert any(CANARY in p.label for p in await u.patterns())  # learned, locally
    await u.edit_graph("rename", CANARY.lower(), label=f"{CANARY} the critic")
    await u.edit_graph("add", "", label="shared-node", type="value")
    await core.store.wait_durable()
    shared = [i for i in core.store.documents() if i.sync_class is not SyncClass.LOCAL]
    assert {i.doc_id for i in shared} >= {"identity-graph", "tensions", "patterns", "evolution"}
    for info in shared:
        stored = await core.store.open_doc(info.doc_id, kind=info.kind, create=False)
        data = stored.doc.get_update()
        assert CANARY.encode() not in data and CANARY.lower().encode() not in data, info.doc_id
    offered = {i.doc_id for i in offerable(core.store, [SyncClass.DEVICES])}
    assert not any(d.startswith("local/") for d in offered)
    local = await core.store.open_doc("local/identity-graph", kind=GRAPH_KIND, create=False)
    assert CANARY.encode() in local.doc.get_update()  # the check above can see it
    shared_graph = await u.graph(Scope.SHARED)
    assert "value:shared-node" in shared_graph.nodes


def test_ids_of_a_fixture_are_not_real_ids() -> None:
    assert len(new_reflection_id()) == 12


def test_designs_own_example_tension_is_found() -> None:
    """DESIGN.md's example: "scarcity vs control", named by the person's own words."""
    from datetime import UTC, datetime

    from crdt.journal import Reflection
    from node.engine.extract import extract

    reflection = Reflection(
        "t1", datetime(2026, 11, 1, tzinfo=UTC),
        "Part of me wants control, part of me fears scarcity.",
    )
    tensions = [i for i in extract(reflection).items if i.kind == "tension"]
    assert [t.key for t in tensions] == ["scarcity vs control"]
    assert tensions[0].evidence.quote.startswith("Part of me wants control")
