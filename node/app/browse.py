"""Operations for looking through a journal rather than typing at it (the web interface).

:class:`Browse` sits beside :class:`node.app.Mirror` over the same open home and adds
what a page needs that a command does not: a timeline that stays in memory and fresh
(:mod:`.timeline`), what the engine found in one reflection, what deleting one removes,
on this day, an export as bytes, a test of the model, and :func:`follow_changes`,
which tells a front end which kinds of documents changed — written by this process,
another one on the same home (the REPL, ``mirror serve``, a CLI call) or a peer.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from crdt import StoredDoc, UpdateSource
from crdt.export import export_json, export_markdown
from crdt.journal import KIND as JOURNAL_KIND
from crdt.journal import Reflection, read_reflections

from ..commons.home import ConsentLedger, load_cache
from ..engine.base import MirrorbackRequest, complete_with_notices
from ..engine.extract import from_json
from ..engine.lexicon import lexicon
from ..engine.mood import MAX_WEEKS, MoodPoint, mood_weeks, valence_of
from ..errors import UsageError
from ..files import make_private_dir, write_private
from .mirror import Mirror
from .timeline import JournalView

log = logging.getLogger("mirror.app")

REFRESH_INTERVAL_S = 0.25
PROBE_TEXT = "Today I went for a walk and felt calmer afterwards."


@dataclass(frozen=True)
class ReflectionFinding:
    """One thing the engine found in a reflection (a theme, a person, a tension …)."""

    kind: str
    key: str
    label: str
    poles: tuple[str, str] | None
    intensity: int


@dataclass(frozen=True)
class DeletePreview:
    """What deleting a reflection removes, for the person to read before they confirm."""

    reflection: Reflection
    findings: int
    removes: tuple[str, ...]


@dataclass(frozen=True)
class ModelTest:
    """The answer of a "test the model" call: whether the model replied, and how."""

    engine: str
    model: str
    ok: bool
    reply: str
    notices: tuple[str, ...]


class Browse:
    """Browsing operations over one open home (see the module docstring)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.timeline = JournalView(self._read_all_shards, self._read_shard)
        self._mood: dict[tuple[int, str], list[Any]] = {}  # (weeks, day) -> timeline

    def on_change(self, doc_id: str, kind: str) -> None:
        """For :func:`follow_changes`: a changed journal shard is read again when next asked."""
        if kind == JOURNAL_KIND:
            self.timeline.mark_stale(doc_id)
        self._mood.clear()  # the journal or what the engine learned changed

    async def _read_all_shards(self) -> dict[str, list[Reflection]]:
        shards = await self.mirror.core.journal.shards()
        return {s.doc_id: read_reflections(s.doc) for s in shards}

    async def _read_shard(self, doc_id: str) -> list[Reflection]:
        store = self.mirror.core.store
        if store.info(doc_id) is None:
            return []
        stored = await store.open_doc(doc_id, kind=JOURNAL_KIND, create=False)
        return read_reflections(stored.doc)

    # ------------------------------------------------------------------ one reflection

    async def findings(self, r: Reflection) -> tuple[ReflectionFinding, ...]:
        raw = (await self.mirror.core.understanding.index()).get(r.id)
        if not raw:
            return ()
        x = from_json(r.id, raw)
        return tuple(ReflectionFinding(i.kind, i.key, i.label, i.poles, i.intensity)
                     for i in x.items)

    async def delete_preview(self, ref: str) -> DeletePreview:
        r = await self.mirror.find(ref)
        found = await self.findings(r)
        removes = ["the reflection's text and tags"]
        if r.mirrorback is not None:
            removes.append("its mirrorback")
        removes.append(f"what the engine learned from it ({len(found)} findings: their counts "
                       "and quotes in patterns, tensions and the graph)")
        removes.append("its words from this device's database file")
        return DeletePreview(r, len(found), tuple(removes))

    async def mood(self, weeks: int) -> list[Any]:
        """The weekly mood timeline of ``mirror mood`` (the same weeks and figures), read
        from the engine's index for the reflections of those weeks only: at 10,000
        reflections the whole index need not be parsed (nor kept) for a chart."""

        if not 1 <= weeks <= MAX_WEEKS:
            raise UsageError(f"weeks must be between 1 and {MAX_WEEKS} (got {weeks})")
        key = (weeks, datetime.now(UTC).date().isoformat())
        if key in self._mood:
            return self._mood[key]
        since = datetime.now(UTC) - timedelta(weeks=weeks + 1)
        index = await self.mirror.core.understanding.index()
        positive = lexicon().positive_families
        points = []
        for r in await self.timeline.rows():  # newest first
            if r.created_at < since:
                break
            raw = index.get(r.id)
            if not raw:
                continue
            x = from_json(r.id, raw)
            valence, risk = x.valence, x.risk
            if valence is None:  # learned before valence was recorded
                v = valence_of(r.text)
                valence, risk = v.score, v.risk
            feelings = tuple(i.key for i in x.items
                             if i.kind == "emotion" and not (risk and i.key in positive))
            points.append(MoodPoint(x.created_at, valence, risk, feelings))
        self._mood.clear()
        self._mood[key] = mood_weeks(points, weeks=weeks, until=None)
        return self._mood[key]

    async def evolution_notes(self) -> list[dict[str, Any]]:
        """The evolution notes written so far (``mirror evolve``), newest first."""
        return list(reversed(await self.mirror.core.understanding.notes()))

    async def on_this_day(self, now: datetime | None = None) -> list[Reflection]:
        today = (now or datetime.now(UTC)).astimezone()
        return await self.timeline.on_day(today.month, today.day)

    # ------------------------------------------------------------------ data, engine

    async def export_bytes(self, fmt: str) -> tuple[str, bytes]:
        """(file name, content) of an export of everything, for a download."""

        store = self.mirror.core.store
        if fmt == "json":
            data = await export_json(store)
            return "mirror-export.json", json.dumps(data, ensure_ascii=False,
                                                    indent=1).encode()
        if fmt == "markdown":
            files = await export_markdown(store)
            return "mirror-export.md", "\n\n".join(files[n] for n in sorted(files)).encode()
        raise UsageError("an export is json or markdown")

    async def commons(self) -> tuple[list[Any], list[Any]]:
        """(items, published): the Commons threads, posts, comments and reactions in this
        device's cache (as ``mirror commons read --offline`` shows them), and what this
        person published, from the consent ledger."""

        ledger = await ConsentLedger.open(self.mirror.core.store)
        items = await load_cache(self.mirror.core.store, ledger.withdrawn())
        return items, ledger.entries()

    async def import_preview(self, data: bytes, name: str, fmt: str = "auto") -> tuple[str, Any]:
        """Keep an uploaded file (0600, in the home) and say what importing it would do;
        returns (upload id, report). Nothing is imported until :meth:`import_upload`."""
        upload = f"{secrets.token_hex(8)}{Path(name).suffix[:12]}"
        path = self._upload_path(upload)
        await trio.to_thread.run_sync(write_private, path, data)
        try:
            report = await self.mirror.import_file(path, fmt=fmt, dry_run=True)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return upload, report

    async def import_upload(self, upload: str, fmt: str = "auto",
                            private: bool = False) -> Any:
        path = self._upload_path(upload)
        if not path.exists():
            raise UsageError("that upload is gone: choose the file again")
        try:
            return await self.mirror.import_file(path, fmt=fmt, private=private)
        finally:
            path.unlink(missing_ok=True)

    def _upload_path(self, upload: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16}(\.[A-Za-z0-9]{1,11})?", upload):
            raise UsageError("not an upload id")
        folder = self.mirror.home.path / "drafts"
        make_private_dir(folder)
        return folder / f"import-{upload}"

    async def test_model(self) -> ModelTest:
        """One mirrorback of a fixed sentence from the engine in use; nothing is saved."""
        engine = self.mirror.core.engine
        probe = Reflection("probe", datetime.now(UTC), PROBE_TEXT)
        text, notices = await complete_with_notices(engine, MirrorbackRequest(probe))
        return ModelTest(engine.name, engine.model, bool(text) and not notices, text,
                         tuple(n.text for n in notices))


async def follow_changes(
    mirror: Mirror,
    publish: Callable[[list[str]], None],
    *,
    on_change: Callable[[str, str], None] | None = None,
    interval_s: float = REFRESH_INTERVAL_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forever: pick up what other processes wrote and call *publish* with the kinds of
    the documents that changed (at most once per *interval_s*). *on_change(doc_id,
    kind)* runs inside the store's commit for each change: it may note, not read.

    The looking is done by the process's one refresh loop (:class:`node.refresh.
    RefreshPublisher`), shared with the REPL's watch and the sync service."""
    core = mirror.core
    store = core.store
    changed: set[str] = set()

    def noticed(doc_id: str, kind: str) -> None:
        changed.add(kind)
        if on_change is not None:
            on_change(doc_id, kind)

    def listener(stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
        noticed(stored.doc_id, stored.kind)

    store.add_listener(listener)
    try:
        with core.refresher.subscribe() as refreshes:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(core.refresher.run, interval_s)
                task_status.started()
                while True:
                    with trio.move_on_after(interval_s * 2):
                        result = await refreshes.wait()
                        # Documents this process has not loaded change without the
                        # listener: a new shard another process created, one never read.
                        for info in result.new_documents:
                            noticed(info.doc_id, info.kind)
                        for doc_id in result.changed:
                            found = store.info(doc_id)
                            if found is not None:
                                noticed(doc_id, found.kind)
                    if changed:  # this process's own writes too, refresh or not
                        kinds = sorted(changed)
                        changed.clear()
                        publish(kinds)
    finally:
        store.remove_listener(listener)
