"""MirrorCore: a running node over one home — store, journal, settings and engine.

Everything a device does goes through here; the CLI and the REPL are thin
views over it. Layer 1 needs nothing else: no network, no server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import trio

from crdt import (
    DocStore,
    RefreshResult,
    ScrubResult,
    SourceKind,
    StoredDoc,
    SyncClass,
    UpdateSource,
    open_store,
)
from crdt.crypto_at_rest import BlobCipher
from crdt.insights import Scope
from crdt.journal import KIND as JOURNAL_KIND
from crdt.journal import Journal, Mirrorback, Reflection, read_one, shard_ids, shard_size
from crdt.settings import Settings
from crdt.values import utc_now

from .config import Config, read_config
from .engine.base import Engine, EngineNotice, MirrorbackRequest
from .engine.derive import Touched
from .engine.understanding import Understanding
from .engines import engine_for, enricher_for
from .errors import ConfigError, ScrubIncompleteError
from .home import Home
from .identity import forget_sealing_key, register_sealing_key
from .journal.tags import inline_tags, with_inline_tags
from .refresh import REFRESH_INTERVAL_S, RefreshPublisher

log = logging.getLogger("mirror.core")

MAX_REPAIR_ROUNDS = 3  # re-derive, look again: another process may be writing meanwhile
PAST_FOR_ENGINE = 50
JOURNAL_CLASS_SETTING = "journal_sync_class"


@dataclass(frozen=True)
class Counts:
    reflections: int
    private: int
    documents: int


@dataclass(frozen=True)
class ConfigProblem:
    """Why the home's config.json is not in use, and what it says.

    ``written`` is the file's content (each value of the right type, the whole
    invalid), or None when not even that could be read (not JSON, an unknown
    setting, a value of the wrong type): then only an edit of the file fixes it.
    """

    error: ConfigError
    written: Config | None
    path: Path

    def how_to_fix(self) -> str:
        if self.written is None:
            return (f"edit {self.path}, or move it aside to start from the defaults "
                    f"(mv {self.path} {self.path}.bad)")
        return f"set the values with mirror mode / mirror engine, or edit {self.path}"


@dataclass(frozen=True)
class Arrival:
    """Reflections that appeared in this process because another one wrote them."""

    reflections: tuple[Reflection, ...]
    source: str


class MirrorCore:
    """The node's services over an open store. Create with :func:`open_core`."""

    def __init__(self, home: Home, config: Config, store: DocStore, settings: Settings) -> None:
        self.home = home
        self.config = config
        self.store = store
        self.settings = settings
        share = settings.get(JOURNAL_CLASS_SETTING, SyncClass.LOCAL.value)
        self.journal = Journal(store, share_class=SyncClass.parse(str(share)))
        self.engine: Engine = engine_for(config, home)
        # the source of a sync session's changes -> the peer device's name, for
        # "2 reflections arrived from laptop" (filled in by the sync runner)
        self.peer_names: dict[UpdateSource, str] = {}
        self.understanding = Understanding(store, self.journal)
        # the one loop that looks at what other processes wrote (node.refresh)
        self.refresher = RefreshPublisher(store)
        self.understanding.enricher = enricher_for(config, home)
        # Reflections this process deleted itself (delete() already forgot and
        # scrubbed them): follow_peer_deletes does not count them as a peer's.
        self._deleted_here: set[str] = set()
        # Set when open_core(tolerate_bad_config=True) met an invalid config.json:
        # self.config is then the defaults (local, offline, no sync: nothing leaves).
        self.config_problem: ConfigProblem | None = None

    # ------------------------------------------------------------------ settings

    def config_to_change(self) -> Config:
        """The config a change starts from: the one in use, or, while config.json is
        invalid, what the file says (so a fix keeps the person's other settings)."""
        problem = self.config_problem
        if problem is None:
            return self.config
        if problem.written is None:
            raise ConfigError(f"{problem.error}; {problem.how_to_fix()}")
        return problem.written

    def save_config(self, new: Config) -> None:
        """Validate and save *new* and use it from now on (repairs an invalid file)."""
        self.home.save_config(new.validate())
        self.config = new
        self.config_problem = None
        self.engine = engine_for(new, self.home)
        self.understanding.enricher = enricher_for(new, self.home)

    # ------------------------------------------------------------------ reflecting

    async def reflect(
        self,
        text: str,
        *,
        tags: Sequence[str] = (),
        private: bool = False,
        at: datetime | None = None,
    ) -> Reflection:
        """Save a reflection and learn from it; returns once both are on disk. The
        ``#tags`` written in the text are tags too."""
        reflection = await self.journal.add(text, tags=with_inline_tags(tags, text),
                                            private=private, created_at=at)
        x = await self.understanding.on_reflection(reflection)
        # The records just written were read before this process saw what others
        # wrote meanwhile: one may carry a quote another process has since deleted
        # (node/engine/evidence.py). Then its words are in this write, live or
        # not, and the record may need deriving again; both are done here.
        only = {scope: Touched.of(x) for scope in self.understanding.scopes_for(x)}
        written = await self.understanding.evidence_in(only)
        await self.store.refresh()
        quoted_deleted = not await self.understanding.evidence_holds(written)
        if await self._repair_stale(only) or quoted_deleted:
            scrubbed = await self.store.scrub_deleted()
            if not scrubbed.complete:
                log.warning("scrubbing words deleted meanwhile: %s", scrubbed.describe())
        return reflection

    async def _repair_stale(self, only: Mapping[Scope, Touched] | None = None) -> bool:
        """Look at what other processes wrote, then derive again the records whose
        evidence quotes what the journal no longer says; True if any was."""
        repaired = False
        for _ in range(MAX_REPAIR_ROUNDS):
            await self.store.refresh()
            if not await self.understanding.repair_stale(only):
                break
            repaired = True
        return repaired

    async def edit(
        self, ref: str, *, text: str | None = None, tags: Sequence[str] | None = None
    ) -> Reflection:
        """Change a reflection's text or tags, then learn it again: what the engine
        found in the old text stops counting at once."""
        after, scrubbed = await self.edit_and_scrub(ref, text=text, tags=tags)
        if scrubbed is not None:
            self._check_scrub(f"edited {after.id}, but the old words", scrubbed)
        return after

    async def edit_and_scrub(
        self, ref: str, *, text: str | None = None, tags: Sequence[str] | None = None
    ) -> tuple[Reflection, ScrubResult | None]:
        """:meth:`edit`, returning what scrubbing the old words left (None: the text
        did not change) instead of raising when some are left. The ``#tags`` of a
        new text join the tags (those given, or those it had)."""
        _, before = await self.journal.find(ref)
        if text is not None and (tags is not None or inline_tags(text)):
            tags = with_inline_tags(before.tags if tags is None else tags, text)
        after = await self.journal.edit(before.id, text=text, tags=tags)
        await self.understanding.on_edit(before, after)
        if after.text == before.text:
            return after, None
        # the old words leave this device's file too
        await self._repair_stale()
        return after, await self.store.scrub_deleted()

    async def delete(self, ref: str) -> Reflection:
        """Delete a reflection and everything the engine learned from it (its counts,
        its evidence); the person's graph edits stay. Its text, mirrorback and
        quotes are then scrubbed from the database file (:meth:`DocStore.scrub_deleted`)."""
        reflection, scrubbed = await self.delete_and_scrub(ref)
        self._check_scrub(f"deleted {reflection.id}, but its words", scrubbed)
        return reflection

    async def delete_and_scrub(self, ref: str) -> tuple[Reflection, ScrubResult]:
        """:meth:`delete`, returning what scrubbing left instead of raising."""
        _, found = await self.journal.find(ref)
        self._deleted_here.add(found.id)  # not "deleted on another device"
        reflection = await self.journal.delete(found.id)
        await self.understanding.on_delete(reflection)
        await self._repair_stale()  # a record another process wrote meanwhile may quote it
        # ... and leaves no byte of it in this device's file, or says it did not
        return reflection, await self.store.scrub_deleted()

    async def scrub(self) -> None:
        """Remove what was deleted or edited away from this device's file (again)."""
        self._check_scrub("deleted words", await self.scrub_result())

    async def scrub_result(self) -> ScrubResult:
        """:meth:`scrub`, returning what it left instead of raising."""
        await self._repair_stale()
        return await self.store.scrub_deleted()

    def scrub_problem(self, what: str, result: ScrubResult) -> str | None:
        """The one-line message (with what to do) when *result* says the file still
        holds something deleted; None when it holds nothing."""
        if result.complete:
            return None
        advice = "run `mirror scrub`"
        if result.file_busy:
            advice = "close the other Mirror programs on this home (the REPL, mirror serve), " \
                     "then run `mirror scrub`"
        elif result.kept_logs:
            advice += f" (details in {self.home.log_path})"
        return f"{what} are still in {self.home.db_path.name}: {result.describe()}; {advice}"

    def _check_scrub(self, what: str, result: ScrubResult) -> None:
        """Raise ScrubIncompleteError unless *result* says the file holds nothing deleted."""
        problem = self.scrub_problem(what, result)
        if problem is not None:
            raise ScrubIncompleteError(problem)

    async def past_for(
        self, reflection: Reflection, limit: int = PAST_FOR_ENGINE
    ) -> list[Reflection]:
        """Recent reflections before *reflection* that the engine may look at.

        A shared reflection is only ever compared with shared ones, so nothing
        private flows into a mirrorback that lands in a syncable document.
        """
        past = await self.journal.recent(limit + 1, include_private=reflection.private)
        return [r for r in past if r.id != reflection.id][-limit:]

    async def stream_mirrorback(
        self, reflection: Reflection
    ) -> AsyncIterator[str | EngineNotice]:
        """Yield the mirrorback in pieces as the engine produces them, then save it.

        An :class:`EngineNotice` (the model failed, say) is passed on for the
        person to see once; it is not part of what is saved."""
        request = MirrorbackRequest(reflection, tuple(await self.past_for(reflection)))
        parts: list[str] = []
        async for chunk in self.engine.stream(request):
            if not isinstance(chunk, EngineNotice):
                parts.append(chunk)
            yield chunk
        text = "".join(parts).strip()
        if text:
            await self.journal.set_mirrorback(
                reflection.id,
                Mirrorback(text, self.engine.name, self.engine.model, utc_now()),
            )

    async def mirror(
        self, reflection: Reflection, on_notice: Callable[[str], None] | None = None
    ) -> str:
        """The whole mirrorback for *reflection*, saved before returning; each
        engine notice goes to *on_notice* (the engine has logged it already)."""
        parts: list[str] = []
        async for chunk in self.stream_mirrorback(reflection):
            if isinstance(chunk, EngineNotice):
                if on_notice is not None:
                    on_notice(chunk.text)
            else:
                parts.append(chunk)
        return "".join(parts).strip()

    # ------------------------------------------------------------------ reading

    async def counts(self) -> Counts:
        total = private = 0
        for shard in await self.journal.shards():
            n = shard_size(shard.doc)
            total += n
            if shard.sync_class is SyncClass.LOCAL and shard.doc_id.startswith("journal-private/"):
                private += n
        return Counts(total, private, len(self.store.documents()))

    async def set_journal_class(self, sync_class: SyncClass) -> list[str]:
        """Opt the journal in or out of syncing; private shards always stay local."""
        self.settings.set(JOURNAL_CLASS_SETTING, sync_class.value)
        self.journal.share_class = sync_class
        changed = []
        for info in self.store.documents(JOURNAL_KIND):
            if info.doc_id.startswith("journal/") and info.sync_class != sync_class:
                await self.store.set_sync_class(info.doc_id, sync_class)
                changed.append(info.doc_id)
        await self.store.wait_durable()
        return changed

    # ------------------------------------------------------------------ other devices

    async def follow_peer_deletes(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Forever: when an update from another device (a sync session, a blind
        store) removes reflections from a journal shard, do here what
        :meth:`delete` does on the device where they were deleted: take them out
        of what the engine learned and scrub them from this device's file."""
        known: dict[str, set[str]] = {}
        touched: dict[str, bool] = {}  # journal doc id -> changed by another device
        wake_send, wake = trio.open_memory_channel[None](1)

        def on_change(stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
            # Inside pycrdt's commit: note only (see DocStore.add_listener).
            if stored.kind != JOURNAL_KIND:
                return
            by_peer = source.kind is SourceKind.ORIGIN
            touched[stored.doc_id] = touched.get(stored.doc_id, False) or by_peer
            with suppress(trio.WouldBlock):
                wake_send.send_nowait(None)

        self.store.add_listener(on_change)  # before reading what is known, as in watch()
        try:
            for shard in await self.journal.shards():
                known[shard.doc_id] = shard_ids(shard.doc)
            task_status.started()
            async for _ in wake:
                batch = dict(touched)
                touched.clear()
                deleted_elsewhere = False
                for doc_id, by_peer in batch.items():
                    stored = self.store.loaded(doc_id)
                    now = shard_ids(stored.doc) if stored is not None else set()
                    gone = known.get(doc_id, set()) - now
                    if by_peer and gone - self._deleted_here:
                        deleted_elsewhere = True
                    self._deleted_here -= gone
                    known[doc_id] = now
                if deleted_elsewhere:
                    log.info("reflections deleted on another device: forgetting and scrubbing")
                    await self.understanding.forget_gone()
                    await self.store.scrub_deleted()
        finally:
            self.store.remove_listener(on_change)

    # ------------------------------------------------------------------ other processes

    async def watch(
        self,
        on_arrival: Callable[[Arrival], None],
        *,
        interval_s: float = REFRESH_INTERVAL_S,
    ) -> None:
        """Forever: pick up what other processes wrote to this home and report new
        reflections. Costs one cheap query per *interval_s* when nothing changed
        (the refresh loop is the process's one :class:`RefreshPublisher`)."""
        known: dict[str, set[str]] = {}
        written_here: set[str] = set()
        from_peers: dict[str, UpdateSource] = {}
        from_processes: set[str] = set()

        def on_change(stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
            # What this process writes itself is not an arrival. (A listener runs
            # inside pycrdt's commit and must not read the document: note only.)
            if stored.kind != JOURNAL_KIND:
                return
            if source.kind is SourceKind.LOCAL:
                written_here.add(stored.doc_id)
            elif source.kind is SourceKind.EXTERNAL:
                # Noted here, not only in the refresh result: another task's refresh
                # (an open, a compaction) may be the one that applied it.
                from_processes.add(stored.doc_id)
            else:
                from_peers[stored.doc_id] = source

        def before_refresh() -> None:
            # What this process wrote is known before the refresh, so what the
            # refresh brings from other processes still shows as new.
            for doc_id in written_here - set(from_peers):
                stored = self.store.loaded(doc_id)
                if stored is not None:
                    known[doc_id] = shard_ids(stored.doc)
            written_here.clear()

        # Listen before reading what is known: a peer's update applied while the
        # shards load must still be attributed to the peer, not to this device.
        self.store.add_listener(on_change)
        try:
            for shard in await self.journal.shards():
                known[shard.doc_id] = shard_ids(shard.doc)
            with self.refresher.subscribe(before_refresh) as refreshes:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.refresher.run, interval_s)
                    while True:
                        result = await refreshes.wait()
                        await self._watch_pass(
                            result, known, from_peers, from_processes, on_arrival)
        finally:
            self.store.remove_listener(on_change)

    async def _watch_pass(
        self,
        result: RefreshResult,
        known: dict[str, set[str]],
        from_peers: dict[str, UpdateSource],
        from_processes: set[str],
        on_arrival: Callable[[Arrival], None],
    ) -> None:
        shards = await self.journal.shards()
        # Nothing awaits from here to the end of the pass, so no update lands
        # between reading who wrote (the listener's notes) and reading the
        # shards: a peer's reflection applied during the awaits above is
        # still the peer's, not this device's.
        peer_docs = dict(from_peers)
        from_peers.clear()
        touched = set(result.changed) | {i.doc_id for i in result.new_documents}
        touched |= from_processes
        from_processes.clear()
        arrived: dict[str, list[Reflection]] = {}
        for shard in shards:
            doc_id = shard.doc_id
            if doc_id not in touched and doc_id not in peer_docs and doc_id in known:
                continue
            source = "this device"
            if doc_id in peer_docs:
                source = self.peer_names.get(peer_docs[doc_id], "another device")
            now = shard_ids(shard.doc)
            for rid in now - known.get(doc_id, set()):
                reflection = read_one(shard.doc, rid)
                if reflection is not None:
                    arrived.setdefault(source, []).append(reflection)
            known[doc_id] = now
        for source, items in arrived.items():
            items.sort(key=lambda r: r.created_at)
            on_arrival(Arrival(tuple(items), source))


@asynccontextmanager
async def open_core(
    home: Home,
    *,
    create: bool = True,
    passphrase: str | None = None,
    cipher: BlobCipher | None = None,
    tolerate_bad_config: bool = False,
) -> AsyncIterator[MirrorCore]:
    """Open (and if allowed create) the home and its store for the block.

    An encrypted home needs its *passphrase* (or the already unlocked
    *cipher*); while it is open, its keyring is sealed with a key derived from it.
    An invalid config.json raises ConfigError, unless *tolerate_bad_config*: then
    the core runs on the defaults and ``core.config_problem`` says what is wrong.
    """
    if create:
        home.ensure()
    problem: ConfigProblem | None = None
    try:
        config = home.load_config()
    except ConfigError as exc:
        if not tolerate_bad_config:
            raise
        written = None
        with suppress(ConfigError):
            written = read_config(home.config_path)
        problem = ConfigProblem(exc, written, home.config_path)
        config = Config()
    async with open_store(
        home.db_path, create=create, passphrase=passphrase, cipher=cipher
    ) as store:
        if store.cipher is not None:
            register_sealing_key(home.path, store.cipher.purpose_key("keyring"))
        try:
            settings = await Settings.open(store)
            core = MirrorCore(home, config, store, settings)
            core.config_problem = problem
            yield core
        finally:
            if store.cipher is not None:
                forget_sealing_key(home.path)
