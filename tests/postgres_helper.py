"""A real PostgreSQL server for tests and benches, on loopback, in a temporary directory.

Debian installs the server binaries under ``/usr/lib/postgresql/<major>/bin`` (not on
PATH). PostgreSQL refuses to run as root, so when the tests run as root the cluster is
made and run as the ``postgres`` system user (``runuser``) in a directory owned by it;
as any other user it runs as that user. The server listens on 127.0.0.1 on a free port
only; its unix socket lives in the same private temporary directory, nowhere shared.

Use::

    reason = postgres_unavailable()
    if reason: pytest.skip(reason)
    server = PostgresServer.start()
    dsn = server.create_database()        # a fresh, empty database
    server.restart(mode="immediate")      # a crash of the server (fault tests)
    server.stop()                          # and the directory is removed

The pytest fixtures (``postgres_server``, ``postgres_dsn``) are in tests/conftest.py.

``durable=False`` (the tests' default) turns ``fsync`` off: a test kills processes,
PostgreSQL's or ours, never the machine, and what a killed process wrote is in the
kernel's page cache either way. A bench that measures commits passes ``durable=True``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
SUPERUSER = "mirror"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
_names = itertools.count(1)


class PostgresError(Exception):
    """The server could not be set up, started or stopped."""


def pg_bin_dir() -> Path | None:
    """The newest installed server's ``bin`` directory, or None."""
    found = []
    for candidate in PG_ROOT.glob("*/bin"):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            with contextlib.suppress(ValueError):
                found.append((int(candidate.parent.name), candidate))
    return max(found)[1] if found else None


def postgres_unavailable() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None if it can."""
    if pg_bin_dir() is None:
        return (f"no PostgreSQL server under {PG_ROOT}/*/bin (Debian: apt-get install "
                "postgresql; .ci/run installs it when run as root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root and there is no {SYSTEM_USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and there is no runuser to run PostgreSQL as postgres"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One cluster in its own temporary directory; see the module docstring."""

    base: Path
    bin_dir: Path
    port: int = 0
    durable: bool = False
    running: bool = False
    _databases: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """initdb a new cluster and start it; raises :class:`PostgresError` if it cannot."""
        reason = postgres_unavailable()
        if reason is not None:
            raise PostgresError(reason)
        bin_dir = pg_bin_dir()
        assert bin_dir is not None
        base = Path(tempfile.mkdtemp(prefix="mirror-pg-"))
        server = cls(base, bin_dir, durable=durable)
        try:
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SYSTEM_USER)
                os.chown(base, entry.pw_uid, entry.pw_gid)
            base.chmod(0o700)
            server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", SUPERUSER,
                        "-E", "UTF8", "--no-locale", "--no-sync")
            server._start_on_free_port()
        except BaseException:
            server._remove()
            raise
        atexit.register(server.stop)  # a session that dies early still stops it
        return server

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def _run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> str:
        cmd = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.base, check=False)
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{tool} did not finish in {timeout} s") from None
        if done.returncode != 0:
            raise PostgresError(f"{tool} failed ({done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()}\n{self._log_tail()}")
        return done.stdout

    def _log_tail(self) -> str:
        try:
            return "server log:\n" + "\n".join(self.log_file.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def _start_on_free_port(self) -> None:
        error: PostgresError | None = None
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            try:
                self._pg_ctl_start()
                return
            except PostgresError as exc:
                error = exc
        assert error is not None
        raise error

    def _pg_ctl_start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.base}",
            "-c max_connections=60",
            "-c shared_buffers=16MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_file),
                  "-o", " ".join(options), "-w", "-t", str(START_TIMEOUT_S), "start",
                  timeout=START_TIMEOUT_S + 10)
        self.running = True

    def stop(self, *, mode: str = "fast", remove: bool = True) -> None:
        """Stop the server (``fast``: clean; ``immediate``: a crash, recovered at the
        next start) and, with *remove*, delete its directory. Idempotent."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w",
                      "-t", str(STOP_TIMEOUT_S), "stop", timeout=STOP_TIMEOUT_S + 10)
            self.running = False
        if remove:
            self._remove()

    def restart(self, *, mode: str = "immediate") -> None:
        """Stop the server (by default as a crash) and start it again on the same port."""
        self.stop(mode=mode, remove=False)
        self._pg_ctl_start()

    def ensure_running(self) -> None:
        """Start the server again if a test left it stopped."""
        if not self.running and self.data.is_dir():
            self._pg_ctl_start()

    def _remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ databases

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection URI for *dbname* over TCP on loopback."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given) and return its DSN."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return self.dsn(name)

    def track_database(self, name: str) -> None:
        """Note a database a test made itself, so :meth:`drop_databases` drops it."""
        self._databases.append(name)

    def drop_databases(self) -> None:
        """Drop every database made through this object (between tests)."""
        for name in list(self._databases):
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        """Drop *name*, ending any session still connected to it."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._databases.remove(name)

    def sql(self, dbname: str, statement: str) -> list[tuple[object, ...]]:
        """Run one statement in *dbname* (autocommit) and return its rows, if any."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(statement)
            return list(cur.fetchall()) if cur.description is not None else []
