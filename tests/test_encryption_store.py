"""Encryption at rest in the store: only ciphertext on disk, wrong keys change nothing,
and a v1 store from before sealed blobs still loads (T9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crdt import CorruptStoreError, open_store, schema
from crdt import crypto_at_rest as car
from crdt.journal import Journal
from crdt.values import format_timestamp, utc_now
from tests.helpers import file_fingerprint

CANARY = "zebra-canary-7f3e"


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(car.ENV_KDF_PROFILE, "min")


def make_encrypted(path: Path, passphrase: str) -> car.BlobCipher:
    header, cipher = car.new_encryption(passphrase)
    schema.create_store_file(
        path, created_at=format_timestamp(utc_now()), meta={car.META_KEY: header.to_text()}
    )
    return cipher


def home_bytes(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_sealed_store_holds_only_ciphertext(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    cipher = make_encrypted(db, "correct horse")
    async with open_store(db, cipher=cipher) as store:
        journal = Journal(store)
        for i in range(5):
            await journal.add(f"{CANARY} entry {i}")
        for blob in home_bytes(tmp_path).values():  # WAL not yet checkpointed
            assert CANARY.encode() not in blob
        await store.compact()
    for blob in home_bytes(tmp_path).values():
        assert CANARY.encode() not in blob
    async with open_store(db, passphrase="correct horse") as store:
        texts = sorted(r.text for r in await Journal(store).all())
        assert texts == [f"{CANARY} entry {i}" for i in range(5)]
        assert store.cipher is not None


async def test_wrong_or_missing_passphrase_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    cipher = make_encrypted(db, "right")
    async with open_store(db, cipher=cipher) as store:
        await Journal(store).add("something")
    before = file_fingerprint(db)
    with pytest.raises(car.WrongPassphraseError, match="wrong passphrase"):
        async with open_store(db, passphrase="wrong"):
            pass
    with pytest.raises(car.PassphraseRequiredError, match="encrypted"):
        async with open_store(db):
            pass
    assert file_fingerprint(db) == before
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM client_ids").fetchone()[0] == 1
    finally:
        conn.close()


async def test_blob_moved_to_another_document_fails_authentication(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    cipher = make_encrypted(db, "pw")
    async with open_store(db, cipher=cipher) as store:
        journal = Journal(store)
        await journal.add("january", created_at=utc_now().replace(month=1, day=5))
        await journal.add("february", created_at=utc_now().replace(month=2, day=5))
    conn = sqlite3.connect(db)
    try:
        # Give february's update to january's document: the doc id is associated data.
        conn.execute(
            "UPDATE updates SET doc_id=(SELECT doc_id FROM documents WHERE doc_id LIKE "
            "'journal/%-01') WHERE doc_id LIKE 'journal/%-02'"
        )
        conn.commit()
    finally:
        conn.close()
    async with open_store(db, cipher=cipher) as store:
        with pytest.raises(CorruptStoreError, match="fails authentication"):
            await Journal(store).all()


async def test_a_plain_store_refuses_a_cipher_and_ignores_a_passphrase(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with open_store(db, passphrase="unused") as store:
        await Journal(store).add("plain")
        assert store.cipher is None
    _, cipher = car.new_encryption("x")
    with pytest.raises(car.EncryptionError, match="not encrypted"):
        async with open_store(db, cipher=cipher):
            pass


async def test_encrypt_store_file_converts_in_place_after_verifying(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    async with open_store(db, compact_after_updates=0) as store:
        journal = Journal(store)
        for i in range(4):
            await journal.add(f"{CANARY} {i}")
        await store.compact()
        await journal.add(f"{CANARY} after compaction")
    assert any(CANARY.encode() in b for b in home_bytes(tmp_path).values())
    header, cipher = car.new_encryption("pw")
    assert car.encrypt_store_file(db, cipher, header) >= 2
    for name, blob in home_bytes(tmp_path).items():
        assert CANARY.encode() not in blob, name
    async with open_store(db, passphrase="pw") as store:
        texts = sorted(r.text for r in await Journal(store).all())
        assert texts == sorted([f"{CANARY} {i}" for i in range(4)] + [f"{CANARY} after compaction"])
        await Journal(store).add("one more")  # seq continues; the log still works
    with pytest.raises(car.EncryptionError, match="already encrypted"):
        car.encrypt_store_file(db, cipher, header)


def make_v1_store(path: Path) -> None:
    """A store exactly as Mirror's schema version 1 wrote it (T9)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for statement in schema._split_sql(schema.SCHEMA_V1):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO meta(key, value) VALUES "
            "('created_at', '2026-01-01T00:00:00.000Z'), ('schema', '1')"
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_version_1_store_still_loads_and_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    make_v1_store(db)
    assert schema.inspect_store_file(db) == 1
    async with open_store(db) as store:
        await Journal(store).add("written by a v1-era store")
    async with open_store(db) as store:
        assert [r.text for r in await Journal(store).all()] == ["written by a v1-era store"]
        assert store.cipher is None
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("SELECT value FROM meta WHERE key='encryption'").fetchone()[0] == "none"
    finally:
        conn.close()


async def test_envelopes_are_sealed_and_survive_conversion(tmp_path: Path) -> None:
    """Signed envelopes (crdt/store.py apply_enveloped) are blobs like any other."""
    from pycrdt import Doc, Map

    doc: Doc[object] = Doc()
    doc.get("item", type=Map)["title"] = CANARY
    update = doc.get_update()
    envelope = b"\x01" + CANARY.encode() + update
    # Sealed from the start.
    db = tmp_path / "sealed.db"
    cipher = make_encrypted(db, "pw")
    async with open_store(db, cipher=cipher) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        store.apply_enveloped(stored, [update], [envelope], origin="test")
        await store.wait_durable()
        assert await store.envelopes("commons/x") == [envelope]
    assert CANARY.encode() not in b"".join(home_bytes(tmp_path).values())
    # Plain, then converted: the envelope is carried over, sealed and verified.
    plain = tmp_path / "plain.db"
    async with open_store(plain) as store:
        stored = await store.open_doc("commons/x", kind="commons")
        store.apply_enveloped(stored, [update], [envelope], origin="test")
    header, cipher = car.new_encryption("pw")
    car.encrypt_store_file(plain, cipher, header)
    assert CANARY.encode() not in plain.read_bytes()
    async with open_store(plain, cipher=cipher) as store:
        assert await store.envelopes("commons/x") == [envelope]
