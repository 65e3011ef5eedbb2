"""The PostgreSQL fixture itself: a real server on loopback, fresh databases, restarts."""

from __future__ import annotations

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")

from tests.postgres_helper import PostgresServer  # noqa: E402


def test_server_listens_on_loopback_only(postgres_server: PostgresServer) -> None:
    rows = postgres_server.sql("postgres", "SHOW listen_addresses")
    assert rows == [("127.0.0.1",)]
    sockets = postgres_server.sql("postgres", "SHOW unix_socket_directories")
    assert sockets == [(str(postgres_server.base),)]


def test_each_test_gets_an_empty_database(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (x int)")


def test_restart_keeps_committed_rows_and_ends_sessions(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        postgres_server.restart(mode="immediate")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
