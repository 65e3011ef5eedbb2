"""One session's failure ends that session, never the service (issue 14).

`mirror serve` exited 70 when an AssertionError escaped a session: only
ProtocolError and I/O errors were caught, so any other exception tore down
the service's nursery. Here a fault injected into the document side of a
session (an AssertionError, as the one seen) must end only that session, with
a Close saying "internal error", while the service goes on serving: a later
session with the same peer syncs.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from crdt.journal import Reflection
from node.sync.documents import DeviceDocuments
from node.sync.service import SyncService
from node.sync.session import SyncSession
from protocol import INITIATOR, CloseCode, Update
from tests.sync_helpers import connected, open_devices, run_recording, wait_for

POISON = "poison-pill"


@pytest.fixture
def failing_apply(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make DeviceDocuments.apply raise an AssertionError, once, for an update carrying
    POISON (a bug that struck once: the next session's catch-up brings it again)."""
    real = DeviceDocuments.apply
    raised: list[str] = []

    async def apply(self: DeviceDocuments, session: SyncSession, message: Update) -> bool:
        if POISON.encode() in message.update and not raised:
            raised.append(message.doc_id)
            raise AssertionError("injected: a bug in the document side")
        return await real(self, session, message)

    monkeypatch.setattr(DeviceDocuments, "apply", apply)
    return raised


async def has_text(device: Any, text: str) -> bool:
    await device.store.refresh()
    return text in {r.text for r in await device.journal.all()}


async def test_an_unexpected_error_ends_the_session_with_a_close(
    tmp_path: Path, failing_apply: list[str]
) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b), connected(a, b) as (sa, sb):
        with trio.fail_after(10):
            await sa.caught_up.wait()
        await a.journal.add(f"this one carries the {POISON}")
        await wait_for(lambda: sa.peer_close is not None)
        assert failing_apply  # the fault fired on b's side
        assert sa.peer_close is not None
        assert sa.peer_close.code == int(CloseCode.INTERNAL_ERROR)
        assert "internal error" in sa.peer_close.reason


def service_for(device: Any) -> SyncService:
    core = SimpleNamespace(store=device.store, home=SimpleNamespace(path=device.path))
    return SyncService(core, device.group, listen=("127.0.0.1", 0))  # type: ignore[arg-type]


async def session_to(port: int, device: Any, failures: list[str],
                     nursery: trio.Nursery) -> SyncSession:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    session = SyncSession(device.store, device.group, stream, INITIATOR, address="a")
    nursery.start_soon(run_recording, session, failures)
    return session


async def test_the_service_survives_a_session_that_fails(
    tmp_path: Path, failing_apply: list[str]
) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b), trio.open_nursery() as nursery:
        service = service_for(a)
        port = await nursery.start(service.run)
        failures: list[str] = []
        first = await session_to(port, b, failures, nursery)
        with trio.fail_after(10):
            await first.caught_up.wait()
        poisoned: Reflection = await b.journal.add(f"the {POISON} goes first")
        await wait_for(lambda: service.stats.sessions_failed == 1)
        await wait_for(lambda: first.peer_close is not None)
        assert first.peer_close is not None
        assert first.peer_close.code == int(CloseCode.INTERNAL_ERROR)
        assert failing_apply

        # The service is still listening and serving: a new session catches up.
        later = await b.journal.add("written after the failure")
        second = await session_to(port, b, failures, nursery)
        await wait_for(lambda: has_text(a, later.text))
        assert second.handshake_done.is_set()
        await wait_for(lambda: has_text(a, poisoned.text))  # catch-up brought it again
        assert service.stats.sessions_total == 2
        nursery.cancel_scope.cancel()


async def test_a_session_with_itself_is_told_by_the_error_type(tmp_path: Path) -> None:
    """A node that reaches its own listener (its own advertisement, its own relay
    room) ends both sessions with PeerIsThisDevice; the dialer's outcome is SELF,
    decided on the type of the protocol error, not on its text."""
    from node.sync.session import SessionError, SessionOutcome
    from protocol import PeerIsThisDevice

    async with open_devices(tmp_path, ["a"]) as (a,):
        service = service_for(a)
        errors: list[SessionError] = []
        real_run = SyncSession.run

        async def run(self: SyncSession) -> None:
            try:
                await real_run(self)
            except SessionError as exc:
                errors.append(exc)
                raise

        async with trio.open_nursery() as nursery:
            port = await nursery.start(service.run)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(SyncSession, "run", run)
                with trio.fail_after(10):
                    outcome = await service.run_session(stream, INITIATOR, "myself")
            nursery.cancel_scope.cancel()
        assert outcome is SessionOutcome.SELF
        assert errors and isinstance(errors[0].protocol_error, PeerIsThisDevice)
        assert service.stats.sessions == 0
