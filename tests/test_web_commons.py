"""The Commons web view and HTTP API: escaping (in headless Chromium), headers, hostile input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from commons_server.limits import MAX_HTTP_BODY_BYTES
from crdt.commons import (
    CommonsError,
    decode_bundle,
    make_doc_id,
    verify_bundle,
)
from tests.commons_helpers import mirror, running_commons

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
XSS_TITLE = "<script>document.title='PWNED'</script>Hello"
XSS_BODY = "<img src=x onerror=\"document.body.innerHTML='PWNED'\"> & <b>bold?</b>"


async def _chromium(*args: str, profile: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    result = await trio.run_process([CHROMIUM, *flags, *args], capture_stdout=True,
                                    capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return str(result.stdout.decode("utf-8", errors="replace"))


async def test_xss_attempt_renders_as_text_in_chromium(
    tmp_path: Path, database: str | None
) -> None:
    if not HAVE_CHROMIUM:
        print(f"SKIP reason: no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with running_commons(tmp_path / "server", database=database) as server:
        alice = tmp_path / "alice"
        assert (await mirror(alice, "commons", "add", server.url))[0] == 0
        status, out = await mirror(alice, "commons", "post", "--title", XSS_TITLE,
                                   "--body", XSS_BODY, "--yes")
        assert status == 0, out
        thread = next(iter(server.hub.docs))
        url = server.url + "/" + thread.removeprefix("commons/")
        dom = await _chromium("--dump-dom", url, profile=tmp_path / "profile-1")
        # The DOM holds the attack as text: escaped markup, no script or img element.
        assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;Hello" in dom
        assert "&lt;img src=x onerror=" in dom
        assert "<script" not in dom.lower() and "<img" not in dom.lower()
        assert "PWNED</title>" not in dom and "<body>PWNED" not in dom
        index = await _chromium("--dump-dom", server.url + "/", profile=tmp_path / "profile-2")
        assert "&lt;script&gt;" in index and "<script" not in index.lower()
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "commons-xss.png"
        shot.unlink(missing_ok=True)
        await _chromium(f"--screenshot={shot}", "--window-size=1200,900", url,
                        profile=tmp_path / "profile-3")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_pages_carry_strict_security_headers(
    tmp_path: Path, database: str | None
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server, \
            httpx.AsyncClient() as client:
        for path in ("/", "/moderation", "/api/v1/threads", "/api/v1/info", "/nope"):
            response = await client.get(server.url + path)
            csp = response.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"


HOSTILE_POSTS = [
    # (path, body bytes, content type, expected status)
    ("/api/v1/withdraw", b"{not json", "application/json", 400),
    ("/api/v1/withdraw", b"[1, 2]", "application/json", 400),
    ("/api/v1/withdraw", b'{"doc_id": 5, "signature": "00"}', "application/json", 400),
    ("/api/v1/withdraw", b'{"doc_id": "x", "signature": "zz"}', "application/json", 400),
    ("/api/v1/withdraw", json.dumps({"doc_id": "../../etc/passwd", "signature": "00" * 64})
     .encode(), "application/json", 400),
    ("/api/v1/withdraw", json.dumps({"doc_id": make_doc_id("post", b"\1" * 32, b"\2" * 8),
                                     "signature": "00" * 64}).encode(), "application/json", 403),
    ("/api/v1/withdraw", b"\xff\xfe", "application/json", 400),
    ("/api/v1/withdraw", b"[" * 100_00, "application/json", 400),
    ("/api/v1/withdraw", b"{}", "text/plain", 415),
    ("/api/v1/withdraw", b"{" + b" " * MAX_HTTP_BODY_BYTES + b"}", "application/json", 413),
    ("/api/v1/moderation", b'{"action": "hide"}', "application/json", 400),
    ("/api/v1/moderation", json.dumps({
        "action": "hide", "target": "t", "reason": "r", "at": "x", "operator": "00" * 32,
        "signature": "00" * 64}).encode(), "application/json", 403),
    ("/", b"{}", "application/json", 405),
]

HOSTILE_GETS = [
    ("/post/../../etc/passwd", 404),
    ("/post/%2e%2e/%2e%2e", 404),
    ("/post/" + "a" * 64 + "/" + "b" * 16 + "/", 404),
    ("/post/" + "A" * 64 + "/" + "b" * 16, 404),
    ("/post/" + "a" * 64 + "/" + "b" * 16, 404),  # well-formed, absent
    ("/api/v1/threads/comment/" + "a" * 64 + "/" + "b" * 16, 404),
    ("/" + "x" * 400, 414),
    ("/?page=0", 400),
    ("/?page=-1", 400),
    ("/?page=abc", 400),
    ("/?page=1&page=2", 400),
    ("/api/v1/threads?page=99999999999999999999", 400),
    ("/api/v1/threads?page=" + "9" * 300, 414),
]


async def test_hostile_http_requests_get_clear_errors_and_change_nothing(
    tmp_path: Path, database: str | None
) -> None:
    async with running_commons(tmp_path / "server", database=database) as server, \
            httpx.AsyncClient() as client:
        for path, body, ctype, expected in HOSTILE_POSTS:
            response = await client.post(server.url + path, content=body,
                                         headers={"content-type": ctype})
            assert response.status_code == expected, (path, body[:60], response.text)
            if path.startswith("/api/"):
                assert "error" in response.json()
        for path, expected in HOSTILE_GETS:
            response = await client.get(server.url + path)
            assert response.status_code == expected, (path, response.text[:200])
        for method in ("PUT", "DELETE", "PATCH"):
            assert (await client.request(method, server.url + "/")).status_code == 405
        assert (await client.get(server.url + "/healthz")).text == "ok\n"
        assert server.hub.docs == {} and server.hub.withdrawn == set()
        assert await server.hub.moderation_log() == []


async def test_hostile_bytes_on_the_protocol_socket_close_the_session_only(
    tmp_path: Path, database: str | None,
) -> None:
    import httpx_ws

    garbage = [b"\x01\x01\x00\x00\x00\x05hello", b"\xff" * 6, b"\x02" + os.urandom(4096),
               b"\x01\x01\xff\xff\xff\xff", b"\x01\x07\x00\x00\x00\x00"]
    async with running_commons(tmp_path / "server", database=database) as server, \
            httpx.AsyncClient() as client:
        # An incomplete frame: the client gives up; the server ends that session alone.
        async with httpx_ws.aconnect_ws(server.url.replace("http", "ws") + "/v1/commons",
                                        client) as ws:
            await ws.send_bytes(b"\x01")
        for data in garbage:
            async with httpx_ws.aconnect_ws(server.url.replace("http", "ws") + "/v1/commons",
                                            client) as ws:
                await ws.send_bytes(data)
                with pytest.raises(httpx_ws.WebSocketDisconnect):
                    while True:
                        await ws.receive_bytes()
        async with httpx_ws.aconnect_ws(server.url.replace("http", "ws") + "/v1/commons",
                                        client) as ws:
            await ws.send_text("text is not the protocol")
            with pytest.raises(httpx_ws.WebSocketDisconnect):
                await ws.receive_bytes()
        with pytest.raises(httpx_ws.WebSocketUpgradeError):
            async with httpx_ws.aconnect_ws(server.url.replace("http", "ws") + "/v1/other",
                                            client):
                pass
        assert (await client.get(server.url + "/healthz")).status_code == 200
        assert server.hub.docs == {} and server.hub.stats.accepted_updates == 0
        # A real session still works afterwards.
        alice = tmp_path / "alice"
        assert (await mirror(alice, "commons", "add", server.url))[0] == 0
        assert (await mirror(alice, "commons", "post", "--title", "t", "--body", "b",
                             "--yes"))[0] == 0


@given(st.binary(max_size=600))
def test_bundles_parse_or_raise_commons_error(data: bytes) -> None:
    doc_id = make_doc_id("post", b"\3" * 32, b"\4" * 8)
    for attempt in (data, b"\x00\x00\x00\x01" + data, b"\x00\x00\x00\x01"
                    + len(data).to_bytes(4, "big") + data):
        try:
            verify_bundle(doc_id, attempt, b"\5" * 32, legacy=True)
        except CommonsError:
            pass
        try:
            decode_bundle(attempt)
        except CommonsError:
            pass


def test_chromium_is_where_ci_installs_it() -> None:
    if not HAVE_CHROMIUM:
        pytest.skip("no Chromium here; .ci/run installs it")
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    assert "Chromium" in out.stdout
