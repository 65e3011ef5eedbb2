"""HTTP answers from an ASGI application: the one error type, the one way to send a
response, and the lifespan protocol (nothing to start or stop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]


class HttpError(Exception):
    """A request answered with *status* (4xx/5xx), *message* and extra *headers*."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: list[tuple[bytes, bytes]] = list(headers or ())


async def respond(send: Send, status: int, body: bytes, headers: Headers = (), *,
                  head: bool = False) -> None:
    """Answer with *status*, *headers* then ``content-length``, and *body* (left out,
    length kept, for a HEAD request)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def reject_upgrade(send: Send, status: int, body: bytes) -> None:
    """Refuse a WebSocket upgrade with an HTTP answer (ASGI's denial response)."""
    await send({
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message.get("type") == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
