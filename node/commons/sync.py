"""The node's side of the Commons: syncing with a server, and asking it over HTTP.

Theory of operation
-------------------
A person publishes by writing a Commons document (``crdt.commons``) into their
own store, class ``commons``, owned by one of their author keys
(``authors.json`` in the home, mode 0600; pseudonymous, never a device key).
:func:`sync_commons` then runs one protocol session with the server over a
WebSocket as a *reader with no identity* (a fresh device key per session, the
public group secret of the pinned server key). The session is the one that
syncs a person's devices (:class:`node.sync.session.SyncSession`, initiator);
its documents are :class:`CommonsSync`, which:

* offers only documents that :func:`node.sync.catalogue.offerable` allows for
  the ``commons`` class **and** that one of this person's author keys owns
  **and** that the consent ledger does not mark withdrawn — nothing else can
  be named on this session (and the Connection refuses ``local`` again);
* signs each delta the server asks for with the owner's key, for that server
  (its pinned key is in the signature: the envelope is valid there only);
* verifies every envelope it receives before applying it to its cache, for
  that server (a forged update, or one signed for another server, ends the
  session and nothing of it is applied).

The exchange finishes with a heartbeat round trip after catch-up
(``SyncSession.wait_acknowledged``): the server handles frames in order, so
its HeartbeatAck means everything sent before was accepted, and a Close
instead carries the server's reason (rate limit, blocked, withdrawn), shown
as :class:`CommonsRefused`. An unreachable server is :class:`CommonsUnavailable`.

Author keys, servers, the consent ledger and the cache of items are in
:mod:`node.commons.home`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx_ws
import trio
import wsproto.events
import wsproto.utilities

from crdt import DocStore, SyncClass
from crdt.commons import (
    DOC_KIND,
    THREAD_KINDS,
    CommonsError,
    apply_update,
    encode_bundle,
    is_commons_id,
    parse_doc_id,
    public_group_secret,
    read_item,
    verify_bundle,
)
from protocol import (
    COMMONS,
    INITIATOR,
    CatalogueEntry,
    CatalogueReceived,
    CloseCode,
    Credentials,
    Event,
    ProtocolError,
    RemoteProtocolError,
    StateVector,
    StateVectorReceived,
    Update,
    state_vector_digest,
)

from ..errors import MirrorError
from ..sync.catalogue import offerable
from ..sync.documents import EMPTY_STATE_VECTOR, SessionPeer
from ..sync.message_stream import MessageStream
from ..sync.session import SessionError, SyncSession
from .home import AuthorKeys, CommonsServer

log = logging.getLogger("mirror.commons")

SYNC_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 15.0
MAX_WS_MESSAGE_BYTES = 2 * 1024 * 1024
"""Largest WebSocket message taken from a server: httpx-ws ends the connection past it."""
MAX_WITHDRAWN_LISTED = 10_000
"""Most entries read from each list of a server's ``/api/v1/withdrawn``."""
MAX_WITHDRAWN_BODY_BYTES = 4 * 1024 * 1024
"""Largest answer read from ``/api/v1/withdrawn`` (three full lists take under 3 MiB)."""
MODERATED_LISTS = ("withdrawn", "hidden", "blocked")
MAX_CHECK_IDS = 2_000
"""Ids asked about in one ``POST /api/v1/withdrawn`` (the server takes this many)."""
WS_CHUNK_BYTES = 256 * 1024  # largest message sent (the server takes 1 MiB and a little)
MAX_FRAME_BYTES = 1024 * 1024  # largest protocol frame taken from the server
_ORIGIN = "mirror.commons"


class CommonsUnavailable(MirrorError):
    """The Commons server could not be reached (the cache still works)."""


class CommonsRefused(MirrorError):
    """The server refused something (its one-line reason)."""


# --------------------------------------------------------------------------- the server over HTTP


async def fetch_info(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            response = await client.get(url + "/api/v1/info")
    except httpx.HTTPError as exc:
        raise CommonsUnavailable(f"cannot reach {url} ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise CommonsUnavailable(f"{url} answered {response.status_code}")
    try:
        info = response.json()
        bytes.fromhex(info["server_key"])
    except (ValueError, KeyError, TypeError):
        raise CommonsUnavailable(f"{url} is not a Mirror Commons server") from None
    if not isinstance(info, dict) or info.get("service") != "mirror-commons":
        raise CommonsUnavailable(f"{url} is not a Mirror Commons server")
    return info


async def post_json(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            response = await client.post(url + path, json=body)
    except httpx.HTTPError as exc:
        raise CommonsUnavailable(f"cannot reach {url} ({type(exc).__name__})") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise CommonsRefused(f"{url} refused: {reason or response.status_code}")
    return answer if isinstance(answer, dict) else {}


async def fetch_moderated(
    server: CommonsServer, ids: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """What *server* says readers must drop, per list (``withdrawn``, ``hidden``,
    ``blocked``).

    With *ids* (the ids this reader holds) it asks about those
    (``POST /api/v1/withdrawn``, ``MAX_CHECK_IDS`` a request), so it learns of
    every withdrawal of an item it holds however many others happened; a server
    from before that answers 405, and its lists are read instead. Without *ids*
    it reads the lists (``GET``: the newest of each).

    Each answer is read within bounds: at most ``MAX_WITHDRAWN_BODY_BYTES`` (not
    decompressed), ``SYNC_TIMEOUT_S`` in all and ``MAX_WITHDRAWN_LISTED`` entries
    of each list; entries that are not strings are skipped. ``withdrawn`` is
    required; a server older than hiding and blocking lists only that. Anything
    else the server answers is :class:`CommonsUnavailable` with the reason."""

    url = server.url + "/api/v1/withdrawn"
    lists: dict[str, list[str]] = {name: [] for name in MODERATED_LISTS}
    try:
        with trio.fail_after(SYNC_TIMEOUT_S):
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                if ids is None:
                    return _moderated_lists(url, await _bounded_json(client, "GET", url))
                wanted = list(dict.fromkeys(ids))
                for start in range(0, len(wanted), MAX_CHECK_IDS):
                    batch = wanted[start:start + MAX_CHECK_IDS]
                    try:
                        answer = await _bounded_json(client, "POST", url, {"ids": batch})
                    except _MethodNotAllowed:  # a server from before the question
                        return _moderated_lists(url, await _bounded_json(client, "GET", url))
                    for name, entries in _moderated_lists(url, answer).items():
                        lists[name].extend(entries)
    except trio.TooSlowError:
        raise CommonsUnavailable(f"{url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise CommonsUnavailable(f"cannot reach {url} ({type(exc).__name__})") from None
    return lists


class _MethodNotAllowed(Exception):
    pass


async def _bounded_json(client: Any, method: str, url: str,
                        body: dict[str, Any] | None = None) -> Any:
    """The JSON answer to one request, read within MAX_WITHDRAWN_BODY_BYTES."""

    data = bytearray()
    async with client.stream(method, url, json=body,
                             headers={"accept-encoding": "identity"}) as response:
        if response.status_code == 405 and method == "POST":
            raise _MethodNotAllowed
        if response.status_code != 200:
            raise CommonsUnavailable(f"{url} answered {response.status_code}")
        chunks = response.aiter_raw()
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > MAX_WITHDRAWN_BODY_BYTES:
                    raise CommonsUnavailable(
                        f"{url} answered with more than "
                        f"{MAX_WITHDRAWN_BODY_BYTES // (1024 * 1024)} MiB")
        except BaseException:
            # Stopping early leaves httpx's nested async generators suspended,
            # which trio reports when they are collected: close the response,
            # then drain the chain (it ends at once on the closed connection).
            await response.aclose()
            with contextlib.suppress(httpx.HTTPError, OSError, RuntimeError):
                async for _ in chunks:
                    pass
            raise
    try:
        return json.loads(bytes(data))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise CommonsUnavailable(f"{url} answered with something that is not valid JSON") from None


def _moderated_lists(url: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise CommonsUnavailable(f"{url} answered with something that is not a JSON object")
    lists = {}
    for name in MODERATED_LISTS:
        entries = value.get(name, None if name == "withdrawn" else [])
        if not isinstance(entries, list):
            raise CommonsUnavailable(f"{url} answered, but its '{name}' is not a list")
        lists[name] = [e for e in entries[:MAX_WITHDRAWN_LISTED] if isinstance(e, str)]
    return lists


async def forget_withdrawn(store: DocStore, server: CommonsServer, authors: AuthorKeys) -> int:
    """Delete cached copies of what *server* no longer shows; how many.

    The node asks the server about the ids it holds (:func:`fetch_moderated`):
    other people's cached items, and the threads of cached comments and
    reactions. It deletes those the server says were withdrawn by the owner or
    removed by the operator (or went with their thread), hidden by the operator,
    or owned by an author it blocks; and the comments and reactions on such a
    thread. Only other people's ``commons`` documents are deleted: this person's
    own stay in their store whatever a server says. The file is then rewritten
    so the deleted text is in none of its pages (``DocStore.delete_doc``).
    Hidden and blocked items the server shows again come back with the next
    sync, as any item not yet cached does."""
    mine = {key.public for key in authors.all()}
    held: list[str] = []
    threads: dict[str, str] = {}  # a cached comment or reaction -> its thread
    for info in store.documents(DOC_KIND):
        if info.sync_class is not SyncClass.COMMONS or not is_commons_id(info.doc_id):
            continue
        cid = parse_doc_id(info.doc_id)
        if cid.owner in mine:
            continue
        held.append(info.doc_id)
        if cid.kind not in THREAD_KINDS:
            thread = await _thread_of(store, info.doc_id)
            if thread:
                threads[info.doc_id] = thread
    if not held:
        return 0
    lists = await fetch_moderated(server, [*held, *threads.values()])
    dropped = {*lists["withdrawn"], *lists["hidden"]}
    blocked = set(lists["blocked"])

    def gone(doc_id: str) -> bool:
        return doc_id in dropped or parse_doc_id(doc_id).owner_hex in blocked

    doomed = [doc_id for doc_id in held
              if gone(doc_id) or (doc_id in threads and gone(threads[doc_id]))]
    for i, doc_id in enumerate(doomed):
        await store.delete_doc(doc_id, scrub_file=i == len(doomed) - 1)
    return len(doomed)


async def _thread_of(store: DocStore, doc_id: str) -> str | None:
    """The thread a cached comment or reaction points at (None if it does not read)."""
    stored = store.loaded(doc_id) or await store.open_doc(doc_id, kind=DOC_KIND, create=False)
    try:
        return read_item(doc_id, stored.doc).thread
    except CommonsError:
        return None


# --------------------------------------------------------------------------- syncing


@dataclass
class SyncReport:
    sent: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    on_server: set[str] = field(default_factory=set)
    forgotten: int = 0
    """Cached items deleted because the server lists them as withdrawn or moderated away."""


class WebSocketStream(MessageStream):
    """Protocol bytes over an httpx-ws session: one binary message per chunk.

    A disconnect, a network error or a text message ends the stream. A write
    the server no longer takes is dropped quietly: the server is closing, and
    its Close (with the reason the person reads) is already on its way in.
    """

    chunk_bytes = WS_CHUNK_BYTES

    def __init__(self, ws: Any) -> None:
        super().__init__()
        self.ws = ws
        self._ended = False
        self._server_closing = False

    async def _next_message(self) -> bytes | None:
        while not self._ended:
            try:
                message = await self.ws.receive()
            except httpx_ws.HTTPXWSException:
                break
            if isinstance(message, wsproto.events.BytesMessage):
                if message.data:
                    return bytes(message.data)
            elif isinstance(message, wsproto.events.TextMessage):
                break  # a text message has no place on a protocol session
        self._ended = True
        return None

    async def _send_message(self, data: bytes) -> None:
        if self._server_closing:
            return
        try:
            await self.ws.send_bytes(data)
        except (httpx_ws.HTTPXWSException, wsproto.utilities.LocalProtocolError) as exc:
            log.debug("send after the server began closing: %s", exc)
            self._server_closing = True

    async def aclose(self) -> None:
        self._ended = True  # the connection itself closes with aconnect_ws's context
        await trio.lowlevel.checkpoint()


class CommonsSync:
    """The document side of a node's Commons session (a ``SessionDocuments``).

    See the module docstring: offers only this person's own, not withdrawn,
    ``commons`` documents; signs each delta the server asks for with the
    owner's author key; verifies every received envelope before applying any.
    """

    shareable = (COMMONS,)
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, store: DocStore, server: CommonsServer, authors: AuthorKeys,
                 withdrawn: set[str]) -> None:
        self.store = store
        self.server = server
        self.authors = {k.public: k for k in authors.all()}
        self.withdrawn = withdrawn
        self._credentials = Credentials(
            device_seed=os.urandom(32),  # a reader needs no identity: fresh per session
            group_secret=public_group_secret(server.server_key),
            epoch=0,
            known_devices=frozenset({server.server_key}),
        )
        self.report = SyncReport()

    def _mine(self, doc_id: str) -> bool:
        try:
            return parse_doc_id(doc_id).owner in self.authors
        except CommonsError:
            return False

    def credentials(self) -> Credentials:
        return self._credentials

    async def catalogue(self) -> list[CatalogueEntry]:
        """The choke point, narrowed: commons-class documents this person owns, not withdrawn."""
        entries = []
        for info in offerable(self.store, [SyncClass.COMMONS]):
            if not self._mine(info.doc_id) or info.doc_id in self.withdrawn:
                continue
            stored = self.store.loaded(info.doc_id) or await self.store.open_doc(
                info.doc_id, kind=info.kind, create=False)
            entries.append(CatalogueEntry(info.doc_id, COMMONS,
                                          state_vector_digest(stored.doc.get_state())))
        return entries

    async def wanted(self, offered: CatalogueReceived) -> list[StateVector]:
        self.report.on_server = {e.doc_id for e in offered.entries}
        wanted = []
        for doc_id in offered.differing:
            if not is_commons_id(doc_id) or doc_id in self.withdrawn:
                continue
            stored = self.store.loaded(doc_id)
            if stored is None and self.store.info(doc_id) is not None:
                stored = await self.store.open_doc(doc_id, kind=DOC_KIND, create=False)
            sv = stored.doc.get_state() if stored else EMPTY_STATE_VECTOR
            wanted.append(StateVector(doc_id, COMMONS, sv))
        return wanted

    async def answer(self, request: StateVectorReceived) -> bytes:
        author = self.authors.get(parse_doc_id(request.doc_id).owner)
        stored = self.store.loaded(request.doc_id)
        if author is None or stored is None:  # never offered: the Connection refuses anyway
            raise RemoteProtocolError(
                f"server asked for {request.doc_id}, which we did not offer")
        try:
            delta = stored.doc.get_update(request.state_vector)
        except ValueError:
            raise RemoteProtocolError("unusable state vector from the server") from None
        self.report.sent.append(request.doc_id)
        return encode_bundle([author.envelope(request.doc_id, delta, self.server.server_key)])

    async def apply(self, session: SessionPeer, message: Update) -> bool:
        if self._mine(message.doc_id) and message.doc_id in self.withdrawn:
            return False
        try:
            envelopes = verify_bundle(message.doc_id, message.update, self.server.server_key,
                                      legacy=True)  # what the server kept from before binding
        except CommonsError as exc:
            raise RemoteProtocolError(f"refused an update for {message.doc_id}: {exc}") from None
        if not envelopes:
            return False
        stored = await self.store.open_doc(message.doc_id, kind=DOC_KIND,
                                           sync_class=SyncClass.COMMONS)
        if stored.sync_class is not SyncClass.COMMONS:
            return False  # this node keeps a document of that id in another class: never merge
        self.store.ensure_writable()
        for env in envelopes:
            try:
                apply_update(stored.doc, env.update, origin=_ORIGIN)
            except CommonsError as exc:
                raise RemoteProtocolError(str(exc)) from None
        self.report.received.append(message.doc_id)
        return True

    def live(self, session: SessionPeer) -> AbstractContextManager[None]:
        return nullcontext()  # one exchange, then the session ends: nothing is pushed live

    def observe(self, event: Event) -> None:
        pass


async def _exchange(session: SyncSession) -> tuple[bool, SessionError | None]:
    """Run *session* until the server confirmed all we sent, then close it.

    Confirmed means: caught up, then a heartbeat round trip — the server
    handles frames in order, so its HeartbeatAck says every update sent before
    was accepted. Returns (confirmed, how the session failed if it did).
    """
    confirmed = False
    failure: SessionError | None = None

    async def confirm() -> None:
        nonlocal confirmed
        await session.caught_up.wait()
        if await session.wait_acknowledged():
            confirmed = True
            session.close_soon("done", CloseCode.NORMAL)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(confirm)
        try:
            await session.run()
        except SessionError as exc:
            failure = exc
        nursery.cancel_scope.cancel()
    return confirmed, failure


def _outcome(session: SyncSession, confirmed: bool, failure: SessionError | None,
             url: str) -> None:
    """Raise what the person should read if the exchange did not succeed."""
    close = session.peer_close
    if close is not None and not confirmed:
        if close.code == CloseCode.NOT_AUTHORISED:
            raise CommonsRefused(f"the server refused: {close.reason}")
        raise CommonsRefused(f"the server closed the session: {close.reason}")
    if failure is not None and isinstance(failure.__cause__, ProtocolError):
        raise CommonsRefused(f"session with {url} failed: {failure.__cause__}")
    if not confirmed:
        reason = f" ({failure})" if failure is not None else ""
        raise CommonsUnavailable(f"{url} ended the session early{reason}")


async def sync_commons(
    store: DocStore, server: CommonsServer, authors: AuthorKeys, withdrawn: set[str]
) -> SyncReport:
    """One session with *server*; CommonsUnavailable / CommonsRefused say why it failed."""

    documents = CommonsSync(store, server, authors, withdrawn)
    try:
        with trio.fail_after(SYNC_TIMEOUT_S):
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                connecting: Any = httpx_ws.aconnect_ws(
                    server.ws_url, client, max_message_size_bytes=MAX_WS_MESSAGE_BYTES,
                    keepalive_ping_interval_seconds=None)
                async with connecting as ws:
                    # Errors are carried out of httpx-ws's task group by hand: raised
                    # inside it they would arrive wrapped in an ExceptionGroup.
                    session = SyncSession(None, None, WebSocketStream(ws), INITIATOR,
                                          documents=documents)
                    confirmed, failure = await _exchange(session)
    except trio.TooSlowError:
        raise CommonsUnavailable(f"{server.url} did not answer in time") from None
    except (httpx.HTTPError, httpx_ws.WebSocketUpgradeError, httpx_ws.WebSocketNetworkError,
            OSError) as exc:
        raise CommonsUnavailable(f"cannot reach {server.url} ({type(exc).__name__})") from None
    _outcome(session, confirmed, failure, server.url)
    await store.wait_durable()
    return documents.report
