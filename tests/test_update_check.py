"""crdt.update_check: hostile root types refused before pycrdt sees them (pycrdt trap 11)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from crdt.journal import Reflection, write_reflection
from crdt.update_check import UpdateRejected, check_map_roots
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
