"""Devices keeping their pair rooms open through relays, as the node does
(``stay_in_room`` with ``SyncSession``), with what each link went through."""

from __future__ import annotations

import random

import trio

from node.sync.relay import (
    REJOIN_ALONE_AFTER_S,
    RelayClientStatistics,
    RelayStream,
    stay_in_room,
)
from node.sync.session import SessionError, SyncSession
from protocol.relay import pair_room
from tests.sync_helpers import Device


class Link:
    """One device's side of one pair room, kept open as the node keeps it."""

    def __init__(self, me: Device, peer: Device, relays: list[str], seed: int = 0) -> None:
        self.me, self.peer, self.relays = me, peer, relays
        self.rejoin_alone_after_s = REJOIN_ALONE_AFTER_S
        self.stats = RelayClientStatistics()
        self.sessions: list[SyncSession] = []
        self.failures: list[str] = []
        self.caught_up_at: list[float] = []
        """trio.current_time() at which each session had caught up."""
        self.rng = random.Random(seed)

    @property
    def room(self) -> bytes:
        ring = self.me.keyring
        return pair_room(ring.group_secret, ring.epoch, ring.device_public,
                         self.peer.keyring.device_public)

    async def on_session(self, stream: RelayStream) -> None:
        session = SyncSession(self.me.store, self.me.group, stream, stream.role,
                              address=f"relay:{stream.relay}")
        self.sessions.append(session)

        async def note_caught_up() -> None:
            await session.caught_up.wait()
            self.caught_up_at.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(note_caught_up)
            try:
                await session.run()
            except SessionError as exc:
                self.failures.append(str(exc))
            nursery.cancel_scope.cancel()

    async def run(self) -> None:
        await stay_in_room(self.relays, lambda: self.room, self.on_session,
                           stats=self.stats, rng=self.rng,
                           rejoin_alone_after_s=self.rejoin_alone_after_s)

    def live(self) -> SyncSession | None:
        """The latest session (running or ended)."""
        return self.sessions[-1] if self.sessions else None

    def in_session(self) -> bool:
        live = self.live()
        return live is not None and live.caught_up.is_set() and not live._closing


def links_of(devices: list[Device], relays: list[str]) -> list[Link]:
    return [Link(me, peer, relays, seed=i)
            for i, (me, peer) in enumerate((m, p) for m in devices for p in devices
                                           if m is not p)]
