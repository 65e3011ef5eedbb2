"""Reading one entry: sentences, words, feelings, people, themes, keyphrases, tensions.

``analyze(text)`` returns an ``Analysis`` (``node.engine.analysis``): frozen
dataclasses whose findings each carry ``Span``s, so a caller can quote its evidence.

Theory of operation: the text is split into sentences, each sentence into word
tokens (``lexicon.WORD_RE``). Every later step walks the token list once and
looks phrases up in the ``Lexicon`` (data files, English), so an entry of n
words costs O(n) dictionary lookups. Nothing here is random, touches the
network or the clock; the same text always gives the same ``Analysis``.

Known limits (the engine issue refines them): English only (other languages
get sentences, keyphrases and emoji feelings, not names or themes); negation
is a three-word window; names are capitalised words that are not known words.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter

from .analysis import (
    TENSION_PRIORITY,
    Analysis,
    Feeling,
    Keyphrase,
    Person,
    Sentence,
    Span,
    Tension,
    TensionKind,
    Theme,
    Token,
)
from .lexicon import WORD_RE, Lexicon, lexicon, normalize_token
from .safety import assess

MAX_ANALYSIS_CHARS = 20_000  # longer entries are read up to here
NEGATION_WINDOW_TOKENS = 3
FEELING_CONTEXT_WINDOW_TOKENS = 4
MAX_KEYPHRASE_TOKENS = 4
MAX_KEYPHRASES = 8
MAX_NAME_TOKENS = 3
MIN_ENGLISH_STOPWORD_SHARE = 0.15  # below this (and enough words) an entry is not read as English
MIN_TOKENS_FOR_LANGUAGE_GUESS = 4

_SENTENCE_END_RE = re.compile(r"[.!?…]+[\"'”’)\]]*|\n")
_CLAUSE_BREAK_RE = re.compile(r"[,;:()\[\]—–]|\s-\s|\.\.\.")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr"})
_NEGATION_STOPPERS = frozenset({"but", "yet", "although", "though", "however"})
_LEADING_CONCESSIVES = frozenset({"although", "though", "even"})  # "Although X, Y"
_TRAILING_JOINERS = frozenset({"and", "but", "while", "the", "yet"})
_LEADING_CONJUNCTIONS = frozenset({"and", "but", "so", "then", "or"})
_CONTEXTUAL_BLOCKERS = frozenset({"with", "to", "for", "on", "of", "at"})


# --------------------------------------------------------------------------- splitting


def _trimmed(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end, text[start:end]) if end > start else None


def _is_abbreviation(text: str, start: int, dot: int) -> bool:
    k = dot
    while k > start and (text[k - 1].isalnum() or text[k - 1] == "."):
        k -= 1
    word = text[k:dot].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> tuple[Span, ...]:
    """Sentences (and lines) of *text*, trimmed; every character not whitespace is in one."""
    spans: list[Span] = []
    start = 0
    for m in _SENTENCE_END_RE.finditer(text):
        mark = m.group()
        if mark == "." and (
            _is_abbreviation(text, start, m.start())
            or (m.end() < len(text) and text[m.end()].isdigit())
        ):
            continue
        span = _trimmed(text, start, m.end())
        if span is not None:
            spans.append(span)
        start = m.end()
    tail = _trimmed(text, start, len(text))
    if tail is not None:
        spans.append(tail)
    return tuple(spans)


def tokenize(text: str, sentences: tuple[Span, ...]) -> tuple[Token, ...]:
    out: list[Token] = []
    for index, s in enumerate(sentences):
        for m in WORD_RE.finditer(text, s.start, s.end):
            word = m.group()
            out.append(Token(word, normalize_token(word), m.start(), m.end(), index))
    return tuple(out)


# --------------------------------------------------------------------------- the reader


class _Reader:
    """One pass of analysis over one text; holds the shared token state."""

    def __init__(self, text: str, lex: Lexicon) -> None:
        self.text = text
        self.lex = lex
        self.sentence_spans = split_sentences(text)
        self.tokens = tokenize(text, self.sentence_spans)
        self.norms = tuple(t.norm for t in self.tokens)
        # token index range [first, end) of each sentence
        self.bounds: list[tuple[int, int]] = [(0, 0)] * len(self.sentence_spans)
        i = 0
        for s in range(len(self.sentence_spans)):
            j = i
            while j < len(self.tokens) and self.tokens[j].sentence == s:
                j += 1
            self.bounds[s] = (i, j)
            i = j

    def span(self, first: int, last: int) -> Span:
        """The span from token *first* to token *last*, inclusive."""
        a, b = self.tokens[first].start, self.tokens[last].end
        return Span(a, b, self.text[a:b])

    def breaks_before(self, i: int) -> bool:
        """Whether a sentence or clause boundary sits between token i-1 and token i."""
        if i <= 0 or self.tokens[i].sentence != self.tokens[i - 1].sentence:
            return True
        gap = self.text[self.tokens[i - 1].end : self.tokens[i].start]
        return _CLAUSE_BREAK_RE.search(gap) is not None

    def is_negation(self, norm: str) -> bool:
        return norm in self.lex.negation or norm.endswith("n't")

    # ------------------------------------------------------------------ language

    def looks_english(self) -> bool:
        n = len(self.norms)
        if n < MIN_TOKENS_FOR_LANGUAGE_GUESS:
            return True
        stop = sum(1 for w in self.norms if w in self.lex.stopwords)
        return stop / n >= MIN_ENGLISH_STOPWORD_SHARE

    # ------------------------------------------------------------------ names

    def _name_base(self, tok: Token) -> tuple[str, str]:
        word, norm = tok.text, tok.norm
        if norm.endswith("'s"):
            word, norm = word[:-2], norm[:-2]
        return word, norm

    def _name_like(self, tok: Token) -> bool:
        word, norm = self._name_base(tok)
        return (
            len(word) > 1
            and word[0].isupper()
            and not word.isupper()
            and not word[0].isdigit()
            and norm not in self.lex.stopwords
            and norm not in self.lex.not_names
            and not norm.startswith("i'")
        )

    def names(self) -> list[tuple[int, int]]:
        """Token ranges [first, end) of personal names."""
        lex = self.lex
        starts = {first for first, end in self.bounds if end > first}
        mid_names: set[str] = set()
        accepted: list[bool] = [False] * len(self.tokens)
        for i, tok in enumerate(self.tokens):
            if i in starts or not self._name_like(tok):
                continue
            _, norm = self._name_base(tok)
            # a capitalised feeling word mid-sentence is a name ("then Hope came by")
            if not lex.is_known_word(norm) or (norm,) in lex.feelings:
                accepted[i] = True
                mid_names.add(norm)
        for i in starts:
            tok = self.tokens[i]
            if not self._name_like(tok):
                continue
            _, norm = self._name_base(tok)
            if lex.is_known_word(norm):
                continue
            nxt = self.norms[i + 1] if i + 1 < len(self.tokens) else ""
            same_sentence = i + 1 < len(self.tokens) and self.tokens[i + 1].sentence == tok.sentence
            if norm in mid_names or (same_sentence and (nxt in lex.name_verbs or accepted[i + 1])):
                accepted[i] = True
        ranges: list[tuple[int, int]] = []
        i = 0
        while i < len(self.tokens):
            if not accepted[i]:
                i += 1
                continue
            j = i + 1
            while (
                j < len(self.tokens)
                and j - i < MAX_NAME_TOKENS
                and accepted[j]
                and not self.norms[j - 1].endswith("'s")
                and not self.breaks_before(j)
            ):
                j += 1
            ranges.append((i, j))
            i = j
        return ranges

    # ------------------------------------------------------------------ feelings

    def _contextual_ok(self, i: int, length: int) -> bool:
        first, _ = self.bounds[self.tokens[i].sentence]
        if i == first or self.breaks_before(i):
            return False
        if self.norms[i - 1] not in self.lex.feeling_context:
            return False
        after = i + length
        if (
            after < len(self.tokens)
            and self.tokens[after].sentence == self.tokens[i].sentence
            and self.norms[after] in _CONTEXTUAL_BLOCKERS
        ):
            return False
        for k in range(i - 1, max(first, i - FEELING_CONTEXT_WINDOW_TOKENS) - 1, -1):
            norm = self.norms[k]
            if norm in self.lex.first_person or norm.startswith(("feel", "felt")):
                return True
            if self.breaks_before(k):
                break
        return False

    def _negation(self, i: int) -> Span | None:
        first, _ = self.bounds[self.tokens[i].sentence]
        for k in range(i - 1, max(first, i - NEGATION_WINDOW_TOKENS) - 1, -1):
            norm = self.norms[k]
            if (
                self.breaks_before(k + 1)
                or norm in _NEGATION_STOPPERS
                or norm in self.lex.negation_breakers
            ):
                return None
            if self.is_negation(self.norms[k]):
                return self.span(k, k)
        return None

    def feelings(self, skip: set[int]) -> list[Feeling]:
        out: list[Feeling] = []
        lex = self.lex
        i = 0
        while i < len(self.tokens):
            if i in skip:
                i += 1
                continue
            found = lex.feelings.match_at(self.norms, i)
            if found is None:
                found = lex.contextual_feelings.match_at(self.norms, i)
                if found is not None and not self._contextual_ok(i, found[0]):
                    found = None
            if found is None:
                i += 1
                continue
            length, family = found
            last = i + length - 1
            out.append(
                Feeling(family, self.span(i, last), self.tokens[i].sentence, self._negation(i))
            )
            i = last + 1
        emoji_re = lex.feeling_emoji_re
        if emoji_re is not None:
            starts = [s.start for s in self.sentence_spans]
            for m in emoji_re.finditer(self.text):
                sentence = max(0, bisect_right(starts, m.start()) - 1)
                span = Span(m.start(), m.end(), m.group())
                out.append(Feeling(lex.feeling_emoji[m.group()], span, sentence))
            out.sort(key=lambda f: f.span.start)
        return out

    # ------------------------------------------------------------------ people, themes

    def people(self, names: list[tuple[int, int]]) -> list[Person]:
        lex = self.lex
        name_at = {first: end for first, end in names}
        found: dict[str, tuple[str | None, str | None, str | None, list[Span]]] = {}
        used: set[int] = set()

        def add(key: str, name: str | None, role: str | None, span: Span) -> None:
            theme = None
            if role is not None:
                role_theme = lex.roles.match_at(tuple(role.split()), 0)
                theme = role_theme[1] if role_theme else None
            if key in found:
                old_name, old_role, old_theme, spans = found[key]
                found[key] = (old_name or name, old_role or role, old_theme or theme, spans)
                spans.append(span)
            else:
                found[key] = (name, role, theme, [span])

        for i, norm in enumerate(self.norms):
            if norm not in ("my", "our") or i + 1 >= len(self.tokens):
                continue
            if self.tokens[i + 1].sentence != self.tokens[i].sentence:
                continue
            at = i + 1
            role = lex.roles.match_at(self.norms, at)
            if (
                role is None
                and at + 1 < len(self.tokens)
                and self.norms[at] not in lex.stopwords
                and self.tokens[at + 1].sentence == self.tokens[i].sentence
            ):
                at += 1  # one word between: "my older sister", "my new boss"
                role = lex.roles.match_at(self.norms, at)
            if role is None:
                continue
            last = at + role[0] - 1
            role_words = " ".join(self.norms[at : last + 1])
            end = name_at.get(last + 1)
            if end is not None and not self.breaks_before(last + 1):
                name = self._name_text(last + 1, end)
                add(name.lower(), name, role_words, self.span(i, end - 1))
                used.add(last + 1)
            else:
                add(f"my {role_words}", None, role_words, self.span(i, last))
        for first, end in names:
            if first in used:
                continue
            name = self._name_text(first, end)
            add(name.lower(), name, None, self.span(first, end - 1))
        for i, tok in enumerate(self.tokens):
            if tok.norm in lex.address_forms and tok.text[0].isupper():
                prev = self.norms[i - 1] if i > 0 else ""
                if prev not in ("my", "our"):
                    add(f"my {tok.norm}", None, tok.norm, self.span(i, i))
        people = [
            Person(key, name, role, theme, tuple(sorted(spans, key=lambda s: s.start)))
            for key, (name, role, theme, spans) in found.items()
        ]
        people.sort(key=lambda p: p.spans[0].start)
        return people

    def _name_text(self, first: int, end: int) -> str:
        words = [self._name_base(self.tokens[k])[0] for k in range(first, end)]
        return " ".join(words)

    def themes(self, skip: set[int], people: list[Person]) -> list[Theme]:
        spans: dict[str, dict[int, Span]] = {}
        i = 0
        while i < len(self.tokens):
            found = None if i in skip else self.lex.themes.match_at(self.norms, i)
            if found is None:
                i += 1
                continue
            length, theme = found
            span = self.span(i, i + length - 1)
            spans.setdefault(theme, {})[span.start] = span
            i += length
        for person in people:
            if person.theme is not None and person.role is not None:
                have = spans.setdefault(person.theme, {})
                taken = {c for o in have.values() for c in range(o.start, o.end)}
                for s in person.spans:
                    if s.start not in taken and s.end - 1 not in taken:
                        have[s.start] = s
        themes = [
            Theme(name, tuple(by_start[k] for k in sorted(by_start)))
            for name, by_start in spans.items()
        ]
        themes.sort(key=lambda t: (-len(t.spans), t.spans[0].start))
        return themes

    # ------------------------------------------------------------------ keyphrases

    def keyphrases(self, skip: set[int]) -> list[Keyphrase]:
        runs: list[tuple[int, int]] = []
        first = -1
        for i, norm in enumerate(self.norms):
            content = (
                i not in skip
                and len(norm) >= 3
                and not norm.isdigit()
                and norm not in self.lex.stopwords
            )
            if first >= 0 and (
                not content or self.breaks_before(i) or i - first >= MAX_KEYPHRASE_TOKENS
            ):
                runs.append((first, i))
                first = -1
            if content and first < 0:
                first = i
        if first >= 0:
            runs.append((first, len(self.norms)))
        freq: Counter[str] = Counter()
        degree: Counter[str] = Counter()
        for a, b in runs:
            for k in range(a, b):
                freq[self.norms[k]] += 1
                degree[self.norms[k]] += b - a
        best: dict[str, Keyphrase] = {}
        for a, b in runs:
            norm = " ".join(self.norms[a:b])
            if norm in best:
                kp = best[norm]
                best[norm] = Keyphrase(norm, kp.span, kp.count + 1, kp.score)
                continue
            score = sum(degree[w] / freq[w] for w in self.norms[a:b])
            best[norm] = Keyphrase(norm, self.span(a, b - 1), 1, score)
        ranked = sorted(best.values(), key=lambda k: (-k.score * k.count, k.span.start))
        return ranked[:MAX_KEYPHRASES]

    # ------------------------------------------------------------------ tensions

    def _clause_end(self, a: int, limit: int | None = None) -> int:
        """Last token of the clause that starts at token *a* (stops at cues, breaks, *limit*)."""
        _, end = self.bounds[self.tokens[a].sentence]
        if limit is not None:
            end = min(end, limit)
        k = a
        while k + 1 < end and not self.breaks_before(k + 1):
            if self.lex.contrast.match_at(self.norms, k + 1) is not None:
                break
            k += 1
        return k

    def _clause_start(self, cue: int) -> int | None:
        """First token of the clause that ends just before token *cue* (at least two words)."""
        first, _ = self.bounds[self.tokens[cue].sentence]
        k = cue - 1
        while k > first and (not self.breaks_before(k) or cue - k < 2):
            k -= 1
        while k < cue - 2 and self.norms[k] in _LEADING_CONJUNCTIONS:
            k += 1
        return k if cue - k >= 2 else None

    def _subject_before(self, i: int) -> int | None:
        """A first-person subject within two words before token *i*, same clause."""
        first, _ = self.bounds[self.tokens[i].sentence]
        for k in range(i - 1, max(first, i - 3) - 1, -1):
            if self.norms[k] in self.lex.first_person:
                return k
            if self.breaks_before(k):
                break
        if self.norms[i] in self.lex.first_person or self.norms[i].startswith("i'"):
            return i
        return None

    def tensions(self) -> list[Tension]:
        lex = self.lex
        n = len(self.tokens)
        found: list[Tension] = []
        obligations: list[tuple[int, int]] = []  # (subject token, cue token)
        desires: list[tuple[int, int]] = []
        for i in range(n):
            if self.norms[i : i + 3] == ("part", "of", "me"):
                for j in range(i + 3, n - 1):
                    if self.tokens[j].sentence > self.tokens[i].sentence + 1:
                        break
                    other = self.norms[j] in ("other", "another") and self.norms[j + 1] == "part"
                    again = self.norms[j : j + 3] == ("part", "of", "me")
                    if other or again:
                        left_end = self._clause_end(i, limit=j)
                        while left_end > i and self.norms[left_end] in _TRAILING_JOINERS:
                            left_end -= 1
                        right_end = self._clause_end(j + 1)
                        cue_end = j + 1 if other else j + 2
                        found.append(
                            Tension(
                                "parts",
                                self.span(i, left_end),
                                self.span(j, right_end),
                                self.span(j, cue_end),
                            )
                        )
                        break
            for index, into in ((lex.obligation, obligations), (lex.desire, desires)):
                if index.match_at(self.norms, i) is not None:
                    subject = self._subject_before(i)
                    if subject is not None:
                        into.append((subject, i))
        for o_subject, o_cue in obligations:
            for d_subject, d_cue in desires:
                s_o, s_d = self.tokens[o_cue].sentence, self.tokens[d_cue].sentence
                if abs(s_o - s_d) > 1 or o_subject == d_subject:
                    continue
                (a_sub, a_cue), (b_sub, b_cue) = sorted([(o_subject, o_cue), (d_subject, d_cue)])
                a_end = self._clause_end(a_cue, limit=b_sub)
                if a_end < a_cue:
                    continue
                b_end = self._clause_end(b_cue)
                found.append(
                    Tension(
                        "should_want",
                        self.span(a_sub, a_end),
                        self.span(b_sub, b_end),
                        self.span(b_cue, b_cue),
                    )
                )
        for i in range(n):
            cue = lex.contrast.match_at(self.norms, i)
            if cue is None or (
                i > 0 and self.norms[i] == "yet" and self.is_negation(self.norms[i - 1])
            ):
                continue
            after = i + cue[0]
            first, end = self.bounds[self.tokens[i].sentence]
            if after >= end or end - after < 2:
                continue
            right_end = self._clause_end(after)
            if right_end - after < 1:
                continue
            if i == first and self.norms[i] in _LEADING_CONCESSIVES:
                # "Although X, Y": the cue opens the first pole, the second follows a break
                k = after
                while k < end and not self.breaks_before(k):
                    k += 1
                if k >= end or k - after < 1 or end - k < 2:
                    continue
                left = self.span(after, k - 1)
                right_end = self._clause_end(k)
                found.append(
                    Tension("contrast", left, self.span(k, right_end), self.span(i, after - 1))
                )
                continue
            if i == first:
                s = self.tokens[i].sentence
                if s == 0 or self.bounds[s - 1][1] - self.bounds[s - 1][0] < 2:
                    continue
                p_first, p_end = self.bounds[s - 1]
                left_first = max(p_first, p_end - 12)
                left = self.span(left_first, p_end - 1)
                kind: TensionKind = "contrast"
            else:
                start = self._clause_start(i)
                if start is None:
                    continue
                left = self.span(start, i - 1)
                kind = "contrast"
                for d_subject, d_cue in desires:
                    if start <= d_subject and d_cue < i:
                        kind = "want_but"
            found.append(Tension(kind, left, self.span(after, right_end), self.span(i, after - 1)))
        return _dedupe_tensions(found)


def _dedupe_tensions(found: list[Tension]) -> list[Tension]:
    """Keep the strongest reading of each stretch of text; strongest kind first."""
    ordered = sorted(found, key=lambda t: (TENSION_PRIORITY.index(t.kind), t.left.start))
    kept: list[Tension] = []
    for t in ordered:
        if any(k.left.start <= t.cue.start < k.right.end for k in kept):
            continue
        kept.append(t)
    return kept


def _without_positive_at_risk(
    text: str, sentences: tuple[Sentence, ...], feelings: list[Feeling]
) -> list[Feeling]:
    """*feelings* less the positive ones that a risk of harm makes untrue: every one in
    an entry at clear risk ("I feel calm now that I've decided"), and those in a line
    that may be at risk ("so tired of being alive" is not joy)."""
    positive = lexicon().positive_families
    if not any(f.family in positive for f in feelings):
        return feelings
    findings = assess(text).findings
    if not findings:
        return feelings
    if any(f.tier == "crisis" for f in findings):
        return [f for f in feelings if f.family not in positive]
    starts = [s.span.start for s in sentences]
    at_risk = {max(0, bisect_right(starts, f.start) - 1) for f in findings}
    return [f for f in feelings if f.family not in positive or f.sentence not in at_risk]


def analyze(text: str) -> Analysis:
    """Read *text* (up to ``MAX_ANALYSIS_CHARS``). Pure and deterministic."""
    text = text[:MAX_ANALYSIS_CHARS]
    reader = _Reader(text, lexicon())
    english = reader.looks_english()
    names = reader.names() if english else []
    name_tokens = {k for first, end in names for k in range(first, end)}
    people = reader.people(names)
    sentences = tuple(
        Sentence(i, s, s.text.rstrip("\"'”’)]").endswith("?"))
        for i, s in enumerate(reader.sentence_spans)
    )
    return Analysis(
        text=text,
        english=english,
        sentences=sentences,
        tokens=reader.tokens,
        feelings=tuple(_without_positive_at_risk(text, sentences, reader.feelings(name_tokens))),
        people=tuple(people),
        themes=tuple(reader.themes(name_tokens, people)),
        keyphrases=tuple(reader.keyphrases(name_tokens)),
        tensions=tuple(reader.tensions()),
        questions=tuple(s.span for s in sentences if s.is_question),
    )


def clause_starts(a: Analysis) -> tuple[bool, ...]:
    """For each token of *a*: whether a sentence or clause boundary comes just before it."""
    out: list[bool] = []
    for i, tok in enumerate(a.tokens):
        if i == 0 or tok.sentence != a.tokens[i - 1].sentence:
            out.append(True)
        else:
            gap = a.text[a.tokens[i - 1].end : tok.start]
            out.append(_CLAUSE_BREAK_RE.search(gap) is not None)
    return tuple(out)
