"""Every limit of the Commons server, with its unit in its name.

The defaults suit one small community server; ``mirror-commons`` takes each as a
flag (``--author-updates-per-minute``) or an environment variable
(``MIRROR_COMMONS_AUTHOR_UPDATES_PER_MINUTE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

MAX_HTTP_BODY_BYTES: Final = 16 * KIB
"""A POST body (withdrawal or moderation request); more is refused with 413."""
MAX_HTTP_HEADER_BYTES: Final = 16 * KIB
MAX_PATH_CHARS: Final = 300
"""Longer request paths are refused with 414 before routing."""
MAX_COMMONS_FRAME_BYTES: Final = 1 * MIB
"""Largest protocol frame body on a Commons session (documents are small)."""
MAX_CATALOGUE_DOCS: Final = 10_000
"""Newest documents listed to a reader; older ones stay readable on the web view."""
MAX_LISTED_IDS: Final = 10_000
"""Most ids in each list of ``GET /api/v1/withdrawn`` (withdrawn, hidden, blocked)."""
MAX_CHECK_IDS: Final = 2_000
"""Ids a reader may ask about in one ``POST /api/v1/withdrawn``."""
MAX_CHECK_BODY_BYTES: Final = 256 * KIB
"""The body of one ``POST /api/v1/withdrawn`` (2,000 ids take under 200 KiB)."""
MAX_REMEMBERED_REFUSALS: Final = 10_000
"""Comments and reactions refused because their thread is gone, remembered (in
memory only) so their author's node is not asked for them at every sync; the
oldest are forgotten beyond this and, if offered again, refused again."""
THREADS_PER_PAGE: Final = 50
MAX_PAGE: Final = 10_000
MAX_COMMENTS_PER_PAGE: Final = 500
MODERATION_LOG_PAGE: Final = 200
MAX_REASON_CHARS: Final = 500
MODERATION_CLOCK_SKEW_S: Final = 600
"""An operator action's timestamp must be this close to the server's clock."""
SESSION_QUEUE_MESSAGES: Final = 1024
"""Sealed protocol frames queued per session; a reader further behind is dropped."""
DOC_CACHE_ENTRIES: Final = 2048
FOLLOW_SWEEP_S: Final = 15.0
"""How often an instance of several looks at the shared store itself for changes it
was not told of (an instance that died between its COMMIT and its announcement)."""
MAX_PENDING_NOTICES: Final = 10_000
"""Documents other instances changed, noted before this one applied them; beyond, it
re-reads every document instead (a resync)."""
"""Materialised documents kept in memory (the rest are rebuilt from the database)."""
SHUTDOWN_GRACE_S: Final = 5.0
IDLE_TIMEOUT_S: Final = 60.0
"""A session silent this long is closed."""


@dataclass(frozen=True)
class CommonsLimits:
    """Rate limits: token buckets that refill at ``*_per_minute`` and hold as many."""

    author_updates_per_minute: int = 60
    """Signed updates accepted per author key."""
    address_updates_per_minute: int = 240
    """Signed updates accepted per client address (all authors behind it)."""
    address_requests_per_minute: int = 600
    """HTTP requests and WebSocket sessions per client address."""
    max_sessions_per_address: int = 32
    """Simultaneous WebSocket sessions per client address."""

    def __post_init__(self) -> None:
        for name in ("author_updates_per_minute", "address_updates_per_minute",
                     "address_requests_per_minute", "max_sessions_per_address"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
