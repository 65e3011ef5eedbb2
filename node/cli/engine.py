"""Engine commands: ``mirror engine|patterns|tensions|graph|evolve|related|reindex``.

Contributed to the ``mirror`` parser through ``cli.COMMAND_MODULES``; the REPL
runs the same views through :func:`repl_command`. Every view reads the local
scope of the derived documents (this device's terminal, private reflections
included, marked 🔒); nothing here writes to a document that can sync except
the person's own graph edits of nodes that are already there.
Renderers are pure functions of the views, so tests call them directly.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

import trio

from crdt.values import parse_timestamp

from ..config import DEFAULT_LOCAL_API_BASE, Config
from ..core import MirrorCore
from ..errors import MirrorError, UsageError
from ..llm.client import litellm_install_command, litellm_installed
from .main import AddCommand, parse_when, positive_int, short_line

SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_EMPTY = "·"
MAX_TREE_NODES_PER_TYPE = 8
MAX_TREE_NEIGHBOURS = 3
MAX_LOOP_DATES_SHOWN = 6
ENGINE_CHOICES = {"offline": "offline", "local": "local_llm", "remote": "remote_llm"}
GRAPH_ACTIONS = ("show", "add", "rename", "merge", "delete")
TYPE_TITLES = {
    "theme": "themes", "emotion": "feelings", "person": "people", "value": "values",
    "belief": "beliefs", "role": "roles", "tension": "tensions",
}


# --------------------------------------------------------------------------- renderers


def sparkline(counts: Sequence[int]) -> str:
    """One character per bucket: ``·`` for none, then eight heights up to the maximum."""
    top = max(counts, default=0)
    if top <= 0:
        return SPARK_EMPTY * len(counts)
    out = []
    for n in counts:
        if n <= 0:
            out.append(SPARK_EMPTY)
        else:
            out.append(SPARK_CHARS[min(len(SPARK_CHARS) - 1, (n * len(SPARK_CHARS) - 1) // top)])
    return "".join(out)


def _day(ts: str) -> str:
    try:
        return f"{parse_timestamp(ts).astimezone():%Y-%m-%d}"
    except ValueError:
        return ts[:10]


def _quote(e: dict[str, Any], width: int = 70) -> str:
    return f"{str(e.get('rid', ''))[:8]} “{short_line(str(e.get('quote', '')), width)}”"


def render_patterns(patterns: Sequence[Any], loops: Sequence[Any] = ()) -> str:
    """Recurring findings, then *loops* (``LoopSummary``: trigger → response → consequence)."""
    recurring = [p for p in patterns if p.kind != "loop"]
    if not recurring and not loops:
        return "No patterns yet: a theme or loop becomes one after 3 reflections."
    lines = ["Recurring themes, feelings and people:"] if recurring else []
    for p in recurring:
        lines.append(
            f"  {p.label} ({p.kind}): {p.count} reflections, "
            f"{_day(p.first_seen)} → {_day(p.last_seen)}"
        )
    if loops:
        lines += ["", "Loops (what happens → what you do → how it leaves you):"]
        for lp in loops:
            lines.append(f"  {lp.label}: {lp.count}×, {_day(lp.first_seen)} → "
                         f"{_day(lp.last_seen)}")
            if lp.dates:
                lines.append(f"      on {', '.join(lp.dates[-MAX_LOOP_DATES_SHOWN:])}")
            if lp.evidence:
                lines.append(f"      e.g. {_quote(lp.evidence[-1])}")
    return "\n".join(lines).lstrip("\n")


def render_tensions(tensions: Sequence[Any]) -> str:
    if not tensions:
        return "No tensions yet: they appear when a reflection holds two pulls at once."
    width = max(len(t.key) for t in tensions)
    weeks = len(tensions[0].weekly)
    lines = [f"Tensions (last {weeks} weeks, one mark per week):"]
    for t in tensions:
        lines.append(
            f"  {t.key.ljust(width)}  {sparkline(t.weekly)}  {t.status:<9} "
            f"{t.occurrences}× intensity {t.intensity:g}/5, back {t.episodes}×, "
            f"{_day(t.first_seen)} → {_day(t.last_seen)}"
        )
        if t.evidence:
            lines.append(f"  {''.ljust(width)}  e.g. {_quote(t.evidence[-1], 60)}")
    return "\n".join(lines)


def render_graph(view: Any, focus: str | None = None) -> str:
    """The identity graph as a tree: types, their strongest nodes, each node's neighbours."""
    if not view.nodes:
        return "The graph is empty: it grows with each reflection."
    if focus is not None:
        node = view.nodes[focus]
        lines = [f"{node.label} ({node.type}, weight {node.weight})"
                 + (" — edited by you" if node.edited else "")]
        neighbours = view.neighbours(node.id)
        for k, (edge, other) in enumerate(neighbours):
            last = k == len(neighbours) - 1 and not node.evidence
            lines.append(f"{'└─' if last else '├─'} {view.nodes[other].label} "
                         f"({view.nodes[other].type}, together {edge.weight}×)")
        for k, e in enumerate(node.evidence[-5:]):
            lines.append(f"{'└─' if k == len(node.evidence[-5:]) - 1 else '├─'} {_quote(e)}")
        return "\n".join(lines)
    by_type: dict[str, list[Any]] = {}
    for n in view.nodes.values():
        by_type.setdefault(n.type, []).append(n)
    order = [*TYPE_TITLES, *sorted(set(by_type) - set(TYPE_TITLES))]
    types = [t for t in order if t in by_type]
    lines = ["you"]
    for ti, t in enumerate(types):
        last_type = ti == len(types) - 1
        lines.append(f"{'└─' if last_type else '├─'} {TYPE_TITLES.get(t, t)}")
        stem = "   " if last_type else "│  "
        nodes = sorted(by_type[t], key=lambda n: (-n.weight, n.label))
        shown = nodes[:MAX_TREE_NODES_PER_TYPE]
        for ni, n in enumerate(shown):
            last_node = ni == len(shown) - 1 and len(nodes) == len(shown)
            mark = " ✎" if n.edited else ""
            lines.append(f"{stem}{'└─' if last_node else '├─'} {n.label} ({n.weight}){mark}")
            near = [view.nodes[o].label for _, o in view.neighbours(n.id)[:MAX_TREE_NEIGHBOURS]]
            if near:
                lines.append(f"{stem}{'   ' if last_node else '│  '}└─ with {', '.join(near)}")
        if len(nodes) > len(shown):
            lines.append(f"{stem}└─ … {len(nodes) - len(shown)} more")
    return "\n".join(lines)


def render_related(items: Sequence[Any], of: Any) -> str:
    if not items:
        return f"Nothing related to {of.id[:8]} yet."
    lines = [f"Related to {of.id[:8]} “{short_line(of.text, 60)}”:"]
    for item in items:
        r = item.reflection
        lock = "🔒" if r.private else " "
        shared = ", ".join(s.split(":", 1)[-1] for s in item.related.shared[:4])
        lines.append(f"  {r.id[:8]} {r.created_at.astimezone():%Y-%m-%d} {lock} "
                     f"{short_line(r.text, 56)}  [{shared}]")
    return "\n".join(lines)


def render_engine(config: Config) -> str:
    lines = [f"engine: {config.engine_mode}"]
    if config.engine_mode != "offline":
        lines += [
            f"model: {config.effective_model}",
            f"api base: {config.effective_api_base or '(the provider default)'}",
            f"timeout: {config.engine_timeout_s:g} s",
            f"fallback to offline: {'yes' if config.engine_fallback else 'no'}",
            f"extraction: {config.engine_extraction}",
        ]
        if config.engine_mode == "remote_llm":
            lines.append(f"key: from $MIRROR_LLM_API_KEY or "
                         f"{config.engine_key_file or 'HOME/llm.key'} (mode 600)")
    return "\n".join(lines)


def _json(data: Any, out: TextIO) -> None:
    json.dump(data, out, ensure_ascii=False, indent=1)
    out.write("\n")


# --------------------------------------------------------------------------- actions


async def set_engine(
    core: MirrorCore,
    choice: str,
    *,
    model: str | None = None,
    api_base: str | None = None,
    timeout_s: float | None = None,
    fallback: bool | None = None,
    extraction: str | None = None,
) -> Config:
    """Switch the engine (validated, saved) and use it from now on; while
    config.json is invalid, the change is made to what the file says."""
    mode = ENGINE_CHOICES[choice]
    if mode != "offline" and not litellm_installed():
        raise MirrorError(f"the {choice} engine talks to models through litellm, which is "
                          f"not installed: {litellm_install_command()}")
    base = core.config_to_change()
    changes: dict[str, Any] = {"engine_mode": mode}
    if mode != base.engine_mode:
        changes.update(engine_model="", engine_api_base="")  # the new mode's defaults
    if model is not None:
        changes["engine_model"] = model
    if api_base is not None:
        changes["engine_api_base"] = api_base
    if timeout_s is not None:
        changes["engine_timeout_s"] = float(timeout_s)
    if fallback is not None:
        changes["engine_fallback"] = fallback
    if extraction is not None:
        changes["engine_extraction"] = extraction
    new = base.with_changes(**changes)
    await trio.to_thread.run_sync(core.save_config, new)
    return new


async def _reflection_for(core: MirrorCore, ref: str | None) -> Any:
    if ref:
        _, r = await core.journal.find(ref)
        return r
    newest = await core.journal.recent(1)
    if not newest:
        raise UsageError("no reflections yet")
    return newest[-1]


def _since(text: str | None) -> datetime | None:
    return parse_when(text) if text else None


async def evolve_text(core: MirrorCore, since: str | None) -> tuple[Any, str]:
    from ..engine.registry import narrator_for

    evolution = await core.understanding.evolve(
        since=_since(since),
        narrator=narrator_for(core.config, core.home),
        narrator_sees_private=core.config.engine_mode != "remote_llm",
    )
    kind = "narrated" if evolution.narrated else "structured"
    return evolution, f"{evolution.text}\n\n({kind} note {evolution.note_id} saved)"


# --------------------------------------------------------------------------- CLI handlers


async def cmd_engine(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    if args.choice is not None:
        await set_engine(
            core, args.choice, model=args.model, api_base=args.api_base,
            timeout_s=args.timeout, fallback=args.fallback, extraction=args.extraction,
        )
    elif any(v is not None for v in (args.model, args.api_base, args.timeout, args.fallback,
                                     args.extraction)):
        raise UsageError("name the engine too, e.g.: mirror engine local --model M")
    problem = core.config_problem
    shown = core.config if problem is None else problem.written
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


async def cmd_patterns(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    patterns = await core.understanding.patterns(minimum=args.min)
    loops = await core.understanding.loops(minimum=args.min)
    if args.json:
        by_key = {lp.key: lp for lp in loops}
        _json([{**asdict(p), **(_loop_json(by_key[p.key]) if p.key in by_key else {})}
               for p in patterns], out)
    else:
        print(render_patterns(patterns, loops), file=out)
    return 0


def _loop_json(lp: Any) -> dict[str, Any]:
    """A loop's steps for ``mirror patterns --json``, beside its pattern fields."""
    return {
        "trigger": lp.trigger, "triggers": dict(lp.triggers),
        "responses": list(lp.responses), "consequences": dict(lp.consequences),
        "dates": list(lp.dates),
    }


async def cmd_tensions(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    tensions = await core.understanding.tensions(everything=args.all)
    if args.json:
        _json([asdict(t) for t in tensions], out)
    else:
        print(render_tensions(tensions), file=out)
    return 0


async def cmd_graph(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..engine.understanding import resolve_node

    u = core.understanding
    action, rest = args.action, list(args.args)
    if action in (None, "show"):
        view = await u.graph()
        focus = resolve_node(view, " ".join(rest)) if rest else None
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
        edit = await u.edit_graph("add", "", label=rest[0], type=args.type or "user")
    elif action == "rename":
        edit = await u.edit_graph("rename", rest[0], label=rest[1])
    elif action == "merge":
        edit = await u.edit_graph("merge", rest[0], into=rest[1])
    else:
        edit = await u.edit_graph("delete", rest[0])
    print(f"{edit.op}: {edit.node}" + (f" → {edit.into}" if edit.into else "")
          + (f" “{edit.label}”" if edit.label else ""), file=out)
    return 0


async def cmd_evolve(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    evolution, text = await evolve_text(core, args.since)
    if args.json:
        _json({"id": evolution.note_id, "narrated": evolution.narrated, "text": evolution.text,
               **evolution.note.as_json()}, out)
    else:
        print(text, file=out)
    return 0


async def cmd_related(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    reflection = await _reflection_for(core, args.id)
    items = await core.understanding.related(reflection, limit=args.limit, include_private=True)
    if args.json:
        _json([{"id": i.reflection.id, "score": i.related.score,
                "shared": list(i.related.shared), "private": i.reflection.private,
                "created_at": i.reflection.created_at.isoformat(),
                "text": i.reflection.text} for i in items], out)
    else:
        print(render_related(items, reflection), file=out)
    return 0


async def cmd_reindex(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    n = await core.understanding.rebuild()
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
    p.set_defaults(config_tolerant=True)  # runs, and can repair, with an invalid config.json
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


# --------------------------------------------------------------------------- REPL


REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "patterns": ("", "recurring themes and trigger → response loops"),
    "tensions": ("", "tensions over time, a sparkline each"),
    "graph": ("[NODE]", "your identity graph as a tree (or one node)"),
    "evolve": ("[DATE]", "an evolution note since DATE (default: the last 30 days)"),
    "related": ("[ID]", "past reflections related to one (default: the newest)"),
    "engine": ("[offline|local|remote] [--model M] [--api-base URL]", "show or set the engine"),
}


async def repl_command(core: MirrorCore, name: str, rest: str) -> str:
    """Run /NAME REST for the REPL; returns the text to show."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None
    handlers: dict[str, Callable[[MirrorCore, list[str]], Any]] = {
        "patterns": _repl_patterns, "tensions": _repl_tensions, "graph": _repl_graph,
        "evolve": _repl_evolve, "related": _repl_related, "engine": _repl_engine,
    }
    text: str = await handlers[name](core, words)
    return text


async def _repl_patterns(core: MirrorCore, words: list[str]) -> str:
    u = core.understanding
    return render_patterns(await u.patterns(), await u.loops())


async def _repl_tensions(core: MirrorCore, words: list[str]) -> str:
    return render_tensions(await core.understanding.tensions())


async def _repl_graph(core: MirrorCore, words: list[str]) -> str:
    from ..engine.understanding import resolve_node

    view = await core.understanding.graph()
    return render_graph(view, resolve_node(view, " ".join(words)) if words else None)


async def _repl_evolve(core: MirrorCore, words: list[str]) -> str:
    return (await evolve_text(core, words[0] if words else None))[1]


async def _repl_related(core: MirrorCore, words: list[str]) -> str:
    reflection = await _reflection_for(core, words[0] if words else None)
    items = await core.understanding.related(reflection, include_private=True)
    return render_related(items, reflection)


async def _repl_engine(core: MirrorCore, words: list[str]) -> str:
    if not words:
        return render_engine(core.config)
    choice, options = words[0], words[1:]
    if choice not in ENGINE_CHOICES:
        raise UsageError(f"/engine takes one of {', '.join(ENGINE_CHOICES)} (got {choice!r})")
    values: dict[str, str] = {}
    while options:
        flag = options.pop(0)
        if flag not in ("--model", "--api-base") or not options:
            raise UsageError("usage: /engine offline|local|remote [--model M] [--api-base URL]")
        values[flag] = options.pop(0)
    new = await set_engine(core, choice, model=values.get("--model"),
                           api_base=values.get("--api-base"))
    return render_engine(new)
