from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres_helper import PostgresServer, postgres_unavailable
from tests.store_targets import StoreTarget

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


@pytest.fixture
def home_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh node home; MIRROR_HOME points at it for in-process CLI calls."""
    home = tmp_path / "home"
    monkeypatch.setenv("MIRROR_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (tests/postgres_helper.py); skips with the
    reason where none can be started."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped after the test. A test
    that stopped or crashed the server has it started again before the next."""
    postgres_server.ensure_running()
    dsn = postgres_server.create_database()
    try:
        yield dsn
    finally:
        postgres_server.ensure_running()
        postgres_server.drop_databases()  # this one and any the test cloned


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    """The same store test on both engines (tests/store_targets.py): an SQLite file in
    the test's directory, or a fresh PostgreSQL database (skipped where there is none)."""
    if request.param == "sqlite":
        return StoreTarget("sqlite", tmp_path / "m.db")
    server = request.getfixturevalue("postgres_server")
    return StoreTarget("postgres", request.getfixturevalue("postgres_dsn"), server)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str | None:
    """Each engine of the platform's stores in turn: None for the SQLite file in the
    home, else a fresh PostgreSQL database (skipped with the reason where none runs)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def another_database(
    request: pytest.FixtureRequest, database: str | None
) -> Callable[[], str | None]:
    """For a test with several servers, each on a database of its own on the engine of
    ``database``: None on SQLite (each server keeps its files in its own home), else a
    fresh PostgreSQL database on the same server, dropped with ``postgres_dsn``'s."""
    if database is None:
        return lambda: None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database
