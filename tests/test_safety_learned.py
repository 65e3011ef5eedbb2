"""The learned lexicon (``node/engine/safety/learned.py``): built from our own labelled
sets and nothing else, read after the net's contexts, check-in only, and what it adds
on batches it was built without (docs/safety.md, "A learned lexicon")."""

from __future__ import annotations

import re
from functools import cache

import pytest

from node.engine.safety import assess, crisis_reply, detect_crisis
from node.engine.safety.build_lexicon import (
    SETS,
    SHIPPED,
    Row,
    build,
    dumps,
    held_out,
    read_sets,
)
from node.engine.safety.detect import _Entry, _learned
from node.engine.safety.evaluate import load_rows
from node.engine.safety.learned import compile_lexicon, features
from node.engine.safety.rules import rule_set

FRESH = tuple(f"fresh{n}" for n in range(1, 9))
HARD_NEGATIVE_CEILING = 0.05


@cache
def _sets() -> dict[str, list[Row]]:
    return read_sets()


def test_the_shipped_lexicon_is_what_the_labelled_sets_build() -> None:
    # it cannot drift from the sets: rebuild with
    # .venv/bin/python -m node.engine.safety.build_lexicon
    assert SHIPPED.read_text("utf-8") == dumps(build(_sets()))


def test_the_lexicon_holds_nothing_from_outside_the_sets() -> None:
    lexicon = rule_set().lexicon
    assert lexicon is not None
    names = {p.stem for p in SETS.glob("*.jsonl")} | {"journals"}
    assert set(lexicon.sets) == names
    seen = set().union(*(f for rows in _sets().values() for _, f in rows))
    assert lexicon.weights and set(lexicon.weights) <= seen
    assert lexicon.threshold > 0


def test_the_learned_layer_adds_a_gentle_check_in_never_a_crisis() -> None:
    text = "i'd trade places with anyone in a hospice right now"
    found = assess(text)
    assert [(f.rule, f.tier) for f in found.findings] == [("learned", "check_in")]
    signal = detect_crisis(text)
    assert signal is not None and not signal.is_crisis
    reply = crisis_reply(text, signal)
    assert f"“{text}”" in reply
    assert "ones people use when they are thinking about ending their life" in reply
    assert not re.search(r"\bdepress|\bdiagnos|\byou should\b", reply)


@pytest.mark.parametrize("risk, guarded", [
    ("i'd trade places with anyone in a hospice right now",
     "i would never trade places with anyone in a hospice"),
    ("i'd trade places with anyone in a hospice right now",
     "my aunt would trade places with anyone in a hospice right now"),
    ("i'd trade places with anyone in a hospice right now",
     "years ago i'd have traded places with anyone in a hospice, im so glad i stayed"),
    ("i'd trade places with anyone in a hospice right now",
     "i'd trade places with anyone in a hospice right now lol"),
    ("The world keeps spinning and I'm just waiting to get off.",
     "The world keeps spinning and she's just waiting to get off."),
    ("The world keeps spinning and I'm just waiting to get off.",
     "In the film the world keeps spinning and he is just waiting to get off."),
    ("i've started giving my stuff away, people think i'm just decluttering",
     "i've not started giving my stuff away"),
])
def test_negation_someone_else_a_past_a_laugh_and_media_are_read_before_it_counts(
        risk: str, guarded: str) -> None:
    rules = rule_set()
    assert rules.lexicon is not None
    assert _learned(_Entry(risk, rules), rules.lexicon) is not None
    assert _learned(_Entry(guarded, rules), rules.lexicon) is None


def test_it_only_reads_what_nothing_else_found_and_never_lowers_a_tier() -> None:
    for row in load_rows(SETS / "fresh8.jsonl"):
        found = assess(row["text"]).findings
        learned = [f for f in found if f.rule == "learned"]
        assert not learned or (len(found) == 1 and learned[0].tier == "check_in")


def test_features_skip_what_a_guard_dropped() -> None:
    assert features(("i", "am", "done")) == {"i", "am", "done", "i am", "am done"}
    assert features(("i", "am", "done"), (True, False, True)) == {"i", "done"}


def test_a_broken_lexicon_fails_loudly() -> None:
    with pytest.raises(ValueError):
        compile_lexicon({"terms": {"two words": 1.0}, "pairs": {}, "threshold": 8,
                         "sets": [], "digest": ""})
    with pytest.raises(ValueError):
        compile_lexicon({"terms": {}})


def test_held_out_it_finds_more_on_unseen_batches_and_alarms_stay_low() -> None:
    # leave one batch out: each fresh batch scored with a lexicon built without it
    figures = held_out(FRESH)
    risk = sum(h.risk for h in figures)
    negatives = sum(h.negatives for h in figures)
    before = sum(h.found_before for h in figures)
    after = sum(h.found_after for h in figures)
    assert after > before, figures  # it carries to writing it was not built from
    assert all(h.found_after >= h.found_before for h in figures)
    assert sum(h.alarms_after for h in figures) <= negatives * HARD_NEGATIVE_CEILING
    assert risk >= 390
    fresh8 = next(h for h in figures if h.batch == "fresh8")  # never tuned on
    assert fresh8.found_after > fresh8.found_before

    # with the shipped lexicon (built from all sets), false alarms on every set's hard
    # negatives together stay ≤ 5 %: tests/test_engine_safety.py::
    # test_the_net_meets_its_goal_on_the_evaluation_set scores the net with it
