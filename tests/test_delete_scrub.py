"""`mirror delete` and `mirror edit` never claim a scrub that did not finish (issue 14).

A reader that keeps a snapshot of the store open (another process in the middle
of a read) keeps the file from being rewritten; the command then says, in one
line and with a non-zero exit, that the words are still in the file and what to
do. `mirror scrub` finishes the job once the reader has gone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import crdt.storage_calls
from node.cli.main import main

GONE = "Zorvathine"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def home_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


@contextmanager
def reader_holding_a_snapshot(db: Path) -> Iterator[None]:
    """Another connection in the middle of a read transaction (as a process mid-query)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM updates").fetchone()
        yield
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def short_scrub_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crdt.storage_calls, "SCRUB_BUSY_TIMEOUT_MS", 50)


def test_delete_says_so_when_the_scrub_did_not_finish(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "reflect", "--no-mirrorback", "Nothing special today.")
    _, out, _ = cli(capsys, "reflect", "--json", f"The secret word is {GONE.lower()} again.")
    rid = json.loads(out)["id"]
    with reader_holding_a_snapshot(home_dir / "mirror.db"):
        status, out, err = cli(capsys, "delete", rid, "--yes")
        assert status != 0
        assert out == ""  # no "deleted …" on success's channel
        (line,) = err.strip().splitlines()
        assert f"deleted {rid}, but its words are still in mirror.db" in line
        assert "mirror scrub" in line and "close the other Mirror programs" in line
    status, out, _ = cli(capsys, "list", "--json")
    assert [r["text"] for r in json.loads(out)] == ["Nothing special today."]  # it is deleted
    status, out, err = cli(capsys, "scrub")
    assert status == 0 and err == ""
    assert out.startswith("scrubbed")
    assert GONE.lower().encode() not in home_bytes(home_dir)


def test_edit_says_so_when_the_scrub_did_not_finish(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "reflect", "--json", f"I told {GONE.lower()} everything.")
    rid = json.loads(out)["id"]
    with reader_holding_a_snapshot(home_dir / "mirror.db"):
        status, out, err = cli(capsys, "edit", rid, "--no-mirrorback", "--text", "I told nobody.")
        assert status != 0
        assert f"edited {rid}" not in out
        (line,) = err.strip().splitlines()
        assert f"edited {rid}, but the old words are still in mirror.db" in line
    status, out, _ = cli(capsys, "show", rid, "--json")
    assert json.loads(out)["text"] == "I told nobody."
    assert cli(capsys, "scrub")[0] == 0
    assert GONE.lower().encode() not in home_bytes(home_dir)


def test_delete_and_scrub_succeed_quietly_when_nothing_is_in_the_way(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "reflect", "--json", f"A note on {GONE.lower()}.")
    rid = json.loads(out)["id"]
    status, out, err = cli(capsys, "delete", rid, "--yes")
    assert (status, out.strip(), err) == (0, f"deleted {rid}", "")
    assert GONE.lower().encode() not in home_bytes(home_dir)
    assert cli(capsys, "scrub")[0] == 0
