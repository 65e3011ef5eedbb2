"""One limit for a document id everywhere (spec/protocol.md §2, §8): 1..255 bytes of
printable UTF-8. The store used to take 200 *characters* (up to 800 bytes) while
the wire carried 256 bytes and a blind store 255, so a document could exist that
broke every session (its catalogue entry could not be encoded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from pycrdt import Map

from crdt import DocumentError, SyncClass
from crdt.values import MAX_DOC_ID_BYTES as STORE_LIMIT
from crdt.values import is_valid_doc_id
from protocol import LocalProtocolError, RemoteProtocolError, Update
from protocol.limits import MAX_DOC_ID_BYTES as WIRE_LIMIT
from protocol.messages import decode_message, encode_message
from protocol.store import MAX_STORE_DOC_ID_BYTES as BLIND_LIMIT
from tests.sync_helpers import connected, open_devices, wait_for

LONGEST = "notes/" + "é" * 124 + "x"  # 6 + 248 + 1 = 255 bytes, 131 characters
TOO_LONG = "notes/" + "é" * 125  # 256 bytes


def test_the_store_the_wire_and_the_blind_store_share_one_limit() -> None:
    assert STORE_LIMIT == WIRE_LIMIT == BLIND_LIMIT == 255
    assert len(LONGEST.encode()) == 255 and len(TOO_LONG.encode()) == 256


def test_what_the_store_accepts() -> None:
    assert is_valid_doc_id(LONGEST)
    assert is_valid_doc_id("a" * 255)
    assert not is_valid_doc_id("a" * 256)
    assert not is_valid_doc_id(TOO_LONG)  # 126 characters, but 256 bytes
    assert not is_valid_doc_id("")
    assert not is_valid_doc_id("tab\there")
    assert not is_valid_doc_id("lone \ud800 surrogate")


def test_the_wire_carries_255_bytes_and_no_more() -> None:
    assert decode_message(encode_message(Update(LONGEST, "devices", b"\x00\x00"))).doc_id == LONGEST
    with pytest.raises(LocalProtocolError):
        encode_message(Update(TOO_LONG, "devices", b"\x00\x00"))
    fits = bytes([0x04, 0xFF, 0x01]) + LONGEST.encode() + bytes([0x01, 0x02, 0x00, 0x00])
    assert decode_message(fits) == Update(LONGEST, "devices", b"\x00\x00")
    over = bytes([0x04, 0x80, 0x02]) + TOO_LONG.encode() + bytes([0x01, 0x02, 0x00, 0x00])
    with pytest.raises(RemoteProtocolError, match="over the limit of 255"):
        decode_message(over)


async def test_the_store_refuses_an_id_no_session_could_carry(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a"]) as (a,):
        with pytest.raises(DocumentError):
            await a.store.open_doc(TOO_LONG, kind="notes", sync_class=SyncClass.DEVICES)


async def test_a_document_with_the_longest_id_syncs(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        stored = await a.store.open_doc(LONGEST, kind="notes", sync_class=SyncClass.DEVICES)
        root: Map[Any] = stored.doc.get("n", type=Map)
        root["k"] = "v"
        await a.store.wait_durable()
        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
            await wait_for(lambda: b.store.info(LONGEST) is not None)
        copy = b.store.loaded(LONGEST)
        assert copy is not None
        assert copy.doc.get("n", type=Map).to_py() == {"k": "v"}
