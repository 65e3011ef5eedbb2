"""What the web interface reads through the application layer: the timeline, the mood
chart, and server push of what another process writes (in-process, no browser)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from crdt.journal import Reflection, new_reflection_id
from node.app import open_mirror
from node.app.browse import Browse
from node.app.timeline import JournalQuery
from node.home import Home
from tests.helpers import run_mirror
from tests.ui_helpers import running_ui

TEXTS = ["Calm morning by the river.", "Angry at work, the deadline again.",
         "Grateful for my sister today.", "Tired and anxious about money.",
         "A quiet walk, felt hopeful."]


async def test_timeline_filters_pages_and_follows_changes(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with open_mirror(Home(tmp_path / "home")) as mirror:
        items = [Reflection(new_reflection_id(), now - timedelta(days=i), f"entry {i} " +
                            TEXTS[i % len(TEXTS)], tags=("work",) if i % 3 == 0 else (),
                            private=i % 4 == 0) for i in range(60)]
        await mirror.core.journal.add_many(items)
        browse = Browse(mirror)
        page = await browse.timeline.query(JournalQuery(per_page=25, page=2))
        assert (page.total, page.everything, len(page.items)) == (60, 60, 25)
        assert [r.id for r in page.items] == [r.id for r in items[25:50]]  # newest first
        found = await browse.timeline.query(JournalQuery(text="RIVER calm"))
        assert {r.id for r in found.items} == {r.id for r in items if "river" in r.text}
        tagged = await browse.timeline.query(JournalQuery(tags=("#work",), private="none"))
        assert {r.id for r in tagged.items} == {
            r.id for r in items if "work" in r.tags and not r.private}
        day = items[10].created_at.astimezone().date()
        one_day = await browse.timeline.query(JournalQuery(since=day, until=day))
        assert items[10].id in {r.id for r in one_day.items}
        assert all(r.created_at.astimezone().date() == day for r in one_day.items)
        assert dict(page.tags) == {"work": 20}
        # a star and an edit reach the cached timeline through the store's listener
        mirror.core.store.add_listener(lambda s, u, src: browse.on_change(s.doc_id, s.kind))
        await mirror.star(items[5].id)
        starred = await browse.timeline.query(JournalQuery(starred=True))
        assert [r.id for r in starred.items] == [items[5].id]


async def test_the_mood_chart_has_the_figures_of_mirror_mood(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with open_mirror(Home(tmp_path / "home")) as mirror:
        for i, text in enumerate(TEXTS * 2):
            await mirror.save(text, at=now - timedelta(days=3 * i + 1))
        browse = Browse(mirror)
        ours = await browse.mood(12)
        theirs = (await mirror.mood(weeks=12)).weeks
        assert list(ours) == list(theirs)
        assert sum(w.reflections for w in ours) == len(TEXTS) * 2


async def test_a_reflection_from_another_process_is_pushed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with running_ui(home) as ui, httpx.AsyncClient(timeout=120) as browser:
        await ui.session(browser)
        port = ui.app.guard.port
        events = EventReader(await trio.open_tcp_stream("127.0.0.1", port))
        async with events.stream:
            await events.stream.send_all(
                f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Cookie: mirror_ui={browser.cookies['mirror_ui']}\r\n\r\n".encode())
            assert await events.next() == {"type": "hello"}
            done = await trio.to_thread.run_sync(
                lambda: run_mirror(home, "reflect", "pushed-canary", "--no-mirrorback",
                                   timeout=120))
            assert done.returncode == 0, done.stderr
            with trio.fail_after(60):
                while True:
                    event = await events.next()
                    if event.get("type") == "changed" and "journal" in event["kinds"]:
                        break
        page = (await browser.get(ui.base + "/api/journal?q=pushed-canary")).json()
        assert page["total"] == 1


class EventReader:
    """Server-sent events read off a raw connection (the chunked framing is skipped:
    only ``data:`` lines are looked at)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def next(self) -> dict[str, Any]:
        while True:
            at = self.buffer.find(b"data: ")
            end = self.buffer.find(b"\n\n", at) if at >= 0 else -1
            if end >= 0:
                value = json.loads(self.buffer[at + len(b"data: "):end])
                self.buffer = self.buffer[end + 2:]
                assert isinstance(value, dict)
                return value
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise AssertionError("the event stream ended")
            self.buffer += chunk
