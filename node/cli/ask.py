"""Asking the journal and a digest of the period: ``mirror ask`` and ``mirror digest``.

Offline, both are built from the engine's index and the reflections themselves;
with a model engine, the model answers or retells, held to what it was given
(:mod:`node.app.insight` has the rules).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, TextIO

from ..app import Mirror
from ..app.dates import parse_until
from ..engine.ask import Answer
from ..views.insight import render_answer, render_digest
from .options import AddCommand


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question, "answer": answer.text, "method": answer.method,
        "note": answer.note, "private_left_out": answer.private_left_out,
        "citations": [{"id": c.rid, "created_at": c.created_at.isoformat(), "quote": c.quote,
                       "private": c.private} for c in answer.citations],
    }


def _json(data: Any, out: TextIO) -> None:
    json.dump(data, out, ensure_ascii=False, indent=1)
    out.write("\n")


async def cmd_ask(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    answer = await mirror.ask(" ".join(args.question))
    if args.json:
        _json(answer_json(answer), out)
    else:
        print(render_answer(answer), file=out)
    return 0


def _until(text: str | None) -> datetime | None:
    if not text:
        return None
    return parse_until(text)


async def cmd_digest(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    result = await mirror.digest("month" if args.month else "week", until=_until(args.until))
    if args.json:
        _json(result.data, out)
    else:
        print(render_digest(result), file=out)
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
