"""From extractions to derived records: graph nodes and edges, tensions, patterns.

Pure functions over plain dicts (the records of ``crdt.insights`` /
``crdt.graph``), so one reflection can be folded into stored records
(``fold_*``) and a whole journal can be derived in memory (``derive_all``)
with the same code. Order-independent: first/last seen are min/max, a
tension's episodes are counted from its weekly buckets, so reflections
written with an earlier date (``mirror reflect --at``) fold in correctly.

Local: a record depends only on the extractions that contribute to it
(:class:`Touched` names those records). So when a reflection is deleted or
edited, ``derive_all(..., only=Touched.of(old))`` over the extractions that
meet those records gives exactly what deriving the whole journal again would
give for them, and nothing else has to change.

A tension's status over time (emerging, recurring, easing, resolved) and which
tensions and loops a person lives are read from these records by ``lived``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any

from crdt.graph import MAX_EDGE_EVIDENCE, MAX_NODE_EVIDENCE, edge_key
from crdt.values import format_timestamp, read_int

from .extract import Evidence, Extraction, Item, Loop, evidence_json
from .poles import STATED

MAX_TENSION_EVIDENCE = 8
MAX_PATTERN_EVIDENCE = 5
MAX_LOOP_SEEN = 60  # "at|rid" of a loop's newest occurrences: its dates, and overlap
MAX_EDGES_PER_REFLECTION = 30
PATTERN_MIN = 3  # reflections before a theme or loop counts as a pattern
SPARK_WEEKS = 12
EDGE_KINDS = frozenset({"theme", "emotion", "person", "value", "role", "tension", "belief"})


def week_of(moment: datetime) -> str:
    y, w, _ = moment.isocalendar()
    return f"{y}-W{w:02d}"


def week_start(week: str) -> date:
    y, w = week.split("-W")
    return date.fromisocalendar(int(y), int(w), 1)


def _ev(e: Evidence) -> dict[str, Any]:
    return evidence_json(e)


def _at(e: Any) -> str:
    return str(e.get("at", "")) if isinstance(e, dict) else ""


def _merge_evidence(old: Sequence[Any], new: dict[str, Any], cap: int) -> list[Any]:
    """*old* plus *new*, oldest first, at most *cap* (the newest kept)."""
    rid = new["rid"]
    kept = [e for e in old if not (isinstance(e, dict) and e.get("rid") == rid)]
    if kept and _at(kept[-1]) > new["at"]:
        kept.append(new)
        kept.sort(key=_at)  # arrived out of order (a reflection dated in the past)
    else:
        kept.append(new)
    return kept[-cap:]


def _seen(record: Mapping[str, Any] | None, at: str) -> tuple[str, str]:
    if not record:
        return at, at
    first = str(record.get("first_seen") or at)
    last = str(record.get("last_seen") or at)
    return min(first, at), max(last, at)


# --------------------------------------------------------------------------- folding


def fold_node(record: Mapping[str, Any] | None, item: Item, at: str) -> dict[str, Any]:
    first, last = _seen(record, at)
    ev = {**_ev(item.evidence), "at": at}
    old = list(record.get("evidence", [])) if record else []
    return {
        "type": item.kind,
        "key": item.key,
        "label": str(record.get("label", item.label)) if record else item.label,
        "weight": (read_int(record.get("weight")) if record else 0) + 1,
        "first_seen": first,
        "last_seen": last,
        "evidence": _merge_evidence(old, ev, MAX_NODE_EVIDENCE),
    }


def edges_of(x: Extraction) -> list[tuple[str, str]]:
    """Pairs of *x*'s findings of different kinds, in order, at most the cap."""
    found = [(i.kind, i.node_id) for i in x.items if i.kind in EDGE_KINDS]
    pairs: list[tuple[str, str]] = []
    for k, (kind_a, a) in enumerate(found):
        for kind_b, b in found[k + 1 :]:
            if kind_a != kind_b:
                pairs.append((a, b))
                if len(pairs) >= MAX_EDGES_PER_REFLECTION:
                    return pairs
    return pairs


def fold_edge(record: Mapping[str, Any] | None, a: str, b: str, rid: str) -> dict[str, Any]:
    x, y = edge_key(a, b).split("|", 1)
    old = [str(v) for v in record.get("evidence", [])] if record else []
    if rid not in old:
        old.append(rid)
    return {
        "a": x,
        "b": y,
        "weight": (read_int(record.get("weight")) if record else 0) + 1,
        "evidence": old[-MAX_EDGE_EVIDENCE:],
    }


def fold_tension(
    record: Mapping[str, Any] | None, item: Item, at: str, week: str
) -> dict[str, Any]:
    first, last = _seen(record, at)
    weeks = dict(record.get("weeks", {})) if record else {}
    weeks[week] = read_int(weeks.get(week)) + 1
    poles = list(item.poles) if item.poles else list(item.key.split(" vs ", 1))
    old = list(record.get("evidence", [])) if record else []
    resolved_at = str(record.get("resolved_at", "")) if record else ""
    if item.resolving:
        resolved_at = max(resolved_at, at)
    return {
        "key": item.key,
        "label": item.label,
        "poles": poles,
        "occurrences": (read_int(record.get("occurrences")) if record else 0) + 1,
        "stated": (read_int(record.get("stated")) if record else 0)
        + (item.confidence >= STATED),
        "resolved_at": resolved_at,
        "intensity_total": (read_int(record.get("intensity_total")) if record else 0)
        + item.intensity,
        "max_intensity": max(read_int(record.get("max_intensity")) if record else 0,
                             item.intensity),
        "first_seen": first,
        "last_seen": last,
        "weeks": weeks,
        "evidence": _merge_evidence(old, {**_ev(item.evidence), "at": at}, MAX_TENSION_EVIDENCE),
    }


def fold_loop(record: Mapping[str, Any] | None, lp: Loop, at: str) -> dict[str, Any]:
    """A loop's record: how often it ran (a continuation adds its consequences, not a
    count), what it led to, its newest dates, and evidence."""
    first, last = _seen(record, at)
    old = list(record.get("evidence", [])) if record else []
    consequences = dict(record.get("consequences", {})) if record else {}
    for name in lp.consequences:
        consequences[name] = read_int(consequences.get(name)) + 1
    seen = [str(v) for v in record.get("seen", [])] if record else []
    mark = f"{at}|{lp.evidence.rid}"
    if mark not in seen:
        seen = sorted([*seen, mark])[-MAX_LOOP_SEEN:]
    return {
        "trigger": lp.trigger,
        "response": lp.response,
        "count": (read_int(record.get("count")) if record else 0) + (0 if lp.continued else 1),
        "consequences": consequences,
        "first_seen": first,
        "last_seen": last,
        "seen": seen,
        "evidence": _merge_evidence(old, {**_ev(lp.evidence), "at": at}, MAX_PATTERN_EVIDENCE),
    }


def fold_pattern(
    record: Mapping[str, Any] | None, fields: Mapping[str, str], ev: Evidence, at: str
) -> dict[str, Any]:
    first, last = _seen(record, at)
    old = list(record.get("evidence", [])) if record else []
    return {
        **fields,
        "count": (read_int(record.get("count")) if record else 0) + 1,
        "first_seen": first,
        "last_seen": last,
        "evidence": _merge_evidence(old, {**_ev(ev), "at": at}, MAX_PATTERN_EVIDENCE),
    }


RECURRING_KINDS = ("theme", "emotion", "person", "value", "belief")


@dataclass(frozen=True)
class Touched:
    """Keys of derived records, by root: those an extraction contributes to."""

    nodes: frozenset[str] = frozenset()
    edges: frozenset[str] = frozenset()
    tensions: frozenset[str] = frozenset()
    recurring: frozenset[str] = frozenset()
    loops: frozenset[str] = frozenset()

    @classmethod
    def of(cls, x: Extraction) -> Touched:
        return cls(
            nodes=frozenset(i.node_id for i in x.items),
            edges=frozenset(edge_key(a, b) for a, b in edges_of(x)),
            tensions=frozenset(i.key for i in x.items if i.kind == "tension"),
            recurring=frozenset(i.node_id for i in x.items if i.kind in RECURRING_KINDS),
            loops=frozenset(lp.key for lp in x.loops),
        )

    def __or__(self, other: Touched) -> Touched:
        return Touched(
            self.nodes | other.nodes,
            self.edges | other.edges,
            self.tensions | other.tensions,
            self.recurring | other.recurring,
            self.loops | other.loops,
        )

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges or self.tensions or self.recurring or self.loops)

    @cached_property
    def _findings(self) -> frozenset[str]:
        """Node ids of every finding that contributes to one of these records."""
        ends = (end for key in self.edges for end in key.split("|", 1))
        tensions = (f"tension:{key}" for key in self.tensions)
        return self.nodes | self.recurring | frozenset(ends) | frozenset(tensions)

    def meets(self, x: Extraction) -> bool:
        """Whether *x* may contribute to any of these records (never a miss; folding
        with ``only`` leaves out what a false hit would add)."""
        found = self._findings
        return any(i.node_id in found for i in x.items) or any(
            lp.key in self.loops for lp in x.loops
        )


def cites(evidence: Any, rids: Set[str]) -> bool:
    """Whether a record's *evidence* quotes one of *rids* (an edge's lists bare ids)."""
    if not isinstance(evidence, list):
        return False
    for e in evidence:
        rid = e.get("rid") if isinstance(e, dict) else e
        if isinstance(rid, str) and rid in rids:
            return True
    return False


@dataclass
class Fold:
    """What one extraction changes: (root, key) → new record, given the old ones."""

    graph_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph_edges: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)


Lookup = Any  # Callable[[str], Mapping[str, Any] | None]


def fold(
    x: Extraction,
    *,
    node: Lookup,
    edge: Lookup,
    tension: Lookup,
    recurring: Lookup,
    loop: Lookup,
    graph: bool = True,
    only: Touched | None = None,
) -> Fold:
    """The records *x* updates; each lookup returns the current record or None.
    Without *graph*, graph nodes and edges are left out (patterns and tensions only);
    with *only*, every record but those is left out."""
    at = format_timestamp(x.created_at)
    week = week_of(x.created_at)
    out = Fold()
    for item in x.items:
        nid = item.node_id
        if graph and (only is None or nid in only.nodes):
            out.graph_nodes[nid] = fold_node(node(nid), item, at)
        if item.kind == "tension" and (only is None or item.key in only.tensions):
            out.tensions[item.key] = fold_tension(tension(item.key), item, at, week)
        if item.kind in RECURRING_KINDS and (only is None or nid in only.recurring):
            fields = {"kind": item.kind, "key": item.key, "label": item.label}
            out.recurring[nid] = fold_pattern(recurring(nid), fields, item.evidence, at)
    for a, b in edges_of(x) if graph and (only is None or only.edges) else ():
        key = edge_key(a, b)
        if only is None or key in only.edges:
            out.graph_edges[key] = fold_edge(edge(key), a, b, x.rid)
    for lp in x.loops:
        if only is None or lp.key in only.loops:
            # two loops of one reflection with one key (a carried one): fold both
            out.loops[lp.key] = fold_loop(out.loops.get(lp.key) or loop(lp.key), lp, at)
    return out


@dataclass
class DerivedState:
    """Every derived record of a set of reflections, in memory (with *only*: those)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest: str = ""
    graph: bool = True  # False: patterns and tensions only (cheaper)
    only: Touched | None = None

    def add(self, x: Extraction) -> None:
        f = fold(
            x,
            node=self.nodes.get,
            edge=self.edges.get,
            tension=self.tensions.get,
            recurring=self.recurring.get,
            loop=self.loops.get,
            graph=self.graph,
            only=self.only,
        )
        self.nodes.update(f.graph_nodes)
        self.edges.update(f.graph_edges)
        self.tensions.update(f.tensions)
        self.recurring.update(f.recurring)
        self.loops.update(f.loops)
        self.latest = max(self.latest, format_timestamp(x.created_at))


def derive_all(
    extractions: Iterable[Extraction], *, graph: bool = True, only: Touched | None = None
) -> DerivedState:
    """Fold *extractions* oldest first. With *only*, just those records: pass the
    extractions that meet them (``only.meets``), or all of them; the result is the same."""
    state = DerivedState(graph=graph, only=only)
    for x in sorted(extractions, key=lambda e: (e.created_at, e.rid)):
        state.add(x)
    return state
