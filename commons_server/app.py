"""The Commons server as a plain ASGI application.

Routes (anything else is 404; paths are matched whole, against strict patterns)::

    WS   /v1/commons                              the sync protocol (binary messages)
    GET  /  ?page=N                               threads, newest first (HTML)
    GET  /post/<author>/<id>, /insight/<a>/<id>   one thread with its comments (HTML)
    GET  /moderation                              the public moderation log (HTML)
    GET  /style.css, /healthz
    GET  /api/v1/info                             server key, operator key, limits
    GET  /api/v1/threads ?page=N                  JSON of the index
    GET  /api/v1/threads/<kind>/<author>/<id>     JSON of one thread
    GET  /api/v1/moderation                       JSON of the moderation log
    GET  /api/v1/withdrawn                        ids readers drop: the newest withdrawn,
                                                  hidden, blocked (earlier builds' readers)
    POST /api/v1/withdrawn {"ids": [...]}         of those ids, the ones to drop (same lists)
    POST /api/v1/moderation                       a signed operator action (JSON)
    POST /api/v1/withdraw                         an owner's signed withdrawal (JSON)

Every HTTP request costs a token of its address's bucket (429 when empty). POST
bodies are read up to ``MAX_HTTP_BODY_BYTES`` (``MAX_CHECK_BODY_BYTES`` for a
reader's question about its ids) and refused with 413 beyond, before being parsed.
Errors are JSON ``{"error": "..."}`` (API) or a small page.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import trio

from crdt.commons import BadSignature, CommonsError
from node.sync.session import SessionError, SyncSession
from serving.http import HttpError, lifespan, reject_upgrade, respond

from . import limits as L
from . import web
from .hub import Hub, Refused
from .hub_documents import hub_session
from .websocket import AsgiWebSocketStream

log = logging.getLogger("mirror.commons.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_ID_TAIL = r"([0-9a-f]{64})/([0-9a-f]{16})"
THREAD_PAGE = re.compile(rf"/(post|insight)/{_ID_TAIL}")
THREAD_API = re.compile(rf"/api/v1/threads/(post|insight)/{_ID_TAIL}")
PROTOCOL_PATH = "/v1/commons"
JSON = b"application/json"
HTML = b"text/html; charset=utf-8"


class CommonsApp:
    """The Commons server's ASGI application: protocol sessions over WebSocket, the JSON
    API and the read-only web view, all over one :class:`Hub`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sessions: set[SyncSession] = set()
        """Protocol sessions running now (the node's SyncSession, see hub_documents)."""
        self._sessions: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)

    # ------------------------------------------------------------------ protocol

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first.get("type") != "websocket.connect":
            return
        address = _address(scope)
        if scope.get("path") != PROTOCOL_PATH:
            await reject_upgrade(send, 404, b"use /v1/commons\n")
            return
        if not self.hub.requests.take(address):
            await reject_upgrade(send, 429, b"rate limit: too many requests from this address\n")
            return
        if self._sessions.get(address, 0) >= self.hub.limits.max_sessions_per_address:
            await reject_upgrade(send, 429, b"too many sessions from this address\n")
            return
        await send({"type": "websocket.accept"})
        self._sessions[address] = self._sessions.get(address, 0) + 1
        try:
            stream = AsgiWebSocketStream(receive, send)
            session = hub_session(self.hub, address, stream)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_messages)
                self.sessions.add(session)
                try:
                    await session.run()  # closes the stream: send_messages ends with the close
                except SessionError as exc:
                    log.info("session from %s ended: %s", address, exc)
                finally:
                    self.sessions.discard(session)
        finally:
            # Counted until the connection is gone, even if a client that stopped
            # reading holds the last write (hypercorn does not cancel it).
            self._sessions[address] -= 1
            if not self._sessions[address]:
                del self._sessions[address]

    # ------------------------------------------------------------------ http

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        method = str(scope.get("method", "GET"))
        api = path.startswith("/api/")
        try:
            if len(path) > L.MAX_PATH_CHARS or len(scope.get("query_string", b"")) > 200:
                raise HttpError(414, "request path too long")
            if not self.hub.requests.take(_address(scope)):
                raise HttpError(429, "rate limit: too many requests from this address")
            status, content_type, body = await self._route(scope, receive, path, method)
        except HttpError as exc:
            status, content_type = exc.status, JSON if api else HTML
            body = (_json({"error": str(exc)}) if api else web.error_page(exc.status, str(exc)))
        await _respond(send, status, body, content_type, head=method == "HEAD")

    async def _route(
        self, scope: Scope, receive: Receive, path: str, method: str
    ) -> tuple[int, bytes, bytes]:
        hub = self.hub
        if method == "POST" and path in ("/api/v1/withdraw", "/api/v1/moderation"):
            request = await _read_json(scope, receive)
            return 200, JSON, _json(await self._post(path, request))
        if method == "POST" and path == "/api/v1/withdrawn":
            request = await _read_json(scope, receive, L.MAX_CHECK_BODY_BYTES)
            ids = request.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise HttpError(400, "'ids' must be a list of document ids")
            if len(ids) > L.MAX_CHECK_IDS:
                raise HttpError(413, f"at most {L.MAX_CHECK_IDS} ids per request")
            return 200, JSON, _json(hub.moderation_of(ids))
        if method not in ("GET", "HEAD"):
            raise HttpError(405, "method not allowed")
        if path == "/":
            page_no = _page(scope)
            threads = await hub.threads(page_no)
            more = len(threads) == L.THREADS_PER_PAGE
            return 200, HTML, web.index_page(threads, page_no, more)
        if path == "/style.css":
            return 200, b"text/css; charset=utf-8", web.STYLESHEET
        if path == "/healthz":
            return 200, b"text/plain; charset=utf-8", b"ok\n"
        if path == "/moderation":
            return 200, HTML, web.moderation_page(await hub.moderation_log())
        if path == "/api/v1/info":
            return 200, JSON, _json(hub.info())
        if path == "/api/v1/threads":
            return 200, JSON, _json({"page": (p := _page(scope)), "threads": await hub.threads(p)})
        if path == "/api/v1/moderation":
            return 200, JSON, _json({"log": await hub.moderation_log()})
        if path == "/api/v1/withdrawn":
            return 200, JSON, _json(hub.moderated_lists())
        if (m := THREAD_PAGE.fullmatch(path)) is not None:
            thread = await hub.thread(f"commons/{m.group(1)}/{m.group(2)}/{m.group(3)}")
            if thread is None:
                raise HttpError(404, "no such thread (it may have been withdrawn)")
            return 200, HTML, web.thread_page(thread)
        if (m := THREAD_API.fullmatch(path)) is not None:
            thread = await hub.thread(f"commons/{m.group(1)}/{m.group(2)}/{m.group(3)}")
            if thread is None:
                raise HttpError(404, "no such thread (it may have been withdrawn)")
            return 200, JSON, _json(thread)
        raise HttpError(404, "not found")

    async def _post(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            if path == "/api/v1/withdraw":
                doc_id = _text(request, "doc_id", 200)
                held = await self.hub.withdraw(doc_id, _hex(request, "signature", 64))
                return {"withdrawn": doc_id, "held": held}
            entry = await self.hub.moderate(
                _text(request, "action", 20), _text(request, "target", 200),
                _text(request, "reason", L.MAX_REASON_CHARS), _text(request, "at", 40),
                _hex(request, "operator", 32), _hex(request, "signature", 64),
            )
            return {"applied": entry}
        except Refused as exc:
            raise HttpError(exc.status, str(exc)) from None
        except CommonsError as exc:
            raise HttpError(403 if isinstance(exc, BadSignature) else 400, str(exc)) from None


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def _page(scope: Scope) -> int:
    try:
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("ascii"),
                         strict_parsing=False, max_num_fields=5)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "bad query string") from None
    values = query.get("page", ["1"])
    if len(values) != 1 or not values[0].isdigit() or not 1 <= int(values[0]) <= L.MAX_PAGE:
        raise HttpError(400, f"page must be a number from 1 to {L.MAX_PAGE}")
    return int(values[0])


def _text(request: dict[str, Any], name: str, limit: int) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise HttpError(400, f"'{name}' must be a string")
    if len(value) > limit:
        raise HttpError(400, f"'{name}' is longer than {limit} characters")
    return value


def _hex(request: dict[str, Any], name: str, size: int) -> bytes:
    value = _text(request, name, 2 * size)
    if len(value) != 2 * size or not re.fullmatch(r"[0-9a-f]*", value):
        raise HttpError(400, f"'{name}' must be {2 * size} lowercase hex digits")
    return bytes.fromhex(value)


async def _read_json(scope: Scope, receive: Receive,
                     limit: int = L.MAX_HTTP_BODY_BYTES) -> dict[str, Any]:
    headers = {bytes(k).lower(): bytes(v) for k, v in scope.get("headers", [])}
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip()
    if ctype != JSON:
        raise HttpError(415, "send application/json")
    declared = headers.get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HttpError(413, f"body over {limit} bytes")
    body = bytearray()
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            raise HttpError(400, "client went away")
        body += message.get("body", b"")
        if len(body) > limit:
            raise HttpError(413, f"body over {limit} bytes")
        if not message.get("more_body"):
            break
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HttpError(400, "body is not valid JSON") from None
    if not isinstance(value, dict):
        raise HttpError(400, "body must be a JSON object")
    return value


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, *,
                   head: bool = False) -> None:
    await respond(send, status, body, [(b"content-type", content_type), *web.SECURITY_HEADERS],
                  head=head)


__all__ = ["PROTOCOL_PATH", "CommonsApp"]
