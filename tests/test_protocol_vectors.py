"""Known-answer vectors from spec/vectors, reproduced byte for byte."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from protocol import (
    INITIATOR,
    JOINER,
    NEED_DATA,
    PAIRER,
    RESPONDER,
    Catalogue,
    CatalogueEntry,
    CatchUpDone,
    Close,
    Connection,
    Credentials,
    DeltaRequest,
    DeviceInfo,
    GroupSnapshot,
    Heartbeat,
    HeartbeatAck,
    JoinedGroup,
    Message,
    Pairing,
    RemoteProtocolError,
    StateVector,
    Update,
    discovery_tag,
    document_key,
    keys,
    relay_room_id,
    state_vector_digest,
)
from protocol.frames import FrameBuffer, FrameKind
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import CatalogueDigest, decode_message, encode_message

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"


@cache
def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def x(text: str) -> bytes:
    return bytes.fromhex(text)


def pinned(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)
    return lambda n: queue.pop(0)


def message_from_json(data: dict[str, Any]) -> Message:
    kind = data["type"]
    if kind == "CatalogueDigest":
        return CatalogueDigest(x(data["digest"]))
    if kind == "Catalogue":
        return Catalogue(tuple(CatalogueEntry(d, c, x(s)) for d, c, s in data["entries"]))
    if kind == "DeltaRequest":
        return DeltaRequest(tuple(StateVector(d, c, x(s)) for d, c, s in data["state_vectors"]))
    if kind == "Update":
        return Update(data["doc_id"], data["sync_class"], x(data["update"]))
    if kind == "CatchUpDone":
        return CatchUpDone()
    if kind == "Heartbeat":
        return Heartbeat(data["counter"])
    if kind == "HeartbeatAck":
        return HeartbeatAck(data["counter"])
    assert kind == "Close"
    return Close(data["code"], data["reason"])


def drain(conn: Connection | Pairing) -> list[Any]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_key_derivations() -> None:
    v = load("keys.json")
    secret, epoch = x(v["group_secret"]), v["epoch"]
    assert keys.group_handshake_key(secret, epoch).hex() == v["group_handshake_key"]
    assert relay_room_id(secret, epoch).hex() == v["relay_room_id"]
    for case in v["discovery_tags"]:
        assert discovery_tag(secret, epoch, case["hour"]).hex() == case["tag"]
    for case in v["document_keys"]:
        assert document_key(secret, epoch, case["doc_id"]).hex() == case["key"]
    for case in v["state_vector_digests"]:
        assert state_vector_digest(x(case["state_vector"])).hex() == case["digest"]
    for case in v["kdf"]:
        out = keys.kdf(x(case["key"]), case["purpose"].encode(), x(case["data"]))
        assert out.hex() == case["output"]
    for case in v["hash"]:
        assert keys.digest(x(case["data"])).hex() == case["output"]


@pytest.mark.parametrize(
    "case", load("frames.json")["messages"], ids=lambda c: c["message"]["type"]
)
def test_message_encodings(case: dict[str, Any]) -> None:
    message = message_from_json(case["message"])
    assert encode_message(message).hex() == case["encoding"]
    assert decode_message(x(case["encoding"])) == message


@pytest.mark.parametrize("case", load("frames.json")["invalid_messages"], ids=lambda c: c["why"])
def test_invalid_messages_are_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(x(case["encoding"]))


@pytest.mark.parametrize(
    "case", load("frames.json")["invalid_frame_headers"], ids=lambda c: c["why"]
)
def test_invalid_frame_headers_are_rejected(case: dict[str, Any]) -> None:
    if "HELLO" in case["why"]:
        buffer = FrameBuffer(frozenset({FrameKind.HELLO}), 176)
    else:
        buffer = FrameBuffer(frozenset({FrameKind.SEALED}), MAX_FRAME_BYTES)
    buffer.feed(x(case["bytes"]))
    with pytest.raises(RemoteProtocolError) as info:
        buffer.next_frame()
    assert info.value.close_code == case["close_code"]


def _handshake_pair() -> tuple[Connection, Connection, dict[str, Any]]:
    v = load("handshake.json")
    known = frozenset({x(v["initiator"]["device_key"]), x(v["responder"]["device_key"])})

    def creds(side: str) -> Credentials:
        return Credentials(x(v[side]["device_seed"]), x(v["group_secret"]), v["epoch"], known)

    i = Connection(INITIATOR, creds("initiator"), pinned(x(v["initiator"]["ephemeral_private"])))
    r = Connection(RESPONDER, creds("responder"), pinned(x(v["responder"]["ephemeral_private"])))
    return i, r, v


def test_full_handshake_with_pinned_keys() -> None:
    i, r, v = _handshake_pair()
    frames = v["frames"]
    assert i.data_to_send().hex() == frames["hello"]
    r.receive_data(x(frames["hello"]))
    assert drain(r) == []
    assert r.data_to_send().hex() == frames["reply"]
    i.receive_data(x(frames["reply"]))
    drain(i)
    assert i.data_to_send().hex() == frames["finish"]
    r.receive_data(x(frames["finish"]))
    drain(r)
    assert i.session_id is not None and i.session_id.hex() == v["schedule"]["session_id"]
    assert r.session_id == i.session_id
    assert i._channel is not None
    assert i._channel.send_key.hex() == v["schedule"]["key_initiator_to_responder"]
    assert i._channel.recv_key.hex() == v["schedule"]["key_responder_to_initiator"]

    for frame in v["sealed"]:
        sender, receiver = (i, r) if frame["from"] == "initiator" else (r, i)
        message = message_from_json(frame["message"])
        if isinstance(message, HeartbeatAck):
            wire = sender.data_to_send()  # sent by the Connection itself
        else:
            wire = sender.send(message)
        assert wire.hex() == frame["frame"], frame
        receiver.receive_data(wire)
        assert message in drain(receiver)


def test_catalogue_exchange() -> None:
    i, r, v = _handshake_pair()
    for src, dst in ((i, r), (r, i), (i, r)):  # hello, reply, finish
        dst.receive_data(src.data_to_send())
        drain(dst)
    for frame in v["sealed"]:
        sender, receiver = (i, r) if frame["from"] == "initiator" else (r, i)
        message = message_from_json(frame["message"])
        wire = sender.data_to_send() if isinstance(message, HeartbeatAck) else sender.send(message)
        receiver.receive_data(wire)
        drain(receiver)

    for step in load("catalogue.json")["steps"]:
        sender, receiver = (i, r) if step["from"] == "initiator" else (r, i)
        if step["node_sends"] is None:
            wire = sender.data_to_send()
        else:
            wire = sender.send(message_from_json(step["node_sends"]))
        assert wire.hex() == step["wire"], step
        receiver.receive_data(wire)
        assert [type(e).__name__ for e in drain(receiver)] == step["peer_events"]


def test_pairing_with_pinned_entropy() -> None:
    v = load("pairing.json")
    p_info, j_info = v["pairer"], v["joiner"]
    pairer_key = bytes(nacl.signing.SigningKey(x(p_info["device_seed"])).verify_key)
    group = GroupSnapshot(x(v["group_secret"]), v["epoch"], (DeviceInfo(pairer_key, "laptop"),))
    p = Pairing(
        PAIRER,
        v["code"],
        x(p_info["device_seed"]),
        pinned(x(p_info["spake2_entropy"])),
        group=group,
    )
    j = Pairing(
        JOINER,
        v["code"],
        x(j_info["device_seed"]),
        pinned(x(j_info["spake2_entropy"])),
        device_name=j_info["name"],
    )
    events: list[Any] = []
    for name, src, dst in (("start", j, p), ("reply", p, j), ("confirm", j, p), ("welcome", p, j)):
        data = src.data_to_send()
        assert data.hex() == v["frames"][name], name
        dst.receive_data(data)
        events += drain(dst)
    (joined,) = [e for e in events if isinstance(e, JoinedGroup)]
    assert joined.group.group_secret == x(v["group_secret"])
