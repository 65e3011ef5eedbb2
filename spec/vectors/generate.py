"""Regenerate the known-answer vectors in this folder: ``python spec/vectors/generate.py``.

Every value comes from pinned inputs (keys, ephemeral keys, SPAKE2 entropy), so
the output is byte-for-byte stable. Values are also computed a second time here,
straight from the spec with hashlib and libsodium (the handshake key schedule,
digests, rooms, the sealed box) or with ``spake2_reference.py`` (SPAKE2), and
must agree with the reference before anything is written.
``tests/test_protocol_vectors.py`` and ``tests/test_spec_vectors.py`` check that
the reference still reproduces every vector.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import nacl.bindings  # noqa: E402
import nacl.signing  # noqa: E402
import spake2_reference  # noqa: E402
from document_vectors import document_vectors  # noqa: E402
from membership_vectors import membership_vectors  # noqa: E402
from relay_vectors import discovery_vectors, relay_vectors  # noqa: E402

from protocol import (  # noqa: E402
    DEVICES,
    INITIATOR,
    JOINER,
    NEED_DATA,
    PAIRER,
    RESPONDER,
    Catalogue,
    CatalogueEntry,
    CatalogueReceived,
    CatchUpDone,
    Close,
    Connection,
    Credentials,
    DeltaRequest,
    DeviceInfo,
    GroupSnapshot,
    Heartbeat,
    HeartbeatAck,
    Message,
    Pairing,
    StateVector,
    StateVectorReceived,
    Update,
    discovery_tag,
    document_key,
    keys,
    relay_room_id,
    state_vector_digest,
)
from protocol.errors import LocalProtocolError, RemoteProtocolError  # noqa: E402
from protocol.messages import CatalogueDigest, encode_catalogue_entry, encode_message  # noqa: E402
from protocol.pairing import new_pairing_code, normalize_pairing_code  # noqa: E402
from protocol.store import (  # noqa: E402
    KIND_SNAPSHOT,
    KIND_UPDATE,
    bucket,
    encode_pull,
    encode_upload,
    seal_envelope,
)


def h(data: bytes) -> str:
    return data.hex()


def pinned(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng that returns exactly these outputs, in order."""
    queue = list(chunks)

    def rng(n: int) -> bytes:
        out = queue.pop(0)
        assert len(out) == n, (len(out), n)
        return out

    return rng


def filled(byte: int, n: int = 32) -> bytes:
    return bytes([byte]) * n


GROUP_SECRET = bytes(range(32))
EPOCH = 7
SEED_I = filled(0xA1)
SEED_R = filled(0xB2)
EPH_I = filled(0xC3)
EPH_R = filled(0xD4)


def public(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(message).__name__}
    match message:
        case CatalogueDigest(digest=d):
            out["digest"] = h(d)
        case Catalogue(entries=entries):
            out["entries"] = [[e.doc_id, e.sync_class, h(e.sv_digest)] for e in entries]
        case DeltaRequest(state_vectors=items):
            out["state_vectors"] = [[i.doc_id, i.sync_class, h(i.state_vector)] for i in items]
        case Update(doc_id=d, sync_class=c, update=u):
            out.update(doc_id=d, sync_class=c, update=h(u))
        case Heartbeat(counter=n) | HeartbeatAck(counter=n):
            out["counter"] = n
        case Close(code=code, reason=reason):
            out.update(code=code, reason=reason)
    return out


# --- keys --------------------------------------------------------------------------


def key_vectors() -> dict[str, Any]:
    unsorted_sv = bytes([2, 9, 4, 3, 1])  # clients 9 and 3, out of order
    sorted_sv = bytes([2, 3, 1, 9, 4])
    assert state_vector_digest(unsorted_sv) == state_vector_digest(sorted_sv)
    return {
        "description": "Group-derived values and digests (spec/crypto.md).",
        "group_secret": h(GROUP_SECRET),
        "epoch": EPOCH,
        "group_handshake_key": h(keys.group_handshake_key(GROUP_SECRET, EPOCH)),
        "relay_room_id": h(relay_room_id(GROUP_SECRET, EPOCH)),
        "discovery_tags": [
            {"hour": hour, "tag": h(discovery_tag(GROUP_SECRET, EPOCH, hour))}
            for hour in (0, 474_000, 474_001)
        ],
        "document_keys": [
            {"doc_id": d, "key": h(document_key(GROUP_SECRET, EPOCH, d))}
            for d in ("journal/2024-05", "identity-graph")
        ],
        "state_vector_digests": [
            {"state_vector": h(sv), "digest": h(state_vector_digest(sv))}
            for sv in (b"\x00", sorted_sv, unsorted_sv)
        ],
        "kdf": [
            {
                "key": h(GROUP_SECRET),
                "purpose": p.decode(),
                "data": h(b"mirror"),
                "output": h(keys.kdf(GROUP_SECRET, p, b"mirror")),
            }
            for p in (keys.Purpose.HS_GROUP, keys.Purpose.ROOM, keys.Purpose.SESSION)
        ],
        "hash": [{"data": h(b"abc"), "output": h(keys.digest(b"abc"))}],
        "state_vector_canonical": canonical_state_vectors(),
        "invalid_state_vectors": [
            {"bytes": "0203010301", "why": "client 3 listed twice"},
            {"bytes": "01800001", "why": "non-minimal varint (client 0 in two bytes)"},
            {"bytes": "01030100", "why": "a byte after the last pair"},
            {"bytes": "0203", "why": "truncated"},
            {"bytes": "", "why": "empty (the empty state vector is 00)"},
        ],
        "catalogue_digests": catalogue_digests(),
    }


def canonical_state_vectors() -> list[dict[str, Any]]:
    """Out-of-order clients, a zero clock (kept) and a two-byte client varint."""
    cases = [
        # (state vector, canonical form): count, then (client, clock) sorted by client
        (bytes([3, 5, 0, 1, 3, 0xAC, 0x02, 1]), bytes([3, 1, 3, 5, 0, 0xAC, 0x02, 1])),
        (bytes([2, 1, 0, 2, 0]), bytes([2, 1, 0, 2, 0])),
        (bytes([0]), bytes([0])),
    ]
    out = []
    for sv, canon in cases:
        digest = hashlib.blake2b(canon, digest_size=32, person=b"mirror/sv-digest").digest()
        assert state_vector_digest(sv) == digest
        out.append({"state_vector": h(sv), "canonical": h(canon), "digest": h(digest)})
    for bad in ("0203010301", "01800001", "01030100", "0203", ""):
        try:
            state_vector_digest(bytes.fromhex(bad))
        except LocalProtocolError:
            continue
        raise AssertionError(f"{bad} has a digest")
    return out


def catalogue_digests() -> list[dict[str, Any]]:
    out = []
    for entries in (
        (),
        (CatalogueEntry("identity-graph", DEVICES, filled(0x11)),
         CatalogueEntry("journal/2024-05", DEVICES, filled(0x22))),
    ):
        encoded = [encode_catalogue_entry(e) for e in entries]
        for e, raw in zip(entries, encoded, strict=True):
            assert raw == bytes([len(e.doc_id.encode())]) + e.doc_id.encode() + b"\x01" + \
                e.sv_digest
        digest = hashlib.blake2b(b"".join(encoded), digest_size=32,
                                 person=b"mirror/catalogue").digest()
        assert keys.catalogue_digest(encoded) == digest
        out.append({
            "entries": [[e.doc_id, e.sync_class, h(e.sv_digest)] for e in entries],
            "entry_bytes": [h(raw) for raw in encoded],
            "digest": h(digest),
        })
    return out


# --- messages ----------------------------------------------------------------------

SAMPLE_MESSAGES: list[Message] = [
    CatalogueDigest(filled(0x42)),
    Catalogue(
        (
            CatalogueEntry("identity-graph", DEVICES, filled(0x01)),
            CatalogueEntry("journal/2024-05", DEVICES, filled(0x02)),
            CatalogueEntry("post/é", "commons", filled(0x03)),
        )
    ),
    DeltaRequest((StateVector("journal/2024-05", DEVICES, bytes([1, 5, 3])),)),
    Update("journal/2024-05", DEVICES, bytes([0, 0])),
    CatchUpDone(),
    Heartbeat(300),
    HeartbeatAck(300),
    Close(0, "bye"),
]

INVALID_MESSAGES = [
    ("060100", "trailing byte after Heartbeat(1)"),
    ("068000", "non-minimal varint (0 in two bytes)"),
    ("99", "unknown message type"),
    ("040001" + "00", "empty document id"),
    ("04016100" + "00", "sync class code 0 ('local' has no wire code)"),
    ("04016103" + "00", "unknown sync class code"),
    ("0402fffe01" + "00", "doc id not UTF-8"),
    ("0202" + "016201" + "00" * 32 + "016101" + "00" * 32, "catalogue not in ascending order"),
    ("0202" + "016101" + "00" * 32 + "016101" + "00" * 32, "document listed twice"),
    ("01" + "00" * 31, "truncated digest"),
    ("048002" + "61" * 256 + "01" + "00", "doc id of 256 bytes (the limit is 255)"),
]


def frame_vectors() -> dict[str, Any]:
    return {
        "description": "Plaintext message encodings (before sealing) and frames "
        "that must be rejected (spec/protocol.md).",
        "messages": [
            {"message": message_json(m), "encoding": h(encode_message(m))} for m in SAMPLE_MESSAGES
        ],
        "invalid_messages": [{"encoding": e, "why": why} for e, why in INVALID_MESSAGES],
        "invalid_frame_headers": [
            {"bytes": "02", "why": "unknown protocol version 2", "close_code": 3},
            {"bytes": "017e00000000", "why": "unknown frame kind 0x7e", "close_code": 2},
            {
                "bytes": "0110ffffffff",
                "why": "length 4 GiB - 1 over MAX_FRAME_BYTES",
                "close_code": 7,
            },
            {"bytes": "011001000001", "why": "length MAX_FRAME_BYTES + 1", "close_code": 7},
            {
                "bytes": "010100010000",
                "why": "HELLO over the handshake frame limit",
                "close_code": 7,
            },
        ],
    }


# --- handshake -----------------------------------------------------------------------


def reference_handshake(hello: bytes, reply: bytes, finish: bytes) -> dict[str, str]:
    """The key schedule recomputed from spec/crypto.md, independently of protocol/."""

    def kdf(key: bytes, purpose: bytes, data: bytes = b"") -> bytes:
        return hashlib.blake2b(data, digest_size=32, key=key, person=purpose).digest()

    def H(data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=32, person=b"mirror/hash").digest()

    k_grp = kdf(GROUP_SECRET, b"mirror/hs-group", EPOCH.to_bytes(8, "big"))
    assert hello[-32:] == kdf(k_grp, b"mirror/hs-hello", hello[:-32])
    h0 = H(b"Mirror v1 handshake")
    h1 = H(h0 + hello)
    h2 = H(h1 + reply[: 6 + 32])
    h3 = H(h2 + reply[38:] + finish[:6])
    h4 = H(h3 + finish[6:])
    e_r = reply[6:38]
    dh = nacl.bindings.crypto_scalarmult(EPH_I, e_r)
    assert dh == nacl.bindings.crypto_scalarmult(EPH_R, nacl.bindings.crypto_scalarmult_base(EPH_I))
    k_hs = kdf(k_grp, b"mirror/hs-secret", dh + h2)
    nonce0 = bytes(12)
    plain_r = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
        reply[38:], h2, nonce0, kdf(k_hs, b"mirror/hs-key-r")
    )
    assert plain_r[:32] == public(SEED_R)
    nacl.signing.VerifyKey(plain_r[:32]).verify(
        b"Mirror v1 handshake: responder signs\x00" + h2, plain_r[32:96]
    )
    assert plain_r[96:] == kdf(k_hs, b"mirror/hs-conf-r", h2 + plain_r[:96])
    plain_i = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
        finish[6:], h3, nonce0, kdf(k_hs, b"mirror/hs-key-i")
    )
    assert plain_i[:32] == public(SEED_I)
    assert plain_i[96:] == kdf(k_hs, b"mirror/hs-conf-i", h3 + plain_i[:96])
    session = kdf(k_hs, b"mirror/session", h4)
    return {
        "group_handshake_key": h(k_grp),
        "h1": h(h1),
        "h2": h(h2),
        "h3": h(h3),
        "h4": h(h4),
        "dh": h(dh),
        "handshake_secret": h(k_hs),
        "key_initiator_to_responder": h(kdf(session, b"mirror/key-i2r")),
        "key_responder_to_initiator": h(kdf(session, b"mirror/key-r2i")),
        "session_id": h(kdf(session, b"mirror/sess-id")),
    }


def drain(conn: Connection) -> list[Any]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def handshake_and_catalogue_vectors() -> tuple[dict[str, Any], dict[str, Any]]:
    known = frozenset({public(SEED_I), public(SEED_R)})
    i = Connection(INITIATOR, Credentials(SEED_I, GROUP_SECRET, EPOCH, known), pinned(EPH_I))
    r = Connection(RESPONDER, Credentials(SEED_R, GROUP_SECRET, EPOCH, known), pinned(EPH_R))
    hello = i.data_to_send()
    r.receive_data(hello)
    assert drain(r) == []
    reply = r.data_to_send()
    i.receive_data(reply)
    drain(i)
    finish = i.data_to_send()
    r.receive_data(finish)
    drain(r)
    schedule = reference_handshake(hello, reply, finish)
    assert h(i.session_id or b"") == schedule["session_id"] == h(r.session_id or b"")

    sealed_i = [i.send(Heartbeat(1)), i.send(Update("journal/2024-05", DEVICES, b"\x00\x00"))]
    r.receive_data(b"".join(sealed_i))
    drain(r)
    sealed_r = [r.data_to_send(), r.send(Heartbeat(2))]
    i.receive_data(b"".join(sealed_r))
    drain(i)
    handshake = {
        "description": "A full handshake with pinned device keys and ephemeral keys, "
        "then sealed frames in both directions (spec/protocol.md, spec/crypto.md).",
        "group_secret": h(GROUP_SECRET),
        "epoch": EPOCH,
        "initiator": {
            "device_seed": h(SEED_I),
            "device_key": h(public(SEED_I)),
            "ephemeral_private": h(EPH_I),
        },
        "responder": {
            "device_seed": h(SEED_R),
            "device_key": h(public(SEED_R)),
            "ephemeral_private": h(EPH_R),
        },
        "frames": {"hello": h(hello), "reply": h(reply), "finish": h(finish)},
        "schedule": schedule,
        "sealed": [
            {
                "from": "initiator",
                "sequence": 0,
                "message": message_json(Heartbeat(1)),
                "frame": h(sealed_i[0]),
            },
            {
                "from": "initiator",
                "sequence": 1,
                "message": message_json(Update("journal/2024-05", DEVICES, b"\x00\x00")),
                "frame": h(sealed_i[1]),
            },
            {
                "from": "responder",
                "sequence": 0,
                "message": message_json(HeartbeatAck(1)),
                "frame": h(sealed_r[0]),
            },
            {
                "from": "responder",
                "sequence": 1,
                "message": message_json(Heartbeat(2)),
                "frame": h(sealed_r[1]),
            },
        ],
    }
    ack = i.data_to_send()  # the initiator's HeartbeatAck(2), its sequence number 2
    handshake["sealed"].append(
        {
            "from": "initiator",
            "sequence": 2,
            "message": message_json(HeartbeatAck(2)),
            "frame": h(ack),
        }
    )
    r.receive_data(ack)
    drain(r)
    handshake["failures"] = handshake_failures(hello, reply, finish)
    return handshake, catalogue_exchange(i, r)


def handshake_failures(hello: bytes, reply: bytes, finish: bytes) -> list[dict[str, Any]]:
    """Inputs that end a handshake: the receiver writes nothing in answer (protocol.md §4).

    Receivers use this file's keys at EPOCH ('initiator-knowing-only-itself': an
    initiator whose known devices are its own key only). An initiator's HELLO went
    out before the input; 'receiver_writes' is every byte the receiver wrote after
    the input arrived (only the REPLY a valid HELLO earns, never an answer to the
    failure), and 'close_code' the code it reports locally."""
    known = frozenset({public(SEED_I), public(SEED_R)})
    at_8 = Connection(INITIATOR, Credentials(SEED_I, GROUP_SECRET, 8, known), pinned(EPH_I))
    wrong_tag = hello[:-1] + bytes([hello[-1] ^ 1])
    big_epoch = bytes.fromhex("01010000004580808080") + bytes([0x10]) + filled(0x55, 64)
    cases = [
        ("responder", at_8.data_to_send(), 5, "HELLO at epoch 8, which the responder lacks"),
        ("responder", wrong_tag, 4, "HELLO whose tag is wrong (another group secret)"),
        ("responder", big_epoch, 2, "HELLO at epoch 2^32 (over MAX_EPOCH): malformed"),
        ("responder", bytes.fromhex("0101000000b1"), 7, "HELLO header announcing 177 bytes"),
        ("responder", bytes.fromhex("02"), 3, "a first byte of version 2"),
        ("responder", hello + finish[:6] + bytes(144), 2, "valid HELLO, then a FINISH that "
         "does not open"),
        ("initiator", reply[:40] + bytes([reply[40] ^ 1]) + reply[41:], 2,
         "a REPLY whose sealed identity was altered"),
        ("initiator-knowing-only-itself", reply, 4, "a REPLY from a device the initiator "
         "does not know"),
    ]
    out = []
    for role, data, code, why in cases:
        if role == "responder":
            conn = Connection(RESPONDER, Credentials(SEED_R, GROUP_SECRET, EPOCH, known),
                              pinned(EPH_R))
        else:
            knows = known if role == "initiator" else frozenset({public(SEED_I)})
            conn = Connection(INITIATOR, Credentials(SEED_I, GROUP_SECRET, EPOCH, knows),
                              pinned(EPH_I))
            conn.data_to_send()  # its HELLO, sent before the input arrives
        conn.receive_data(data)
        try:
            drain(conn)
        except RemoteProtocolError as exc:
            assert exc.close_code == code, (why, exc)
        else:
            raise AssertionError(f"accepted: {why}")
        output = conn.data_to_send()
        # Only the REPLY to a valid HELLO, written before the bad FINISH came.
        assert output == (reply if why.startswith("valid HELLO") else b""), why
        try:
            conn.send(Close(0, ""))
        except LocalProtocolError:
            pass
        else:
            raise AssertionError(f"a Close could be sent: {why}")
        out.append({"receiver": role, "input": h(data), "close_code": code, "why": why,
                    "receiver_writes": h(output)})
    return out


def catalogue_exchange(i: Connection, r: Connection) -> dict[str, Any]:
    """Continue the session above: catalogues that differ in one document."""
    same = filled(0x11)
    cat_i = Catalogue(
        (
            CatalogueEntry("identity-graph", DEVICES, same),
            CatalogueEntry("journal/2024-05", DEVICES, filled(0x22)),
        )
    )
    cat_r = Catalogue(
        (
            CatalogueEntry("identity-graph", DEVICES, same),
            CatalogueEntry("journal/2024-05", DEVICES, filled(0x33)),
            CatalogueEntry("tensions", DEVICES, filled(0x44)),
        )
    )
    steps: list[dict[str, Any]] = []

    def step(who: str, node_sends: Message | None, wire: bytes, peer: Connection) -> list[Any]:
        peer.receive_data(wire)
        events = drain(peer)
        steps.append(
            {
                "from": who,
                "node_sends": message_json(node_sends) if node_sends is not None else None,
                "wire": h(wire),
                "peer_events": [type(e).__name__ for e in events],
            }
        )
        return events

    step("initiator", cat_i, i.send(cat_i), r)
    events = step("responder", cat_r, r.send(cat_r), i)
    step("initiator", None, i.data_to_send(), r)
    (received,) = [e for e in events if isinstance(e, CatalogueReceived)]
    assert received.differing == ("journal/2024-05", "tensions")
    req_i = DeltaRequest(
        (
            StateVector("journal/2024-05", DEVICES, bytes([1, 1, 4])),
            StateVector("tensions", DEVICES, b"\x00"),
        )
    )
    req_r = DeltaRequest((StateVector("journal/2024-05", DEVICES, bytes([1, 2, 9])),))
    svs_r = step("initiator", req_i, i.send(req_i), r)
    svs_i = step("responder", req_r, r.send(req_r), i)
    assert [e.doc_id for e in svs_r if isinstance(e, StateVectorReceived)] == [
        "journal/2024-05",
        "tensions",
    ]
    assert [e.doc_id for e in svs_i if isinstance(e, StateVectorReceived)] == ["journal/2024-05"]
    upd = Update("journal/2024-05", DEVICES, b"delta from initiator")
    done = step("initiator", upd, i.send(upd), r)
    assert isinstance(done[-1], CatchUpDone)
    for doc_id in ("journal/2024-05", "tensions"):
        u = Update(doc_id, DEVICES, f"delta of {doc_id} from responder".encode())
        step("responder", u, r.send(u), i)
    return {
        "description": "Continues the session of handshake.json (after its sealed frames): "
        "catalogue digests differ, full catalogues, delta requests, deltas, CatchUpDone. "
        "'wire' is every byte the sender's Connection produced at that step.",
        "catalogue_digest_initiator": h(keys.catalogue_digest(_entries(cat_i))),
        "catalogue_digest_responder": h(keys.catalogue_digest(_entries(cat_r))),
        "steps": steps,
    }


def _entries(catalogue: Catalogue) -> list[bytes]:
    from protocol.messages import encode_catalogue_entry

    return [encode_catalogue_entry(e) for e in catalogue.entries]


# --- pairing --------------------------------------------------------------------------


def pairing_vectors() -> dict[str, Any]:
    code = "7kq2-m9xd"
    seed_p, seed_j = filled(0xE5), filled(0xF6)
    entropy_p, entropy_j = filled(0x17, 64), filled(0x28, 64)
    group = GroupSnapshot(GROUP_SECRET, EPOCH, (DeviceInfo(public(seed_p), "laptop"),))
    p = Pairing(PAIRER, code, seed_p, pinned(entropy_p), group=group)
    j = Pairing(JOINER, code, seed_j, pinned(entropy_j), device_name="phone")
    frames = {}
    for name, src, dst in (("start", j, p), ("reply", p, j), ("confirm", j, p), ("welcome", p, j)):
        data = src.data_to_send()
        frames[name] = h(data)
        dst.receive_data(data)
        while dst.next_event() is not NEED_DATA:
            pass
    return {
        "description": "Pairing (spec/pairing.md) with pinned entropy: each side's rng "
        "returns the listed 64 bytes once, for its SPAKE2 scalar. 'spake2' has every "
        "intermediate value (scalars in decimal); 'derived' the transcript, keys and "
        "plaintexts of the seals; 'wrong_code' the same exchange with a mistyped code.",
        "code": code,
        "normalized_code": "7kq2m9xd",
        "pairer": {"device_seed": h(seed_p), "spake2_entropy": h(entropy_p), "name": "laptop"},
        "joiner": {"device_seed": h(seed_j), "spake2_entropy": h(entropy_j), "name": "phone"},
        "group_secret": h(GROUP_SECRET),
        "epoch": EPOCH,
        "frames": frames,
        **pairing_details(code, frames, seed_p, seed_j, entropy_p, entropy_j, group),
    }


def pairing_details(
    code: str, frames: dict[str, str], seed_p: bytes, seed_j: bytes,
    entropy_p: bytes, entropy_j: bytes, group: GroupSnapshot,
) -> dict[str, Any]:
    """SPAKE2 recomputed with spake2_reference, then the transcript and both seals opened."""
    ref = spake2_reference
    password = normalize_pairing_code(code)
    id_a, id_b = b"mirror-pair/joiner", b"mirror-pair/pairer"
    joiner = ref.start(b"A", password, lambda n: entropy_j)
    pairer = ref.start(b"B", password, lambda n: entropy_p)
    start, reply = bytes.fromhex(frames["start"]), bytes.fromhex(frames["reply"])
    confirm, welcome = bytes.fromhex(frames["confirm"]), bytes.fromhex(frames["welcome"])
    assert start[6:] == joiner.message and reply[6:39] == pairer.message
    k_a, key = ref.finish(b"A", password, joiner, pairer.message, id_a, id_b)
    k_b, key_b = ref.finish(b"B", password, pairer, joiner.message, id_a, id_b)
    assert (k_a, key) == (k_b, key_b)
    th = hashlib.blake2b(b"Mirror v1 pairing" + start + reply[:6] + reply[6:39],
                         digest_size=32, person=b"mirror/pr-hash").digest()

    def kdf(purpose: bytes) -> bytes:
        return hashlib.blake2b(th, digest_size=32, key=key, person=purpose).digest()

    conf_p, conf_j = kdf(b"mirror/pr-conf-p"), kdf(b"mirror/pr-conf-j")
    k_jp, k_pj = kdf(b"mirror/pr-key-jp"), kdf(b"mirror/pr-key-pj")
    assert reply[39:] == conf_p and confirm[6:38] == conf_j
    zero = bytes(12)
    joiner_info = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
        confirm[38:], th, zero, k_jp)
    welcome_plain = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
        welcome[6:], th, zero, k_pj)
    sig_j = joiner_info[-64:]
    nacl.signing.VerifyKey(public(seed_j)).verify(
        b"Mirror v1 pairing: joiner signs\x00" + th, sig_j)
    assert joiner_info == public(seed_j) + bytes([5]) + b"phone" + sig_j
    sig_p = welcome_plain[32:96]
    nacl.signing.VerifyKey(public(seed_p)).verify(
        b"Mirror v1 pairing: pairer signs\x00" + th, sig_p)
    devices = [*group.devices, DeviceInfo(public(seed_j), "phone")]
    listed = b"".join(d.device_key + bytes([len(d.name)]) + d.name.encode() for d in devices)
    assert welcome_plain == (public(seed_p) + sig_p + bytes([EPOCH]) + GROUP_SECRET
                             + bytes([len(devices)]) + listed)

    def side(s: spake2_reference.Side, entropy: bytes) -> dict[str, str]:
        return {"entropy": h(entropy), "scalar": str(s.scalar),
                "element": h(s.message[1:]), "message": h(s.message)}

    wrong = Pairing(JOINER, "7kq2-m9xe", seed_j, pinned(entropy_j), device_name="phone")
    pairer_again = Pairing(PAIRER, code, seed_p, pinned(entropy_p), group=group)
    wrong_start = wrong.data_to_send()
    pairer_again.receive_data(wrong_start)
    drain(pairer_again)
    wrong_reply = pairer_again.data_to_send()
    wrong.receive_data(wrong_reply)
    try:
        drain(wrong)
    except RemoteProtocolError as exc:
        assert exc.close_code == 4
    else:
        raise AssertionError("a wrong code was accepted")
    return {
        "code_generation": [
            {"random": r, "code": new_pairing_code(lambda n, r=r: bytes.fromhex(r))}
            for r in ("0000000000", "ffffffffff", "0123456789", "3a7f00c2e1")
        ],
        "normalisation": [
            {"typed": typed, "password": normalised}
            for typed, normalised in (
                (" 7KQ2-M9XD ", "7kq2m9xd"), ("iLo0 abcd", "1100abcd"), ("7kq2-m9x", None),
                ("7kq2-m9xu", None), ("7kq2m9xd5", None),
            )
            if _normalised(typed) == normalised
        ],
        "spake2": {
            "password": h(password), "id_a": id_a.decode(), "id_b": id_b.decode(),
            "password_scalar": str(ref.password_scalar(password)),
            "M": h(ref.encode(ref.M)), "N": h(ref.encode(ref.N)),
            "joiner": side(joiner, entropy_j), "pairer": side(pairer, entropy_p),
            "K": h(k_a), "key": h(key),
        },
        "derived": {
            "th": h(th), "conf_p": h(conf_p), "conf_j": h(conf_j), "k_jp": h(k_jp),
            "k_pj": h(k_pj), "sig_j": h(sig_j), "sig_p": h(sig_p),
            "joiner_info": h(joiner_info), "welcome": h(welcome_plain),
            "welcome_devices": [[h(d.device_key), d.name] for d in devices],
        },
        "wrong_code": {
            "joiner_code": "7kq2-m9xe", "start": h(wrong_start), "reply": h(wrong_reply),
            "joiner_abort": h(wrong.data_to_send()),
        },
    }


def _normalised(typed: str) -> str | None:
    try:
        return normalize_pairing_code(typed).decode()
    except LocalProtocolError:
        return None


# --- blind store --------------------------------------------------------------------


def blind_store_vectors() -> dict[str, Any]:
    token = keys.store_token(GROUP_SECRET, EPOCH)
    group_id = keys.store_group_id(token)
    seed = filled(0xE5)
    cases = [
        (KIND_UPDATE, "journal/2024-05", bytes([1, 2, 3, 4]), bytes([1, 9, 4]), filled(0x11, 24)),
        (KIND_SNAPSHOT, "devices", bytes(range(200)) * 3, bytes([1, 3, 7]), filled(0x22, 24)),
        (KIND_UPDATE, "é" * 40, b"", b"\x00", filled(0x33, 24)),
    ]
    envelopes = []
    for kind, doc_id, payload, sv, nonce in cases:
        sealed = seal_envelope(
            kind=kind, doc_id=doc_id, payload=payload, state_vector=sv,
            group_secret=GROUP_SECRET, epoch=EPOCH, group_id=group_id, device_seed=seed,
            nonce=nonce,
        )
        envelopes.append({
            "kind": kind, "doc_id": doc_id, "payload": h(payload), "state_vector": h(sv),
            "nonce": h(nonce), "envelope": h(sealed),
        })
    first = bytes.fromhex(envelopes[0]["envelope"])
    return {
        "description": "Blind-store derivations and envelopes (spec/crypto.md §6, "
        "spec/protocol.md §12), with a pinned device seed and nonces.",
        "group_secret": h(GROUP_SECRET),
        "epoch": EPOCH,
        "store_token": h(token),
        "store_group_id": h(group_id),
        "store_name_key": h(keys.store_name_key(GROUP_SECRET, EPOCH)),
        "device_seed": h(seed),
        "device_key": h(public(seed)),
        "envelopes": envelopes,
        "buckets": [{"size": n, "bucket": bucket(n)}
                    for n in (1, 256, 257, 1000, 65_536, 65_537, 100_000, 5_000_000)],
        "upload_body": h(encode_upload([first])),
        "pull_body": h(encode_pull([(42, first)])),
    }


def _previous(name: str) -> Any:
    try:
        return json.loads((HERE / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def main() -> None:
    handshake, catalogue = handshake_and_catalogue_vectors()
    outputs = {
        "keys.json": key_vectors(),
        "frames.json": frame_vectors(),
        "handshake.json": handshake,
        "catalogue.json": catalogue,
        "pairing.json": pairing_vectors(),
        "blind_store.json": blind_store_vectors(),
        "relay.json": relay_vectors(GROUP_SECRET, EPOCH),
        "discovery.json": discovery_vectors(GROUP_SECRET, EPOCH),
        "membership.json": membership_vectors(),
        "documents.json": document_vectors(_previous("documents.json")),
    }
    for name, data in outputs.items():
        (HERE / name).write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
