"""Blind-store envelopes (protocol/store.py): known answers, tampering, padding, hostile bytes."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import RemoteProtocolError
from protocol.errors import LocalProtocolError
from protocol.keys import store_group_id, store_name_key, store_token
from protocol.store import (
    KIND_SNAPSHOT,
    KIND_UPDATE,
    MAX_ENVELOPE_BYTES,
    MAX_STORE_DOC_ID_BYTES,
    bucket,
    decode_pull,
    decode_upload,
    encode_pull,
    encode_upload,
    envelope_shape,
    is_bucket,
    open_envelope,
    seal_envelope,
)

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
SECRET = os.urandom(32)
SEED = os.urandom(32)
DEVICE = bytes(nacl.signing.SigningKey(SEED).verify_key)
GROUP = store_group_id(store_token(SECRET, 3))


@cache
def vectors() -> Any:
    return json.loads((VECTORS / "blind_store.json").read_text(encoding="utf-8"))


def seal(payload: bytes = b"update", doc_id: str = "journal/2026-11", **kw: Any) -> bytes:
    args: dict[str, Any] = dict(kind=KIND_UPDATE, doc_id=doc_id, payload=payload,
                                state_vector=b"\x01\x05\x02", group_secret=SECRET, epoch=3,
                                group_id=GROUP, device_seed=SEED, nonce=os.urandom(24))
    args.update(kw)
    return seal_envelope(**args)


def unseal(envelope: bytes, **kw: Any) -> Any:
    args: dict[str, Any] = dict(group_secret=SECRET, epoch=3, group_id=GROUP,
                                is_member=lambda key: key == DEVICE)
    args.update(kw)
    return open_envelope(envelope, **args)


def test_known_answers() -> None:
    v = vectors()
    secret, epoch = bytes.fromhex(v["group_secret"]), v["epoch"]
    token = store_token(secret, epoch)
    assert token.hex() == v["store_token"]
    assert store_group_id(token).hex() == v["store_group_id"]
    assert store_name_key(secret, epoch).hex() == v["store_name_key"]
    seed = bytes.fromhex(v["device_seed"])
    for case in v["envelopes"]:
        sealed = seal_envelope(
            kind=case["kind"], doc_id=case["doc_id"], payload=bytes.fromhex(case["payload"]),
            state_vector=bytes.fromhex(case["state_vector"]), group_secret=secret, epoch=epoch,
            group_id=store_group_id(token), device_seed=seed, nonce=bytes.fromhex(case["nonce"]),
        )
        assert sealed.hex() == case["envelope"]
        opened = open_envelope(sealed, group_secret=secret, epoch=epoch,
                               group_id=store_group_id(token),
                               is_member=lambda k: k.hex() == v["device_key"])
        assert (opened.kind, opened.doc_id, opened.payload.hex(), opened.state_vector.hex()) == (
            case["kind"], case["doc_id"], case["payload"], case["state_vector"])
    for row in v["buckets"]:
        assert bucket(row["size"]) == row["bucket"]
    first = bytes.fromhex(v["envelopes"][0]["envelope"])
    assert encode_upload([first]).hex() == v["upload_body"]
    assert encode_pull([(42, first)]).hex() == v["pull_body"]


def test_round_trip_and_sizes_are_buckets() -> None:
    for size in (0, 1, 30, 200, 1000, 70_000):
        payload = os.urandom(size)
        envelope = seal(payload)
        assert is_bucket(len(envelope))
        opened = unseal(envelope)
        assert opened.payload == payload and opened.doc_id == "journal/2026-11"
        assert opened.state_vector == b"\x01\x05\x02" and opened.device_key == DEVICE


def test_the_store_sees_no_doc_id_and_no_payload() -> None:
    envelope = seal(b"CANARY-PAYLOAD", doc_id="journal/CANARY-ID")
    assert b"CANARY" not in envelope and b"journal" not in envelope
    # two ids of different lengths in the same name block look the same size
    assert len(seal(doc_id="a")) == len(seal(doc_id="identity-graph/with-a-longer-name"))


def test_every_flipped_bit_is_rejected() -> None:
    envelope = seal(b"x" * 40)
    for i in range(len(envelope)):
        for bit in (0x01, 0x80):
            mutated = bytearray(envelope)
            mutated[i] ^= bit
            with pytest.raises(RemoteProtocolError):
                unseal(bytes(mutated))


def test_wrong_log_epoch_or_signer_is_rejected() -> None:
    envelope = seal()
    with pytest.raises(RemoteProtocolError, match="not in the group"):
        unseal(envelope, is_member=lambda key: False)
    with pytest.raises(RemoteProtocolError):  # moved to another group's log
        unseal(envelope, group_id=store_group_id(store_token(SECRET, 4)))
    with pytest.raises(RemoteProtocolError):  # another epoch's keys
        unseal(envelope, epoch=4)
    with pytest.raises(RemoteProtocolError):  # another group
        unseal(envelope, group_secret=os.urandom(32))
    # a member re-signing someone else's envelope as its own still cannot change its content
    other_seed = os.urandom(32)
    forged = bytearray(envelope)
    forged[3:35] = bytes(nacl.signing.SigningKey(other_seed).verify_key)
    with pytest.raises(RemoteProtocolError):
        unseal(bytes(forged), is_member=lambda key: True)


def test_limits_on_sealing() -> None:
    with pytest.raises(LocalProtocolError):
        seal(doc_id="")
    with pytest.raises(LocalProtocolError):
        seal(doc_id="x" * (MAX_STORE_DOC_ID_BYTES + 1))
    assert unseal(seal(doc_id="x" * MAX_STORE_DOC_ID_BYTES)).doc_id == "x" * 255
    with pytest.raises(LocalProtocolError):
        seal(kind=9)
    with pytest.raises(LocalProtocolError):
        seal(nonce=b"short")
    assert bucket(MAX_ENVELOPE_BYTES) == MAX_ENVELOPE_BYTES
    assert not is_bucket(MAX_ENVELOPE_BYTES + 1) and not is_bucket(255)


def test_snapshot_kind_is_signed_too() -> None:
    envelope = seal(kind=KIND_SNAPSHOT)
    assert envelope_shape(envelope).kind == KIND_SNAPSHOT
    mutated = bytearray(envelope)
    mutated[1] = KIND_UPDATE
    with pytest.raises(RemoteProtocolError):
        unseal(bytes(mutated))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_hostile_bytes_never_raise_anything_else(data: bytes) -> None:
    for parse in (lambda: decode_upload(data, max_records=8), lambda: decode_pull(data),
                  lambda: unseal(data), lambda: envelope_shape(data)):
        try:
            parse()
        except RemoteProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 255))
def test_mutated_valid_bodies(position: int, xor: int) -> None:
    body = bytearray(encode_upload([seal(), seal(b"y" * 300)]))
    body[position % len(body)] ^= xor
    try:
        for envelope in decode_upload(bytes(body), max_records=8):
            unseal(envelope)
    except RemoteProtocolError:
        return
    raise AssertionError("a mutated body was accepted")
