"""The vectors a second implementation checks itself against (spec/vectors), checked
here against the reference: digests and handshake failures (keys.json,
handshake.json), SPAKE2 and the pairing transcript (pairing.json), the relay's
contract (relay.json), discovery (discovery.json), membership (membership.json)
and document schemas (documents.json)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest
import spake2
from pycrdt import Array, Doc, Map, Text

from crdt import SyncClass
from crdt.crypto_at_rest import purpose_key
from crdt.devices import device_id_of, read_devices, read_removed
from crdt.graph import graph_view
from crdt.insights import ID_FIELD, record_slot
from crdt.journal import read_reflections
from crdt.store import StoredDoc
from crdt.values import format_timestamp
from node.config import normalize_relay_url
from node.discovery.tags import _group_classifier, _group_properties, order_addresses
from node.engine.derive import derive_all
from node.engine.extract import from_json
from node.engine.lived import lived_loops, summarize_patterns, summarize_tension
from node.identity import Keyring, device_id_for, load_keyring
from node.sync.group import Group
from node.sync.relay import rank_relays
from protocol import (
    INITIATOR,
    JOINER,
    NEED_DATA,
    PAIRER,
    RESPONDER,
    CatalogueEntry,
    Close,
    Connection,
    Credentials,
    DeviceInfo,
    GroupSnapshot,
    LocalProtocolError,
    Pairing,
    RemoteProtocolError,
    discovery_tag,
    keys,
    pairing_hint,
    state_vector_digest,
)
from protocol.messages import encode_catalogue_entry
from protocol.pairing import (
    SPAKE2_ID_JOINER,
    SPAKE2_ID_PAIRER,
    new_pairing_code,
    normalize_pairing_code,
)
from protocol.relay import (
    Presence,
    PresenceKind,
    pair_room,
    parse_presence,
    relay_rank,
    rendezvous_room,
    room_from_path,
    room_path,
)
from tests.test_protocol_vectors import drain, load, pinned, x

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"


def public(seed: bytes) -> bytes:
    return bytes(nacl.bindings.crypto_sign_seed_keypair(seed)[0])


# --- keys.json: canonical forms -------------------------------------------------


def test_state_vector_digests_use_the_canonical_form() -> None:
    v = load("keys.json")
    for case in v["state_vector_canonical"]:
        assert state_vector_digest(x(case["state_vector"])).hex() == case["digest"]
        assert state_vector_digest(x(case["canonical"])).hex() == case["digest"]
    for case in v["invalid_state_vectors"]:
        with pytest.raises(LocalProtocolError):
            state_vector_digest(x(case["bytes"]))


def test_catalogue_digests_including_the_empty_catalogue() -> None:
    cases = load("keys.json")["catalogue_digests"]
    assert cases[0]["entries"] == []
    for case in cases:
        entries = [CatalogueEntry(d, c, x(sv)) for d, c, sv in case["entries"]]
        encoded = [encode_catalogue_entry(e) for e in entries]
        assert [e.hex() for e in encoded] == case["entry_bytes"]
        assert keys.catalogue_digest(encoded).hex() == case["digest"]


# --- handshake.json: failures are silent ------------------------------------------


@pytest.mark.parametrize("case", load("handshake.json")["failures"], ids=lambda c: c["why"])
def test_a_failed_handshake_writes_nothing_in_answer(case: dict[str, Any]) -> None:
    v = load("handshake.json")
    i, r = v["initiator"], v["responder"]
    known = frozenset({x(i["device_key"]), x(r["device_key"])})
    secret, epoch = x(v["group_secret"]), v["epoch"]
    if case["receiver"] == "responder":
        conn = Connection(RESPONDER, Credentials(x(r["device_seed"]), secret, epoch, known),
                          pinned(x(r["ephemeral_private"])))
    else:
        if case["receiver"] != "initiator":
            known = frozenset({x(i["device_key"])})
        conn = Connection(INITIATOR, Credentials(x(i["device_seed"]), secret, epoch, known),
                          pinned(x(i["ephemeral_private"])))
        assert conn.data_to_send().hex() == v["frames"]["hello"]
    conn.receive_data(x(case["input"]))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(conn)
    assert failure.value.close_code == case["close_code"]
    assert conn.data_to_send().hex() == case["receiver_writes"]
    with pytest.raises(LocalProtocolError):
        conn.send(Close(int(failure.value.close_code), "no keys to seal this with"))


# --- pairing.json: SPAKE2 exactly, the transcript, the seals ----------------------


def test_spake2_intermediate_values() -> None:
    from spake2.parameters.ed25519 import ParamsEd25519

    s = load("pairing.json")["spake2"]
    password = x(s["password"])
    assert (s["id_a"].encode(), s["id_b"].encode()) == (SPAKE2_ID_JOINER, SPAKE2_ID_PAIRER)
    assert ParamsEd25519.group.password_to_scalar(password) == int(s["password_scalar"])
    assert ParamsEd25519.M.to_bytes().hex() == s["M"]
    assert ParamsEd25519.N.to_bytes().hex() == s["N"]
    joiner = spake2.SPAKE2_A(password, idA=SPAKE2_ID_JOINER, idB=SPAKE2_ID_PAIRER,
                             entropy_f=pinned(x(s["joiner"]["entropy"])))
    pairer = spake2.SPAKE2_B(password, idA=SPAKE2_ID_JOINER, idB=SPAKE2_ID_PAIRER,
                             entropy_f=pinned(x(s["pairer"]["entropy"])))
    x_msg, y_msg = joiner.start(), pairer.start()
    assert joiner.xy_scalar == int(s["joiner"]["scalar"])
    assert pairer.xy_scalar == int(s["pairer"]["scalar"])
    assert (x_msg.hex(), y_msg.hex()) == (s["joiner"]["message"], s["pairer"]["message"])
    assert x_msg[1:].hex() == s["joiner"]["element"] and x_msg[:1] == b"A"
    assert joiner.finish(y_msg).hex() == s["key"] == pairer.finish(x_msg).hex()


def test_the_spec_text_implementation_of_spake2_agrees() -> None:
    """spec/vectors/spake2_reference.py is pairing.md §3 written out; it must give the
    same values (so the text, not only the library, is right)."""
    sys.path.insert(0, str(VECTORS))
    try:
        import spake2_reference as ref
    finally:
        sys.path.remove(str(VECTORS))
    s = load("pairing.json")["spake2"]
    password = x(s["password"])
    assert ref.password_scalar(password) == int(s["password_scalar"])
    assert (ref.encode(ref.M).hex(), ref.encode(ref.N).hex()) == (s["M"], s["N"])
    joiner = ref.start(b"A", password, pinned(x(s["joiner"]["entropy"])))
    pairer = ref.start(b"B", password, pinned(x(s["pairer"]["entropy"])))
    assert joiner.message.hex() == s["joiner"]["message"]
    k, key = ref.finish(b"B", password, pairer, joiner.message,
                        s["id_a"].encode(), s["id_b"].encode())
    assert (k.hex(), key.hex()) == (s["K"], s["key"])


def test_the_pairing_transcript_keys_and_plaintexts() -> None:
    v = load("pairing.json")
    d, frames = v["derived"], {k: x(f) for k, f in v["frames"].items()}
    reply = frames["reply"]
    # th covers Y* with its side byte "B"
    assert reply[6:7] == b"B"
    th = keys.digest(keys.PAIRING_LABEL + frames["start"] + reply[:6] + reply[6:39],
                     keys.Purpose.PAIR_HASH)
    assert th.hex() == d["th"]
    key = x(v["spake2"]["key"])
    for name, purpose in (("conf_p", keys.Purpose.PAIR_CONFIRM_P),
                          ("conf_j", keys.Purpose.PAIR_CONFIRM_J),
                          ("k_jp", keys.Purpose.PAIR_KEY_J2P), ("k_pj", keys.Purpose.PAIR_KEY_P2J)):
        assert keys.kdf(key, purpose, th).hex() == d[name]
    assert reply[39:].hex() == d["conf_p"]
    assert keys.open_sealed(x(d["k_jp"]), 0, frames["confirm"][38:], th, "confirm").hex() \
        == d["joiner_info"]
    welcome = keys.open_sealed(x(d["k_pj"]), 0, frames["welcome"][6:], th, "welcome")
    assert welcome.hex() == d["welcome"]
    devices = d["welcome_devices"]
    assert [name for _, name in devices] == ["laptop", "phone"]  # members, then the joiner
    assert devices[-1][0] == public(x(v["joiner"]["device_seed"])).hex()


def test_pairing_codes_and_a_wrong_code() -> None:
    v = load("pairing.json")
    for case in v["code_generation"]:
        assert new_pairing_code(pinned(x(case["random"]))) == case["code"]
    for case in v["normalisation"]:
        if case["password"] is None:
            with pytest.raises(LocalProtocolError):
                normalize_pairing_code(case["typed"])
        else:
            assert normalize_pairing_code(case["typed"]).decode() == case["password"]
    wrong = v["wrong_code"]
    j_info, p_info = v["joiner"], v["pairer"]
    pairer_key = public(x(p_info["device_seed"]))
    group = GroupSnapshot(x(v["group_secret"]), v["epoch"], (DeviceInfo(pairer_key, "laptop"),))
    joiner = Pairing(JOINER, wrong["joiner_code"], x(j_info["device_seed"]),
                     pinned(x(j_info["spake2_entropy"])), device_name="phone")
    pairer = Pairing(PAIRER, v["code"], x(p_info["device_seed"]),
                     pinned(x(p_info["spake2_entropy"])), group=group)
    assert joiner.data_to_send().hex() == wrong["start"]
    pairer.receive_data(x(wrong["start"]))
    assert pairer.next_event() is NEED_DATA
    assert pairer.data_to_send().hex() == wrong["reply"]
    joiner.receive_data(x(wrong["reply"]))
    with pytest.raises(RemoteProtocolError):
        joiner.next_event()
    assert joiner.data_to_send().hex() == wrong["joiner_abort"]


# --- relay.json --------------------------------------------------------------------


def test_the_relay_wire_contract() -> None:
    v = load("relay.json")
    from protocol.limits import MAX_RELAY_MESSAGE_BYTES

    assert v["max_message_bytes"] == MAX_RELAY_MESSAGE_BYTES
    assert keys.relay_room_id(x(v["group_secret"]), v["epoch"]).hex() == v["relay_room_id"]
    for case in v["pair_rooms"]:
        room = pair_room(x(v["group_secret"]), v["epoch"], x(case["key_a"]), x(case["key_b"]))
        assert room.hex() == case["room"]
    for case in v["rendezvous_rooms"]:
        assert pairing_hint(case["code"]).hex() == case["hint"]
        assert rendezvous_room(case["code"]).hex() == case["room"]
    for case in v["room_paths"]:
        assert room_path(x(case["room"])) == case["path"]
        assert room_from_path(case["path"]) == x(case["room"])
    assert all(room_from_path(p) is None for p in v["invalid_room_paths"])
    for case in v["presence"]:
        presence = Presence(PresenceKind(case["kind"]), case["others"])
        assert presence.text() == case["text"] and parse_presence(case["text"]) == presence
    assert all(parse_presence(text) is None for text in v["not_presence"])
    room = x(v["pair_rooms"][0]["room"])
    for case in v["relays"]:
        assert normalize_relay_url(case["written"]) == case["normalised"]
        assert relay_rank(room, case["normalised"]).hex() == case["weight"]
    ranked = rank_relays([c["written"] for c in v["relays"]], room)
    assert [normalize_relay_url(u) for u in ranked] == v["ranked"]


# --- discovery.json ---------------------------------------------------------------


def test_discovery_records_and_what_a_browser_accepts() -> None:
    import ipaddress

    v = load("discovery.json")
    secret, epoch, hour = x(v["group_secret"]), v["epoch"], v["hour"]
    assert v["unix_time"] // 3600 == hour
    assert _group_properties(discovery_tag(secret, epoch, hour)) == v["txt"]
    earlier = x(v["earlier_epoch_secret"])
    classify = _group_classifier(
        lambda h: discovery_tag(secret, epoch, h), lambda: float(v["unix_time"]),
        lambda h: [(epoch - 1, discovery_tag(earlier, epoch - 1, h))])
    for case in v["browser"]:
        match = classify(dict(case["txt"]))
        assert (match is not None) == case["accepted"], case["why"]
        if match is not None:
            assert (match.tag_hour, match.epoch) == (case["matched_hour"],
                                                     case["dial_at_epoch"])
    pairing = v["pairing"]
    assert pairing["txt"] == {"v": "1", "pairing": pairing_hint(pairing["code"]).hex()}
    addresses = v["addresses"]
    networks = [ipaddress.ip_network(n) for n in addresses["browser_networks"]]
    assert list(order_addresses(addresses["advertised"], networks)) == addresses["dial_order"]


# --- membership.json ---------------------------------------------------------------


def test_device_ids_and_x25519_forms() -> None:
    for device in load("membership.json")["devices"]:
        key = x(device["public_key"])
        assert public(x(device["seed"])) == key
        assert keys.device_id(key) == device_id_for(key) == device_id_of(key) \
            == device["device_id"]
        assert nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(key).hex() \
            == device["x25519_public"]
        assert nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
            x(device["seed"]) + key).hex() == device["x25519_private"]


def test_a_sealed_epoch_secret_opens_for_its_device_only(tmp_path: Path) -> None:
    v = load("membership.json")
    seeds = {d["name"]: x(d["seed"]) for d in v["devices"]}
    secret = x(v["epoch_secret"]["secret"])
    for sealed in v["epoch_secret"]["sealed"]:
        assert len(x(sealed["sealed"])) == 80 and len(sealed["stored"]) == 108
        for name, seed in seeds.items():
            ring = Keyring(path=tmp_path / name, device_seed=seed, device_name=name)
            expected = secret if name == sealed["recipient"] else None
            assert ring.open_sealed(sealed["stored"]) == expected


def test_the_membership_document_as_a_node_reads_it(tmp_path: Path) -> None:
    v = load("membership.json")
    m = v["membership_document"]
    doc: Doc[Any] = Doc()
    doc.apply_update(x(m["update"]))
    view = {root: doc.get(root, type=Map).to_py() for root in m["json"]}
    assert json.dumps(view, sort_keys=True) == json.dumps(m["json"], sort_keys=True)
    assert [r.device_id for r in read_devices(doc)] == m["records_in_order"]
    assert sorted(read_removed(doc)) == m["removed"]
    phone = next(d for d in v["devices"] if d["name"] == "phone")
    ring = Keyring(path=tmp_path / "keyring.json", device_seed=x(phone["seed"]),
                   device_name="phone", epochs={7: bytes(range(32))})
    group = Group(ring, StoredDoc("devices", "devices", SyncClass.DEVICES, doc))
    assert ring.epochs[8].hex() == v["epoch_secret"]["secret"]  # learned from the document
    assert sorted(k.hex() for k in group.known) == sorted(m["known_devices"])
    tablet = next(d for d in v["devices"] if d["name"] == "tablet")
    assert not group.admits(x(tablet["public_key"]))


def test_device_names_fit_a_pairing_welcome() -> None:
    from crdt.devices import MAX_NAME_BYTES, clean_name
    from protocol.limits import MAX_DEVICE_NAME_BYTES

    assert MAX_NAME_BYTES == MAX_DEVICE_NAME_BYTES
    assert clean_name("  my   é" + "é" * 55 + " ") == "my " + "é" * 56
    assert len(clean_name("é" * 64).encode()) == 128
    with pytest.raises(ValueError, match="128 bytes"):
        clean_name("😀" * 33)  # 33 characters, 132 bytes: no welcome could carry it


def test_keyring_json_plain_and_sealed(tmp_path: Path) -> None:
    v = load("membership.json")["keyring"]
    assert purpose_key(x(v["master_key"]), "keyring").hex() == v["sealing_key"]
    for form, key in (("plain", None), ("sealed", x(v["sealing_key"]))):
        home = tmp_path / form
        home.mkdir()
        path = home / "keyring.json"
        path.write_text(json.dumps(v[form]), encoding="utf-8")
        os.chmod(path, 0o600)
        ring = load_keyring(home, create=False, sealing_key=key)
        plain = v["plain"]
        assert ring.device_seed.hex() == plain["device_seed"]
        assert ring.device_name == plain["device_name"]
        assert {str(e): s.hex() for e, s in ring.epochs.items()} == plain["epochs"]


# --- documents.json ----------------------------------------------------------------


def as_numbers(value: Any) -> Any:
    """Integers as floats, the way pycrdt returns every number."""
    if isinstance(value, dict):
        return {k: as_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_numbers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def decoded(update: str, roots: list[str]) -> dict[str, Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(x(update))
    return {root: doc.get(root, type=Map).to_py() for root in roots}


def test_a_journal_shard() -> None:
    shard = load("documents.json")["journal"]
    assert decoded(shard["update"], ["reflections"]) == shard["json"]
    doc: Doc[Any] = Doc()
    doc.apply_update(x(shard["update"]))
    entry = doc.get("reflections", type=Map)["7k2m9xdq4r1a"]
    assert isinstance(entry["text"], Text) and isinstance(entry["tags"], Array)
    assert isinstance(entry["mirrorback"], Map)
    read = sorted(read_reflections(doc), key=lambda r: r.id)
    assert [{"id": r.id, "created_at": format_timestamp(r.created_at), "text": r.text,
             "tags": list(r.tags), "private": r.private,
             "edited_at": format_timestamp(r.edited_at) if r.edited_at else None,
             "mirrorback": r.mirrorback.text if r.mirrorback else None}
            for r in read] == shard["reflections"]


def by_name(root: dict[str, Any]) -> dict[str, Any]:
    """A root map of records as stored (slot → record with its name in ``id``),
    keyed by name; every slot must be the digest of its record's name."""
    out = {}
    for slot, record in root.items():
        name = record[ID_FIELD]
        assert slot == record_slot(name), name
        out[name] = {k: v for k, v in record.items() if k != ID_FIELD}
    return out


def test_derived_documents_are_what_the_engine_derives_from_the_index() -> None:
    v = load("documents.json")
    state = derive_all([from_json(rid, raw)
                        for rid, raw in v["engine_index"]["entries"].items()])
    derived = v["derived"]
    graph, tensions, patterns = (derived[k] for k in ("identity-graph", "tensions", "patterns"))
    for kind in ("identity-graph", "tensions", "patterns", "evolution"):
        assert decoded(derived[kind]["update"], list(derived[kind]["json"])) \
            == derived[kind]["json"], kind
    g = {root: by_name(graph["json"][root]) for root in ("nodes", "edges", "edits")}
    t = by_name(tensions["json"]["tensions"])
    recurring, loops = by_name(patterns["json"]["recurring"]), by_name(patterns["json"]["loops"])
    assert as_numbers(state.nodes) == g["nodes"]
    assert as_numbers(state.edges) == g["edges"]
    assert as_numbers(state.tensions) == t
    assert as_numbers(state.recurring) == recurring
    assert as_numbers(state.loops) == loops
    assert graph["json"]["meta"] == {"latest": state.latest}
    view = graph_view(g["nodes"].items(), g["edges"].items(), g["edits"].items())
    assert {n.id: {"label": n.label, "weight": n.weight} for n in view.nodes.values()} \
        == graph["view"]["nodes"]
    tension = summarize_tension(t["rest vs duty"], tensions["json"]["meta"]["latest"])
    assert {"key": tension.key, "status": tension.status, "episodes": tension.episodes,
            "intensity": tension.intensity} == tensions["summary"]
    summary = summarize_patterns(recurring.items(), lived_loops(loops.items(), minimum=2),
                                 minimum=2)
    assert [{"kind": p.kind, "key": p.key, "label": p.label, "count": p.count}
            for p in summary] == patterns["summary"]
