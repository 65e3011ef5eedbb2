"""`mirror ui`: the local web interface, an ASGI app served by hypercorn on trio.

Routes (every one behind :class:`node.ui.security.UiGuard`):

    GET  /                       the page (after ``?token=`` once: the session cookie)
    GET  /static/NAME            the shipped assets (JS, CSS, icons), from this package
    GET  /api/session            the page's CSRF token
    GET  /api/events             server-sent events: what changed in the home
    GET  /api/…                  reads: journal, reflection, tensions, patterns, mood, …
    POST|PATCH|PUT|DELETE /api/… changes (CSRF-checked): write, edit, star, delete, …

Errors are JSON ``{"error": "one line"}`` with a status; tracebacks go to the log.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape
from importlib import resources
from typing import Any, cast

import hypercorn.trio
import trio
from hypercorn.config import Config

from crdt import StoreError, ValueRangeError

from ..app.timeline import JournalQuery
from ..errors import MirrorError
from .asgi import (
    MAX_UPLOAD_BYTES,
    Receive,
    Request,
    Response,
    Router,
    Scope,
    Send,
    UiHttpError,
    error_response,
    json_response,
)
from .backend import UiBackend, parse_day
from .push import ChangeFeed
from .security import UiGuard, session_from_cookie

log = logging.getLogger("mirror.ui")

STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".woff2": "font/woff2",
}


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every shipped asset by name, read once: nothing else can be served from disk."""
    out: dict[str, tuple[bytes, str]] = {}
    folder = resources.files(__package__).joinpath("static")
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return out


class UiApp:
    """The ASGI application."""

    def __init__(self, backend: UiBackend, guard: UiGuard, feed: ChangeFeed) -> None:
        self.backend = backend
        self.guard = guard
        self.feed = feed
        self.static = load_static()
        self.router = Router()
        self.requests_served = 0
        self.background: trio.Nursery | None = None  # for a pairing offer (set by run_ui)
        self._pairing: trio.CancelScope | None = None
        self._routes()

    def _routes(self) -> None:
        add = self.router.add
        add("GET", "/", self.page)
        add("GET", "/favicon.ico", self.favicon)
        add("GET", "/static/{name}", self.asset)
        add("GET", "/api/session", self.session)
        add("GET", "/api/events", self.events)
        add("GET", "/api/status", self.read(lambda r: self.backend.status()))
        add("GET", "/api/journal", self.read(self.journal))
        add("GET", "/api/reflections/{rid}", self.read(
            lambda r: self.backend.reflection(r.params["rid"])))
        add("GET", "/api/reflections/{rid}/delete-preview", self.read(
            lambda r: self.backend.delete_preview(r.params["rid"])))
        add("GET", "/api/on-this-day", self.read(lambda r: self.backend.on_this_day()))
        add("GET", "/api/tensions", self.read(lambda r: self.backend.tensions()))
        add("GET", "/api/patterns", self.read(lambda r: self.backend.patterns()))
        add("GET", "/api/mood", self.read(lambda r: self.backend.mood()))
        add("GET", "/api/graph", self.read(lambda r: self.backend.graph()))
        add("GET", "/api/evolution", self.read(lambda r: self.backend.evolution()))
        add("GET", "/api/settings", self.read(lambda r: self.backend.settings()))
        add("GET", "/api/export", self.export)
        add("GET", "/api/devices", self.read(lambda r: self.backend.devices()))
        add("GET", "/api/commons", self.read(lambda r: self.backend.commons()))
        add("POST", "/api/import/preview", self.change(self.import_preview))
        add("POST", "/api/import", self.change(self.import_upload))
        add("POST", "/api/pairing", self.change(self.start_pairing))
        add("POST", "/api/join", self.change(self.join))
        add("DELETE", "/api/devices/{device}", self.change(
            lambda r: self.backend.remove_device(r.params["device"])))
        add("PUT", "/api/share/journal", self.change(self.share_journal))
        add("POST", "/api/reflections", self.write)
        add("PATCH", "/api/reflections/{rid}", self.change(self.edit))
        add("PUT", "/api/reflections/{rid}/star", self.change(self.star))
        add("DELETE", "/api/reflections/{rid}", self.change(
            lambda r: self.backend.delete(r.params["rid"])))
        add("POST", "/api/graph/edit", self.change(self.graph_edit))
        add("POST", "/api/evolution", self.change(self.evolve))
        add("PUT", "/api/settings/mode", self.change(self.set_mode))
        add("POST", "/api/settings/test-model", self.change(
            lambda r: self.backend.test_model()))

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no WebSocket: push is server-sent events
        request = Request.from_scope(scope, receive)
        self.requests_served += 1
        started = time.perf_counter()
        try:
            response = await self._handle(request)
        except UiHttpError as exc:
            response = error_response(exc.status, exc.reason)
        except (MirrorError, StoreError, ValueRangeError) as exc:
            response = error_response(400, str(exc))
        except Exception:
            log.exception("ui: %s %s failed", request.method, request.path)
            response = error_response(500, "something went wrong; details in the log")
        # the time this server spent (before streaming), for the bench and devtools
        spent_ms = (time.perf_counter() - started) * 1000
        response.headers.append((b"server-timing", f"app;dur={spent_ms:.2f}".encode()))
        cache = request.path.startswith("/static/")
        await response.send(send, cache=cache)

    async def _handle(self, request: Request) -> Response:
        if not self.guard.host_allowed(request.headers.get("host")):
            return error_response(421, "this server answers to 127.0.0.1 and localhost only")
        session = session_from_cookie(request.headers.get("cookie"))
        token = request.query.get("token")
        if request.path == "/" and request.method == "GET" and token:
            new = self.guard.redeem(token[0])
            if new is None:
                return _refused_page("This link was used already, or is not the one "
                                     "`mirror ui` printed. Start `mirror ui` again for a "
                                     "new one.", 403)
            return Response(303, b"", "text/plain", [
                (b"location", b"/"), (b"set-cookie", self.guard.cookie_header(new))])
        refusal = self.guard.check(request.method, request.headers, session)
        if refusal is not None:
            if request.path == "/" and request.method == "GET":
                return _refused_page("Open the link that `mirror ui` printed in your "
                                     "terminal.", refusal.status)
            return error_response(refusal.status, refusal.reason)
        handler = self.router.find(request)
        return await handler(request)

    # ------------------------------------------------------------------ pages, assets

    async def page(self, request: Request) -> Response:
        body, kind = self.static["index.html"]
        return Response(200, body, kind)

    async def favicon(self, request: Request) -> Response:
        body, kind = self.static["icon.svg"]
        return Response(200, body, kind)

    async def asset(self, request: Request) -> Response:
        found = self.static.get(request.params["name"])
        if found is None:
            raise UiHttpError(404, "not found")
        return Response(200, found[0], found[1])

    async def session(self, request: Request) -> Response:
        csrf = self.guard.csrf_for(session_from_cookie(request.headers.get("cookie")))
        return json_response({"csrf": csrf})

    async def events(self, request: Request) -> Response:
        return Response(200, b"", "text/event-stream",
                        stream=_until_disconnect(self.feed.events(), request.receive))

    # ------------------------------------------------------------------ reads, changes

    def read(self, fn: Callable[[Request], Awaitable[Any]]) -> Callable[
            [Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return json_response(await fn(request))
        return handler

    def change(self, fn: Callable[[Request], Awaitable[Any]]) -> Callable[
            [Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            result = await fn(request)
            return json_response(result)
        return handler

    async def journal(self, request: Request) -> dict[str, Any]:
        private = request.arg("private")
        if private not in ("", "only", "none"):
            raise UiHttpError(400, "private: only or none")
        try:
            page = int(request.arg("page", "1"))
            per = int(request.arg("per", "50"))
        except ValueError:
            raise UiHttpError(400, "page and per are whole numbers") from None
        q = JournalQuery(
            text=request.arg("q")[:500],
            since=parse_day(request.arg("from"), "from"),
            until=parse_day(request.arg("to"), "to"),
            tags=tuple(request.args("tag")),
            starred=request.arg("starred") == "1",
            private=private, page=max(1, page), per_page=per,
        )
        return await self.backend.journal(q)

    async def write(self, request: Request) -> Response:
        data = await request.json()
        text = _string(data, "text")
        tags = _strings(data.get("tags", []), "tags")
        private = bool(data.get("private", False))
        stream = self.backend.write(text, tags, private)
        first = await anext(stream)  # saved (or the error) before the response starts
        return Response(200, b"", "application/x-ndjson", stream=_prepend(first, stream))

    async def edit(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            raise UiHttpError(400, "text: a string")
        tags = None if data.get("tags") is None else _strings(data["tags"], "tags")
        return await self.backend.edit(request.params["rid"], text, tags)

    async def star(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.star(request.params["rid"], bool(data.get("starred")))

    async def graph_edit(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.graph_edit(
            _string(data, "op"), _string(data, "node"),
            label=str(data.get("label", "")), into=str(data.get("into", "")))

    async def evolve(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        days = data.get("days", 30)
        if not isinstance(days, int):
            raise UiHttpError(400, "days: a whole number")
        return await self.backend.evolve(days)

    async def set_mode(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.set_mode(_string(data, "mode"))

    async def start_pairing(self, request: Request) -> dict[str, Any]:
        if self.background is None:
            raise UiHttpError(503, "pairing is not available in this server")
        if self._pairing is not None:
            self._pairing.cancel()  # a new code voids the one shown before

        async def offer(task_status: trio.TaskStatus[dict[str, Any]]) -> None:
            shown = False

            def on_shown(state: dict[str, Any]) -> None:
                nonlocal shown
                shown = True
                task_status.started(state)

            with trio.CancelScope() as scope:
                self._pairing = scope
                try:
                    await self.backend.offer_pairing(on_shown)
                except Exception:
                    if not shown:
                        raise  # the request that asked for the code gets the error
                    # later failures are on the page already (a pairing event)
                    log.warning("pairing offer failed", exc_info=True)

        started: dict[str, Any] = await self.background.start(offer)
        return started

    async def join(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.join(_string(data, "code"), str(data.get("address", "")),
                                       str(data.get("name", "")))

    async def share_journal(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.share_journal(bool(data.get("shared")))

    async def import_preview(self, request: Request) -> dict[str, Any]:
        data = await request.body(MAX_UPLOAD_BYTES)
        if not data:
            raise UiHttpError(400, "the file is empty")
        return await self.backend.import_preview(data, request.arg("name", "upload"),
                                                 request.arg("format", "auto"))

    async def import_upload(self, request: Request) -> dict[str, Any]:
        data = await request.json()
        return await self.backend.import_upload(_string(data, "upload"),
                                                str(data.get("format", "auto")),
                                                bool(data.get("private", False)))

    async def export(self, request: Request) -> Response:
        name, body = await self.backend.export(request.arg("format", "json"))
        kind = "application/json" if name.endswith(".json") else "text/markdown; charset=utf-8"
        return Response(200, body, kind, [
            (b"content-disposition", f'attachment; filename="{name}"'.encode())])


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise UiHttpError(400, f"{key}: a string")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UiHttpError(400, f"{what}: a list of strings")
    return [v for v in value if v.strip()]


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _until_disconnect(events: AsyncIterator[bytes],
                            receive: Receive) -> AsyncIterator[bytes]:
    """*events* until the browser goes away (hypercorn says so on *receive*)."""
    send_chan, recv_chan = trio.open_memory_channel[bytes](0)

    async def pump() -> None:
        async with send_chan:
            async for chunk in events:
                await send_chan.send(chunk)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async with trio.open_nursery() as nursery:
        async def watch_then_stop() -> None:
            await watch()
            nursery.cancel_scope.cancel()

        nursery.start_soon(pump)
        nursery.start_soon(watch_then_stop)
        async with recv_chan:
            async for chunk in recv_chan:
                yield chunk
        nursery.cancel_scope.cancel()


def _refused_page(message: str, status: int) -> Response:
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Mirror</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<link rel=stylesheet href=/static/app.css></head><body><main class=refused>"
        f"<h1>Mirror</h1><p>{escape(message)}</p></main></body></html>"
    )
    return Response(status, body.encode(), "text/html; charset=utf-8")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --------------------------------------------------------------------------- serving


def hypercorn_config(port: int) -> Any:

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None  # paths carry search words: never logged
    config.errorlog = logging.getLogger("mirror.ui.http")
    config.include_server_header = False
    config.graceful_timeout = 1.0
    return config


async def serve_ui(
    app: UiApp, port: int = 0, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve *app* on 127.0.0.1:*port* (0: a free one) until cancelled; reports the
    launch URL (with the one-time token) once listening."""

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(functools.partial(
            hypercorn.trio.serve, cast(Any, app), hypercorn_config(port), mode="asgi"))
        app.guard.port = int(binds[0].rsplit(":", 1)[1])
        task_status.started(app.guard.launch_url())
