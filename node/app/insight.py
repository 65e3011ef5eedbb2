"""Reading what the journal holds: asking it a question, a digest of the period, the
mood timeline. With a model engine the model answers or retells, held to what it
was given (``node.llm.grounded``); the offline form stands whenever its text does
not hold, and private reflections are shown only to a model on this machine."""

from __future__ import annotations

from datetime import datetime

from crdt.insights import Scope
from crdt.values import utc_now

from ..core import MirrorCore
from ..engine.ask import Answer, extractive_answer
from ..engine.digest import Period, build_digest, digest_text
from ..engine.extract import Extraction
from ..engine.lexicon import lexicon
from ..engine.mood import MAX_WEEKS, MoodPoint, MoodWeek, mood_weeks, valence_of
from ..engines import llm_target
from ..errors import UsageError
from ..llm.client import may_read_private
from ..llm.grounded import answer_with_model, narrate_digest
from .results import DigestResult

MAX_QUESTION_CHARS = 500
DIGEST_PERIODS = ("week", "month")


def checked_question(text: str) -> str:
    """*text* as one line; UsageError when empty or longer than MAX_QUESTION_CHARS."""
    text = " ".join(text.split())
    if not text:
        raise UsageError("ask a question, e.g.: mirror ask \"when did I last feel calm?\"")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"a question is at most {MAX_QUESTION_CHARS} characters")
    return text


async def answer_question(core: MirrorCore, text: str, *, now: datetime | None = None
                          ) -> Answer:
    """The answer to *text* from the journal: the model's, checked, or the offline one."""
    retrieved = await core.understanding.ask(checked_question(text), now=now)
    if core.config.engine_mode == "offline" or not retrieved.reflections:
        text_out = extractive_answer(retrieved.question, retrieved.citations,
                                     total=retrieved.total)
        return Answer(retrieved.question.text, text_out, retrieved.citations, "offline")
    try:
        target = llm_target(core.config, core.home)
    except Exception as exc:  # no key for a remote engine, say: the offline answer stands
        offline = extractive_answer(retrieved.question, retrieved.citations,
                                    total=retrieved.total)
        return Answer(retrieved.question.text, offline, retrieved.citations, "offline",
                      note=f"the model could not be asked — {exc}")
    return await answer_with_model(target, retrieved, prompts_dir=core.home.prompts_dir)


async def digest_of(core: MirrorCore, period: Period = "week", *,
                    until: datetime | None = None) -> DigestResult:
    """The digest of the *period* up to *until* (default: now), retold by the model when
    there is one and its retelling holds."""
    end = until or utc_now()
    u = core.understanding
    digest = build_digest(await u.extractions(Scope.LOCAL), period=period, until=end,
                          tensions=await u.tensions())
    data = digest.as_json()
    text, method, note = digest_text(digest), "offline", ""
    if core.config.engine_mode != "offline" and digest.reflections:
        try:
            target = llm_target(core.config, core.home)
        except Exception as exc:
            note = f"the model could not be asked — {exc}"
        else:
            told = digest
            if not may_read_private(target):  # the model sees shared reflections only
                told = build_digest(await u.extractions(Scope.SHARED), period=period,
                                    until=end, tensions=await u.tensions(Scope.SHARED))
            narrated, note = await narrate_digest(target, told,
                                                  prompts_dir=core.home.prompts_dir)
            if not note:
                text, method = narrated, "model"
                data = told.as_json()
                digest = told
    data.update(method=method, note=note, text=text)
    return DigestResult(digest, text, method, note, data)


async def mood_points(core: MirrorCore) -> list[MoodPoint]:
    """One point per reflection still in the journal; valence computed now for those
    learned before valence was recorded."""
    positive = lexicon().positive_families
    points = []
    missing: list[Extraction] = []
    for x in await core.understanding.extractions():
        if x.valence is None:
            missing.append(x)
            continue
        points.append(MoodPoint(x.created_at, x.valence, x.risk, _feelings(x, positive)))
    if missing:
        texts = {r.id: r.text for r in await core.journal.all()}
        for x in missing:
            v = valence_of(texts.get(x.rid, ""))
            points.append(MoodPoint(x.created_at, v.score, v.risk, _feelings(x, positive)))
    return points


def _feelings(x: Extraction, positive: frozenset[str]) -> tuple[str, ...]:
    return tuple(i.key for i in x.items
                 if i.kind == "emotion" and not (x.risk and i.key in positive))


async def mood_timeline(core: MirrorCore, weeks: int, until: datetime | None) -> list[MoodWeek]:
    if not 1 <= weeks <= MAX_WEEKS:
        raise UsageError(f"--weeks must be between 1 and {MAX_WEEKS} (got {weeks})")
    return mood_weeks(await mood_points(core), weeks=weeks, until=until)
