"""Commons end to end: post, read, comment from two node homes through a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.commons_helpers import mirror, running_commons


async def test_post_read_comment_between_two_people(
    tmp_path: Path, database: str | None
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    async with running_commons(tmp_path / "server", database=database) as server:
        for home in (alice, bob):
            status, out = await mirror(home, "commons", "add", server.url)
            assert status == 0, out
        status, out = await mirror(alice, "commons", "post", "--title", "Evenings",
                                   "--body", "What helps you wind down?", "--yes")
        assert status == 0, out
        assert "published" in out
        status, out = await mirror(bob, "commons", "read", "--json")
        assert status == 0, out
        items = json.loads(out)
        assert [i["title"] for i in items] == ["Evenings"]
        thread = items[0]["doc_id"].rsplit("/", 1)[-1]
        status, out = await mirror(bob, "commons", "comment", thread, "--body", "A walk.",
                                   "--yes")
        assert status == 0, out
        status, out = await mirror(alice, "commons", "read", thread)
        assert status == 0, out
        assert "A walk." in out and "1 comments" in out
        assert server.hub.stats.accepted_updates == 2


async def test_publish_pattern_shows_only_the_summary_and_asks_first(
    tmp_path: Path, database: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    secret = "SECRET-sentence-about-my-manager"
    for n in range(3):
        status, _ = await mirror(alice, "reflect", f"Work again {n}: {secret} and my work "
                                 "deadline made me anxious about work.")
        assert status == 0
    status, out = await mirror(alice, "patterns", "--json", "--min", "1")
    patterns = json.loads(out)
    assert patterns, out
    key = patterns[0]["key"]
    async with running_commons(tmp_path / "server", database=database) as server:
        for home in (alice, bob):
            assert (await mirror(home, "commons", "add", server.url))[0] == 0
        # Without --yes the person is asked; "n" publishes nothing.
        monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
        status, out = await mirror(alice, "publish", "pattern", key)
        assert status != 0 and "not published" in out and not server.hub.docs
        assert "Publish it? [y/N]" in out
        status, out = await mirror(alice, "publish", "pattern", key, "--yes")
        assert status == 0, out
        assert "Exactly this will leave this device" in out
        assert secret not in out
        status, out = await mirror(bob, "commons", "read", "--json")
        (item,) = json.loads(out)
        assert item["kind"] == "insight" and item["title"].startswith("Pattern: ")
        assert secret not in json.dumps(item)
        status, out = await mirror(alice, "published")
        assert "pattern" in out and server.url in out and "sent" in out


async def test_repl_commons_reads_the_cache(
    tmp_path: Path, database: str | None
) -> None:
    from node.app import Mirror
    from node.core import open_core
    from node.home import Home
    from node.repl.commands import run_view
    from node.repl.prompt import COMMANDS

    assert "commons" in COMMANDS
    alice = tmp_path / "alice"
    async with running_commons(tmp_path / "server", database=database) as server:
        assert (await mirror(alice, "commons", "add", server.url))[0] == 0
        status, out = await mirror(alice, "commons", "post", "--title", "From the REPL",
                                   "--body", "b", "--yes")
        assert status == 0, out
        async with open_core(Home.resolve(alice)) as core:
            text = await run_view(Mirror(core), "commons", "")
    assert "From the REPL" in text
