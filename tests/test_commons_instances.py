"""Two Commons instances over one database, in one trio run (issue 19, part 2).

Each instance is a whole hub (``open_hub(..., database=dsn)``) with its own
store connection, following the other through a real PostgreSQL's
LISTEN/NOTIFY and sharing its update limits there: a post accepted by one is
read through the other and pushed to the other's live sessions; a withdrawal,
a hide or a block through one holds on the other; the moderation log keeps
the entries both wrote at once; the update limit per author holds across them.
The documents are in the home's store, which both open. Skipped with the reason
where no PostgreSQL can be started.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from pycrdt import Doc

from commons_server import limits as L
from commons_server.hub import Blocked, Gone, Hub, RateLimited, Unavailable
from commons_server.limits import CommonsLimits
from commons_server.server import open_hub
from crdt import StoreError
from crdt.commons import (
    MODERATION_CONTEXT,
    AuthorKey,
    decode_bundle,
    encode_bundle,
    make_doc_id,
    moderation_digest,
    write_item,
)
from tests.postgres_helper import PostgresServer
from tests.sync_helpers import wait_for

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FOLLOW_DEADLINE_S = 20.0


class LiveSession:
    """What a hub pushes to one live session (a hub ``Listener``)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, bytes]] = []

    def deliver(self, doc_id: str, bundle: bytes) -> None:
        self.pushed.append((doc_id, bundle))


@asynccontextmanager
async def two_instances(home: Path, dsn: str, operator: AuthorKey,
                        **limits: Any) -> AsyncIterator[tuple[Hub, Hub]]:
    options: dict[str, Any] = {"operator_key": operator.public, "database": dsn,
                               "wall_clock": lambda: NOW}
    if limits:
        options["limits"] = CommonsLimits(**limits)
    async with open_hub(home, **options) as a, open_hub(home, **options) as b:
        yield a, b


def post(author: AuthorKey, hub: Hub, title: str, kind: str = "post",
         thread: str | None = None) -> tuple[str, bytes]:
    doc_id = make_doc_id(kind, author.public, os.urandom(8))
    doc: Doc[Any] = Doc()
    fields = {"title": title, "body": "body", "created_at": "2026-03-01T12:00:00Z"}
    if kind == "comment":
        fields = {"thread": thread or "", "body": title, "created_at": "2026-03-01T12:00:00Z"}
    write_item(doc, kind, fields)
    return doc_id, encode_bundle([author.envelope(doc_id, doc.get_update(), hub.server_key)])


def action(op: AuthorKey, name: str, target: str) -> tuple[str, str, str, str, bytes, bytes]:
    at = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"action": name, "target": target, "reason": "test", "at": at}
    signature = op.sign(MODERATION_CONTEXT, moderation_digest(fields))
    return name, target, "test", at, op.public, signature


async def until(condition: Any) -> None:
    with trio.fail_after(FOLLOW_DEADLINE_S):
        await wait_for(condition)


async def test_a_post_accepted_by_one_is_read_and_pushed_through_the_other(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator) as (a, b):
        assert a.server_key == b.server_key
        live_on_b = LiveSession()
        b.subscribe(live_on_b)
        doc_id, bundle = post(alice, a, "Hello from a")
        assert await a.accept(doc_id, bundle, "192.0.2.1") == 1
        await until(lambda: doc_id in b.docs)
        thread = await b.thread(doc_id)
        assert thread is not None and thread["title"] == "Hello from a"
        await until(lambda: bool(live_on_b.pushed))
        pushed_id, pushed = live_on_b.pushed[0]
        assert pushed_id == doc_id and decode_bundle(pushed) == decode_bundle(bundle)
        # and the other way: a comment through b reaches a's index
        comment_id, comment = post(alice, b, "a comment", "comment", thread=doc_id)
        assert await b.accept(comment_id, comment, "192.0.2.1") == 1
        await until(lambda: comment_id in a.docs)
        thread = await a.thread(doc_id)
        assert thread is not None and [c["body"] for c in thread["comments"]] == ["a comment"]


async def test_a_withdrawal_through_one_holds_on_the_other(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator) as (a, b):
        doc_id, bundle = post(alice, a, "to be withdrawn")
        await a.accept(doc_id, bundle, "192.0.2.1")
        comment_id, comment = post(alice, a, "goes with it", "comment", thread=doc_id)
        await a.accept(comment_id, comment, "192.0.2.1")
        await until(lambda: comment_id in b.docs)
        assert await b.withdraw(doc_id, alice.withdrawal(doc_id)) is True
        await until(lambda: doc_id not in a.docs and comment_id not in a.docs)
        assert await a.thread(doc_id) is None
        assert a.moderation_of([doc_id])["withdrawn"] == [doc_id]
        with pytest.raises(Gone):
            await a.accept(doc_id, bundle, "192.0.2.1")
        late_id, late = post(alice, a, "too late", "comment", thread=doc_id)
        with pytest.raises(Gone):
            await a.accept(late_id, late, "192.0.2.1")


async def test_moderation_through_one_holds_on_the_other(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    operator, alice, bob = (AuthorKey(os.urandom(32)) for _ in range(3))
    async with two_instances(tmp_path / "server", postgres_dsn, operator) as (a, b):
        doc_id, bundle = post(alice, a, "hidden soon")
        await a.accept(doc_id, bundle, "192.0.2.1")
        await until(lambda: doc_id in b.docs)
        await a.moderate(*action(operator, "hide", doc_id))
        await until(lambda: b.docs[doc_id].hidden)
        assert await b.thread(doc_id) is None
        assert b.moderation_of([doc_id])["hidden"] == [doc_id]
        # Both instances append to the public log at once: both entries are kept.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.moderate, *action(operator, "unhide", doc_id))
            nursery.start_soon(b.moderate, *action(operator, "block", bob.public_hex))
        await until(lambda: len(a.moderation.log(10)) == 3 and len(b.moderation.log(10)) == 3)
        assert {e["action"] for e in await a.moderation_log()} == {"hide", "unhide", "block"}
        await until(lambda: not a.docs[doc_id].hidden and not b.docs[doc_id].hidden)
        bob_post, bob_bundle = post(bob, a, "blocked")
        with pytest.raises(Blocked):
            await a.accept(bob_post, bob_bundle, "192.0.2.2")


async def test_the_update_limit_per_author_holds_across_instances(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator,
                             author_updates_per_minute=3) as (a, b):
        outcomes: list[str] = []
        for i in range(4):  # alternating: each instance alone would allow 3
            hub = (a, b)[i % 2]
            doc_id, bundle = post(alice, hub, f"post {i}")
            try:
                await hub.accept(doc_id, bundle, f"192.0.2.{i + 1}")
                outcomes.append("accepted")
            except RateLimited as exc:
                assert "per author" in str(exc)
                outcomes.append("limited")
        assert outcomes == ["accepted"] * 3 + ["limited"]


async def test_news_an_instance_never_announced_is_found_by_the_others_sweep(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An instance that dies between its COMMIT and its NOTIFY: the post is kept, and
    the others find it when they next look at the store themselves."""
    monkeypatch.setattr(L, "FOLLOW_SWEEP_S", 0.2)
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator) as (a, b):
        async def lost(doc_ids: Any, *, moderation: bool = False) -> None:
            """The announcement a crash never sent."""

        assert a.instances is not None
        monkeypatch.setattr(a.instances, "announce", lost)
        live_on_b = LiveSession()
        b.subscribe(live_on_b)
        doc_id, bundle = post(alice, a, "never announced")
        assert await a.accept(doc_id, bundle, "192.0.2.1") == 1
        await until(lambda: doc_id in b.docs)
        assert live_on_b.pushed[0][0] == doc_id  # and b's live sessions got it
        await a.moderate(*action(operator, "hide", doc_id))
        await until(lambda: b.docs[doc_id].hidden)
        assert b.moderation_of([doc_id])["hidden"] == [doc_id]


async def test_the_update_limit_per_address_holds_across_instances(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    operator = AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator,
                             address_updates_per_minute=2) as (a, b):
        outcomes = []
        for i in range(3):  # three authors, one address, through alternating instances
            hub = (a, b)[i % 2]
            doc_id, bundle = post(AuthorKey(os.urandom(32)), hub, f"post {i}")
            try:
                await hub.accept(doc_id, bundle, "198.51.100.7")
                outcomes.append("accepted")
            except RateLimited as exc:
                assert "per address" in str(exc)
                outcomes.append("limited")
        assert outcomes == ["accepted", "accepted", "limited"]
        # A refusal costs no tokens, and other addresses are not touched.
        doc_id, bundle = post(AuthorKey(os.urandom(32)), a, "elsewhere")
        assert await a.accept(doc_id, bundle, "198.51.100.8") == 1


async def test_instances_carry_on_after_postgresql_restarts(
    postgres_dsn: str, postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    """A crash of the database server: every connection of both instances dies. They
    connect again; the one listening re-reads the store (news sent meanwhile is lost)."""
    operator, alice = AuthorKey(os.urandom(32)), AuthorKey(os.urandom(32))
    async with two_instances(tmp_path / "server", postgres_dsn, operator) as (a, b):
        first, bundle = post(alice, a, "before the restart")
        await a.accept(first, bundle, "192.0.2.1")
        await until(lambda: first in b.docs)
        assert b.instances is not None
        listener = b.instances.listener  # type: ignore[attr-defined]
        await trio.to_thread.run_sync(postgres_server.restart)
        await until(lambda: listener.reconnects >= 1)
        second, bundle = post(alice, a, "after the restart")
        with trio.fail_after(FOLLOW_DEADLINE_S):
            while True:  # the first write after the crash may find its connection dead
                try:
                    assert await a.accept(second, bundle, "192.0.2.1") == 1
                    break
                except (StoreError, Unavailable):
                    await trio.sleep(0.1)
        await until(lambda: second in b.docs)
        thread = await b.thread(second)
        assert thread is not None and thread["title"] == "after the restart"
