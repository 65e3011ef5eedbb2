"""Commons end to end: post, read, comment from two node homes through a real server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commons_helpers import mirror, running_commons


async def test_post_read_comment_between_two_people(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    async with running_commons(tmp_path / "server") as server:
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
