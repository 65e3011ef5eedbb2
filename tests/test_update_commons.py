"""A release published as a Commons post: its thread URL is an update source."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commons_helpers import mirror, running_commons
from tests.test_update_cli import make_fork


async def test_check_reads_a_manifest_published_on_a_commons_server(tmp_path: Path) -> None:
    fork = make_fork(tmp_path / "upstream", "upstream")
    signed = fork.release("9.1.0")
    maintainer, person = tmp_path / "maintainer", tmp_path / "person"
    async with running_commons(tmp_path / "server") as server:
        status, out = await mirror(maintainer, "commons", "add", server.url)
        assert status == 0, out
        status, out = await mirror(maintainer, "commons", "post", "--title", "Mirror 9.1.0",
                                   "--body", signed.read_text(), "--yes")
        assert status == 0, out
        status, out = await mirror(maintainer, "commons", "read", "--json")
        doc_id = json.loads(out)[0]["doc_id"]  # commons/post/<author>/<id>
        _, kind, author, item = doc_id.split("/")
        source = f"{server.url}/api/v1/threads/{kind}/{author}/{item}"
        status, out = await mirror(person, "update", "keys", "add", fork.public,
                                   "--label", "upstream")
        assert status == 0, out
        status, out = await mirror(person, "update", "check", source)
        assert status == 0, out
        assert "9.1.0" in out
        # a post that is not a signed manifest is refused like any other bad manifest
        status, out = await mirror(maintainer, "commons", "post", "--title", "Not a release",
                                   "--body", "just words", "--yes")
        status, out = await mirror(maintainer, "commons", "read", "--json")
        other = next(t for t in json.loads(out) if t["title"] == "Not a release")["doc_id"]
        _, kind, author, item = other.split("/")
        status, out = await mirror(person, "update", "check",
                                   f"{server.url}/api/v1/threads/{kind}/{author}/{item}")
        assert status != 0 and out.startswith("mirror: ")
