"""The one choke point deciding what a session may offer a peer.

Every document a session mentions comes from :func:`offerable`. It lists only
documents whose sync class is one the session shares, and it can never list a
``local`` document nor one whose id says it is local-only, whatever its
recorded class: a private journal shard mislabelled by a bug or by a peer
still stays home. The protocol Connection refuses ``local`` again (defence in
depth), but this is where the decision is made.
"""

from __future__ import annotations

from collections.abc import Iterable

from crdt import DocInfo, DocStore, SyncClass
from crdt.journal import PRIVATE_PREFIX

# Ids that are local by nature: never offered, never accepted from a peer.
LOCAL_ONLY_PREFIXES: tuple[str, ...] = (PRIVATE_PREFIX, "settings", "consent", "local/")


def is_local_only(doc_id: str) -> bool:
    return doc_id.startswith(LOCAL_ONLY_PREFIXES)


def offerable(store: DocStore, classes: Iterable[SyncClass]) -> list[DocInfo]:
    """The documents a session sharing *classes* may name to its peer."""
    allowed = {SyncClass(c) for c in classes} - {SyncClass.LOCAL}
    return [
        info
        for info in store.documents()
        if info.sync_class in allowed
        and info.sync_class is not SyncClass.LOCAL
        and not is_local_only(info.doc_id)
    ]


def acceptable(doc_id: str, sync_class: str, store: DocStore, classes: Iterable[SyncClass]) -> bool:
    """May an update for *doc_id* from a peer be merged here?

    Not if the id is local-only, not if the class is not shared on this session,
    and not if this device keeps that document ``local`` (the person opted it
    out here: nothing is merged into it and nothing leaves it).
    """
    allowed = {SyncClass(c) for c in classes} - {SyncClass.LOCAL}
    if is_local_only(doc_id) or sync_class not in {c.value for c in allowed}:
        return False
    info = store.info(doc_id)
    return info is None or info.sync_class.value == sync_class


def kind_for(doc_id: str) -> str:
    """A document's kind from its id (``journal/2026-11`` → ``journal``)."""
    return doc_id.split("/", 1)[0]
