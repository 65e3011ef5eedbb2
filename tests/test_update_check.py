"""crdt.update_check: hostile root types refused before pycrdt sees them (pycrdt trap 11)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from crdt.journal import Reflection, write_reflection
from crdt.update_check import (
    UpdateRejected,
    canonical_update,
    check_map_roots,
    covers,
    delete_set,
    same_document,
    same_state,
    state_vector,
)
from crdt.values import utc_now

LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
VALUE = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                       max_size=3),
    max_leaves=8,
)


def nested(value: Any, kind: int) -> Any:
    if kind == 1:
        return Text(str(value))
    if kind == 2:
        return Array([value])
    if kind == 3:
        return Map({"v": value})
    return value


@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["r", "settings", "😀"]), st.text(max_size=4), VALUE,
                  st.integers(0, 3)),
        max_size=12,
    ),
    cut=st.integers(0, 12),
)
def test_map_rooted_documents_always_pass(edits: list[tuple[str, str, Any, int]], cut: int) -> None:
    doc: Doc[Any] = Doc()
    state = doc.get_state()
    for i, (root, key, value, kind) in enumerate(edits):
        if i == cut:
            state = doc.get_state()
        target = doc.get(root, type=Map)
        target[key] = nested(value, kind)
        if kind == 1 and i % 2:  # edit nested text afterwards too
            inner = target[key]
            inner.insert(0, "é")
    check_map_roots(doc.get_update())
    check_map_roots(doc.get_update(state))


def test_a_journal_shard_passes() -> None:
    doc: Doc[Any] = Doc()
    write_reflection(doc, Reflection("abcd", utc_now(), "héllo 😀", ("t",)))
    check_map_roots(doc.get_update())


@pytest.mark.parametrize("make", [lambda: Text("😀 evil"), lambda: Array([1, 2])])
def test_a_sequence_root_is_refused(make: Any) -> None:
    doc: Doc[Any] = Doc()
    doc["reflections"] = make()
    with pytest.raises(UpdateRejected, match="sequence"):
        check_map_roots(doc.get_update())


@given(st.binary(max_size=200))
def test_garbage_is_refused_cleanly(data: bytes) -> None:
    try:
        check_map_roots(data)
    except UpdateRejected:
        pass


@given(st.data())
def test_mutated_updates_are_refused_cleanly(data: st.DataObject) -> None:
    doc: Doc[Any] = Doc(client_id=123456)  # a fixed id: the same bytes every example
    doc.get("r", type=Map)["k"] = Map({"t": Text("abc"), "a": Array([1, "x"])})
    update = bytearray(doc.get_update())
    i = data.draw(st.integers(0, len(update) - 1))
    update[i] = data.draw(st.integers(0, 255))
    try:
        check_map_roots(bytes(update))
    except UpdateRejected:
        pass


# --------------------------------------------------------------------------- canonical form


def _dict_doc(value: dict[str, Any]) -> bytes:
    doc: Doc[Any] = Doc(client_id=7)
    doc.get("r", type=Map)["k"] = value
    return doc.get_update()


def test_key_order_of_a_dict_value_does_not_change_the_canonical_form() -> None:
    # The same document with the two entries of its dict value swapped, as yrs
    # may write it after a decode: different bytes, one document.
    update = _dict_doc({"x": "1", "y": "2"})
    first, second = b"\x01x\x77\x011", b"\x01y\x77\x012"
    if first + second not in update:  # yrs wrote them the other way round
        first, second = second, first
    assert update.count(first + second) == 1
    swapped = update.replace(first + second, second + first)
    assert swapped != update
    docs = []
    for data in (update, swapped):
        doc: Doc[Any] = Doc()
        doc.apply_update(data)
        docs.append(doc.get("r", type=Map).to_py())
    assert docs[0] == docs[1] == {"k": {"x": "1", "y": "2"}}
    assert canonical_update(update) == canonical_update(swapped)
    assert same_document(update, swapped)


def test_different_documents_have_different_canonical_forms() -> None:
    base = _dict_doc({"x": "1", "y": "2"})
    assert not same_document(base, _dict_doc({"x": "1", "y": "3"}))
    assert not same_document(base, _dict_doc({"x": "1", "z": "2"}))
    doc: Doc[Any] = Doc(client_id=7)
    doc.apply_update(base)
    del doc.get("r", type=Map)["k"]
    assert not same_document(base, doc.get_update())  # a deletion counts


@given(edits=st.lists(st.tuples(st.text(max_size=4), VALUE), max_size=8))
def test_a_re_decoded_document_has_the_same_canonical_form(
        edits: list[tuple[str, Any]]) -> None:
    doc: Doc[Any] = Doc()
    root = doc.get("r", type=Map)
    for key, value in edits:
        root[key] = value
    update = doc.get_update()
    again: Doc[Any] = Doc()
    again.apply_update(update)
    assert same_document(update, again.get_update())
    assert canonical_update(canonical_update(update)) == canonical_update(update)


def test_canonical_form_refuses_what_does_not_parse() -> None:
    update = _dict_doc({"x": "1"})
    with pytest.raises(UpdateRejected):
        canonical_update(update + b"\x00")
    with pytest.raises(UpdateRejected):
        canonical_update(update[:-3])


def test_delete_sets_are_compared_merged_and_sorted() -> None:
    # No structs; client 5 deletes clocks 0-1 and 2, written as two ranges or one.
    split = bytes([0, 1, 5, 2, 0, 2, 2, 1])
    whole = bytes([0, 1, 5, 1, 0, 3])
    assert delete_set(split) == delete_set(whole) == {5: [(0, 3)]}
    assert same_document(split, whole)
    two_clients = bytes([0, 2, 9, 1, 4, 1, 5, 1, 0, 3])
    other_order = bytes([0, 2, 5, 1, 0, 3, 9, 1, 4, 1])
    assert same_document(two_clients, other_order)
    assert not same_document(whole, bytes([0, 1, 5, 1, 0, 2]))


# --------------------------------------------------------------------------- state vectors


def _grown_and_decoded(seed: int) -> tuple[Doc[Any], Doc[Any]]:
    """One document twice: rebuilt update by update, and decoded from one update."""
    import random

    rng = random.Random(seed)
    updates: list[bytes] = []
    for n in range(6):
        doc: Doc[Any] = Doc(client_id=rng.randint(1, 2**32 - 1))
        for update in updates:
            doc.apply_update(update)
        doc.get("r", type=Map)[str(n)] = n
        updates.append(doc.get_update())
    grown: Doc[Any] = Doc()
    for update in updates:
        grown.apply_update(update)
    decoded: Doc[Any] = Doc()
    decoded.apply_update(grown.get_update())
    return grown, decoded


def test_a_state_vector_is_compared_by_its_clocks_not_its_byte_order() -> None:
    orders_differed = 0
    for seed in range(20):
        grown, decoded = _grown_and_decoded(seed)
        a, b = grown.get_state(), decoded.get_state()
        orders_differed += a != b
        assert state_vector(a) == state_vector(b)
        assert len(state_vector(a)) == 6
        assert same_state(a, b)
    assert orders_differed  # the trap is real: yrs wrote the same vector in two orders
    grown.get("r", type=Map)["more"] = 1
    assert not same_state(grown.get_state(), decoded.get_state())


def test_a_malformed_state_vector_is_refused() -> None:
    good = Doc(client_id=3)
    good.get("r", type=Map)["k"] = 1
    sv = good.get_state()
    with pytest.raises(UpdateRejected):
        state_vector(sv + b"\x00")
    with pytest.raises(UpdateRejected):
        state_vector(sv[:-1])
    with pytest.raises(UpdateRejected):
        state_vector(bytes([2, 3, 1, 3, 2]))  # client 3 twice


def test_a_replica_covers_what_is_older_and_not_what_is_newer() -> None:
    doc: Doc[Any] = Doc(client_id=5)
    root = doc.get("r", type=Map)
    root["a"] = Text("hello")
    root["b"] = 1
    older = (doc.get_state(), doc.get_update(doc.get_state()))
    del root["a"]
    newer = (doc.get_state(), doc.get_update(doc.get_state()))
    assert covers(*newer, *older)
    assert covers(*newer, *newer)
    assert not covers(*older, *newer)  # a deletion the older one lacks
    root["c"] = 2
    assert not covers(*newer, doc.get_state(), doc.get_update(doc.get_state()))  # an item
