"""The crisis net's scored layer: evidence that adds up without a listed pattern, the
contexts that damp it, the rules judged with the same reading, and its figures on the
blind batches."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from node.engine.safety import assess, crisis_reply, detect_crisis
from node.engine.safety.detect import _assess
from node.engine.safety.evaluate import load_rows, score
from node.engine.safety.evidence import Reading
from node.engine.safety.normalize import normalize
from node.engine.safety.rules import RuleError, RuleSet, _read, compile_rules, rule_set

SETS = Path(__file__).parent / "fixtures" / "safety"
BLIND_SETS = ("blind.jsonl", "blind2.jsonl", "blind3.jsonl", "blind4.jsonl", "blind5.jsonl",
              # fresh1-7 were tuned on after their first score; fresh8 never was
              *(f"fresh{n}.jsonl" for n in range(1, 8)))
# Each blind batch was scored before the rules were tuned on it (docs/safety.md); these
# floors keep what tuning on it bought, and the figures there honest.
PER_SET_RECALL_FLOOR = 0.93
PER_SET_FALSE_ALARM_CEILING = 0.05
ORDINARY_ENTRY_ALARM_CEILING = 0.01  # of whole entries from ordinary journals
ADVICE_OR_DIAGNOSIS = (
    r"\byou should\b", r"\byou need to\b", r"\byou must\b", r"\btry\b", r"\bconsider\b",
    r"\bi recommend\b", r"\bmake sure\b", r"\bdon't worry\b", r"\bdepress", r"\bdiagnos",
)


def _rules_only() -> RuleSet:
    return replace(rule_set(), evidence=None)


def _reading(text: str) -> Reading:
    rules = rule_set()
    assert rules.evidence is not None
    return Reading(normalize(text, rules.vocabulary), text, rules.evidence)


# --------------------------------------------------------------------------- accumulating


@pytest.mark.parametrize(
    "text",
    [
        "I keep checking how tall the car park is.",  # dwelling + a place to fall from
        "Lately the car park roof is all I think about, how quick it would be.",
        "whats the point of me even",  # hopelessness about oneself, no listed pattern
        "It's never going to stop hurting, is it.",
    ],
)
def test_evidence_adds_up_to_a_check_in_where_no_rule_matches(text: str) -> None:
    assert _assess(text, _rules_only()).top is None  # no rule names this way of saying it
    assert assess(text).tier == "check_in", assess(text)


@pytest.mark.parametrize(
    ("alone", "together"),
    [
        ("I was thinking about the car park.", "I keep checking how tall the car park is."),
        ("I want to disappear into the garden.", "I want to disappear."),
        ("She has been cutting her arms again.", "I have been cutting my arms again."),
        ("I have never wanted to stop existing.", "I want to stop existing."),
    ],
)
def test_one_weak_cue_someone_else_or_a_negation_is_not_enough(alone: str,
                                                                together: str) -> None:
    assert assess(alone).top is None, assess(alone)
    assert assess(together).top is not None


def test_short_sentences_are_read_together() -> None:
    windows = _reading("how do people keep going. i can't. i don't want to").windows()
    assert any(w.window_end - w.window_start > 30 for w in windows)  # across sentences
    assert assess("how do people keep going. i can't. i don't want to").tier == "check_in"
    assert assess("i can't.").top is None


def test_two_strong_families_make_a_clear_risk_and_the_reply_says_so() -> None:
    text = "I've saved enough tablets, the note is written, tonight's the night."
    ev = rule_set().evidence
    assert ev is not None
    windows = _reading(text).windows()
    assert windows and max(w.score for w in windows) >= ev.crisis
    assert any(w.tier == "crisis" and {"means", "final"} <= set(w.families) for w in windows)
    assert assess(text).tier == "crisis"


@pytest.mark.parametrize(
    "text",
    [
        "ugh I want to disappear, this meeting lol",  # laughing, a trivial object
        'My son shouted "I want to die" when he lost the game.',  # someone else's words
        "My nan will murder me if I dent her car.",  # an idiom about a small thing
        "I'm going to do it: I'm asking her to marry me on Saturday!",  # what "it" is
        "Took two paracetamol for the headache and went to bed, as prescribed.",  # routine
        "Tonight's the night, the Eurovision final!",
        "That silence was so awkward I wanted to disappear.",  # embarrassment
        "I used to cut. Five years clean now and I love my life.",  # a resolved past
    ],
)
def test_benign_contexts_damp_the_evidence(text: str) -> None:
    assert assess(text).top is None, assess(text)


def test_a_frame_softens_a_rule_and_a_figure_of_speech_voids_an_uncertain_one() -> None:
    assert _assess("As a nurse I talk to patients who took an overdose.",
                   _rules_only()).tier == "crisis"
    assert assess("As a nurse I talk to patients who took an overdose.").tier == "check_in"
    assert _assess("I hope I don't wake up with a hangover.", _rules_only()).tier == "crisis"
    assert assess("I hope I don't wake up with a hangover.").top is None


def test_an_evidence_check_in_reply_quotes_asks_once_and_names_where_help_is() -> None:
    text = "Took the bus home. I keep checking how tall the car park is. Made tea."
    signal = detect_crisis(text)
    assert signal is not None and signal.tier == "check_in"
    assert signal.sentence.text.strip(" .") == "I keep checking how tall the car park is"
    reply = crisis_reply(text, signal)
    assert "“I keep checking how tall the car park is”" in reply
    assert reply.count("?") == 1 and "Are you" in reply and "findahelpline.com" in reply
    voice = re.sub(r"“[^”]*”", "“…”", reply).lower()
    assert not any(re.search(p, voice) for p in ADVICE_OR_DIAGNOSIS), reply


def test_harm_from_others_found_by_evidence_gets_the_safety_reply() -> None:
    signal = detect_crisis("I woke up and he was on top of me.")
    assert signal is not None and signal.category == "harm_from_others"
    assert "Are you safe right now" in crisis_reply("I woke up and he was on top of me.",
                                                   signal)


# --------------------------------------------------------------------------- machinery


def test_the_token_index_finds_every_match_a_full_search_finds() -> None:
    rules = rule_set()
    ev = rules.evidence
    assert ev is not None
    rows = load_rows(SETS / "heldout.jsonl") + load_rows(SETS / "blind4.jsonl")
    for row in rows:
        norm = normalize(row["text"], rules.vocabulary)
        found = {(i, a, b) for i, a, b in ev.cue_scanner.scan(norm, frozenset(norm.tokens))}
        for i, pattern in enumerate(ev.cue_scanner.patterns):
            for m in pattern.finditer(norm.text):
                assert (i, m.start(), m.end()) in found, (row["text"], pattern.pattern[:80])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["families"]["end"]["cues"].append([3, "@NOSUCH die"]), "NOSUCH"),
        (lambda d: d["families"]["end"]["cues"].append([30, "die"]), "out of range"),
        (lambda d: d["dampeners"]["laugh"].update(weight=1), "negative"),
        (lambda d: d["concepts"].update(OTHER=["x"]), "redefines"),
    ],
)
def test_a_broken_evidence_file_fails_loudly(change: object, message: str) -> None:
    raw = json.loads(json.dumps(_read("evidence.json")))
    change(raw)  # type: ignore[operator]
    with pytest.raises(RuleError, match=message):
        compile_rules(_read("concepts.json"), _read("rules.json"), frozenset(), raw)


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize("name", BLIND_SETS)
def test_each_blind_batch_keeps_its_figures(name: str) -> None:
    s = score(load_rows(SETS / name))
    misses = "\n".join(f"{m.label}:{m.kind} → {m.got}: {m.text}" for m in s.misses)
    assert s.recall >= PER_SET_RECALL_FLOOR, misses
    assert s.false_alarm_rate <= PER_SET_FALSE_ALARM_CEILING, misses


def test_ordinary_journals_are_not_flagged_by_the_scored_layer() -> None:
    # the persona journals and the sample journal: months of ordinary lives, none at risk
    fixtures = Path(__file__).parent / "fixtures"
    texts = [r["text"] for path in [*sorted((fixtures / "personas").glob("*.json")),
                                    fixtures / "journal.json"]
             for r in json.loads(path.read_text("utf-8"))["reflections"]]
    assert len(texts) >= 300
    added = [t for t in texts
             if assess(t).top is not None and _assess(t, _rules_only()).top is None]
    assert len(added) <= len(texts) * ORDINARY_ENTRY_ALARM_CEILING, added
