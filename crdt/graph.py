"""The identity graph document: typed nodes, weighted edges, evidence, and the person's edits.

Roots of an ``identity-graph`` document (see ``crdt.insights`` for its two scopes)::

    nodes  node id ("theme:work") → {type, key, label, weight, first_seen, last_seen,
                                     evidence: [{rid, quote, start, end}]}
    edges  "a|b" (a < b)          → {a, b, weight, evidence: [rid, ...]}
    edits  edit id                → {op, node, into, label, type, at}

Extraction writes ``nodes`` and ``edges`` only. The person's edits (add,
rename, merge, delete) are records of their own in ``edits``, which extraction
never touches; :func:`graph_view` applies them on top of what was extracted,
every time. So a later extraction can raise a node's weight (and deleting a
reflection lower it, or remove the node) but cannot undo a rename, resurrect a
deleted node or split a merge.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .values import read_int

NODES = "nodes"
EDGES = "edges"
EDITS = "edits"
USER_TYPE_PREFIX = "user"
MAX_NODE_EVIDENCE = 8
MAX_EDGE_EVIDENCE = 5

EditOp = Literal["add", "rename", "merge", "delete"]
EDIT_OPS: tuple[EditOp, ...] = ("add", "rename", "merge", "delete")


def edge_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}|{y}"


def new_edit_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class GraphEdit:
    """A person's edit of the identity graph (merge, rename, add or remove a node)."""

    op: EditOp
    node: str
    at: str  # ISO timestamp
    into: str = ""  # merge target
    label: str = ""  # add / rename
    type: str = ""  # add

    def record(self) -> dict[str, Any]:
        return {
            "op": self.op, "node": self.node, "at": self.at,
            "into": self.into, "label": self.label, "type": self.type,
        }

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> GraphEdit | None:
        op = r.get("op")
        if op not in EDIT_OPS or not isinstance(r.get("node"), str):
            return None
        return cls(
            op, str(r["node"]), str(r.get("at", "")), str(r.get("into", "")),
            str(r.get("label", "")), str(r.get("type", "")),
        )


@dataclass
class NodeView:
    """A node of the identity graph as read, with the person's edits applied."""

    id: str
    type: str
    label: str
    weight: int
    first_seen: str
    last_seen: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # ids folded into this one
    edited: bool = False  # renamed, added or merged into by the person


@dataclass
class EdgeView:
    """An edge of the identity graph as read: its two nodes, weight and evidence."""

    a: str
    b: str
    weight: int
    evidence: list[str] = field(default_factory=list)


@dataclass
class GraphView:
    """The identity graph as read: nodes and edges by id."""

    nodes: dict[str, NodeView]
    edges: dict[str, EdgeView]

    def neighbours(self, node: str) -> list[tuple[EdgeView, str]]:
        out = []
        for e in self.edges.values():
            if e.a == node:
                out.append((e, e.b))
            elif e.b == node:
                out.append((e, e.a))
        out.sort(key=lambda p: (-p[0].weight, p[1]))
        return out


def _evidence(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence as stored, with its offsets back as ints (pycrdt returns floats)."""
    out = dict(raw)
    for key in ("start", "end"):
        if key in out:
            out[key] = read_int(out[key])
    return out


def graph_view(
    nodes: Iterable[tuple[str, Mapping[str, Any]]],
    edges: Iterable[tuple[str, Mapping[str, Any]]],
    edits: Iterable[tuple[str, Mapping[str, Any]]],
) -> GraphView:
    """What the person sees: extracted nodes and edges with their edits applied in order."""
    view: dict[str, NodeView] = {}
    for nid, r in nodes:
        view[nid] = NodeView(
            id=nid,
            type=str(r.get("type", nid.split(":", 1)[0])),
            label=str(r.get("label", nid)),
            weight=read_int(r.get("weight")),
            first_seen=str(r.get("first_seen", "")),
            last_seen=str(r.get("last_seen", "")),
            evidence=[_evidence(e) for e in r.get("evidence", []) if isinstance(e, dict)],
        )
    ordered = sorted(
        (e for e in (GraphEdit.from_record(r) for _, r in edits) if e is not None),
        key=lambda e: e.at,
    )
    alias: dict[str, str] = {}  # merged or deleted id → where it went ("" = gone)

    def resolve(nid: str) -> str:
        seen = set()
        while nid in alias and nid not in seen:
            seen.add(nid)
            nid = alias[nid]
        return nid

    for edit in ordered:
        node = resolve(edit.node)
        if edit.op == "add":
            if node not in view:
                view[node] = NodeView(node, edit.type or USER_TYPE_PREFIX, edit.label, 0,
                                      edit.at, edit.at, edited=True)
            else:
                view[node].edited = True
        elif node not in view:
            continue
        elif edit.op == "rename":
            view[node].label = edit.label
            view[node].edited = True
        elif edit.op == "delete":
            del view[node]
            alias[node] = ""
        elif edit.op == "merge":
            into = resolve(edit.into)
            if into == node or into not in view:
                continue
            src, dst = view.pop(node), view[into]
            dst.weight += src.weight
            dst.evidence = (dst.evidence + src.evidence)[-MAX_NODE_EVIDENCE:]
            dst.merged += [src.id, *src.merged]
            dst.first_seen = min(filter(None, (dst.first_seen, src.first_seen)), default="")
            dst.last_seen = max(dst.last_seen, src.last_seen)
            dst.edited = True
            alias[node] = into
    out_edges: dict[str, EdgeView] = {}
    for _, r in edges:
        a, b = resolve(str(r.get("a", ""))), resolve(str(r.get("b", "")))
        if not a or not b or a == b or a not in view or b not in view:
            continue
        key = edge_key(a, b)
        x, y = key.split("|", 1)
        e = out_edges.setdefault(key, EdgeView(x, y, 0))
        e.weight += read_int(r.get("weight"))
        e.evidence = (e.evidence + [str(v) for v in r.get("evidence", [])])[-MAX_EDGE_EVIDENCE:]
    return GraphView(view, out_edges)
