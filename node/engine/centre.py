"""The emotional centre of an entry: the sentence with the strongest feeling or
self-statement, and the words of it worth reflecting back.

``emotional_centre(analysis)`` scores each sentence for what a listener would
hear first — feelings named (or pointedly denied: "not happy"), how far it
leans either way (VADER, ``mood.sentence_valences``), how strongly ("so",
"really", "!", capitals), a statement about oneself ("I am", "I feel", "I
can't", "I miss", "I keep"), the people in it — and returns a
:class:`Centre`: the sentence, the clause around its focus (cut to at most
``MAX_QUOTE_WORDS`` words around the feeling or self-statement), and a short
*handle* for a closing question (the feeling word, a person, or a phrase of
content words — never a function word or a fragment that means nothing alone).

``meaningful(words)`` is the test every quote of the engine passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .analysis import Analysis, Span, Token
from .lexicon import lexicon
from .mood import sentence_valences

MAX_QUOTE_WORDS = 14
MAX_HANDLE_WORDS = 6
MIN_CONTENT_LETTERS = 3
MIN_CLAUSE_WORDS = 3
FEELING_WEIGHT = 3.0
DENIED_FEELING_WEIGHT = 1.5
SELF_STATEMENT_WEIGHT = 2.0
INTENSITY_WEIGHT = 0.75
PERSON_WEIGHT = 0.75
QUESTION_PENALTY = 2.0
SHORT_PENALTY = 1.0
CONTENT_WEIGHT = 0.05  # among equals, the sentence with more to it
VALENCE_WEIGHT = 2.0  # how strongly a sentence leans, either way (mood.sentence_valences)
_TRAILING = " \t\n.,;:!?…-–—\"'“”‘’()"
_INTENSIFIERS = frozenset({
    "so", "really", "very", "completely", "totally", "utterly", "extremely", "too",
    "such", "always", "never", "everything", "nothing", "nobody", "anymore", "again",
})
# "I <verb>" that says something about the self, not about the day's logistics
_SELF_VERBS = frozenset({
    "am", "feel", "felt", "feeling", "was", "can't", "cant", "couldn't", "don't", "dont",
    "keep", "kept", "miss", "missed", "want", "wanted", "need", "needed", "wish", "hate",
    "love", "loved", "know", "knew", "think", "thought", "hope", "fear", "worry", "worried",
    "believe", "regret", "wonder", "have", "haven't", "never", "always", "still", "just",
    "really", "used", "hold", "carry",
})
_SELF_SUBJECTS = frozenset({"i", "i'm", "im", "i've", "ive", "i'd", "i'll"})


@dataclass(frozen=True)
class Centre:
    sentence: int  # index into Analysis.sentences
    focus: Span  # the feeling or self-statement the sentence turns on
    quote: str  # the words to reflect back (an ellipsis where they were cut)
    handle: str | None  # a short phrase for a question, if one means something alone
    feeling: str | None  # the feeling word at the focus, if that is what it is


def content_words(words: str) -> list[str]:
    """The words of *words* that carry meaning (not stopwords, long enough)."""
    stop = lexicon().stopwords
    out = []
    for w in words.replace("’", "'").lower().split():
        w = w.strip(_TRAILING)
        letters = sum(c.isalpha() for c in w)
        if letters >= MIN_CONTENT_LETTERS and w not in stop:
            out.append(w)
    return out


def meaningful(words: str, *, single_ok: Sequence[str] = ()) -> bool:
    """Whether *words* mean something quoted alone: a clause of three words or more,
    two words of which one has content ("so tired", not "I am"), or one word that
    is a feeling, a person or a theme (or is in *single_ok*)."""
    parts = [w for w in words.split() if any(c.isalnum() for c in w)]
    if not parts:
        return False
    if len(parts) >= MIN_CLAUSE_WORDS:
        return True
    if len(parts) == 2:
        return bool(content_words(words))
    word = parts[0].strip(_TRAILING).lower().replace("’", "'")
    lex = lexicon()
    return (
        word in {s.lower() for s in single_ok}
        or (word,) in lex.feelings
        or (word,) in lex.contextual_feelings
        or (word,) in lex.themes
    )


def _sentence_tokens(a: Analysis, s: int) -> list[Token]:
    return [t for t in a.tokens if t.sentence == s]


def _self_statement(toks: Sequence[Token]) -> Token | None:
    """The first "I <self-verb>" of a sentence (or a feeling-less "I'm …")."""
    for i, t in enumerate(toks):
        if t.norm not in _SELF_SUBJECTS:
            continue
        if t.norm in ("i'm", "im", "i've", "ive"):
            return t
        nxt = toks[i + 1].norm if i + 1 < len(toks) else ""
        if nxt in _SELF_VERBS:
            return t
    return None


def sentence_scores(a: Analysis) -> list[float]:
    """How much each sentence carries, for a listener."""
    scores = [0.0] * len(a.sentences)
    for f in a.feelings:
        if f.sentence < len(scores):
            scores[f.sentence] += DENIED_FEELING_WEIGHT if f.negated else FEELING_WEIGHT
    for s in a.sentences:
        toks = _sentence_tokens(a, s.index)
        if _self_statement(toks) is not None:
            scores[s.index] += SELF_STATEMENT_WEIGHT
        stress = sum(1 for t in toks if t.norm in _INTENSIFIERS)
        stress += min(2, s.span.text.count("!"))
        stress += sum(1 for t in toks if len(t.text) > 2 and t.text.isupper())
        scores[s.index] += INTENSITY_WEIGHT * min(stress, 3)
        if s.is_question:
            scores[s.index] -= QUESTION_PENALTY
        if not any(len(t.norm) >= MIN_CONTENT_LETTERS for t in toks):
            scores[s.index] -= QUESTION_PENALTY  # "ok." or a row of emoji
        elif len(toks) < MIN_CLAUSE_WORDS and not any(f.sentence == s.index
                                                       for f in a.feelings):
            scores[s.index] -= SHORT_PENALTY  # "September." says little alone
        scores[s.index] += CONTENT_WEIGHT * min(len(content_words(s.span.text)), 8)
    for span, valence in sentence_valences(a.text):  # VADER, with the crisis net's ceilings
        for s in a.sentences:
            if s.span.start < span.end and span.start < s.span.end:
                scores[s.index] += VALENCE_WEIGHT * abs(valence)
    starts = [s.span.start for s in a.sentences]
    for p in a.people:
        for sp in p.spans:
            k = max(i for i, st in enumerate(starts) if st <= sp.start) if starts else 0
            scores[k] += PERSON_WEIGHT
    return scores


def clip_around(a: Analysis, sentence: Span, focus: int, max_words: int) -> str:
    """The words of *sentence* around character *focus*, at most *max_words*,
    with an ellipsis where they were cut."""
    toks = [t for t in a.tokens if sentence.start <= t.start and t.end <= sentence.end]
    if not toks:
        raw = " ".join(sentence.text.split()).strip(_TRAILING)
        return raw or " ".join(sentence.text.split())
    if len(toks) <= max_words:
        return " ".join(a.text[toks[0].start : toks[-1].end].split())
    at = next((k for k, t in enumerate(toks) if t.end > focus), 0)
    first = max(0, min(at - max_words // 3, len(toks) - max_words))
    last = first + max_words - 1
    body = " ".join(a.text[toks[first].start : toks[last].end].split()).strip(_TRAILING)
    return f"{'…' if first > 0 else ''}{body}{'…' if last < len(toks) - 1 else ''}"


def _clause_of(a: Analysis, sentence: Span, focus: Span) -> Span:
    """The clause of *sentence* that holds *focus* (cut at , ; : — and at "but")."""
    text = a.text
    start, end = sentence.start, sentence.end
    for k in range(focus.start - 1, sentence.start - 1, -1):
        if text[k] in ",;:—–(":
            start = k + 1
            break
    for k in range(focus.end, sentence.end):
        if text[k] in ",;:—–)":
            end = k
            break
    clause = Span(start, end, text[start:end])
    words = [t for t in a.tokens if start <= t.start and t.end <= end]
    return clause if len(words) >= 3 else sentence


def emotional_centre(a: Analysis, *, avoid: Sequence[Span] = ()) -> Centre | None:
    """The sentence an entry turns on, and the words to reflect back; None for an entry
    with nothing to quote. Sentences overlapping *avoid* (a tension already
    reflected in full, say) are passed over when another will do."""
    if not a.sentences:
        return None
    scores = sentence_scores(a)
    candidates = [
        s.index for s in a.sentences
        if not any(s.span.start < v.end and v.start < s.span.end for v in avoid)
    ] or [s.index for s in a.sentences]
    # a sentence that means nothing quoted alone ("I went!!") is not the centre
    candidates = [i for i in candidates if meaningful(a.sentences[i].span.text)] or candidates
    best = max(candidates, key=lambda i: (scores[i], -i))
    sentence = a.sentences[best]
    feelings = [f for f in a.named_feelings if f.sentence == best]
    denied = [f for f in a.feelings if f.sentence == best and f.negated]
    toks = _sentence_tokens(a, best)
    me = _self_statement(toks)
    if feelings:
        focus, feeling = feelings[0].span, " ".join(feelings[0].span.text.split())
    elif denied:
        focus, feeling = denied[0].span, None
    elif me is not None:
        focus, feeling = Span(me.start, me.end, me.text), None
    elif toks:
        focus, feeling = Span(toks[0].start, toks[0].end, toks[0].text), None
    else:
        focus, feeling = sentence.span, None
    quote = clip_around(a, sentence.span, focus.start, MAX_QUOTE_WORDS)
    if not any(c.isalnum() for c in quote):
        quote = " ".join(sentence.span.text.split())
    clause = _clause_of(a, sentence.span, focus)
    handle_text = clip_around(a, clause, focus.start, MAX_HANDLE_WORDS)
    names = [p.name for p in a.people if p.name]
    handle = handle_text if meaningful(handle_text, single_ok=names) else None
    if feeling is not None and feeling[:1].isupper() and feeling[1:].islower():
        feeling = feeling.lower()  # "Grateful for…" opening a sentence
    return Centre(best, focus, quote, handle, feeling)
