"""The Commons from the person's side: reading (the cache, refreshed from the default
server when it is reachable), publishing (recorded in the consent ledger first),
withdrawing. Nothing here asks for confirmation: a front end shows exactly what
will leave the device and asks before it calls :func:`publish_item`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from crdt.commons import CommonsError, CommonsItem, check_fields
from crdt.insights import Scope
from crdt.values import format_timestamp, utc_now

from ..commons.home import (
    AuthorKeys,
    CommonsServer,
    ConsentLedger,
    LedgerEntry,
    ServerList,
    create_item,
    load_cache,
    normalise_url,
)
from ..commons.sync import CommonsUnavailable, SyncReport, fetch_info, forget_withdrawn, post_json
from ..commons.sync import sync_commons as sync_with
from ..config import is_loopback_or_lan
from ..core import MirrorCore
from ..errors import MirrorError, UsageError

THREAD_KINDS = ("post", "insight")


@dataclass(frozen=True)
class CommonsSyncOutcome:
    """One sync with the default server: its report, or why there was none (offline),
    and a note when the sync worked but the check for withdrawn items did not."""

    report: SyncReport | None
    offline: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class CommonsView:
    """What the cache holds (withdrawn items left out), after the sync if there was one."""

    items: tuple[CommonsItem, ...]
    sync: CommonsSyncOutcome | None  # None: not synced (offline asked, or no server known)
    thread: CommonsItem | None = None  # the thread asked for

    def in_thread(self) -> tuple[CommonsItem, ...]:
        if self.thread is None:
            return ()
        return tuple(i for i in self.items if i.thread == self.thread.doc_id)


@dataclass(frozen=True)
class Published:
    """One insight this device published to a Commons server."""

    doc_id: str
    server: str
    sync: CommonsSyncOutcome  # sync.report None: saved here, sent at the next sync

    @property
    def sent(self) -> bool:
        return self.sync.report is not None


@dataclass(frozen=True)
class Withdrawal:
    """An unpublished insight and what each server said."""

    entry: LedgerEntry
    already: bool  # it had been withdrawn before
    held: bool  # the server held it (and deleted it)


def short_id(doc_id: str) -> str:
    return doc_id.rsplit("/", 1)[-1]


def now() -> str:
    return format_timestamp(utc_now())


def check_mode(core: MirrorCore, url: str) -> None:
    if core.config.mirror_mode == "local" and not is_loopback_or_lan(url):
        raise UsageError(
            f"local mode opens no connection beyond this machine and the LAN ({url}); "
            "switch with 'mirror mode hybrid' to use a public Commons server")


def default_server(core: MirrorCore) -> CommonsServer:
    server = ServerList(core.home.path).default()
    check_mode(core, server.url)
    return server


async def add_server(core: MirrorCore, url: str, expected_key: str | None) -> CommonsServer:
    """Add a Commons server (and make it the default), pinning the key it announces."""
    url = normalise_url(url)
    check_mode(core, url)
    info = await fetch_info(url)
    key = bytes.fromhex(info["server_key"])
    if expected_key and expected_key.lower() != key.hex():
        raise MirrorError(f"{url} has server key {key.hex()[:16]}…, not the one given")
    server = CommonsServer(url, key)
    ServerList(core.home.path).add(server)
    return server


async def sync_now(core: MirrorCore) -> CommonsSyncOutcome:
    """Sync with the default server; the items the ledger says were sent are marked so."""
    server = default_server(core)
    ledger = await ConsentLedger.open(core.store)
    authors = AuthorKeys(core.home.path)
    try:
        report = await sync_with(core.store, server, authors, ledger.withdrawn())
    except CommonsUnavailable as exc:
        return CommonsSyncOutcome(None, offline=str(exc))
    warning = None
    try:
        report.forgotten = await forget_withdrawn(core.store, server, authors)
    except CommonsUnavailable as exc:  # the sync itself succeeded: note it, go on
        warning = str(exc)
    sent_at = now()
    for doc_id in report.sent:
        entry = ledger.get(doc_id)
        if entry is not None and not entry.sent_at:
            ledger.record(replace(entry, sent_at=sent_at))
    await core.store.wait_durable()
    return CommonsSyncOutcome(report, warning=warning)


async def cached(core: MirrorCore) -> list[CommonsItem]:
    ledger = await ConsentLedger.open(core.store)
    return await load_cache(core.store, ledger.withdrawn())


def resolve_thread(items: list[CommonsItem] | tuple[CommonsItem, ...], ref: str) -> CommonsItem:
    ref = ref.strip().removeprefix("/")
    hits = [i for i in items if i.doc_id == ref or i.doc_id.endswith("/" + ref)
            or short_id(i.doc_id).startswith(ref) or i.doc_id.removeprefix("commons/") == ref]
    threads = [i for i in hits if i.kind in THREAD_KINDS] or hits
    if not threads:
        raise UsageError(f"no cached thread matches {ref!r} (try 'mirror commons read')")
    if len(threads) > 1:
        raise UsageError(f"{ref!r} matches {len(threads)} items; give more of the id")
    return threads[0]


async def read(core: MirrorCore, thread: str | None = None, *, offline: bool = False
               ) -> CommonsView:
    """The cached Commons, synced first unless *offline* or no server is known."""
    sync = None
    if not offline and ServerList(core.home.path).all():
        sync = await sync_now(core)
    items = await cached(core)
    found = resolve_thread(items, thread) if thread else None
    return CommonsView(tuple(items), sync, found)


async def thread_for(core: MirrorCore, ref: str) -> tuple[CommonsItem, CommonsSyncOutcome | None]:
    """The thread *ref* names: from the cache, else after a sync."""
    try:
        return resolve_thread(await cached(core), ref), None
    except UsageError:
        sync = await sync_now(core)
        return resolve_thread(await cached(core), ref), sync


def checked(kind: str, fields: dict[str, str]) -> dict[str, str]:
    """*fields* if a *kind* item may carry them; UsageError with the reason otherwise."""
    try:
        check_fields(kind, fields)
    except CommonsError as exc:
        raise UsageError(str(exc)) from None
    return fields


async def publish_item(core: MirrorCore, kind: str, fields: dict[str, str], what: str,
                       summary: str) -> Published:
    """Sign and save the item, record it in the consent ledger, then try to send it."""
    server = default_server(core)
    author = AuthorKeys(core.home.path).default()
    stored = await create_item(core.store, author, kind, checked(kind, fields))
    ledger = await ConsentLedger.open(core.store)
    ledger.record(LedgerEntry(stored.doc_id, what, summary[:120], server.url, now()))
    await core.store.wait_durable()
    sync = await sync_now(core)
    return Published(stored.doc_id, server.url, sync)


def insight_summary(kind: str, found: Any) -> tuple[str, str]:
    """Title and body of a shared insight: names, counts and trends — never reflection text."""
    if kind == "pattern":
        title = f"Pattern: {found.label}"
        body = (f"A recurring {found.kind} ({found.label}), seen in {found.count} reflections "
                f"from {found.first_seen[:7]} to {found.last_seen[:7]}.")
        return title, body
    a, b = found.poles
    weekly = " ".join(str(n) for n in found.weekly)
    body = (f"A tension between {a} and {b}: {found.occurrences} times, "
            f"status {found.status}, came back {found.episodes} times, mean intensity "
            f"{found.intensity:.1f} of 5.\nWeekly counts, oldest first: {weekly}")
    return f"Tension: {a} vs {b}", body


async def insight_draft(core: MirrorCore, kind: str, ref: str) -> tuple[str, str]:
    """(title, body) of the pattern or tension *ref*, from the shared scope only
    (derived from reflections not marked private), ready to be shown and published."""
    found: list[Any]
    if kind == "pattern":
        found = [p for p in await core.understanding.patterns(Scope.SHARED, minimum=1)
                 if ref in (p.key, p.label)]
    elif kind == "tension":
        found = [t for t in await core.understanding.tensions(Scope.SHARED)
                 if ref in (t.key, f"{t.poles[0]} vs {t.poles[1]}")]
    else:
        raise UsageError(f"an insight is a pattern or a tension (got {kind!r})")
    if not found:
        raise UsageError(f"no {kind} {ref!r} (see 'mirror {kind}s --json' for ids)")
    return insight_summary(kind, found[0])


async def published(core: MirrorCore) -> list[LedgerEntry]:
    return (await ConsentLedger.open(core.store)).entries()


async def published_entry(core: MirrorCore, ref: str) -> LedgerEntry:
    hits = [e for e in await published(core) if short_id(e.doc_id).startswith(ref)
            or e.doc_id == ref]
    if len(hits) != 1:
        raise UsageError(f"{ref!r} matches {len(hits)} published items (see 'mirror published')")
    return hits[0]


async def withdraw(core: MirrorCore, ref: str) -> Withdrawal:
    """Withdraw a published item: marked withdrawn here first (never offered again, even
    if the request fails), then the server is asked to delete it."""
    entry = await published_entry(core, ref)
    if entry.withdrawn_at:
        return Withdrawal(entry, already=True, held=False)
    author = AuthorKeys(core.home.path).owner_of(entry.doc_id)
    if author is None:
        raise MirrorError("the author key of that item is not in this home")
    ledger = await ConsentLedger.open(core.store)
    ledger.record(replace(entry, withdrawn_at=now()))
    await core.store.wait_durable()
    answer = await post_json(entry.server, "/api/v1/withdraw", {
        "doc_id": entry.doc_id, "signature": author.withdrawal(entry.doc_id).hex()})
    return Withdrawal(entry, already=False, held=answer.get("held") is not False)
