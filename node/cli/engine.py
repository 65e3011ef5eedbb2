"""Engine commands: ``mirror engine|patterns|tensions|graph|evolve|related|reindex``.

Every view reads the local scope of the derived documents (this device's
terminal, private reflections included, marked 🔒); nothing here writes to a
document that can sync except the person's own graph edits of nodes that are
already there. The text of each view is in :mod:`node.views.engine`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from ..app import Mirror
from ..app.dates import parse_when
from ..app.settings import ENGINE_CHOICES
from ..config import DEFAULT_LOCAL_API_BASE
from ..engine.lived import LoopSummary
from ..errors import UsageError
from ..views.engine import (
    render_engine,
    render_evolution,
    render_graph,
    render_patterns,
    render_related,
    render_tensions,
)
from .options import AddCommand, positive_int

GRAPH_ACTIONS = ("show", "add", "rename", "merge", "delete")


def _json(data: Any, out: TextIO) -> None:
    json.dump(data, out, ensure_ascii=False, indent=1)
    out.write("\n")


async def cmd_engine(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.choice is not None:
        await mirror.set_engine(
            args.choice, model=args.model, api_base=args.api_base,
            timeout_s=args.timeout, fallback=args.fallback, extraction=args.extraction,
        )
    elif any(v is not None for v in (args.model, args.api_base, args.timeout, args.fallback,
                                     args.extraction)):
        raise UsageError("name the engine too, e.g.: mirror engine local --model M")
    settings = mirror.settings()
    problem, shown = settings.problem, settings.shown
    if args.json:
        data: dict[str, Any] = {}
        if shown is not None:
            data = {k: v for k, v in asdict(shown).items() if k.startswith("engine_")}
            data.update(model=shown.effective_model, api_base=shown.effective_api_base)
        if problem is not None:
            data["config_error"] = str(problem.error)
        _json(data, out)
    elif shown is not None:
        print(render_engine(shown), file=out)
    if problem is not None:
        print(f"mirror: {problem.error}; {problem.how_to_fix()}", file=sys.stderr)
        return 1
    return 0


async def cmd_patterns(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    patterns = await mirror.patterns(minimum=args.min)
    loops = await mirror.loops(minimum=args.min)
    if args.json:
        by_key = {lp.key: lp for lp in loops}
        _json([{**asdict(p), **(_loop_json(by_key[p.key]) if p.key in by_key else {})}
               for p in patterns], out)
    else:
        print(render_patterns(patterns, loops), file=out)
    return 0


def _loop_json(lp: LoopSummary) -> dict[str, Any]:
    """A loop's steps for ``mirror patterns --json``, beside its pattern fields."""
    return {
        "trigger": lp.trigger, "triggers": dict(lp.triggers),
        "responses": list(lp.responses), "consequences": dict(lp.consequences),
        "dates": list(lp.dates),
    }


async def cmd_tensions(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    tensions = await mirror.tensions(everything=args.all)
    if args.json:
        _json([asdict(t) for t in tensions], out)
    else:
        print(render_tensions(tensions), file=out)
    return 0


async def cmd_graph(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    action, rest = args.action, list(args.args)
    if action in (None, "show"):
        view = await mirror.graph()
        focus = mirror.graph_node(view, " ".join(rest)) if rest else None
        if args.json:
            _json({"nodes": [asdict(n) for n in view.nodes.values()],
                   "edges": [asdict(e) for e in view.edges.values()]}, out)
        else:
            print(render_graph(view, focus), file=out)
        return 0
    needs = {"add": 1, "rename": 2, "merge": 2, "delete": 1}[action]
    if len(rest) != needs:
        usage = {"add": "add LABEL [--type T]", "rename": "rename NODE NEW-LABEL",
                 "merge": "merge NODE INTO-NODE", "delete": "delete NODE"}[action]
        raise UsageError(f"usage: mirror graph {usage} (quote labels with spaces)")
    if action == "add":
        edit = await mirror.edit_graph("add", label=rest[0], type=args.type or "user")
    elif action == "rename":
        edit = await mirror.edit_graph("rename", rest[0], label=rest[1])
    elif action == "merge":
        edit = await mirror.edit_graph("merge", rest[0], into=rest[1])
    else:
        edit = await mirror.edit_graph("delete", rest[0])
    print(f"{edit.op}: {edit.node}" + (f" → {edit.into}" if edit.into else "")
          + (f" “{edit.label}”" if edit.label else ""), file=out)
    return 0


async def cmd_evolve(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    evolution = (await mirror.evolve(since=parse_when(args.since) if args.since else None)
                 ).evolution
    if args.json:
        _json({"id": evolution.note_id, "narrated": evolution.narrated, "text": evolution.text,
               **evolution.note.as_json()}, out)
    else:
        print(render_evolution(evolution), file=out)
    return 0


async def cmd_related(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    result = await mirror.related(args.id, limit=args.limit)
    if args.json:
        _json([{"id": i.reflection.id, "score": i.related.score,
                "shared": list(i.related.shared), "private": i.reflection.private,
                "created_at": i.reflection.created_at.isoformat(),
                "text": i.reflection.text} for i in result.items], out)
    else:
        print(render_related(result.items, result.of), file=out)
    return 0


async def cmd_reindex(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    n = await mirror.reindex()
    print(f"learned again from {n} reflections (your graph edits are kept)", file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("engine", cmd_engine, "show or set the engine: offline, local (a model server on "
            "this machine or the LAN) or remote (an API with your own key)")
    p.add_argument("choice", nargs="?", choices=tuple(ENGINE_CHOICES))
    p.add_argument("--model", help="litellm model name, e.g. ollama_chat/llama3.2 or "
                   "openai/MODEL for an OpenAI-compatible server; a local model named "
                   "without a provider (llama3.2) is Ollama's")
    p.add_argument("--api-base", help=f"the server's URL (local default {DEFAULT_LOCAL_API_BASE})")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="wait at most this long")
    p.add_argument("--fallback", action=argparse.BooleanOptionalAction, default=None,
                   help="give the offline mirrorback when the model cannot answer")
    p.add_argument("--extraction", choices=("offline", "llm"),
                   help="let the model add to the offline findings")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("patterns", cmd_patterns, "recurring themes and trigger → response loops")
    p.add_argument("--min", type=int, default=3, help="reflections needed (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("tensions", cmd_tensions, "tensions over time, one sparkline each")
    p.add_argument("--all", action="store_true",
                   help="every pull read so far, also those seen once")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("graph", cmd_graph, "the identity graph as a tree; add, rename, merge or delete nodes")
    p.add_argument("action", nargs="?", choices=GRAPH_ACTIONS)
    p.add_argument("args", nargs="*", help="node ids or labels, a new label")
    p.add_argument("--type", help="type of an added node (default: user)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("evolve", cmd_evolve, "an evolution note: this period against the one before")
    p.add_argument("--since", metavar="DATE", help="start of the period (default: 30 days "
                   "before the newest reflection)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("related", cmd_related, "past reflections related to one (default: the newest)")
    p.add_argument("id", nargs="?", help="the id, or a unique prefix")
    p.add_argument("--limit", type=positive_int, default=5, metavar="N",
                   help="at most N (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add("reindex", cmd_reindex, "learn again from every reflection, e.g. after an import "
        "(keeps your graph edits; deletes and edits need none)")
