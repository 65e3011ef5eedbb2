"""Tensions named by their poles, loops as trigger → response → consequence, and the
hand-labelled persona journals they are scored on.

The sentences here are not in the persona journals: they check that the engine
reads the general shapes (a pull set against another in so many words, two
listed opposites in one conflicted entry, a behaviour with what set it off and
how it left the person), not the examples it was tuned on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crdt.journal import Reflection
from node.core import open_core
from node.engine.derive import derive_all
from node.engine.extract import extract, from_json, to_json
from node.engine.lived import TENSION_STATUSES, lived_loops, lived_tensions
from node.engine.loops import continue_chains, find_chains
from node.engine.poles import CO_OCCURRING, STATED, find_tensions
from node.engine.text import analyze
from node.home import Home
from tests.helpers import run_mirror
from tests.persona_eval import evaluate, load_personas, same_name

T0 = datetime(2026, 3, 2, 21, tzinfo=UTC)

TENSIONS = [
    ("I want to travel the world, but I need the security of this job.", "security vs freedom"),
    ("Torn between my career and my kids again.", "achievement vs family"),
    ("I should be studying for the exam but all I want is to sleep.", "achievement vs rest"),
    ("I love my friends but I really need some time alone.", "connection vs solitude"),
    ("Part of me wants to tell him the truth, part of me wants to keep the peace.",
     "honesty vs harmony"),
    ("I keep trying to control everything because I'm scared of not having enough money.",
     "scarcity vs control"),
    ("I want to be there for my mum, but I also need a life of my own.", "care vs self"),
    ("Choosing work over my health again.", "work vs health"),
    ("I want to fit in with them but not by pretending to be someone I'm not.",
     "belonging vs authenticity"),
    ("I hate asking for help; I'd rather do it myself.", "independence vs help"),
    ("The salary is great, but my real passion is painting.", "security vs passion"),
    ("I want to let go and trust my team, but I can't stop checking every detail.",
     "control vs trust"),
    ("My partner wants more of my evenings and my boss wants more of my weekends. "
     "I can't give both.", "work vs relationship"),
    ("I feel guilty when I rest. There is always more work to do.", "work vs rest"),
    ("I miss him every day, but I want to start living again.", "grief vs moving on"),
    ("Part of me wants control, part of me fears scarcity.", "scarcity vs control"),
]

NO_TENSION = [
    "Work was busy today and then I had dinner with my family.",
    "I went to the gym, but it was closed.",
    "I slept well and my friends came over.",
    "My boss praised the report, but the meeting ran late.",
    "Mum called about the weekend plans.",
    "Rain all day. Soup and a film.",
]


@pytest.mark.parametrize(("text", "key"), TENSIONS)
def test_a_tension_is_named_by_its_poles(text: str, key: str) -> None:
    found = find_tensions(analyze(text))
    assert key in [f.key for f in found], [f.key for f in found]
    f = next(f for f in found if f.key == key)
    assert f.left.text in text and f.right.text in text
    assert 1 <= f.intensity <= 5


@pytest.mark.parametrize("text", NO_TENSION)
def test_no_tension_where_nothing_pulls(text: str) -> None:
    assert find_tensions(analyze(text)) == []


def test_stated_tensions_count_for_more_than_poles_side_by_side() -> None:
    stated = find_tensions(analyze("I want to rest, but I have to finish the report."))
    assert [(f.key, f.confidence) for f in stated] == [("work vs rest", STATED)]
    side_by_side = find_tensions(analyze(
        "The report took all evening. I'm so tired I can't think, no rest in sight."))
    assert side_by_side and all(f.confidence == CO_OCCURRING for f in side_by_side)


def test_a_resolving_mention_is_marked() -> None:
    f = find_tensions(analyze(
        "For months I was torn between staying safe and leaving. I've decided: I'm going."))
    assert f and f[0].key == "security vs freedom" and f[0].resolving


# --------------------------------------------------------------------------- loops

LOOPS = [
    ("My sister asked me to babysit again. I said yes, of course. Now I'm exhausted and annoyed.",
     "event:request", "behaviour:saying yes", "exhaustion"),
    ("After the fight with Tom I opened a bottle of wine and finished it. Woke up ashamed.",
     "event:conflict", "behaviour:drinking", "shame"),
    ("The deadline is Friday and I've been avoiding the report all week. Panicking now.",
     "event:deadline", "behaviour:avoiding", "anxiety"),
    ("I snapped at the kids after a long day at work, then felt terrible.",
     "event:hard day", "behaviour:snapping", "guilt"),
    ("My manager criticised my slides in the meeting. I stayed late to redo them and got home "
     "at eleven, completely drained.", "event:criticism", "behaviour:overworking", "exhaustion"),
    ("Mum made another comment about my weight. I didn't say anything, just went to my room. "
     "Still angry.", "event:criticism", "behaviour:staying silent", "anger"),
    ("Couldn't sleep again, so I was on my phone until 3am. Today I'm a zombie.",
     "event:bad night", "behaviour:scrolling", "exhaustion"),
]


@pytest.mark.parametrize(("text", "trigger", "response", "consequence"), LOOPS)
def test_a_loop_is_read_across_sentences(
    text: str, trigger: str, response: str, consequence: str
) -> None:
    chains = find_chains(analyze(text))
    assert any(c.trigger == trigger and c.response == response and consequence in c.consequences
               for c in chains), chains


def test_what_was_not_done_is_no_loop() -> None:
    assert find_chains(analyze("I didn't drink tonight. I was tired but calm.")) == []
    assert find_chains(analyze("Carol asked me to cover. I nearly said yes. I said no.")) == []


def test_a_loop_ends_in_the_next_entry() -> None:
    night = analyze("Row with my brother on the phone. Poured a whisky, then another.")
    chains = find_chains(night)
    assert [(c.trigger, c.response, c.consequences) for c in chains] == [
        ("event:conflict", "behaviour:drinking", ())
    ]
    morning = analyze("Hungover and ashamed. Opened the shop late.")
    carried = continue_chains(chains, morning)
    assert [(c.response, c.consequences) for c in carried] == [
        ("behaviour:drinking", ("hangover", "shame"))
    ]


def _r(i: int, text: str, hours: float, private: bool = False) -> Reflection:
    return Reflection(f"lp{i:010d}", T0 + timedelta(hours=hours), text, private=private)


def test_a_carried_loop_adds_its_consequence_without_counting_twice() -> None:
    night = _r(1, "Argument with Dad about money. Opened a bottle of wine.", 0)
    morning = _r(2, "Head pounding, full of regret. Long day ahead.", 10)
    too_late = _r(3, "Head pounding, full of regret. Long day ahead.", 10 + 48)
    x2 = extract(morning, previous=night)
    assert [(lp.response, lp.consequences, lp.continued) for lp in x2.loops] == [
        ("behaviour:drinking", ("hangover", "regret"), True)
    ]
    assert from_json(x2.rid, to_json(x2)) == x2
    assert extract(too_late, previous=morning).loops == ()
    state = derive_all([extract(night), x2])
    (record,) = state.loops.values()
    assert record["count"] == 1 and record["consequences"] == {"hangover": 1, "regret": 1}


def test_nothing_of_a_private_entry_is_carried_into_a_shared_one() -> None:
    night = _r(1, "Argument with Dad about money. Opened a bottle of wine.", 0, private=True)
    morning = _r(2, "Head pounding, full of regret. Long day ahead.", 10)
    assert extract(morning, previous=night).loops == ()
    private_morning = _r(3, morning.text, 10, private=True)
    assert extract(private_morning, previous=night).loops


def test_loops_of_near_responses_are_one_loop_with_counts_and_dates() -> None:
    texts = [
        "Zoe invited me to her party. I cancelled an hour before and stayed home, lonely.",
        "Invited to drinks after work. Made an excuse. Lonely all night.",
        "The team went out. I withdrew to my room and felt lonely again.",
    ]
    xs = [extract(_r(i, t, 24 * 3 * i)) for i, t in enumerate(texts)]
    (loop,) = lived_loops(derive_all(xs).loops.items())
    assert loop.count == 3 and loop.trigger == "event:invitation"
    assert set(loop.responses) == {"behaviour:cancelling plans", "behaviour:withdrawing"}
    assert loop.consequences[0][0] == "loneliness"
    assert loop.dates == ("2026-03-02", "2026-03-05", "2026-03-08")
    assert lived_loops(derive_all(xs[:2]).loops.items()) == []  # twice is not yet a loop


# --------------------------------------------------------------------------- the views


def test_near_names_of_one_tension_are_shown_once() -> None:
    texts = [
        "I want to be with my kids, but work keeps me late.",
        "Torn between my career and my family.",
        "My job wants every evening, but my children need me.",
    ]
    xs = [extract(_r(i, t, 24 * 7 * i)) for i, t in enumerate(texts)]
    state = derive_all(xs)
    assert len(state.tensions) >= 2  # read under two names …
    shown = lived_tensions(state.tensions.items(), state.latest)
    assert len(shown) == 1 and shown[0].occurrences == 3  # … one tension lived
    assert set(shown[0].poles) & {"work", "achievement"} and "family" in shown[0].poles


def test_a_pull_is_shown_once_it_comes_back() -> None:
    once = derive_all([extract(_r(1, "I want to travel, but I need the security of this job.",
                                   0))])
    assert lived_tensions(once.tensions.items(), once.latest) == []
    assert [t.key for t in lived_tensions(once.tensions.items(), once.latest,
                                          everything=True)] == ["security vs freedom"]
    twice = derive_all([
        extract(_r(1, "I want to travel, but I need the security of this job.", 0)),
        extract(_r(2, "Staying feels safe; leaving feels like freedom, and I want both.", 72)),
    ])
    shown = lived_tensions(twice.tensions.items(), twice.latest)
    assert [(t.key, t.status, t.occurrences) for t in shown] == [
        ("security vs freedom", "emerging", 2)
    ]


def test_old_index_entries_still_read() -> None:
    """An index entry written before confidence and consequences existed."""
    old = ('{"t":"2026-01-01T00:00:00.000Z","p":false,"s":"offline","i":[{"k":"tension",'
           '"key":"rest vs connection","l":"rest vs connection","e":{"rid":"r1","quote":"q",'
           '"start":0,"end":1},"p":["rest","connection"],"n":2}],"l":[{"t":"theme:money",'
           '"r":"behaviour:checking","e":{"rid":"r1","quote":"q","start":0,"end":1}}],"w":""}')
    x = from_json("r1", old)
    assert x.items[0].confidence == STATED and not x.items[0].resolving
    assert x.loops[0].consequences == () and not x.loops[0].continued


# --------------------------------------------------------------------------- persona journals


def test_the_persona_journals_are_labelled_lives() -> None:
    personas = load_personas()
    assert len(personas) >= 5 and sum(p.held_out for p in personas) >= 1
    for p in personas:
        assert 20 <= len(p.reflections) <= 60, p.name
        days = (p.reflections[-1].created_at - p.reflections[0].created_at).days
        assert days >= 60, p.name
        labels = p.labels
        assert len(labels["tensions"]) >= 2 and len(labels["loops"]) >= 2, p.name
        assert len(labels["people"]) >= 3 and labels["arc"], p.name
        for t in labels["tensions"]:
            assert len(t["poles"]) == 2 and all(t["poles"]) and t["status"] in TENSION_STATUSES
        for lp in labels["loops"]:
            assert lp["trigger"] and lp["response"] and lp["consequence"]
    assert len({p.persona if hasattr(p, "persona") else p.name for p in personas}) == len(personas)


def test_names_match_as_the_benchmark_says() -> None:
    assert same_name("behaviour:staying silent", "silence")
    assert same_name("event:request", "request") and same_name("person:my dad", "my dad")
    assert not same_name("care", "career") and not same_name("work", "working late")
    assert same_name("care", "caring") and same_name("behaviour:scrolling", "scroll")
    assert not same_name("self", "myself") and not same_name("care", "cards")


def test_tensions_and_loops_meet_the_goal_on_the_tuning_journals() -> None:
    """Issue 16: >= 80 % recall at >= 70 % precision (bench/insight.py prints the table)."""
    tensions = loops = None
    for p in load_personas():
        if p.held_out:
            continue
        r = evaluate(p)
        if tensions is None:
            tensions, loops = r.tensions, r.loops
        else:
            assert loops is not None
            tensions.add(r.tensions)
            loops.add(r.loops)
    assert tensions is not None and loops is not None
    assert tensions.recall >= 0.8 and tensions.precision >= 0.7, (tensions.misses,
                                                                   tensions.extras)
    assert loops.recall >= 0.8 and loops.precision >= 0.7, (loops.misses, loops.extras)


def test_the_held_out_journals_are_scored_apart() -> None:
    """Held out from tuning: scored and reported (docs/benchmarks.md), never tuned on.
    What is asserted is that they are scored consistently, not how well."""
    personas = load_personas()
    held = [evaluate(p) for p in personas if p.held_out]
    assert held
    # every round of journals written apart is there and marked (docs/benchmarks.md)
    sets = {p.set for p in personas}
    assert {"tuning", "held-out-1", "held-out-2", "fresh-1", "fresh-2"} <= sets
    assert all(p.held_out == (p.set != "tuning") for p in personas)
    for name in sets - {"tuning"}:
        assert sum(p.set == name for p in personas) >= 2, name
    for r in held:
        for score in (r.tensions, r.loops):
            assert score.labelled >= 2
            assert 0 <= score.found <= score.labelled and 0 <= score.right <= score.shown
            assert len(score.misses) == score.labelled - score.found
            assert len(score.extras) == score.shown - score.right


# --------------------------------------------------------------------------- end to end


async def test_the_views_show_loops_with_dates_and_tensions_with_status(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    persona = next(p for p in load_personas() if p.name == "priya")
    async with open_core(home) as core:
        await core.journal.add_many(list(persona.reflections))
        await core.understanding.rebuild()
        loops = await core.understanding.loops()
        tensions = await core.understanding.tensions()
    yes = next(lp for lp in loops if "behaviour:saying yes" in lp.responses)
    assert yes.count >= 4 and len(yes.dates) >= 4 and yes.dates == tuple(sorted(yes.dates))
    assert {t.status for t in tensions} <= set(TENSION_STATUSES)
    assert any(t.key == "work vs rest" and t.status == "easing" for t in tensions)
    out = run_mirror(home.path, "patterns", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    loop = next(d for d in data if d["kind"] == "loop" and "behaviour:saying yes" in
                d["responses"])
    assert loop["dates"] and loop["consequences"]
    text = run_mirror(home.path, "patterns").stdout
    assert "what you do" in text and " on 2026-" in text
    everything = json.loads(run_mirror(home.path, "tensions", "--all", "--json").stdout)
    shown = json.loads(run_mirror(home.path, "tensions", "--json").stdout)
    assert len(everything) > len(shown) >= 3


async def test_a_loop_carried_into_the_next_entry_through_the_node(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    nights = [
        ("Row with my sister on the phone. Poured a whisky, then another.", 0),
        ("Hungover and ashamed. Opened the shop late.", 10),
        ("Argument with Sam about the money. Opened a bottle of wine.", 72),
        ("Head pounding, full of regret.", 82),
        ("Another fight with my sister. Drank until late.", 144),
        ("Hungover again.", 154),
    ]
    async with open_core(home) as core:
        for text, hours in nights:
            await core.reflect(text, at=T0 + timedelta(hours=hours))
        incremental = await core.understanding.loops()
        await core.understanding.rebuild()
        rebuilt = await core.understanding.loops()
    (loop,) = incremental
    assert loop.responses == ("behaviour:drinking",) and loop.count == 3
    assert dict(loop.consequences)["hangover"] == 3 and "shame" in dict(loop.consequences)
    assert [(lp.key, lp.count, lp.consequences) for lp in rebuilt] == [
        (loop.key, loop.count, loop.consequences)
    ]
