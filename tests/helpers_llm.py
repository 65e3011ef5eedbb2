"""A fake model server on 127.0.0.1 port 0, for driving the real litellm client.

Speaks enough of Ollama (``/api/chat``, ``/api/generate``, ``/api/show``) and
of the OpenAI API (``/v1/chat/completions``, JSON or server-sent events) for
litellm. Behaviours: ``ok`` (answer with *reply*, split in pieces when the
client streams), ``hang`` (read the request, then never answer until the
server closes), ``stall`` (stream every piece of the answer but the last, then
nothing until the server closes), ``malformed`` (a 200 whose body is not JSON), ``unauthorized``
(a 401 whose body echoes the bearer token, to prove it is redacted).
Every request is recorded (path, JSON body, headers). Threaded, so it serves
a client running on any thread; loopback only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = (
    "You wrote “the rent still eats everything”. Money and control sit side by side here. "
    "What is it like to hold both?"
)


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeLLM:
    mode: str = "ok"
    reply: str | Callable[[dict[str, Any]], str] = DEFAULT_REPLY
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chats(self) -> list[Recorded]:
        return [r for r in self.requests if not r.path.endswith("/api/show")]

    def text_for(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply


def _pieces(text: str, n: int = 4) -> list[str]:
    size = max(1, len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, data: Any) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._json(200, {"models": [{"name": "tiny"}], "data": [{"id": "tiny"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            # Header names are case-insensitive (openai 3.x sends 'authorization'): kept lower.
            fake.requests.append(Recorded(self.path, body,
                                          {k.lower(): v for k, v in self.headers.items()}))
            if self.path.endswith("/api/show"):
                self._json(200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                                 "details": {"family": "tiny"}, "model_info": {}})
                return
            if fake.mode == "hang":
                fake.release.wait()
                self.close_connection = True
                return
            if fake.mode == "malformed":
                garbage = b"{this is not json"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(garbage)))
                self.end_headers()
                self.wfile.write(garbage)
                return
            if fake.mode == "unauthorized":
                token = self.headers.get("Authorization", "")
                self._json(401, {"error": {"message": f"invalid key {token}",
                                           "type": "invalid_request_error"}})
                return
            text = fake.text_for(body)
            stream = bool(body.get("stream"))
            if "/api/" in self.path:
                self._ollama(text, stream, body)
            else:
                self._openai(text, stream, body)

        def _ollama(self, text: str, stream: bool, body: dict[str, Any]) -> None:
            chat = self.path.endswith("/api/chat")
            model = body.get("model", "tiny")

            def msg(piece: str, done: bool) -> dict[str, Any]:
                out: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z",
                                       "done": done}
                if chat:
                    out["message"] = {"role": "assistant", "content": piece}
                else:
                    out["response"] = piece
                if done:
                    out.update(done_reason="stop", prompt_eval_count=5, eval_count=7)
                return out

            if not stream:
                self._json(200, msg(text, True))
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            pieces = _pieces(text)
            for i, piece in enumerate(pieces):
                if fake.mode == "stall" and i == len(pieces) - 1:
                    fake.release.wait()
                    self.close_connection = True
                    return
                self.wfile.write(json.dumps(msg(piece, False)).encode() + b"\n")
                self.wfile.flush()
            self.wfile.write(json.dumps(msg("", True)).encode() + b"\n")
            self.close_connection = True

        def _openai(self, text: str, stream: bool, body: dict[str, Any]) -> None:
            model = body.get("model", "tiny")
            if not stream:
                self._json(200, {
                    "id": "c1", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                })
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, piece in enumerate([*_pieces(text), None]):
                delta = {} if piece is None else {"content": piece}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                         "model": model, "choices": [{"index": 0, "delta": delta,
                         "finish_reason": "stop" if piece is None else None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

    return Handler


@contextmanager
def fake_llm(mode: str = "ok", reply: str | Callable[[dict[str, Any]], str] = DEFAULT_REPLY
             ) -> Iterator[FakeLLM]:
    """Serve a :class:`FakeLLM` on 127.0.0.1 (port 0) for the block."""
    fake = FakeLLM(mode=mode, reply=reply)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def unused_port() -> int:
    """A loopback port with nothing listening (bound, then closed)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
