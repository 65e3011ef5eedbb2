"""The read-only web view: HTML with no scripts, every piece of user content escaped.

Pages are built from strings with :func:`esc` (``html.escape`` with quotes) around
every value that came from a document or a request; nothing else is
interpolated. The Content-Security-Policy allows no scripts at all, only this
server's stylesheet, so even a missed escape could not run code.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any, Final

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

STYLESHEET: Final = b"""
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; background: #fdfcf9; line-height: 1.5; }
a { color: #2a5d8f; }
header, footer { color: #666; font-size: 0.9rem; }
.item { border-bottom: 1px solid #e4e0d8; padding: 0.6rem 0; }
.meta { color: #777; font-size: 0.85rem; }
.body { white-space: pre-wrap; overflow-wrap: anywhere; }
.comment { margin-left: 1.2rem; border-left: 3px solid #e4e0d8; padding-left: 0.8rem; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.5rem; text-align: left; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def short_author(author: str) -> str:
    return author[:12]


def thread_path(doc_id: str) -> str:
    """``commons/post/<a>/<i>`` → ``/post/<a>/<i>`` (ids are validated hex: safe in a URL)."""
    return "/" + doc_id.removeprefix("commons/")


def page(title: str, body: str) -> bytes:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} · Mirror Commons</title>"
        "<link rel=\"stylesheet\" href=\"/style.css\"></head><body>"
        "<header><a href=\"/\">Mirror Commons</a> · <a href=\"/moderation\">moderation log</a>"
        " · read-only</header><main>"
        f"{body}</main><footer>Posts are signed by their pseudonymous authors; "
        "authors can withdraw them at any time.</footer></body></html>\n"
    ).encode()


def index_page(threads: Iterable[Mapping[str, Any]], page_no: int, more: bool) -> bytes:
    items = []
    for t in threads:
        items.append(
            f"<div class=\"item\"><a href=\"{esc(thread_path(t['doc_id']))}\">{esc(t['title'])}</a>"
            f"<div class=\"meta\">{esc(t['kind'])} by {esc(short_author(t['author']))} · "
            f"{esc(t['created_at'])} · {esc(t['comments'])} comments</div></div>"
        )
    nav = []
    if page_no > 1:
        nav.append(f"<a href=\"/?page={page_no - 1}\">newer</a>")
    if more:
        nav.append(f"<a href=\"/?page={page_no + 1}\">older</a>")
    body = (f"<h1>Threads</h1>{''.join(items) or '<p>Nothing here yet.</p>'}"
            f"<nav>{' · '.join(nav)}</nav>")
    return page("Threads", body)


def thread_page(t: Mapping[str, Any]) -> bytes:
    reactions = " ".join(f"{esc(k)} {esc(v)}" for k, v in t["reactions"].items())
    comments = "".join(
        f"<div class=\"item comment\"><div class=\"meta\">{esc(short_author(c['author']))} · "
        f"{esc(c['created_at'])}</div><div class=\"body\">{esc(c['body'])}</div></div>"
        for c in t["comments"]
    )
    body = (
        f"<article><h1>{esc(t['title'])}</h1>"
        f"<div class=\"meta\">{esc(t['kind'])} by {esc(short_author(t['author']))} · "
        f"{esc(t['created_at'])}</div>"
        f"<div class=\"body\">{esc(t['body'])}</div>"
        f"<p class=\"meta\">{reactions}</p></article>"
        f"<h2>Comments</h2>{comments or '<p>No comments yet.</p>'}"
    )
    return page(str(t["title"]), body)


def moderation_page(entries: Iterable[Mapping[str, Any]]) -> bytes:
    rows = "".join(
        f"<tr><td>{esc(e['at'])}</td><td>{esc(e['action'])}</td><td>{esc(e['target'])}</td>"
        f"<td>{esc(e['reason'])}</td></tr>"
        for e in entries
    )
    body = ("<h1>Moderation log</h1><p>Every operator action, signed by the operator key.</p>"
            "<table><tr><th>when</th><th>action</th><th>target</th><th>reason</th></tr>"
            f"{rows}</table>")
    return page("Moderation log", body)


def error_page(status: int, message: str) -> bytes:
    return page(f"{status}", f"<h1>{status}</h1><p>{esc(message)}</p>")
