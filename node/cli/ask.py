"""Asking the journal and a digest of the period: ``mirror ask`` and ``mirror digest``,
and the REPL's ``/ask`` and ``/digest``.

Offline, both are built from the engine's index and the reflections themselves:
``ask`` retrieves (``engine.ask``) and answers with quotes and reflection ids;
``digest`` reads what the week or month held (``engine.digest``). With a model
engine, the model answers or retells — held to what it was given
(``llm.grounded``) — and private reflections are shown only to a model on
this machine; the offline form stands whenever the model's text does not hold.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, cast

from ..errors import UsageError

if TYPE_CHECKING:
    from ..core import MirrorCore
    from ..engine.ask import Answer
    from ..engine.digest import Period

AddCommand = Callable[..., argparse.ArgumentParser]
MAX_QUESTION_CHARS = 500
DIGEST_PERIODS = ("week", "month")

REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("QUESTION", "ask your journal (\"when did I last feel calm?\"); answers cite ids"),
    "digest": ("[week|month]", "what the week (or month) held, and a question to sit with"),
}


# --------------------------------------------------------------------------- operations


def _question(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise UsageError("ask a question, e.g.: mirror ask \"when did I last feel calm?\"")
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"a question is at most {MAX_QUESTION_CHARS} characters")
    return text


async def answer_question(core: MirrorCore, text: str, *, now: datetime | None = None
                          ) -> Answer:
    """The answer to *text* from the journal: the model's, checked, or the offline one."""
    from ..engine.ask import Answer, extractive_answer

    retrieved = await core.understanding.ask(_question(text), now=now)
    if core.config.engine_mode == "offline" or not retrieved.reflections:
        text_out = extractive_answer(retrieved.question, retrieved.citations,
                                     total=retrieved.total)
        return Answer(retrieved.question.text, text_out, retrieved.citations, "offline")
    from ..engine.registry import llm_target
    from ..llm.grounded import answer_with_model

    try:
        target = llm_target(core.config, core.home)
    except Exception as exc:  # no key for a remote engine, say: the offline answer stands
        offline = extractive_answer(retrieved.question, retrieved.citations,
                                    total=retrieved.total)
        return Answer(retrieved.question.text, offline, retrieved.citations, "offline",
                      note=f"the model could not be asked — {exc}")
    return await answer_with_model(target, retrieved, prompts_dir=core.home.prompts_dir)


async def digest_of(core: MirrorCore, period: Period = "week", *,
                    until: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """(text, data): the digest of the *period* up to *until* (default: now), retold by
    the model when there is one and its retelling holds."""
    from crdt.insights import Scope
    from crdt.values import utc_now

    from ..engine.digest import build_digest, digest_text

    end = until or utc_now()
    u = core.understanding
    digest = build_digest(await u.extractions(Scope.LOCAL), period=period, until=end,
                          tensions=await u.tensions())
    data = digest.as_json()
    text, method, note = digest_text(digest), "offline", ""
    if core.config.engine_mode != "offline" and digest.reflections:
        from ..engine.registry import llm_target
        from ..llm.grounded import may_read_private, narrate_digest

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
    data.update(method=method, note=note, text=text)
    if note:
        text = f"({note}; here is the offline digest)\n\n{text}"
    return text, data


def render_answer(answer: Answer) -> str:
    lines = []
    if answer.note:
        lines.append(f"({answer.note}; here is the offline answer)")
    lines.append(answer.text)
    if answer.method == "model" and answer.citations:
        lines += ["", "Cited:"] + [f"  {c.created_at.astimezone():%Y-%m-%d} [{c.rid[:8]}] "
                                   f"“{c.quote}”" for c in answer.citations]
    if answer.private_left_out:
        n = answer.private_left_out
        lines.append(f"({n} private reflection{'s' * (n != 1)} left out: the model is not "
                     "on this machine)")
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question, "answer": answer.text, "method": answer.method,
        "note": answer.note, "private_left_out": answer.private_left_out,
        "citations": [{"id": c.rid, "created_at": c.created_at.isoformat(), "quote": c.quote,
                       "private": c.private} for c in answer.citations],
    }


# --------------------------------------------------------------------------- CLI


def _json(data: Any, out: TextIO) -> None:
    json.dump(data, out, ensure_ascii=False, indent=1)
    out.write("\n")


async def cmd_ask(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    answer = await answer_question(core, " ".join(args.question))
    if args.json:
        _json(answer_json(answer), out)
    else:
        print(render_answer(answer), file=out)
    return 0


def _until(text: str | None) -> datetime | None:
    if not text:
        return None
    from .main import parse_until

    return parse_until(text)


async def cmd_digest(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    period: Period = "month" if args.month else "week"
    text, data = await digest_of(core, period, until=_until(args.until))
    if args.json:
        _json(data, out)
    else:
        print(text, file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("ask", cmd_ask, "ask your journal a question; the answer quotes your reflections "
            "and cites their ids")
    p.add_argument("question", nargs="+", help="e.g. \"when did I last feel calm?\"")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("digest", cmd_digest, "what the week (or month) held: themes, feelings, tensions "
            "moving, a question to sit with")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--week", action="store_true", help="the last 7 days (the default)")
    when.add_argument("--month", action="store_true", help="the last 30 days")
    p.add_argument("--until", metavar="DATE", help="end of the period (default: now; a date "
                   "means through that day)")
    p.add_argument("--json", action="store_true", help="print JSON")


# --------------------------------------------------------------------------- REPL


async def repl_command(core: MirrorCore, name: str, rest: str) -> str:
    """Run /ask or /digest for the REPL; returns the text to show."""
    if name == "ask":
        return render_answer(await answer_question(core, rest))
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None
    if len(words) > 1 or (words and words[0].lstrip("-") not in DIGEST_PERIODS):
        raise UsageError("usage: /digest [week|month]")
    period = cast("Period", words[0].lstrip("-") if words else "week")
    return (await digest_of(core, period))[0]
