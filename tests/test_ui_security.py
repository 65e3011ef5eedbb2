"""`mirror ui` lets only the person's own browser in: token, cookie, Host, CSRF, CSP.

Each test plays one attacker: another local user without the link, a second use of
the link, a web page on another site (Origin), a DNS-rebinding page (Host), a form
post without the page's CSRF token, a page trying to frame or script it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from node.ui.run import LAUNCH_FILE, launch_file
from node.ui.security import CONTENT_SECURITY_POLICY
from tests.ui_helpers import running_ui

READS = ["/", "/api/session", "/api/status", "/api/journal", "/api/tensions", "/api/patterns",
         "/api/mood", "/api/graph", "/api/evolution", "/api/settings", "/api/on-this-day",
         "/api/export?format=json", "/api/events"]
WRITE = ("POST", "/api/reflections", {"text": "canary-write-attempt", "tags": []})


async def test_without_the_link_nothing_is_readable_or_writable(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient() as stranger:
        for path in READS:
            response = await stranger.get(ui.base + path)
            assert response.status_code == 401, path
            assert "canary" not in response.text
        response = await stranger.request(WRITE[0], ui.base + WRITE[1], json=WRITE[2],
                                          headers={"Origin": ui.base})
        assert response.status_code == 401
        assert (await ui.app.backend.browse.timeline.rows()) == []
        # a forged cookie is no session either
        stranger.cookies.set("mirror_ui", "guessed")
        assert (await stranger.get(ui.base + "/api/journal")).status_code == 401


async def test_the_link_works_once_and_becomes_a_strict_httponly_cookie(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient() as browser:
        first = await browser.get(ui.launch_url)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert ui.launch_url.split("token=")[1] not in cookie
        assert (await browser.get(ui.base + "/api/journal")).status_code == 200
        async with httpx.AsyncClient() as second:
            again = await second.get(ui.launch_url)
            assert again.status_code == 403
            assert "set-cookie" not in again.headers
            assert (await second.get(ui.base + "/api/journal")).status_code == 401
        wrong = ui.launch_url[:-3] + "xyz"
        async with httpx.AsyncClient() as third:
            assert (await third.get(wrong)).status_code == 403


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "127.0.0.1:1", "localhost", "[::1]:{port}", ""])
async def test_a_foreign_host_header_is_refused(tmp_path: Path, host: str) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own Host."""
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient() as browser:
        await ui.session(browser)
        port = ui.app.guard.port
        response = await browser.get(ui.base + "/api/journal",
                                     headers={"Host": host.format(port=port)})
        assert response.status_code == 421
        # even the launch link is refused under another name
        async with httpx.AsyncClient() as fresh:
            launch = await fresh.get(ui.base.replace("127.0.0.1", "127.0.0.1") + "/?token=x",
                                     headers={"Host": host.format(port=port)})
            assert launch.status_code == 421
    async with running_ui(tmp_path / "home2") as ui, httpx.AsyncClient() as browser:
        ok = await browser.get(ui.launch_url, headers={"Host": f"localhost:{ui.app.guard.port}"})
        assert ok.status_code == 303


async def test_every_change_needs_origin_csrf_token_and_same_site(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient(timeout=120) as browser:
        csrf = await ui.session(browser)
        url = ui.base + WRITE[1]
        attempts = [
            {},  # a plain cross-site form post: no Origin of ours, no token
            {"Origin": "http://evil.example"},
            {"Origin": "http://evil.example", "X-Mirror-CSRF": csrf},
            {"Origin": ui.base},  # same origin but no token
            {"Origin": ui.base, "X-Mirror-CSRF": "wrong"},
            {"Origin": ui.base, "X-Mirror-CSRF": csrf, "Sec-Fetch-Site": "cross-site"},
            {"Origin": "null", "X-Mirror-CSRF": csrf},
        ]
        for headers in attempts:
            response = await browser.post(url, json=WRITE[2], headers=headers)
            assert response.status_code == 403, headers
        for method, path in [("DELETE", "/api/reflections/abcd"), ("PUT", "/api/settings/mode"),
                             ("PATCH", "/api/reflections/abcd"), ("POST", "/api/graph/edit")]:
            response = await browser.request(method, ui.base + path, json={},
                                              headers={"Origin": "http://evil.example"})
            assert response.status_code == 403, path
        assert (await ui.app.backend.browse.timeline.rows()) == []
        good = await browser.post(url, json=WRITE[2], headers={
            **ui.change_headers(csrf), "Sec-Fetch-Site": "same-origin"})
        assert good.status_code == 200
        assert [r.text for r in await ui.app.backend.browse.timeline.rows()] == [WRITE[2]["text"]]


async def test_no_cross_origin_reads_and_a_strict_csp_everywhere(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient() as browser:
        await ui.session(browser)
        for path in [p for p in READS if p != "/api/events"] + ["/static/app.js", "/nope"]:
            response = await browser.get(ui.base + path, headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in response.headers, path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
        preflight = await browser.options(ui.base + "/api/reflections", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code == 403  # not a safe method: refused outright
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_shipped_page_has_no_inline_script_style_or_external_url() -> None:
    from node.ui.server import load_static

    assets = load_static()
    assert {"index.html", "app.js", "app.css", "icon.svg"} <= set(assets)
    html = assets["index.html"][0].decode()
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    for name, (body, _) in assets.items():
        text = body.decode()
        for scheme in ("http://", "https://", "//cdn", "@import"):
            allowed = scheme == "http://" and "www.w3.org/2000/svg" in text
            assert scheme not in text.replace("http://www.w3.org/2000/svg", "") or allowed, \
                f"{name} names {scheme}"
    assert "innerHTML" not in assets["app.js"][0].decode()


async def test_static_names_cannot_leave_the_package(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui, httpx.AsyncClient() as browser:
        await ui.session(browser)
        for path in ["/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/server.py",
                     "/static/", "/static/..%2F..%2Fetc%2Fpasswd"]:
            response = await browser.get(ui.base + path)
            assert response.status_code == 404, path


def test_the_browser_is_opened_through_a_private_file(tmp_path: Path) -> None:
    """Other local users can read command lines (/proc), not a 0600 file in a 0700 home."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    url = "http://127.0.0.1:5555/?token=secret\"><script>"
    path = launch_file(home, url)
    assert path.name == LAUNCH_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "<script>" not in text and "token=secret&quot;&gt;&lt;script&gt;" in text
    assert path.as_uri().startswith("file://") and "secret" not in path.as_uri()


async def test_the_server_listens_on_loopback_only(tmp_path: Path) -> None:
    async with running_ui(tmp_path / "home") as ui:
        assert ui.base.startswith("http://127.0.0.1:")
        assert ui.app.guard.port > 0
        assert "Mirror is open at http://127.0.0.1:" in ui.output
