"""Who may talk to `mirror ui`: the person at this machine, through their browser, only.

Theory of operation. The server listens on 127.0.0.1, where every local user and every
web page the browser shows can reach it. So nothing is served without a session:

1. ``mirror ui`` makes a one-time *launch token* (256 bits) and prints
   ``http://127.0.0.1:PORT/?token=…``; the browser is opened through a 0600 file in the
   0700 home (so the token is never on a command line other users can read in /proc).
2. The first request carrying the token gets a session cookie (``HttpOnly``,
   ``SameSite=Strict``, ``Path=/``) and a redirect to a URL without the token. The
   token is then spent: a second use is refused.
3. Every request must carry a known session cookie, and a ``Host`` header naming this
   server exactly (``127.0.0.1:PORT`` or ``localhost:PORT``): a DNS-rebinding page
   whose name resolves to 127.0.0.1 sends its own name and is refused.
4. Every state change (any method but GET/HEAD) also needs the session's CSRF token in
   the ``X-Mirror-CSRF`` header (a cross-site page cannot read it nor set the header
   without a CORS preflight this server never answers), an ``Origin`` of this server, and,
   where the browser sends it, ``Sec-Fetch-Site: same-origin``.
5. Every response carries a strict Content-Security-Policy (``default-src 'self'``, no
   inline script or style), ``nosniff``, ``frame-ancestors 'none'`` and ``no-referrer``.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

COOKIE_NAME = "mirror_ui"
CSRF_HEADER = "x-mirror-csrf"
TOKEN_BYTES = 32
MAX_SESSIONS = 16  # browsers of one person; the oldest goes first

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the status and a one-line reason for the page."""

    status: int
    reason: str


@dataclass
class UiGuard:
    """The launch token, the sessions and the checks of the module docstring."""

    port: int = 0
    launch_token: str = field(default_factory=lambda: secrets.token_urlsafe(TOKEN_BYTES))
    _sessions: dict[str, str] = field(default_factory=dict)  # session id -> CSRF token
    _spent: bool = False

    @property
    def origins(self) -> frozenset[str]:
        return frozenset({f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"})

    def launch_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.launch_token}"

    def host_allowed(self, host: str | None) -> bool:
        return host is not None and f"http://{host}" in self.origins

    def redeem(self, token: str) -> str | None:
        """A new session id for the launch *token*, once; None when wrong or spent."""
        if self._spent or not hmac.compare_digest(token.encode(), self.launch_token.encode()):
            return None
        self._spent = True
        return self.new_session()

    def new_session(self) -> str:
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        session = secrets.token_urlsafe(TOKEN_BYTES)
        self._sessions[session] = secrets.token_urlsafe(TOKEN_BYTES)
        return session

    def csrf_for(self, session: str | None) -> str | None:
        if session is None:
            return None
        for known, csrf in self._sessions.items():
            if hmac.compare_digest(known.encode(), session.encode()):
                return csrf
        return None

    def check(self, method: str, headers: dict[str, str], session: str | None) -> Refusal | None:
        """None when the request may proceed, else why not (headers lower-cased)."""
        if not self.host_allowed(headers.get("host")):
            return Refusal(421, "this server answers to 127.0.0.1 and localhost only")
        csrf = self.csrf_for(session)
        if csrf is None:
            return Refusal(401, "open the link that `mirror ui` printed")
        if method in SAFE_METHODS:
            return None
        if headers.get("origin") not in self.origins:
            return Refusal(403, "a change must come from this page (Origin)")
        site = headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return Refusal(403, "a change must come from this page (Sec-Fetch-Site)")
        given = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), csrf.encode()):
            return Refusal(403, "a change needs this page's CSRF token")
        return None

    def cookie_header(self, session: str) -> bytes:
        return (f"{COOKIE_NAME}={session}; HttpOnly; SameSite=Strict; Path=/").encode()


def session_from_cookie(cookie: str | None) -> str | None:
    """The session id in a ``Cookie`` header, if any."""
    if not cookie:
        return None
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME and value:
            return value
    return None
