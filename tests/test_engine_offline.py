"""The offline engine: reads an entry, reflects its own words back, never advises.

Each test states a property of the mirrorback that a person would notice if it
broke: their words are missing, a feeling they did not name is named, advice
or flattery creeps in, a crisis goes unanswered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt.journal import Reflection
from node.engine.base import MirrorbackRequest, complete
from node.engine.offline import OfflineEngine, compose_mirrorback
from node.engine.recurrence import PAST_WINDOW, recurring_threads
from node.engine.safety import detect_crisis
from node.engine.text import analyze, split_sentences
from tests.helpers import REPO
from tests.mirrorback_claims import check, claims_in

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

# Twenty-odd entries of different shapes: long and short, with and without
# feelings, people, tensions; other languages; emoji; questions.
CORPUS = [
    "Work has been relentless this week. My boss keeps moving the deadline and I feel anxious "
    "all the time. Part of me wants to quit, but part of me loves what I build. I haven't slept "
    "properly since Sunday. Talked to Maya about it and she just listened.",
    "ok.",
    "Went for a long walk by the river with my sister. The light on the water was beautiful and "
    "I felt calm for the first time in weeks.",
    "I'm not angry at Tom, just disappointed. He forgot my birthday again and said it was no big "
    "deal.",
    "Money is tight. Rent went up and I keep checking my bank account at 3am. I should ask for a "
    "raise but I want to avoid the conversation entirely.",
    "Heute war ein langer Tag. Ich bin müde und traurig.",
    "😭😭😭",
    "Finished the first draft of my novel today! I'm proud and a little scared to show anyone.",
    "My mom called. We talked for an hour about nothing and everything. I miss her.",
    "Why do I always say yes when I mean no? Another weekend gone to other people's plans.",
    "Grateful for my friends tonight. Priya cooked, Sam brought wine, and we laughed until "
    "midnight.",
    "Exam tomorrow. Haven't studied enough. Stomach in knots.",
    "Dad is in the hospital again. The doctors say it's stable but I can't stop worrying. I feel "
    "guilty that I'm not there.",
    "I don't know. Everything feels heavy and I can't explain why.",
    "Started painting again after two years. Messy, bad, fun.",
    "Lonely in a full office. Everyone is nice but nobody really knows me.",
    "Yoga this morning, then a nap. Quiet Sunday. Nothing to report.",
    "I have to finish the report tonight, but I want to go to Lena's party.",
    "Although the move went fine, I'm exhausted and the apartment still feels like someone else's.",
    "My therapist asked what I actually want from my career, and I had no answer. It's unsettling.",
    "This deadline is killing me, I could kill for a coffee.",
    "I feel so depressed lately. Nothing seems worth doing and I should probably see someone.",
    "Сегодня был тяжёлый день. Маша не позвонила.",
    "We finally paid off the loan!!! I feel free, relieved, a bit giddy. Celebrating with Jordan "
    "tonight.",
    "Today I kept thinking about work and my team, and I felt frustrated but also hopeful. " * 60,
]

# What the engine must never say in its own voice (quotes of the person excluded).
BANNED = [
    # advice
    r"\byou should\b",
    r"\bshould you\b",
    r"\byou need to\b",
    r"\byou must\b",
    r"\btry to\b",
    r"\btry\b",
    r"\bconsider\b",
    r"\bit might help\b",
    r"\bit may help\b",
    r"\bi recommend\b",
    r"\bhave you tried\b",
    r"\bwhy not\b",
    r"\bwhy don't you\b",
    r"\bmake sure\b",
    r"\bremember to\b",
    r"\bdon't worry\b",
    r"\bstay positive\b",
    r"\blet go\b",
    r"\bself-care\b",
    # diagnosis
    r"\bdepression\b",
    r"\bdepressed\b",
    r"\bdisorder\b",
    r"\bdiagnos",
    r"\bsymptom",
    r"\bptsd\b",
    r"\badhd\b",
    r"\bbipolar\b",
    r"\btrauma\b",
    r"\bburnout\b",
    r"\bpanic attack",
    r"\btoxic\b",
    r"\bnarcissis",
    r"\bcodependen",
    # flattery and platitudes
    r"\bgreat job\b",
    r"\bwell done\b",
    r"\bproud of you\b",
    r"\bso strong\b",
    r"\bamazing\b",
    r"\bbrave\b",
    r"\bwonderful\b",
    r"\bgood for you\b",
    r"\bawesome\b",
    r"\bimpressive\b",
    r"\bhappens for a reason\b",
    r"\bsilver lining\b",
    r"\bi'm sorry to hear\b",
]

CRISIS = [
    "I want to kill myself.",
    "Honestly I don't want to be alive anymore.",
    "i dont want to live anymore, everyone would be better off without me",
    "I've been thinking about suicide a lot this week.",
    "I hurt myself again last night and I can't tell anyone.",
    "Sometimes I wish I were dead.",
    "I keep thinking about ending my life.",
    "I started cutting myself again.",
]

NEAR_MISSES = [
    "This deadline is killing me.",
    "I could kill for a coffee right now.",
    "I nearly died laughing at Sam's story.",
    "I wanted to die of embarrassment when my slides froze.",
    "My feet are killing me after that hike.",
    "I'm dead tired but it was worth it.",
    "That presentation killed it, everyone loved it.",
]


def _voice(reply: str) -> str:
    """The engine's own words: *reply* with every quotation of the person removed."""
    return re.sub(r"“[^”]*”", "“…”", reply)


def _reflection(text: str, i: int = 0, rid: str | None = None) -> Reflection:
    return Reflection(rid or f"r{i:011d}", T0 + timedelta(hours=i), text)


def _past(texts: list[str]) -> list[Reflection]:
    return [_reflection(t, i) for i, t in enumerate(texts)]


# --------------------------------------------------------------------------- determinism


def test_same_text_gives_the_same_mirrorback() -> None:
    for text in CORPUS:
        assert compose_mirrorback(text) == compose_mirrorback(text)


def test_mirrorback_is_the_same_in_another_process() -> None:
    # str hashes are salted per process: any use of hash() or global random shows here
    code = (
        "from node.engine.offline import compose_mirrorback\n"
        "import json, sys\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps([compose_mirrorback(t) for t in texts]))\n"
    )
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(CORPUS[:12]),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == [compose_mirrorback(t) for t in CORPUS[:12]]


# --------------------------------------------------------------------------- own words


def test_reflects_the_entrys_own_words() -> None:
    reply = compose_mirrorback(CORPUS[0])
    for word in ("anxious", "Maya", "boss", "quit", "loves what I build", "deadline"):
        assert word in reply, word


@pytest.mark.parametrize("text", CORPUS)
def test_every_mirrorback_quotes_the_entry(text: str) -> None:
    reply = compose_mirrorback(text)
    quotes = re.findall(r"“([^”]*)”", reply)
    assert quotes, reply
    flat = " ".join(text.split()).lower()
    for quote in quotes:
        # each quote is the person's words (an ellipsis marks where it was cut; a
        # feeling word opening a sentence is quoted in lower case)
        for piece in quote.split("…"):
            assert " ".join(piece.split()).lower() in flat, (piece, text)


def test_two_entries_get_clearly_different_mirrorbacks() -> None:
    replies = [compose_mirrorback(t) for t in CORPUS]
    assert len(set(replies)) == len(replies)
    a = compose_mirrorback("My sister Ana moved to Lisbon and the flat is so quiet. I miss her.")
    b = compose_mirrorback("The garden is finally blooming. Spent all morning outside, happy.")
    assert "Ana" in a and "Ana" not in b
    assert "happy" in b and "happy" not in a


# --------------------------------------------------------------------------- feelings


def test_names_the_feelings_the_entry_names() -> None:
    reply = compose_mirrorback("Finished the draft. I'm proud and a little scared to show anyone.")
    assert "“proud”" in reply and "“scared”" in reply


def test_does_not_name_feelings_the_entry_does_not_name() -> None:
    reply = compose_mirrorback("Yoga this morning, then a nap. Quiet Sunday.")
    assert "feeling" not in reply.lower() and "named" not in reply.lower()
    assert analyze("Yoga this morning, then a nap. Quiet Sunday.").feelings == ()


def test_a_negated_feeling_is_not_named_as_felt() -> None:
    text = "I'm not angry at Tom, just disappointed."
    a = analyze(text)
    assert [f.span.text for f in a.named_feelings] == ["disappointed"]
    assert [(f.family, f.negated) for f in a.feelings] == [("anger", True), ("sadness", False)]
    reply = compose_mirrorback(text)
    assert "“angry”" not in reply and "“not angry”" in reply


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I can't stop worrying about it.", [("worrying", "anxiety", False)]),
        ("I never feel rested.", [("rested", "calm", True)]),
        ("I'm not happy but I'm relieved.", [("happy", "joy", True), ("relieved", "calm", False)]),
        ("I sat down on the bench.", []),
        ("I feel so down today.", [("down", "sadness", False)]),
        ("I lost my keys again.", []),
        ("I feel lost.", [("lost", "confusion", False)]),
        (
            "I'm stressed out, burnt out.",
            [("stressed out", "anxiety", False), ("burnt out", "tiredness", False)],
        ),
        ("I'm good with that plan.", []),
        ("Then Hope came by with soup.", []),
        ("so tired 😭", [("tired", "tiredness", False), ("😭", "sadness", False)]),
    ],
)
def test_feeling_detection(text: str, found: list[tuple[str, str, bool]]) -> None:
    feelings = analyze(text).feelings
    assert [(f.span.text, f.family, f.negated) for f in feelings] == found
    for f in feelings:
        assert text[f.span.start : f.span.end] == f.span.text


def test_every_lexicon_feeling_word_is_found_after_i_feel() -> None:
    data = json.loads(
        resources.files("node.engine.data").joinpath("emotions.json").read_text("utf-8")
    )
    for family, entry in data["families"].items():
        for word in entry["words"] + entry["contextual"]:
            found = analyze(f"I feel {word} today.").feelings
            assert [f.family for f in found] == [family], (word, found)


# --------------------------------------------------------------------------- people, themes


def test_people_names_and_roles() -> None:
    a = analyze(
        "Maya called on Monday. I told my boss about it, and my friend Sam laughed. "
        "Later I cooked with Mom while my older sister watched."
    )
    people = {p.key: p for p in a.people}
    assert set(people) == {"maya", "my boss", "sam", "my mom", "my sister"}
    assert people["sam"].role == "friend" and people["sam"].name == "Sam"
    assert people["my boss"].theme == "work"
    assert people["maya"].spans[0].text == "Maya"


def test_capitalised_words_that_are_not_people() -> None:
    a = analyze("Work was hard. On Monday I went to the Office Christmas party. I am tired.")
    assert a.people == ()


def test_other_languages_get_no_invented_names() -> None:
    a = analyze("Heute war ein langer Tag mit vielen Terminen und Gesprächen im Büro.")
    assert not a.english and a.people == ()
    assert "Heute war ein langer Tag" in compose_mirrorback(a.text)


def test_themes_with_evidence() -> None:
    text = "Rent went up again and my paycheck barely covers it. I slept four hours."
    a = analyze(text)
    themes = {t.name: [s.text for s in t.spans] for t in a.themes}
    assert themes["money"] == ["Rent", "paycheck"]
    assert themes["sleep"] == ["slept"]
    assert a.themes[0].name == "money"
    reply = compose_mirrorback(text)
    assert "money" in reply.lower() and "sleep" in reply


@pytest.mark.parametrize(
    ("text", "kind", "left", "right"),
    [
        (
            "Part of me wants to quit, but part of me loves what I build.",
            "parts",
            "Part of me wants to quit",
            "part of me loves what I build",
        ),
        (
            "I should ask for a raise but I want to avoid the conversation.",
            "should_want",
            "I should ask for a raise",
            "I want to avoid the conversation",
        ),
        (
            "I want to go out tonight, but I'm exhausted.",
            "want_but",
            "I want to go out tonight",
            "I'm exhausted",
        ),
        (
            "Everyone is nice but nobody really knows me.",
            "contrast",
            "Everyone is nice",
            "nobody really knows me",
        ),
        (
            "Although the move went fine, I'm exhausted.",
            "contrast",
            "the move went fine",
            "I'm exhausted",
        ),
    ],
)
def test_tensions(text: str, kind: str, left: str, right: str) -> None:
    t = analyze(text).tensions[0]
    assert (t.kind, t.left.text, t.right.text) == (kind, left, right)
    reply = compose_mirrorback(text)
    assert f"“{left}”" in reply and f"“{right}”" in reply


def test_own_question_is_reflected() -> None:
    reply = compose_mirrorback("Why do I always say yes when I mean no? Another weekend gone.")
    assert "“Why do I always say yes when I mean no”" in reply
    assert reply.count("?") == 1


def test_sentences_survive_abbreviations_and_decimals() -> None:
    spans = split_sentences("Dr. Lee said 2.5 hours. Fine!\nNext line")
    assert [s.text for s in spans] == ["Dr. Lee said 2.5 hours.", "Fine!", "Next line"]


# --------------------------------------------------------------------------- the past


def test_notes_a_theme_shared_with_the_past() -> None:
    past = _past(
        [
            "Long day at work, the meeting ran over.",
            "Went to the beach.",
            "My job is draining me.",
            "Cooked dinner with friends.",
            "Quiet day.",
            "Another deadline moved.",
            "Read a book.",
            "Rain all day.",
            "Slept in.",
            "Painted for an hour.",
        ]
    )
    reply = compose_mirrorback("Work was chaos again, emails until late.", past)
    facts = claims_in(reply)
    assert [(f.subject, f.n, f.w) for f in facts] == [("work", 3, 10)], reply
    check(facts[0], past)


def test_notes_a_person_shared_with_the_past() -> None:
    past = _past(["Maya came over.", "Lunch with Maya.", "Rain.", "Maya called."])
    reply = compose_mirrorback("Talked to Maya for hours.", past)
    facts = claims_in(reply)
    assert [(f.subject, f.n, f.w) for f in facts] == [("Maya", 3, 4)], reply
    check(facts[0], past)


def test_no_pattern_note_without_a_shared_thread() -> None:
    past = _past(["Went to the beach.", "Read a book.", "Rain all day."])
    reply = compose_mirrorback("Work was chaos again, emails until late.", past)
    assert "reflection" not in reply
    assert reply == compose_mirrorback("Work was chaos again, emails until late.")


def test_only_the_recent_past_is_read() -> None:
    old_work = _past(["Work work work, my boss again."] * 500)
    recent = [_reflection("Went to the beach.", 500 + i) for i in range(PAST_WINDOW)]
    threads = recurring_threads(analyze("Work is heavy."), old_work + recent)
    assert threads == ()


# --------------------------------------------------------------------------- house rules


@pytest.mark.parametrize("text", CORPUS)
def test_no_advice_diagnosis_or_flattery(text: str) -> None:
    reply = compose_mirrorback(text, _past(CORPUS[:8]))
    voice = _voice(reply).lower()
    for pattern in BANNED:
        assert re.search(pattern, voice) is None, (pattern, reply)


@pytest.mark.parametrize("text", CORPUS)
def test_at_most_one_question_and_it_ends_the_reply(text: str) -> None:
    reply = compose_mirrorback(text, _past(CORPUS[:8]))
    assert reply.count("?") <= 1
    if "?" in reply:
        assert reply.endswith("?")


def test_quoting_the_person_is_not_advice() -> None:
    # their own "should" may be quoted back, never said in the engine's voice
    text = "I feel so depressed lately. I should probably see someone."
    reply = compose_mirrorback(text)
    assert "depressed" in reply
    assert "depressed" not in _voice(reply) and "should" not in _voice(reply)


def test_edge_cases_are_answered() -> None:
    for text in ("ok.", "", "   ", "...", "😭😭😭", "a" * 30_000, "\u200b\u202e test", "？？"):
        reply = compose_mirrorback(text)
        assert reply.strip()
        assert reply.count("?") <= 1


@given(st.text(max_size=400))
def test_any_text_gets_a_mirrorback(text: str) -> None:
    reply = compose_mirrorback(text)
    assert reply.strip() and reply.count("?") <= 1


# --------------------------------------------------------------------------- crisis


@pytest.mark.parametrize("text", CRISIS)
def test_crisis_language_gets_care_and_resources(text: str) -> None:
    assert detect_crisis(text) is not None
    reply = compose_mirrorback(text, _past(CORPUS[:5]))
    assert "findahelpline.com" in reply and "emergency number" in reply
    assert reply.count("?") <= 1
    in_us = compose_mirrorback(text, _past(CORPUS[:5]), country="US")
    assert "988" in in_us and "911" in in_us and in_us.count("?") <= 1
    voice = _voice(reply).lower()
    for pattern in BANNED:
        assert re.search(pattern, voice) is None, (pattern, reply)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_figures_of_speech_are_not_crises(text: str) -> None:
    assert detect_crisis(text) is None
    assert "findahelpline" not in compose_mirrorback(text)
    assert "988" not in compose_mirrorback(text, country="US")


def test_crisis_inside_a_long_entry_is_not_lost() -> None:
    text = "Work was fine. " * 200 + "Honestly I want to die. " + "Dinner was fine. " * 50
    assert "988" in compose_mirrorback(text, country="US")


# --------------------------------------------------------------------------- engine


async def test_stream_yields_compose_mirrorback() -> None:
    engine = OfflineEngine()
    assert (engine.name, engine.model) == ("offline", "offline-v1")
    past = _past(["Work was long.", "Maya called.", "My boss again."])
    entry = _reflection(CORPUS[0], 10, rid="newentry0001")
    request = MirrorbackRequest(entry, (*past, entry))  # the entry itself is never its own past
    chunks = [c async for c in engine.stream(request)]
    assert len(chunks) >= 2
    assert "".join(chunks) == compose_mirrorback(CORPUS[0], past)
    assert await complete(engine, request) == compose_mirrorback(CORPUS[0], past)


def test_offline_engine_opens_no_socket_and_never_imports_litellm() -> None:
    code = (
        "import sys\n"
        "events = []\n"
        "sys.addaudithook(lambda e, a: events.append(e) if e.startswith('socket.') else None)\n"
        "from node.engine.offline import compose_mirrorback\n"
        "compose_mirrorback('Work was long and my boss was short with me. I feel tired.')\n"
        "compose_mirrorback('I want to kill myself.')\n"
        "print(events, 'litellm' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.split() == ["[]", "False"]


def test_people_are_echoed_with_their_grammar() -> None:
    one = compose_mirrorback("My boss was short with me.")
    many = compose_mirrorback("My kids were loud all day.")
    assert "your boss" in one.lower() and "boss appear " not in one.lower()
    assert "your kids" in many.lower()
    assert "kids is " not in many.lower() and "kids appears" not in many.lower()
    assert "does your kids" not in many.lower()
