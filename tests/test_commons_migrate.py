"""``mirror-commons migrate``: a Commons on SQLite moved into PostgreSQL, verified, and
served from there as it was (issue 19, part 2). Skipped with the reason where no
PostgreSQL can be started."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from commons_server.blind.limits import StoreLimits
from commons_server.blind.storage import BlindStorage
from commons_server.hub import Gone
from commons_server.server import open_hub
from crdt.commons import AuthorKey
from tests.commons_processes import commons_command
from tests.helpers import REPO, mirror_env
from tests.test_commons_instances import action, post

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def migrate(home: Path, dsn: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [*commons_command(), "migrate", "--home", str(home), "--database", dsn],
        capture_stdout=True, capture_stderr=True, check=False, cwd=REPO,
        env=mirror_env(home))


async def test_a_sqlite_commons_moves_into_postgresql_verified_and_served_as_it_was(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    home = tmp_path / "server"
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    options = {"operator_key": operator.public, "wall_clock": lambda: NOW}
    async with open_hub(home, **options) as hub:  # SQLite, as it ran until now
        kept, kept_bundle = post(alice, hub, "kept")
        await hub.accept(kept, kept_bundle, "192.0.2.1")
        comment, comment_bundle = post(alice, hub, "a comment", "comment", thread=kept)
        await hub.accept(comment, comment_bundle, "192.0.2.1")
        hidden, hidden_bundle = post(alice, hub, "hidden")
        await hub.accept(hidden, hidden_bundle, "192.0.2.1")
        await hub.moderate(*action(operator, "hide", hidden))
        gone, gone_bundle = post(alice, hub, "withdrawn")
        await hub.accept(gone, gone_bundle, "192.0.2.1")
        assert await hub.withdraw(gone, alice.withdrawal(gone))
        before = (await hub.thread(kept), await hub.moderation_log())
    storage = BlindStorage.open(home, StoreLimits())
    group = os.urandom(32)
    await storage.append(group, [b"envelope one", b"envelope two"], storage.owner_of("192.0.2.7"))
    await storage.put_snapshot(group, 1, [b"snapshot"], storage.owner_of("192.0.2.7"))
    blind_before = (await storage.pull(group, 0), await storage.figures())
    storage.close()

    done = await migrate(home, postgres_dsn)
    assert done.returncode == 0, done.stderr
    assert b"verified" in done.stdout and b"4 document(s)" in done.stdout  # + moderation

    async with open_hub(home, database=postgres_dsn, **options) as hub:
        assert (await hub.thread(kept), await hub.moderation_log()) == before
        assert await hub.thread(hidden) is None and hub.docs[hidden].hidden
        with pytest.raises(Gone):
            await hub.accept(gone, gone_bundle, "192.0.2.1")
    storage = BlindStorage.open(home, StoreLimits(), database=postgres_dsn)
    source = BlindStorage.open(home, StoreLimits())
    try:
        assert (await storage.pull(group, 0), await storage.figures()) == blind_before
        # the same salt: addresses keep their quotas
        assert storage.owner_of("192.0.2.7") == source.owner_of("192.0.2.7")
    finally:
        storage.close()
        source.close()

    again = await migrate(home, postgres_dsn)  # never two Commons in one database
    assert again.returncode == 1
    assert b"refusing to mix" in again.stderr and b"Traceback" not in again.stderr


async def test_an_unreachable_or_wrong_database_is_one_line_and_a_non_zero_exit(
    tmp_path: Path,
) -> None:
    home = tmp_path / "server"
    for database, expected in (("postgresql://mirror@127.0.0.1:1/nowhere", b"cannot connect"),
                               ("/srv/commons.db", b"postgresql://")):
        done = await trio.run_process(
            [*commons_command(), "--home", str(home), "--port", "0", "--database", database],
            capture_stdout=True, capture_stderr=True, check=False, cwd=REPO,
            env=mirror_env(home))
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr and b"Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
