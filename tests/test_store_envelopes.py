"""DocStore: signed envelopes kept with the updates they carried, and deleting a document.

These are what let the Commons server live on the same document store as a
node (spec/commons.md, "Storage"): the author's envelopes reach every reader,
and a withdrawn document leaves no bytes behind.
"""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt import DocumentError, StoreClosedError, StoreWriteError, SyncClass, open_store
from tests.store_targets import StoreTarget

ORIGIN = "test:peer"


def _update(key: str, value: str, base: Doc[Any] | None = None) -> tuple[Doc[Any], bytes]:
    doc: Doc[Any] = base or Doc()
    before = doc.get_state()
    doc.get("item", type=Map)[key] = value
    return doc, doc.get_update(before)


def _envelope(update: bytes, tag: bytes = b"sig") -> bytes:
    """Stand-in for a signed envelope: the store keeps bytes, it does not interpret them."""
    return b"\x01" + tag.ljust(16, b".") + update


async def test_envelopes_are_kept_in_arrival_order_and_survive_reopen(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    author, first = _update("title", "hello")
    _, second = _update("body", "world", author)
    async with open_store(db) as store:
        stored = await store.open_doc("commons/x", kind="commons", sync_class=SyncClass.COMMONS)
        store.apply_enveloped(stored, [first], [_envelope(first, b"a")], origin=ORIGIN)
        store.apply_enveloped(stored, [second], [_envelope(second, b"b")], origin=ORIGIN)
        # The same envelope again changes nothing and is not kept twice.
        store.apply_enveloped(stored, [second], [_envelope(second, b"b")], origin=ORIGIN)
        await store.wait_durable()
        assert await store.envelopes("commons/x") == [_envelope(first, b"a"),
                                                      _envelope(second, b"b")]
    async with open_store(db) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        assert dict(stored.doc.get("item", type=Map)) == {"title": "hello", "body": "world"}
        assert await store.envelopes("commons/x") == [_envelope(first, b"a"),
                                                      _envelope(second, b"b")]
        order = await store.envelope_order()
        assert list(order) == ["commons/x"]


async def test_the_update_and_its_envelopes_commit_together_or_not_at_all(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    _, update = _update("title", "never saved")
    steps: list[str] = []

    def fail_on_envelopes(step: str) -> None:
        steps.append(step)
        if step == "envelopes":
            raise OSError("disk full")

    async with open_store(db) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        await store.wait_durable()
    async with open_store(db, fault=fail_on_envelopes) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        store.apply_enveloped(stored, [update], [_envelope(update)], origin=ORIGIN)
        with pytest.raises(StoreWriteError):
            await store.wait_durable()
    # One batch: the append ran, then the envelopes failed, and both rolled back.
    assert steps[:2] == ["append", "envelopes"]
    async with open_store(db) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        assert dict(stored.doc.get("item", type=Map)) == {}
        assert await store.envelopes("commons/x") == []


async def test_an_undecodable_update_keeps_no_envelope(
    store_target: StoreTarget,
) -> None:
    _, good = _update("title", "kept")
    async with open_store(store_target.location) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        with pytest.raises(ValueError):
            store.apply_enveloped(stored, [good, b"\xff\xfe garbage"],
                                  [_envelope(good), b"bad"], origin=ORIGIN)
        await store.wait_durable()
        assert dict(stored.doc.get("item", type=Map)) == {"title": "kept"}
        assert await store.envelopes("commons/x") == []


async def test_apply_enveloped_refuses_a_document_it_does_not_hold(
    store_target: StoreTarget,
) -> None:
    async with open_store(store_target.location) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        store.unload("commons/x")
        with pytest.raises(DocumentError, match="not loaded"):
            store.apply_enveloped(stored, [], [], origin=ORIGIN)


async def test_delete_with_scrub_leaves_no_byte_of_the_document(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    canary = "CANARY-delete-5b1e"
    _, update = _update("body", canary * 50)
    _, other = _update("body", "stays")
    async with open_store(db) as store:
        gone = await store.open_doc("commons/gone", kind="commons")
        kept = await store.open_doc("commons/kept", kind="commons")
        store.apply_enveloped(gone, [update], [_envelope(update)], origin=ORIGIN)
        store.apply_enveloped(kept, [other], [_envelope(other)], origin=ORIGIN)
        await store.wait_durable()
        await store.compact(["commons/gone"])  # a snapshot too, not only the log
        assert canary.encode() in store_target.stored_bytes()
        assert await store.delete_doc("commons/gone", scrub_file=True) is True
        assert store.info("commons/gone") is None
        assert store.loaded("commons/gone") is None
        assert canary.encode() not in store_target.stored_bytes()
        with pytest.raises(DocumentError):
            await store.delete_doc("commons/gone")
    assert canary.encode() not in store_target.stored_bytes()
    async with open_store(db) as store:
        assert store.info("commons/gone") is None
        assert await store.envelopes("commons/gone") == []
        kept = await store.open_doc("commons/kept", kind="commons")
        assert dict(kept.doc.get("item", type=Map)) == {"body": "stays"}
        assert await store.envelopes("commons/kept") == [_envelope(other)]


async def test_another_process_drops_a_deleted_document_at_refresh(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    async with open_store(db) as first, open_store(db) as second:
        stored = await first.open_doc("doc/a", kind="note")
        stored.doc.get("m", type=Map)["k"] = "v"
        await first.wait_durable()
        await second.refresh()
        assert second.info("doc/a") is not None
        await second.open_doc("doc/a", kind="note")
        await first.delete_doc("doc/a")
        await second.refresh()
        assert second.info("doc/a") is None
        assert second.loaded("doc/a") is None
        # A document the second store created meanwhile is not mistaken for deleted.
        await second.open_doc("doc/b", kind="note")
        await first.open_doc("doc/c", kind="note")
        await first.wait_durable()
        await second.refresh()
        assert second.info("doc/b") is not None


async def test_closed_store_refuses_envelope_reads(
    store_target: StoreTarget,
) -> None:
    async with open_store(store_target.location) as store:
        pass
    with pytest.raises(StoreClosedError):
        await store.envelopes("commons/x")


async def test_scrub_deleted_removes_deleted_content_and_keeps_the_rest(
    store_target: StoreTarget,
) -> None:
    db = store_target.location
    gone, kept = "CANARY-scrub-71c2", "CANARY-kept-0d4e"
    async with open_store(db, compact_after_updates=0) as store:
        stored = await store.open_doc("notes", kind="notes")
        root = stored.doc.get("r", type=Map)
        # Dict values: their keys re-encode in any order, which compaction must accept.
        root["a"] = {"text": gone * 20, "n": "1", "z": "2", "m": "3"}
        root["b"] = {"text": kept, "n": "1", "z": "2", "m": "3"}
        await store.wait_durable()
        await store.compact(["notes"])  # the canary in a snapshot as well as the log
        root["c"] = "later"
        del root["a"]
        await store.wait_durable()
        assert gone.encode() in store_target.stored_bytes()  # a CRDT delete alone keeps the bytes
        assert (await store.scrub_deleted()).complete
        assert gone.encode() not in store_target.stored_bytes()
        assert kept.encode() in store_target.stored_bytes()
        assert root.to_py() == {"b": {"text": kept, "n": "1", "z": "2", "m": "3"}, "c": "later"}
    async with open_store(db) as store:
        again = await store.open_doc("notes", kind="notes")
        assert again.doc.get("r", type=Map).to_py() == {
            "b": {"text": kept, "n": "1", "z": "2", "m": "3"}, "c": "later"}
