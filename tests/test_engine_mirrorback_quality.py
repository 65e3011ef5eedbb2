"""Mirrorbacks that reflect what matters, say only true things about the past, vary,
and never advise — over whole journals, as a person meets them reply after reply.

Journals are replayed the way the node does it: each reflection gets its
mirrorback with the reflections before it (and their stored mirrorbacks) as
the past (``OfflineEngine.stream`` is given what ``MirrorCore.past_for`` gives).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from crdt.journal import Mirrorback, Reflection
from node.engine.centre import emotional_centre, meaningful
from node.engine.lexicon import lexicon
from node.engine.offline import compose_mirrorback
from node.engine.recurrence import PAST_WINDOW
from node.engine.safety import detect_crisis
from node.engine.text import analyze
from tests.helpers import REPO
from tests.mirrorback_claims import check, claims_in, sentences
from tests.persona_eval import load_personas

T0 = datetime(2026, 1, 5, 21, tzinfo=UTC)
MAX_OPENER_SHARE = 0.20
TEMPLATE_WINDOW = 10

WORK_WEEK = [
    "Work was relentless today, back-to-back meetings and no lunch.",
    "Another late night at the office finishing slides for the client.",
    "My boss moved the deadline again. I feel anxious about work all the time.",
    "Work was fine. Boring, but fine. Made pasta.",
    "Big presentation at work went okay. Relieved it's over.",
    "Emails until midnight again. I'm tired of this job.",
    "A colleague took credit for my work in the meeting. I'm furious and said nothing.",
    "Quiet day at work for once. Left at five and walked home.",
    "Performance review at work on Friday. Nervous.",
    "The review went better than I feared. My manager said I'm doing well at work.",
    "Worked Saturday to catch up. The office is eerie when it's empty.",
    "Sunday. Tried not to think about work. Failed.",
    "New project at work, exciting but huge. I'm a bit scared of it.",
    "Work work work. I can't remember the last time I saw friends.",
    "Stayed late at work again and missed yoga. Annoyed with myself.",
    "Lunch with my team, laughed a lot. Work feels lighter this week.",
    "Deadline tomorrow. Work has eaten my whole evening.",
    "Shipped the project at work! Proud and exhausted.",
    "Slept in. Didn't open the work laptop once. Strange and good.",
    "Back at work, same as ever. I'm not sure this job is for me anymore.",
]

ADVICE = [
    r"\byou should\b", r"\byou could\b", r"\byou need to\b", r"\byou must\b", r"\btry to\b",
    r"\btry\b", r"\bi recommend\b", r"\bi suggest\b", r"\bconsider\b", r"\bit might help\b",
    r"\bhave you tried\b", r"\bwhy not\b", r"\bwhy don't you\b", r"\bmake sure\b",
    r"\bremember to\b", r"\bdon't forget\b", r"\bdon't worry\b", r"\blet yourself\b",
    r"\ballow yourself\b", r"\bgive yourself\b", r"\bbe kind to yourself\b", r"\bself-care\b",
    r"\bit's okay to\b", r"\bmaybe you\b", r"\bperhaps you\b", r"\bhow about\b",
]
# verbs that would open an imperative ("Take a breath.", "Notice what…")
IMPERATIVE_OPENERS = frozenset({
    "take", "try", "remember", "consider", "let", "allow", "give", "make", "go", "stop",
    "start", "breathe", "be", "do", "don't", "keep", "write", "talk", "reach", "call",
    "notice", "focus", "ask", "treat", "find", "put", "hold", "sit", "rest", "drink", "eat",
    "sleep", "tell", "see", "look", "think", "imagine", "accept", "forgive", "journal",
})


def replay(texts: list[str]) -> list[tuple[Reflection, str, list[Reflection]]]:
    """Each text's mirrorback after the ones before it: (reflection, reply, past shown),
    one reflection a day. Pure, so replays are shared between the tests."""
    return list(_replay(tuple(texts)))


@cache
def _replay(texts: tuple[str, ...]) -> tuple[tuple[Reflection, str, list[Reflection]], ...]:
    start, step = T0, timedelta(days=1)
    past: list[Reflection] = []
    out = []
    for i, text in enumerate(texts):
        r = Reflection(f"rp{i:010d}", start + i * step, text)
        shown = past[-PAST_WINDOW:]
        reply = compose_mirrorback(text, shown)
        out.append((r, reply, shown))
        past.append(replace(r, mirrorback=Mirrorback(reply, "offline", "offline-v1", r.created_at)))
    return tuple(out)


def journal_texts() -> list[list[str]]:
    """Journals to replay: the tuning personas, the fixture journal, a week of work."""
    out = [[r.text for r in p.reflections] for p in load_personas() if not p.held_out]
    fixture = json.loads((REPO / "tests/fixtures/journal.json").read_text(encoding="utf-8"))
    out.append([e["text"] for e in fixture["reflections"]])
    out.append(WORK_WEEK)
    return out


def fifty() -> list[str]:
    personas = [p for p in load_personas() if not p.held_out]
    texts = [r.text for p in personas for r in p.reflections]
    return texts[:50]


def composed(replies: list[tuple[Reflection, str, list[Reflection]]]
             ) -> list[tuple[Reflection, str, list[Reflection]]]:
    """The replies the composer wrote: an entry with risk of harm gets the crisis
    reply or a check-in (``safety``, tested on its own) instead."""
    return [item for item in replies if detect_crisis(item[0].text) is None]


def voice(reply: str) -> str:
    """The engine's own words: quotations of the person removed."""
    return re.sub(r"“[^”]*”", "“…”", reply)


def skeleton(sentence: str) -> str:
    return re.sub(r"“[^”]*”", "“…”", sentence)


def opener(reply: str) -> str:
    first = sentences(reply)[0]
    return " ".join(skeleton(first).split()[:3])


# --------------------------------------------------------------------------- the centre

CENTRES = [
    ("Went to the shop, bought milk and bread. Then Sam called to say he's moving to Perth. "
     "I'm heartbroken.", "heartbroken"),
    ("The meeting ran long. Lunch was cold. I keep thinking I'm not good enough for this job.",
     "not good enough"),
    ("Sunny morning. Walked the dog. Mum's scan results came back clear and I cried with relief "
     "in the kitchen.", "relief"),
    ("Bus was late. I'm so angry at myself for snapping at Lena. Dinner was fine.", "angry"),
    ("Laundry, emails, groceries. I miss who I used to be.", "I miss who I used to be"),
]


@pytest.mark.parametrize(("text", "core"), CENTRES)
def test_the_reply_opens_on_the_emotional_centre(text: str, core: str) -> None:
    centre = emotional_centre(analyze(text))
    assert centre is not None and core in centre.quote
    reply = compose_mirrorback(text)
    first = sentences(reply)[0]
    assert core in first, reply


def test_no_quote_is_a_function_word_or_a_fragment() -> None:
    lex = lexicon()
    for texts in journal_texts():
        for r, reply, _ in replay(texts):
            names = {p.name for p in analyze(r.text).people if p.name}
            for quote in re.findall(r"“([^”]*)”", reply):
                bare = quote.strip("…").strip()
                words = bare.split()
                assert words, (quote, reply)
                if len(words) == 1:
                    w = words[0].lower().strip(".,!?'")
                    assert ((w,) in lex.feelings or (w,) in lex.contextual_feelings
                            or words[0] in names or (w,) in lex.themes), (quote, r.text)
                else:
                    assert meaningful(bare), (quote, r.text)


# --------------------------------------------------------------------------- claims


def test_every_claim_about_past_reflections_is_true() -> None:
    made = 0
    for texts in journal_texts():
        for _, reply, shown in replay(texts):
            for fact in claims_in(reply):
                check(fact, shown)
                made += 1
    assert made >= 20  # the journals give the engine plenty to claim


def test_a_feeling_is_claimed_only_by_its_own_word() -> None:
    """The defect report: "Feelings like “happy” were in your previous reflection too"
    after a reflection that said proud and relief."""
    texts = ["Finished the marathon. I'm proud, and such a relief it's done.",
             "Lunch with Dana by the river. I'm happy, properly happy."]
    (_, _, _), (_, reply, shown) = replay(texts)
    assert "previous reflection" not in reply or "“happy”" not in reply
    for fact in claims_in(reply):
        check(fact, shown)
    again = replay(["I felt happy at the market.", "Happy again today, sunshine."])[1][1]
    facts = claims_in(again)
    assert facts and facts[0].kind == "word" and facts[0].subject == "happy"


def test_the_same_statistic_is_never_in_two_consecutive_replies() -> None:
    for texts in [*journal_texts(), fifty()]:
        previous: set[str] = set()
        for _, reply, _ in replay(texts):
            subjects = {f.subject.lower() for f in claims_in(reply)}
            assert not subjects & previous, (subjects, reply)
            previous = subjects


def test_a_journal_about_work_is_not_told_so_every_time() -> None:
    replies = [reply for _, reply, _ in replay(WORK_WEEK)]
    about_work = [r for r in replies if any(f.subject.lower() == "work" for f in claims_in(r))]
    assert len(about_work) <= len(replies) // 4
    assert sum(bool(claims_in(r)) for r in replies) <= len(replies) // 2


# --------------------------------------------------------------------------- variety


def test_fifty_consecutive_replies_vary() -> None:
    replies = [reply for _, reply, _ in composed(replay(fifty()))]
    assert len(replies) >= 45  # a few entries of the personas get a check-in instead
    openers = Counter(opener(r) for r in replies)
    assert openers.most_common(1)[0][1] <= MAX_OPENER_SHARE * len(replies), openers
    for i, reply in enumerate(replies):
        mine = {skeleton(s) for s in sentences(reply)}
        for j in range(max(0, i - TEMPLATE_WINDOW + 1), i):
            repeated = mine & {skeleton(s) for s in sentences(replies[j])}
            assert not repeated, (i, j, repeated)


def test_the_same_entry_after_the_same_past_gets_the_same_reply() -> None:
    first = [reply for _, reply, _ in replay(fifty()[:15])]
    assert first == [reply for _, reply, _ in replay(fifty()[:15])]


# --------------------------------------------------------------------------- never advice


def test_replies_reflect_and_never_advise() -> None:
    count = 0
    for texts in [*journal_texts(), fifty()]:
        for _, reply, _ in composed(replay(texts)):
            count += 1
            own = voice(reply).lower()
            for pattern in ADVICE:
                assert re.search(pattern, own) is None, (pattern, reply)
            for sentence in sentences(voice(reply)):
                first = sentence.split()[0].lower().strip("“”…,.")
                assert first not in IMPERATIVE_OPENERS, (sentence, reply)
            assert reply.count("?") == 1 and reply.endswith("?"), reply
    assert count >= 150
