"""The application layer: what a person can do with Mirror, as typed operations.

:class:`Mirror` is opened on a home (:func:`open_mirror`) and offers every
operation the front ends have — the CLI, the REPL and the local web interface
are thin adapters over it. Each method takes plain values (text, ids, dates,
paths; never parsed arguments) and returns a typed result (:mod:`node.app.results`
or the engine's own dataclasses); nothing here prints, reads a terminal or
knows how a result is shown. Failures are :class:`node.errors.MirrorError`\\ s
with a one-line message, ``crdt.StoreError`` and ``crdt.ValueRangeError``.

Below it sits :class:`node.core.MirrorCore` (store, journal, engine, settings
of one open home); ``mirror.core`` stays reachable for the long-running
services (sync, discovery) that front ends start beside it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio

from crdt import ScrubResult
from crdt.commons import CommonsItem
from crdt.crypto_at_rest import BlobCipher
from crdt.graph import GraphEdit, GraphView
from crdt.import_plan import ImportFileError, ImportReport
from crdt.importers import apply_plan, read_source
from crdt.journal import Reflection

from ..config import Config
from ..core import Arrival, MirrorCore, open_core
from ..engine.ask import Answer
from ..engine.base import EngineNotice
from ..engine.digest import Period
from ..engine.lived import LoopSummary, PatternSummary, TensionSummary
from ..engine.safety.reply import detect_crisis
from ..engine.understanding import resolve_node
from ..engines import model_may_read_private, narrator_for
from ..errors import MirrorError, UsageError
from ..home import Home
from ..journal.dates import DateParseError
from ..journal.query import JournalFilter, journal_filter
from ..journal.search import Hit, search
from ..journal.stats import JournalStats, YearAgo, journal_stats, on_this_day
from ..journal.tags import TagCount, tag_counts
from . import insight, settings
from .exporting import export_format, write_export
from .results import (
    DeleteResult,
    Device,
    DeviceRemoval,
    DigestResult,
    EditResult,
    EvolveResult,
    ExportResult,
    JoinResult,
    MoodTimeline,
    PairingOffer,
    PairingResult,
    ReflectionList,
    RelatedResult,
    SafetyCheck,
    ScrubOutcome,
    SettingsView,
    ShareResult,
    Status,
    SyncStatus,
    WriteResult,
)

log = logging.getLogger("mirror.app")

if TYPE_CHECKING:
    from ..commons.home import CommonsServer, LedgerEntry
    from ..sync.runner import RunningSync
    from .commons import CommonsSyncOutcome, CommonsView, Published, Withdrawal

GRAPH_EDITS = ("add", "rename", "merge", "delete")


class Mirror:
    """Every operation a person can do on one open home. Create with :func:`open_mirror`
    (or wrap an open :class:`MirrorCore`)."""

    def __init__(self, core: MirrorCore) -> None:
        self.core = core

    @property
    def home(self) -> Home:
        return self.core.home

    @property
    def config(self) -> Config:
        return self.core.config

    @property
    def engine_name(self) -> str:
        return self.core.engine.name

    # ------------------------------------------------------------------ writing

    async def write(
        self,
        text: str,
        *,
        tags: Sequence[str] = (),
        private: bool = False,
        at: datetime | None = None,
        mirrorback: bool = True,
    ) -> WriteResult:
        """Save a reflection, learn from it and (unless *mirrorback* is False) answer it;
        returns once all of it is on disk."""
        reflection = await self.save(text, tags=tags, private=private, at=at)
        notices: list[str] = []
        reply = await self.core.mirror(reflection, notices.append) if mirrorback else ""
        return WriteResult(reflection, reply or None, self.safety(reflection.text),
                           tuple(notices))

    async def save(
        self,
        text: str,
        *,
        tags: Sequence[str] = (),
        private: bool = False,
        at: datetime | None = None,
    ) -> Reflection:
        """Save a reflection and learn from it, without a mirrorback (see
        :meth:`stream_mirrorback` for one shown as it is written)."""
        if at is not None and at > datetime.now(UTC):
            raise UsageError(f"{at.isoformat()} is in the future")
        return await self.core.reflect(text, tags=tags, private=private, at=at)

    def stream_mirrorback(self, reflection: Reflection) -> AsyncIterator[str | EngineNotice]:
        """The mirrorback in pieces as the engine writes it (and any notice where it
        applies); saved once the stream ends."""
        return self.core.stream_mirrorback(reflection)

    @staticmethod
    def safety(text: str) -> SafetyCheck | None:
        """What the offline crisis check finds in *text* (None: nothing)."""
        return SafetyCheck.of(detect_crisis(text))

    async def edit(
        self,
        ref: str,
        *,
        text: str | None = None,
        tags: Sequence[str] | None = None,
        mirrorback: bool = True,
    ) -> EditResult:
        """Change a reflection's text or tags; the engine learns it again. When the text
        changes, the old mirrorback (which quoted the old words) goes, the old words are
        scrubbed from this device's file, and a new mirrorback is written if one was
        there and *mirrorback* is True."""
        before = await self.find(ref)
        if (text is None or text.strip() == before.text) and tags is None:
            return EditResult(before, before, None)
        after, scrub = await self.core.edit_and_scrub(before.id, text=text, tags=tags)
        outcome = None if scrub is None else self._scrub_outcome(
            f"edited {after.id}, but the old words", scrub)
        reply, notices = None, list[str]()
        if (after.text != before.text and before.mirrorback is not None and mirrorback
                and (outcome is None or outcome.complete)):
            # the old mirrorback quoted the old words and was removed with them
            reply = await self.core.mirror(after, notices.append) or None
        return EditResult(before, after, outcome, reply, tuple(notices))

    async def delete(self, ref: str) -> DeleteResult:
        """Delete a reflection and all the engine learned from it, then scrub its words
        from this device's file; ``result.scrub`` says whether any are left."""
        reflection, scrub = await self.core.delete_and_scrub(ref)
        return DeleteResult(reflection, self._scrub_outcome(
            f"deleted {reflection.id}, but its words", scrub))

    async def scrub(self) -> ScrubOutcome:
        """Remove what was deleted or edited away from this device's file (again)."""
        return self._scrub_outcome("deleted words", await self.core.scrub_result())

    def _scrub_outcome(self, what: str, result: ScrubResult) -> ScrubOutcome:
        return ScrubOutcome(result, self.core.scrub_problem(what, result))

    # ------------------------------------------------------------------ reading

    async def find(self, ref: str) -> Reflection:
        """One reflection by id or a unique prefix of at least 4 characters."""
        return (await self.core.journal.find(ref))[1]

    async def reflections(
        self, *, tags: Sequence[str] = (), limit: int | None = None
    ) -> ReflectionList:
        """Reflections oldest first: with *tags*, those with any of them; with *limit*,
        only the newest so many."""
        return await self.search(tags=tags, limit=limit)

    async def search(
        self,
        text: str = "",
        *,
        tags: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> ReflectionList:
        """Reflections oldest first whose text holds every word of *text* (case-insensitive),
        with any of *tags*, written in [*since*, *until*); the newest *limit* of them."""
        everything = await self.core.journal.all()
        wanted = {t.strip().lstrip("#").strip().lower() for t in tags} - {""}
        words = text.casefold().split()
        found = [
            r for r in everything
            if (not wanted or wanted & set(r.tags))
            and (since is None or r.created_at >= since)
            and (until is None or r.created_at < until)
            and all(w in r.text.casefold() for w in words)
        ]
        if limit is not None:
            found = found[-limit:] if limit > 0 else []
        return ReflectionList(tuple(found), len(everything))

    # ------------------------------------------------------------------ journal conventions

    @staticmethod
    def journal_filter(
        *,
        from_: str | None = None,
        to: str | None = None,
        on: str | None = None,
        tags: Sequence[str] = (),
        starred: bool = False,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> JournalFilter:
        """A filter from what a person typed: natural dates for *from_*, *to*, *on*
        ("yesterday", "2 weeks ago", "last monday", "dec 1", ISO; node/journal/dates.py),
        any of *tags*, only starred, the newest *limit*. UsageError for a date it cannot
        read or a range that ends before it starts."""
        try:
            return journal_filter(now=now or datetime.now(UTC), from_=from_, to=to, on=on,
                                  tags=tags, starred=starred, limit=limit)
        except (DateParseError, ValueError) as exc:
            raise UsageError(str(exc)) from None

    async def listing(self, within: JournalFilter) -> ReflectionList:
        """The reflections *within* keeps, oldest first, and how many there are in all."""
        everything = await self.core.journal.all()
        return ReflectionList(tuple(within.apply(everything)), len(everything))

    async def search_ranked(self, query: str, *, within: JournalFilter | None = None
                            ) -> list[Hit]:
        """Full-text search of text and tags (``#tag`` asks for a tag), best first,
        among what *within* keeps; its limit is the number of hits. In memory only:
        nothing is written (node/journal/search.py)."""
        within = within or JournalFilter()
        kept = JournalFilter(start=within.start, end=within.end, tags=within.tags,
                             starred=within.starred)
        return search(kept.apply(await self.core.journal.all()), query, limit=within.limit)

    async def tags(self, *, within: JournalFilter | None = None) -> list[TagCount]:
        """Each tag and how many of the reflections *within* keeps carry it, most first."""
        items = await self.core.journal.all()
        return tag_counts(within.apply(items) if within else items)

    async def star(self, ref: str, starred: bool = True) -> Reflection:
        """Star (or unstar) a reflection; not an edit (``edited_at`` stays)."""
        return await self.core.journal.set_starred(ref, starred)

    async def on_this_day(self, today: date | None = None) -> list[YearAgo]:
        """What was written on *today*'s month and day (default: today) in earlier
        years, the nearest year first."""
        return on_this_day(await self.core.journal.all(), today or datetime.now().date())

    async def journal_stats(self, *, weeks: int = 12, today: date | None = None
                            ) -> JournalStats:
        """Entries, words, streaks of days, and *weeks* weeks of entries to this week."""
        try:
            return journal_stats(await self.core.journal.all(), today or datetime.now().date(),
                                 weeks=weeks)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    async def status(self) -> Status:
        core = self.core
        counts = await core.counts()
        db_bytes = await trio.to_thread.run_sync(self._store_bytes)
        problem = core.config_problem
        return Status(
            home=core.home.path,
            mirror_mode=core.config.mirror_mode,
            engine_mode=core.config.engine_mode,
            engine=core.engine.name,
            sync_enabled=core.config.sync_enabled,
            reflections=counts.reflections,
            private_reflections=counts.private,
            documents=counts.documents,
            journal_sync_class=core.journal.share_class.value,
            store_bytes=db_bytes,
            client_id=core.store.statistics().client_id,
            config_problem=problem,
            written=problem.written if problem is not None else None,
        )

    def _store_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.home.path.glob("mirror.db*") if p.is_file())

    async def reflection_count(self) -> int:
        return (await self.core.counts()).reflections

    # ------------------------------------------------------------------ understanding

    async def patterns(self, *, minimum: int = 3) -> list[PatternSummary]:
        return await self.core.understanding.patterns(minimum=minimum)

    async def loops(self, *, minimum: int = 3) -> list[LoopSummary]:
        return await self.core.understanding.loops(minimum=minimum)

    async def tensions(self, *, everything: bool = False) -> list[TensionSummary]:
        return await self.core.understanding.tensions(everything=everything)

    async def graph(self) -> GraphView:
        return await self.core.understanding.graph()

    @staticmethod
    def graph_node(view: GraphView, ref: str) -> str:
        """The id of the node *ref* names in *view* (id, label or key; unique)."""
        return resolve_node(view, ref)

    async def edit_graph(
        self, op: str, node: str = "", *, into: str = "", label: str = "", type: str = ""
    ) -> GraphEdit:
        """The person's edit of their graph: add LABEL, rename NODE, merge NODE into
        INTO, delete NODE. Extraction never overwrites it."""
        if op not in GRAPH_EDITS:
            raise UsageError(f"a graph edit is one of {', '.join(GRAPH_EDITS)} (got {op!r})")
        return await self.core.understanding.edit_graph(
            op, node, into=into, label=label, type=type or ("user" if op == "add" else ""))

    async def related(self, ref: str | None = None, *, limit: int = 5) -> RelatedResult:
        """Past reflections related to *ref* (default: the newest)."""
        if ref:
            of = await self.find(ref)
        else:
            newest = await self.core.journal.recent(1)
            if not newest:
                raise UsageError("no reflections yet")
            of = newest[-1]
        items = await self.core.understanding.related(of, limit=limit, include_private=True)
        return RelatedResult(of, tuple(items))

    async def evolve(self, *, since: datetime | None = None) -> EvolveResult:
        """An evolution note (this period against the one before), saved and returned."""
        core = self.core
        evolution = await core.understanding.evolve(
            since=since,
            narrator=narrator_for(core.config, core.home),
            narrator_sees_private=model_may_read_private(core.config, core.home),
        )
        return EvolveResult(evolution)

    async def ask(self, question: str, *, now: datetime | None = None) -> Answer:
        """Ask the journal; the answer cites reflection ids."""
        return await insight.answer_question(self.core, question, now=now)

    async def digest(self, period: Period = "week", *, until: datetime | None = None
                     ) -> DigestResult:
        if period not in insight.DIGEST_PERIODS:
            raise UsageError(f"a digest is of a week or a month (got {period!r})")
        return await insight.digest_of(self.core, period, until=until)

    async def mood(self, *, weeks: int = 12, until: datetime | None = None) -> MoodTimeline:
        return MoodTimeline(tuple(await insight.mood_timeline(self.core, weeks, until)))

    async def reindex(self) -> int:
        """Learn again from every reflection (keeps the person's graph edits)."""
        return await self.core.understanding.rebuild()

    # ------------------------------------------------------------------ settings

    def settings(self) -> SettingsView:
        return SettingsView(self.core.config, self.core.config_problem)

    async def set_mode(self, mode: str) -> Config:
        return await settings.set_mode(self.core, mode)

    async def set_engine(
        self,
        choice: str,
        *,
        model: str | None = None,
        api_base: str | None = None,
        timeout_s: float | None = None,
        fallback: bool | None = None,
        extraction: str | None = None,
    ) -> Config:
        return await settings.set_engine(
            self.core, choice, model=model, api_base=api_base, timeout_s=timeout_s,
            fallback=fallback, extraction=extraction)

    async def set_country(self, value: str) -> str:
        return await settings.set_country(self.core, value)

    async def change_settings(self, **changes: Any) -> Config:
        """Change settings of config.json by name (relays, update_source …), validated."""
        return await settings.change(self.core, **changes)

    async def set_sync_enabled(self, on: bool) -> Config:
        return await settings.set_sync_enabled(self.core, on)

    # ------------------------------------------------------------------ data

    async def export(self, target: Path, fmt: str | None = None) -> ExportResult:
        """Export everything: JSON (one file), Markdown (one .md file, or a folder with
        one file per month); *fmt* None: what the name says, else JSON."""
        fmt = export_format(fmt, target)
        written = await write_export(self.core.store, fmt, target)
        count = await self.reflection_count()
        return ExportResult(fmt, target, tuple(written), count)

    async def import_file(
        self, path: Path, *, fmt: str = "auto", private: bool = False, dry_run: bool = False,
        zone: Any = None,
    ) -> ImportReport:
        """Import reflections (Day One, jrnl, Mirror's own export …); *zone* places
        times written without one (default: this machine's)."""
        tz = zone or datetime.now().astimezone().tzinfo or UTC
        try:
            plan = await trio.to_thread.run_sync(
                lambda: read_source(path.expanduser(), fmt, default_tz=tz))
            return await apply_plan(self.core.store, plan,
                                    share_class=self.core.journal.share_class,
                                    private=private, dry_run=dry_run)
        except ImportFileError as exc:
            log.info("import of %s refused: %s", path, exc)
            raise MirrorError(f"nothing imported: {exc}") from None

    async def compact(self) -> list[Any]:
        """Fold each document's update log into a verified snapshot."""
        return list(await self.core.store.compact())

    # ------------------------------------------------------------------ devices and sync

    async def devices(self) -> list[Device]:
        """The devices of this person's group, with when each was last seen."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.devices(self.core)

    async def find_device(self, ref: str) -> Device:
        """A device by id, unique prefix or name."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.find_device(self.core, ref)

    async def remove_device(self, ref: str) -> DeviceRemoval:
        """Remove a device: a new epoch starts; it can read nothing written after."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.remove_device(self.core, ref)

    async def share(self, what: str, sync_class: str) -> ShareResult:
        """Opt ``journal`` or one document in (``devices``) or out (``local``) of syncing."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.share(self.core, what, sync_class)

    async def sync_status(self) -> SyncStatus:
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.sync_status(self.core)

    async def serve(
        self,
        *,
        listen: tuple[str, int] | None = None,
        interfaces: list[str] | Literal["config"] | None = "config",
        peers: Sequence[tuple[str, int]] = (),
        task_status: trio.TaskStatus[RunningSync] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Sync with this person's devices until cancelled (``mirror serve``, the REPL with
        sync on): listen on *listen* (default: the config's), discover on *interfaces*
        (None: no discovery, []: the LAN, default: the config's), dial *peers* and the
        config's. ``nursery.start`` returns once it listens."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        await devices.serve(self.core, listen=listen, interfaces=interfaces, peers=peers,
                               task_status=task_status)

    async def pair(
        self,
        on_offer: Callable[[PairingOffer], None],
        *,
        listen: tuple[str, int] | None = None,
        interfaces: list[str] | Literal["config"] | None = "config",
        timeout_s: float | None = None,
        stop: trio.Event | None = None,
    ) -> PairingResult:
        """Let another device join: *on_offer* gets the code to show at once; returns
        once a device joined, the time is up or *stop* was set, with every attempt."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.pair(self.core, listen=listen, interfaces=interfaces,
                                  timeout_s=timeout_s, on_offer=on_offer, stop=stop)

    async def join(
        self,
        code: str,
        *,
        address: tuple[str, int] | None = None,
        name: str | None = None,
        interfaces: list[str] | Literal["config"] | None = "config",
        timeout_s: float | None = None,
        force: bool = False,
    ) -> JoinResult:
        """Join the group of the device showing *code* (see :func:`devices.join_group`)."""
        from . import devices  # reason: start-up; only commands that sync load the sync stack

        return await devices.join_group(self.core, code, address=address, name=name,
                                        interfaces=interfaces, timeout_s=timeout_s,
                                        force=force)

    # ------------------------------------------------------------------ the Commons

    def commons_server(self) -> CommonsServer:
        """The default Commons server (UsageError in local mode when it is not on the LAN)."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return commons.default_server(self.core)

    async def commons_add_server(self, url: str, *, server_key: str | None = None
                                 ) -> CommonsServer:
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.add_server(self.core, url, server_key)

    async def commons_read(self, thread: str | None = None, *, offline: bool = False
                           ) -> CommonsView:
        """The Commons as cached here, refreshed from the server first unless *offline*."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.read(self.core, thread, offline=offline)

    async def commons_thread(self, ref: str) -> tuple[CommonsItem, CommonsSyncOutcome | None]:
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.thread_for(self.core, ref)

    def commons_check(self, kind: str, fields: dict[str, str]) -> dict[str, str]:
        """*fields* if a *kind* item (post, comment, reaction, insight) may carry them."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return commons.checked(kind, fields)

    async def commons_insight(self, kind: str, ref: str) -> tuple[str, str]:
        """(title, body) a pattern or tension would be published as (shared scope only)."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.insight_draft(self.core, kind, ref)

    async def commons_publish(self, kind: str, fields: dict[str, str], *, what: str,
                              summary: str) -> Published:
        """Publish an item the person has seen and confirmed."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.publish_item(self.core, kind, fields, what, summary)

    async def published(self) -> list[LedgerEntry]:
        """The consent ledger: what was published, where and when, and what was withdrawn."""
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.published(self.core)

    async def published_entry(self, ref: str) -> LedgerEntry:
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.published_entry(self.core, ref)

    async def unpublish(self, ref: str) -> Withdrawal:
        from . import commons  # reason: start-up; the Commons client loads the sync session stack

        return await commons.withdraw(self.core, ref)

    # ------------------------------------------------------------------ other processes

    async def watch(self, on_arrival: Callable[[Arrival], None]) -> None:
        """Forever: report reflections other processes and devices wrote."""
        await self.core.watch(on_arrival)


@asynccontextmanager
async def open_mirror(
    home: Home,
    *,
    create: bool = True,
    passphrase: str | None = None,
    cipher: BlobCipher | None = None,
    tolerate_bad_config: bool = False,
) -> AsyncIterator[Mirror]:
    """Open (and if allowed create) *home* for the block; see :func:`node.core.open_core`."""
    async with open_core(home, create=create, passphrase=passphrase, cipher=cipher,
                         tolerate_bad_config=tolerate_bad_config) as core:
        yield Mirror(core)
