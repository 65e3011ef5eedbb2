"""The Commons server's side of a session: the node's SyncSession with the hub as its documents.

Theory of operation
-------------------
A Commons session is a :class:`node.sync.session.SyncSession` — the same
reader, writer, keeper, deadlines and bounded queue that sync a person's
devices — whose documents are :class:`HubDocuments`:

- credentials: the server key and the public group secret, any reader's key
  accepted (``Hub.credentials``); only the ``commons`` class is shared, and
  frames are limited to ``MAX_COMMONS_FRAME_BYTES``;
- catalogue: the hub's visible documents (``Hub.catalogue``);
- wanted: every document the client offers that differs, with the hub's state
  vector, except ids the hub refuses and documents it already holds in exactly
  that state (a withheld one is left out of its catalogue: ``Hub.state_vector``);
- answer: every envelope stored for the document, so a reader verifies the
  owner's own signatures (``Hub.bundle``);
- apply: ``Hub.accept``, awaited before the next frame is even decoded, so a
  HeartbeatAck the client receives proves every earlier update of its was
  accepted. A forged or malformed update ends the session with a Close
  (``PROTOCOL_ERROR``); a refused one (rate limit, blocked, withdrawn) with a
  Close (``NOT_AUTHORISED``) whose reason the client shows;
- live: the session is a hub listener while it runs; each update the hub
  accepts from another session is pushed to it (never back to its source).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from crdt.commons import CommonsError
from node.sync.documents import SessionPeer
from node.sync.session import SyncSession
from protocol import (
    COMMONS,
    RESPONDER,
    CatalogueEntry,
    CatalogueReceived,
    CloseCode,
    Credentials,
    Event,
    RemoteProtocolError,
    StateVector,
    StateVectorReceived,
    Update,
)

from . import limits as L
from .hub import Hub, Refused

log = logging.getLogger("mirror.commons.session")


class HubDocuments:
    """The documents of one Commons session from *address* (a ``SessionDocuments``)."""

    shareable = (COMMONS,)
    max_frame_bytes = L.MAX_COMMONS_FRAME_BYTES

    def __init__(self, hub: Hub, address: str) -> None:
        self.hub = hub
        self.address = address
        self._session: SessionPeer | None = None

    def credentials(self) -> Credentials:
        return self.hub.credentials()

    async def catalogue(self) -> list[CatalogueEntry]:
        return list(self.hub.catalogue())

    async def wanted(self, offered: CatalogueReceived) -> list[StateVector]:
        digests = {e.doc_id: e.sv_digest for e in offered.entries}
        wanted = []
        for doc_id in offered.differing:
            sv = self.hub.state_vector(doc_id, digests.get(doc_id))
            if sv is not None:
                wanted.append(StateVector(doc_id, COMMONS, sv))
        return wanted

    async def answer(self, request: StateVectorReceived) -> bytes:
        return await self.hub.bundle(request.doc_id)

    async def apply(self, session: SessionPeer, message: Update) -> bool:
        try:
            await self.hub.accept(message.doc_id, message.update, self.address, source=self)
        except Refused as exc:
            raise RemoteProtocolError(str(exc), CloseCode.NOT_AUTHORISED) from None
        except CommonsError as exc:
            raise RemoteProtocolError(f"refused update for {message.doc_id}: {exc}") from None
        return True

    @contextmanager
    def live(self, session: SessionPeer) -> Iterator[None]:
        self._session = session
        self.hub.subscribe(self)
        try:
            yield
        finally:
            self.hub.unsubscribe(self)
            self._session = None

    def deliver(self, doc_id: str, bundle: bytes) -> None:
        """Hub listener: an update the hub accepted from another session."""
        if self._session is not None:
            self._session.push(Update(doc_id, COMMONS, bundle))

    def observe(self, event: Event) -> None:
        self.hub.observe(self.address, event)


def hub_session(hub: Hub, address: str, stream: trio.abc.Stream) -> SyncSession:
    """The server's session with the client at *address* over *stream* (not yet running)."""
    return SyncSession(
        None, None, stream, RESPONDER,
        documents=HubDocuments(hub, address),
        address=address,
        max_queued_frames=L.SESSION_QUEUE_MESSAGES,
        idle_timeout_s=L.IDLE_TIMEOUT_S,
    )


__all__ = ["HubDocuments", "hub_session"]
