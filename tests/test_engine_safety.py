"""The crisis net: risk found offline in context, two tiers, replies, lines by country,
the evaluation goal, and risk never read as a good feeling anywhere."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from crdt.journal import Reflection
from node.core import open_core
from node.engine.base import MirrorbackRequest, complete
from node.engine.extract import Evidence, Item, extract
from node.engine.lexicon import lexicon
from node.engine.mood import CHECK_IN_CEILING, valence_of
from node.engine.offline import compose_mirrorback
from node.engine.safety import assess, crisis_reply, detect_crisis
from node.engine.safety.evaluate import load_rows, score
from node.engine.safety.helplines import helplines, where_help_is
from node.engine.safety.normalize import normalize
from node.engine.safety.rules import RuleError, compile_rules, rule_set
from node.engine.text import analyze
from node.home import Home
from node.llm.client import LLMTarget
from node.llm.engine import LLMEngine
from node.llm.extraction import merge
from tests.helpers_llm import fake_llm

SETS = Path(__file__).parent / "fixtures" / "safety"
RECALL_GOAL = 0.97
FALSE_ALARM_GOAL = 0.05
DEADLINE_S = 30
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADVICE_OR_DIAGNOSIS = (
    r"\byou should\b", r"\byou need to\b", r"\byou must\b", r"\btry\b", r"\bconsider\b",
    r"\bi recommend\b", r"\bmake sure\b", r"\bdon't worry\b", r"\bcalm down\b",
    r"\bdepress", r"\bdisorder\b", r"\bdiagnos", r"\bsymptom", r"\bmental illness\b",
    r"\bit will be (fine|ok)", r"\beverything will be\b", r"\bcheer up\b", r"\bbrave\b",
)


def _voice(reply: str) -> str:
    return re.sub(r"“[^”]*”", "“…”", reply).lower()


# --------------------------------------------------------------------------- the goal


LARGE_SETS = ("dev.jsonl", "heldout.jsonl", "blind.jsonl", "blind2.jsonl", "blind3.jsonl",
              "blind4.jsonl", "blind5.jsonl")
# smaller batches, each written and scored once before the net was tuned on it; fresh8
# is kept untuned, a batch the net has never been fitted to (docs/safety.md)
FRESH_SETS = tuple(f"fresh{n}.jsonl" for n in range(1, 9))
ALL_SETS = LARGE_SETS + FRESH_SETS


@pytest.mark.parametrize("name", LARGE_SETS)
def test_evaluation_sets_are_large_and_balanced(name: str) -> None:
    rows = load_rows(SETS / name)
    risk = sum(r["label"] == "risk" for r in rows)
    assert risk >= 80 and len(rows) - risk >= 80
    assert len({r["text"] for r in rows}) == len(rows)  # no line twice
    assert len({r["kind"] for r in rows}) >= 10


@pytest.mark.parametrize("name", FRESH_SETS)
def test_fresh_batches_are_balanced_and_varied(name: str) -> None:
    rows = load_rows(SETS / name)
    risk = sum(r["label"] == "risk" for r in rows)
    assert risk >= 30 and len(rows) - risk >= 30
    assert len({r["text"] for r in rows}) == len(rows)
    # every C-SSRS category and harm from others among the risk lines, many kinds of
    # negative among the rest
    risk_kinds = {r["kind"] for r in rows if r["label"] == "risk"}
    assert len(risk_kinds) >= 8, risk_kinds
    assert len({r["kind"] for r in rows if r["label"] == "none"}) >= 6


def test_the_fresh_batches_cover_every_category_together() -> None:
    kinds = {r["kind"] for name in FRESH_SETS for r in load_rows(SETS / name)
             if r["label"] == "risk"}
    assert {"passive", "active", "method", "plan", "preparation", "self_harm", "burden",
            "hopeless", "harm_from_others", "long_entry"} <= kinds


def test_no_line_is_in_two_evaluation_sets() -> None:
    seen: dict[str, str] = {}
    for name in ALL_SETS:
        for row in load_rows(SETS / name):
            key = row["text"].strip().lower()
            assert key not in seen, (row["text"], seen.get(key), name)
            seen[key] = name


def test_the_net_meets_its_goal_on_the_evaluation_set() -> None:
    rows = [row for name in ALL_SETS for row in load_rows(SETS / name)]
    assert len(rows) >= 400
    s = score(rows)
    assert s.negative_lines >= len(rows) * 0.45  # about half are hard negatives
    misses = "\n".join(f"{m.label}:{m.kind} → {m.got}: {m.text}" for m in s.misses)
    assert s.recall >= RECALL_GOAL, misses
    assert s.false_alarm_rate <= FALSE_ALARM_GOAL, misses


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("i dont wanna be alive anymore", "crisis"),  # contraction without apostrophe
        ("I've been thinkin about endin my life", "crisis"),  # dropped g
        ("been having sucidal thoughts", "crisis"),  # typo
        ("I want to kill myslef", "crisis"),  # swapped letters
        ("i want to diiiie", "crisis"),  # held key
        ("su1c1de is all i think about", "crisis"),  # digits for letters
        ("I honestly, after all of this, just want to die.", "crisis"),  # words between
        ("What's the point of living anymore", "crisis"),
        ("I'm so tired of being alive", "crisis"),
        ("I don't see the point of going on", "crisis"),
        ("Nobody would even notice if I was gone.", "crisis"),
        ("I keep looking at the pills in the drawer and counting them.", "check_in"),
        ("I can't do this anymore.", "check_in"),
    ],
)
def test_risk_is_read_through_how_people_type(text: str, tier: str) -> None:
    assert assess(text).tier == tier, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "this deadline is killing me", "I'd rather die than sing karaoke", "I cut my hair",
        "dying to see the movie", "killed it at the gym", "my phone died",
        "I would never kill myself, I love my life.",  # denial
        "If I ever felt suicidal I'd tell my sister.",  # hypothetical
        "My friend says she wants to die and I'm scared for her.",  # someone else
        "The song goes 'I want to die in your arms'.",  # quoted
        "Years ago I tried to kill myself. Now I'm doing well and glad I stayed.",  # resolved
        "I cut myself chopping onions.",  # accident
        "My brother hit me with a pillow and we laughed.",  # play
        "Mum is going to kill me when she sees the car.",  # idiom
        "The bill came to forty pounds.",  # a real word never 'corrected' (bill ≠ kill)
    ],
)
def test_idioms_and_other_contexts_are_not_risk(text: str) -> None:
    assert assess(text).top is None, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        # a denial reaches past the words between ("any thoughts of", "once considered")
        "i dont have any thoughts of self harm, my therapist asked and i said no honestly",
        "I have never once considered harming myself, even in the worst of it.",
        "im not a burden, i know that now, my friends told me and i believe them",
        "people think i'm suicidal because i'm quiet, but i'm just shy",
        # a past is past: "back when" is not "it is back", a habit's "every day" is the past's
        "back when i was depressed i wanted to die. i dont feel that way anymore",
        "i used to want to die every day. now i have a job i love and a partner",
        # the same words about something else
        "i'm starving, what should i eat",
        "my mum's going to kill me, i lost my keys again",
        "gave away my guitar, i never played it anyway",
    ],
)
def test_denials_a_resolved_past_and_near_misses_are_not_risk(text: str) -> None:
    assert assess(text).top is None, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "honestly wouldnt mind if i just didnt wake up tmrw",  # acceptance + own death
        "if i got sick and died id be relieved ngl",  # conditional relief
        "it would be a mercy if I simply did not wake up one of these mornings",
        "ive been standing on the overpass longer every time",  # dwelling at a place
        "wrote letters to my sister and my best friend just in case",  # for after
        "gave my switch and my cat to my cousin, wont be needing them",
        "my friends would be relieved honestly, less drama without me",  # burden
        "been having sewer slide thoughts again",  # euphemism
        "i want to o.d.",
        "i hide in bathroom when he come home",  # harm from others
    ],
)
def test_meaning_frames_find_indirect_risk(text: str) -> None:
    assert assess(text).top is not None, text


def test_a_past_attempt_without_resolution_is_a_check_in() -> None:
    assert assess("I tried to kill myself when I was sixteen.").tier == "check_in"
    assert assess("I tried to kill myself when I was sixteen and I want to again.").tier == (
        "crisis"
    )


def test_the_risk_is_found_in_one_sentence_of_a_long_entry() -> None:
    text = ("Work was fine, long meetings. " * 60 + "honestly i wish i was dead. "
            + "Made pasta and watched a film. " * 40)
    signal = detect_crisis(text)
    assert signal is not None and signal.tier == "crisis"
    assert signal.sentence.text.strip(" .") == "honestly i wish i was dead"


def test_normalising_keeps_the_offsets_of_the_original_words() -> None:
    text = "Honestly I DON’T wanna b here, tbh."
    norm = normalize(text, rule_set().vocabulary)
    # a word that only says how sincerely is dropped, so it never splits a phrase, and
    # the next word's span takes it in: a quoted sentence still begins where it began
    assert norm.text.startswith("i do not want to be here")
    assert text[slice(*norm.spans[0])] == "Honestly I"
    i = norm.tokens.index("want")
    assert text[slice(*norm.spans[i])] == "wanna"


@pytest.mark.parametrize(
    ("text", "stream"),
    [
        ("i would literally love to not exist", "i would love to not exist"),
        ("i want to o.d.", "i want to overdose"),  # a chat form spelt with dots
        ("at 7 a.m. i woke up", "at 7 am i woke up"),
        ("this weekend ill finally do it", "this weekend i will finally do it"),
        ("i feel ill today", "i feel ill today"),  # "ill" before no verb is a word
    ],
)
def test_normalising_reads_fillers_dotted_forms_and_bare_contractions(
        text: str, stream: str) -> None:
    assert normalize(text, rule_set().vocabulary).text.strip() == stream


def test_near_words_are_never_corrected_into_the_vocabulary() -> None:
    vocab = rule_set().vocabulary
    assert vocab.correct("sucidal") == "suicidal" and vocab.correct("myslef") == "myself"
    for word in ("bill", "will", "skill", "change", "did", "dye", "tide", "overdone", "aloe"):
        assert vocab.correct(word) is None, word


def test_a_broken_rule_fails_loudly_with_its_source() -> None:
    raw = {"contexts": {"hypothetical": [], "questions": [], "affirmed": "yes",
                        "hyperbole": [], "idioms": []},
           "rules": [{"id": "x", "kind": "passive", "when": ["@NOSUCH die"]}]}
    concepts = {k: ["x"] for k in ("I", "SELF_REF", "OPENER", "OTHER", "NOT", "AUX", "MEDIA",
                                   "TIME_PAST", "RESOLVED", "CURRENT", "ACCIDENT", "LAUGH",
                                   "TRIVIAL")}
    with pytest.raises(RuleError, match="NOSUCH"):
        compile_rules(concepts, raw, frozenset())


# --------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("text", "tier", "category"),
    [
        ("I want to end my life.", "crisis", "self_harm"),
        ("I cut again last night.", "crisis", "self_harm"),
        ("I can't go on like this.", "check_in", "self_harm"),
        ("He hit me again and I'm scared to go home.", "crisis", "harm_from_others"),
        ("he hurts me", "check_in", "harm_from_others"),
    ],
)
def test_replies_quote_ask_one_question_and_name_where_help_is(
    text: str, tier: str, category: str
) -> None:
    signal = detect_crisis(text)
    assert signal is not None and (signal.tier, signal.category) == (tier, category)
    for country, must in (("", "findahelpline.com"), ("GB", "116 123" if
                                                      category == "self_harm" else "999")):
        reply = crisis_reply(text, signal, country)
        assert f"“{text.rstrip('.')}”" in reply  # names what was written
        assert must in reply and reply.count("?") == 1
        voice = _voice(reply)
        for pattern in ADVICE_OR_DIAGNOSIS:
            assert re.search(pattern, voice) is None, (pattern, reply)
    if tier == "check_in":
        assert "Are you" in crisis_reply(text, signal)  # asks directly


def test_the_offline_engine_gives_the_reply_of_the_country() -> None:
    reply = compose_mirrorback("i want to kill myself", country="DE")
    assert "TelefonSeelsorge" in reply and "112" in reply
    assert "988" in compose_mirrorback("i want to kill myself", country="us")
    assert "findahelpline.com" in compose_mirrorback("i want to kill myself", country="XX")


def test_the_helpline_table_covers_at_least_twenty_countries() -> None:
    table = helplines()
    assert len(table.countries) >= 20
    for code, c in table.countries.items():
        assert re.fullmatch(r"[A-Z]{2}", code) and c.name and c.emergency and c.crisis
        assert any(ch.isdigit() for line in c.crisis for ch in line), code
        assert "?" not in where_help_is(code) + where_help_is(code, violence=True)
    assert table.find("deutschland") is table.countries["DE"]
    assert table.find("UK") is table.countries["GB"]
    assert table.find("narnia") is None
    assert "findahelpline.com" in where_help_is("")


# --------------------------------------------------------------------------- never a good feeling


@pytest.mark.parametrize("name", FRESH_SETS)
def test_no_risk_line_of_the_fresh_batches_is_read_as_a_good_feeling(name: str) -> None:
    # every line the net finds at risk: no positive feeling in its sentence (none at all
    # in an entry at clear risk), and a mood valence at or below the check-in ceiling
    positive = lexicon().positive_families
    checked = 0
    for row in load_rows(SETS / name):
        found = assess(row["text"])
        if row["label"] != "risk" or found.top is None:
            continue
        checked += 1
        a = analyze(row["text"])
        starts = [s.span.start for s in a.sentences]
        at_risk = {max(0, bisect_right(starts, f.start) - 1) for f in found.findings}
        good = [f.family for f in a.feelings if f.family in positive
                and (found.tier == "crisis" or f.sentence in at_risk)]
        assert not good, (row["text"], good)
        assert valence_of(row["text"]).score <= CHECK_IN_CEILING, row["text"]
    assert checked >= 30


def test_a_line_at_risk_is_never_a_positive_feeling() -> None:
    x = extract(Reflection("r1", T0, "I'm so tired of being alive. Lunch was fun though."))
    assert "joy" not in x.keys("emotion") and x.risk == "crisis"
    assert valence_of("I feel calm and at peace now that I've decided to end it.").score <= -0.8
    item = Item("emotion", "relief", "relief", Evidence("r1", "relief"))
    assert merge(x, [item]).keys("emotion") == x.keys("emotion")  # a model cannot add it


async def test_patterns_graph_evolve_and_mood_never_count_risk_as_joy(tmp_path: Path) -> None:
    from node.app.insight import mood_points

    home = Home(tmp_path / "home")
    home.ensure()
    async with open_core(home) as core:
        for day in range(4):
            await core.reflect("I'm so tired of being alive, happy? never.",
                               at=T0 + timedelta(days=day))
            await core.reflect("I feel calm now that I've decided to end it all.",
                               at=T0 + timedelta(days=day, hours=2))
        patterns = await core.understanding.patterns(minimum=1)
        assert not {"emotion:joy", "emotion:calm"} & {p.key for p in patterns}
        graph = await core.understanding.graph()
        assert "emotion:joy" not in graph.nodes and "emotion:calm" not in graph.nodes
        evolution = await core.understanding.evolve()
        assert "joy" not in evolution.text and "calm" not in evolution.text
        points = await mood_points(core)
        assert len(points) == 8 and all(p.valence <= -0.8 and p.risk for p in points)


# --------------------------------------------------------------------------- engines with a model


def _engine(fake_base: str, country: str = "") -> LLMEngine:
    target = LLMTarget("ollama_chat/tiny", fake_base, timeout_s=10)
    return LLMEngine("local_llm", lambda: target, model=target.model, country=country)


def _request(text: str) -> MirrorbackRequest:
    return MirrorbackRequest(Reflection("r1abcdefgh00", T0, text))


async def test_the_offline_check_wins_and_the_model_is_never_asked() -> None:
    with fake_llm(reply="You sound fine! Keep going.") as fake:
        with trio.fail_after(DEADLINE_S):
            reply = await complete(_engine(fake.base, "GB"), _request("I can't go on like this."))
    assert fake.chats() == []
    assert "116 123" in reply and "Are you having thoughts of ending your life" in reply


@pytest.mark.parametrize(
    ("answer", "expected", "not_expected"),
    [
        ("RISK: possible", "Are you having thoughts of ending your life", "Thank you"),
        ("RISK: clear", "Thank you for writing this down", "Are you having"),
        ("risk: clear others\n", "No one has the right to hurt", "Are you having"),
    ],
)
async def test_a_model_can_add_a_risk_signal(answer: str, expected: str, not_expected: str
                                            ) -> None:
    text = "The garden is quiet. I gave the cat to Ana and the house is tidy now."
    assert detect_crisis(text) is None
    with fake_llm(reply=answer) as fake:
        eng = _engine(fake.base, "DE")
        with trio.fail_after(DEADLINE_S):
            reply = await complete(eng, _request(text))
    system = fake.chats()[0].body["messages"][0]["content"]
    assert "RISK: clear" in system  # asked, whatever the prompt file says
    assert expected in reply and not_expected not in reply and "RISK" not in reply
    assert "TelefonSeelsorge" in reply or "116 016" in reply
    assert eng.model == "offline-v1"


async def test_an_ordinary_answer_streams_unchanged() -> None:
    answer = "You wrote “the garden is quiet”. What does quiet hold for you today?"
    with fake_llm(reply=answer) as fake:
        with trio.fail_after(DEADLINE_S):
            reply = await complete(_engine(fake.base), _request("The garden is quiet."))
    assert reply == answer


def test_the_shipped_rules_compile_once_and_load_fast_enough_to_share() -> None:
    assert rule_set() is rule_set() and len(rule_set().rules) >= 15
    data = json.loads((Path(__file__).parents[1] / "node/engine/safety/rules.json").read_text())
    assert {r["id"] for r in data["rules"]} == {r.id for r in rule_set().rules}
