"""An encrypted home: nothing readable on disk (canary scan of every file), the
passphrase is asked before the core opens, and wrong ones change nothing."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crdt import crypto_at_rest as car
from node.cli import passphrase as cli_data
from node.cli.main import main
from node.core import open_core
from node.home import Home
from node.identity import load_keyring
from tests.helpers import file_fingerprint, run_mirror

CANARY = "okapi-canary-91c2"
PASS = "the home passphrase"


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(car.ENV_KDF_PROFILE, "min")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_no_plaintext(root: Path, *needles: bytes) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "mirror.db" for p in files)
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{needle!r} found in {path}"


async def test_init_passphrase_then_nothing_readable_on_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_mirror(home, "init", "--passphrase", MIRROR_KDF_PROFILE="min",
                      MIRROR_PASSPHRASE=PASS)
    assert done.returncode == 0, done.stderr
    done = run_mirror(home, "reflect", f"{CANARY} through the CLI", MIRROR_KDF_PROFILE="min",
                      MIRROR_PASSPHRASE=PASS)
    assert done.returncode == 0, done.stderr
    assert (await_home_header(home)) is not None
    seed_hex = ""
    async with open_core(Home(home), passphrase=PASS) as core:
        for i in range(3):
            r = await core.reflect(f"{CANARY} {i}: my father, my work, my rest",
                                   tags=[f"{CANARY}-tag"], private=i == 2,
                                   at=datetime(2026, 1 + i, 3, tzinfo=UTC))
            await core.mirror(r)
        core.settings.set("note", CANARY)
        ring = load_keyring(home)  # the sync runner's path: sealed while the home is open
        seed_hex = ring.device_seed.hex()
        await core.store.wait_durable()
        # before any checkpoint: the WAL holds the new pages
        assert_no_plaintext(home, CANARY.encode(), seed_hex.encode(), PASS.encode())
    assert_no_plaintext(home, CANARY.encode(), seed_hex.encode(), PASS.encode())
    assert "sealed" in json.loads((home / "keyring.json").read_text())
    # the CLI can read it all back with the passphrase, and nothing without it
    done = run_mirror(home, "list", "--json", MIRROR_KDF_PROFILE="min", MIRROR_PASSPHRASE=PASS)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert len(listed) == 4 and all(r["text"].startswith(CANARY) for r in listed)
    before = file_fingerprint(home / "mirror.db")
    done = run_mirror(home, "list", MIRROR_KDF_PROFILE="min")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "encrypted" in done.stderr and "Traceback" not in done.stderr
    done = run_mirror(home, "list", MIRROR_KDF_PROFILE="min", MIRROR_PASSPHRASE="nope")
    assert done.returncode == 1 and done.stderr == "mirror: wrong passphrase for this home\n"
    assert file_fingerprint(home / "mirror.db") == before


def await_home_header(home: Path) -> car.EncryptionHeader | None:
    return car.store_header(home / "mirror.db")


def test_encrypt_an_existing_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert cli(capsys, "--home", str(home), "reflect", f"{CANARY} plain at first")[0] == 0
    seed = load_keyring(home).device_seed.hex()
    assert any(CANARY.encode() in p.read_bytes() for p in home.rglob("*") if p.is_file())
    monkeypatch.setenv("MIRROR_PASSPHRASE", PASS)
    status, out, err = cli(capsys, "--home", str(home), "encrypt")
    assert status == 0, err
    assert_no_plaintext(home, CANARY.encode(), seed.encode())
    status, out, _ = cli(capsys, "--home", str(home), "list", "--json")
    assert status == 0 and CANARY in out
    status, _, err = cli(capsys, "--home", str(home), "encrypt")
    assert status == 1 and "already encrypted" in err
    assert load_keyring(home, sealing_key=_keyring_key(home)).device_seed.hex() == seed


def _keyring_key(home: Path) -> bytes:
    header = car.store_header(home / "mirror.db")
    assert header is not None
    return car.unlock(header, PASS).purpose_key("keyring")


def test_init_passphrase_refuses_a_plain_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert cli(capsys, "--home", str(home), "init")[0] == 0
    monkeypatch.setenv("MIRROR_PASSPHRASE", PASS)
    status, _, err = cli(capsys, "--home", str(home), "init", "--passphrase")
    assert status == 2 and "mirror encrypt" in err


async def test_the_passphrase_is_asked_at_start_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the REPL (or any command) does before the core opens on an encrypted home."""
    home = Home(tmp_path / "home")
    monkeypatch.setenv("MIRROR_PASSPHRASE", PASS)
    await cli_data.unlock_home(home, argparse.Namespace(init_passphrase=True))
    monkeypatch.delenv("MIRROR_PASSPHRASE")
    monkeypatch.setattr(cli_data, "_can_prompt", lambda: True)
    answers = iter(["wrong", PASS])
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(cli_data, "_ask", ask)
    cipher = await cli_data.unlock_home(home, argparse.Namespace())
    assert cipher is not None and asked == ["Passphrase: ", "Passphrase: "]
    async with open_core(home, cipher=cipher) as core:
        assert core.store.cipher is cipher
    monkeypatch.setattr(cli_data, "_ask", lambda prompt: "wrong")
    with pytest.raises(car.WrongPassphraseError):
        await cli_data.unlock_home(home, argparse.Namespace())
