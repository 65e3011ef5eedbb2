"""PostgreSQL LISTEN/NOTIFY between the instances of one platform database.

Theory of operation
-------------------
Several Commons or blind-store instances serve one PostgreSQL database. What
one commits, the others must learn at once: a Commons instance must index a
post accepted elsewhere and push it to its live sessions, a blind store must
wake the pulls waiting on a log that another instance appended to. Each
instance keeps one dedicated connection that LISTENs, on a worker thread
(psycopg's synchronous API, as the stores use it), and hands every
notification to trio. A notification is delivered only when the transaction
that sent it commits, and PostgreSQL's queue is in commit order.

When the listening connection is lost (PostgreSQL restarted, a network cut) the
thread reconnects with a growing pause, and then delivers :data:`RESYNC`: the
notifications sent meanwhile are lost, so the consumer must look at the database
itself (the Commons hub re-reads its catalogue and moderation, the blind store
wakes every waiting pull).

:func:`notify` sends one notification outside any transaction (the Commons hub
sends it after its store's COMMIT); the blind store sends its own inside the
transaction that appends (``pg_notify`` in the same SQL), so nobody hears of a
change that was rolled back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import trio

log = logging.getLogger("mirror.commons.instances")

RESYNC = ("", "")
"""Delivered after the listening connection was lost and made again."""
POLL_S = 0.25
"""How long the thread waits for a notification before looking whether to stop."""
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
MAX_PAYLOAD_BYTES = 7_900
"""PostgreSQL refuses a NOTIFY payload of 8000 bytes or more."""

class ListenError(Exception):
    """The first connection to listen on could not be made (one line)."""


Deliver = Callable[[str, str], None]
"""Called on the trio thread with ``(channel, payload)``; must not block."""


def is_postgres_url(database: str | None) -> bool:
    return bool(database) and str(database).startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """*url* without its password, for messages and logs."""
    import psycopg.conninfo

    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable address)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    return f"postgresql://{parts.get('user', '') and str(parts['user']) + '@'}{host}:{port}/" \
           f"{parts.get('dbname', '')}"


class PgListener:
    """LISTEN on *channels* of the database at *url* until cancelled."""

    def __init__(self, url: str, channels: Sequence[str]) -> None:
        self.url = url
        self.channels = tuple(channels)
        self.received = 0
        self.reconnects = 0

    async def run(self, deliver: Deliver, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen; ``await nursery.start(listener.run, deliver)`` returns once LISTENing."""
        token = trio.lowlevel.current_trio_token()
        stop = threading.Event()
        started = trio.Event()

        def on_started() -> None:
            if not started.is_set():
                started.set()
                task_status.started()

        try:
            await trio.to_thread.run_sync(
                self._loop, token, deliver, on_started, stop, abandon_on_cancel=True)
        finally:
            stop.set()  # the thread sees it within POLL_S and closes its connection

    def _loop(self, token: trio.lowlevel.TrioToken, deliver: Deliver,
              on_started: Callable[[], None], stop: threading.Event) -> None:
        import psycopg

        pause = RECONNECT_FIRST_S
        first = True
        while not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    for channel in self.channels:
                        conn.execute(f'LISTEN "{channel}"')
                    pause = RECONNECT_FIRST_S
                    if not _to_trio(token, on_started if first else
                                    (lambda: deliver(*RESYNC))):
                        return
                    first = False
                    while not stop.is_set():
                        for note in conn.notifies(timeout=POLL_S):
                            self.received += 1
                            if not _to_trio(token, _bind(deliver, note.channel, note.payload)):
                                return
            except psycopg.Error as exc:
                if stop.is_set():
                    return
                if first:  # at startup: the operator's address is wrong, say so
                    raise ListenError(f"{describe(self.url)}: {_first_line(exc)}") from None
                self.reconnects += 1
                log.warning("listening for other instances: %s; again in %.1f s",
                            _first_line(exc), pause)
                stop.wait(pause)
                pause = min(RECONNECT_MAX_S, pause * 2)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _bind(deliver: Deliver, channel: str, payload: str) -> Callable[[], None]:
    return lambda: deliver(channel, payload)


def _to_trio(token: trio.lowlevel.TrioToken, fn: Callable[[], Any]) -> bool:
    """Run *fn* on the trio thread; False when trio has finished (stop listening)."""
    try:
        trio.from_thread.run_sync(fn, trio_token=token)
    except trio.RunFinishedError:
        return False
    return True


class PgNotifier:
    """Sends notifications on one connection of its own (made on first use, again
    after an error), from a worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = trio.Lock()

    async def notify(self, channel: str, payload: str) -> None:
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"a notification payload is at most {MAX_PAYLOAD_BYTES} bytes")
        async with self._lock:
            await trio.to_thread.run_sync(self._send, channel, payload)

    def _send(self, channel: str, payload: str) -> None:
        import psycopg

        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True)
                self._conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                return
            except psycopg.OperationalError:
                self._close()
                if attempt == 2:
                    raise

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        self._close()
