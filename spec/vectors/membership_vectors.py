"""Vectors of spec/membership.md (``membership.json``).

Device ids, the Ed25519 -> X25519 conversions, a new epoch's secret sealed to a
device (with a pinned ephemeral key, so the sealed box is reproducible), a
membership document after a removal (as JSON and as a Yjs update), and both
forms of ``keyring.json``. The conversions and the sealed box are computed here
from the spec's formulas (hashlib, X25519 and crypto_box of libsodium) and
checked against the reference (``node.identity``, ``crdt.devices``) before
anything is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.signing
from document_vectors import sorted_json
from pycrdt import Doc, Map

from crdt.devices import (
    MEMBERS,
    DeviceRecord,
    EpochRecord,
    mark_removed,
    put_device,
    put_epoch,
    read_devices,
    read_epochs,
    read_removed,
)
from node.identity import Keyring, device_id_for

P = 2**255 - 19
CLIENT_ID = 0x6D6972  # pinned Yjs client id: the update bytes are reproducible


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def device_id(public_key: bytes) -> str:
    return hashlib.blake2b(public_key, digest_size=8, person=b"mirror/device-id").hexdigest()


def x25519_public(ed25519_public: bytes) -> bytes:
    """u = (1 + y) / (1 - y) mod p, y being the Edwards y of the key."""
    y = int.from_bytes(ed25519_public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, P - 2, P) % P
    return u.to_bytes(32, "little")


def x25519_private(seed: bytes) -> bytes:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def seal(secret: bytes, ed25519_public: bytes, ephemeral_private: bytes) -> bytes:
    """libsodium's crypto_box_seal, with the ephemeral key given instead of drawn."""
    pk = x25519_public(ed25519_public)
    epk = sodium.crypto_scalarmult_base(ephemeral_private)
    nonce = hashlib.blake2b(epk + pk, digest_size=24).digest()
    return epk + sodium.crypto_box(secret, nonce, pk, ephemeral_private)


def membership_vectors() -> dict[str, Any]:
    names = ("laptop", "phone", "tablet")
    seeds = {name: bytes([0xA1 + 0x11 * i]) * 32 for i, name in enumerate(names)}
    keys = {n: bytes(nacl.signing.SigningKey(s).verify_key) for n, s in seeds.items()}
    ids = {n: device_id(k) for n, k in keys.items()}
    devices = []
    for name in names:
        seed, public = seeds[name], keys[name]
        assert device_id_for(public) == ids[name]
        assert x25519_public(public) == sodium.crypto_sign_ed25519_pk_to_curve25519(public)
        assert x25519_private(seed) == sodium.crypto_sign_ed25519_sk_to_curve25519(seed + public)
        devices.append({
            "name": name, "seed": seed.hex(), "public_key": public.hex(), "device_id": ids[name],
            "x25519_public": x25519_public(public).hex(),
            "x25519_private": x25519_private(seed).hex(),
        })

    # laptop removes tablet: epoch 8's secret is sealed to laptop and phone.
    secret = bytes(range(64, 96))
    ephemerals = {"laptop": bytes([0x5E]) * 32, "phone": bytes([0x6F]) * 32}
    sealed = {}
    for name, esk in ephemerals.items():
        box = seal(secret, keys[name], esk)
        pk_x, sk_x = x25519_public(keys[name]), x25519_private(seeds[name])
        assert sodium.crypto_box_seal_open(box, pk_x, sk_x) == secret
        ring = Keyring(path=Path("unused"), device_seed=seeds[name], device_name=name)
        assert ring.open_sealed(base64.b64encode(box).decode()) == secret
        sealed[name] = {
            "recipient": name, "ephemeral_private": esk.hex(),
            "ephemeral_public": box[:32].hex(),
            "nonce": hashlib.blake2b(box[:32] + pk_x, digest_size=24).digest().hex(),
            "sealed": box.hex(), "stored": base64.b64encode(box).decode("ascii"),
        }

    doc: Doc[Any] = Doc(client_id=CLIENT_ID)
    added = {"laptop": "2024-05-01T10:00:00.000Z", "phone": "2024-05-02T11:30:00.000Z",
             "tablet": "2024-05-03T12:45:00.000Z"}
    for name in names:
        put_device(doc, DeviceRecord(ids[name], keys[name], name, _at(added[name])))
    # A record filed under an id that is not its key's: ignored by every reader.
    with doc.transaction():
        doc.get(MEMBERS, type=Map)["0000000000000000"] = Map({
            "public_key": keys["tablet"].hex(), "name": "tablet again",
            "added_at": "2024-05-04T00:00:00.000Z", "removed_at": None})
    with doc.transaction():
        mark_removed(doc, ids["tablet"], _at("2024-06-01T09:00:00.000Z"))
        put_epoch(doc, EpochRecord(8, _at("2024-06-01T09:00:00.000Z"), ids["laptop"],
                                   {ids[n]: sealed[n]["stored"] for n in ("laptop", "phone")}))
    records = read_devices(doc)
    removed = read_removed(doc)
    assert [r.device_id for r in records] == [ids[n] for n in names]
    known = [r.public_key.hex() for r in records if r.device_id not in removed]
    assert known == [keys["laptop"].hex(), keys["phone"].hex()]
    (epoch_record,) = read_epochs(doc)
    document = {
        "client_id": CLIENT_ID,
        "json": sorted_json({root: doc.get(root, type=Map).to_py()
                         for root in ("members", "removed", "epochs")}),
        "update": doc.get_update().hex(),
        "records_in_order": [ids[n] for n in names],
        "ignored_records": ["0000000000000000"],
        "removed": [ids["tablet"]],
        "known_devices": known,
        "epoch_8_sealed_to": sorted(epoch_record.sealed),
    }

    plain = {"version": 1, "device_seed": seeds["phone"].hex(), "device_name": "phone",
             "epochs": {"7": bytes(range(32)).hex(), "8": secret.hex()}}
    with tempfile.TemporaryDirectory() as tmp:
        ring = Keyring(path=Path(tmp) / "keyring.json", device_seed=seeds["phone"],
                       device_name="phone", epochs={8: secret, 7: bytes(range(32))})
        ring.save()
        assert json.loads(ring.path.read_text(encoding="utf-8")) == plain
    master = bytes([0x4D]) * 32
    sealing_key = hashlib.blake2b(b"keyring", key=master, digest_size=32,
                                  person=b"mirror/purpose").digest()
    nonce = bytes([0x24]) * 24
    ciphertext = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        json.dumps(plain).encode("utf-8"), b"mirror/keyring/v1", nonce, sealing_key)
    sealed_file = {"version": 1, "sealed": base64.b64encode(nonce + ciphertext).decode("ascii")}
    return {
        "description": "Membership (spec/membership.md): device ids and X25519 forms of "
        "three device keys; epoch 8's secret sealed to two of them with pinned ephemeral "
        "keys; the membership document after 'laptop' removed 'tablet' (with a record "
        "filed under a wrong id, which readers ignore), as JSON and as a Yjs v1 update; "
        "'phone''s keyring.json plain and sealed under a pinned master key and nonce.",
        "devices": devices,
        "epoch_secret": {"epoch": 8, "secret": secret.hex(), "sealed": list(sealed.values())},
        "membership_document": document,
        "keyring": {"plain": plain, "master_key": master.hex(),
                    "sealing_key": sealing_key.hex(), "nonce": nonce.hex(),
                    "sealed": sealed_file},
    }
