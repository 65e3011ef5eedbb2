"""What the Commons documents say, in memory, for the catalogue, the web view and the API.

Theory of operation
-------------------
The DocStore is the authority (documents and their signed envelopes); this
index is derived from it, rebuilt at start (``Hub.load``) and kept current by
the hub after each accepted update, hide, unhide, block, unblock or deletion.
It holds each document's validated item, whether it is withheld (``hidden``:
the operator hides it or blocks its author), its state vector and its arrival
number, plus, per thread, the ids of its comments and reactions — enough to
answer every page without touching the disk, and to find what goes with a
thread when it is withdrawn, removed, hidden or unhidden. Thread lists are
sorted once and cached until the next change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crdt.commons import THREAD_KINDS, CommonsItem
from protocol import state_vector_digest


@dataclass
class DocMeta:
    """What the index keeps of one document."""

    item: CommonsItem
    hidden: bool
    """Withheld: hidden by the operator or by a blocked author (offered and shown nowhere)."""
    state_vector: bytes
    received_seq: int

    @property
    def kind(self) -> str:
        return self.item.kind

    @property
    def author(self) -> str:
        return self.item.author

    @property
    def thread(self) -> str:
        return self.item.thread

    @property
    def sv_digest(self) -> bytes:
        return state_vector_digest(self.state_vector)


class Index:
    """The hosted documents in memory: threads newest first, children per thread."""

    def __init__(self) -> None:
        self.docs: dict[str, DocMeta] = {}
        self._children: dict[str, set[str]] = {}
        self._threads: list[str] | None = None  # visible threads, newest first
        self.last_seq = 0

    def __len__(self) -> int:
        return len(self.docs)

    def put(self, meta: DocMeta) -> None:
        doc_id = meta.item.doc_id
        old = self.docs.get(doc_id)
        if old is not None and old.thread and old.thread != meta.thread:
            self._children.get(old.thread, set()).discard(doc_id)
        self.docs[doc_id] = meta
        if meta.thread:
            self._children.setdefault(meta.thread, set()).add(doc_id)
        self.last_seq = max(self.last_seq, meta.received_seq)
        self._threads = None

    def remove(self, doc_id: str) -> None:
        meta = self.docs.pop(doc_id, None)
        if meta is not None and meta.thread:
            children = self._children.get(meta.thread)
            if children is not None:
                children.discard(doc_id)
                if not children:
                    del self._children[meta.thread]
        self._threads = None

    def set_hidden(self, doc_id: str, hidden: bool) -> None:
        meta = self.docs.get(doc_id)
        if meta is not None:
            meta.hidden = hidden
            self._threads = None

    def children(self, thread: str) -> list[str]:
        """Ids of the comments and reactions on *thread* (withheld ones too), sorted."""
        return sorted(self._children.get(thread, ()))

    def ids_by(self, author: str) -> list[str]:
        """Every document of *author* (hex key), withheld ones too."""
        return [d for d, m in self.docs.items() if m.author == author]

    def visible(self) -> list[tuple[str, DocMeta]]:
        """Visible documents, newest first."""
        pairs = [(d, m) for d, m in self.docs.items() if not m.hidden]
        pairs.sort(key=lambda p: p[1].received_seq, reverse=True)
        return pairs

    def _thread_ids(self) -> list[str]:
        if self._threads is None:
            self._threads = [d for d, m in self.visible() if m.kind in THREAD_KINDS]
        return self._threads

    def _visible_children(self, thread: str, kind: str) -> list[DocMeta]:
        metas = (self.docs.get(c) for c in self._children.get(thread, ()))
        found = [m for m in metas if m is not None and m.kind == kind and not m.hidden]
        found.sort(key=lambda m: m.received_seq)
        return found

    def threads(self, offset: int, limit: int) -> list[dict[str, Any]]:
        out = []
        for doc_id in self._thread_ids()[offset:offset + limit]:
            item = self.docs[doc_id].item
            out.append({"doc_id": doc_id, "kind": item.kind, "author": item.author,
                        "title": item.title, "created_at": item.created_at,
                        "comments": len(self._visible_children(doc_id, "comment"))})
        return out

    def thread(self, doc_id: str, max_comments: int) -> dict[str, Any] | None:
        meta = self.docs.get(doc_id)
        if meta is None or meta.hidden or meta.kind not in THREAD_KINDS:
            return None
        item = meta.item
        comments = self._visible_children(doc_id, "comment")[:max_comments]
        counts: dict[str, int] = {}
        for reaction in self._visible_children(doc_id, "reaction"):
            counts[reaction.item.reaction] = counts.get(reaction.item.reaction, 0) + 1
        return {
            "doc_id": doc_id, "kind": item.kind, "author": item.author, "title": item.title,
            "body": item.body, "created_at": item.created_at,
            "comments": [{"doc_id": c.item.doc_id, "author": c.author, "body": c.item.body,
                          "created_at": c.item.created_at} for c in comments],
            "reactions": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
