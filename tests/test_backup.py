"""Encrypted backup and restore: round trip, wrong passphrase, tampering and truncation
change nothing; existing homes are not overwritten without --force."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from crdt import crypto_at_rest as car
from node.backup import BackupError, restore_backup, write_backup
from node.cli.main import main
from node.home import Home

PASS = "a long and careful passphrase"


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(car.ENV_KDF_PROFILE, "min")
    monkeypatch.setenv("MIRROR_PASSPHRASE", PASS)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def texts(capsys: pytest.CaptureFixture[str], home: Path) -> list[str]:
    status, out, err = cli(capsys, "--home", str(home), "list", "--json")
    assert status == 0, err
    return sorted(r["text"] for r in json.loads(out))


@pytest.fixture
def source_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    home = tmp_path / "src"
    for i in range(3):
        assert cli(capsys, "--home", str(home), "reflect", f"entry {i}")[0] == 0
    (home / "prompts").mkdir()
    (home / "prompts" / "mirrorback.txt").write_text("my own prompt")
    return home


def test_backup_and_restore_round_trip(
    source_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup, target = tmp_path / "b.mbk", tmp_path / "dst"
    status, out, err = cli(capsys, "--home", str(source_home), "backup", "--progress", str(backup))
    assert status == 0 and "backed up" in out
    assert "backup: 100%" in err
    assert backup.stat().st_mode & 0o077 == 0
    assert b"entry 0" not in backup.read_bytes()
    status, out, err = cli(capsys, "--home", str(target), "restore", "--progress", str(backup))
    assert status == 0, err
    assert "restore: 100%" in err
    assert texts(capsys, target) == texts(capsys, source_home)
    assert (target / "prompts" / "mirrorback.txt").read_text() == "my own prompt"
    assert not list(target.glob(".restore-*"))


def test_restored_home_leases_a_fresh_client_id(source_home: Path, tmp_path: Path) -> None:
    write_backup(Home(source_home), tmp_path / "b.mbk", PASS)
    restore_backup(tmp_path / "b.mbk", Home(tmp_path / "dst"), PASS)
    conn = sqlite3.connect(tmp_path / "dst" / "mirror.db")
    try:
        states = {s for (s,) in conn.execute("SELECT state FROM client_ids")}
    finally:
        conn.close()
    assert states == {"retired"}


def test_restore_refuses_a_home_with_a_store_unless_forced(
    source_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup, other = tmp_path / "b.mbk", tmp_path / "other"
    cli(capsys, "--home", str(source_home), "backup", str(backup))
    cli(capsys, "--home", str(other), "reflect", "--no-mirrorback", "keep me safe")
    status, _, err = cli(capsys, "--home", str(other), "restore", str(backup))
    assert status == 1 and "--force" in err and err.count("\n") == 1
    assert texts(capsys, other) == ["keep me safe"]
    status, _, err = cli(capsys, "--home", str(other), "restore", "--force", str(backup))
    assert status == 0, err
    assert texts(capsys, other) == texts(capsys, source_home)
    [aside] = other.glob("replaced-*")
    assert (aside / "mirror.db").exists()


def test_passphrase_file_and_wrong_passphrase(
    source_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MIRROR_PASSPHRASE")
    secret = tmp_path / "pass.txt"
    secret.write_text("from a file\n")
    backup, target = tmp_path / "b.mbk", tmp_path / "dst"
    status, _, err = cli(capsys, "--home", str(source_home), "backup", str(backup))
    assert status == 2 and "MIRROR_PASSPHRASE" in err
    status, _, err = cli(capsys, "--home", str(source_home), "backup", "--passphrase-file",
                         str(secret), str(backup))
    assert status == 0, err
    monkeypatch.setenv("MIRROR_PASSPHRASE", "not it")
    status, _, err = cli(capsys, "--home", str(target), "restore", str(backup))
    assert status == 1 and err == "mirror: wrong passphrase for this backup\n"
    assert not target.exists(), "a failed restore leaves nothing, not even logs/"
    status, _, err = cli(capsys, "--home", str(target), "--passphrase-file", str(secret),
                         "restore", str(backup))
    assert status == 0, err


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each length-prefixed frame of a backup file."""
    (hlen,) = struct.unpack(">I", data[8:12])
    pos = 12 + hlen + 24
    frames = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        frames.append((pos, 4 + length))
        pos += 4 + length
    return frames


def test_tampered_truncated_or_reordered_backups_change_nothing(
    source_home: Path, tmp_path: Path
) -> None:
    good = tmp_path / "b.mbk"
    write_backup(Home(source_home), good, PASS, chunk_bytes=4096)
    data = good.read_bytes()
    frames = _frames(data)
    assert len(frames) > 3  # chunked
    (hlen,) = struct.unpack(">I", data[8:12])
    mutants: dict[str, bytes] = {}
    for pos in (0, 9, 14, 12 + hlen + 3, frames[1][0] + 10, len(data) - 1):
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        mutants[f"flip {pos}"] = bytes(flipped)
    for cut in (5, 12 + hlen, frames[1][0], frames[-1][0], len(data) - 1):
        mutants[f"cut {cut}"] = data[:cut]
    (a, la), (b, lb) = frames[1], frames[2]
    mutants["swap"] = data[:a] + data[b : b + lb] + data[a : a + la] + data[b + lb :]
    mutants["drop"] = data[:a] + data[a + la :]
    mutants["trailing"] = data + b"\x00"
    mutants["header edited"] = data.replace(b'"chunk_bytes": 4096', b'"chunk_bytes": 4097')
    assert mutants["header edited"] != data
    for name, mutant in mutants.items():
        path = tmp_path / "bad.mbk"
        path.write_bytes(mutant)
        home = Home(tmp_path / f"dst-{len(name)}")
        with pytest.raises(BackupError) as info:
            restore_backup(path, home, PASS)
        assert "\n" not in str(info.value), name
        assert not home.db_path.exists(), name
        assert not list(home.path.glob(".restore-*")), name


def test_restore_refuses_unexpected_file_names(tmp_path: Path) -> None:
    """A backup made with the right key but listing ../ names is refused (T5)."""
    from node import backup as bk

    params = car.new_kdf_params("min")
    key, check = bk._backup_key(PASS, params)
    header = json.dumps({"format": bk.FORMAT, "version": 1, "kdf": params.to_json(),
                         "chunk_bytes": 1024, "check": check, "created_at": "x"}).encode()
    prefix = bk.MAGIC + struct.pack(">I", len(header)) + header
    path = tmp_path / "evil.mbk"
    with path.open("wb") as out:
        out.write(prefix)
        pusher = bk._Pusher(out, key, prefix, 1024)
        name = b"../escape.txt"
        pusher.write(b"F" + struct.pack(">H", len(name)) + name + struct.pack(">Q", 2) + b"hi")
        pusher.write(b"E")
        pusher.close()
    with pytest.raises(BackupError, match="unexpected file"):
        restore_backup(path, Home(tmp_path / "dst"), PASS)
    assert not (tmp_path / "escape.txt").exists()
