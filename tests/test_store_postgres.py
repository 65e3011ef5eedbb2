"""The store on PostgreSQL: what only this engine has (issue 19, part 1).

The shared suite (test_store, test_crash, test_store_faults, test_store_external_reads,
test_store_envelopes) runs on both engines through ``store_target``. Here: refusal of
databases that are not a Mirror store of this or an older version, forward
migration, and the server failing under a writer — restarted mid-write (the store
reconnects, re-runs the interrupted batch, loses nothing acknowledged) or gone for
longer than the store waits (the write fails clearly, is never acknowledged, and the
store recovers once reopened).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
import trio

from crdt import (
    CorruptStoreError,
    NewerSchemaError,
    NotAStoreError,
    StoreClosedError,
    StoreOpenError,
    StoreUnavailableError,
    StoreWriteError,
    open_store,
)
from crdt.journal import Journal
from tests.postgres_helper import PostgresServer
from tests.store_targets import StoreTarget

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")

WHEN = datetime(2026, 6, 1, tzinfo=UTC)


def tables(server: PostgresServer, dsn: str) -> set[str]:
    rows = server.sql(dsn.rsplit("/", 1)[1],
                      "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r[0]) for r in rows}


# --------------------------------------------------------------------------- refusal


async def test_an_empty_database_becomes_a_store_marked_as_mirrors(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    async with open_store(postgres_dsn) as store:
        await Journal(store).add("hello")
    db = postgres_dsn.rsplit("/", 1)[1]
    from crdt.schema import APPLICATION_ID, SCHEMA_VERSION

    assert postgres_server.sql(db, "SELECT application, version FROM mirror_store") == [
        (APPLICATION_ID, SCHEMA_VERSION)
    ]
    assert postgres_server.sql(db, "SELECT kind, sync_class FROM documents") == [
        ("journal", "local")
    ]


async def test_a_database_of_another_application_is_refused_untouched(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    db = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql(db, "CREATE TABLE invoices (id int PRIMARY KEY)")
    with pytest.raises(NotAStoreError, match="another application"):
        async with open_store(postgres_dsn):
            pass
    assert tables(postgres_server, postgres_dsn) == {"invoices"}


async def test_a_foreign_mirror_store_table_is_refused(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    async with open_store(postgres_dsn):
        pass
    db = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql(db, "UPDATE mirror_store SET application = 7")
    with pytest.raises(NotAStoreError, match="not Mirror's"):
        async with open_store(postgres_dsn):
            pass


async def test_a_newer_schema_is_refused_and_left_alone(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    async with open_store(postgres_dsn) as store:
        await Journal(store).add("written by this version")
    db = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql(db, "UPDATE mirror_store SET version = 99")
    before = postgres_server.sql(db, "SELECT seq, data FROM updates ORDER BY seq")
    with pytest.raises(NewerSchemaError, match="schema 99"):
        async with open_store(postgres_dsn):
            pass
    assert postgres_server.sql(db, "SELECT seq, data FROM updates ORDER BY seq") == before
    assert postgres_server.sql(db, "SELECT version FROM mirror_store") == [(99,)]


async def test_a_store_missing_a_table_is_refused_as_damaged(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    async with open_store(postgres_dsn):
        pass
    postgres_server.sql(postgres_dsn.rsplit("/", 1)[1], "DROP TABLE envelopes")
    with pytest.raises(CorruptStoreError, match="missing tables: envelopes"):
        async with open_store(postgres_dsn):
            pass


async def test_no_store_is_made_when_creation_is_not_allowed(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    with pytest.raises(StoreOpenError, match="no Mirror store here"):
        async with open_store(postgres_dsn, create=False):
            pass
    assert tables(postgres_server, postgres_dsn) == set()


async def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://mirror:s3cret-pw@127.0.0.1:{port}/nowhere"
    with pytest.raises(StoreUnavailableError) as caught:
        async with open_store(dsn):
            pass
    message = str(caught.value)
    assert message.startswith(f"postgresql://mirror@127.0.0.1:{port}/nowhere: cannot connect")
    assert "s3cret-pw" not in message and "\n" not in message


async def test_instances_opening_an_empty_database_at_once_make_one_store(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    ids: list[int] = []
    all_open = trio.Event()

    async def open_one() -> None:
        async with open_store(postgres_dsn) as store:
            ids.append(store.client_id)
            if len(ids) == 4:
                all_open.set()
            await all_open.wait()  # four live stores at once: four client ids
            await Journal(store).add(f"from {store.client_id}", created_at=WHEN)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(open_one)
    assert len(set(ids)) == 4
    async with open_store(postgres_dsn) as store:
        assert len(await Journal(store).all()) == 4


# --------------------------------------------------------------------------- migration


async def test_a_store_is_migrated_forward_by_a_later_schema_file(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    from crdt import schema_files
    from crdt.storage_pg import PostgresBackend

    async with open_store(postgres_dsn) as store:
        await Journal(store).add("before the migration", created_at=WHEN)
    packaged = schema_files.load("postgres")
    text = (schema_files.resources.files("crdt") / "schemas" / "postgres.sql").read_text()
    later = schema_files.parse("postgres", text + (
        f"\n-- @migrate {packaged.version}\n"
        "CREATE TABLE later_things (id BIGINT PRIMARY KEY);\n"
        "INSERT INTO meta(key, value) VALUES ('later', 'yes');\n"
    ))
    assert later.version == packaged.version + 1
    backend = PostgresBackend(postgres_dsn, script=later)
    conn = await trio.to_thread.run_sync(backend.connect)
    backend.close_quietly(conn)
    db = postgres_dsn.rsplit("/", 1)[1]
    assert postgres_server.sql(db, "SELECT version FROM mirror_store") == [(later.version,)]
    assert "later_things" in tables(postgres_server, postgres_dsn)
    assert postgres_server.sql(db, "SELECT value FROM meta WHERE key = 'later'") == [("yes",)]
    # Its data came along; and this Mirror, which reads only up to the packaged
    # version, now refuses the store rather than write to a format it does not know.
    with pytest.raises(NewerSchemaError):
        async with open_store(postgres_dsn):
            pass
    postgres_server.sql(db, f"UPDATE mirror_store SET version = {packaged.version}")
    async with open_store(postgres_dsn) as store:
        assert [r.text for r in await Journal(store).all()] == ["before the migration"]


async def test_a_failed_migration_changes_nothing(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    from crdt import schema_files
    from crdt.storage_pg import PostgresBackend

    async with open_store(postgres_dsn):
        pass
    text = (schema_files.resources.files("crdt") / "schemas" / "postgres.sql").read_text()
    packaged = schema_files.load("postgres")
    broken = schema_files.parse("postgres", text + (
        f"\n-- @migrate {packaged.version}\n"
        "CREATE TABLE half_done (id BIGINT);\n"
        "ALTER TABLE no_such_table ADD COLUMN x INT;\n"
    ))
    with pytest.raises(StoreOpenError, match="no_such_table"):
        await trio.to_thread.run_sync(PostgresBackend(postgres_dsn, script=broken).connect)
    assert "half_done" not in tables(postgres_server, postgres_dsn)
    db = postgres_dsn.rsplit("/", 1)[1]
    assert postgres_server.sql(db, "SELECT version FROM mirror_store") == [(packaged.version,)]


# --------------------------------------------------------------------------- the server fails


async def write_until(
    journal: Journal, acked: list[str], count: int, going: trio.Event, after: int
) -> None:
    for i in range(count):
        r = await journal.add(f"entry {i}", created_at=WHEN + timedelta(minutes=i),
                              durable=True)
        acked.append(r.id)
        if len(acked) == after:
            going.set()


async def test_server_restarted_mid_write_loses_nothing_acknowledged(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    store_target = StoreTarget("postgres", postgres_dsn, postgres_server)
    acked: list[str] = []
    going = trio.Event()
    with trio.fail_after(120):
        async with open_store(store_target.location, reconnect_timeout_s=60) as store:
            journal = Journal(store)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_until, journal, acked, 60, going, 10)
                await going.wait()  # the writer is going: crash the server under it
                await trio.to_thread.run_sync(postgres_server.restart)
            assert len(acked) == 60  # every write went through, the interrupted one again
            assert store.statistics().reconnects >= 1
            assert len({r.id for r in await journal.all()}) == 60
    store_target.check_integrity()
    async with open_store(store_target.location) as store:
        persisted = {r.id for r in await Journal(store).all()}
    assert set(acked) <= persisted


async def test_server_gone_longer_than_the_store_waits_fails_the_write_clearly(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    with trio.fail_after(120):
        async with open_store(postgres_dsn, reconnect_timeout_s=0.5) as store:
            journal = Journal(store)
            kept = await journal.add("acknowledged before the outage", created_at=WHEN)
            await trio.to_thread.run_sync(
                lambda: postgres_server.stop(mode="immediate", remove=False)
            )
            with pytest.raises(StoreWriteError) as caught:
                await journal.add("never acknowledged", created_at=WHEN, durable=True)
            message = str(caught.value)
            assert "not confirmed" in message and "lost the connection to postgresql://" in message
            assert "\n" not in message
            with pytest.raises(StoreClosedError, match="earlier write failed"):
                await journal.add("refused", created_at=WHEN)
        # The server comes back; a store opened again has everything acknowledged
        # and writes again.
        await trio.to_thread.run_sync(postgres_server.ensure_running)
        async with open_store(postgres_dsn) as store:
            texts = [r.text for r in await Journal(store).all()]
            assert kept.text in texts and "refused" not in texts
            await Journal(store).add("after the outage", created_at=WHEN, durable=True)
        async with open_store(postgres_dsn) as store:
            assert "after the outage" in [r.text for r in await Journal(store).all()]
