"""The server's own state beside the Commons documents: tombstones, blocks, hides, the log.

Theory of operation
-------------------
One ``local`` document in the server's DocStore, ``commons-server/moderation``
(kind ``commons-moderation``), never offered to anyone. Its roots are maps
(notes/pycrdt.md, trap 11)::

    withdrawn  doc_id -> "<at> <by>"      ids never accepted again (no content kept);
                                          <by> is owner, operator, or thread (a comment
                                          or reaction that went with its thread)
    blocked    author key hex -> at
    hidden     doc_id -> at
    log        "<seq:012d>[.<writer>]" -> JSON of one signed operator action

The public moderation log is the ``log`` map in key order. A signature already
in the log is a replay. Changes go through :meth:`Moderation.change`, one
pycrdt transaction each, and are durable when ``store.wait_durable()`` returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pycrdt import Map

from crdt import DocStore, StoredDoc, SyncClass

DOC_ID = "commons-server/moderation"
KIND = "commons-moderation"
ROOTS = ("withdrawn", "blocked", "hidden", "log")
WITH_THREAD = "thread"
"""The ``by`` of a comment's or reaction's tombstone when its thread was withdrawn or removed."""


class Moderation:
    """In-memory view of the moderation document, written through to it."""

    def __init__(self, stored: StoredDoc, log_key_suffix: str = "") -> None:
        self.stored = stored
        self.log_key_suffix = log_key_suffix
        """Appended to this writer's log keys when several instances share the
        document: two appending at once take the same number, and equal keys would
        keep only one of the entries."""
        doc = stored.doc
        self._maps: dict[str, Map[Any]] = {name: doc.get(name, type=Map) for name in ROOTS}
        self.reload()

    def reload(self) -> None:
        """Read the sets and the log again from the document: after another instance
        of the same database changed it (the store applied its updates)."""
        self.withdrawn: set[str] = set(self._maps["withdrawn"].keys())
        self.blocked: set[str] = set(self._maps["blocked"].keys())
        self.hidden: set[str] = set(self._maps["hidden"].keys())
        log = self._maps["log"]
        self._log_keys = sorted(log.keys())
        self.signatures: set[str] = set()
        for key in self._log_keys:
            self.signatures.add(str(json.loads(str(log[key])).get("signature", "")))

    @classmethod
    async def open(cls, store: DocStore, log_key_suffix: str = "") -> Moderation:
        stored = await store.open_doc(DOC_ID, kind=KIND, sync_class=SyncClass.LOCAL)
        return cls(stored, log_key_suffix)

    @contextmanager
    def change(self) -> Iterator[None]:
        """Group several changes into one transaction (one durable write)."""
        with self.stored.doc.transaction():
            yield

    def withdraw(self, doc_id: str, at: str, by: str) -> None:
        """Record the tombstone of *doc_id*; an id already withdrawn keeps its first one."""
        known = doc_id in self.withdrawn
        self.withdrawn.add(doc_id)
        self.hidden.discard(doc_id)
        with self.change():
            if not known:
                self._maps["withdrawn"][doc_id] = f"{at} {by}"
            if doc_id in self._maps["hidden"]:
                del self._maps["hidden"][doc_id]

    def withdrawn_by(self, doc_id: str) -> str | None:
        """Who withdrew *doc_id* (owner, operator or ``WITH_THREAD``), None if nobody."""
        if doc_id not in self.withdrawn:
            return None
        return str(self._maps["withdrawn"][doc_id]).partition(" ")[2]

    def recently_withdrawn(self, limit: int) -> list[str]:
        """Ids withdrawn by their owner or removed by the operator, newest first (at most
        *limit*). Comments and reactions that went with their thread are not listed:
        readers drop them by their thread, so one thread cannot crowd out the list."""
        target = self._maps["withdrawn"]
        pairs = []
        for key in self.withdrawn:
            at, _, by = str(target[key]).partition(" ")
            if by != WITH_THREAD:
                pairs.append((at, key))
        pairs.sort(reverse=True)
        return [k for _, k in pairs[:limit]]

    def recently_hidden(self, limit: int) -> list[str]:
        """Hidden ids, most recently hidden first (at most *limit*)."""
        return self._newest("hidden", self.hidden, limit)

    def recently_blocked(self, limit: int) -> list[str]:
        """Blocked author keys (hex), most recently blocked first (at most *limit*)."""
        return self._newest("blocked", self.blocked, limit)

    def _newest(self, root: str, keys: set[str], limit: int) -> list[str]:
        target = self._maps[root]  # values start with the time: "<at>" or "<at> <by>"
        pairs = sorted(((str(target[k]).split(" ")[0], k) for k in keys), reverse=True)
        return [k for _, k in pairs[:limit]]

    def set_hidden(self, doc_id: str, hidden: bool, at: str) -> None:
        target = self._maps["hidden"]
        if hidden:
            self.hidden.add(doc_id)
            target[doc_id] = at
        else:
            self.hidden.discard(doc_id)
            if doc_id in target:
                del target[doc_id]

    def set_blocked(self, author: str, blocked: bool, at: str) -> None:
        target = self._maps["blocked"]
        if blocked:
            self.blocked.add(author)
            target[author] = at
        else:
            self.blocked.discard(author)
            if author in target:
                del target[author]

    def append_log(self, entry: dict[str, str]) -> int:
        seq = _seq(self._log_keys[-1]) + 1 if self._log_keys else 1
        key = f"{seq:012d}{self.log_key_suffix}"
        self._maps["log"][key] = json.dumps(entry, sort_keys=True)
        self._log_keys.append(key)
        self.signatures.add(entry["signature"])
        return seq

    def log(self, limit: int) -> list[dict[str, Any]]:
        """The newest *limit* entries, newest first."""
        log = self._maps["log"]
        out = []
        for key in reversed(self._log_keys[-limit:] if limit else []):
            entry: dict[str, Any] = json.loads(str(log[key]))
            entry["seq"] = _seq(key)
            out.append(entry)
        return out


def _seq(key: str) -> int:
    """The number of a log key: ``000000000042``, or ``000000000042.<writer>``."""
    return int(key.partition(".")[0])
