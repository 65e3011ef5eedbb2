"""A small plain-ASGI toolkit for the local web interface: requests, responses, routes.

No framework: the interface needs a dozen routes, JSON, a byte stream and server-sent
events, and every response must carry the headers of :mod:`node.ui.security`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .security import SECURITY_HEADERS

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 1024 * 1024  # a reflection, a setting, a code
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # an import or a backup to restore


class UiHttpError(Exception):
    """A request that cannot be served: its status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Request:
    """One HTTP request as the local web interface reads it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    receive: Receive
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> Request:
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                         keep_blank_values=True)
        return cls(scope["method"], scope["path"], query, headers, receive)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise UiHttpError(400, f"{name} given more than once")
        return values[0]

    def args(self, name: str) -> list[str]:
        return [v for v in self.query.get(name, []) if v]

    async def body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        declared = self.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise UiHttpError(413, f"at most {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise UiHttpError(400, "the browser went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise UiHttpError(413, f"at most {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json(self) -> dict[str, Any]:
        if not self.headers.get("content-type", "").startswith("application/json"):
            raise UiHttpError(415, "send application/json")
        try:
            value = json.loads(await self.body())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise UiHttpError(400, "not JSON") from None
        if not isinstance(value, dict):
            raise UiHttpError(400, "expected a JSON object")
        return value


@dataclass
class Response:
    """One HTTP response the local web interface sends."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None

    async def send(self, send: Send, *, cache: bool = False) -> None:
        headers = [(b"content-type", self.content_type.encode()), *SECURITY_HEADERS,
                   (b"cache-control", b"private, max-age=3600" if cache else b"no-store"),
                   *self.headers]
        if self.stream is None:
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if self.stream is None:
            await send({"type": "http.response.body", "body": self.body})
            return
        async for chunk in self.stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False).encode())


def error_response(status: int, reason: str) -> Response:
    return json_response({"error": reason}, status)


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes as (method, pattern) pairs; ``{name}`` matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9_.:%-]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def find(self, request: Request) -> Handler:
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if method == request.method or (method == "GET" and request.method == "HEAD"):
                request.params = match.groupdict()
                return handler
            allowed = True
        if allowed:
            raise UiHttpError(405, "method not allowed")
        raise UiHttpError(404, "not found")
