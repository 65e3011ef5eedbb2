"""The engine's views as text: patterns and loops, tensions with sparklines, the
identity graph as a tree, related reflections, the engine's settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crdt.values import parse_timestamp

from ..config import Config
from ..engine.understanding import Evolution
from .journal import short_line

SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_EMPTY = "·"
MAX_TREE_NODES_PER_TYPE = 8
MAX_TREE_NEIGHBOURS = 3
MAX_LOOP_DATES_SHOWN = 6
TYPE_TITLES = {
    "theme": "themes", "emotion": "feelings", "person": "people", "value": "values",
    "belief": "beliefs", "role": "roles", "tension": "tensions",
}


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


def render_evolution(evolution: Evolution) -> str:
    kind = "narrated" if evolution.narrated else "structured"
    return f"{evolution.text}\n\n({kind} note {evolution.note_id} saved)"
